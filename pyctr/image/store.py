"""The content store: blobs, unpacked layers, image records and tags under PYCTR_ROOT.

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
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import IO, Any

from pyctr.config import Paths
from pyctr.errors import (
    ConflictError,
    DigestMismatch,
    InvalidReference,
    NotFoundError,
    StoreError,
)
from pyctr.fsutil import atomic_write_json, ensure_dir, file_lock, fsync_dir, read_json, remove_tree
from pyctr.image.reference import Reference, is_sha256_digest, parse_reference

_HEX_PREFIX = re.compile(r"^[0-9a-f]{1,64}$")
REPOSITORIES = "repositories.json"


def sha256_hex(digest: str) -> str:
    """The hex part of a `sha256:` digest, refusing anything else (it becomes a file name)."""
    if not is_sha256_digest(digest):
        raise StoreError(f"not a sha256 digest: {digest!r}")
    return digest[7:]


def chain_ids(diff_ids: list[str]) -> list[str]:
    """OCI ChainID: chain[0] = diff[0]; chain[n] = sha256(chain[n-1] + " " + diff[n])."""
    out: list[str] = []
    for diff_id in diff_ids:
        if not out:
            out.append(diff_id)
        else:
            out.append("sha256:" + _sha256(f"{out[-1]} {diff_id}".encode()).hexdigest())
    return out


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


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
        return self.path / "diff"

    @property
    def diff_size(self) -> int:
        """The layer's size as Docker reports it (image Size, history SIZE): its files, not its tar."""
        return self.disk_size if self.disk_size is not None else directory_size(self.diff_dir)

    def to_json(self) -> dict:
        return {"chain_id": self.chain_id, "diff_id": self.diff_id, "size": self.size,
                "parent": self.parent, "blob": self.blob, "disk_size": self.disk_size}


@dataclass
class ImageRecord:
    """An image in the store: its config, its layers (base first) and the names pointing at it."""

    id: str
    layers: list[LayerRecord]
    manifest_digest: str | None
    manifest_media_type: str | None
    repo_tags: list[str]
    repo_digests: list[str]
    added: float
    store: ImageStore = field(repr=False)
    parent: str = ""  # the build step image this one was made from (legacy builder's intermediate images)

    @cached_property
    def config(self) -> dict:
        return json.loads(self.store.read_blob(self.id))

    @property
    def layer_dirs(self) -> list[Path]:
        return [layer.diff_dir for layer in self.layers]

    @property
    def created(self) -> str:
        return str(self.config.get("created") or "")

    @property
    def size(self) -> int:
        """Docker's image Size: the sum of its layers' DiffSize."""
        return sum(layer.diff_size for layer in self.layers)

    @property
    def short_id(self) -> str:
        return self.id[7:19]

    def graph_driver(self) -> dict:
        """overlay2's GraphDriver of an image as dockerd shows it: the top layer's dirs (Docker's own names) and
        the layers under it, top first, as LowerDir (absent for a single layer)."""
        if not self.layers:
            return {"Data": None, "Name": "overlay2"}
        top = self.layers[-1].path
        data = {"MergedDir": str(top / "merged"), "UpperDir": str(top / "diff"), "WorkDir": str(top / "work")}
        if len(self.layers) > 1:
            data = {"LowerDir": ":".join(str(d) for d in reversed(self.layer_dirs[:-1])), **data}
        return {"Data": data, "Name": "overlay2"}

    def inspect(self) -> dict:
        """Docker's `image inspect` document for this image."""
        cfg = self.config
        container_config = dict(cfg.get("config") or {})
        doc = {
            "Id": self.id,
            "RepoTags": self.repo_tags,
            "RepoDigests": self.repo_digests,
            "Parent": self.parent,
            "Comment": _comment(cfg),
            "Created": self.created,
            "Container": cfg.get("container", ""),
            "ContainerConfig": _docker_config(dict(cfg.get("container_config") or {})),
            "DockerVersion": cfg.get("docker_version", ""),
            "Author": cfg.get("author", ""),
            "Config": _docker_config(container_config),
            "Architecture": cfg.get("architecture", ""),
            "Os": cfg.get("os", ""),
            "Size": self.size,
            "VirtualSize": self.size,
            "GraphDriver": self.graph_driver(),
            "RootFS": {"Type": "layers", "Layers": [layer.diff_id for layer in self.layers]},
            "Metadata": {"LastTagTime": _iso_time(self.added)},
        }
        if cfg.get("variant"):  # `omitempty`, and placed as in Docker's ImageInspect struct
            doc = {k: v for key, value in doc.items()
                   for k, v in ([(key, value), ("Variant", cfg["variant"])] if key == "Architecture"
                                else [(key, value)])}
        return doc


