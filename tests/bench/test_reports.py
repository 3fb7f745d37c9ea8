"""JSON, HTML and console reports from synthetic results: vLLM's keys, self-contained HTML, no secrets."""

from __future__ import annotations

import json
import re

from rich.console import Console

from flotilla.bench.config import merge_settings, resolve_plan
from flotilla.bench.metrics import RequestRecord, compute_metrics, send_lag_stats
from flotilla.bench.report_console import print_report
from flotilla.bench.report_html import render_html
from flotilla.bench.report_json import results_json, write_json
from flotilla.bench.runner import StepResult

SECRET = "staff-secret-token-xyz"
VLLM_KEYS = {
    "completed", "failed", "request_throughput", "output_throughput", "total_token_throughput", "duration",
    "total_input_tokens", "total_output_tokens", "request_goodput", "errors_by_status",
    "mean_ttft_ms", "median_ttft_ms", "std_ttft_ms", "p90_ttft_ms", "p95_ttft_ms", "p99_ttft_ms",
    "mean_tpot_ms", "median_tpot_ms", "p99_tpot_ms", "mean_itl_ms", "p99_itl_ms", "mean_e2el_ms", "p99_e2el_ms",
}  # fmt: skip


def make_plan(sweep: list[float] | None = None):
    classes = [
        {"name": "staff", "token": SECRET, "rate": 2.0},
        {"name": "students", "token": "students-secret-token", **({} if sweep else {"rate": 5.0})},
    ]
    settings = {"url": "http://gw:8000", "model": "chat", "duration_s": 10.0, "goodput": {"ttft": 200.0},
                "classes": classes}  # fmt: skip
    if sweep:
        settings["sweep"] = sweep
    return resolve_plan(merge_settings(None, settings))


def make_step(plan, rate: float | None, slow: float) -> StepResult:
    records = []
    for i in range(20):
        for name, ttft in (("staff", 0.05), ("students", slow)):
            records.append(RequestRecord(name, scheduled=i * 0.1, sent=i * 0.1 + 0.0001, finished=i * 0.1 + ttft + 0.1,
                                         success=True, status="200", ttft=ttft + i * 0.001, itl=[0.01] * 9,
                                         latency=ttft + 0.09, prompt_tokens=30, output_tokens=10))  # fmt: skip
    records.append(RequestRecord("students", scheduled=1.0, sent=1.0, status="429", error="over threshold"))
    classes = plan.classes if rate is None else plan.steps()[plan.sweep.index(rate)][1]
    duration = 3.0
    return StepResult(
        rate=rate, classes=classes, records=records, duration_s=duration,
        overall=compute_metrics(records, duration, plan.percentiles, plan.goodput_ms),
        per_class={c.name: compute_metrics([r for r in records if r.class_name == c.name], duration,
                                           plan.percentiles, plan.goodput_ms) for c in classes},
        send_lag=send_lag_stats(records), usage_missing=0, connections_opened=4,
    )  # fmt: skip


def test_json_has_vllm_keys_overall_and_per_class_and_no_tokens(tmp_path):
    plan = make_plan()
    path = write_json(tmp_path / "out" / "r.json", plan, [make_step(plan, None, 0.5)])
    text = path.read_text()
    result = json.loads(text)
    assert VLLM_KEYS <= set(result)
    assert set(result["classes"]) == {"staff", "students"}
    for per_class in result["classes"].values():
        assert VLLM_KEYS <= set(per_class)
    assert result["classes"]["students"]["errors_by_status"] == {"429": 1}
    assert result["failed"] == 1 and result["completed"] == 40
    assert len(result["ttfts"]) == 41 and result["config"]["classes"][0]["authenticated"] is True
    assert result["request_goodput"] == 20 / 3.0  # every staff request meets ttft ≤ 200 ms, no student does
    assert SECRET not in text and "students-secret-token" not in text


def test_sweep_json_lists_each_rate():
    plan = make_plan(sweep=[4.0, 8.0])
    steps = [make_step(plan, 4.0, 0.3), make_step(plan, 8.0, 0.9)]
    result = results_json(plan, steps)
    assert [s["request_rate"] for s in result["sweep"]] == [4.0, 8.0]
    assert result["sweep"][1]["classes"]["students"]["request_rate"] == 8.0
    assert result["sweep"][1]["classes"]["staff"]["request_rate"] == 2.0


def test_html_is_self_contained_with_plots():
    plan = make_plan(sweep=[4.0, 8.0])
    html = render_html(plan, [make_step(plan, 4.0, 0.3), make_step(plan, 8.0, 0.9)])
    assert html.startswith("<!doctype html>")
    assert "TTFT against offered rate" in html and "TTFT distribution per class (CDF)" in html
    assert html.count("<svg") == 4 + 2 * 2  # four sweep charts, two charts per step
    # Nothing to fetch: no scripts, stylesheets, images or fonts from anywhere.
    assert not re.search(r"<script|<link|<img|@import|url\(", html)
    assert not re.search(r"(src|href)=\"https?:", html)
    assert SECRET not in html


def test_console_report_has_a_column_per_class_and_the_sweep_summary():
    plan = make_plan(sweep=[4.0, 8.0])
    console = Console(record=True, width=200)
    print_report(console, plan, [make_step(plan, 4.0, 0.3), make_step(plan, 8.0, 0.9)])
    text = console.export_text()
    assert "Serving Benchmark Result — step 2/2: 8 req/s" in text
    assert "students" in text and "staff" in text
    assert "Request goodput (req/s)" in text
    assert "Sweep summary" in text
    assert "429: 1" in text
    assert SECRET not in text
