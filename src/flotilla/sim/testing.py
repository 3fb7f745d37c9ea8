"""Starting sims in tests and benchmarks.

- `start_sim(options, model)`: an in-process sim on a free port, on the caller's event loop
  (async context manager). Use async clients against it: a blocking client would stall the loop.
- `SimProcess(options, model)`: a sim in its own process (`python -m flotilla.sim`), on a free
  port, optionally pinned to CPUs. Sync and async context manager.

Both yield an object with `.port`, `.base_url` ("http://127.0.0.1:PORT") and `.openai_base_url`
(base_url + "/v1").
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from flotilla.sim.commands import sim_args
from flotilla.sim.engine import SimEngine
from flotilla.sim.server import SIM_ENGINE, create_sim_app, make_runner
from flotilla.spec.engines import SimOptions

_READY_LINE = re.compile(r"on http://(?P<host>[^\s:]+):(?P<port>\d+)")


@dataclass(frozen=True)
class RunningSim:
    host: str
    port: int
    model: str
    engine: SimEngine | None = None  # in-process only: its live state (scheduler, metrics)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.base_url}/v1"


@asynccontextmanager
async def start_sim(
    options: SimOptions | None = None, model: str = "sim", host: str = "127.0.0.1", port: int = 0,
    adapters: tuple[str, ...] = (), role: str | None = None,
) -> AsyncIterator[RunningSim]:
    """Serve a sim on this event loop for the duration of the block (port 0: a free port); `adapters`
    are LoRA adapter names it serves too, `role` a disaggregated role (prefill or decode)."""
    app: web.Application = create_sim_app(options or SimOptions(), model, adapters, role)
    runner = make_runner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        yield RunningSim(host, runner.addresses[0][1], model, app[SIM_ENGINE])
    finally:
        await runner.cleanup()


class SimProcess:
    """A sim in a child process on a free port; stopped (SIGTERM, then SIGKILL) on exit."""

    def __init__(
        self,
        options: SimOptions | None = None,
        model: str = "sim",
        host: str = "127.0.0.1",
        cpus: Sequence[int] | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.options = options or SimOptions()
        self.model = model
        self.host = host
        self.cpus = list(cpus) if cpus is not None else None
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen[str] | None = None
        self.sim: RunningSim | None = None
        self._stderr: list[str] = []

    def start(self) -> RunningSim:
        argv = [sys.executable, "-m", "flotilla.sim", "--host", self.host, "--port", "0", "--model", self.model,
                *sim_args(self.options)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if self.cpus is not None:
            # Pinned from here rather than with preexec_fn (unsafe when the caller has threads);
            # the child has not started serving yet.
            os.sched_setaffinity(self.proc.pid, self.cpus)
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        port = self._read_port()
        self.sim = RunningSim(self.host, port, self.model)
        self._wait_healthy()
        return self.sim

    def _drain_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)

    def _read_port(self) -> int:
        assert self.proc is not None and self.proc.stdout is not None
        found: list[int] = []

        def read() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                match = _READY_LINE.search(line)
                if match:
                    found.append(int(match["port"]))
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(self.startup_timeout)
        if not found:
            self.stop()
            raise RuntimeError(f"sim did not start within {self.startup_timeout}s: {''.join(self._stderr)[-2000:]}")
        return found[0]

    def _wait_healthy(self) -> None:
        assert self.sim is not None
        deadline = time.monotonic() + self.startup_timeout
        while True:
            try:
                with urllib.request.urlopen(self.sim.base_url + "/health", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"sim on {self.sim.base_url} never became healthy")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)

    def __enter__(self) -> RunningSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> RunningSim:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)
