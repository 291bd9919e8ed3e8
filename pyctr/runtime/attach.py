"""Attaching to a running container through its monitor's attach socket (`<container dir>/attach.sock`, see
runtime/monitor.py): the output from now on as Docker's multiplexed frames, and input to its stdin.

Deciding (pure): `parse_detach_keys` (docker's `--detach-keys` syntax), `DetachScanner` (finds the sequence in
the input), `FrameReader` (splits the monitor's frames). Doing: `connect` (the socket, reached through
/proc/self/fd so that a long PYCTR_ROOT does not exceed sun_path), `wait_for_socket` (after a start).
Both the `pyctr attach` command and the Engine API's attach use these.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from pyctr.errors import ConflictError, UsageError

ATTACH_SOCKET = "attach.sock"  # the monitor's name for it (monitor.ATTACH_SOCKET: it imports nothing of ours)
DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"
HEADER = 8


def parse_detach_keys(text: str) -> bytes:
    """docker's term.ToBytes: comma-separated `ctrl-<x>` (a-z, @, [, \\, ], ^, _) or single characters."""
    keys = bytearray()
    for part in text.split(","):
        part = part.strip()
        lower = part.lower()
        if lower.startswith("ctrl-") and len(part) == 6:
            char = lower[5]
            if "a" <= char <= "z":
                keys.append(ord(char) - ord("a") + 1)
                continue
            specials = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}
            if char in specials:
                keys.append(specials[char])
                continue
        if len(part) == 1:
            keys.append(ord(part))
            continue
        raise UsageError(f"Unknown character: '{part}'")
    if not keys:
        raise UsageError("detach keys must not be empty")
    return bytes(keys)


class DetachScanner:
    """Feeds input through; holds back a possible start of the detach sequence; says when it was typed."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(bytes to forward now, detached?)"""
        out = bytearray()
        for byte in data:
            candidate = self.held + bytes((byte,))
            if self.keys.startswith(candidate):
                if candidate == self.keys:
                    return bytes(out), True
                self.held = candidate
                continue
            out += candidate
            self.held = b""
        return bytes(out), False


class FrameReader:
    """Splits a byte stream of multiplexed frames into (stream id, payload) pairs."""

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self.buffer += data
        frames = []
        while len(self.buffer) >= HEADER:
            size = int.from_bytes(self.buffer[4:8], "big")
            if len(self.buffer) < HEADER + size:
                break
            frames.append((self.buffer[0], self.buffer[HEADER:HEADER + size]))
            self.buffer = self.buffer[HEADER + size:]
        return frames


def socket_path(container_dir: Path) -> Path:
    return Path(container_dir) / ATTACH_SOCKET


def connect(container_dir: Path) -> socket.socket:
    """A connection to the container's monitor; ConflictError when it has none (not running)."""
    dir_fd = os.open(container_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(f"/proc/self/fd/{dir_fd}/{ATTACH_SOCKET}")
        except OSError:
            sock.close()
            raise ConflictError("You cannot attach to a stopped container, start it first") from None
        return sock
    finally:
        os.close(dir_fd)


def wait_for_socket(container_dir: Path, alive, timeout: float = 10.0, interval: float = 0.005) -> socket.socket:
    """Connect once the monitor listens (right after a start it may not yet); `alive()` False gives up."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return connect(container_dir)
        except (ConflictError, FileNotFoundError):
            if time.monotonic() > deadline or not alive():
                raise
            time.sleep(interval)
