"""`start` in the background: the CLI forks, the child calls setsid and forks M, which launches C (M
stays C's parent), reports "started <pid>" or the start error to the CLI over a pipe, then execs the
stdlib-only monitor (runtime/monitor.py), which logs C's output, reaps it and runs `pyctr _cleanup`."""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

from pyctr.errors import PyctrError, RuntimeFailure
from pyctr.runtime.lifecycle.launch import Launch, check_startable, pipe_stdio, reap_quietly, terminal_stdio
from pyctr.runtime.lifecycle.monitor_program import cleanup_command, monitor_program
from pyctr.runtime.state import ContainerRecord

if TYPE_CHECKING:
    from pyctr.config import Config
    from pyctr.runtime.spec import ContainerSpec


def start_detached(config: Config, record: ContainerRecord, wait_for_attach: bool = False) -> int:
    """Start the container in the background and return C's pid once it runs (or raise its start error).

    `wait_for_attach` (an attach made before start, as `docker run` does): the monitor relays C's output
    only once a client is on its attach socket, so the first output is not missed."""
    check_startable(record)
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the forked child
        _detach_and_launch(config, record, read_end, write_end, wait_for_attach)
    os.close(write_end)
    with open(read_end, "rb") as f:
        report = f.read().decode(errors="replace")
    reap_quietly(child)
    return _parse_report(report)


def _detach_and_launch(config: Config, record: ContainerRecord, read_end: int, report: int,
                       wait_for_attach: bool = False) -> None:
    """In the child: become M (new session, grandchild of the CLI) and never return."""
    code = 0
    try:
        os.close(read_end)
        os.setsid()
        if os.fork() != 0:
            os._exit(0)
        _sanitise_fds(keep=report)
        _become_monitor(config, record, report, wait_for_attach)
    except PyctrError as e:
        _send(report, f"error {e.exit_code} {e.message}")
        code = e.exit_code
    except BaseException as e:  # noqa: BLE001 - must never unwind into the CLI's stack
        _send(report, f"error 125 {type(e).__name__}: {e}")
        code = 125
    os._exit(code)


def _sanitise_fds(keep: int) -> None:
    """Stdio to /dev/null, every other fd given up: nothing of the CLI's (its pipes, a tty) stays held, and no
    object inherited from a multithreaded caller (the API daemon) can close M's own fds later
    (process/inherited.py)."""
    from pyctr.runtime.process.inherited import disown_inherited_fds

    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    if devnull > 2:
        os.close(devnull)
    disown_inherited_fds(keep=(keep,))
    os.chdir("/")
    os.umask(0o022)


def _become_monitor(config: Config, record: ContainerRecord, report: int, wait_for_attach: bool = False) -> None:
    launcher = Launch(config, record)
    tty = launcher.spec.process.terminal
    stdin_writer = -1  # what the monitor writes an attached client's input to
    if tty:
        from pyctr.runtime.tty import open_pty

        master, slave = open_pty(size_from=None)
        out_r, stdio, close_after = master, terminal_stdio(slave, master), [slave]
        err_r = -1
        if launcher.spec.process.open_stdin:
            stdin_writer = master
    else:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        stdin, stdin_writer = _stdin_for_detached(launcher.spec)
        stdio, close_after = pipe_stdio(stdin, out_w, err_w), [stdin, out_w, err_w]
    pid, _ = launcher.launch(stdio)
    for fd in close_after:
        os.close(fd)
    _send(report, f"started {pid}")
    os.close(report)
    interpreter, program = monitor_program(config)
    stdin_once = bool((record.config.get("Config") or {}).get("StdinOnce"))
    flags = ("w" if wait_for_attach else "") + ("o" if stdin_once else "") or "-"
    from pyctr.runtime.lifecycle.misc_flags import host_log_config, monitor_log_argument

    log = monitor_log_argument(host_log_config(record.config.get("HostConfig") or {}))  # --log-driver/--log-opt
    argv = [interpreter, "-I", "-S", program, str(launcher.spec.bundle), str(pid), str(out_r),
            str(err_r), log, str(stdin_writer), flags, *cleanup_command(config, record.id)]
    for fd in (out_r, err_r):
        if fd >= 0:
            os.set_inheritable(fd, True)
    os.execv(interpreter, argv)


def _stdin_for_detached(spec: ContainerSpec) -> tuple[int, int]:
    """(C's stdin, its writer or -1): /dev/null, or with -i a pipe whose write end the monitor holds for the
    container's lifetime (Docker keeps stdin open for an attach; the monitor's attach socket feeds it)."""
    if spec.process.open_stdin:
        read_end, write_end = os.pipe()
        os.set_inheritable(write_end, True)
        return read_end, write_end
    return os.open(os.devnull, os.O_RDONLY), -1


def _send(fd: int, message: str) -> None:
    with contextlib.suppress(OSError):
        os.write(fd, (message.replace("\n", " ") + "\n").encode())


def _parse_report(report: str) -> int:
    """The CLI's side of the start handshake: C's pid, or M's error re-raised with its exit code."""
    line = report.strip().splitlines()[0] if report.strip() else ""
    word, _, rest = line.partition(" ")
    if word == "started":
        return int(rest)
    if word == "error":
        code, _, message = rest.partition(" ")
        raise PyctrError(message or "container failed to start", exit_code=int(code))
    raise RuntimeFailure("the container's monitor exited before reporting the start")
