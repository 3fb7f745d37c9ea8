"""`flotilla bench` against a real simulated engine recovers the engine's known timings."""

from __future__ import annotations

import json
import subprocess

import pytest
from procs import flotilla, sim_engine

from flotilla.bench.config import merge_settings, resolve_plan
from flotilla.bench.runner import StepRunner
from flotilla.sim.testing import start_sim
from flotilla.spec.engines import SimOptions

TTFT_MS, ITL_MS, TOKENS = 50.0, 10.0, 20


def test_cli_recovers_sim_ttft_and_itl_within_5_percent(tmp_path):
    out = tmp_path / "result.json"
    html = tmp_path / "report.html"
    with sim_engine(tmp_path, model="sim", ttft_ms=TTFT_MS, itl_ms=ITL_MS, max_num_seqs=8, deterministic=True) as url:
        # Constant arrivals 333 ms apart; each request takes 50 + 19 * 10 = 240 ms: never two at once,
        # so the sim's batch slowdown never applies and the engine's timings are exactly known.
        proc = subprocess.run(
            flotilla(
                "bench",
                "--url",
                url,
                "--model",
                "sim",
                "--rate",
                "3",
                "--arrival",
                "constant",
                "--num-requests",
                "15",
                "--input-len",
                "32",
                "--output-len",
                str(TOKENS),
                "--no-progress",
                "--json",
                str(out),
                "--html",
                str(html),
            ),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "Serving Benchmark Result" in proc.stdout
    result = json.loads(out.read_text())
    assert result["completed"] == 15 and result["failed"] == 0
    assert result["total_output_tokens"] == 15 * TOKENS  # from usage; ignore_eos holds the length
    assert result["median_ttft_ms"] == pytest.approx(TTFT_MS, rel=0.05)
    assert result["mean_tpot_ms"] == pytest.approx(ITL_MS, rel=0.05)
    assert result["median_itl_ms"] == pytest.approx(ITL_MS, rel=0.05)
    # As in vLLM's benchmark, the chat role chunk is a token event: it comes with the first token
    # (one gap of ~0 per request), so the mean ITL is (TOKENS - 1) gaps of ITL over TOKENS gaps.
    assert result["mean_itl_ms"] == pytest.approx(ITL_MS * (TOKENS - 1) / TOKENS, rel=0.05)
    assert result["median_e2el_ms"] == pytest.approx(TTFT_MS + (TOKENS - 1) * ITL_MS, rel=0.05)
    assert result["request_throughput"] == pytest.approx(3.0, rel=0.15)
    assert result["classes"]["default"]["completed"] == 15
    assert html.read_text().count("<svg") >= 2


def test_cli_reports_a_clear_preflight_error_for_an_unknown_model(tmp_path):
    with sim_engine(tmp_path, model="sim", ttft_ms=1, itl_ms=1) as url:
        proc = subprocess.run(
            flotilla("bench", "--url", url, "--model", "nope", "--rate", "1", "--num-requests", "1", "--no-progress"),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 2
    assert "class default (nope at" in proc.stderr and "HTTP 404" in proc.stderr
    assert "does not exist" in proc.stderr


def test_cli_rejects_bad_flags_with_a_message():
    proc = subprocess.run(
        flotilla("bench", "--url", "http://127.0.0.1:9", "--model", "m", "--class", "a:rat=1"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "--class a: unknown key 'rat'" in proc.stderr
    proc = subprocess.run(
        flotilla(
            "bench", "--url", "http://127.0.0.1:9", "--model", "m", "--rate", "1", "--goodput", "ttft:300", "tpot=50"
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "unexpected argument 'tpot=50'" in proc.stderr


async def test_classes_warmup_and_duration_in_process():
    options = SimOptions(ttft_ms=2, itl_ms=1, max_num_seqs=64, deterministic=True)
    async with start_sim(options, model="sim") as sim:
        settings = merge_settings(
            None,
            {
                "url": sim.base_url,
                "model": "sim",
                "duration_s": 2.0,
                "warmup_s": 0.5,
                "output_len": 4,
                "input_len": 8,
                "arrival": "constant",
                "classes": [
                    {"name": "slow", "rate": 5.0},
                    {"name": "fast", "rate": 20.0},
                    {"name": "loop", "concurrency": 2},
                ],
            },
        )
        plan = resolve_plan(settings)
        step = await StepRunner(plan, plan.classes, None, "test").run()
    measured = [r for r in step.records if r.measured]
    assert all(r.sent >= 0.5 - 0.01 for r in measured)  # warm-up requests are never measured
    assert any(not r.measured for r in step.records)
    # Constant arrivals over a 2 s window: exactly rate × 2 requests per open-loop class.
    assert step.per_class["slow"]["completed"] == 10
    assert step.per_class["fast"]["completed"] == 40
    assert step.per_class["loop"]["completed"] > 10  # closed loop: back to back for 2 s
    assert step.overall["failed"] == 0
    assert step.overall["completed"] == sum(step.per_class[c]["completed"] for c in ("slow", "fast", "loop"))
    assert step.overall["total_output_tokens"] == 4 * step.overall["completed"]
    assert 2.0 <= step.duration_s < 3.0
