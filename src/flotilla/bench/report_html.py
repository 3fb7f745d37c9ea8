"""A self-contained HTML report: settings, result tables, and inline-SVG plots (no network needed).

Plots: for a sweep, latency against offered rate per class; for every step, the TTFT distribution
per class (empirical CDF) and each request's TTFT against its send time.
"""

from __future__ import annotations

import datetime as dt
import random
from html import escape
from pathlib import Path

from flotilla.bench.config import BenchPlan
from flotilla.bench.metrics import percentile_label
from flotilla.bench.report_console import result_rows, step_title
from flotilla.bench.runner import StepResult
from flotilla.bench.svg import PALETTE, Series, chart, ecdf_points

_MAX_DOTS = 3000

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1160px;color:#111827;
background:#fff;padding:0 16px}
h1{font-size:1.6rem;margin-bottom:4px}h2{font-size:1.2rem;margin-top:32px;border-bottom:1px solid #e5e7eb;
padding-bottom:4px}.sub{color:#6b7280;margin-top:0}
table{border-collapse:collapse;font-size:.85rem;margin:8px 0}td,th{padding:3px 10px;border-bottom:1px solid #f3f4f6}
th{text-align:right;background:#f9fafb}th:first-child,td:first-child{text-align:left}td{text-align:right;
font-variant-numeric:tabular-nums}tr.section td{font-weight:600;text-align:left;background:#f9fafb}
.charts{display:flex;flex-wrap:wrap;gap:12px}.chart{border:1px solid #e5e7eb;border-radius:6px;background:#fff}
.chart-title{font-size:13px;font-weight:600}.axis{font-size:11px;fill:#4b5563}.label{font-size:12px;fill:#111827}
.legend{font-size:11px;fill:#111827}.grid{stroke:#eef0f3}.frame{fill:none;stroke:#d1d5db}
.note{color:#92400e;background:#fffbeb;border:1px solid #fde68a;padding:6px 10px;border-radius:4px}
summary{cursor:pointer}summary h2{display:inline-block;border:0;margin:20px 0 4px}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 16px;font-size:.9rem}dt{color:#6b7280}dd{margin:0}
"""


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return escape(str(value))


def _settings(plan: BenchPlan) -> str:
    items = [
        ("Target", f"{plan.base_url}{plan.path}"),
        ("Warm-up", f"{plan.warmup_s:g} s (excluded)"),
        ("Stop after", f"{plan.duration_s:g} s" if plan.duration_s else "the set number of requests"),
        ("ignore_eos", "sent" if plan.ignore_eos else "not sent"),
        ("Goodput SLOs", ", ".join(f"{k} ≤ {v:g} ms" for k, v in plan.goodput_ms.items()) or "-"),
        ("Seed", str(plan.seed)),
    ]
    if plan.sweep:
        items.insert(1, ("Sweep (req/s)", ", ".join(f"{r:g}" for r in plan.sweep)))
    for c in plan.classes:
        load = "swept rate" if c.follows_sweep else c.label
        arrival = (
            "constant" if c.burstiness is None else ("Poisson" if c.burstiness == 1 else f"gamma {c.burstiness:g}")
        )
        items.append((f"Class {c.name}", f"model {c.model}; {load}; {arrival} arrivals"))
    return "<dl>" + "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in items) + "</dl>"


def _result_table(plan: BenchPlan, step: StepResult) -> str:
    multi = len(step.classes) > 1
    columns = [("all" if multi else "value", step.overall)]
    if multi:
        columns += [(c.name, step.per_class[c.name]) for c in step.classes]
    head = "<tr><th></th>" + "".join(f"<th>{escape(name)}</th>" for name, _ in columns) + "</tr>"
    rows = []
    for label, key in result_rows(plan):
        if key is None:
            rows.append(f'<tr class="section"><td colspan="{len(columns) + 1}">{escape(label)}</td></tr>')
            continue
        rows.append(
            f"<tr><td>{escape(label)}</td>" + "".join(f"<td>{_fmt(m.get(key))}</td>" for _, m in columns) + "</tr>"
        )
    errors = "".join(
        "<td>" + (escape(", ".join(f"{s}: {n}" for s, n in m["errors_by_status"].items())) or "-") + "</td>"
        for _, m in columns
    )
    rows.append(f"<tr><td>Errors by status</td>{errors}</tr>")
    return "<table>" + head + "".join(rows) + "</table>"


def _colors(plan: BenchPlan) -> dict[str, str]:
    return {c.name: PALETTE[i % len(PALETTE)] for i, c in enumerate(plan.classes)}


def _sweep_charts(plan: BenchPlan, steps: list[StepResult]) -> str:
    colors = _colors(plan)
    top = percentile_label(max(plan.percentiles)) if plan.percentiles else None
    multi = len(plan.classes) > 1
    groups = (
        [(c.name, colors[c.name], lambda s, n=c.name: s.per_class[n]) for c in plan.classes]
        if multi
        else [("all", PALETTE[0], lambda s: s.overall)]
    )

    def lines(key: str, dashed: bool = False, suffix: str = "") -> list[Series]:
        return [
            Series(f"{name}{suffix}", [(s.rate or 0.0, pick(s)[key]) for s in steps], color, dashed)
            for name, color, pick in groups
        ]

    ttft = lines("median_ttft_ms", suffix=" median")
    if top:
        ttft += lines(f"p{top}_ttft_ms", dashed=True, suffix=f" p{top}")
    charts = [
        chart(
            ttft,
            title="TTFT against offered rate",
            x_label="offered rate of swept classes (req/s)",
            y_label="TTFT (ms)",
            x_from_zero=True,
        ),
        chart(
            lines("mean_tpot_ms"),
            title="Mean TPOT against offered rate",
            x_label="offered rate of swept classes (req/s)",
            y_label="TPOT (ms)",
            x_from_zero=True,
        ),
        chart(
            lines("median_e2el_ms"),
            title="Median end-to-end latency against offered rate",
            x_label="offered rate of swept classes (req/s)",
            y_label="E2E latency (ms)",
            x_from_zero=True,
        ),
        chart(
            lines("request_throughput"),
            title="Completed requests per second of benchmark duration",
            x_label="offered rate of swept classes (req/s)",
            y_label="req/s (duration includes the drain)",
            x_from_zero=True,
        ),
    ]
    return '<div class="charts">' + "".join(charts) + "</div>"


def _step_charts(plan: BenchPlan, step: StepResult) -> str:
    colors = _colors(plan)
    measured = [r for r in step.records if r.measured and r.success]
    cdf = [
        Series(
            c.name,
            ecdf_points([r.ttft * 1000 for r in measured if r.class_name == c.name]),
            colors[c.name],
            style="step",
        )
        for c in step.classes
    ]
    rng = random.Random(0)
    dots = []
    for c in step.classes:
        mine = [(r.sent - plan.warmup_s, r.ttft * 1000) for r in measured if r.class_name == c.name]
        if len(mine) > _MAX_DOTS // len(step.classes):
            mine = rng.sample(mine, _MAX_DOTS // len(step.classes))
        dots.append(Series(c.name, mine, colors[c.name], style="dots"))
    return (
        '<div class="charts">'
        + chart(
            cdf,
            title="TTFT distribution per class (CDF)",
            x_label="TTFT (ms)",
            y_label="fraction of requests ≤ TTFT",
            x_from_zero=True,
        )
        + chart(
            dots,
            title="TTFT of each request over the run",
            x_label="send time after warm-up (s)",
            y_label="TTFT (ms)",
            x_from_zero=True,
        )
        + "</div>"
    )


def render_html(plan: BenchPlan, steps: list[StepResult]) -> str:
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    models = sorted({c.model for c in plan.classes})
    body = [
        "<h1>Flotilla benchmark</h1>",
        f'<p class="sub">{escape(", ".join(models))} · {escape(plan.base_url)} · {date}</p>',
        "<h2>Settings</h2>",
        _settings(plan),
    ]
    if len(steps) > 1:
        body += ["<h2>Latency against rate</h2>", _sweep_charts(plan, steps)]
    for index, step in enumerate(steps):
        # A sweep's steps fold away but the last, where the load is highest.
        is_open = " open" if index == len(steps) - 1 else ""
        body.append(f"<details{is_open}><summary><h2>{escape(step_title(step, index, len(steps)))}</h2></summary>")
        lag = step.send_lag
        body.append(
            f'<p class="sub">Sends against the schedule: p99 lag {lag["p99_ms"]:.2f} ms, max {lag["max_ms"]:.2f} ms; '
            f"{step.connections_opened} connections opened.</p>"
        )
        if step.interrupted:
            body.append('<p class="note">Interrupted: results cover the requests sent before the stop.</p>')
        body += [_step_charts(plan, step), _result_table(plan, step), "</details>"]
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Flotilla benchmark</title>'
        f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{_CSS}</style></head><body>'
        + "".join(body)
        + "</body></html>\n"
    )


def write_html(path: str | Path, plan: BenchPlan, steps: list[StepResult]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(plan, steps))
    return path
