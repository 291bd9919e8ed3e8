"""One directory per container under --root: state.json (written atomically under the container's lock),
exec.fifo while the container is created and not started, and the lock file itself.

The status is derived, never stored: stopped when the init process (pid + start time) is gone or a zombie,
paused when we froze it, created while exec.fifo exists (init waits on it), running otherwise. That is runc's
rule, and it means a killed runtime leaves nothing stale to fix.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from pyctr.oci import SUPPORTED_OCI

_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")
STATE_FILE = "state.json"
FIFO = "exec.fifo"
LOCK = "lock"


class StateError(Exception):
    """A container that does not exist, exists already, or is in the wrong state: one line, exit 1."""


def check_id(container_id: str) -> str:
    """runc's id rule: letters, digits, _ + - . and not "." or ".."."""
    if not container_id or not set(container_id) <= _ID_CHARS or container_id in (".", ".."):
        raise StateError(f"invalid container id format: {container_id}")
    return container_id


class Record:
    """What state.json holds (a plain class: no dataclasses import in the fast verbs).

    cgroup: controller ("" on v2) -> directory; hooks: the config's hooks, raw (poststart and poststop run
    later, from start and delete); config: config.json's path at create time."""

    FIELDS = ("id", "pid", "start_time", "bundle", "rootfs", "created", "annotations", "cgroup", "hooks", "paused",
              "config")

    def __init__(self, id: str, pid: int, start_time: int, bundle: str, rootfs: str, created: str,  # noqa: A002
                 annotations: dict, cgroup: dict, hooks: dict, paused: bool = False, config: str = "") -> None:
        self.id, self.pid, self.start_time, self.bundle, self.rootfs = id, pid, start_time, bundle, rootfs
        self.created, self.annotations, self.cgroup, self.hooks = created, annotations, cgroup, hooks
        self.paused, self.config = paused, config

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.FIELDS}


def container_dir(root: Path, container_id: str) -> Path:
    return root / check_id(container_id)


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    import fcntl

    fd = os.open(directory / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def make_dir(root: Path, container_id: str) -> Path:
    """Create the container's directory (0711 root, 0700 container), refusing an id in use."""
    os.makedirs(root, mode=0o711, exist_ok=True)
    directory = container_dir(root, container_id)
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        raise StateError(f"container with id exists: {container_id}") from None
    return directory


def write(directory: Path, record: Record) -> None:
    from pyctr.fsutil import atomic_write_bytes

    atomic_write_bytes(directory / STATE_FILE, json.dumps(record.to_dict()).encode(), durable=False)


def load(root: Path, container_id: str) -> tuple[Path, Record]:
    directory = container_dir(root, container_id)
    try:
        with open(directory / STATE_FILE, "rb") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise StateError(f"container {container_id} does not exist") from None
    except (OSError, ValueError) as e:
        raise StateError(f"container {container_id}: unreadable state: {e}") from None
    return directory, Record(**{k: v for k, v in data.items() if k in Record.FIELDS})


def list_ids(root: Path) -> list[str]:
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    return [name for name in names if (root / name / STATE_FILE).exists()]


def process_start_time(pid: int) -> tuple[int, str]:
    """(start time in clock ticks, state letter) of `pid`; (0, "") when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return 0, ""
    fields = data[data.rindex(b")") + 2:].split()
    return int(fields[19]), fields[0].decode()


def alive(record: Record) -> bool:
    if record.pid <= 0:
        return False
    start, letter = process_start_time(record.pid)
    return start == record.start_time and letter not in ("Z", "X", "")


def status(directory: Path, record: Record) -> str:
    if not alive(record):
        return "stopped"
    if record.paused:
        return "paused"
    if (directory / FIFO).exists():
        return "created"
    return "running"


def oci_state(directory: Path, record: Record, owner: str = "") -> dict:
    """runc's `state` document (and list --format json's entries)."""
    current = status(directory, record)
    state = {"ociVersion": SUPPORTED_OCI, "id": record.id, "pid": record.pid if current != "stopped" else 0,
             "status": current, "bundle": record.bundle, "rootfs": record.rootfs, "created": record.created}
    if record.annotations:
        state["annotations"] = record.annotations
    state["owner"] = owner
    return state


def hook_state(directory: Path, record: Record, current: str | None = None) -> dict:
    """The runtime-spec state given to hooks on stdin."""
    return {"ociVersion": SUPPORTED_OCI, "id": record.id, "status": current or status(directory, record),
            "pid": record.pid, "bundle": record.bundle, "annotations": record.annotations or {}}
