"""`-t`: a pseudo-terminal for the container, relayed to the user's terminal by M.

The container gets the pty slave as stdin/stdout/stderr and controlling
terminal (init.py does setsid + TIOCSCTTY) and as /dev/console. M puts the
user's terminal in raw mode, so ^C, ^Z and ^D travel as bytes and the pty's
line discipline turns them into signals for the container's foreground job,
exactly as in `docker run -it`; window size changes (SIGWINCH) are copied to
the pty.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import selectors
import signal
import struct
import termios
from collections.abc import Iterator

_WINSIZE = struct.Struct("HHHH")


def get_window_size(fd: int) -> tuple[int, int] | None:
    """(rows, columns) of the terminal on `fd`, or None when it is not a terminal."""
    try:
        rows, cols, _, _ = _WINSIZE.unpack(fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * _WINSIZE.size))
    except OSError:
        return None
    return rows, cols


def set_window_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, _WINSIZE.pack(rows, cols, 0, 0))


def copy_window_size(from_fd: int, to_fd: int) -> None:
    size = get_window_size(from_fd)
    if size and all(size):
        with contextlib.suppress(OSError):
            set_window_size(to_fd, *size)


def resize_terminal_of(pid: int, rows: int, cols: int) -> bool:
    """Set the window size of the terminal process `pid` has on its stdin/stdout/stderr (the API's resize of
    a container or exec whose pty master another process relays): TIOCSWINSZ on the slave resizes the pty
    and sends SIGWINCH to its foreground job, as on the master. False when none of them is a terminal."""
    import stat as stat_module

    for fd in (0, 1, 2):
        path = f"/proc/{pid}/fd/{fd}"
        try:
            if not stat_module.S_ISCHR(os.stat(path).st_mode):
                continue  # never open a FIFO, socket or file the process holds
            opened = os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            if os.isatty(opened):
                set_window_size(opened, rows, cols)
                return True
        except OSError:
            continue
        finally:
            os.close(opened)
    return False


def resize_container_terminal(record, rows: int, cols: int) -> bool:
    """`POST /containers/{id}/resize`: the pty of a running tty container (its monitor holds the master, its
    process the slave); checked to be the very process recorded at start, never a reused pid."""
    from pyctr.runtime.state import process_alive

    state = record.state
    return process_alive(state.pid, state.pid_start_time) and resize_terminal_of(state.pid, rows, cols)


def open_pty(size_from: int | None = 0) -> tuple[int, int]:
    """(master, slave), both CLOEXEC in M; the slave starts with the size of the terminal on `size_from`."""
    master, slave = os.openpty()
    for fd in (master, slave):
        os.set_inheritable(fd, False)
    if size_from is not None:
        copy_window_size(size_from, master)
    return master, slave


@contextlib.contextmanager
def raw_mode(fd: int) -> Iterator[None]:
    """Put the user's terminal in raw mode for the session, restoring it however the block ends."""
    if not os.isatty(fd):
        yield
        return
    import tty

    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd, termios.TCSANOW)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def relay(master: int, *, stdin_fd: int = 0, stdout_fd: int = 1, forward_stdin: bool = True,
          log_fd: int = -1) -> None:
    """Copy user input to the pty and pty output to the user until the container side closes (EIO on master).

    The caller has closed its copy of the slave, so EIO means every container
    process is gone (when PID 1 exits the kernel kills the rest of its namespace).
    With `log_fd`, the pty's output also goes to the json-file log as Docker keeps it (stream stdout, the
    terminal's CRs included: `a\r\n`).
    """
    previous = None
    if os.isatty(stdin_fd):
        with contextlib.suppress(ValueError):  # not the main thread: no SIGWINCH relay
            previous = signal.signal(signal.SIGWINCH, lambda *_: copy_window_size(stdin_fd, master))
    selector = selectors.DefaultSelector()
    selector.register(master, selectors.EVENT_READ)
    if forward_stdin:
        selector.register(stdin_fd, selectors.EVENT_READ)
    try:
        with raw_mode(stdin_fd) if forward_stdin else contextlib.nullcontext():
            _pump(selector, master, stdin_fd, stdout_fd, _LogWriter(log_fd))
    finally:
        selector.close()
        if previous is not None:
            signal.signal(signal.SIGWINCH, previous)


class _LogWriter:
    """The pty's output as json-file entries, cut into lines by the monitor's own code (one log format)."""

    def __init__(self, log_fd) -> None:
        self.log_fd = log_fd  # an fd, -1, or the monitor's RotatingLog (--log-opt max-size)
        self.pending = b""

    def write(self, data: bytes, final: bool = False) -> None:
        from pyctr.runtime.monitor import encode_entries, has_log, split_lines, write_log

        if not has_log(self.log_fd):
            return
        lines, self.pending = split_lines(self.pending, data, final=final)
        if lines:
            write_log(self.log_fd, encode_entries(lines, "stdout"))


def _pump(selector: selectors.BaseSelector, master: int, stdin_fd: int, stdout_fd: int, log: _LogWriter) -> None:
    try:
        _pump_until_closed(selector, master, stdin_fd, stdout_fd, log)
    finally:
        log.write(b"", final=True)


def _pump_until_closed(selector: selectors.BaseSelector, master: int, stdin_fd: int, stdout_fd: int,
                       log: _LogWriter) -> None:
    while True:
        for key, _ in selector.select():
            if key.fd == master:
                try:
                    data = os.read(master, 65536)
                except OSError as e:
                    if e.errno == errno.EIO:
                        return
                    raise
                if not data:
                    return
                _write_all(stdout_fd, data)
                log.write(data)
            else:
                data = os.read(stdin_fd, 65536)
                if not data:
                    selector.unregister(stdin_fd)  # user's stdin closed: keep showing output
                    continue
                _write_all(master, data)


def run_terminal_session(master: int, pid: int, *, stdin_fd: int = 0, stdout_fd: int = 1,
                         forward_stdin: bool = True, log_fd: int = -1) -> int:
    """Relay until the container is done, reap it and return Docker's exit code; closes `master`."""
    from pyctr.runtime.process import wait_container

    try:
        relay(master, stdin_fd=stdin_fd, stdout_fd=stdout_fd, forward_stdin=forward_stdin, log_fd=log_fd)
    finally:
        os.close(master)
    return wait_container(pid)
