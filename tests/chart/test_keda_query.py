"""The KEDA query, evaluated by Prometheus's own engine (promtool test rules) on series shaped like
the gateway's /metrics as the Prometheus Operator scrapes them (namespace and pod labels added).

promtool comes from Debian's prometheus package (scripts/install.sh extracts it into the tools
directory); without it these tests skip with the reason."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from shared import shared_required
import yaml

from chartkit import model_spec, one, render
from flotilla.chart.helm import tools_dir

GATEWAY_POD = 'namespace="ns", pod="rel-flotilla-5d8f9c7b6-x2x7q", model="m"'
OTHER_RELEASE = 'namespace="ns", pod="other-flotilla-6c9d7b5f4-q8w2e", model="m"'


def promtool() -> str:
    found = shutil.which("promtool") or (str(tools_dir() / "promtool") if (tools_dir() / "promtool").is_file() else None)
    if not found:
        reason = "needs promtool (scripts/install.sh extracts it from Debian's prometheus package)"
        if shared_required():  # CI (.ci/run): everything must run
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return found


def query(**autoscaling) -> str:
    values = model_spec(name="m", engine="sim", maxConcurrency=16, autoscaling={"enabled": True, **autoscaling})
    values["rabbitmq"] = {"type": "internal"}
    return one(render(values), "ScaledObject", "rel-flotilla-m")["spec"]["triggers"][0]["metadata"]["query"]


def evaluate(tmp_path: Path, expr: str, series: dict[str, str], expected: dict[str, float | None]) -> None:
    """Check `expr` at each minute in `expected` (None: no result, which KEDA reports as an error)."""
    tests = [{
        "interval": "1m",
        "input_series": [{"series": s, "values": v} for s, v in series.items()],
        "promql_expr_test": [
            {"expr": expr, "eval_time": minute, "exp_samples": [] if value is None else [{"labels": "{}", "value": value}]}
            for minute, value in expected.items()
        ],
    }]
    path = tmp_path / "query_test.yaml"
    path.write_text(yaml.safe_dump({"rule_files": [], "evaluation_interval": "1m", "tests": tests}))
    done = subprocess.run([promtool(), "test", "rules", str(path)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_queue_is_counted_once_not_per_priority_plus_total(tmp_path):
    evaluate(tmp_path, query(), {
        f'flotilla_queue_depth{{{GATEWAY_POD}, priority="10"}}': "6 6",
        f'flotilla_queue_depth{{{GATEWAY_POD}, priority="1"}}': "4 4",
        f'flotilla_queue_depth{{{GATEWAY_POD}, priority="all"}}': "10 10",
        f'flotilla_replica_in_flight{{{GATEWAY_POD}, replica="10.0.0.1:8000"}}': "16 16",
    }, {"1m": 26})


def test_demand_holds_steady_through_a_scale_up_so_nothing_flaps(tmp_path):
    # Minute 0: no replica, 32 requests queued. Minute 2: two replicas loaded took the 32 from the
    # queue. The queue alone would drop 32 -> 0 (scale back down, refill, reload: flapping).
    evaluate(tmp_path, query(), {
        f'flotilla_queue_depth{{{GATEWAY_POD}, priority="all"}}': "32 32 0 0",
        f'flotilla_queue_depth{{{GATEWAY_POD}, priority="1"}}': "32 32 0 0",
        f'flotilla_replica_in_flight{{{GATEWAY_POD}, replica="10.0.0.1:8000"}}': "_ _ 16 16",
        f'flotilla_replica_in_flight{{{GATEWAY_POD}, replica="10.0.0.2:8000"}}': "_ _ 16 16",
    }, {"0m": 32, "1m": 32, "2m": 32, "3m": 32})


def test_several_gateway_pods_add_up_and_other_releases_do_not_count(tmp_path):
    second = GATEWAY_POD.replace("x2x7q", "k9p3z")
    evaluate(tmp_path, query(), {
        f'flotilla_queue_depth{{{GATEWAY_POD}, priority="all"}}': "3",
        f'flotilla_queue_depth{{{second}, priority="all"}}': "5",
        f'flotilla_replica_in_flight{{{second}, replica="10.0.0.1:8000"}}': "2",
        f'flotilla_queue_depth{{{OTHER_RELEASE}, priority="all"}}': "100",
    }, {"0m": 10})


def test_a_missing_scrape_is_no_answer_not_idle(tmp_path):
    # The gateway is not scraped (or not yet): no result, which KEDA (ignoreNullValues false) treats
    # as a failure and answers with its fallback, rather than "0 demand, scale to zero".
    evaluate(tmp_path, query(), {
        f'flotilla_queue_depth{{{OTHER_RELEASE}, priority="all"}}': "4",
        'up{namespace="ns", pod="rel-flotilla-5d8f9c7b6-x2x7q"}': "0",
    }, {"0m": None})


def test_with_the_rabbitmq_queue_the_prometheus_part_is_in_flight_only(tmp_path):
    evaluate(tmp_path, query(rabbitmq={"enabled": True}), {
        f'flotilla_queue_depth{{{GATEWAY_POD}, priority="all"}}': "7",
        f'flotilla_replica_in_flight{{{GATEWAY_POD}, replica="10.0.0.1:8000"}}': "5",
    }, {"0m": 5})
