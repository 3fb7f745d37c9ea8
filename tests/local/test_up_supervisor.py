"""SupervisedProcess with real short-lived programs: health phases, restarts with backoff, ordered stop."""

import asyncio
import sys
import textwrap
from pathlib import Path

from up_helpers import pid_running

from flotilla.local.backoff import Backoff
from flotilla.local.ports import free_port
from flotilla.local.supervisor import Phase, ProcessSpec, SupervisedProcess, Timing, stop_in_order

PY = sys.executable
FAST = Timing(poll_s=0.05, healthy_poll_s=0.05, probe_timeout_s=2.0)
QUICK_BACKOFF = dict(initial_s=0.05, cap_s=0.2)

# Answers 503 until READY_FILE exists, then 200: a model that loads until we say so.
LOADER = textwrap.dedent(
    """
    import http.server, os, sys
    port, ready_file = int(sys.argv[1]), sys.argv[2]
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if os.path.exists(ready_file) else 503)
            self.end_headers()
        def log_message(self, *args):
            pass
    http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
    """
)


def spec(tmp: Path, name: str, argv: list[str], port: int = 0, health: str | None = None) -> ProcessSpec:
    return ProcessSpec(
        name=name, role="engine", argv=argv, log_path=tmp / f"{name}.log", port=port,
        url=f"http://127.0.0.1:{port}", health_url=health,
    )


async def until(predicate, timeout: float = 60.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_phases_follow_the_health_endpoint(tmp_path):
    port = free_port()
    ready = tmp_path / "ready"
    url = f"http://127.0.0.1:{port}/health"
    phases: list[Phase] = []
    process = SupervisedProcess(
        spec(tmp_path, "loader", [PY, "-c", LOADER, str(port), str(ready)], port, url),
        timing=FAST, on_change=lambda p: phases.append(p.phase),
    )
    process.start()
    try:
        await until(lambda: process.phase == Phase.LOADING, what="loading (port open, 503)")
        await asyncio.sleep(0.3)
        assert process.phase == Phase.LOADING  # 503 is not healthy, however long it lasts
        ready.touch()
        await until(lambda: process.phase == Phase.HEALTHY, what="healthy")
        assert process.ready_after_s is not None and process.ready_after_s > 0
    finally:
        await process.stop(grace_s=10)
    assert phases[0] == Phase.STARTING and Phase.LOADING in phases
    assert phases[-1] == Phase.STOPPED and process.pid is None


async def test_a_crashing_process_is_restarted_with_growing_delays(tmp_path):
    events: list[str] = []
    pids: set[int] = set()
    process = SupervisedProcess(
        spec(tmp_path, "crasher", [PY, "-c", "import time; time.sleep(0.1); raise SystemExit(3)"]),
        backoff=Backoff(**QUICK_BACKOFF), timing=FAST,
        on_change=lambda p: p.pid and pids.add(p.pid), on_event=events.append,
    )
    process.start()
    try:
        await until(lambda: process.restarts >= 3, what="three restarts")
    finally:
        await process.stop(grace_s=5)
    assert process.last_exit_code == 3
    assert len(pids) >= 3  # a new process each time
    delays = [float(e.split("restarting in ")[1].split("s")[0]) for e in events if "restarting in" in e]
    assert delays[:3] == [0.05, 0.1, 0.2]
    assert all("exited with code 3" in e for e in events if "restarting in" in e)
    assert process.log_tail().count("==== flotilla: restart") >= 2


async def test_a_killed_server_comes_back_healthy_on_the_same_port(tmp_path):
    port = free_port()
    ready = tmp_path / "ready"
    ready.touch()
    url = f"http://127.0.0.1:{port}/"
    process = SupervisedProcess(
        spec(tmp_path, "server", [PY, "-c", LOADER, str(port), str(ready)], port, url),
        backoff=Backoff(**QUICK_BACKOFF), timing=FAST,
    )
    process.start()
    try:
        await until(lambda: process.phase == Phase.HEALTHY, what="first healthy")
        first = process.pid
        assert first is not None
        import os, signal
        os.kill(first, signal.SIGKILL)
        await until(lambda: process.restarts == 1, what="restart")
        await until(lambda: process.phase == Phase.HEALTHY and process.pid not in (None, first), what="healthy again")
        assert process.last_exit_code == -signal.SIGKILL
        assert not pid_running(first)
    finally:
        await process.stop(grace_s=10)


async def test_exits_before_health_are_counted_as_failed_starts(tmp_path):
    port = free_port()
    process = SupervisedProcess(
        spec(tmp_path, "broken", [PY, "-c", "raise SystemExit('bad model file')"], port, f"http://127.0.0.1:{port}/"),
        backoff=Backoff(**QUICK_BACKOFF), timing=FAST,
    )
    process.start()
    try:
        await until(lambda: process.failed_starts >= 2, what="two failed starts")
    finally:
        await process.stop(grace_s=5)
    assert "bad model file" in process.log_tail()


async def test_stop_during_backoff_starts_nothing_more(tmp_path):
    process = SupervisedProcess(
        spec(tmp_path, "crasher", [PY, "-c", "raise SystemExit(1)"]),
        backoff=Backoff(initial_s=30.0, cap_s=30.0), timing=FAST,
    )
    process.start()
    await until(lambda: process.phase == Phase.RESTARTING, what="backoff")
    await asyncio.wait_for(process.stop(grace_s=5), timeout=20)  # does not wait out the 30 s delay
    assert process.phase == Phase.STOPPED and process.restarts == 1 and not process.running


async def test_stages_stop_in_order(tmp_path):
    """The gateway has fully exited before any engine is asked to stop."""
    journal = tmp_path / "journal"
    program = textwrap.dedent(
        """
        import signal, sys, time
        name, journal = sys.argv[1], sys.argv[2]
        def on_term(*_):
            with open(journal, "a") as f:
                f.write(f"{name} term\\n")
            time.sleep(0.3)  # a slow, clean shutdown
            with open(journal, "a") as f:
                f.write(f"{name} exit\\n")
            sys.exit(0)
        signal.signal(signal.SIGTERM, on_term)
        print("up", flush=True)
        while True:
            time.sleep(1)
        """
    )
    processes = {
        name: SupervisedProcess(spec(tmp_path, name, [PY, "-c", program, name, str(journal)]), timing=FAST)
        for name in ("gateway", "engine-a", "engine-b")
    }
    for p in processes.values():
        p.start()
    await until(lambda: all("up" in p.log_tail() for p in processes.values()), what="all up")
    await stop_in_order([[processes["gateway"]], [processes["engine-a"], processes["engine-b"]]], grace_s=10)
    lines = journal.read_text().splitlines()
    assert lines[:2] == ["gateway term", "gateway exit"]
    assert sorted(lines[2:]) == ["engine-a exit", "engine-a term", "engine-b exit", "engine-b term"]
    assert all(p.phase == Phase.STOPPED for p in processes.values())
