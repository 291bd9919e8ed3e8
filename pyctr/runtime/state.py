"""Stored container state: one directory per container, reconciled with the kernel.

Layout (docs/ARCHITECTURE.md): `containers/<id>/config.json` is written once at
create (what the container is: Docker-shaped Config/HostConfig plus the runtime
spec) and `state.json` on every transition (what it is doing). Both are
replaced atomically under the container's flock. Names and the set of running
containers are also kept in an index (runtime/index.py) so that commands whose
work does not depend on the number of containers do not read them all; the
configs and states stay the truth, the index is checked against them. state.json
also carries a stamped copy of the config keys listings show (LISTING_KEY), so
`ps -a` reads one small file per container.

Stored state can be stale: a process killed behind our back, a monitor that
died, a reboot. `reconcile` decides, purely, what the truth is from the pid's
start time (guards against PID reuse) and the boot id; callers persist it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from pyctr.errors import ConflictError, NotFoundError, StoreError
from pyctr.fsutil import atomic_write_bytes, ensure_dir, file_lock
from pyctr.output.timefmt import format_rfc3339_ns, parse_rfc3339  # noqa: F401  (one home; state's readers use it)
from pyctr.runtime import names
from pyctr.runtime.index import ContainerIndex

ZERO_TIME = "0001-01-01T00:00:00Z"
RUNNING_STATUSES = ("running", "paused", "restarting")
CONFIG_FILE = "config.json"
SPEC_FILE = "spec.json"  # the bulky keys of the config, read only by those who need them (not `ps`)
SPEC_KEYS = ("Spec", "Options")
STATE_FILE = "state.json"
EXIT_FILE = "exitcode"  # "<code> <finished_at>", written by the monitor before it runs cleanup
LOCK_FILE = "lock"
# In state.json: the parts of config.json that `ps` and GET /containers/json show, stamped with the config.json
# they came from, so a listing reads one small file per container (derived: a stale copy is ignored, not trusted)
LISTING_KEY = "Listing"
LISTING_CONFIG_KEYS = ("Id", "Name", "Created", "Image", "Path", "Args", "Ports", "MountPoints")
EXIT_UNKNOWN = 255  # Docker's exit code for a container found dead without a recorded status
_HELD = threading.local()  # .locks: the store-wide locks this thread holds (ContainerStore.global_lock)


def _held_locks() -> set[str]:
    if not hasattr(_HELD, "locks"):
        _HELD.locks = set()
    return _HELD.locks


def now_rfc3339() -> str:
    """The current UTC time in Docker's RFC 3339 with nanoseconds ("2024-05-01T10:00:00.123456789Z")."""
    return format_rfc3339_ns(time.time_ns())


@dataclass(frozen=True)
class ContainerState:
    """What a container is doing; field names follow Docker's inspect `State`."""

    status: str = "created"
    pid: int = 0
    pid_start_time: int = 0
    monitor_pid: int = 0
    monitor_start_time: int = 0
    boot_id: str = ""
    exit_code: int = 0
    oom_killed: bool = False
    error: str = ""
    started_at: str = ZERO_TIME
    finished_at: str = ZERO_TIME
    restart_count: int = 0
    network: dict = field(default_factory=dict, hash=False)  # NetworkInfo of the running container
    # lifecycle (p15-life): Docker's HasBeenManuallyStopped, its restart manager's cancel flag and back-off
    # (kept here: pyctr has no daemon to hold them in memory), and State.Health ({} without a healthcheck)
    manually_stopped: bool = False
    restart_canceled: bool = False
    restart_timeout_ms: int = 0
    health: dict = field(default_factory=dict, hash=False)

    @property
    def running(self) -> bool:
        return self.status in RUNNING_STATUSES

    def to_dict(self) -> dict:
        return {_KEYS[f.name]: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict) -> ContainerState:
        known = _NAMES
        return cls(**{known[k]: v for k, v in data.items() if k in known})


