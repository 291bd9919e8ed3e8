"""An index of container names and of running containers, so that `ps`, `create`, `rm` and `run` do not
read every container's files (measured before it existed: `create` 33 -> 88 ms and `ps` 38 -> 158 ms
between 10 and 1000 stopped containers).

Layout, under `<root>/containers-index/` (beside containers/, so that directory holds containers only):
- `names/<name>`: a symlink whose target is the id of the container holding that name;
- `running/<id>`: an empty file per container whose stored state may be running;
- `stamp`: JSON {"version", "containers": [st_ino, st_mtime_ns, st_nlink] of containers/}, written last.

Why it can be trusted, and where it is not:
- Every change of containers/'s entries (create's mkdir, rm's rename and rmdir) happens under the store-wide
  lock, which also updates the names and rewrites the stamp. Anything else that adds or removes a container
  directory (an older pyctr, a human, `system check` deleting a half container) changes containers/'s
  mtime or link count, so the stamp no longer matches and the index is rebuilt before it is used.
- Both sets are kept as supersets of the truth: a name entry is added before its container directory is
  made and removed after the directory is gone; a running entry is added before "running" is written and
  removed after a non-running state is written. An entry that outlived its reason (a crash in between) is
  recognised when read (the container is missing, has another name, or is not running) and dropped; a
  missing entry cannot happen short of the index being damaged, which the stamp check catches for names.
- Names are only changed under the store-wide lock, running entries only under the container's own lock,
  the same locks that guard the files they describe; a rebuild takes both, so it never loses a concurrent
  start.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from pyctr.fsutil import atomic_write_bytes

INDEX_DIR = "containers-index"  # in the root, beside containers/
NAMES_DIR = "names"
RUNNING_DIR = "running"
STAMP_FILE = "stamp"
VERSION = 1
MAX_ENTRY_NAME = 200  # longer names (Docker sets no limit) are stored under a hash of the name


def entry_name(name: str) -> str:
    """The file name of a container name's entry: the name itself (Docker's pattern makes it a safe file
    name: no "/", never "." or ".."), or "~" + its sha256 when too long for a file name ("~" cannot start
    a container name, so the two never meet)."""
    if len(name.encode()) <= MAX_ENTRY_NAME:
        return name
    import hashlib  # ~3 ms to import, for names nobody uses: only here

    return "~" + hashlib.sha256(name.encode()).hexdigest()


def directory_stamp(st: os.stat_result) -> list[int]:
    """What changes whenever an entry is added to or removed from a directory."""
    return [st.st_ino, st.st_mtime_ns, st.st_nlink]


def stamp_matches(stamp_bytes: bytes, current: list[int]) -> bool:
    """Whether a stored stamp describes the directory as it is now (pure: unit-tested with bad input)."""
    try:
        stamp = json.loads(stamp_bytes)
    except ValueError:
        return False
    return isinstance(stamp, dict) and stamp.get("version") == VERSION and stamp.get("containers") == current


class ContainerIndex:
    """The index files of one containers/ directory. Callers hold the locks the module docstring names."""

    def __init__(self, containers_root: Path) -> None:
        self.containers_root = containers_root
        self.root = containers_root.parent / INDEX_DIR
        self.names = self.root / NAMES_DIR
        self.running = self.root / RUNNING_DIR

    # -- freshness -------------------------------------------------------------------------------------------

    def current_stamp(self) -> list[int]:
        return directory_stamp(os.stat(self.containers_root))

    def is_current(self) -> bool:
        """The index exists, is complete and describes containers/ as it is now."""
        try:
            with open(self.root / STAMP_FILE, "rb") as f:
                stored = f.read()
            current = self.current_stamp()
        except OSError:
            return False
        return stamp_matches(stored, current) and self.names.is_dir() and self.running.is_dir()

    def write_stamp(self) -> None:
        """Declare the index complete for containers/ as it is now (under the store-wide lock, last)."""
        data = json.dumps({"version": VERSION, "containers": self.current_stamp()}).encode()
        atomic_write_bytes(self.root / STAMP_FILE, data, durable=False)

    def invalidate(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.root / STAMP_FILE)

    # -- names (store-wide lock held) ------------------------------------------------------------------------

    def name_owner(self, name: str) -> str | None:
        """The id the index gives for `name` (to be verified against that container's config), or None."""
        try:
            return os.readlink(self.names / entry_name(name))
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError:  # not a symlink (damaged): the caller verifies and overwrites
            return ""

    def set_name(self, name: str, container_id: str) -> None:
        """Point `name` at `container_id`, replacing a stale entry (atomic: symlink then rename)."""
        entry = self.names / entry_name(name)
        tmp = self.names / f".{entry.name}.{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.symlink(container_id, tmp)
        os.rename(tmp, entry)

    def drop_name(self, name: str, container_id: str | None = None) -> None:
        """Forget `name` (only if it still points at `container_id`, when given)."""
        if container_id is not None and self.name_owner(name) not in (container_id, ""):
            return
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            os.unlink(self.names / entry_name(name))

    # -- running (the container's own lock held) -------------------------------------------------------------

    def mark_running(self, container_id: str) -> None:
        """Before "running" is written. Without an index (not built yet) there is nothing to keep up to date:
        a rebuild reads the state under this same lock."""
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            os.close(os.open(self.running / container_id, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))

    def unmark_running(self, container_id: str) -> None:
        """After a non-running state is written (or the container is gone)."""
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            os.unlink(self.running / container_id)

    def running_ids(self) -> list[str]:
        return [e for e in os.listdir(self.running) if not e.startswith(".")]

    # -- rebuilding (store-wide lock held) -------------------------------------------------------------------

    def rebuild(self, names: Iterable[tuple[str, str]], container_ids: Iterable[str],
                is_running: Callable[[str], bool]) -> None:
        """Make the index say what the containers say, in place (readers never see an empty index).

        `names` are (name, id) of every container, `is_running(id)` reads a container's state under its own
        lock: a start racing with the rebuild either finds running/ already there or is seen running.
        """
        self.invalidate()
        os.makedirs(self.containers_root, 0o700, exist_ok=True)
        for directory in (self.root, self.names, self.running):
            with contextlib.suppress(FileExistsError):
                os.mkdir(directory, 0o700)
        wanted = {entry_name(name): (name, cid) for name, cid in names}
        for entry in os.listdir(self.names):
            if entry not in wanted or self.name_owner(wanted[entry][0]) != wanted[entry][1]:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.names / entry)
        for name, cid in wanted.values():
            if self.name_owner(name) != cid:
                self.set_name(name, cid)
        known = set(container_ids)
        for cid in known:
            if is_running(cid):
                self.mark_running(cid)
            else:
                self.unmark_running(cid)
        for cid in self.running_ids():
            if cid not in known:
                self.unmark_running(cid)
        self.write_stamp()

    def describe(self) -> tuple[dict[str, str], set[str]]:
        """(entry -> id, running ids) as stored: what `system check` compares with the containers."""
        names = {}
        for entry in os.listdir(self.names):
            with contextlib.suppress(OSError):
                names[entry] = os.readlink(self.names / entry)
        return names, set(self.running_ids())
