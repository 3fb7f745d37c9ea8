"""The live view while a step runs: a rich table on a terminal, a line now and then in a log.

Refreshed from the event loop (no rich refresh thread), a few times a second: drawing costs a
millisecond or two, and a thread holding the GIL meanwhile would stamp chunks late.
"""

from __future__ import annotations

import asyncio

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from flotilla.bench.runner import StepProgress

TERMINAL_REFRESH_S = 0.5
LOG_EVERY_S = 10.0


def render(progress: StepProgress) -> Group:
    elapsed = progress.elapsed_s
    if progress.total_s:
        clock = f"{elapsed:5.1f}s / {progress.total_s:.0f}s"
    else:
        clock = f"{elapsed:5.1f}s"
    state = "  [yellow]stopping: waiting for requests in flight[/yellow]" if progress.stopping else ""
    table = Table(box=None, padding=(0, 2), header_style="bold")
    for column in ("class", "load", "sent", "done", "failed", "in flight", "mean TTFT"):
        table.add_column(column, justify="left" if column in ("class", "load") else "right")
    for c in progress.classes:
        sent = f"{c.sent}/{c.expected}" if c.expected else str(c.sent)
        failed = f"[red]{c.failed}[/red]" if c.failed else "0"
        table.add_row(c.name, c.label, sent, str(c.completed), failed, str(c.in_flight), f"{c.mean_ttft_ms:.1f} ms")
    return Group(Text.from_markup(f"[bold]{progress.title}[/bold]  {clock}{state}"), table)


def log_line(progress: StepProgress) -> str:
    parts = [f"{c.name}: {c.completed} done, {c.failed} failed, {c.in_flight} in flight" for c in progress.classes]
    return f"[{progress.elapsed_s:6.1f}s] {progress.title}: " + "; ".join(parts)


async def show_progress(progress: StepProgress, console: Console, done: asyncio.Event) -> None:
    """Draw `progress` until `done` is set."""
    if console.is_terminal:
        with Live(render(progress), console=console, auto_refresh=False, transient=True) as live:
            while not done.is_set():
                await _wait(done, TERMINAL_REFRESH_S)
                live.update(render(progress), refresh=True)
        return
    while not done.is_set():
        await _wait(done, LOG_EVERY_S)
        if not done.is_set():
            console.print(log_line(progress), markup=False, highlight=False)


async def _wait(event: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        pass