class BlobWriter:
    """Receives one blob, hashing as it writes to tmp/; `commit` verifies then publishes it.

    A partial file left by a killed process is re-hashed and continued (resume).
    """

    def __init__(self, store: ImageStore, digest: str, size: int | None) -> None:
        self.digest = digest
        self.size = size
        self.final = store.blob_path(digest)
        self.partial = store.paths.tmp / f"blob-{sha256_hex(digest)}.partial"
        self._hash = _sha256()
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
        self._hash = _sha256()
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


class ImageStore:
    """The image half of PYCTR_ROOT (blobs/, layers/, images/)."""

    def __init__(self, paths: Paths) -> None:
        self.paths = paths

    # ------------------------------------------------------------------ setup and locks

    def ensure(self) -> None:
        for d in (self.paths.root, self.paths.blobs.parent, self.paths.blobs, self.paths.layers, self.paths.images,
                  self.paths.locks, self.paths.tmp):
            ensure_dir(d)

    def _lock(self, name: str, shared: bool = False) -> contextlib.AbstractContextManager[int]:
        return file_lock(self.paths.locks / f"{name}.lock", shared=shared)

    def records_lock(self) -> contextlib.AbstractContextManager[int]:
        return self._lock("images")

    def gc_lock(self, shared: bool) -> contextlib.AbstractContextManager[int]:
        """Shared while adding content, exclusive while deleting it."""
        return self._lock("image-gc", shared=shared)

    # ------------------------------------------------------------------ blobs

    def blob_path(self, digest: str) -> Path:
        return self.paths.blobs / sha256_hex(digest)

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def read_blob(self, digest: str) -> bytes:
        try:
            return self.blob_path(digest).read_bytes()
        except FileNotFoundError:
            raise StoreError(f"blob {digest} is missing from the store") from None

    def open_blob(self, digest: str) -> IO[bytes]:
        try:
            return open(self.blob_path(digest), "rb")
        except FileNotFoundError:
            raise StoreError(f"blob {digest} is missing from the store") from None

    @contextlib.contextmanager
    def blob_writer(self, digest: str, size: int | None) -> Iterator[BlobWriter | None]:
        """Hold the blob's lock; yield a writer, or None if the blob is already stored."""
        self.ensure()
        with self._lock(f"blob-{sha256_hex(digest)}"):
            if self.has_blob(digest):
                yield None
                return
            writer = BlobWriter(self, digest, size)
            try:
                yield writer
            finally:
                writer.close()

    def put_blob_bytes(self, data: bytes, digest: str | None = None) -> str:
        """Store small content (config, manifest), verifying `digest` when given."""
        actual = "sha256:" + _sha256(data).hexdigest()
        if digest is not None and digest != actual:
            raise DigestMismatch(f"content does not match its digest {digest} (got {actual})")
        with self.blob_writer(actual, len(data)) as writer:
            if writer is not None:
                writer.reset()
                writer.write(data)
                writer.commit()
        return actual

    def put_blob_file(self, src: Path, digest: str, size: int) -> None:
        """Move a verified temp file (e.g. a packed layer) into blobs/."""
        with self._lock(f"blob-{sha256_hex(digest)}"):
            if self.has_blob(digest):
                src.unlink(missing_ok=True)
                return
            os.rename(src, self.blob_path(digest))
            fsync_dir(self.paths.blobs)

    # ------------------------------------------------------------------ layers

    def layer_path(self, chain_id: str) -> Path:
        return self.paths.layers / sha256_hex(chain_id)

    def get_layer(self, chain_id: str) -> LayerRecord | None:
        """The complete layer `chain_id`, or None (also for a malformed id, e.g. from a stale cache entry)."""
        if not is_sha256_digest(chain_id or ""):
            return None
        path = self.layer_path(chain_id)
        try:
            doc = read_json(path / "layer.json")
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise StoreError(f"layer {chain_id} record is unreadable: {e}") from None
        disk_size = doc.get("disk_size")
        return LayerRecord(doc["chain_id"], doc["diff_id"], int(doc.get("size") or 0), path,
                           doc.get("parent"), doc.get("blob"), int(disk_size) if disk_size is not None else None)

    def unpack_blob_layer(self, blob: dict, diff_id: str, chain_id: str, parent: str | None) -> LayerRecord:
        """Unpack a stored compressed blob as layer `chain_id` (once; concurrent callers wait)."""
        from pyctr.image.unpack import unpack_layer

        with self._lock(f"layer-{sha256_hex(chain_id)}"):
            existing = self.get_layer(chain_id)
            if existing is not None:
                return existing
            path = self.layer_path(chain_id)
            remove_tree(path)  # a killed unpack's leftovers
            diff = path / "diff"
            ensure_dir(path)
            diff.mkdir(mode=0o755)
            try:
                with self.open_blob(blob["digest"]) as stream:
                    result = unpack_layer(stream, blob["mediaType"], diff)
                if result.diff_id != diff_id:
                    raise DigestMismatch(
                        f"layer {blob['digest']} unpacks to {result.diff_id}, but the image config says {diff_id}"
                    )
            except BaseException:
                remove_tree(path)
                raise
            record = LayerRecord(chain_id, diff_id, int(result.size), path, parent, dict(blob), directory_size(diff))
            atomic_write_json(path / "layer.json", record.to_json())
            return record

    def add_layer_from_dir(self, src_dir: Path, parent_chain_id: str | None = None,
                           source_date_epoch: int | None = None) -> LayerRecord:
        """Pack a directory (e.g. an overlay upper dir) into a layer blob and store it as a layer."""
        from pyctr.image.pack import pack_layer

        self.ensure()
        tmp = self.paths.tmp / f"pack-{os.getpid()}-{time.monotonic_ns()}.tar.gz"
        try:
            with open(tmp, "wb") as out:
                result = pack_layer(Path(src_dir), out, source_date_epoch=source_date_epoch)
                out.flush()
                os.fsync(out.fileno())
            digest = getattr(result, "digest", None) or file_digest(tmp)
            size = getattr(result, "compressed_size", None) or tmp.stat().st_size
            self.put_blob_file(tmp, digest, size)
        finally:
            tmp.unlink(missing_ok=True)
        chain = chain_ids([parent_chain_id, result.diff_id])[1] if parent_chain_id else result.diff_id
        blob = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": size}
        with self.gc_lock(shared=True):
            return self.unpack_blob_layer(blob, result.diff_id, chain, parent_chain_id)

    # ------------------------------------------------------------------ images

    def _record_path(self, image_id: str) -> Path:
        return self.paths.images / f"{sha256_hex(image_id)}.json"

    def put_image(self, config: dict | bytes, layers: list[LayerRecord | str], manifest: bytes | None = None,
                  manifest_media_type: str | None = None, parent: str | None = None) -> ImageRecord:
        """Record an image whose layers are all stored; returns its record (id = config digest).

        `parent`: the image a build step started from (Docker's Parent); it makes this one's parent an
        intermediate image that `images` hides and `rmi` of this one deletes when untagged."""
        self.ensure()
        records = self._layer_records(layers)
        if isinstance(config, dict):
            config = dict(config)
            config.setdefault("rootfs", {"type": "layers", "diff_ids": [r.diff_id for r in records]})
            config_bytes = canonical_json(config)
        else:
            config_bytes = config
        doc = json.loads(config_bytes)
        if (doc.get("rootfs") or {}).get("diff_ids", []) != [r.diff_id for r in records]:
            raise StoreError("image config rootfs.diff_ids do not match the layers given")
        image_id = self.put_blob_bytes(config_bytes)
        manifest_digest = self.put_blob_bytes(manifest) if manifest is not None else None
        record = {
            "id": image_id,
            "layers": [r.chain_id for r in records],
            "layer_blobs": [r.blob for r in records],
            "manifest_digest": manifest_digest,
            "manifest_media_type": manifest_media_type,
            "added": time.time(),
        }
        if parent:
            record["parent"] = parent
        with self.records_lock():
            path = self._record_path(image_id)
            if path.exists() and manifest_digest is None:
                old = read_json(path)
                record["manifest_digest"] = old.get("manifest_digest")
                record["manifest_media_type"] = old.get("manifest_media_type")
                record["added"] = old.get("added", record["added"])
                if not parent and old.get("parent"):
                    record["parent"] = old["parent"]  # a pull or load of a built image keeps its history
                if record == old:  # a fully cached build: nothing to write (or to wait on the disk for)
                    return self.get_image(image_id)
            atomic_write_json(path, record)
        return self.get_image(image_id)

    def _layer_records(self, layers: list[LayerRecord | str]) -> list[LayerRecord]:
        """LayerRecords as given, or found from diff ids (chained in order)."""
        out: list[LayerRecord] = []
        diff_ids = [item.diff_id if isinstance(item, LayerRecord) else item for item in layers]
        for item, chain in zip(layers, chain_ids(diff_ids), strict=True):
            if isinstance(item, LayerRecord) and item.chain_id != chain:
                raise StoreError(f"layer {item.chain_id} was stored on another parent than the layers given before it")
            record = self.get_layer(chain)
            if record is None:
                raise StoreError(f"layer {chain} is not in the store")
            out.append(record)
        return out

    def get_image(self, image_id: str) -> ImageRecord:
        try:
            doc = read_json(self._record_path(image_id))
        except FileNotFoundError:
            raise NotFoundError(f"No such image: {image_id}") from None
        except (OSError, ValueError) as e:
            raise StoreError(f"image record {image_id} is unreadable: {e}") from None
        layers = []
        for chain in doc["layers"]:
            layer = self.get_layer(chain)
            if layer is None:
                raise StoreError(f"image {image_id[:19]} is missing its layer {chain}")
            layers.append(layer)
        for layer, blob in zip(layers, doc.get("layer_blobs") or [], strict=False):
            if blob and not layer.blob:
                layer.blob = blob
        tags, digests = self._names_for(image_id)
        return ImageRecord(image_id, layers, doc.get("manifest_digest"), doc.get("manifest_media_type"),
                           tags, digests, float(doc.get("added") or 0), self, str(doc.get("parent") or ""))

    def image_ids(self) -> list[str]:
        if not self.paths.images.is_dir():
            return []
        return sorted("sha256:" + p.stem for p in self.paths.images.glob("*.json")
                      if p.name != REPOSITORIES and len(p.stem) == 64)

    def list_images(self) -> list[ImageRecord]:
        """Every complete image; one damaged record (e.g. a layer removed by hand) does not hide the others."""
        images = []
        for image_id in self.image_ids():
            with contextlib.suppress(NotFoundError, StoreError):
                images.append(self.get_image(image_id))
        return images

    # ------------------------------------------------------------------ names

    def _repositories(self) -> dict:
        try:
            doc = read_json(self.paths.images / REPOSITORIES)
        except FileNotFoundError:
            return {"tags": {}, "digests": {}}
        except (OSError, ValueError) as e:
            raise StoreError(f"{self.paths.images / REPOSITORIES} is unreadable: {e}") from None
        doc.setdefault("tags", {})
        doc.setdefault("digests", {})
        return doc

    def _write_repositories(self, doc: dict) -> None:
        atomic_write_json(self.paths.images / REPOSITORIES, doc)

    def _names_for(self, image_id: str) -> tuple[list[str], list[str]]:
        repos = self._repositories()
        tags = sorted(parse_reference(n).familiar for n, i in repos["tags"].items() if i == image_id)
        digests = sorted(parse_reference(n).familiar for n, i in repos["digests"].items() if i == image_id)
        return tags, digests

    def tag(self, reference: str | Reference, image_id: str) -> str | None:
        """Point a tag at an image; returns the image it pointed at before (if another)."""
        ref = parse_reference(reference) if isinstance(reference, str) else reference
        if ref.digest:
            raise InvalidReference(f"refusing to create a tag with a digest reference: {ref.familiar}")
        with self.records_lock():
            if not self._record_path(image_id).exists():
                raise NotFoundError(f"No such image: {image_id}")
            repos = self._repositories()
            previous = repos["tags"].get(str(ref))
            if previous == image_id:
                return None  # already so: nothing to write
            repos["tags"][str(ref)] = image_id
            self._write_repositories(repos)
        return previous

    def add_digest(self, ref: Reference, manifest_digest: str, image_id: str) -> None:
        """Record `name@digest` (Docker's RepoDigests) for an image pulled or pushed by manifest."""
        with self.records_lock():
            repos = self._repositories()
            repos["digests"][str(ref.trimmed().with_digest(manifest_digest))] = image_id
            self._write_repositories(repos)

    def untag(self, reference: str | Reference) -> str | None:
        """Remove a tag or digest name; returns the image id it named, or None if it named nothing."""
        ref = parse_reference(reference) if isinstance(reference, str) else reference
        with self.records_lock():
            repos = self._repositories()
            key = "digests" if ref.digest else "tags"
            name = str(ref.trimmed().with_digest(ref.digest)) if ref.digest else str(ref)
            image_id = repos[key].pop(name, None)
            if image_id is not None:
                self._write_repositories(repos)
        return image_id

    def lookup_name(self, ref: Reference) -> str | None:
        repos = self._repositories()
        if ref.digest:
            return repos["digests"].get(str(ref.trimmed().with_digest(ref.digest)))
        return repos["tags"].get(str(ref))

    def resolve(self, name_or_id: str) -> ImageRecord:
        """A reference (`busybox`, `host/x:tag`, `x@sha256:..`), a full id or a unique short id."""
        s = name_or_id.strip()
        if s.startswith("sha256:"):
            return self.get_image(self._by_id_prefix(s[7:], s))
        ref = None
        with contextlib.suppress(InvalidReference):
            ref = parse_reference(s)
        if ref is not None:
            image_id = self.lookup_name(ref)
            if image_id is not None and self._record_path(image_id).exists():
                return self.get_image(image_id)
        if _HEX_PREFIX.match(s):
            return self.get_image(self._by_id_prefix(s, s))
        raise NotFoundError(f"No such image: {s}")

    def _by_id_prefix(self, prefix: str, shown: str) -> str:
        if not _HEX_PREFIX.match(prefix):
            raise NotFoundError(f"No such image: {shown}")
        matches = [i for i in self.image_ids() if i[7:].startswith(prefix)]
        if not matches:
            raise NotFoundError(f"No such image: {shown}")
        if len(matches) > 1:
            raise ConflictError(f"image id prefix '{prefix}' is ambiguous: {len(matches)} images match")
        return matches[0]

    # ------------------------------------------------------------------ users and deletion

    def children(self) -> dict[str, list[str]]:
        """image id -> ids of the images recorded as built from it (Docker's image store Children)."""
        out: dict[str, list[str]] = {}
        for image_id in self.image_ids():
            try:
                parent = read_json(self._record_path(image_id)).get("parent")
            except (OSError, ValueError):
                continue
            if parent:
                out.setdefault(parent, []).append(image_id)
        return out

    def containers_using(self) -> dict[str, list[str]]:
        """image id -> ids of containers whose config.json names it (field `Image`/`image`/`image_id`)."""
        users: dict[str, list[str]] = {}
        base = self.paths.containers
        if not base.is_dir():
            return users
        for cfg in base.glob("*/config.json"):
            try:
                doc = read_json(cfg)
            except (OSError, ValueError):
                continue
            image_id = _image_field(doc)
            if image_id:
                users.setdefault(image_id, []).append(cfg.parent.name)
        return users

    def delete_image(self, image_id: str) -> list[str]:
        """Remove an image's record and every name pointing at it; returns the names removed.

        Layers and blobs no other image uses are garbage collected.
        """
        with self.gc_lock(shared=False):
            with self.records_lock():
                repos = self._repositories()
                removed = []
                for key in ("tags", "digests"):
                    for name, target in list(repos[key].items()):
                        if target == image_id:
                            del repos[key][name]
                            removed.append(name)
                self._write_repositories(repos)
                self._record_path(image_id).unlink(missing_ok=True)
                fsync_dir(self.paths.images)
            self._collect_garbage()
        return removed

    def _collect_garbage(self) -> tuple[int, int]:
        """Remove layers and blobs no image record refers to (call with the GC lock held)."""
        keep_layers: set[str] = set()
        keep_blobs: set[str] = set()
        for image_id in self.image_ids():
            try:
                doc = read_json(self._record_path(image_id))
            except (OSError, ValueError):
                continue
            keep_blobs.add(sha256_hex(image_id))
            if doc.get("manifest_digest"):
                keep_blobs.add(sha256_hex(doc["manifest_digest"]))
            for chain in doc.get("layers", []):
                keep_layers.add(sha256_hex(chain))
                layer = self.get_layer(chain)
                if layer and layer.blob:
                    keep_blobs.add(sha256_hex(layer.blob["digest"]))
            for blob in doc.get("layer_blobs") or []:
                if blob:
                    keep_blobs.add(sha256_hex(blob["digest"]))
        keep_layers |= self._layers_used_by_containers()
        self._remove_content_locks()
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

    def _remove_content_locks(self) -> None:
        """Per-blob and per-layer lock files are only taken under the shared GC lock, so with it held
        exclusively nobody holds or waits on them: removing them keeps locks/ from growing forever."""
        if not self.paths.locks.is_dir():
            return
        for path in self.paths.locks.iterdir():
            if re.match(r"^(blob|layer)-[0-9a-f]{64}\.lock$", path.name):
                path.unlink(missing_ok=True)

    def _layers_used_by_containers(self) -> set[str]:
        """Layer dirs named in any container config (their lowerdirs), kept even if the image is gone."""
        used: set[str] = set()
        base = self.paths.containers
        if not base.is_dir():
            return used
        marker = str(self.paths.layers) + "/"
        for cfg in base.glob("*/config.json"):
            with contextlib.suppress(OSError):
                text = cfg.read_text(errors="replace")
                for m in re.finditer(re.escape(marker) + r"([0-9a-f]{64})", text):
                    used.add(m.group(1))
        return used

    def collect_garbage(self) -> tuple[int, int]:
        """Unreferenced layers and blobs, plus temp files of processes that died (for prune)."""
        with self.gc_lock(shared=False):
            self._clean_tmp()
            return self._collect_garbage()

    def _clean_tmp(self) -> None:
        """Partial downloads nobody is writing (their blob lock is free) and staging files of dead processes.

        Downloads run under the shared GC lock, so with it held exclusively every partial is a leftover.
        """
        if not self.paths.tmp.is_dir():
            return
        for path in self.paths.tmp.iterdir():
            m = re.match(r"^blob-([0-9a-f]{64})\.partial$", path.name)
            if m:
                try:
                    with file_lock(self.paths.locks / f"blob-{m.group(1)}.lock", blocking=False):
                        path.unlink(missing_ok=True)
                except BlockingIOError:
                    pass
                continue
            pid = re.match(r"^[a-z-]+?-(\d+)-", path.name)
            if pid and not pid_alive(int(pid.group(1))):
                if path.is_dir():
                    remove_tree(path)
                else:
                    path.unlink(missing_ok=True)


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


