"""Docker's json-file log: the monitor's writer and the `logs` reader (tail, follow, timestamps)."""

import json
import threading
import time

import pytest

from pyctr.errors import UsageError
from pyctr.runtime import logs, monitor


def test_entry_is_dockers_json_line():
    line = monitor.encode_entry(b'hi "x" <b> & \\ \t\x01\xff\n', "stdout", "2024-01-01T00:00:00.000000001Z")
    assert line.startswith(b'{"log":"hi \\"x\\" \\u003cb\\u003e \\u0026 \\\\ \\t\\u0001\xef\xbf\xbd\\n",')
    assert line.endswith(b'"stream":"stdout","time":"2024-01-01T00:00:00.000000001Z"}\n')
    assert json.loads(line)["log"] == 'hi "x" <b> & \\ \t\x01\ufffd\n'


def test_rfc3339_nano():
    assert monitor.rfc3339_nano(1_700_000_000_000_000_005) == "2023-11-14T22:13:20.000000005Z"


def test_split_lines_keeps_partial_lines_and_flushes_long_ones():
    lines, rest = monitor.split_lines(b"a", b"b\nc\nd")
    assert lines == [b"ab\n", b"c\n"] and rest == b"d"
    lines, rest = monitor.split_lines(rest, b"", final=True)
    assert lines == [b"d"] and rest == b""
    lines, rest = monitor.split_lines(b"", b"x" * (monitor.PARTIAL_LIMIT + 5))
    assert lines == [b"x" * monitor.PARTIAL_LIMIT] and rest == b"x" * 5


def test_relay_writes_log_and_copies(tmp_path):
    import os

    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    copy_r, copy_w = os.pipe()
    os.write(out_w, b"one\ntwo")
    os.write(err_w, b"oops\n")
    os.close(out_w)
    os.close(err_w)
    log = tmp_path / "x-json.log"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    monitor.relay([(out_r, "stdout", copy_w), (err_r, "stderr", -1)], fd)
    os.close(fd)
    os.close(copy_w)
    assert os.read(copy_r, 100) == b"one\ntwo"
    entries = logs.read_entries(log)
    assert sorted((e.stream, e.text) for e in entries) == [("stderr", "oops\n"), ("stdout", "one\n"),
                                                           ("stdout", "two")]


def write_log(path, n, stream="stdout"):
    with open(path, "ab") as f:
        for i in range(n):
            f.write(monitor.encode_entry(f"line {i}\n".encode(), stream, f"2024-01-01T00:00:{i % 60:02d}.000000000Z"))


def test_tail(tmp_path):
    log = tmp_path / "c-json.log"
    write_log(log, 5000)
    entries, offset = logs.tail_entries(log, 3)
    assert [e.text for e in entries] == ["line 4997\n", "line 4998\n", "line 4999\n"]
    assert offset == log.stat().st_size
    entries, _ = logs.tail_entries(log, None)
    assert len(entries) == 5000
    assert logs.tail_entries(log, 0)[0] == []
    assert logs.tail_entries(tmp_path / "missing", 3) == ([], 0)


def test_tail_ignores_a_torn_last_line(tmp_path):
    log = tmp_path / "c-json.log"
    write_log(log, 2)
    with open(log, "ab") as f:
        f.write(b'{"log":"half')
    entries, offset = logs.tail_entries(log, 5)
    assert [e.text for e in entries] == ["line 0\n", "line 1\n"]
    assert offset < log.stat().st_size


def test_render_with_timestamps():
    e = logs.LogEntry("stdout", "hi\n", "2024-01-01T00:00:00.000000001Z")
    assert e.render() == "hi\n"
    assert e.render(timestamps=True) == "2024-01-01T00:00:00.000000001Z hi\n"


def test_follow_sees_appended_lines_until_stop(tmp_path):
    log = tmp_path / "c-json.log"
    write_log(log, 1)
    _, offset = logs.tail_entries(log, None)
    running = threading.Event()
    running.set()

    def writer():
        for _ in range(3):
            time.sleep(0.05)
            write_log(log, 1)
        running.clear()

    t = threading.Thread(target=writer)
    t.start()
    got = [e.text for e in logs.follow(log, offset, running.is_set, interval=0.01)]
    t.join()
    assert got == ["line 0\n"] * 3


def test_parse_tail():
    assert logs.parse_tail("all") is None
    assert logs.parse_tail("-1") is None
    assert logs.parse_tail("10") == 10
    with pytest.raises(UsageError):
        logs.parse_tail("ten")
