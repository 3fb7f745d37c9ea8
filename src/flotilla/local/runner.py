"""`flotilla up`: plan, start engines, wait for health, start the gateway, serve until told to stop.

Stop order is the reverse of the start order: the gateway first (no new requests reach engines
that are going away), then every engine at once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.text import Text

from flotilla.local.backoff import Backoff
from flotilla.local.banner import ready_message, token_sources
from flotilla.local.display import ProgressTable
from flotilla.local.plan import RunPlan
from flotilla.local.process import signal_group
from flotilla.local.rundir import EventLog, ensure_sqlite_folder
from flotilla.local.state import write_state
from flotilla.local.supervisor import Phase, ProcessSpec, SupervisedProcess, stop_in_order
from flotilla.spec.root import FlotillaSpec


@dataclass(frozen=True)
class UpSettings:
    grace_s: float = 10.0  # SIGTERM -> SIGKILL
    startup_timeout_s: float = 900.0  # per stage (engines, then gateway)
    max_start_attempts: int = 3  # a process failing this often before its first health aborts the start
    backoff_initial_s: float = 1.0
    backoff_cap_s: float = 30.0


class StartFailed(Exception):
    pass


class Stack:
    """The supervised processes of one run, the state file and the event log that describe them."""

    def __init__(
        self,
        spec: FlotillaSpec,
        spec_path: Path,
        plan: RunPlan,
        run_dir: Path,
        settings: UpSettings,
        console: Console,
    ) -> None:
        self.spec = spec
        self.spec_path = spec_path
        self.plan = plan
        self.run_dir = run_dir
        self.settings = settings
        self.console = console
        self.status = "starting"
        self.events = EventLog(run_dir / "up.log")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # children's logs appear as they are written
        self.engines = [self._supervised(p, env) for p in plan.engines]
        self.gateways = [self._supervised(g, env) for g in plan.gateways]

    def _supervised(self, spec: ProcessSpec, env: dict[str, str]) -> SupervisedProcess:
        return SupervisedProcess(
            spec,
            backoff=Backoff(initial_s=self.settings.backoff_initial_s, cap_s=self.settings.backoff_cap_s),
            env=env,
            on_change=lambda _p: self.save_state(),
            on_event=self.event,
        )

    @property
    def everything(self) -> list[SupervisedProcess]:
        return [*self.engines, *self.gateways]

    def event(self, message: str) -> None:
        line = self.events.write(message)
        self.console.print(Text(line, style="dim" if " is healthy" in message else ""), soft_wrap=True)

    def save_state(self) -> None:
        write_state(
            self.run_dir,
            status=self.status,
            spec_path=self.spec_path,
            endpoint=self.plan.endpoint,
            gateways=self.gateways,
            engines=self.engines,
        )

    def set_status(self, status: str) -> None:
        self.status = status
        self.save_state()

    async def start_stage(self, stage: list[SupervisedProcess], stop: asyncio.Event) -> None:
        """Start `stage` and wait until all of it is healthy; raises StartFailed or returns on stop."""
        for process in stage:
            process.start()
        deadline = time.monotonic() + self.settings.startup_timeout_s
        while not all(p.phase == Phase.HEALTHY for p in stage):
            if stop.is_set():
                return
            failing = [p for p in stage if p.failed_starts >= self.settings.max_start_attempts]
            if failing:
                p = failing[0]
                raise StartFailed(
                    f"{p.spec.name} exited {p.failed_starts} times before becoming healthy "
                    f"(last exit code {p.last_exit_code}). Last lines of {p.spec.log_path}:\n{p.log_tail()}"
                )
            if time.monotonic() > deadline:
                late = ", ".join(f"{p.spec.name} ({p.phase.value})" for p in stage if p.phase != Phase.HEALTHY)
                raise StartFailed(f"not healthy after {self.settings.startup_timeout_s:g}s: {late}")
            try:
                await asyncio.wait_for(stop.wait(), 0.2)
            except asyncio.TimeoutError:
                pass

    async def shutdown(self) -> None:
        self.set_status("stopping")
        self.event("stopping: gateway first, then engines")
        await stop_in_order([self.gateways, self.engines], self.settings.grace_s)
        self.set_status("stopped")

    def kill_now(self) -> None:
        """Second Ctrl-C: no more grace."""
        for process in self.everything:
            if process.pid is not None:
                signal_group(process.pid, signal.SIGKILL)


async def ingest_pipeline_sources(stack: Stack) -> None:
    """Pipelines' `ingest.sources`, through the gateway that just became healthy (local/pipelines.py)."""
    from flotilla.local.pipelines import ingest_sources
    from flotilla.pipeline.upload import UploadFailed

    try:
        await ingest_sources(stack.spec, stack.spec_path, stack.plan.gateway.url, stack.event)
    except UploadFailed as exc:
        raise StartFailed(f"ingesting the pipelines' sources failed: {exc}") from None


def install_stop_signals(stop: asyncio.Event, on_second: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()

    def handle(signum: int) -> None:
        if stop.is_set():
            on_second()
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, handle, signum)


async def run_stack(stack: Stack) -> int:
    """Run until a signal; 0 after a clean stop, 1 if the stack could not start."""
    stop = asyncio.Event()
    install_stop_signals(stop, stack.kill_now)
    ensure_sqlite_folder(stack.spec.gateway.database)
    stack.save_state()
    stack.event(f"run folder: {stack.run_dir} (one log per process, state.json)")
    code = 0
    try:
        title = f"flotilla up {stack.spec_path}"
        try:
            with Live(ProgressTable(stack.everything, title), console=stack.console, refresh_per_second=4):
                await stack.start_stage(stack.engines, stop)
                if not stop.is_set():
                    await stack.start_stage(stack.gateways, stop)
                if not stop.is_set() and stack.spec.pipelines:
                    await ingest_pipeline_sources(stack)
        finally:
            stack.console.print()  # Live leaves the cursor at the end of its table when not on a terminal
        if not stop.is_set():
            stack.set_status("ready")
            sources = token_sources(stack.spec, stack.spec_path)
            message = ready_message(stack.spec, stack.spec_path, stack.plan.endpoints, stack.run_dir, sources)
            # soft_wrap: the examples must stay copy-pasteable whatever the terminal's width.
            stack.console.print(message, markup=False, highlight=False, soft_wrap=True)
            await stop.wait()
    except StartFailed as exc:
        stack.console.print(Text(f"flotilla up failed: {exc}", style="red"), soft_wrap=True)
        stack.events.write(f"start failed: {exc}")
        code = 1
    finally:
        await stack.shutdown()
        if code:
            stack.set_status("failed")
        stack.console.print(f"stopped; logs are in {stack.run_dir}", highlight=False, markup=False, soft_wrap=True)
    return code
