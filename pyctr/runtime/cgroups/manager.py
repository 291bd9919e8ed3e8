"""Create, join, inspect and remove a container's cgroup (the part that touches the kernel).

Everything decided (paths, values) comes from layout.py and the controller modules;
this file only sequences the mkdir/write/rmdir calls and makes them safe against
other pyctr processes: the shared `pyctr` parent directory can be removed by another
container's destroy at any moment, so creation retries when a parent vanishes and
removal of the parent is best effort (it fails harmlessly while it has children).
"""

from __future__ import annotations

import errno
import functools
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pyctr.errors import RuntimeFailure
from pyctr.runtime.cgroups import CgroupMode, blkio, cpu, cpuset, detect, devices, freezer, memory, pids
from pyctr.runtime.cgroups.files import CgroupWriteError, read_pids, read_text, write_value
from pyctr.runtime.cgroups.layout import PARENT, UNIFIED, check_container_id, v1_dirs, v2_dir, v2_subtree_plan
from pyctr.runtime.cgroups.limits import Limits

CREATE_ATTEMPTS = 30
RMDIR_TIMEOUT = 5.0
KILL_TIMEOUT = 5.0
T = TypeVar("T")


@functools.lru_cache(maxsize=1)
def current_mode() -> CgroupMode:
    """This machine's mode; mounts do not change while a pyctr command runs."""
    return detect()


