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


# -- the streaming reader: same output as decoding each entry on its own, in far fewer steps --------------------

def reference_output(data: bytes, timestamps: bool) -> list[tuple[str, str]]:
    """What `logs` printed before streaming: each line decoded alone, each entry written alone."""
    entries = [e for e in map(logs.parse_line, data.splitlines()) if e is not None]
    return [(e.stream, e.render(timestamps)) for e in entries]


def merged(runs):
    """Runs with adjacent same-stream texts joined: what reaches each stream, in order."""
    out = []
    for stream, text in runs:
        if out and out[-1][0] == stream:
            out[-1] = (stream, out[-1][1] + text)
        elif text:
            out.append((stream, text))
    return out


def mixed_log() -> bytes:
    import random

    rng = random.Random(7)
    texts = [b"plain\n", b'quote " back \\ tab \t\n', "unicode \u00e9\u2028\n".encode(), b"<html>&amp;\n",
             b"no newline", b"\x01\x7f\xff bytes\n", b""]
    lines = [monitor.encode_entry(rng.choice(texts), rng.choice(["stdout", "stderr"]),
                                  f"2024-01-01T00:00:{i % 60:02d}.{i:09d}Z") for i in range(3000)]
    return b"".join(lines)


@pytest.mark.parametrize("timestamps", [False, True])
def test_render_chunk_matches_the_entry_by_entry_output(timestamps):
    data = mixed_log()
    runs, stopped = logs.render_chunk(data, timestamps)
    assert not stopped
    assert merged(runs) == merged(reference_output(data, timestamps))


@pytest.mark.parametrize("timestamps", [False, True])
def test_foreign_and_torn_lines_fall_back_without_losing_neighbours(timestamps):
    good = monitor.encode_entry(b"a\n", "stdout", "2024-01-01T00:00:00.000000000Z")
    foreign = b'{"stream":"stdout","time":"2024-01-01T00:00:01Z","log":"b\\n","attrs":{"x":"y"}}\n'
    data = good + foreign + b'{"log":"torn\n' + b"42\n" + b"\n" + good
    assert logs.decode_run(data, timestamps) is None
    runs, _ = logs.render_chunk(data, timestamps)
    assert merged(runs) == merged(reference_output(data, timestamps))
    assert "".join(t for _, t in runs).count("a\n") == 2 and "b\n" in "".join(t for _, t in runs)


def test_stream_runs_split_only_where_the_stream_changes():
    line = lambda s: monitor.encode_entry(b"x\n", s, "2024-01-01T00:00:00.000000000Z")  # noqa: E731
    data = line("stdout") * 3 + line("stderr") * 2 + line("stdout")
    assert [(s, run.count(b"\n")) for s, run in logs.stream_runs(data)] == [("stdout", 3), ("stderr", 2),
                                                                           ("stdout", 1)]


class CountingFile:
    """A file that counts the bytes read through it."""

    def __init__(self, f):
        self.f, self.read_bytes = f, 0

    def seek(self, *a):
        return self.f.seek(*a)

    def read(self, n=-1):
        data = self.f.read(n)
        self.read_bytes += len(data)
        return data


def test_tail_reads_backwards_only_what_it_needs(tmp_path):
    log = tmp_path / "c-json.log"
    write_log(log, 20000)
    size = log.stat().st_size
    with open(log, "rb") as raw:
        f = CountingFile(raw)
        end = logs.complete_end(f)
        start = logs.tail_start(f, 3, end)
        assert f.read_bytes <= 2 * logs.TAIL_BLOCK < size
        raw.seek(start)
        assert [logs.parse_line(x).text for x in raw.read(end - start).splitlines()] == [
            "line 19997\n", "line 19998\n", "line 19999\n"]
        assert logs.tail_start(f, 20000, end) == 0 and logs.tail_start(f, 50000, end) == 0
        assert logs.tail_start(f, 0, end) == end
        nth = logs.tail_start(f, 19999, end)  # everything but the first line
        raw.seek(0)
        assert nth == len(raw.readline())


def test_stream_logs_chunks_tail_and_until(tmp_path, monkeypatch):
    import io

    monkeypatch.setattr(logs, "READ_CHUNK", 1000)  # many chunks, lines cut at chunk boundaries
    log = tmp_path / "c-json.log"
    write_log(log, 500)
    write_log(log, 7, "stderr")
    with open(log, "ab") as f:
        f.write(b'{"log":"being written')
    out, err = io.StringIO(), io.StringIO()
    logs.stream_logs(log, out, err)
    assert out.getvalue() == "".join(f"line {i}\n" for i in range(500))
    assert err.getvalue() == "".join(f"line {i}\n" for i in range(7))
    out, err = io.StringIO(), io.StringIO()
    logs.stream_logs(log, out, err, tail=8)
    assert (out.getvalue(), err.getvalue().count("\n")) == ("line 499\n", 7)
    out, err = io.StringIO(), io.StringIO()
    until = logs.entry_time_ns("2024-01-01T00:00:02.000000000Z")
    logs.stream_logs(log, out, err, timestamps=True, until_ns=until, running=lambda: True)  # stops: past until
    assert out.getvalue() == "".join(f"2024-01-01T00:00:{i:02d}.000000000Z line {i}\n" for i in range(3))


@pytest.mark.parametrize(("text", "expected"), [
    ("2024-01-01T00:00:00.000000001Z", 1704067200_000000001),
    ("2024-02-29T23:59:59.999999999Z", 1709251199_999999999),
    ("1970-01-01T00:00:00.000000000Z", 0),
    ("2024-01-01T00:00:00.5Z", 1704067200_500000000),  # not the monitor's layout: the general parser
    ("2024-13-01T00:00:00.000000000Z", None),
    ("2024-01-01T00:00:00.00000000aZ", None),
    ("garbage", None),
])
def test_entry_time_of_the_monitors_layout_and_others(text, expected):
    assert logs.entry_time_ns(text) == expected


def test_stored_entries_read_a_chunk_at_a_time_and_give_the_follow_offset(tmp_path, monkeypatch):
    """The API daemon's reader (attack review: `GET /logs` of a 72 MB log kept ~500 MB): an iterator over
    small chunks whose entries, tail and follow offset agree with tail_entries."""
    from pyctr.runtime import logs

    path = tmp_path / "c-json.log"
    lines = [f'{{"log":"line {i}\\n","stream":"stdout","time":"2026-12-03T10:00:{i % 60:02d}.000000000Z"}}\n'
             for i in range(5000)]
    path.write_text("".join(lines))
    monkeypatch.setattr(logs, "READ_CHUNK", 4096)
    entries, offset = logs.stored_entries(path, None)
    first = next(entries)
    assert first.text == "line 0\n"
    assert offset == path.stat().st_size
    assert [e.text for e in entries][-1] == "line 4999\n"
    tail, tail_offset = logs.stored_entries(path, 3)
    expected, expected_offset = logs.tail_entries(path, 3)
    assert [e.text for e in tail] == [e.text for e in expected] and tail_offset == expected_offset
    assert logs.stored_entries(tmp_path / "missing.log", None)[1] == 0
