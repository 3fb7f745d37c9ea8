"""The live table `flotilla up` shows while processes start: phase and time in it, per process."""

from __future__ import annotations

import time

from rich.table import Table
from rich.text import Text

from flotilla.local.supervisor import Phase, SupervisedProcess

PHASE_STYLE = {
    Phase.PENDING: "dim",
    Phase.STARTING: "yellow",
    Phase.LOADING: "cyan",
    Phase.HEALTHY: "green",
    Phase.RESTARTING: "red",
    Phase.STOPPING: "magenta",
    Phase.STOPPED: "dim",
}


class ProgressTable:
    """A rich renderable re-drawn on every refresh of `rich.live.Live`."""

    def __init__(self, processes: list[SupervisedProcess], title: str) -> None:
        self.processes = processes
        self.title = title

    def __rich__(self) -> Table:
        table = Table(title=self.title, title_justify="left", expand=False)
        for column in ("process", "port", "phase", "elapsed", "pid", "restarts"):
            table.add_column(column, no_wrap=True)
        now = time.monotonic()
        for p in self.processes:
            phase = Text(p.phase.value, style=PHASE_STYLE[p.phase])
            if p.phase == Phase.RESTARTING and p.next_start_in_s is not None:
                phase.append(f" (in {p.next_start_in_s:.0f}s)")
            if p.phase == Phase.HEALTHY and p.ready_after_s is not None:
                elapsed = f"ready in {p.ready_after_s:.1f}s"
            elif p.started_at is not None:
                elapsed = f"{now - p.started_at:.1f}s"
            else:
                elapsed = ""
            table.add_row(
                p.spec.name, str(p.spec.port), phase, elapsed, str(p.pid or ""), str(p.restarts)
            )
        return table
