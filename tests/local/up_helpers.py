"""Helpers for the `flotilla up` tests: /proc inspection, polling, running `flotilla up`."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def pid_running(pid: int) -> bool:
    """True if `pid` exists and is not a zombie (a zombie has exited; only its reaping is pending)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def parent_map() -> dict[int, int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry.name)] = int(fields[1])
    return parents


def descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, ppid in parent_map().items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return {p for p in found if pid_running(p)}


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def read_state(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((run_dir / "state.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def state_pids(state: dict[str, Any]) -> set[int]:
    processes = [state["gateway"], *state["engines"]]
    return {p["pid"] for p in processes if p["pid"]}


class UpProcess:
    """`flotilla up` running as a subprocess, with its run folder and output file."""

    def __init__(self, spec: Path, run_dir: Path, port: int, cwd: Path, extra: list[str] | None = None) -> None:
        self.run_dir = run_dir
        self.output = run_dir.parent / f"{run_dir.name}.out"
        argv = [sys.executable, "-m", "flotilla.cli", "up", str(spec), "--run-dir", str(run_dir), "--port", str(port)]
        with open(self.output, "wb") as out:
            self.proc = subprocess.Popen(argv + (extra or []), cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        self.seen_pids: set[int] = set()

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def state(self) -> dict[str, Any] | None:
        state = read_state(self.run_dir)
        if state:
            self.seen_pids |= state_pids(state)
        return state

    def wait_state(self, predicate: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            if self.proc.poll() is not None:
                raise AssertionError(f"flotilla up exited ({self.proc.returncode}) waiting for {what}:\n{self.text()}")
            state = self.state()
            return state if state and predicate(state) else None

        return wait_until(check, timeout, what)

    def wait_ready(self, timeout: float = 300.0) -> dict[str, Any]:
        return self.wait_state(lambda s: s["status"] == "ready", timeout, "status ready")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 90.0) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def kill_everything(self) -> None:
        """Test clean-up: whatever happened, leave nothing running."""
        self.state()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        for pid in self.seen_pids:
            if pid_running(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
