"""`save` and `load` in Docker's docker-archive format (what `docker save` writes).

Layout: manifest.json ([{Config, RepoTags, Layers}]), repositories, <config-hex>.json,
and one <id>/layer.tar (uncompressed) per layer. `load` also accepts what
newer Docker writes (Layers as blobs/sha256/<hex>, possibly compressed) and
layer entries that are symlinks to another layer's tar, as moby dedupes.
The archive is staged under tmp/ (member names checked, only regular files
and in-archive symlinks), layers are verified against the config's diff_ids
by unpacking, and the image is recorded last, as a pull does.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import posixpath
import shutil
import tarfile
from pathlib import Path
from typing import IO

from pyctr.errors import InvalidReference, StoreError, UnsafeArchiveError
from pyctr.image.manifest import OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD
from pyctr.image.reference import parse_reference
from pyctr.image.store import ImageRecord, ImageStore, chain_ids, file_digest, sha256_hex

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
FIXED_MTIME = 0


# ---------------------------------------------------------------- save

def save_images(store: ImageStore, names: list[str], out: IO[bytes]) -> None:
    """Write a docker-archive of the named images to `out` (a stream; no seeking needed)."""
    entries, repositories, written = [], {}, set()
    images: list[tuple[ImageRecord, list[str]]] = []
    for name in names:
        image = store.resolve(name)
        tags = []
        if not name.startswith("sha256:") and not _is_id_prefix(store, name, image):
            with contextlib.suppress(InvalidReference):
                ref = parse_reference(name)
                if not ref.digest:
                    tags.append(ref.familiar)
        images.append((image, tags))
    with store.gc_lock(shared=True), tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for image, tags in images:
            layer_paths, parent = [], ""
            for layer in image.layers:
                hexid = sha256_hex(layer.diff_id)
                if hexid not in written:
                    _add_layer(store, tar, layer, hexid, parent)
                    written.add(hexid)
                layer_paths.append(f"{hexid}/layer.tar")
                parent = hexid
            config_name = f"{image.id[7:]}.json"
            if config_name not in written:
                _add_bytes(tar, config_name, store.read_blob(image.id))
                written.add(config_name)
            entries.append({"Config": config_name, "RepoTags": tags or None, "Layers": layer_paths})
            for t in tags:
                repo, _, tag_name = t.rpartition(":")
                repositories.setdefault(repo, {})[tag_name] = parent
        _add_bytes(tar, "manifest.json", json.dumps(entries, separators=(",", ":")).encode())
        if repositories:
            _add_bytes(tar, "repositories", json.dumps(repositories, separators=(",", ":")).encode())
    for image, _ in images:
        store.record_event("save", image.id, image.id)


def _is_id_prefix(store: ImageStore, name: str, image: ImageRecord) -> bool:
    try:
        ref = parse_reference(name)
    except InvalidReference:
        return True
    return store.lookup_name(ref) != image.id


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = FIXED_MTIME
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    info.mtime = FIXED_MTIME
    tar.addfile(info)


def _add_layer(store: ImageStore, tar: tarfile.TarFile, layer, hexid: str, parent: str) -> None:
    """Add `<hexid>/layer.tar` (uncompressed, verified against the diff id), VERSION and json."""
    blob = store.layer_blob(layer)
    store.ensure()
    tmp = store.layout.scratch("save", ".tar")
    try:
        with store.open_blob(blob["digest"]) as src, open(tmp, "wb") as dst:
            diff_id = _decompress_to(src, dst)
        if diff_id != layer.diff_id:
            raise StoreError(f"layer {layer.chain_id} does not match its diff id {layer.diff_id}; store corrupt")
        _add_dir(tar, hexid)
        _add_bytes(tar, f"{hexid}/VERSION", b"1.0")
        legacy = {"id": hexid, "created": "1970-01-01T00:00:00Z", "container_config": {}}
        if parent:
            legacy["parent"] = parent
        _add_bytes(tar, f"{hexid}/json", json.dumps(legacy).encode())
        info = tarfile.TarInfo(f"{hexid}/layer.tar")
        info.size = tmp.stat().st_size
        info.mode = 0o644
        info.mtime = FIXED_MTIME
        with open(tmp, "rb") as f:
            tar.addfile(info, f)
    finally:
        tmp.unlink(missing_ok=True)


def _decompress_to(src: IO[bytes], dst: IO[bytes]) -> str:
    """Copy `src` to `dst` uncompressed (gzip, zstd or plain by magic); returns sha256 of what was written."""
    head = src.read(4)
    src.seek(0)
    if head[:2] == GZIP_MAGIC:
        import gzip

        reader: IO[bytes] = gzip.GzipFile(fileobj=src)
    elif head == ZSTD_MAGIC:
        import zstandard

        reader = zstandard.ZstdDecompressor().stream_reader(src)
    else:
        reader = src
    h = hashlib.sha256()
    while chunk := reader.read(1 << 20):
        h.update(chunk)
        dst.write(chunk)
    return "sha256:" + h.hexdigest()


# ---------------------------------------------------------------- load

def load_archive(store: ImageStore, stream: IO[bytes]) -> list[str]:
    """Load every image of a docker-archive; returns Docker's "Loaded image: ..." lines."""
    store.ensure()
    staging = store.layout.scratch("load")
    staging.mkdir(mode=0o700)
    try:
        links = _stage(stream, staging)
        manifest = _read_member_json(staging, links, "manifest.json")
        if not isinstance(manifest, list):
            raise UnsafeArchiveError("manifest.json in the archive is not a list")
        lines = []
        with store.gc_lock(shared=True):
            for entry in manifest:
                lines += _load_entry(store, staging, links, entry)
        return lines
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _safe_name(name: str) -> str:
    norm = posixpath.normpath(name.lstrip("./") if name.startswith("./") else name)
    if norm.startswith("/") or norm == ".." or norm.startswith("../") or "\x00" in norm:
        raise UnsafeArchiveError(f"archive member '{name}' points outside the archive")
    return norm


