"""Process groups, TERM-then-KILL, and children dying with their parent: with real processes."""

import asyncio
import signal
import subprocess
import sys
import textwrap

from up_helpers import pid_running, wait_until

from flotilla.local.process import spawn_in_own_group, stop_group

PY = sys.executable


def wait_for_line(log, prefix: str, proc=None, timeout: float = 30.0) -> str:
    def line():
        if proc is not None and proc.poll() is not None and prefix not in log.read_text():
            raise AssertionError(f"exited with {proc.returncode}: {log.read_text()}")
        for text in log.read_text().splitlines():
            if text.startswith(prefix):
                return text
        return None

    return wait_until(line, timeout, f"{prefix!r} in {log}")


def test_child_gets_its_own_process_group_and_logs_to_its_file(tmp_path):
    log = tmp_path / "child.log"
    code = "import os; print('ids', os.getpid(), os.getpgid(0), os.getsid(0), flush=True)"
    proc = spawn_in_own_group([PY, "-c", code], log)
    assert proc.wait(30) == 0
    _, pid, pgid, sid = log.read_text().split()
    assert int(pid) == proc.pid  # the death-signal wrapper execs: the pid is the command's own
    assert int(pgid) == proc.pid and int(sid) == proc.pid


def test_log_is_appended_not_truncated(tmp_path):
    log = tmp_path / "child.log"
    for word in ("first", "second"):
        spawn_in_own_group([PY, "-c", f"print('{word}')"], log).wait(30)
    assert log.read_text().split() == ["first", "second"]


def test_stop_group_ends_a_cooperative_child_within_the_grace(tmp_path):
    log = tmp_path / "child.log"
    proc = spawn_in_own_group([PY, "-c", "import time; print('up', flush=True); time.sleep(600)"], log)
    wait_for_line(log, "up", proc)
    assert asyncio.run(stop_group(proc, grace_s=20.0)) is True
    assert proc.returncode == -signal.SIGTERM


def test_stop_group_kills_a_child_that_ignores_sigterm(tmp_path):
    log = tmp_path / "child.log"
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(600)"
    proc = spawn_in_own_group([PY, "-c", code], log)
    wait_for_line(log, "up", proc)
    assert asyncio.run(stop_group(proc, grace_s=0.5)) is False
    assert proc.returncode == -signal.SIGKILL


def test_stop_group_also_ends_grandchildren(tmp_path):
    log = tmp_path / "child.log"
    code = textwrap.dedent(
        """
        import subprocess, time
        grandchild = subprocess.Popen(["sleep", "600"])
        print("grandchild", grandchild.pid, flush=True)
        time.sleep(600)
        """
    )
    proc = spawn_in_own_group([PY, "-c", code], log)
    grandchild = int(wait_for_line(log, "grandchild", proc).split()[1])
    assert pid_running(grandchild)
    asyncio.run(stop_group(proc, grace_s=20.0))
    wait_until(lambda: not pid_running(grandchild), 30, "the grandchild to end")


def test_children_die_when_their_parent_is_sigkilled(tmp_path):
    """`flotilla up` killed with SIGKILL cannot clean up: the kernel's parent-death signal does."""
    log = tmp_path / "parent.log"
    parent_code = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from flotilla.local.process import spawn_in_own_group
        child = spawn_in_own_group(["sleep", "600"], Path({str(tmp_path / 'child.log')!r}))
        print("child", child.pid, flush=True)
        time.sleep(600)
        """
    )
    with open(log, "wb") as out:
        parent = subprocess.Popen([PY, "-c", parent_code], stdout=out, stderr=subprocess.STDOUT)
    try:
        child = int(wait_for_line(log, "child", parent).split()[1])
        wait_until(lambda: pid_running(child), 30, "the child to run")
        parent.kill()
        parent.wait(30)
        wait_until(lambda: not pid_running(child), 30, "the orphaned child to be killed")
    finally:
        parent.kill()


def test_death_signal_wrapper_refuses_to_run_when_its_parent_is_already_gone():
    # An expected parent pid that is not ours looks like a parent that died before prctl.
    result = subprocess.run([PY, "-m", "flotilla.local.deathsig", "1", "--", "echo", "ran"], capture_output=True)
    assert result.returncode == 1 and b"ran" not in result.stdout


def test_death_signal_wrapper_explains_its_usage():
    result = subprocess.run([PY, "-m", "flotilla.local.deathsig", "123"], capture_output=True, text=True)
    assert result.returncode != 0 and "usage:" in result.stderr
