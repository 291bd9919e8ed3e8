"""Crash-safe file primitives shared by the image store and container state.

Everything pyctr persists goes through these: a write is a temp file in the
same directory, fsync'd, then renamed over the target, so a SIGKILL at any
moment leaves either the old or the new content, never half of one. Locks are
flock(2) on files under the root's locks/ directory: released by the kernel
when a process dies, so a killed command never leaves a stale lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def ensure_dir(path: Path, mode: int = 0o700) -> Path:
    """Create `path` (and parents) if missing; new directories get `mode`.

    A root that is a file, under a file or on a read-only mount is a user's mistake: say so in one line.
    """
    try:
        path.mkdir(mode=mode, parents=True, exist_ok=True)
    except OSError as e:
        from pyctr.errors import StoreError

        raise StoreError(f"cannot create directory {path}: {e.strerror or e}") from None
    return path


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o600, durable: bool = True) -> None:
    """Replace `path` with `data` so readers see the old or new file, never a mix."""
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(path.parent)


def atomic_write_json(path: Path, obj: Any, mode: int = 0o600, durable: bool = True) -> None:
    """Serialise `obj` as JSON and write it atomically."""
    atomic_write_bytes(path, json.dumps(obj, indent=2, sort_keys=True).encode(), mode, durable)


def read_json(path: Path) -> Any:
    with open(path, "rb") as f:
        return json.load(f)


@contextlib.contextmanager
def file_lock(path: Path, shared: bool = False, blocking: bool = True) -> Iterator[int]:
    """Hold flock(2) on `path` for the duration of the block.

    Raises BlockingIOError when `blocking` is False and the lock is taken.
    """
    ensure_dir(path.parent)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as e:  # e.g. a read-only root: one line, not a traceback
        from pyctr.errors import StoreError

        raise StoreError(f"cannot open lock file {path}: {e.strerror or e}") from None
    try:
        flags = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        if not blocking:
            flags |= fcntl.LOCK_NB
        fcntl.flock(fd, flags)
        yield fd
    finally:
        os.close(fd)


def remove_tree(path: Path) -> None:
    """rmtree that also removes read-only directories (layers often have 0555 dirs); absent is fine; raises
    OSError if something stays."""
    if not os.path.lexists(path):
        return
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
        return
    import shutil  # here: with bz2 and lzma it costs every `images` and `run` a few ms, and only removal needs it

    def onerror(func: Any, p: str, exc: Any) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(p), 0o700)
            func(p)

    shutil.rmtree(path, onerror=onerror)
    if os.path.lexists(path):
        raise OSError(f"cannot remove {path}")
