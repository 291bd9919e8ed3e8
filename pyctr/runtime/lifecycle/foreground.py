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


def run_foreground(config: Config, record: ContainerRecord, interactive: bool, keep_log: bool = True) -> int:
    """Run C with this process as its parent; stream its output; return its exit code (Docker's `run`)."""
    check_startable(record)
    launcher = Launch(config, record)
    from pyctr import events

    events.record_container(config.root, record, "attach")  # docker run attaches before it starts
    if launcher.spec.process.terminal:
        return _run_foreground_tty(config, launcher, interactive, keep_log)
    stdin = 0 if interactive else os.open(os.devnull, os.O_RDONLY)
    try:
        if not keep_log:  # --rm: the log would be deleted at exit, so give C our stdout/stderr directly
            pid, _ = launcher.launch(pipe_stdio(stdin, 1, 2))
            return _supervise(config, record.id, pid, lambda: _wait_forwarding_signals(pid))
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        pid, _ = launcher.launch(pipe_stdio(stdin, out_w, err_w))
        os.close(out_w)
        os.close(err_w)
        return _supervise(config, record.id, pid, lambda: _relay_then_wait(launcher.spec, pid, out_r, err_r))
    finally:
        if stdin != 0:
            os.close(stdin)


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


def _relay_then_wait(spec: ContainerSpec, pid: int, out_r: int, err_r: int) -> int:
    from pyctr.runtime.monitor import relay
    from pyctr.runtime.process.reap import wait_exit_code
    from pyctr.runtime.process.signals import SignalForwarder

    log = _open_log(spec)
    try:
        with SignalForwarder(pid):  # Docker's sig-proxy: what the CLI receives, the container receives
            relay([(out_r, "stdout", 1), (err_r, "stderr", 2)], log)
            return wait_exit_code(pid)
    finally:
        os.close(log)


def _open_log(spec: ContainerSpec) -> int:
    """The container's json-file log, appended to (a restarted container keeps its earlier output, as Docker)."""
    return os.open(spec.bundle / f"{spec.id}-json.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)


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
    log = _open_log(launcher.spec) if keep_log else -1
    try:
        return _supervise(config, launcher.spec.id, pid,
                          lambda: run_terminal_session(master, pid, forward_stdin=interactive, log_fd=log))
    finally:
        if log >= 0:
            os.close(log)
