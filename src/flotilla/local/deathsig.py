"""Run a command that dies with `flotilla up`: `python -m flotilla.local.deathsig PARENT_PID -- ARGV...`.

Linux's PR_SET_PDEATHSIG makes the kernel SIGKILL this process when its parent dies, even when
the parent is SIGKILLed and cannot clean up. It survives exec, so we set it here and exec the real
command: safer than a preexec_fn in a parent that has threads.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def arm_parent_death_signal(expected_parent: int) -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != expected_parent:  # the parent died before the signal was armed
        os._exit(1)


def main(args: list[str]) -> None:
    if len(args) < 3 or args[1] != "--":
        sys.exit("usage: python -m flotilla.local.deathsig PARENT_PID -- COMMAND [ARGS...]")
    arm_parent_death_signal(int(args[0]))
    command = args[2:]
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
