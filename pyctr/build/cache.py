"""The build cache: which layer a step produced, keyed by everything that decides its result.

A step is reused only when its parent (the digest of the image config so far,
which covers env, workdir, user, shell and every layer), its instruction
after ARG/ENV substitution and, for COPY/ADD, the content and metadata of
what will be copied (mode, uid/gid as set, link targets; not mtimes, like
Docker) are all the same. Entries live in PYCTR_ROOT/buildcache/<key>.json
and only name layers; a layer the store no longer has is a miss.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
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
