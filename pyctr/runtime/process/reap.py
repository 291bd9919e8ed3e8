"""Reaping a child and its exit status as Docker reports it: one implementation for every waiter.

runtime/monitor.py (a stdlib-only script that must not import pyctr) keeps a copy of `exit_code`;
tests/unit/test_process_core.py proves the two agree on every wait status.
"""

from __future__ import annotations

import contextlib
import os
import signal

EXIT_UNKNOWN = 255  # Docker's exit code when the status cannot be known (the process was not our child)


def exit_code(status: int) -> int:
    """Docker's exit code for a wait status: the process's exit code, or 128 + N when signal N killed it."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def reap(pid: int) -> int | None:
    """Block until our child `pid` exits; its wait status, or None when it is not (or no longer) our child."""
    while True:
        try:
            return os.waitpid(pid, 0)[1]
        except InterruptedError:
            continue
        except ChildProcessError:
            return None


def wait_exit_code(pid: int) -> int:
    """Block until our child `pid` exits; Docker's exit code for it (EXIT_UNKNOWN if it was not our child)."""
    status = reap(pid)
    return EXIT_UNKNOWN if status is None else exit_code(status)


def kill_and_reap(pid: int) -> None:
    """SIGKILL our child and reap it (a start that failed half-way)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    reap(pid)
