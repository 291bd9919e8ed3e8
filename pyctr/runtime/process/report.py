"""The report pipe between a container process and the one that started it: encoded here, decoded here.

One protocol for every way a process comes to be in a container: C of a new container (runtime/init.py,
launched by process.launcher) and G of an exec (runtime/exec.py). The pipe is CLOEXEC on the child's side,
so a successful exec closes it empty. Before that the child may write:

  READY ("R"): a new container's C is in its namespaces (the launcher then runs its hooks);
  FAILED ("E") + {"kind": <PyctrError class name>, "message": ...}: the child failed and exits;
  FAILED + {"errno": N}: the exec shim's execve of the command failed (runtime/execshim.py).

The launcher answers a new container on the go pipe: IN_CGROUP ("C"), then GO ("G").
"""

from __future__ import annotations

import contextlib
import json
import os

from pyctr.errors import CommandCannotRun, CommandNotFound, PyctrError, RuntimeFailure

READY = b"R"
IN_CGROUP = b"C"
GO = b"G"
FAILED = b"E"
_ERRORS: dict[str, type[PyctrError]] = {
    "CommandNotFound": CommandNotFound,
    "CommandCannotRun": CommandCannotRun,
    "RuntimeFailure": RuntimeFailure,
}
_moved_to: list[int] = []  # where this process's report pipe sits now (it moves late: sequence.close_other_fds)


# ------------------------------------------------------------------------------------------ the child's side


def encode_failure(kind: str, message: str) -> bytes:
    return FAILED + json.dumps({"kind": kind, "message": message}).encode()


def report_moved(fd: int) -> None:
    """The child moved its report pipe to `fd`: later failures are written there."""
    _moved_to.append(fd)


def send_failure(fd: int, kind: str, message: str) -> None:
    """Tell the launcher why we fail (best effort: a launcher that went away learns it from our exit)."""
    with contextlib.suppress(OSError):
        os.write(_moved_to[-1] if _moved_to else fd, encode_failure(kind, message))


def report_exception(fd: int, error: BaseException, during: str) -> int:
    """Report what ended the child's set-up; the exit code the child then has (Docker's for a PyctrError).

    `during` names the step for an unexpected exception ("container init", "exec setup", ...)."""
    if isinstance(error, PyctrError):
        send_failure(fd, type(error).__name__, error.message)
        return error.exit_code
    if isinstance(error, OSError):
        send_failure(fd, "RuntimeFailure", f"{error.strerror or error}" + (f": {error.filename}"
                                                                          if error.filename else ""))
    else:
        send_failure(fd, "RuntimeFailure", f"{during}: {type(error).__name__}: {error}")
    return 125


# ------------------------------------------------------------------------------------------ the launcher's side


def read_to_end(fd: int) -> bytes:
    """Everything the child writes until its end closes (its exec, or its exit)."""
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def decode_failure(message: bytes, command: str = "", who: str = "container init") -> PyctrError | None:
    """None for an empty report (the command was exec'd); else the error the child reported, the exec shim's
    errno as the error execve of `command` means, or that `who` died without a word."""
    if not message:
        return None
    report = None
    if message.startswith(FAILED):
        with contextlib.suppress(ValueError):
            report = json.loads(message[1:])
    if not isinstance(report, dict):
        return RuntimeFailure(f"{who} exited before exec without reporting why")
    from pyctr.runtime.execshim import shim_failure

    failure = shim_failure(report, command)
    if failure is not None:
        return failure
    error = _ERRORS.get(report.get("kind"), RuntimeFailure)
    return error(str(report.get("message") or f"{who} failed"))
