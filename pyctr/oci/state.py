"""One directory per container under --root: state.json (written atomically under the container's lock),
exec.fifo while the container is created and not started, and the lock file itself.

The status is derived, never stored: stopped when the init process (pid + start time) is gone or a zombie,
paused when we froze it, created while exec.fifo exists (init waits on it), running otherwise. That is runc's
rule, and it means a killed runtime leaves nothing stale to fix.

Paths are plain strings and JSON goes through jsonlite: callers run `state`, `start`, `kill` and `delete` for
every container, and pathlib, contextlib and json would be most of what those verbs import.
"""

from __future__ import annotations

import os

from pyctr.oci import SUPPORTED_OCI, jsonlite

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


def container_dir(root: str, container_id: str) -> str:
    return os.path.join(root, check_id(container_id))


class locked:
    """`with locked(directory):` holds the container's lock (flock on its lock file). A class, not
    contextlib.contextmanager: contextlib is a module import the fast verbs do without."""

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, LOCK)
        self.fd = -1

    def __enter__(self) -> None:
        import fcntl

        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(self.fd)
            raise

    def __exit__(self, *_exc: object) -> None:
        os.close(self.fd)


def make_dir(root: str, container_id: str) -> str:
    """Create the container's directory (0711 root, 0700 container), refusing an id in use."""
    os.makedirs(root, mode=0o711, exist_ok=True)
    directory = container_dir(root, container_id)
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        raise StateError(f"container with id exists: {container_id}") from None
    return directory


def write(directory: str, record: Record) -> None:
    """state.json, replaced atomically (a temporary file renamed over it): readers never see half of it."""
    path = os.path.join(directory, STATE_FILE)
    tmp = os.path.join(directory, f".{STATE_FILE}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, jsonlite.dumps(record.to_dict()).encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def load(root: str, container_id: str) -> tuple[str, Record]:
    directory = container_dir(root, container_id)
    try:
        with open(os.path.join(directory, STATE_FILE), "rb") as f:
            data = jsonlite.loads(f.read())
    except FileNotFoundError:
        raise StateError(f"container {container_id} does not exist") from None
    except (OSError, ValueError) as e:
        raise StateError(f"container {container_id}: unreadable state: {e}") from None
    return directory, Record(**{k: v for k, v in data.items() if k in Record.FIELDS})


def list_ids(root: str) -> list[str]:
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    return [name for name in names if os.path.exists(os.path.join(root, name, STATE_FILE))]


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


def status(directory: str, record: Record) -> str:
    if not alive(record):
        return "stopped"
    if record.paused:
        return "paused"
    if os.path.exists(os.path.join(directory, FIFO)):
        return "created"
    return "running"


def oci_state(directory: str, record: Record, owner: str = "") -> dict:
    """runc's `state` document (and list --format json's entries)."""
    current = status(directory, record)
    state = {"ociVersion": SUPPORTED_OCI, "id": record.id, "pid": record.pid if current != "stopped" else 0,
             "status": current, "bundle": record.bundle, "rootfs": record.rootfs, "created": record.created}
    if record.annotations:
        state["annotations"] = record.annotations
    state["owner"] = owner
    return state


def hook_state(directory: str, record: Record, current: str | None = None) -> dict:
    """The runtime-spec state given to hooks on stdin."""
    return {"ociVersion": SUPPORTED_OCI, "id": record.id, "status": current or status(directory, record),
            "pid": record.pid, "bundle": record.bundle, "annotations": record.annotations or {}}