@dataclass
class Cgroup:
    """One container's cgroup: a directory per v1 controller, or one v2 directory.

    `paths` maps controller name -> directory (v1; co-mounted controllers share one;
    on a hybrid host "unified" is the container's node in the empty v2 tree), or
    {"unified": directory} on v2. Only directories that exist are listed.
    """

    container_id: str
    mode: CgroupMode
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def version(self) -> int:
        return self.mode.version

    @property
    def devices_enforced(self) -> bool:
        """False on v2 (no BPF device program): the runtime must then drop CAP_MKNOD."""
        return self.version == 1 and "devices" in self.paths

    def unique_dirs(self) -> list[Path]:
        return list(dict.fromkeys(self.paths.values()))

    def exists(self) -> bool:
        return any(d.is_dir() for d in self.unique_dirs())

    def bind_mounts(self) -> list[tuple[Path, str]]:
        """(host directory, name under /sys/fs/cgroup) pairs for the container's read-only view.

        v1: one per hierarchy, named like the host's mount (e.g. "cpu,cpuacct", and "unified" for
        a hybrid host's v2 node); v2: (the directory, "") meaning mount it at /sys/fs/cgroup itself.
        """
        if self.version == 2:
            return [(self.paths[UNIFIED], "")] if UNIFIED in self.paths else []
        mounts: dict[Path, str] = {}
        for controller, directory in self.paths.items():
            mount = self.mode.unified if controller == UNIFIED else self.mode.v1_mounts[controller]
            mounts.setdefault(directory, mount.name if mount else controller)
        return list(mounts.items())

    def add_process(self, pid: int) -> None:
        """Move `pid` (and later its children) into every directory of this cgroup."""
        for directory in self.unique_dirs():
            try:
                write_value(directory, "cgroup.procs", pid)
            except CgroupWriteError as e:
                if e.errno == errno.ESRCH:
                    raise RuntimeFailure(f"process {pid} exited before it joined its cgroup") from e
                raise

    def pids(self) -> list[int]:
        """Every process in the cgroup (the union over controllers, in case one was moved)."""
        found: set[int] = set()
        for directory in self.unique_dirs():
            found.update(read_pids(directory / "cgroup.procs"))
        return sorted(found)

    def oom_killed(self) -> bool:
        """Whether the kernel OOM-killed a process of this cgroup (Docker's State.OOMKilled)."""
        if self.version == 2:
            return UNIFIED in self.paths and memory.oom_killed_v2(self.paths[UNIFIED])
        return "memory" in self.paths and memory.oom_killed_v1(self.paths["memory"])

    def stats(self) -> dict[str, dict[str, Any]]:
        """Usage numbers for `pyctr stats`; missing controllers give empty sections, never errors."""
        if self.version == 2:
            d = self.paths.get(UNIFIED)
            if d is None:
                return {"memory": {}, "cpu": {}, "pids": {}, "blkio": {}}
            return {"memory": memory.stats_v2(d), "cpu": cpu.stats_v2(d), "pids": pids.stats(d),
                    "blkio": blkio.stats_v2(d)}
        p = self.paths
        return {
            "memory": memory.stats_v1(p["memory"]) if "memory" in p else {},
            "cpu": cpu.stats_v1(p.get("cpu"), p.get("cpuacct")),
            "pids": pids.stats(p["pids"]) if "pids" in p else {},
            "blkio": blkio.stats_v1(p["blkio"]) if "blkio" in p else {},
        }

    def kill_all(self, sig: int = signal.SIGKILL, timeout: float = KILL_TIMEOUT) -> None:
        """Signal every process inside; for SIGKILL, repeat until the cgroup is empty.

        The cgroup is frozen while signals are sent so that nothing forks in between
        (a fork bomb cannot outrun it); v2's cgroup.kill does it all in the kernel.
        The calling process must not be inside: it would freeze or kill itself.
        """
        if os.getpid() in self.pids():
            raise RuntimeFailure(f"pyctr's own process {os.getpid()} is inside the cgroup of container "
                                 f"{self.container_id}: it cannot signal it from inside")
        if sig != signal.SIGKILL:
            self._signal_frozen(sig)
            return
        deadline = time.monotonic() + timeout
        while self.pids():
            if time.monotonic() > deadline:
                raise RuntimeFailure(f"cannot kill the processes of container {self.container_id}: {self.pids()}")
            if not (self.version == 2 and UNIFIED in self.paths and freezer.kill_v2(self.paths[UNIFIED])):
                self._signal_frozen(sig)
            time.sleep(0.01)

    def freeze(self) -> bool:
        """Docker's pause: freeze every process (v1 freezer.state, v2 cgroup.freeze); True once frozen."""
        freeze, _thaw, directory = self._freezer()
        if directory is None:
            raise RuntimeFailure(f"no freezer cgroup for container {self.container_id}")
        return freeze(directory)

    def thaw(self) -> None:
        """Docker's unpause."""
        _freeze, thaw, directory = self._freezer()
        if directory is not None:
            with _IgnoreGone():
                thaw(directory)

    def update_limits(self, limits: Limits) -> None:
        """Write new memory/cpu/pids limits into a live cgroup (`pyctr update`), as at creation; the device rules
        are left alone (rewriting them would deny every device for a moment)."""
        _require_controllers(self, limits)
        if self.version == 2:
            for module in (memory, cpu, pids):
                module.apply_v2(self.paths[UNIFIED], limits)
            return
        for controller, module in (("memory", memory), ("cpu", cpu), ("pids", pids)):
            if controller in self.paths:
                module.apply_v1(self.paths[controller], limits)

    def _signal_frozen(self, sig: int) -> bool:
        freeze, thaw, directory = self._freezer()
        frozen = False
        try:
            frozen = directory is not None and freeze(directory)
            for pid in self.pids():
                with _IgnoreGone():
                    os.kill(pid, sig)
        finally:
            if directory is not None:
                with _IgnoreGone():
                    thaw(directory)
        return frozen

    def _freezer(self) -> tuple[Callable, Callable, Path | None]:
        if self.version == 2:
            return freezer.freeze_v2, freezer.thaw_v2, self.paths.get(UNIFIED)
        return freezer.freeze_v1, freezer.thaw_v1, self.paths.get("freezer")

    def destroy(self) -> None:
        """Kill what is left, remove every directory, then the shared parent if now empty.

        Idempotent: a cgroup that is already gone is not an error.
        """
        if self.pids():
            self.kill_all()
        for directory in self.unique_dirs():
            _rmdir_with_retries(directory)
            _remove_parent_if_empty(directory.parent)


class _IgnoreGone:
    """Context manager: a process or directory that vanished meanwhile is fine."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None:
            return False
        if isinstance(exc, ProcessLookupError | FileNotFoundError):
            return True
        return isinstance(exc, CgroupWriteError) and exc.errno in (errno.ENOENT, errno.ENODEV)


def create_cgroup(container_id: str, limits: Limits, mode: CgroupMode | None = None) -> Cgroup:
    """Create (or reuse) the container's cgroup and write its limits; before the process starts."""
    mode = mode or current_mode()
    check_container_id(container_id)
    cgroup = Cgroup(container_id, mode, _paths(mode, container_id))
    if not cgroup.paths:
        raise RuntimeFailure("no cgroup controllers are mounted: cannot create a cgroup")
    _require_controllers(cgroup, limits)
    existed = cgroup.exists()
    try:
        _retry_while_parent_vanishes(lambda: _create_dirs(cgroup))
        if cgroup.version == 2:
            _require_v2_enabled(cgroup.paths[UNIFIED], limits)
        _apply_limits(cgroup, limits)
    except BaseException:
        if not existed:  # never tear down a cgroup (and its processes) this call did not create
            try:
                cgroup.destroy()
            except (OSError, RuntimeFailure):
                pass  # the original error is the one worth reporting
        raise
    return cgroup