def _image_field(doc: Any) -> str | None:
    if not isinstance(doc, dict):
        return None
    for key in ("Image", "image_id", "image", "ImageID"):
        value = doc.get(key)
        if isinstance(value, str) and value.startswith("sha256:"):
            return value
        if isinstance(value, dict):
            inner = _image_field(value)
            if inner:
                return inner
    return None


def pid_alive(pid: int) -> bool:
    """Whether a process holding a temp file (named after its pid) still runs: its file is not garbage yet."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sha256(data: bytes = b""):
    """hashlib.sha256, imported on first use: `run` and `images` never hash, and hashlib loads OpenSSL."""
    import hashlib

    return hashlib.sha256(data)


def file_digest(path: Path) -> str:
    h = _sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


_DOCKER_CONFIG_KEYS = ("Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr",
                       "ExposedPorts", "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd", "Healthcheck",
                       "ArgsEscaped", "Image", "Volumes", "WorkingDir", "Entrypoint", "OnBuild", "Labels",
                       "StopSignal", "Shell")


def _docker_config(cfg: dict) -> dict:
    """The image's container config with Docker's defaults for absent keys (inspect shows them all)."""
    defaults: dict[str, Any] = {"Hostname": "", "Domainname": "", "User": "", "AttachStdin": False,
                                "AttachStdout": False, "AttachStderr": False, "Tty": False, "OpenStdin": False,
                                "StdinOnce": False, "Env": None, "Cmd": None, "Image": "", "Volumes": None,
                                "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": None}
    out = {k: cfg.get(k, defaults.get(k)) for k in _DOCKER_CONFIG_KEYS if k in cfg or k in defaults}
    for k, v in cfg.items():
        out.setdefault(k, v)
    return out


def _comment(cfg: dict) -> str:
    history = cfg.get("history") or []
    return str(history[-1].get("comment", "")) if history and isinstance(history[-1], dict) else ""


def _iso_time(ts: float) -> str:
    import datetime

    if not ts:
        return "0001-01-01T00:00:00Z"
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
