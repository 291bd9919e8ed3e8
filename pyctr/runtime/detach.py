"""Run a function in a detached process: its own session, no parent to reap it, nothing inherited.

For the processes that outlive the command that starts them without being a container's monitor: the restart
sleeper (runtime/restart.py) and the health checker (runtime/health.py). Double fork: the caller gets the
grandchild's pid back over a pipe and reaps the intermediate at once, so no zombie is left to anyone.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable


def spawn_detached(function: Callable[[], object]) -> int:
    """Start `function` in a detached grandchild; return its pid once it exists."""
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the forked child
        code = 0
        try:
            os.close(read_end)
            os.setsid()
            grandchild = os.fork()
            if grandchild == 0:
                _run_detached(function, write_end)
            os.write(write_end, str(grandchild).encode())
        except BaseException:  # noqa: BLE001 - must never unwind into the caller's stack
            code = 1
        os._exit(code)
    os.close(write_end)
    with open(read_end, "rb") as f:
        text = f.read().decode()
    with contextlib.suppress(ChildProcessError):
        os.waitpid(child, 0)
    if not text.isdigit():
        raise OSError("could not start a detached process")
    return int(text)


def _run_detached(function: Callable[[], object], report: int) -> None:  # pragma: no cover - in the grandchild
    code = 0
    try:
        os.close(report)
        _sanitise_fds()
        function()
    except BaseException:  # noqa: BLE001 - nobody to report to; leave quietly
        code = 1
    os._exit(code)


def _sanitise_fds() -> None:
    """Stdio to /dev/null, every other fd given up: the caller's pipes and terminal are not held, and no object
    inherited from a multithreaded caller can close this process's own fds later (process/inherited.py)."""
    from pyctr.runtime.process.inherited import disown_inherited_fds

    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    if devnull > 2:
        os.close(devnull)
    disown_inherited_fds()
    os.chdir("/")
    os.umask(0o022)  # the shim's cached memfd went with the inherited fds: execshim.sealed_shim notices, re-seals
