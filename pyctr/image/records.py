"""The image and tag store: image records under images/ and the names pointing at them (repositories.json).

An image is listed only once its record exists, and the record is written after
all its layers: a record never names a layer that is not complete. Records and
names change under one flock (the records lock).
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from pyctr.errors import ConflictError, InvalidReference, NotFoundError, StoreError
from pyctr.fsutil import atomic_write_json, fsync_dir, read_json
from pyctr.image.blobs import BlobStore
from pyctr.image.layers import LayerRecord, LayerStore
from pyctr.image.layout import HEX_PREFIX, REPOSITORIES, StoreLayout
from pyctr.image.reference import Reference, parse_reference


def canonical_json(obj: Any) -> bytes:
    """The bytes pyctr hashes for a config it writes: sorted keys, no spaces (stable ids for equal configs)."""
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


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
    store: ImageRecords = field(repr=False)
    parent: str = ""  # the build step image this one was made from (legacy builder's intermediate images)

    @cached_property
    def config(self) -> dict:
        return json.loads(self.store.blobs.read(self.id))

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


class TagStore:
    """images/repositories.json: tags (`name:tag` -> image id) and digests (`name@digest` -> image id)."""

    def __init__(self, layout: StoreLayout) -> None:
        self.layout = layout

    def read(self) -> dict:
        """The whole names document ({"tags": {...}, "digests": {...}}); read it under the records lock to
        change it."""
        try:
            doc = read_json(self.layout.repositories)
        except FileNotFoundError:
            return {"tags": {}, "digests": {}}
        except (OSError, ValueError) as e:
            raise StoreError(f"{self.layout.repositories} is unreadable: {e}") from None
        doc.setdefault("tags", {})
        doc.setdefault("digests", {})
        return doc

    def write(self, doc: dict) -> None:
        atomic_write_json(self.layout.repositories, doc)

    def names_for(self, image_id: str) -> tuple[list[str], list[str]]:
        """(RepoTags, RepoDigests) of an image, in Docker's familiar form."""
        repos = self.read()
        tags = sorted(parse_reference(n).familiar for n, i in repos["tags"].items() if i == image_id)
        digests = sorted(parse_reference(n).familiar for n, i in repos["digests"].items() if i == image_id)
        return tags, digests

    def lookup(self, ref: Reference) -> str | None:
        repos = self.read()
        if ref.digest:
            return repos["digests"].get(str(ref.trimmed().with_digest(ref.digest)))
        return repos["tags"].get(str(ref))

    def set_tag(self, ref: Reference, image_id: str) -> str | None:
        """Point a tag at an image (call with the records lock); the image it named before, if another."""
        repos = self.read()
        previous = repos["tags"].get(str(ref))
        if previous == image_id:
            return None  # already so: nothing to write
        repos["tags"][str(ref)] = image_id
        self.write(repos)
        return previous

    def add_digest(self, ref: Reference, manifest_digest: str, image_id: str) -> None:
        """Record `name@digest` (call with the records lock)."""
        repos = self.read()
        repos["digests"][str(ref.trimmed().with_digest(manifest_digest))] = image_id
        self.write(repos)

    def remove(self, ref: Reference) -> str | None:
        """Remove a tag or digest name (call with the records lock); the image id it named, or None."""
        repos = self.read()
        key = "digests" if ref.digest else "tags"
        name = str(ref.trimmed().with_digest(ref.digest)) if ref.digest else str(ref)
        image_id = repos[key].pop(name, None)
        if image_id is not None:
            self.write(repos)
        return image_id

    def remove_all_for(self, image_id: str) -> list[str]:
        """Remove every name of an image (call with the records lock); the names removed."""
        repos = self.read()
        removed = []
        for key in ("tags", "digests"):
            for name, target in list(repos[key].items()):
                if target == image_id:
                    del repos[key][name]
                    removed.append(name)
        self.write(repos)
        return removed