def open_cgroup(container_id: str, mode: CgroupMode | None = None) -> Cgroup:
    """The cgroup of an existing container; only directories that exist are listed in paths."""
    mode = mode or current_mode()
    paths = {c: d for c, d in _paths(mode, check_container_id(container_id)).items() if d.is_dir()}
    return Cgroup(container_id, mode, paths)


def warm_attach(mode: CgroupMode | None = None) -> None:
    """Start now, in the background, the wait that makes the next cgroup join slow; best effort.

    Why: a write to any cgroup.procs takes the kernel's global cgroup_threadgroup_rwsem for writing, and when
    none was taken in the last RCU grace period that write first waits one out (5-12 ms on this loaded 2-core
    host: the largest single cost of `exec`, whose joiner writes cgroup.procs). Moving this process into the
    cgroup it is already in (a no-op move that still takes the lock) from a thread starts that wait while the
    caller reads the container's state; the join that follows finds the lock ready. The thread has every
    signal blocked (they stay the caller's to handle or forward) and nothing waits for it; a failure only
    leaves the join as slow as it was."""
    import threading

    target = own_procs_file(mode or current_mode(), _read_own_cgroups())
    if target is None:
        return
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        threading.Thread(target=_write_own_pid, args=(target,), name="pyctr-cgroup-warm", daemon=True).start()
    except RuntimeError:  # no thread to spare: the join just waits as before
        pass
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def own_procs_file(mode: CgroupMode, proc_cgroup: str) -> Path | None:
    """The cgroup.procs of this process's own cgroup (a v1 controller's, or the v2 one), from the text of
    /proc/self/cgroup; None if none can be named."""
    for line in proc_cgroup.splitlines():
        _hierarchy, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if not path.startswith("/"):
            continue
        relative = path.lstrip("/")
        if controllers == "" and mode.unified is not None:
            return mode.unified / relative / "cgroup.procs"
        for controller in controllers.split(","):
            if controller in mode.v1_mounts:
                return mode.v1_mounts[controller] / relative / "cgroup.procs"
    return None


def _read_own_cgroups() -> str:
    try:
        return read_text(Path("/proc/self/cgroup")) or ""
    except OSError:
        return ""


