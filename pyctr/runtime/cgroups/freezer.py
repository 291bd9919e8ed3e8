"""Stopping every process of a cgroup at once: freeze, signal, thaw (or v2 cgroup.kill).

Killing processes one by one races with a fork bomb: new children appear between
reading cgroup.procs and sending signals. A frozen cgroup cannot fork, so
freeze -> signal all -> thaw kills them all in one pass. v2 kernels >= 5.14 have
cgroup.kill, which does exactly that in the kernel.
"""

from __future__ import annotations

import time
from pathlib import Path

from pyctr.runtime.cgroups.files import read_keyed, read_text, write_value

FREEZE_TIMEOUT = 2.0


def freeze_v1(directory: Path, timeout: float = FREEZE_TIMEOUT) -> bool:
    """True once freezer.state reads FROZEN (FREEZING means tasks are still being stopped)."""
    return _set_and_wait(directory, "freezer.state", "FROZEN", lambda: (read_text(directory / "freezer.state") or "")
                         .strip() == "FROZEN", timeout)


def thaw_v1(directory: Path) -> None:
    if (directory / "freezer.state").exists():
        write_value(directory, "freezer.state", "THAWED")


def freeze_v2(directory: Path, timeout: float = FREEZE_TIMEOUT) -> bool:
    return _set_and_wait(directory, "cgroup.freeze", "1",
                         lambda: read_keyed(directory / "cgroup.events").get("frozen") == 1, timeout)


def thaw_v2(directory: Path) -> None:
    if (directory / "cgroup.freeze").exists():
        write_value(directory, "cgroup.freeze", "0")


def _set_and_wait(directory: Path, name: str, value: str, done, timeout: float) -> bool:
    if not (directory / name).exists():
        return False
    write_value(directory, name, value)
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def kill_v2(directory: Path) -> bool:
    """cgroup.kill (Linux 5.14+): SIGKILL to every process, atomically. False if unsupported."""
    if not (directory / "cgroup.kill").exists():
        return False
    write_value(directory, "cgroup.kill", "1")
    return True

