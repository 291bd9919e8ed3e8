"""The layer store: unpacked layers under layers/<chain id>, overlay-ready.

A layer is named by its OCI ChainID (its diff id chained onto its parent's), so
the same diff on two different parents is two layers, as overlay needs. A layer
is unpacked whole in tmp/unpack-<pid>-<nonce>/, synced once, and renamed into
layers/ with its layer.json: a killed unpack leaves only that staging directory,
garbage once its process is gone. (A layers/ directory without layer.json, left
by unpacks before staging, is removed and redone by the next unpack of it.)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pyctr.errors import DigestMismatch, StoreError
from pyctr.fsutil import atomic_write_json, fsync_dir, read_json, remove_tree
from pyctr.image.blobs import BlobStore, file_digest, sha256
from pyctr.image.layout import LAYER_DIFF, LAYER_RECORD, StoreLayout
from pyctr.image.manifest import OCI_LAYER_GZIP
from pyctr.image.reference import is_sha256_digest


def chain_ids(diff_ids: list[str]) -> list[str]:
    """OCI ChainID: chain[0] = diff[0]; chain[n] = sha256(chain[n-1] + " " + diff[n])."""
    out: list[str] = []
    for diff_id in diff_ids:
        if not out:
            out.append(diff_id)
        else:
            out.append("sha256:" + sha256(f"{out[-1]} {diff_id}".encode()).hexdigest())
    return out


def directory_size(root: Path) -> int:
    """moby's pkg/directory.Size, what overlay2 reports as a layer's DiffSize: the apparent sizes of
    everything but directories (symlinks count their target's length), each hard-linked inode once."""
    total = 0
    seen: set[int] = set()
    stack = [str(root)]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
            elif st.st_size and st.st_ino not in seen:
                seen.add(st.st_ino)
                total += st.st_size
    return total


def sync_layer() -> None:
    """Make every file of an unpacked layer durable at once, before the layer is published.

    sync(2) rather than syncfs(2) of the layer's filesystem: the image package has no ctypes (its one home is
    runtime/syscalls.py, which image/ may not import); on a host whose store shares its disk with everything
    else the two flush the same data.
    """
    os.sync()


@dataclass
class LayerRecord:
    """One unpacked layer; `blob` describes its compressed form when we have it."""

    chain_id: str
    diff_id: str
    size: int
    path: Path
    parent: str | None = None
    blob: dict | None = None
    disk_size: int | None = None  # Docker's DiffSize; None in records written before it was kept

    @property
    def diff_dir(self) -> Path:
        return self.path / LAYER_DIFF

    @property
    def diff_size(self) -> int:
        """The layer's size as Docker reports it (image Size, history SIZE): its files, not its tar."""
        return self.disk_size if self.disk_size is not None else directory_size(self.diff_dir)

    def to_json(self) -> dict:
        return {"chain_id": self.chain_id, "diff_id": self.diff_id, "size": self.size,
                "parent": self.parent, "blob": self.blob, "disk_size": self.disk_size}


class LayerStore:
    """layers/: unpack a stored blob as a layer (once), pack a directory into one, find one by chain id."""

    def __init__(self, layout: StoreLayout, blobs: BlobStore) -> None:
        self.layout = layout
        self.blobs = blobs

    def path(self, chain_id: str) -> Path:
        return self.layout.layer(chain_id)

    def get(self, chain_id: str) -> LayerRecord | None:
        """The complete layer `chain_id`, or None (also for a malformed id, e.g. from a stale cache entry)."""
        if not is_sha256_digest(chain_id or ""):
            return None
        path = self.path(chain_id)
        try:
            doc = read_json(path / LAYER_RECORD)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise StoreError(f"layer {chain_id} record is unreadable: {e}") from None
        disk_size = doc.get("disk_size")
        return LayerRecord(doc["chain_id"], doc["diff_id"], int(doc.get("size") or 0), path,
                           doc.get("parent"), doc.get("blob"), int(disk_size) if disk_size is not None else None)

    def unpack_blob(self, blob: dict, diff_id: str, chain_id: str, parent: str | None,
                    stream: BinaryIO | None = None) -> LayerRecord:
        """Unpack a stored compressed blob as layer `chain_id` (once; concurrent callers wait).

        `stream` gives the blob's bytes as its download writes them (pull.GrowingBlob), instead of the stored
        blob: it must end only once the blob is verified and stored, so the layer is published after that.

        The layer is unpacked whole in a staging directory (layout.unpack_staging), synced to disk once, then
        renamed into layers/: it appears complete or not at all. One sync per layer, not one fsync per file (each
        forces its own writeback and, on a journalled filesystem, a journal commit): containerd's `sync_fs`
        unpack option does the same.
        """
        from pyctr.image.unpack import unpack_layer

        with self.layout.layer_lock(chain_id):
            existing = self.get(chain_id)
            if existing is not None:
                return existing
            path = self.path(chain_id)
            remove_tree(path)  # a killed unpack's leftovers (unpacks before staging wrote in place)
            staging = self.layout.unpack_staging()
            try:
                diff = staging / LAYER_DIFF
                diff.mkdir(mode=0o755)
                if stream is not None:
                    result = unpack_layer(stream, blob["mediaType"], diff)
                else:
                    with self.blobs.open(blob["digest"]) as stored:
                        result = unpack_layer(stored, blob["mediaType"], diff)
                if result.diff_id != diff_id:
                    raise DigestMismatch(
                        f"layer {blob['digest']} unpacks to {result.diff_id}, but the image config says {diff_id}"
                    )
                record = LayerRecord(chain_id, diff_id, int(result.size), path, parent, dict(blob),
                                     directory_size(diff))
                atomic_write_json(staging / LAYER_RECORD, record.to_json(), durable=False)
                sync_layer()
                os.rename(staging, path)
            except BaseException:
                remove_tree(staging)
                raise
            fsync_dir(path.parent)
            return record

    def add_from_dir(self, src_dir: Path, parent_chain_id: str | None = None,
                     source_date_epoch: int | None = None, exclude: frozenset[str] = frozenset()) -> LayerRecord:
        """Pack a directory (e.g. an overlay upper dir) into a layer blob and store it as a layer
        (`exclude`: pack_layer's paths left out)."""
        from pyctr.image.pack import pack_layer

        self.layout.ensure()
        tmp = self.layout.scratch("pack", ".tar.gz")
        try:
            with open(tmp, "wb") as out:
                result = pack_layer(Path(src_dir), out, source_date_epoch=source_date_epoch, exclude=exclude)
                out.flush()
                os.fsync(out.fileno())
            digest = getattr(result, "digest", None) or file_digest(tmp)
            size = getattr(result, "compressed_size", None) or tmp.stat().st_size
            self.blobs.put_file(tmp, digest, size)
        finally:
            tmp.unlink(missing_ok=True)
        chain = chain_ids([parent_chain_id, result.diff_id])[1] if parent_chain_id else result.diff_id
        blob = {"mediaType": OCI_LAYER_GZIP, "digest": digest, "size": size}
        with self.layout.gc_lock(shared=True):
            return self.unpack_blob(blob, result.diff_id, chain, parent_chain_id)

    def compressed_blob(self, layer: LayerRecord) -> dict:
        """The layer's compressed blob descriptor (for push and save), packing the layer again if the blob is
        gone (a layer built before its blob was kept, or a blob removed by `system check`)."""
        if layer.blob and self.blobs.has(layer.blob["digest"]):
            return layer.blob
        from pyctr.image.pack import pack_layer

        self.layout.ensure()
        tmp = self.layout.scratch("repack", ".tar.gz")
        try:
            with open(tmp, "wb") as out:
                result = pack_layer(layer.diff_dir, out)
            if result.diff_id != layer.diff_id:
                raise StoreError(f"layer {layer.chain_id} no longer matches its diff id; the store is damaged "
                                 "(see `pyctr system check`)")
            digest = file_digest(tmp)
            size = tmp.stat().st_size
            self.blobs.put_file(tmp, digest, size)
        finally:
            tmp.unlink(missing_ok=True)
        return {"mediaType": OCI_LAYER_GZIP, "digest": digest, "size": size}

    def in_chain_order(self, layers: list[LayerRecord | str]) -> list[LayerRecord]:
        """LayerRecords as given, or found from diff ids (chained in order); each must be stored."""
        out: list[LayerRecord] = []
        diff_ids = [item.diff_id if isinstance(item, LayerRecord) else item for item in layers]
        for item, chain in zip(layers, chain_ids(diff_ids), strict=True):
            if isinstance(item, LayerRecord) and item.chain_id != chain:
                raise StoreError(f"layer {item.chain_id} was stored on another parent than the layers given before it")
            record = self.get(chain)
            if record is None:
                raise StoreError(f"layer {chain} is not in the store")
            out.append(record)
        return out
