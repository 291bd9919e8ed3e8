"""Where the image store keeps what under PYCTR_ROOT: its file, lock and temp-file names, in one place.

The stores (blobs.py, layers.py, records.py), their garbage collector (store.py) and `system check`
(check.py) all read the same disk; they agree on its layout because they all take it from here:

    blobs/sha256/<hex>                   a verified blob (written by rename, after its digest was checked)
    layers/<chain hex>/diff/             an unpacked layer; layers/<chain hex>/layer.json written last
    images/<config hex>.json             an image record; images/repositories.json its names
    locks/{images,image-gc}.lock         records lock; GC lock (shared while adding, exclusive while deleting)
    locks/{blob,layer}-<hex>.lock        one per blob / layer being written (only under the shared GC lock)
    tmp/blob-<hex>.partial               a download in progress or to resume
    tmp/<kind>-<pid>-<nonce>[suffix]     scratch of process <pid>: garbage once it died
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from pyctr.config import Paths
from pyctr.errors import StoreError
from pyctr.fsutil import ensure_dir, file_lock
from pyctr.image.reference import is_sha256_digest

HEX64 = re.compile(r"^[0-9a-f]{64}$")
HEX_PREFIX = re.compile(r"^[0-9a-f]{1,64}$")
REPOSITORIES = "repositories.json"
LAYER_RECORD = "layer.json"
LAYER_DIFF = "diff"
RECORDS_LOCK = "images"
GC_LOCK = "image-gc"
PARTIAL_BLOB = re.compile(r"^blob-([0-9a-f]{64})\.partial$")
CONTENT_LOCK = re.compile(r"^(blob|layer)-[0-9a-f]{64}\.lock$")
PID_NAMED = re.compile(r"^[a-z-]+?-(\d+)-")  # <kind>-<pid>-<nonce>: pack-, save-, load-, repack-, blob-load-
PID_SUFFIXED = re.compile(r"^\..+\.(\d+)$")  # .<name>.<pid>: an atomic write (or a compile) in progress


def sha256_hex(digest: str) -> str:
    """The hex part of a `sha256:` digest, refusing anything else (it becomes a file name)."""
    if not is_sha256_digest(digest):
        raise StoreError(f"not a sha256 digest: {digest!r}")
    return digest[7:]


def pid_alive(pid: int) -> bool:
    """Whether a process holding a temp file (named after its pid) still runs: its file is not garbage yet."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class StoreLayout:
    """The image half of one PYCTR_ROOT: every path and lock the image store uses, named once."""

    paths: Paths

    def ensure(self) -> None:
        """Create the store's directories (0700 root first): a fresh root works without a setup step."""
        p = self.paths
        for d in (p.root, p.blobs.parent, p.blobs, p.layers, p.images, p.locks, p.tmp):
            ensure_dir(d)

    def blob(self, digest: str) -> Path:
        return self.paths.blobs / sha256_hex(digest)

    def partial_blob(self, digest: str) -> Path:
        return self.paths.tmp / f"blob-{sha256_hex(digest)}.partial"

    def layer(self, chain_id: str) -> Path:
        return self.paths.layers / sha256_hex(chain_id)

    def image_record(self, image_id: str) -> Path:
        return self.paths.images / f"{sha256_hex(image_id)}.json"

    @property
    def repositories(self) -> Path:
        return self.paths.images / REPOSITORIES

    def scratch(self, kind: str, suffix: str = "") -> Path:
        """A temp path in tmp/ named after this process, so the GC and `system check` know when it is garbage."""
        return self.paths.tmp / f"{kind}-{os.getpid()}-{time.monotonic_ns()}{suffix}"

    def lock(self, name: str, shared: bool = False, blocking: bool = True) -> contextlib.AbstractContextManager[int]:
        return file_lock(self.paths.locks / f"{name}.lock", shared=shared, blocking=blocking)

    def blob_lock(self, digest: str, blocking: bool = True) -> contextlib.AbstractContextManager[int]:
        """Held while the blob is written; a partial download whose lock is free is nobody's."""
        return self.lock(f"blob-{sha256_hex(digest)}", blocking=blocking)

    def layer_lock(self, chain_id: str) -> contextlib.AbstractContextManager[int]:
        return self.lock(f"layer-{sha256_hex(chain_id)}")

    def records_lock(self) -> contextlib.AbstractContextManager[int]:
        """Held while image records or names change."""
        return self.lock(RECORDS_LOCK)

    def gc_lock(self, shared: bool) -> contextlib.AbstractContextManager[int]:
        """Shared while adding content, exclusive while deleting it."""
        return self.lock(GC_LOCK, shared=shared)
