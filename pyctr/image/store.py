"""The image store under PYCTR_ROOT: blobs, unpacked layers, image records and tags, and their garbage collector.

`ImageStore` is the one object callers hold; it puts together the narrower stores,
each the only writer of its part of the disk (paths and lock names in layout.py):
`BlobStore` (blobs.py, content-addressed, verified while streaming), `LayerStore`
(layers.py, chain ids, diff dirs, layer.json) and `ImageRecords` + `TagStore`
(records.py, images/*.json and repositories.json).

Crash safety is by ordering: a blob appears in blobs/ only after its digest
and size were verified while it streamed; a layer counts only once its
layer.json exists (written last); an image is listed only once its record
exists, which is written after all its layers. So a SIGKILL at any moment
leaves at worst a partial download in tmp/ (resumed next time) or a layer
dir without layer.json (redone next time), never a half image.
Concurrency is by flock: one lock per blob and per layer, so two pulls of the
same image download and unpack each thing once, and one lock for records and
tags. Pulls hold the GC lock shared; deleting holds it exclusively, so
garbage collection never removes a layer a running pull is about to use.

The store does not know where containers live: what they hold is handed in as
an `InUse`, computed by the runtime (`pyctr.runtime.listing.image_users`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from pyctr.config import Paths
from pyctr.fsutil import remove_tree
from pyctr.image.blobs import BlobStore, BlobWriter, file_digest
from pyctr.image.layers import LayerRecord, LayerStore, chain_ids, directory_size
from pyctr.image.layout import CONTENT_LOCK, PARTIAL_BLOB, PID_NAMED, StoreLayout, pid_alive, sha256_hex
from pyctr.image.records import ImageRecord, ImageRecords, TagStore, canonical_json
from pyctr.image.reference import Reference, parse_reference

__all__ = [  # the names callers have always imported from here, each defined in its own module
    "BlobWriter", "ImageRecord", "ImageStore", "InUse", "LayerRecord", "canonical_json", "chain_ids",
    "directory_size", "file_digest", "pid_alive", "sha256_hex",
]


@dataclass(frozen=True)
class InUse:
    """What containers hold, as the runtime reports it: image id -> ids of the containers created from it, and
    the layer directories (chain id hex) their root filesystems stack. Images in use are not deleted without
    force; layers in use outlive their image."""

    images: Mapping[str, list[str]] = field(default_factory=dict)
    layers: frozenset[str] = frozenset()


class ImageStore:
    """The image half of PYCTR_ROOT (blobs/, layers/, images/): one facade over the blob, layer and image/tag
    stores, plus deleting and garbage collection, which span all three."""

    def __init__(self, paths: Paths) -> None:
        self.paths = paths
        self.layout = StoreLayout(paths)
        self.blobs = BlobStore(self.layout)
        self.layers = LayerStore(self.layout, self.blobs)
        self.tags = TagStore(self.layout)
        self.images = ImageRecords(self.layout, self.blobs, self.layers, self.tags)

    # ------------------------------------------------------------------ setup and locks

    def ensure(self) -> None:
        self.layout.ensure()

    def records_lock(self) -> contextlib.AbstractContextManager[int]:
        return self.layout.records_lock()

    def gc_lock(self, shared: bool) -> contextlib.AbstractContextManager[int]:
        """Shared while adding content, exclusive while deleting it."""
        return self.layout.gc_lock(shared)

    # ------------------------------------------------------------------ blobs

    def blob_path(self, digest: str) -> Path:
        return self.blobs.path(digest)

    def has_blob(self, digest: str) -> bool:
        return self.blobs.has(digest)

    def read_blob(self, digest: str) -> bytes:
        return self.blobs.read(digest)

    def open_blob(self, digest: str) -> IO[bytes]:
        return self.blobs.open(digest)

    def blob_writer(self, digest: str, size: int | None) -> contextlib.AbstractContextManager[BlobWriter | None]:
        """Hold the blob's lock; yield a writer, or None if the blob is already stored."""
        return self.blobs.writer(digest, size)

    def put_blob_bytes(self, data: bytes, digest: str | None = None) -> str:
        return self.blobs.put_bytes(data, digest)

    def put_blob_file(self, src: Path, digest: str, size: int) -> None:
        self.blobs.put_file(src, digest, size)

    # ------------------------------------------------------------------ layers

    def layer_path(self, chain_id: str) -> Path:
        return self.layers.path(chain_id)

    def get_layer(self, chain_id: str) -> LayerRecord | None:
        return self.layers.get(chain_id)

    def unpack_blob_layer(self, blob: dict, diff_id: str, chain_id: str, parent: str | None,
                          stream: IO[bytes] | None = None) -> LayerRecord:
        return self.layers.unpack_blob(blob, diff_id, chain_id, parent, stream)

    def add_layer_from_dir(self, src_dir: Path, parent_chain_id: str | None = None,
                           source_date_epoch: int | None = None, exclude: frozenset[str] = frozenset()) -> LayerRecord:
        return self.layers.add_from_dir(src_dir, parent_chain_id, source_date_epoch, exclude)

    def layer_blob(self, layer: LayerRecord) -> dict:
        """The layer's compressed blob descriptor, packing the layer again if the blob is gone."""
        return self.layers.compressed_blob(layer)

    # ------------------------------------------------------------------ images and names

    def put_image(self, config: dict | bytes, layers: list[LayerRecord | str], manifest: bytes | None = None,
                  manifest_media_type: str | None = None, parent: str | None = None) -> ImageRecord:
        return self.images.put(config, layers, manifest, manifest_media_type, parent)

    def get_image(self, image_id: str) -> ImageRecord:
        return self.images.get(image_id)

    def image_ids(self) -> list[str]:
        return self.images.ids()

    def list_images(self) -> list[ImageRecord]:
        return self.images.list()

    def resolve(self, name_or_id: str) -> ImageRecord:
        return self.images.resolve(name_or_id)

    def children(self) -> dict[str, list[str]]:
        return self.images.children()

    def tag(self, reference: str | Reference, image_id: str, announce: bool = True) -> str | None:
        """Point a name at an image; `announce` records dockerd's `tag` event (pull and load name their images
        without one, as dockerd's reference store does)."""
        previous = self.images.tag(reference, image_id)
        if announce:
            name = reference.familiar if not isinstance(reference, str) else parse_reference(reference).familiar
            self.record_event("tag", image_id, name)
        return previous

    def untag(self, reference: str | Reference) -> str | None:
        image_id = self.images.untag(reference)
        if image_id is not None:
            self.record_event("untag", image_id, image_id)
        return image_id

    def record_event(self, action: str, actor_id: str, name: str) -> None:
        """dockerd's LogImageEvent: the actor and its `name` attribute (events journal, pyctr/events.py)."""
        from pyctr import events

        events.record(self.paths.root, "image", action, actor_id, {"name": name})

    def add_digest(self, ref: Reference, manifest_digest: str, image_id: str) -> None:
        self.images.add_digest(ref, manifest_digest, image_id)

    def lookup_name(self, ref: Reference) -> str | None:
        return self.tags.lookup(ref)

    # ------------------------------------------------------------------ deletion and garbage collection

    def delete_image(self, image_id: str, in_use: InUse | None = None) -> list[str]:
        """Remove an image's record and every name pointing at it; returns the names removed.

        Layers and blobs no other image (and, per `in_use`, no container) uses are garbage collected.
        """
        with self.gc_lock(shared=False):
            removed = self.images.remove(image_id)
            self.sweep(in_use or InUse())
        for _ in removed:  # dockerd's imageDeleteHelper: an untag per name, then the delete
            self.record_event("untag", image_id, image_id)
        self.record_event("delete", image_id, image_id)
        return removed

    def collect_garbage(self, in_use: InUse | None = None) -> tuple[int, int]:
        """Unreferenced layers and blobs, plus temp files of processes that died (for prune)."""
        with self.gc_lock(shared=False):
            self.clean_tmp()
            return self.sweep(in_use or InUse())

    def referenced(self) -> tuple[set[str], set[str]]:
        """(layer dir names, blob file names) the image records refer to."""
        keep_layers: set[str] = set()
        keep_blobs: set[str] = set()
        for image_id in self.images.ids():
            try:
                doc = self.images.read_doc(image_id)
            except (OSError, ValueError):
                continue
            keep_blobs.add(sha256_hex(image_id))
            if doc.get("manifest_digest"):
                keep_blobs.add(sha256_hex(doc["manifest_digest"]))
            for chain in doc.get("layers", []):
                keep_layers.add(sha256_hex(chain))
                layer = self.layers.get(chain)
                if layer and layer.blob:
                    keep_blobs.add(sha256_hex(layer.blob["digest"]))
            for blob in doc.get("layer_blobs") or []:
                if blob:
                    keep_blobs.add(sha256_hex(blob["digest"]))
        return keep_layers, keep_blobs

    def sweep(self, in_use: InUse) -> tuple[int, int]:
        """Remove layers and blobs nothing refers to (call with the GC lock held exclusively); (layers, blobs)."""
        keep_layers, keep_blobs = self.referenced()
        keep_layers |= in_use.layers
        self.remove_content_locks()
        freed_layers = freed_blobs = 0
        if self.paths.layers.is_dir():
            for path in self.paths.layers.iterdir():
                if path.name not in keep_layers:
                    remove_tree(path)
                    freed_layers += 1
        if self.paths.blobs.is_dir():
            for path in self.paths.blobs.iterdir():
                if path.name not in keep_blobs:
                    path.unlink(missing_ok=True)
                    freed_blobs += 1
        return freed_layers, freed_blobs

    def remove_content_locks(self) -> None:
        """Per-blob and per-layer lock files are only taken under the shared GC lock, so with it held
        exclusively nobody holds or waits on them: removing them keeps locks/ from growing forever."""
        if not self.paths.locks.is_dir():
            return
        for path in self.paths.locks.iterdir():
            if CONTENT_LOCK.match(path.name):
                path.unlink(missing_ok=True)

    def clean_tmp(self) -> None:
        """Partial downloads nobody is writing (their blob lock is free) and staging files of dead processes.

        Downloads run under the shared GC lock, so with it held exclusively every partial is a leftover.
        """
        if not self.paths.tmp.is_dir():
            return
        for path in self.paths.tmp.iterdir():
            m = PARTIAL_BLOB.match(path.name)
            if m:
                with contextlib.suppress(BlockingIOError), \
                        self.layout.blob_lock("sha256:" + m.group(1), blocking=False):
                    path.unlink(missing_ok=True)
                continue
            pid = PID_NAMED.match(path.name)
            if pid and not pid_alive(int(pid.group(1))):
                if path.is_dir():
                    remove_tree(path)
                else:
                    path.unlink(missing_ok=True)

