"""Where the chart is: $FLOTILLA_CHART_DIR, else charts/flotilla of the checkout this package runs from.

The chart lives at the repository's top (`helm install NAME charts/flotilla`); an editable install
(`pip install -e .`, what the README sets up) finds it beside `src/`. A wheel does not carry it:
there, point FLOTILLA_CHART_DIR (or `flotilla render --chart`) at a copy of charts/flotilla.
"""

from __future__ import annotations

import os
from pathlib import Path


class ChartNotFound(RuntimeError):
    """No chart directory; the message says where it looked and what to set."""


def _checkout_chart() -> Path:
    # src/flotilla/chart/paths.py -> repository root
    return Path(__file__).resolve().parents[3] / "charts" / "flotilla"


def chart_dir(explicit: str | Path | None = None) -> Path:
    candidates = [Path(explicit)] if explicit else []
    if not explicit and os.environ.get("FLOTILLA_CHART_DIR"):
        candidates.append(Path(os.environ["FLOTILLA_CHART_DIR"]))
    if not candidates:
        candidates.append(_checkout_chart())
    for path in candidates:
        if (path / "Chart.yaml").is_file():
            return path
    looked = ", ".join(str(p) for p in candidates)
    raise ChartNotFound(
        f"no Helm chart (Chart.yaml) at {looked}; set FLOTILLA_CHART_DIR or pass --chart "
        "to a copy of the repository's charts/flotilla"
    )