_KEYS = {
    "status": "Status", "pid": "Pid", "pid_start_time": "PidStartTime", "monitor_pid": "MonitorPid",
    "monitor_start_time": "MonitorStartTime", "boot_id": "BootId", "exit_code": "ExitCode",
    "oom_killed": "OOMKilled", "error": "Error", "started_at": "StartedAt", "finished_at": "FinishedAt",
    "restart_count": "RestartCount", "network": "Network",
    "manually_stopped": "HasBeenManuallyStopped", "restart_canceled": "RestartCanceled",
    "restart_timeout_ms": "RestartTimeoutMs", "health": "Health",
}
_NAMES = {key: name for name, key in _KEYS.items()}  # state.json key -> field name


def started(state: ContainerState, pid: int, pid_start: int, monitor_pid: int, monitor_start: int,
            boot_id: str, at: str | None = None, healthcheck: bool = False) -> ContainerState:
    """The transition created/exited/restarting -> running. RestartCount stays: Docker counts only the restarts
    its restart policy makes (a user's `start` resets it first: restart.reset_for_user_start). With a
    healthcheck, Health starts over as "starting" and keeps its log (Docker's initHealthMonitor)."""
    health = {"Status": "starting", "FailingStreak": 0, "Log": list(state.health.get("Log") or [])} \
        if healthcheck else {}
    return replace(state, status="running", pid=pid, pid_start_time=pid_start, monitor_pid=monitor_pid,
                   monitor_start_time=monitor_start, boot_id=boot_id, exit_code=0, oom_killed=False,
                   error="", started_at=at or now_rfc3339(), finished_at=ZERO_TIME, health=health)


def restarting(state: ContainerState, exit_code: int, *, restart_count: int, timeout_ms: int,
               oom_killed: bool = False, at: str | None = None) -> ContainerState:
    """The transition running -> restarting (Docker's SetRestarting): still "running" for rm/stop/kill, no pid;
    the monitor pid stays, as the process that will start it again after the back-off holds it."""
    return replace(state, status="restarting", pid=0, pid_start_time=0, network={}, exit_code=exit_code,
                   oom_killed=oom_killed, finished_at=at or now_rfc3339(), restart_count=restart_count,
                   restart_timeout_ms=timeout_ms)


def exited(state: ContainerState, exit_code: int, *, oom_killed: bool = False, error: str = "",
           at: str | None = None) -> ContainerState:
    """The transition running -> exited (or a failed start: created -> exited with an error)."""
    return replace(state, status="exited", pid=0, pid_start_time=0, monitor_pid=0, monitor_start_time=0, network={},
                   exit_code=exit_code, oom_killed=oom_killed, error=error,
                   finished_at=at or now_rfc3339())


def start_failed(state: ContainerState, exit_code: int, error: str) -> ContainerState:
    """A start that never ran the command: Docker keeps "created" (or "exited") and sets Error and ExitCode."""
    status = "created" if state.status == "created" else "exited"
    return replace(state, status=status, pid=0, pid_start_time=0, monitor_pid=0, monitor_start_time=0, network={},
                   exit_code=exit_code, error=error)


# -- the kernel's view -----------------------------------------------------------------------------

def proc_start_time(pid: int) -> int | None:
    """The start time of `pid` while it runs, None if it is gone or a zombie (it has exited): the runtime's
    one liveness answer, process/liveness.py, which says why zombies count as dead here."""
    from pyctr.runtime.process.liveness import running_start_time

    return running_start_time(pid)


_boot_id_cache: list[str] = []


def boot_id() -> str:
    if not _boot_id_cache:
        try:
            with open("/proc/sys/kernel/random/boot_id") as f:
                _boot_id_cache.append(f.read().strip())
        except OSError:
            _boot_id_cache.append("")
    return _boot_id_cache[0]


def process_alive(pid: int, start_time: int) -> bool:
    from pyctr.runtime.process.liveness import is_running

    return is_running(pid, start_time)


