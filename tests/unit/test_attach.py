"""Attach's pure parts: docker's detach-key syntax, finding the sequence in typed input, splitting frames."""

from __future__ import annotations

import contextlib

import pytest

from pyctr.errors import UsageError
from pyctr.runtime.attach import DetachScanner, FrameReader, parse_detach_keys
from pyctr.runtime.monitor import frame_header


def test_detach_keys_as_docker_writes_them():
    assert parse_detach_keys("ctrl-p,ctrl-q") == b"\x10\x11"
    assert parse_detach_keys("ctrl-@,a,ctrl-_") == b"\x00a\x1f"
    with pytest.raises(UsageError):
        parse_detach_keys("ctrl-1")
    with pytest.raises(UsageError):
        parse_detach_keys("shift-a")


def test_scanner_holds_a_partial_sequence_and_releases_it_when_it_breaks():
    scanner = DetachScanner(b"\x10\x11")
    assert scanner.feed(b"ab\x10") == (b"ab", False)
    assert scanner.feed(b"c") == (b"\x10c", False)
    assert scanner.feed(b"x\x10") == (b"x", False)
    assert scanner.feed(b"\x11rest") == (b"", True)


def test_frames_split_across_reads():
    data = frame_header("stdout", 3) + b"abc" + frame_header("stderr", 2) + b"de"
    reader = FrameReader()
    assert reader.feed(data[:5]) == []
    assert reader.feed(data[5:12]) == [(1, b"abc")]
    assert reader.feed(data[12:]) == [(2, b"de")]


def test_a_container_that_does_not_read_stdin_never_stalls_the_monitor():
    """The attack review's stall: > 64 KiB to an -i container that never reads its stdin blocked the monitor's
    only loop (no output relayed or logged). Writes to the pipe no longer block; what waits is bounded."""
    import os
    import select
    import socket
    import time

    from pyctr.runtime import monitor

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stdin_r, stdin_w = os.pipe()
    hub = monitor.AttachHub(listener, stdin_w)
    hub.poller = select.poll()
    ours, theirs = socket.socketpair()
    hub.clients[theirs.fileno()] = theirs
    hub.poller.register(theirs.fileno(), select.POLLIN)
    try:
        sent = 0
        started = time.monotonic()
        while sent < 300 * 1024:  # far beyond the pipe's 64 KiB
            ours.sendall(b"x" * 32768)
            sent += 32768
            hub.ready(theirs.fileno())
        assert time.monotonic() - started < 5
        assert 0 < len(hub.backlog) <= monitor.STDIN_BACKLOG
        received = b""
        while len(received) < sent:  # the container reads at last: everything arrives, in order
            received += os.read(stdin_r, 1 << 20)
            hub.ready(stdin_w)
        assert received == b"x" * sent and hub.backlog == b""
        client_fd = theirs.fileno()
        for _ in range(80):  # a client that floods without end is dropped
            if client_fd not in hub.clients:
                break
            ours.sendall(b"y" * 32768)
            hub.ready(client_fd)
        assert client_fd not in hub.clients
    finally:
        for fd in (stdin_r, stdin_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        ours.close()
        listener.close()