def _write_own_pid(procs: Path) -> None:
    try:
        fd = os.open(procs, os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.write(fd, str(os.getpid()).encode())
    except OSError:
        pass
    finally:
        os.close(fd)


def _paths(mode: CgroupMode, container_id: str) -> dict[str, Path]:
    if mode.version == 2:
        return {UNIFIED: v2_dir(mode.unified, container_id)} if mode.unified else {}
    paths = v1_dirs(mode.v1_mounts, container_id)
    if mode.unified is not None:
        paths[UNIFIED] = v2_dir(mode.unified, container_id)
    return paths


def _require_controllers(cgroup: Cgroup, limits: Limits) -> None:
    """A limit asked for must be enforceable: fail instead of silently running unlimited."""
    have = set(cgroup.mode.controllers)
    for controller in _wanted_controllers(limits):
        if controller not in have:
            raise RuntimeFailure(f"the {controller} cgroup controller is not available on this host: "
                                 f"cannot apply the {controller} limit")


def _require_v2_enabled(directory: Path, limits: Limits) -> None:
    """A v2 controller is usable in `directory` only if its parent enabled it in subtree_control."""
    present = set((read_text(directory / "cgroup.controllers") or "").split())
    for controller in _wanted_controllers(limits):
        if controller not in present:
            raise RuntimeFailure(
                f"the {controller} controller could not be enabled for {directory}: the parent's "
                "cgroup.subtree_control refused it (is pyctr itself running inside a non-root cgroup with processes?)")


def _wanted_controllers(limits: Limits) -> list[str]:
    wanted = {"memory": bool(limits.memory or limits.memory_reservation or limits.oom_kill_disable),
              "cpu": bool(limits.cpus or limits.cpu_shares), "pids": limits.pids_max is not None,
              "cpuset": bool(limits.cpuset_cpus)}
    return [controller for controller, needed in wanted.items() if needed]


def _create_dirs(cgroup: Cgroup) -> None:
    if cgroup.version == 2:
        _create_v2_dir(cgroup.paths[UNIFIED])
        return
    for controller, directory in list(cgroup.paths.items()):
        if controller == UNIFIED:
            _create_hybrid_unified_dir(cgroup, directory)
        else:
            _create_v1_dir(directory, with_cpuset=controller == "cpuset")


def _mkdir(directory: Path) -> None:
    """mkdir where "exists" is success even if it vanishes right after (the next step then retries).

    Path.mkdir(exist_ok=True) re-raises EEXIST when the directory is removed between its
    mkdir and its is_dir check, which a concurrent destroy of the shared parent does.
    """
    try:
        os.mkdir(directory, 0o755)
    except FileExistsError:
        pass


def _create_v1_dir(directory: Path, with_cpuset: bool) -> None:
    _mkdir(directory.parent)
    if with_cpuset:
        cpuset.inherit_v1(directory.parent)
    _mkdir(directory)
    if with_cpuset:
        cpuset.inherit_v1(directory.parent)  # the parent may have been recreated empty meanwhile
        cpuset.inherit_v1(directory)


def _create_hybrid_unified_dir(cgroup: Cgroup, directory: Path) -> None:
    """Best effort: the v2 node of a hybrid host carries no limits, so a failure only drops it."""
    try:
        _mkdir(directory.parent)
        _mkdir(directory)
    except FileNotFoundError:
        raise
    except OSError:
        cgroup.paths.pop(UNIFIED, None)


def _create_v2_dir(directory: Path) -> None:
    _enable_v2_controllers(directory.parent.parent)
    _mkdir(directory.parent)
    _enable_v2_controllers(directory.parent)
    _mkdir(directory)


def _enable_v2_controllers(directory: Path) -> None:
    """Enable pyctr's controllers for the children of `directory`, one at a time.

    One at a time because a single refused controller (e.g. cpu while a realtime task
    exists) would otherwise fail the whole write; whether the controllers a limit needs
    ended up enabled is checked when the limit files are written.
    """
    available = (read_text(directory / "cgroup.controllers") or "").split()
    enabled = (read_text(directory / "cgroup.subtree_control") or "").split()
    plan = v2_subtree_plan(available, enabled)
    for item in (plan or "").split():
        try:
            write_value(directory, "cgroup.subtree_control", item)
        except CgroupWriteError as e:
            if e.errno == errno.ENOENT:
                raise
            continue


def _apply_limits(cgroup: Cgroup, limits: Limits) -> None:
    if cgroup.version == 2:
        d = cgroup.paths[UNIFIED]
        for module in (memory, cpu, pids, devices, cpuset, blkio):
            module.apply_v2(d, limits)
        return
    p = cgroup.paths
    for controller, module in (("memory", memory), ("cpu", cpu), ("pids", pids), ("devices", devices),
                               ("cpuset", cpuset), ("blkio", blkio)):
        if controller in p:
            module.apply_v1(p[controller], limits)


def _retry_while_parent_vanishes(action: Callable[[], T]) -> T:
    """Run `action`, again if a directory it needs was removed by a concurrent destroy."""
    last: OSError | None = None
    for attempt in range(CREATE_ATTEMPTS):
        try:
            return action()
        except FileNotFoundError as e:
            last = e
        except CgroupWriteError as e:
            if e.errno not in (errno.ENOENT, errno.ENODEV):
                raise
            last = OSError(e.errno, str(e))
        time.sleep(0.002 * (attempt + 1))
    raise RuntimeFailure(f"cannot create the container's cgroup: a directory kept disappearing ({last})")


def _rmdir_with_retries(directory: Path, timeout: float = RMDIR_TIMEOUT) -> None:
    """rmdir, retrying on EBUSY: exiting tasks leave the cgroup a moment after they die."""
    deadline = time.monotonic() + timeout
    delay = 0.002
    while True:
        try:
            os.rmdir(directory)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() > deadline:
                raise RuntimeFailure(f"cannot remove cgroup {directory}: {os.strerror(e.errno or errno.EIO)}") from e
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _remove_parent_if_empty(parent: Path) -> None:
    """Remove the shared `pyctr` directory when no container uses it; busy means in use."""
    if parent.name != PARENT:
        return
    try:
        os.rmdir(parent)
    except OSError as e:
        if e.errno not in (errno.ENOENT, errno.EBUSY, errno.ENOTEMPTY):
            raise RuntimeFailure(f"cannot remove cgroup {parent}: {os.strerror(e.errno or errno.EIO)}") from e