def _stage(stream: IO[bytes], staging: Path) -> dict[str, str]:
    """Write the archive's regular files under `staging` (flat names); return its symlinks (name -> target)."""
    links: dict[str, str] = {}
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as tar:
            for member in tar:
                name = _safe_name(member.name)
                if member.issym():
                    target = _safe_name(posixpath.join(posixpath.dirname(name), member.linkname))
                    links[name] = target
                elif member.islnk():
                    links[name] = _safe_name(member.linkname)
                elif member.isfile():
                    src = tar.extractfile(member)
                    dest = staging / _flat(name)
                    with open(dest, "wb") as f:
                        shutil.copyfileobj(src, f, 1 << 20)
    except tarfile.TarError as e:
        raise UnsafeArchiveError(f"invalid tar archive: {e}") from None
    return links


def _flat(name: str) -> str:
    """A staging file name for an archive path (no directories to create, nothing to escape)."""
    return name.replace("%", "%25").replace("/", "%2F")


def _member_path(staging: Path, links: dict[str, str], name: str) -> Path:
    name = _safe_name(name)
    for _ in range(16):
        if name not in links:
            break
        name = links[name]
    path = staging / _flat(name)
    if not path.is_file():
        raise UnsafeArchiveError(f"archive has no file '{name}'")
    return path


def _read_member_json(staging: Path, links: dict[str, str], name: str) -> object:
    try:
        return json.loads(_member_path(staging, links, name).read_bytes())
    except ValueError:
        raise UnsafeArchiveError(f"{name} in the archive is not JSON") from None


def _load_entry(store: ImageStore, staging: Path, links: dict[str, str], entry: dict) -> list[str]:
    if not isinstance(entry, dict) or "Config" not in entry or not isinstance(entry.get("Layers"), list):
        raise UnsafeArchiveError("manifest.json entry needs Config and Layers")
    config_bytes = _member_path(staging, links, entry["Config"]).read_bytes()
    try:
        config = json.loads(config_bytes)
    except ValueError:
        raise UnsafeArchiveError("image config in the archive is not JSON") from None
    diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
    if len(diff_ids) != len(entry["Layers"]):
        raise UnsafeArchiveError(f"image config lists {len(diff_ids)} layers, manifest.json {len(entry['Layers'])}")
    chains = chain_ids(diff_ids)
    records = []
    for i, layer_name in enumerate(entry["Layers"]):
        existing = store.get_layer(chains[i])
        if existing is not None:
            records.append(existing)
            continue
        path = _member_path(staging, links, layer_name)
        blob = _store_layer_blob(store, path)
        records.append(store.unpack_blob_layer(blob, diff_ids[i], chains[i], chains[i - 1] if i else None))
    image = store.put_image(config_bytes, records)
    lines = []
    for tag in entry.get("RepoTags") or []:
        ref = parse_reference(tag)
        store.tag(ref, image.id, announce=False)
        lines.append(f"Loaded image: {ref.familiar}")
    if not lines:
        lines.append(f"Loaded image ID: {image.id}")
    store.record_event("load", image.id, image.id)
    return lines


def _store_layer_blob(store: ImageStore, path: Path) -> dict:
    """File a staged layer tar as a blob, typed by its magic bytes."""
    with open(path, "rb") as f:
        head = f.read(4)
    media_type = OCI_LAYER_GZIP if head[:2] == GZIP_MAGIC else OCI_LAYER_ZSTD if head == ZSTD_MAGIC else OCI_LAYER
    digest = file_digest(path)
    size = path.stat().st_size
    if not store.has_blob(digest):
        copy = store.layout.scratch("blob-load")
        shutil.copyfile(path, copy)
        store.put_blob_file(copy, digest, size)
    return {"mediaType": media_type, "digest": digest, "size": size}
