"""Streams the API sends: Docker's JSON progress messages from pyctr's text progress, multiplexed frames, and
telling a client that went away from one that only closed its sending side."""

from __future__ import annotations

import re
import select
import socket
from collections.abc import Callable
from typing import Any

LAYER_LINE = re.compile(r"^([0-9a-f]{12}): (.*)$")


def progress_message(line: str) -> dict[str, Any]:
    """One line of pyctr's pull/push progress as Docker's JSON message: `<short id>: <status>` carries the
    layer's id, anything else is a plain status."""
    match = LAYER_LINE.match(line)
    if match:
        return {"status": match.group(2), "progressDetail": {}, "id": match.group(1)}
    return {"status": line}


def error_message(message: str) -> dict[str, Any]:
    """Docker's in-stream error: the CLI prints `message` and exits 1."""
    return {"errorDetail": {"message": message}, "error": message}


class JsonLines:
    """A text stream (what pull/push write their progress to) turning each line into one JSON message."""

    def __init__(self, emit: Callable[[dict[str, Any]], None], convert=progress_message) -> None:
        self._emit = emit
        self._convert = convert
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        while "\n" in self._pending:
            line, self._pending = self._pending.split("\n", 1)
            line = line.rstrip("\r").split("\r")[-1].strip()
            if line:
                self._emit(self._convert(line))
        return len(text)

    def flush(self) -> None:
        """Lines go out as they complete."""

    def isatty(self) -> bool:
        return False


def frame(stream: int, data: bytes) -> bytes:
    """Docker's multiplexed stream frame: [stream, 0, 0, 0, big-endian size] + payload (1 stdout, 2 stderr)."""
    return bytes((stream, 0, 0, 0)) + len(data).to_bytes(4, "big") + data


def peer_gone(sock: socket.socket) -> bool:
    """True once the peer closed its end entirely (POLLHUP on a unix socket), not when it only shut down its
    sending side (a client's half-close: stdin's EOF, after which it still reads the output)."""
    poller = select.poll()
    try:
        poller.register(sock, select.POLLHUP | select.POLLERR)
        return any(event & (select.POLLHUP | select.POLLERR | select.POLLNVAL) for _, event in poller.poll(0))
    except (OSError, ValueError):
        return True