def reconcile(state: ContainerState, current_boot: str, alive: Callable[[int, int], bool],
              recorded_exit: tuple[int, str] | None = None) -> ContainerState | None:
    """Decide whether a stored "running" state is a lie; return the corrected state or None.

    - another boot: every process of it is gone;
    - the container's process is gone but its monitor lives: the monitor is about to
      record the exit, leave it alone;
    - both gone: the monitor died (or was killed) before recording; use the exit code it
      left in its exit file if any, else Docker's 255.
    """
    if not state.running:
        return None
    rebooted = bool(state.boot_id) and state.boot_id != current_boot
    if not rebooted and alive(state.pid, state.pid_start_time):
        return None
    if not rebooted and state.monitor_pid and alive(state.monitor_pid, state.monitor_start_time):
        return None
    if recorded_exit is not None:
        return exited(state, recorded_exit[0], at=recorded_exit[1])
    return exited(state, EXIT_UNKNOWN)


def listing_of(config: dict, stamp: list[int]) -> dict:
    """What a listing needs of `config` (see LISTING_KEY), with the (inode, mtime ns, size) of its config.json.

    Why a stamp and not trust: config.json changes (rename, update) before state.json is rewritten, so a crash
    between the two leaves an old copy; a rewritten config.json is a new inode (atomic rename), never the same
    stamp."""
    listing = {k: config[k] for k in LISTING_CONFIG_KEYS if k in config}
    for key, wanted in (("Config", ("Image", "Labels")), ("HostConfig", ("NetworkMode",))):
        if key in config:
            inner = config[key]
            listing[key] = {k: inner[k] for k in wanted if k in inner} if isinstance(inner, dict) else inner
    listing["ConfigStamp"] = stamp
    return listing


def file_stamp(st: os.stat_result) -> list[int]:
    return [st.st_ino, st.st_mtime_ns, st.st_size]


