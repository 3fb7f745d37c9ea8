"""Small inline-SVG charts (lines, steps, dots) for the HTML report: no scripts, no CDN."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563")


@dataclass
class Series:
    name: str
    points: list[tuple[float, float]]
    color: str = PALETTE[0]
    dashed: bool = False
    style: str = "line"  # line | step | dots
    extra: dict[str, str] = field(default_factory=dict)


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (1, 2, 5 × 10^k steps)."""
    if not math.isfinite(low) or not math.isfinite(high):
        return [0.0, 1.0]
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step) * step
    ticks = []
    value = start
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 10))
    return ticks


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.0f}"
    return f"{value:g}"


def chart(
    series: list[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    width: int = 560,
    height: int = 320,
    y_from_zero: bool = True,
    x_from_zero: bool = False,
) -> str:
    left, right, top, bottom = 64, 28, 44, 48
    plot_w, plot_h = width - left - right, height - top - bottom
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(title)}" class="chart">',
        f'<text x="{left}" y="16" class="chart-title">{escape(title)}</text>',
    ]
    if not xs:
        parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" class="axis">no data</text></svg>')
        return "".join(parts)
    x_ticks = nice_ticks(0.0 if x_from_zero else min(xs), max(xs))
    y_ticks = nice_ticks(0.0 if y_from_zero else min(ys), max(ys))
    x0, x1, y0, y1 = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]

    def px(x: float) -> float:
        return left + (x - x0) / ((x1 - x0) or 1.0) * plot_w

    def py(y: float) -> float:
        return top + plot_h - (y - y0) / ((y1 - y0) or 1.0) * plot_h

    for t in y_ticks:
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{py(t):.1f}" y2="{py(t):.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{py(t) + 4:.1f}" text-anchor="end" class="axis">{_fmt(t)}</text>')
    for t in x_ticks:
        parts.append(f'<line x1="{px(t):.1f}" x2="{px(t):.1f}" y1="{top}" y2="{top + plot_h}" class="grid"/>')
        parts.append(
            f'<text x="{px(t):.1f}" y="{top + plot_h + 16}" text-anchor="middle" class="axis">{_fmt(t)}</text>'
        )
    parts.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" class="frame"/>')
    parts.append(
        f'<text x="{left + plot_w / 2}" y="{height - 8}" text-anchor="middle" class="label">{escape(x_label)}</text>'
    )
    parts.append(
        f'<text x="14" y="{top + plot_h / 2}" text-anchor="middle" class="label" '
        f'transform="rotate(-90 14 {top + plot_h / 2})">{escape(y_label)}</text>'
    )
    for s in series:
        pts = sorted(s.points) if s.style != "dots" else s.points
        if s.style == "dots":
            parts.append(f'<g fill="{s.color}" fill-opacity="0.55">')
            parts += [f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.2"/>' for x, y in pts]
            parts.append("</g>")
            continue
        coords: list[str] = []
        previous_y = None
        for x, y in pts:
            if s.style == "step" and previous_y is not None:
                coords.append(f"{px(x):.1f},{py(previous_y):.1f}")
            coords.append(f"{px(x):.1f},{py(y):.1f}")
            previous_y = y
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        parts.append(f'<polyline points="{" ".join(coords)}" fill="none" stroke="{s.color}" stroke-width="2"{dash}/>')
        if s.style == "line":
            parts += [f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{s.color}"/>' for x, y in pts]
    # Legend in the top margin, left to right, so it never covers data.
    legend_x: float = left
    for s in series:
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        parts.append(
            f'<line x1="{legend_x}" x2="{legend_x + 18}" y1="{top - 9}" y2="{top - 9}" stroke="{s.color}" '
            f'stroke-width="3"{dash}/>'
        )
        parts.append(f'<text x="{legend_x + 22}" y="{top - 5}" class="legend">{escape(s.name)}</text>')
        legend_x += 30 + 6.5 * len(s.name)
    parts.append("</svg>")
    return "".join(parts)


def ecdf_points(values: list[float], max_points: int = 400) -> list[tuple[float, float]]:
    """Empirical CDF as (value, fraction ≤ value), thinned to at most `max_points`."""
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        return []
    stride = max(1, n // max_points)
    points = [(ordered[i], (i + 1) / n) for i in range(0, n, stride)]
    if points[-1][1] != 1.0:
        points.append((ordered[-1], 1.0))
    return [(ordered[0], 0.0)] + points