class ImageRecords:
    """images/: one record per image (its layers by chain id, manifest, parent), found by name or id."""

    def __init__(self, layout: StoreLayout, blobs: BlobStore, layers: LayerStore, tags: TagStore) -> None:
        self.layout = layout
        self.blobs = blobs
        self.layers = layers
        self.tags = tags

    def exists(self, image_id: str) -> bool:
        return self.layout.image_record(image_id).exists()

    def put(self, config: dict | bytes, layers: list[LayerRecord | str], manifest: bytes | None = None,
            manifest_media_type: str | None = None, parent: str | None = None) -> ImageRecord:
        """Record an image whose layers are all stored; returns its record (id = config digest).

        `parent`: the image a build step started from (Docker's Parent); it makes this one's parent an
        intermediate image that `images` hides and `rmi` of this one deletes when untagged."""
        self.layout.ensure()
        records = self.layers.in_chain_order(layers)
        if isinstance(config, dict):
            config = dict(config)
            config.setdefault("rootfs", {"type": "layers", "diff_ids": [r.diff_id for r in records]})
            config_bytes = canonical_json(config)
        else:
            config_bytes = config
        doc = json.loads(config_bytes)
        if (doc.get("rootfs") or {}).get("diff_ids", []) != [r.diff_id for r in records]:
            raise StoreError("image config rootfs.diff_ids do not match the layers given")
        image_id = self.blobs.put_bytes(config_bytes)
        manifest_digest = self.blobs.put_bytes(manifest) if manifest is not None else None
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
        with self.layout.records_lock():
            path = self.layout.image_record(image_id)
            if path.exists() and manifest_digest is None:
                old = read_json(path)
                record["manifest_digest"] = old.get("manifest_digest")
                record["manifest_media_type"] = old.get("manifest_media_type")
                record["added"] = old.get("added", record["added"])
                if not parent and old.get("parent"):
                    record["parent"] = old["parent"]  # a pull or load of a built image keeps its history
                if record == old:  # a fully cached build: nothing to write (or to wait on the disk for)
                    return self.get(image_id)
            atomic_write_json(path, record)
        return self.get(image_id)

    def get(self, image_id: str) -> ImageRecord:
        try:
            doc = read_json(self.layout.image_record(image_id))
        except FileNotFoundError:
            raise NotFoundError(f"No such image: {image_id}") from None
        except (OSError, ValueError) as e:
            raise StoreError(f"image record {image_id} is unreadable: {e}") from None
        layers = []
        for chain in doc["layers"]:
            layer = self.layers.get(chain)
            if layer is None:
                raise StoreError(f"image {image_id[:19]} is missing its layer {chain}")
            layers.append(layer)
        for layer, blob in zip(layers, doc.get("layer_blobs") or [], strict=False):
            if blob and not layer.blob:
                layer.blob = blob
        tags, digests = self.tags.names_for(image_id)
        return ImageRecord(image_id, layers, doc.get("manifest_digest"), doc.get("manifest_media_type"),
                           tags, digests, float(doc.get("added") or 0), self, str(doc.get("parent") or ""))

    def read_doc(self, image_id: str) -> dict:
        """The raw record (layers by chain id, layer_blobs, manifest_digest, parent): what the GC keeps."""
        return read_json(self.layout.image_record(image_id))

    def ids(self) -> list[str]:
        images = self.layout.paths.images
        if not images.is_dir():
            return []
        return sorted("sha256:" + p.stem for p in images.glob("*.json")
                      if p.name != REPOSITORIES and len(p.stem) == 64)

    def list(self) -> list[ImageRecord]:
        """Every complete image; one damaged record (e.g. a layer removed by hand) does not hide the others."""
        images = []
        for image_id in self.ids():
            with contextlib.suppress(NotFoundError, StoreError):
                images.append(self.get(image_id))
        return images

    def remove(self, image_id: str) -> list[str]:
        """Remove an image's record and every name pointing at it; returns the names removed (content stays:
        that is the garbage collector's)."""
        with self.layout.records_lock():
            removed = self.tags.remove_all_for(image_id)
            self.layout.image_record(image_id).unlink(missing_ok=True)
            fsync_dir(self.layout.paths.images)
        return removed

    def tag(self, reference: str | Reference, image_id: str) -> str | None:
        """Point a tag at an image; returns the image it pointed at before (if another)."""
        ref = parse_reference(reference) if isinstance(reference, str) else reference
        if ref.digest:
            raise InvalidReference(f"refusing to create a tag with a digest reference: {ref.familiar}")
        with self.layout.records_lock():
            if not self.exists(image_id):
                raise NotFoundError(f"No such image: {image_id}")
            return self.tags.set_tag(ref, image_id)

    def untag(self, reference: str | Reference) -> str | None:
        """Remove a tag or digest name; returns the image id it named, or None if it named nothing."""
        ref = parse_reference(reference) if isinstance(reference, str) else reference
        with self.layout.records_lock():
            return self.tags.remove(ref)

    def add_digest(self, ref: Reference, manifest_digest: str, image_id: str) -> None:
        """Record `name@digest` (Docker's RepoDigests) for an image pulled or pushed by manifest."""
        with self.layout.records_lock():
            self.tags.add_digest(ref, manifest_digest, image_id)

    def resolve(self, name_or_id: str) -> ImageRecord:
        """A reference (`busybox`, `host/x:tag`, `x@sha256:..`), a full id or a unique short id."""
        s = name_or_id.strip()
        if s.startswith("sha256:"):
            return self.get(self.by_id_prefix(s[7:], s))
        ref = None
        with contextlib.suppress(InvalidReference):
            ref = parse_reference(s)
        if ref is not None:
            image_id = self.tags.lookup(ref)
            if image_id is not None and self.exists(image_id):
                return self.get(image_id)
        if HEX_PREFIX.match(s):
            return self.get(self.by_id_prefix(s, s))
        raise NotFoundError(f"No such image: {s}")

    def by_id_prefix(self, prefix: str, shown: str) -> str:
        """The one image id starting with `prefix` (NotFoundError: none; ConflictError: several)."""
        if not HEX_PREFIX.match(prefix):
            raise NotFoundError(f"No such image: {shown}")
        matches = [i for i in self.ids() if i[7:].startswith(prefix)]
        if not matches:
            raise NotFoundError(f"No such image: {shown}")
        if len(matches) > 1:
            raise ConflictError(f"image id prefix '{prefix}' is ambiguous: {len(matches)} images match")
        return matches[0]

    def children(self) -> dict[str, list[str]]:
        """image id -> ids of the images recorded as built from it (Docker's image store Children)."""
        out: dict[str, list[str]] = {}
        for image_id in self.ids():
            try:
                parent = self.read_doc(image_id).get("parent")
            except (OSError, ValueError):
                continue
            if parent:
                out.setdefault(parent, []).append(image_id)
        return out


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
