"""`run` in the foreground: the CLI itself is M; it streams C's output (and into the log), forwards the
signals it gets, then records the exit and tears everything down (`finish`)."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

from pyctr.runtime.lifecycle.launch import Launch, check_startable, pipe_stdio, reap_quietly, terminal_stdio
from pyctr.runtime.lifecycle.teardown import finish_reporting
from pyctr.runtime.state import ContainerRecord

if TYPE_CHECKING:
    from pyctr.config import Config
    from pyctr.runtime.spec import ContainerSpec


def run_foreground(config: Config, record: ContainerRecord, interactive: bool, keep_log: bool = True,
                   streams: tuple[bool, bool] = (True, True)) -> int:
    """Run C with this process as its parent; stream its output; return its exit code (Docker's `run`).

    `streams`: whether C's stdout and stderr reach this terminal (run's -a); what is not attached still goes to
    the log. (--sig-proxy=false runs detached with an attached terminal instead: commands/container.py.)"""
    check_startable(record)
    launcher = Launch(config, record)
    from pyctr import events

    events.record_container(config.root, record, "attach")  # docker run attaches before it starts
    keep_log = keep_log and _log_config(record).writes  # --log-driver none: no log at all
    if launcher.spec.process.terminal:
        return _run_foreground_tty(config, launcher, interactive, keep_log)
    stdin = 0 if interactive else os.open(os.devnull, os.O_RDONLY)
    try:
        if not keep_log:  # --rm: the log would be deleted at exit, so give C our stdout/stderr directly
            with _unattached_to_devnull(streams) as (out, err):
                pid, _ = launcher.launch(pipe_stdio(stdin, out, err))
            return _supervise(config, record.id, pid, lambda: _wait_forwarding_signals(pid))
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        pid, _ = launcher.launch(pipe_stdio(stdin, out_w, err_w))
        os.close(out_w)
        os.close(err_w)
        copies = (1 if streams[0] else -1, 2 if streams[1] else -1)
        return _supervise(config, record.id, pid,
                          lambda: _relay_then_wait(launcher, pid, out_r, err_r, copies))
    finally:
        if stdin != 0:
            os.close(stdin)


@contextlib.contextmanager
def _unattached_to_devnull(streams: tuple[bool, bool]):
    """(stdout, stderr) for C without a log: ours where attached, /dev/null where not."""
    null = os.open(os.devnull, os.O_WRONLY) if not all(streams) else -1
    try:
        yield (1 if streams[0] else null, 2 if streams[1] else null)
    finally:
        if null >= 0:
            os.close(null)


def _log_config(record: ContainerRecord):
    from pyctr.runtime.lifecycle.misc_flags import host_log_config

    return host_log_config(record.config.get("HostConfig") or {})


def _supervise(config: Config, container_id: str, pid: int, wait: Callable[[], int]) -> int:
    """Wait for C, then record its exit and clean up (--rm). If the CLI itself fails while C runs, C is killed
    and the container is still recorded and cleaned up before the error propagates: never a half-removed --rm."""
    try:
        code = wait()
    except BaseException:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
        reap_quietly(pid)
        finish_reporting(config, container_id, 128 + signal.SIGKILL)
        raise
    finish_reporting(config, container_id, code)
    return code


def _relay_then_wait(launcher: Launch, pid: int, out_r: int, err_r: int, copies: tuple[int, int] = (1, 2)) -> int:
    from pyctr.runtime.monitor import relay
    from pyctr.runtime.process.reap import wait_exit_code
    from pyctr.runtime.process.signals import SignalForwarder

    log = _open_log(launcher.spec, launcher.record)
    try:
        with SignalForwarder(pid):  # Docker's sig-proxy: what the CLI receives, the container receives
            relay([(out_r, "stdout", copies[0]), (err_r, "stderr", copies[1])], log)
            return wait_exit_code(pid)
    finally:
        log.close()


def _open_log(spec: ContainerSpec, record: ContainerRecord):
    """The container's json-file log, appended to (a restarted container keeps its earlier output, as Docker),
    rotated as its --log-opt max-size/max-file say."""
    from pyctr.runtime.monitor import RotatingLog

    config = _log_config(record)
    return RotatingLog(str(spec.bundle / f"{spec.id}-json.log"), config.max_size, config.max_file)


def _wait_forwarding_signals(pid: int) -> int:
    from pyctr.runtime.process.reap import wait_exit_code
    from pyctr.runtime.process.signals import SignalForwarder

    with SignalForwarder(pid):  # Docker's sig-proxy: what the CLI receives, the container receives
        return wait_exit_code(pid)


def _run_foreground_tty(config: Config, launcher: Launch, interactive: bool, keep_log: bool = True) -> int:
    """-t: C gets a pty; the runtime core's tty relay copies between it and our terminal, and into the log as
    Docker keeps an attached tty's output (not with --rm, whose log goes at exit)."""
    from pyctr.runtime.tty import open_pty, run_terminal_session

    master, slave = open_pty()
    try:
        pid, _ = launcher.launch(terminal_stdio(slave, master))
    finally:
        os.close(slave)
    log = _open_log(launcher.spec, launcher.record) if keep_log else None
    try:
        return _supervise(config, launcher.spec.id, pid,
                          lambda: run_terminal_session(master, pid, forward_stdin=interactive, log_fd=log))
    finally:
        if log is not None:
            log.close()
