"""The tables printed at the end of a run: vLLM's result layout, one column per class."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from flotilla.bench.config import BenchPlan
from flotilla.bench.metrics import LATENCY_METRICS, percentile_label
from flotilla.bench.runner import StepResult

METRIC_TITLES = {
    "ttft": "Time to First Token",
    "tpot": "Time per Output Token (excl. 1st token)",
    "itl": "Inter-token Latency",
    "e2el": "End-to-end Latency",
}
SHORT_NAMES = {"ttft": "TTFT", "tpot": "TPOT", "itl": "ITL", "e2el": "E2EL"}

# Send lag above these (ms) means the client fell behind its schedule.
LAG_WARN_P99_MS = 5.0
LAG_WARN_MAX_MS = 50.0


def _num(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def result_rows(plan: BenchPlan) -> list[tuple[str, str | None]]:
    """(label, result key) in vLLM's order; a None key is a section heading."""
    rows: list[tuple[str, str | None]] = [
        ("Successful requests", "completed"),
        ("Failed requests", "failed"),
        ("Benchmark duration (s)", "duration"),
        ("Total input tokens", "total_input_tokens"),
        ("Total generated tokens", "total_output_tokens"),
        ("Request throughput (req/s)", "request_throughput"),
    ]
    if plan.goodput_ms:
        rows.append(("Request goodput (req/s)", "request_goodput"))
    rows += [
        ("Output token throughput (tok/s)", "output_throughput"),
        ("Total token throughput (tok/s)", "total_token_throughput"),
    ]
    for metric in LATENCY_METRICS:
        short = SHORT_NAMES[metric]
        rows.append((METRIC_TITLES[metric], None))
        rows += [(f"Mean {short} (ms)", f"mean_{metric}_ms"), (f"Median {short} (ms)", f"median_{metric}_ms")]
        rows.append((f"Std {short} (ms)", f"std_{metric}_ms"))
        rows += [
            (f"P{percentile_label(p)} {short} (ms)", f"p{percentile_label(p)}_{metric}_ms") for p in plan.percentiles
        ]
    return rows


def step_title(step: StepResult, index: int, total: int) -> str:
    if step.rate is None:
        return "Serving Benchmark Result"
    return f"Serving Benchmark Result — step {index + 1}/{total}: {step.rate:g} req/s"


def step_table(plan: BenchPlan, step: StepResult, title: str) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold")
    table.add_column("")
    multi = len(step.classes) > 1
    columns: list[dict[str, Any]] = [step.overall]
    table.add_column("all" if multi else "value", justify="right")
    if multi:
        for cls in step.classes:
            table.add_column(f"{cls.name}\n[dim]{cls.label}[/dim]", justify="right")
            columns.append(step.per_class[cls.name])
    for label, key in result_rows(plan):
        if key is None:
            table.add_section()
            table.add_row(f"[bold]{label}[/bold]", *[""] * len(columns))
            continue
        table.add_row(label, *[_num(col.get(key)) for col in columns])
    errors = [", ".join(f"{status}: {n}" for status, n in col["errors_by_status"].items()) or "-" for col in columns]
    table.add_section()
    table.add_row("Errors by status", *errors)
    return table


def step_notes(step: StepResult) -> list[str]:
    notes = []
    lag = step.send_lag
    if lag["p99_ms"] > LAG_WARN_P99_MS or lag["max_ms"] > LAG_WARN_MAX_MS:
        notes.append(
            f"[yellow]sends lagged the schedule: p99 {lag['p99_ms']:.1f} ms, max {lag['max_ms']:.1f} ms — "
            "the client could not keep up; lower the rate or give it a CPU of its own[/yellow]"
        )
    else:
        notes.append(
            f"[dim]send lag against the schedule: p99 {lag['p99_ms']:.2f} ms, max {lag['max_ms']:.2f} ms[/dim]"
        )
    if step.usage_missing:
        notes.append(
            f"[yellow]{step.usage_missing} responses had no usage: their output tokens are counted as "
            "content chunks and their input tokens estimated[/yellow]"
        )
    if step.interrupted:
        notes.append("[yellow]interrupted: results cover the requests sent before the stop[/yellow]")
    return notes


def sweep_table(plan: BenchPlan, steps: list[StepResult]) -> Table:
    table = Table(title="Sweep summary", title_justify="left", title_style="bold")
    top = percentile_label(max(plan.percentiles)) if plan.percentiles else None
    headers = ["rate (req/s)", "class", "req/s", "out tok/s", "mean TTFT", "median TTFT"]
    if top:
        headers.append(f"P{top} TTFT")
    headers += ["mean TPOT", "median E2EL", "failed"]
    for h in headers:
        table.add_column(h, justify="left" if h == "class" else "right")
    for step in steps:
        rows = [("all", step.overall)] + (
            [(c.name, step.per_class[c.name]) for c in step.classes] if len(step.classes) > 1 else []
        )
        for name, m in rows:
            cells = [
                _num(step.rate),
                name,
                _num(m["request_throughput"]),
                _num(m["output_throughput"], 1),
                _num(m["mean_ttft_ms"]),
                _num(m["median_ttft_ms"]),
            ]
            if top:
                cells.append(_num(m[f"p{top}_ttft_ms"]))
            cells += [_num(m["mean_tpot_ms"]), _num(m["median_e2el_ms"]), str(m["failed"])]
            table.add_row(*cells)
        table.add_section()
    return table


def print_report(console: Console, plan: BenchPlan, steps: list[StepResult]) -> None:
    for index, step in enumerate(steps):
        console.print(step_table(plan, step, step_title(step, index, len(steps))))
        for note in step_notes(step):
            console.print(note)
        console.print()
    if len(steps) > 1:
        console.print(sweep_table(plan, steps))
