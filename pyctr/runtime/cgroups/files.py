"""The thin layer that touches cgroup files: one write per value, readable errors.

Plans are dicts of file name -> value (a str/int, or a list written one line at a
time, as the v1 devices files need); `write_plan` applies one to a directory.
Reads are tolerant: a missing file or a value the kernel does not report is None,
because stats and OOM checks must never fail a `stop` or `rm`.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from pyctr.errors import RuntimeFailure

PlanValue = str | int | list[str]


class CgroupWriteError(RuntimeFailure):
    """A write the kernel refused; `errno` lets callers retry on ENOENT (a parent removed under us)."""

    def __init__(self, message: str, err: int) -> None:
        super().__init__(message)
        self.errno = err


def write_value(directory: Path, name: str, value: str | int) -> None:
    """Write one value with a single write(2), as the kernel parses each write alone."""
    path = directory / name
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)  # O_TRUNC: as `echo >` does
    except FileNotFoundError as e:
        raise CgroupWriteError(f"cgroup file {path} does not exist", errno.ENOENT) from e
    try:
        os.write(fd, str(value).encode())
    except OSError as e:
        err = e.errno or errno.EIO
        raise CgroupWriteError(f"cannot write {value!r} to {path}: {os.strerror(err)}", err) from e
    finally:
        os.close(fd)


def write_plan(directory: Path, plan: dict[str, PlanValue]) -> None:
    """Apply a plan in its order (order matters, e.g. devices.deny before devices.allow)."""
    for name, value in plan.items():
        for item in value if isinstance(value, list) else [value]:
            write_value(directory, name, item)


def read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError, PermissionError):
        return None
    except OSError as e:
        if e.errno in (errno.ENODEV, errno.EINVAL, errno.ENOENT):
            return None
        raise


def read_int(path: Path) -> int | None:
    """An integer file; "max" (v2 unlimited) and missing files read as None."""
    text = read_text(path)
    if text is None:
        return None
    text = text.strip()
    if text == "max" or not text:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def read_keyed(path: Path) -> dict[str, int]:
    """A flat keyed file such as memory.stat, cpu.stat or memory.events: `key value` lines."""
    result: dict[str, int] = {}
    for line in (read_text(path) or "").splitlines():
        key, _, value = line.partition(" ")
        try:
            result[key] = int(value)
        except ValueError:
            continue
    return result


def read_pids(path: Path) -> list[int]:
    """cgroup.procs: one pid a line (an empty list when the cgroup is gone)."""
    return [int(x) for x in (read_text(path) or "").split() if x.isdigit()]
