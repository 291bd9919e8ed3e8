"""Reading Docker's json-file container log (the monitor writes it).

One JSON object a line: {"log": "hello\\n", "stream": "stdout", "time": RFC3339Nano}.
`pyctr logs` prints the `log` text of each entry to the stream it came from,
optionally prefixed with its time (`-t`), optionally only the last N (`--tail`)
and optionally following the file while the container runs (`-f`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

TAIL_BLOCK = 64 * 1024


@dataclass(frozen=True)
class LogEntry:
    stream: str
    text: str
    time: str

    def render(self, timestamps: bool = False) -> str:
        return f"{self.time} {self.text}" if timestamps else self.text


def log_path(container_dir: Path, container_id: str) -> Path:
    return container_dir / f"{container_id}-json.log"


def parse_line(line: bytes) -> LogEntry | None:
    """One entry, or None for a torn or foreign line (never fatal: logs are best effort)."""
    try:
        data = json.loads(line)
        return LogEntry(str(data.get("stream", "stdout")), str(data.get("log", "")), str(data.get("time", "")))
    except (ValueError, AttributeError):
        return None


def _parse_all(lines: list[bytes]) -> list[LogEntry]:
    return [e for e in map(parse_line, lines) if e is not None]


def read_entries(path: Path) -> list[LogEntry]:
    try:
        with open(path, "rb") as f:
            return _parse_all(f.read().splitlines())
    except FileNotFoundError:
        return []


def last_lines(f, count: int, end: int) -> list[bytes]:
    """The last `count` complete lines before offset `end`, reading the file backwards in blocks."""
    if count <= 0:
        return []
    data = b""
    position = end
    while position > 0 and data.count(b"\n") <= count:
        step = min(TAIL_BLOCK, position)
        position -= step
        f.seek(position)
        data = f.read(step) + data
    lines = data.splitlines()
    return lines[-count:]


def tail_entries(path: Path, count: int | None) -> tuple[list[LogEntry], int]:
    """The last `count` entries (all with None) and the offset just after them, for following."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below, shared by two reads
    except FileNotFoundError:
        return [], 0
    with f:
        end = f.seek(0, os.SEEK_END)
        # Only whole lines: a line being written concurrently is picked up by follow().
        if count is None:
            f.seek(0)
            data = f.read(end)
            cut = data.rfind(b"\n") + 1
            return _parse_all(data[:cut].splitlines()), cut
        f.seek(max(0, end - 1))
        last = f.read(1)
        cut = end if last == b"\n" else _last_newline_end(f, end)
        return _parse_all(last_lines(f, count, cut)), cut


def _last_newline_end(f, end: int) -> int:
    position = end
    while position > 0:
        step = min(TAIL_BLOCK, position)
        position -= step
        f.seek(position)
        chunk = f.read(step)
        nl = chunk.rfind(b"\n")
        if nl >= 0:
            return position + nl + 1
    return 0


def follow(path: Path, offset: int, running: Callable[[], bool], interval: float = 0.05) -> Iterator[LogEntry]:
    """Entries appended after `offset` until the container stops (then what is left is drained)."""
    pending = b""
    with _open_when_present(path, running, interval) as f:
        if f is None:
            return
        f.seek(offset)
        while True:
            alive = running()
            chunk = f.read()
            if chunk:
                data = pending + chunk
                cut = data.rfind(b"\n") + 1
                pending = data[cut:]
                yield from _parse_all(data[:cut].splitlines())
                continue
            if not alive:
                return
            time.sleep(interval)


class _open_when_present:
    """Open the log once the monitor created it (it may not yet exist right after start)."""

    def __init__(self, path: Path, running: Callable[[], bool], interval: float) -> None:
        self.path, self.running, self.interval, self.f = path, running, interval, None

    def __enter__(self):
        while True:
            try:
                self.f = open(self.path, "rb")  # noqa: SIM115 - closed in __exit__
                return self.f
            except FileNotFoundError:
                if not self.running():
                    return None
                time.sleep(self.interval)

    def __exit__(self, *exc) -> None:
        if self.f is not None:
            self.f.close()


def parse_tail(value: str) -> int | None:
    """Docker's --tail: "all" (or negative) for everything, else a count."""
    from pyctr.errors import UsageError

    if value.strip().lower() == "all":
        return None
    try:
        count = int(value)
    except ValueError:
        raise UsageError(f'invalid value for "tail": "{value}"') from None
    return None if count < 0 else count
