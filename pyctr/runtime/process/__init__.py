"""The container process core, shared by `start` (runtime/lifecycle/ + init.py), `exec` (runtime/exec.py)
and the OCI runtime mode (pyctr/oci/):

  launcher.py  launching a new container's process C from M (`launch(spec, hooks, stdio)`), the M side;
  sequence.py  the steps every process takes inside a container up to its execve, for an init and a joiner;
  report.py    the report pipe: the child's failure encoded once, decoded once;
  reap.py      reaping a child and Docker's exit code for its wait status;
  liveness.py  is (pid, start time) still that process, is it running (zombies are not), a pidfd for it;
  signals.py   the forwarded signals (protocol.FORWARDED_SIGNALS) and the pidfd-based forwarder;
  console.py   the container's own pty, from its devpts;
  kernel.py    the seam for the privileged system calls (a recording fake in unit tests).
  inherited.py a forked child gives up the fds it inherited, and no object of its parent can close the child's.

Importing this package loads nothing (PEP 562): each name below loads from its submodule on first use, so
`state.py` (every `ps`) can use liveness without paying for the launcher.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (pyctr-runtime's cold start)
if TYPE_CHECKING:
    from pyctr.runtime.process.launcher import (
        REPORT_GRACE_SECONDS,
        Launched,
        LaunchHooks,
        Stdio,
        launch,
        prepare_bundle,
        process_start_time,
        reported_error,
        reported_failure,
        seccomp_program,
        wait_container,
    )

_HOMES = {name: "launcher" for name in (
    "REPORT_GRACE_SECONDS", "Launched", "LaunchHooks", "Stdio", "launch", "prepare_bundle", "process_start_time",
    "reported_error", "reported_failure", "seccomp_program", "wait_container")}

__all__ = [
    "REPORT_GRACE_SECONDS",
    "LaunchHooks",
    "Launched",
    "Stdio",
    "launch",
    "prepare_bundle",
    "process_start_time",
    "reported_error",
    "reported_failure",
    "seccomp_program",
    "wait_container",
]


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value
