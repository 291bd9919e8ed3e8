"""-t: the container gets a pty as its controlling terminal; M relays it to the user's terminal.

The "user's terminal" is itself a pty made by the test (pty.fork), so raw mode, window size and ^C are real.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import shutil
import signal
import struct
import sys
import termios
import textwrap
import time

import pytest

from tests.integration.container_rootfs import build_busybox_rootfs

DRIVER = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from pyctr.runtime.spec import RunOptions, make_spec
    from pyctr.runtime.process import Stdio, launch
    from pyctr.runtime.tty import open_pty, run_terminal_session
    lower, bundle, interactive = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1"
    options = RunOptions("test", sys.argv[4:], tty=True, interactive=interactive, network="none")
    spec = make_spec({"config": {"Cmd": ["sh"]}}, options, bundle.name, "t", bundle, [lower])
    master, slave = open_pty()
    launched = launch(spec, stdio=Stdio.terminal(slave, master))
    os.close(slave)
    code = run_terminal_session(master, launched.pid, forward_stdin=interactive)
    print(f"[exit {code}]", flush=True)
""")


@pytest.fixture(scope="module")
def lower(tmp_path_factory):
    base = tmp_path_factory.mktemp("tty")
    yield build_busybox_rootfs(base / "lower")
    shutil.rmtree(base, ignore_errors=True)


class Session:
    """The driver running under a test pty, as a user's `pyctr run -it` would."""

    def __init__(self, lower, bundle, *command: str, interactive: bool = True, rows: int = 33, cols: int = 101):
        bundle.mkdir(parents=True)
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execv(sys.executable, [sys.executable, "-c", DRIVER, str(lower), str(bundle),
                                      "1" if interactive else "0", *command])
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.output = b""

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def expect(self, needle: bytes, timeout: float = 10) -> bytes:
        deadline = time.monotonic() + timeout
        while needle not in self.output:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._read(remaining):
                raise AssertionError(f"{needle!r} not seen; output so far: {self.output!r}")
        return self.output

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return False
        try:
            data = os.read(self.fd, 4096)
        except OSError:
            return False
        self.output += data
        return bool(data)

    def finish(self, timeout: float = 10) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._read(deadline - time.monotonic()):
            pass
        _, status = os.waitpid(self.pid, 0)
        os.close(self.fd)
        return os.waitstatus_to_exitcode(status)

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def test_interactive_shell(lower, tmp_path):
    session = Session(lower, tmp_path / ("a" * 64), "sh")
    try:
        session.expect(b"/ # ")
        session.send(b"echo hi; tty; stty size; echo $TERM; ls /dev/pts\r")
        out = session.expect(b"ptmx")
        # Docker (runc allocates the pty from the container's own devpts): `tty` says /dev/pts/0, the first
        # and only pty of the container, sized as the user's terminal.
        assert b"hi\r\n" in out and b"/dev/pts/0\r\n" in out and b"xterm" in out
        assert b"33 101" in out and b"0     ptmx" in out
        session.send(b"exit 3\r")
        session.expect(b"[exit 3]")
        assert session.finish() == 0
    finally:
        session.kill()


def test_ctrl_c_reaches_the_container(lower, tmp_path):
    session = Session(lower, tmp_path / ("b" * 64), "sh")
    try:
        session.expect(b"/ # ")
        session.send(b"sleep 30; echo after-sleep\r")
        time.sleep(0.5)
        session.send(b"\x03")  # raw mode: a byte the pty turns into SIGINT for the foreground job
        session.expect(b"/ # ", timeout=5)
        session.send(b"echo still-here; exit\r")
        out = session.expect(b"[exit 0]")
        assert b"still-here" in out
        session.finish()
    finally:
        session.kill()


def test_user_terminal_restored(lower, tmp_path):
    session = Session(lower, tmp_path / ("c" * 64), "sh", "-c", "echo done")
    try:
        session.expect(b"[exit 0]")
        attrs = termios.tcgetattr(session.fd)
        assert attrs[3] & termios.ECHO and attrs[3] & termios.ICANON, "terminal left in raw mode"
        session.finish()
    finally:
        session.kill()


def test_tty_without_interactive_runs_command(lower, tmp_path):
    session = Session(lower, tmp_path / ("d" * 64), "sh", "-c", "test -t 0 && echo is-a-tty", interactive=False)
    try:
        out = session.expect(b"[exit 0]")
        assert b"is-a-tty" in out
        session.finish()
    finally:
        session.kill()
