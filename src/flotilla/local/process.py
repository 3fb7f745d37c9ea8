"""Start a child in its own process group, logging to a file; stop the whole group, TERM then KILL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


def spawn_in_own_group(
    argv: Sequence[str],
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start `argv` in a new session (so its own process group, out of reach of the terminal's Ctrl-C).

    The child is wrapped by flotilla.local.deathsig, so it is killed if this process dies, and its
    output is appended to `log_path`. Call from a thread that lives as long as the child should:
    the kernel ties the death signal to the thread that forked.
    """
    guarded = [sys.executable, "-m", "flotilla.local.deathsig", str(os.getpid()), "--", *argv]
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            guarded,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=None if env is None else dict(env),
            cwd=cwd,
        )


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else (cannot happen for our own children)
        return True
    return True


def signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _gone(proc: subprocess.Popen[bytes]) -> bool:
    proc.poll()  # reap the leader, else it lingers as a zombie that still counts as alive
    return proc.returncode is not None and not group_alive(proc.pid)


async def stop_group(proc: subprocess.Popen[bytes], grace_s: float, poll_s: float = 0.05) -> bool:
    """SIGTERM the child's group, SIGKILL it after `grace_s`; True if it ended within the grace."""
    if _gone(proc):
        return True
    signal_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if _gone(proc):
            return True
        await asyncio.sleep(poll_s)
    signal_group(proc.pid, signal.SIGKILL)
    kill_deadline = time.monotonic() + 10.0  # a process stuck in the kernel cannot be waited on forever
    while not _gone(proc) and time.monotonic() < kill_deadline:
        await asyncio.sleep(poll_s)
    return False


def kill_leftovers(proc: subprocess.Popen[bytes]) -> None:
    """After the group leader exited on its own, kill what it left running in its group."""
    proc.poll()
    if group_alive(proc.pid):
        signal_group(proc.pid, signal.SIGKILL)
