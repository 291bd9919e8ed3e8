"""The build cache: which layer a step produced, keyed by everything that decides its result.

A step is reused only when its parent (the digest of the image config so far,
which covers env, workdir, user, shell and every layer), its instruction
after ARG/ENV substitution and, for COPY/ADD, the content and metadata of
what will be copied (mode, uid/gid as set, link targets; not mtimes, like
Docker) are all the same. Entries live in PYCTR_ROOT/buildcache/<key>.json
and only name layers; a layer the store no longer has is a miss.

A COPY from the build context is decided before anything is copied: `sources_digest` records each source
(paths, kinds, modes, link targets, content hashes) straight from the context, and `ContentHashes` reuses a
file's hash while its (size, mtime, inode, ctime) stay the same, as BuildKit's content cache does. Only a
step that misses copies its sources (measured: a cached build of a 20k-file, 100 MB context no longer copies
and hashes the whole context).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pyctr.build.staging import walk_tree
from pyctr.fsutil import atomic_write_json, ensure_dir, read_json

CACHE_VERSION = 1


def _digest(obj: Any) -> str:
    data = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(data).hexdigest()


def step_key(parent_id: str, instruction: Any, sources_digest: str | None = None) -> str:
    """The cache key of one step (hex)."""
    return _digest({"v": CACHE_VERSION, "parent": parent_id, "instruction": instruction,
                    "sources": sources_digest})


def tree_digest(root: Path) -> str:
    """Content and metadata of a staged directory tree (what a COPY will write), mtimes excluded."""
    h = hashlib.sha256()
    for rel, path, st in walk_tree(root):
        kind = stat.S_IFMT(st.st_mode)
        h.update(f"{rel}\0{kind:o}\0{stat.S_IMODE(st.st_mode):o}\0{st.st_uid}\0{st.st_gid}\0".encode())
        if stat.S_ISLNK(st.st_mode):
            h.update(os.readlink(path).encode() + b"\0")
        elif stat.S_ISREG(st.st_mode):
            h.update(file_digest(path).encode() + b"\0")
    return h.hexdigest()


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def is_empty_dir(path: Path) -> bool:
    """An upper/staging dir that changed nothing (Docker marks such steps `empty_layer`)."""
    with os.scandir(path) as it:
        return next(it, None) is None


class BuildCache:
    """Step key -> {"chain_id", "diff_id"} (or {"empty": true}) under PYCTR_ROOT/buildcache."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def get(self, key: str) -> dict | None:
        try:
            entry = read_json(self._path(key))
        except (FileNotFoundError, ValueError, OSError):
            return None
        return entry if isinstance(entry, dict) else None

    def put(self, key: str, entry: dict) -> None:
        ensure_dir(self.directory)
        atomic_write_json(self._path(key), entry, durable=False)


# -- the context record: deciding "cached" without copying -------------------------------------------------------

RACY_SECONDS = 2.0  # a file changed this recently may change again within the same clock tick: not remembered
MAX_REMEMBERED = 200_000


def file_identity(st: os.stat_result) -> list[int]:
    """What changes whenever a file's content may have: any write moves mtime and ctime, a replacement the inode."""
    return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns, st.st_dev]


class ContentHashes:
    """sha256 of context files, remembered by path while their identity (file_identity) is unchanged.

    Kept per context directory under buildcache/content/; a stale or damaged file only costs rehashing.
    """

    def __init__(self, directory: Path, context_root: Path) -> None:
        name = hashlib.sha256(str(context_root).encode()).hexdigest()
        self.path = directory / "content" / f"{name}.json"
        self.known: dict[str, list] = {}
        self.changed = False
        try:
            data = read_json(self.path)
            if isinstance(data, dict) and data.get("v") == CACHE_VERSION and isinstance(data.get("files"), dict):
                self.known = data["files"]
        except (OSError, ValueError):
            pass

    def digest(self, path: Path, st: os.stat_result) -> str:
        key = str(path)
        identity = file_identity(st)
        entry = self.known.get(key)
        if isinstance(entry, list) and len(entry) == 2 and entry[0] == identity:
            return entry[1]
        digest = file_digest(path)
        if time.time() - st.st_ctime > RACY_SECONDS and time.time() - st.st_mtime > RACY_SECONDS:
            self.known[key] = [identity, digest]
            self.changed = True
        return digest

    def save(self) -> None:
        if not self.changed:
            return
        files = self.known
        if len(files) > MAX_REMEMBERED:
            files = dict(list(files.items())[-MAX_REMEMBERED:])
        ensure_dir(self.path.parent)
        atomic_write_json(self.path, {"v": CACHE_VERSION, "files": files}, durable=False)
        self.changed = False


def _entry_record(h, rel: str, host: Path, st: os.stat_result, hashes: ContentHashes) -> None:
    kind = stat.S_IFMT(st.st_mode)
    h.update(f"{rel}\0{kind:o}\0{stat.S_IMODE(st.st_mode):o}\0".encode())
    if stat.S_ISLNK(st.st_mode):
        h.update(os.readlink(host).encode() + b"\0")
    elif stat.S_ISREG(st.st_mode):
        h.update(hashes.digest(host, st).encode() + b"\0")


def sources_digest(items: Iterable, hashes: ContentHashes, extra: Any = None) -> str:
    """What a COPY of context sources will write, recorded from the sources themselves (staging.SourceItem of
    kind file, dir or content): names, kinds, modes, link targets and content hashes, mtimes excluded."""
    h = hashlib.sha256(json.dumps(extra, sort_keys=True).encode())
    for item in items:
        h.update(f"\1{item.kind}\0{item.name}\0{item.mode:o}\0".encode())
        if item.kind == "content":
            h.update(hashlib.sha256(item.content or b"").digest())
        elif item.kind == "dir":
            for rel, host, st in item.entries:
                _entry_record(h, rel, host, st, hashes)
        else:
            _entry_record(h, "", item.host, os.lstat(item.host), hashes)
    return h.hexdigest()
