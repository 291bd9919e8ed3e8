"""Is a process still the one we started, and is it running: one answer for the whole runtime.

A pid names a process only together with its start time (field 22 of /proc/<pid>/stat, clock ticks since
boot): a reused pid has a later start time. Two questions, deliberately different about zombies:

- `start_time` (identity): a zombie is still the process we started, so recording or checking *who* it is
  counts it (a container whose `true` exited before the launcher read its start time is still named by it);
- `running_start_time` / `is_running` (liveness): a zombie has exited; only its exit status is left for its
  parent to collect. Docker reports a container exited once its process exits, so every "is it running"
  decision (state reconcile, exec, kill, cp, top) treats a zombie as dead.

`open_pidfd` gives a pidfd only for the very process (pid, start time): signals sent through it can never
reach a process that reused the pid.
"""

from __future__ import annotations

import contextlib
import os

ZOMBIE_STATES = (b"Z", b"X")


def _stat_fields(pid: int) -> list[bytes] | None:
    """/proc/<pid>/stat after the command name (field 3 onwards), None if there is no such process."""
    if pid <= 0:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rfind(b")") + 2:].split()
    return rest or None


def start_time(pid: int) -> int | None:
    """The start time of process `pid`, a zombie included (identity); None when there is no such process."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def running_start_time(pid: int) -> int | None:
    """The start time of process `pid` if it is running (not a zombie); None otherwise."""
    fields = _stat_fields(pid)
    if not fields or fields[0] in ZOMBIE_STATES:
        return None
    return int(fields[19])


def is_running(pid: int, started: int) -> bool:
    """Whether the process (pid, start time) still runs."""
    return pid > 0 and running_start_time(pid) == started


def open_pidfd(pid: int, started: int) -> int | None:
    """A pidfd of the running process (pid, start time), or None when it is gone (or another owns the pid).

    The pidfd is opened first and the start time checked after: once open, it refers to that process only."""
    try:
        pidfd = os.pidfd_open(pid)
    except (ProcessLookupError, ValueError):
        return None
    if running_start_time(pid) != started:
        with contextlib.suppress(OSError):
            os.close(pidfd)
        return None
    return pidfd