def read_small_file(path: str) -> bytes:
    """A small file's bytes with plain os calls: a third of open()'s cost, which `ps -a` pays per container."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


# -- the store --------------------------------------------------------------------------------------

class ContainerConfig(dict):
    """config.json, with "Spec" and "Options" loaded from spec.json on first access.

    `ps` parses a hundred configs per call: keeping the runtime spec (two thirds of
    the bytes) in its own file makes that three times cheaper, while
    `record.config["Spec"]` keeps working for everyone else.
    """

    def __init__(self, data: dict, directory: str) -> None:
        super().__init__(data)
        self._directory = directory

    def __missing__(self, key: str):
        if key not in SPEC_KEYS:
            raise KeyError(key)
        self._load_spec()
        return dict.__getitem__(self, key)

    def get(self, key, default=None):
        if key in SPEC_KEYS and not dict.__contains__(self, key):
            self._load_spec()
        return dict.get(self, key, default)

    def _load_spec(self) -> None:
        try:
            with open(f"{self._directory}/{SPEC_FILE}", "rb") as f:
                extra = json.load(f)
        except FileNotFoundError:
            extra = {}
        except (OSError, ValueError) as e:
            raise StoreError(f"container {os.path.basename(self._directory)}: unreadable spec: {e}") from None
        for key in SPEC_KEYS:
            self.setdefault(key, extra.get(key, {}))


@dataclass
class ContainerRecord:
    """One container as stored: its config (written once) and its current state."""

    id: str
    config: dict
    state: ContainerState
    directory: Path
    extra: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.config.get("Name", "")

    @property
    def created(self) -> str:
        return self.config.get("Created", ZERO_TIME)

    @property
    def short_id(self) -> str:
        return names.short_id(self.id)


def _hold_removal(trash: Path) -> int | None:
    """An flock on the `.removing-<id>` directory, held while it is emptied: `system check` (which holds the
    store-wide lock, not this one) tells a removal under way from one a killed `rm` left."""
    try:
        fd = os.open(trash, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:  # removed by a parallel rm of the same container
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # a parallel rm of the same container empties it
        os.close(fd)
        return None
    return fd


def removal_under_way(trash: Path) -> bool:
    """Whether a live `rm` holds this `.removing-<id>` directory (see _hold_removal)."""
    try:
        fd = os.open(trash, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return False


class ContainerStore:
    """Containers under `<root>/containers`, with Docker's id/name resolution."""

    def __init__(self, paths) -> None:
        self.paths = paths
        self.root = paths.containers
        self.index = ContainerIndex(self.root)

    # locations
    def directory(self, container_id: str) -> Path:
        return self.root / container_id

    def _global_lock(self) -> Path:
        return self.paths.locks / "containers.lock"

    @contextlib.contextmanager
    def global_lock(self) -> Iterator[None]:
        """The store-wide lock (creates, removals, renames, index rebuilds). Remembered while held, so that a
        reader in the same thread (`system check` resolving a container) rebuilds a stale index under it
        instead of waiting for itself."""
        path = str(self._global_lock())
        with file_lock(self._global_lock()):
            _held_locks().add(path)
            try:
                yield
            finally:
                _held_locks().discard(path)

    @contextlib.contextmanager
    def locked(self, container_id: str) -> Iterator[None]:
        """Hold the container's own lock (state transitions, removal)."""
        directory = self.directory(container_id)
        if not directory.is_dir():
            raise NotFoundError(f"No such container: {container_id}")
        with file_lock(directory / LOCK_FILE):
            yield

    # creation
    def create(self, build_config: Callable[[str, str], dict], name: str | None = None) -> ContainerRecord:
        """Allocate an id and a unique name, then store the config `build_config(id, name)` returns.

        Runs under the store-wide lock so that parallel `run -d` never share a name.
        """
        wanted = names.validate_name(name) if name else None
        ensure_dir(self.root)
        with self.global_lock():
            index = self._current_index_locked()
            name_owner = self._indexed_name_owner if index else self._names_in_use().get
            owner = name_owner(wanted) if wanted else None
            if owner:
                raise _name_conflict(wanted, owner)
            chosen = wanted or names.pick_name(lambda n: name_owner(n) is not None)
            container_id = names.new_id()
            directory = self.directory(container_id)
            if index:
                index.set_name(chosen, container_id)  # before the directory: the names stay a superset
            try:
                directory.mkdir(mode=0o700)
                config = build_config(container_id, chosen)
                config.setdefault("Id", container_id)
                config.setdefault("Name", chosen)
                config.setdefault("Created", now_rfc3339())
                state = ContainerState()
                self._write(directory / STATE_FILE, state.to_dict())
                self._write(directory / SPEC_FILE, {k: config[k] for k in SPEC_KEYS if k in config})
                # config.json last: a directory without it is an unfinished create, ignored everywhere.
                self._write(directory / CONFIG_FILE, {k: v for k, v in config.items() if k not in SPEC_KEYS})
                with self.locked(container_id):  # `start NAME` may already be waiting for it
                    self._refresh_listing_locked(directory)
            except BaseException:
                import shutil

                shutil.rmtree(directory, ignore_errors=True)
                if index:
                    index.drop_name(chosen, container_id)
                    index.write_stamp()
                raise
            if index:
                index.write_stamp()
        return ContainerRecord(container_id, ContainerConfig(config, str(directory)), state, directory)

    # -- the index (runtime/index.py) ------------------------------------------------------------------------

    def _current_index_locked(self) -> ContainerIndex | None:
        """The index, rebuilt first if missing or stale; None if it cannot be written (then callers scan).
        The store-wide lock is held."""
        if self.index.is_current():
            return self.index
        try:
            self.rebuild_index_locked()
        except OSError:
            return None
        return self.index

    def _index_for_reading(self) -> ContainerIndex | None:
        """The index for a reader that holds no lock: used as is when current, else rebuilt under the lock."""
        if self.index.is_current():
            return self.index
        if not self.root.is_dir():
            return None
        if str(self._global_lock()) in _held_locks():
            return self._current_index_locked()
        try:
            with self.global_lock():
                return self._current_index_locked()
        except StoreError:  # the lock cannot even be opened (a read-only root): read by scanning, as before
            return None

    def rebuild_index_locked(self) -> None:
        """Rebuild the index from every container's files (the store-wide lock is held: `system check`)."""
        records = list(self._scan_configs())
        self.index.rebuild(((r.name, r.id) for r in records), [r.id for r in records], self._stored_running)

    def _stored_running(self, container_id: str) -> bool:
        """Whether the stored state says running, read under the container's lock (see ContainerIndex.rebuild)."""
        try:
            with self.locked(container_id):
                state = self._read_state_file(str(self.directory(container_id)))
        except NotFoundError:
            return False
        return state is not None and state.running

    def _config_name(self, container_id: str) -> str | None:
        if len(container_id) != names.ID_HEX_LEN:
            return None
        record = self._load(container_id, with_state=False, tolerant=True)
        return record.name if record is not None else None

    def _indexed_name_owner(self, name: str) -> str | None:
        """The id of the container named `name`, per the index, verified against that container's config."""
        owner = self.index.name_owner(name)
        if owner is None:
            return None
        if self._config_name(owner) == name:
            return owner
        return None  # a stale entry (a crash between index and directory): create overwrites it

    def rename(self, container_id: str, new_name: str) -> None:
        """Give a container another name: config.json and the index change under the store-wide lock, so a
        parallel create never takes the new name nor misses the old one's release."""
        new_name = names.validate_name(new_name)
        with self.global_lock():
            index = self._current_index_locked()
            owner = self._indexed_name_owner(new_name) if index else self._names_in_use().get(new_name)
            if owner and owner != container_id:
                raise _name_conflict(new_name, owner)
            directory = self.directory(container_id)
            with self.locked(container_id):
                record = self._load(container_id, with_state=False)
                if record is None:
                    raise NotFoundError(f"No such container: {container_id}")
                old_name = record.name
                if index:
                    index.set_name(new_name, container_id)
                stored = {k: v for k, v in dict.items(record.config) if k not in SPEC_KEYS}
                self._write(directory / CONFIG_FILE, {**stored, "Name": new_name})
                self._refresh_listing_locked(directory)
                if index and old_name != new_name:
                    index.drop_name(old_name, container_id)

    def _names_in_use(self) -> dict[str, str]:
        return {c.name: c.id for c in self._scan_configs()}

    @staticmethod
    def _write(path: Path, obj: dict) -> None:
        # Not fsync'd: rename is atomic against crashes of pyctr itself; a power loss at worst
        # loses a container that was being created or the last transition, which reconcile fixes.
        atomic_write_bytes(path, json.dumps(obj, sort_keys=True).encode(), durable=False)

    # reading
    def _scan_configs(self, with_state: bool = False) -> Iterator[ContainerRecord]:
        try:
            entries = os.listdir(self.root)
        except (FileNotFoundError, NotADirectoryError):  # no root yet, or --root names a file: no containers
            return
        for name in entries:
            if name.startswith("."):  # .removing-<id>: being deleted
                continue
            record = self._load(name, with_state=with_state, tolerant=True)
            if record is not None:
                yield record

    def _load(self, container_id: str, with_state: bool = True, tolerant: bool = False) -> ContainerRecord | None:
        """The stored container, or None if it is not (or no longer, or not yet) there.

        A damaged state.json makes the container "dead" (Docker's word for a container it
        cannot manage) instead of failing every command; a damaged config.json raises
        StoreError, or hides the container from listings when `tolerant`.
        """
        directory = f"{self.root}/{container_id}"
        try:
            with open(f"{directory}/{CONFIG_FILE}", "rb") as f:
                config = json.load(f)
            if not isinstance(config, dict):
                raise ValueError("not a JSON object")
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (OSError, ValueError) as e:
            if tolerant:
                return None
            raise StoreError(f"container {container_id}: unreadable config.json: {e}") from None
        state = self._read_state_file(directory) if with_state else ContainerState()
        if state is None:
            return None
        return ContainerRecord(container_id, ContainerConfig(config, directory), state, Path(directory))

    @staticmethod
    def _read_state_file(directory: str) -> ContainerState | None:
        try:
            with open(f"{directory}/{STATE_FILE}", "rb") as f:
                return ContainerState.from_dict(json.load(f))
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (OSError, ValueError, TypeError, AttributeError) as e:
            return ContainerState(status="dead", error=f"unreadable state.json: {e}")

    def list(self, reconcile_state: bool = True) -> list[ContainerRecord]:
        """Every container, newest first, with reconciled state (one read of each file)."""
        records = [self._reconciled(r) if reconcile_state else r for r in self._scan_configs(with_state=True)]
        records.sort(key=lambda r: r.created, reverse=True)
        return records

    def list_for_listing(self) -> list[ContainerRecord]:
        """Every container as `ps` and GET /containers/json show it, newest first, with reconciled state.

        One small read per container: state.json with its listing (LISTING_KEY); config.json is only stat'ed
        (it marks a finished create, and stamps the listing) and read only when the listing is missing or stale.
        The records' config holds just the listing's keys: for showing, not for acting on."""
        try:
            entries = os.scandir(self.root)
        except (FileNotFoundError, NotADirectoryError):  # no root yet, or --root names a file: no containers
            return []
        records = []
        with entries:
            for entry in entries:
                if entry.name.startswith("."):  # .removing-<id>: being deleted
                    continue
                record = self._load_listing(entry.name)
                if record is not None:
                    records.append(self._reconciled(record))
        records.sort(key=lambda r: r.created, reverse=True)
        return records

    def _stamped_state(self, container_id: str) -> tuple[dict, dict | None]:
        """state.json's document and its listing if that matches config.json (else None); OSError/ValueError
        when either file is missing or state.json is damaged."""
        directory = f"{self.root}/{container_id}"
        stamp = file_stamp(os.stat(f"{directory}/{CONFIG_FILE}"))
        document = json.loads(read_small_file(f"{directory}/{STATE_FILE}"))
        if not isinstance(document, dict):
            raise ValueError("not a JSON object")
        listing = document.get(LISTING_KEY)
        return document, listing if isinstance(listing, dict) and listing.get("ConfigStamp") == stamp else None

    def _load_listing(self, container_id: str) -> ContainerRecord | None:
        directory = f"{self.root}/{container_id}"
        try:
            document, listing = self._stamped_state(container_id)
        except (FileNotFoundError, NotADirectoryError):
            return None  # an unfinished create, or removed meanwhile
        except (OSError, ValueError):
            return self._load(container_id, tolerant=True)  # its own words for what is damaged
        if listing is None:
            return self._load(container_id, tolerant=True)
        try:
            state = ContainerState.from_dict(document)
        except (TypeError, AttributeError) as e:
            state = ContainerState(status="dead", error=f"unreadable state.json: {e}")
        return ContainerRecord(container_id, listing, state, Path(directory))

    def get(self, ref: str, reconcile_state: bool = True) -> ContainerRecord:
        """Resolve a full id, a name or a unique id prefix (Docker's order), or raise NotFoundError."""
        container_id = self.resolve_id(ref)
        record = self._load(container_id)
        if record is None:
            raise NotFoundError(f"No such container: {ref}")
        return self._reconciled(record) if reconcile_state else record

    def list_running(self) -> list[ContainerRecord]:
        """The running containers, newest first, reading only those the index lists (`ps` without -a)."""
        index = self._index_for_reading()
        if index is None:
            return [r for r in self.list() if r.state.running]
        records = []
        for container_id in index.running_ids():
            record = self._load(container_id, tolerant=True)
            if record is not None:
                record = self._reconciled(record)
            if record is not None and record.state.running:
                records.append(record)
            else:
                self._drop_stale_running(container_id)
        records.sort(key=lambda r: r.created, reverse=True)
        return records

    def _drop_stale_running(self, container_id: str) -> None:
        """Forget a running entry whose container is gone or stopped, under its lock (a start may be adding it)."""
        try:
            with self.locked(container_id):
                state = self._read_state_file(str(self.directory(container_id)))
                if state is None or not state.running:
                    self.index.unmark_running(container_id)
        except NotFoundError:
            self.index.unmark_running(container_id)

    def resolve_id(self, ref: str) -> str:
        ref = ref.lstrip("/") if ref.startswith("/") else ref
        if len(ref) == names.ID_HEX_LEN and (self.directory(ref) / CONFIG_FILE).exists():
            return ref
        index = self._index_for_reading()
        if index is None:
            return self._resolve_by_scan(ref)
        owner = self._indexed_name_owner(ref) if names.is_valid_name(ref) else None
        if owner:
            return owner
        by_prefix: list[str] = []
        if names.looks_like_id_prefix(ref):
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                by_prefix = [e for e in os.listdir(self.root) if e.startswith(ref) and
                             os.path.exists(f"{self.root}/{e}/{CONFIG_FILE}")]
        return self._one_of(ref, by_prefix)

    def _resolve_by_scan(self, ref: str) -> str:
        by_prefix: list[str] = []
        for record in self._scan_configs():
            if record.name == ref:
                return record.id
            if names.looks_like_id_prefix(ref) and record.id.startswith(ref):
                by_prefix.append(record.id)
        return self._one_of(ref, by_prefix)

    @staticmethod
    def _one_of(ref: str, by_prefix: list[str]) -> str:
        if len(by_prefix) == 1:
            return by_prefix[0]
        if len(by_prefix) > 1:
            raise NotFoundError(f"Error response from daemon: multiple IDs found with provided prefix: {ref}")
        raise NotFoundError(f"No such container: {ref}")

    def _reconciled(self, record: ContainerRecord) -> ContainerRecord:
        if not record.state.running:
            return record
        fixed = reconcile(record.state, boot_id(), process_alive, self.read_exit_file(record.id))
        if fixed is None:
            return record
        # Re-check under the lock: the monitor may have recorded the exit meanwhile.
        with contextlib.suppress(NotFoundError):
            fixed = self.update_state(record.id, lambda s: reconcile(
                s, boot_id(), process_alive, self.read_exit_file(record.id)))
        record.state = fixed
        return record

    def read_exit_file(self, container_id: str) -> tuple[int, str] | None:
        try:
            with open(self.directory(container_id) / EXIT_FILE) as f:
                code, _, at = f.read().strip().partition(" ")
            return int(code), at or now_rfc3339()
        except (OSError, ValueError):
            return None

    # writing
    @staticmethod
    def _state_document(directory: Path) -> dict:
        with open(directory / STATE_FILE, "rb") as f:
            document = json.load(f)
        if not isinstance(document, dict):
            raise ValueError("not a JSON object")
        return document

    def read_state(self, container_id: str) -> ContainerState:
        return self._read_state_and_listing(container_id)[0]

    def _read_state_and_listing(self, container_id: str) -> tuple[ContainerState, dict | None]:
        try:
            document = self._state_document(self.directory(container_id))
            return ContainerState.from_dict(document), document.get(LISTING_KEY)
        except FileNotFoundError:
            raise NotFoundError(f"No such container: {container_id}") from None
        except (OSError, ValueError) as e:
            raise StoreError(f"container {container_id}: unreadable state: {e}") from None

    def update_state(self, container_id: str,
                     change: Callable[[ContainerState], ContainerState | None]) -> ContainerState:
        """Read-modify-write state.json under the container's lock; `change` may return None (no change)."""
        with self.locked(container_id):
            current, listing = self._read_state_and_listing(container_id)
            new = change(current)
            if new is None or new == current:
                return current
            if new.running:
                self.index.mark_running(container_id)  # before: the index stays a superset of what runs
            document = new.to_dict()
            listing = self._current_listing(self.directory(container_id), listing)
            if listing is not None:
                document[LISTING_KEY] = listing
            self._write(self.directory(container_id) / STATE_FILE, document)
            if not new.running:
                self.index.unmark_running(container_id)
            return new

    def write_state(self, container_id: str, state: ContainerState) -> None:
        self.update_state(container_id, lambda _s: state)

    def rewrite_config(self, container_id: str, change: Callable[[dict, dict], tuple[dict, dict]]) -> None:
        """Replace config.json and spec.json with `change(config, spec)` under the container's lock (rename,
        update: the few things Docker lets change after create)."""
        directory = self.directory(container_id)
        with self.locked(container_id):
            try:
                with open(directory / CONFIG_FILE, "rb") as f:
                    config = json.load(f)
                with open(directory / SPEC_FILE, "rb") as f:
                    spec = json.load(f)
            except (OSError, ValueError) as e:
                raise StoreError(f"container {container_id}: unreadable config: {e}") from None
            config, spec = change(config, spec)
            self._write(directory / SPEC_FILE, spec)
            self._write(directory / CONFIG_FILE, config)
            self._refresh_listing_locked(directory)

    def refresh_stale_listings(self) -> int:
        """Give every container whose listing is missing or stale a current one (`system check`: containers of
        an older pyctr, a crash between a config.json write and its state.json); how many were refreshed."""
        refreshed = 0
        for entry in os.listdir(self.root) if os.path.isdir(self.root) else []:
            if entry.startswith(".") or self._listing_is_current(entry):
                continue
            with contextlib.suppress(OSError, ValueError, NotFoundError):
                self.refresh_listing(entry)
                refreshed += 1
        return refreshed

    def _listing_is_current(self, container_id: str) -> bool:
        try:
            return self._stamped_state(container_id)[1] is not None
        except (OSError, ValueError):
            return True  # nothing to refresh from (half-created, damaged: check's other findings)

    def refresh_listing(self, container_id: str) -> None:
        """Give state.json the listing of the current config.json (`system check`; containers made before it)."""
        with self.locked(container_id):
            self._refresh_listing_locked(self.directory(container_id))

    @staticmethod
    def _current_listing(directory: Path, listing: dict | None) -> dict | None:
        """`listing` if it matches config.json, else one made from config.json (None if that is unreadable): a
        transition heals a container made by an older pyctr or left stale by a crash, for one stat."""
        try:
            if isinstance(listing, dict) and listing.get("ConfigStamp") == file_stamp(
                    os.stat(directory / CONFIG_FILE)):
                return listing
            with open(directory / CONFIG_FILE, "rb") as f:
                config = json.load(f)
                return listing_of(config, file_stamp(os.fstat(f.fileno()))) if isinstance(config, dict) else None
        except (OSError, ValueError):
            return None

    def _refresh_listing_locked(self, directory: Path) -> None:
        """Rewrite state.json with the listing of the config.json just written (the container's lock held)."""
        listing = self._current_listing(directory, None)
        try:
            document = self._state_document(directory)
        except (OSError, ValueError):
            return  # no or damaged state: the listing falls back to config.json
        if listing is not None:
            document[LISTING_KEY] = listing
            self._write(directory / STATE_FILE, document)

    def remove_directory(self, container_id: str) -> None:
        """Delete the container's directory; the caller has torn down everything else.

        Its entry in containers/ changes only under the store-wide lock, with the index (runtime/index.py):
        hidden by a rename first, emptied without the lock, then the empty directory goes under it again.
        """
        name = self._config_name(container_id)
        trash = self.root / f".removing-{container_id}"
        with self.global_lock():
            index = self._current_index_locked()
            with contextlib.suppress(FileNotFoundError):
                os.rename(self.directory(container_id), trash)  # atomic: hidden from scans at once
            holding = _hold_removal(trash)  # before the store lock goes: `system check` sees it under way
            if index:
                if name:
                    index.drop_name(name, container_id)
                index.unmark_running(container_id)
                index.write_stamp()
        try:
            self._empty_and_remove(trash)
        finally:
            if holding is not None:
                os.close(holding)

    def _empty_and_remove(self, trash: Path) -> None:
        for _ in range(50):  # a straggler (a monitor killed mid-write) may add a file meanwhile: retry
            _empty_directory(trash)
            with self.global_lock():
                index = self._current_index_locked()
                try:
                    os.rmdir(trash)
                except FileNotFoundError:
                    pass  # removed already (a parallel rm of the same container)
                except OSError:
                    pass  # not empty after all: empty it again
                else:
                    if index:
                        index.write_stamp()
            if not os.path.lexists(trash):
                return
            time.sleep(0.01)
        raise StoreError(f"cannot remove {trash}")


def _name_conflict(name: str, owner: str) -> ConflictError:
    return ConflictError(f'Conflict. The container name "/{name}" is already in use by container "{owner}". '
                         "You have to remove (or rename) that container to be able to reuse that name.")


def _empty_directory(directory: Path) -> None:
    """Delete what is in `directory`, keeping the directory itself."""
    import shutil

    try:
        entries = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        path = directory / entry
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
