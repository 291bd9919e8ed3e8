"""The blob store: content-addressed files under blobs/sha256, each verified while it streams in.

A blob appears under its digest only after its bytes were hashed, counted and
fsynced, and by rename: a reader never sees a partial blob. A download killed
half-way leaves `tmp/blob-<hex>.partial`, which the next writer re-hashes and
continues (resume). One flock per blob, so two pulls fetch each blob once.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from pyctr.errors import DigestMismatch, StoreError
from pyctr.fsutil import fsync_dir
from pyctr.image.layout import StoreLayout


def sha256(data: bytes = b""):
    """hashlib.sha256, imported on first use: `run` and `images` never hash, and hashlib loads OpenSSL."""
    import hashlib

    return hashlib.sha256(data)


def file_digest(path: Path) -> str:
    """The `sha256:` digest of a file's bytes."""
    h = sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


class BlobWriter:
    """Receives one blob, hashing as it writes to tmp/; `commit` verifies then publishes it.

    A partial file left by a killed process is re-hashed and continued (resume).
    """

    def __init__(self, layout: StoreLayout, digest: str, size: int | None) -> None:
        self.digest = digest
        self.size = size
        self.final = layout.blob(digest)
        self.partial = layout.partial_blob(digest)
        self._hash = sha256()
        self.offset = 0
        self._fd = os.open(self.partial, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._rehash_existing()
        self.resumed = self.offset > 0

    def _rehash_existing(self) -> None:
        with os.fdopen(os.dup(self._fd), "rb") as f:
            while chunk := f.read(1 << 20):
                self._hash.update(chunk)
                self.offset += len(chunk)
        if self.size is not None and self.offset > self.size:
            self.reset()
        os.lseek(self._fd, self.offset, os.SEEK_SET)

    def write(self, data: bytes) -> None:
        if self.size is not None and self.offset + len(data) > self.size:
            self.discard()
            raise DigestMismatch(f"blob {self.digest} is larger than its declared size {self.size}")
        self._hash.update(data)
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]
        self.offset += len(data)

    def reset(self) -> None:
        os.ftruncate(self._fd, 0)
        os.lseek(self._fd, 0, os.SEEK_SET)
        self._hash = sha256()
        self.offset = 0

    def commit(self) -> Path:
        actual = "sha256:" + self._hash.hexdigest()
        if actual != self.digest or (self.size is not None and self.offset != self.size):
            self.discard()
            raise DigestMismatch(
                f"filesystem layer verification failed for digest {self.digest}: got {actual}, "
                f"{self.offset} bytes (expected {self.size})"
            )
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = -1
        os.rename(self.partial, self.final)
        fsync_dir(self.final.parent)
        return self.final

    def discard(self) -> None:
        self.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.partial)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class BlobStore:
    """blobs/sha256: add verified content, read it back by digest."""

    def __init__(self, layout: StoreLayout) -> None:
        self.layout = layout

    def path(self, digest: str) -> Path:
        return self.layout.blob(digest)

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def read(self, digest: str) -> bytes:
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            raise StoreError(f"blob {digest} is missing from the store") from None

    def open(self, digest: str) -> IO[bytes]:
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise StoreError(f"blob {digest} is missing from the store") from None

    @contextlib.contextmanager
    def writer(self, digest: str, size: int | None) -> Iterator[BlobWriter | None]:
        """Hold the blob's lock; yield a writer, or None if the blob is already stored."""
        self.layout.ensure()
        with self.layout.blob_lock(digest):
            if self.has(digest):
                yield None
                return
            writer = BlobWriter(self.layout, digest, size)
            try:
                yield writer
            finally:
                writer.close()

    def put_bytes(self, data: bytes, digest: str | None = None) -> str:
        """Store small content (config, manifest), verifying `digest` when given."""
        actual = "sha256:" + sha256(data).hexdigest()
        if digest is not None and digest != actual:
            raise DigestMismatch(f"content does not match its digest {digest} (got {actual})")
        with self.writer(actual, len(data)) as writer:
            if writer is not None:
                writer.reset()
                writer.write(data)
                writer.commit()
        return actual

    def put_file(self, src: Path, digest: str, size: int) -> None:
        """Move a verified temp file (e.g. a packed layer) into blobs/."""
        with self.layout.blob_lock(digest):
            if self.has(digest):
                src.unlink(missing_ok=True)
                return
            os.rename(src, self.path(digest))
            fsync_dir(self.layout.paths.blobs)
