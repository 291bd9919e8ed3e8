"""Attach's pure parts: docker's detach-key syntax, finding the sequence in typed input, splitting frames."""

from __future__ import annotations

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
