"""Keep one child process running: start it, follow its health, restart it with backoff, stop it.

A `SupervisedProcess` owns one command (an engine replica or the gateway). Its `run()` task spawns
the command in its own process group, polls the health URL until it answers 200, and when the
process exits on its own, restarts it after an exponential backoff. `stop()` ends the loop and the
whole process group. Changes are reported through `on_change` (for state.json and the display)
and `on_event` (human-readable lines for the console and up.log).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import aiohttp

from flotilla.local.backoff import Backoff
from flotilla.local.health import Probe, probe
from flotilla.local.process import kill_leftovers, spawn_in_own_group, stop_group


class Phase(str, Enum):
    PENDING = "pending"  # not started yet
    STARTING = "starting"  # process running, port not open
    LOADING = "loading"  # port open, health not 200 (model loading)
    HEALTHY = "healthy"
    RESTARTING = "restarting"  # exited; waiting out the backoff
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclass(frozen=True)
class ProcessSpec:
    name: str  # unique in the run: "engine-chat-0", "gateway"
    role: str  # "engine" | "gateway"
    argv: list[str]
    log_path: Path
    port: int
    url: str  # base URL clients use
    health_url: str | None  # None: running counts as healthy
    model: str | None = None  # the gateway's name for the replica's pool (MODEL, or MODEL@prefill)
    replica: int | None = None
    env: tuple[tuple[str, str], ...] = ()  # set over the inherited environment (the model's `env`)


@dataclass(frozen=True)
class Timing:
    poll_s: float = 0.25  # health and exit polling while starting
    healthy_poll_s: float = 0.5  # exit polling once healthy
    probe_timeout_s: float = 3.0


Listener = Callable[["SupervisedProcess"], None]


class SupervisedProcess:
    def __init__(
        self,
        spec: ProcessSpec,
        *,
        backoff: Backoff | None = None,
        timing: Timing = Timing(),
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        on_change: Listener | None = None,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        self.spec = spec
        self.backoff = backoff or Backoff()
        self.timing = timing
        self._env = env
        self._cwd = cwd
        self._on_change = on_change or (lambda _p: None)
        self._on_event = on_event or (lambda _m: None)
        self._proc: subprocess.Popen[bytes] | None = None
        self._stop_requested = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.phase = Phase.PENDING
        self.phase_since = time.monotonic()
        self.started_at: float | None = None  # monotonic time of the current process's start
        self.restarts = 0
        self.last_exit_code: int | None = None
        self.failed_starts = 0  # consecutive exits before reaching healthy
        self.next_start_in_s: float | None = None
        self.ready_after_s: float | None = None  # start-to-healthy time of the current process

    @property
    def pid(self) -> int | None:
        return None if self._proc is None or self._proc.returncode is not None else self._proc.pid

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> asyncio.Task[None]:
        """Begin supervising (from the event loop's thread, which must outlive the child)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"supervise {self.spec.name}")
        return self._task

    async def stop(self, grace_s: float) -> None:
        """Stop supervising and end the process group: SIGTERM, then SIGKILL after `grace_s`."""
        self._stop_requested.set()
        if self._proc is not None and self._proc.returncode is None:
            self._set_phase(Phase.STOPPING)
            clean = await stop_group(self._proc, grace_s)
            if not clean:
                self._on_event(f"{self.spec.name} did not stop within {grace_s:g}s: killed")
        if self._task is not None:
            await self._task
        self._set_phase(Phase.STOPPED)

    def _set_phase(self, phase: Phase, *, force: bool = False) -> None:
        if force or phase != self.phase:
            self.phase = phase
            self.phase_since = time.monotonic()
            self._on_change(self)

    def _spawn(self) -> None:
        if self.restarts:
            with open(self.spec.log_path, "ab") as log:
                log.write(f"\n==== flotilla: restart {self.restarts} at {time.strftime('%H:%M:%S')} ====\n".encode())
        env = self._env
        if self.spec.env:
            env = {**(os.environ if env is None else env), **dict(self.spec.env)}
        self._proc = spawn_in_own_group(self.spec.argv, self.spec.log_path, env=env, cwd=self._cwd)
        self.started_at = time.monotonic()
        self.next_start_in_s = None
        self.ready_after_s = None if self.spec.health_url else 0.0
        # Notify even when the phase is unchanged: the pid is new.
        self._set_phase(Phase.STARTING if self.spec.health_url else Phase.HEALTHY, force=True)

    async def _sleep_unless_stopped(self, seconds: float) -> bool:
        """Sleep; True if a stop was requested meanwhile."""
        try:
            await asyncio.wait_for(self._stop_requested.wait(), seconds)
        except asyncio.TimeoutError:
            return False
        return True

    async def _watch(self, session: aiohttp.ClientSession) -> int | None:
        """Follow the process until it exits (its code) or a stop is requested (None)."""
        assert self._proc is not None
        while True:
            code = self._proc.poll()
            if code is not None:
                return code
            if self._stop_requested.is_set():
                return None
            if self.phase != Phase.HEALTHY and self.spec.health_url:
                result = await probe(session, self.spec.health_url, self.timing.probe_timeout_s)
                if self._proc.poll() is None and not self._stop_requested.is_set():
                    self._set_phase(
                        {Probe.DOWN: Phase.STARTING, Probe.LISTENING: Phase.LOADING, Probe.HEALTHY: Phase.HEALTHY}[
                            result
                        ]
                    )
                    if result is Probe.HEALTHY:
                        self.failed_starts = 0
                        self.ready_after_s = time.monotonic() - (self.started_at or time.monotonic())
                        self._on_event(
                            f"{self.spec.name} is healthy after {self.ready_after_s:.1f}s "
                            f"({self.spec.url}, pid {self._proc.pid})"
                        )
            wait = self.timing.healthy_poll_s if self.phase == Phase.HEALTHY else self.timing.poll_s
            if await self._sleep_unless_stopped(wait):
                return None

    async def _run(self) -> None:
        async with aiohttp.ClientSession() as session:
            while not self._stop_requested.is_set():
                self._spawn()
                code = await self._watch(session)
                if code is None or self._stop_requested.is_set():  # stop() ends the process group
                    return
                assert self._proc is not None and self.started_at is not None
                kill_leftovers(self._proc)
                ran_for = time.monotonic() - self.started_at
                if self.phase != Phase.HEALTHY:
                    self.failed_starts += 1
                self.last_exit_code = code
                delay = self.backoff.next_delay(ran_for)
                self.next_start_in_s = delay
                self.restarts += 1
                self._set_phase(Phase.RESTARTING)
                self._on_event(
                    f"{self.spec.name} (pid {self._proc.pid}) exited with code {code} after {ran_for:.1f}s; "
                    f"restarting in {delay:g}s (restart {self.restarts}); log: {self.spec.log_path}"
                )
                if await self._sleep_unless_stopped(delay):
                    return

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.spec.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


async def stop_in_order(stages: list[list[SupervisedProcess]], grace_s: float) -> None:
    """Stop stage by stage (e.g. the gateway, then the engines); processes within a stage at once."""
    for stage in stages:
        await asyncio.gather(*(process.stop(grace_s) for process in stage))
