"""`pyctr system check`, runtime half: verify container state against the kernel and repair it.

What a crash (SIGKILL of a CLI, a monitor or `_cleanup`) can leave, and what is done about it:
- a container directory without config.json (create interrupted) or with unreadable
  state: removed, after tearing down anything its id still holds;
- `.removing-<id>` (rm interrupted after it hid the directory): torn down by id and deleted;
- "running" whose process and monitor are gone: marked exited by the lifecycle's own
  `state.reconcile` (through `ContainerStore.get`, which persists it under the lock);
- a non-running container still holding a cgroup, a network address or a host mount of its
  rootfs: torn down by the lifecycle's own `container.teardown`;
- network records of containers that no longer exist: `network.reap_stale`;
- the index of names and running containers (runtime/index.py) missing, stale, or disagreeing with the
  containers: rebuilt from them.

Nothing here touches what might belong to another root or to a start in progress: cgroups
are only destroyed for ids this root knows, a non-running container whose cgroup holds
processes or whose veth still exists is left alone (it is being started), and an empty
cgroup younger than CGROUP_GRACE seconds is left alone (a start creates it just before it
moves the process in). The whole check runs under the store's GC lock (builds hold it, and
their RUN containers have network records but no container directory) and the containers
lock (creates hold it, so a directory being created is never mistaken for a half one).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pyctr.config import Config
from pyctr.errors import PyctrError
from pyctr.fsutil import remove_tree
from pyctr.image.check import Finding, Outcome, apply_findings, mount_points, mounts_under
from pyctr.runtime import state as st

CGROUP_GRACE = 10.0  # seconds an empty cgroup of a non-running container may be a start in progress
REMOVING_PREFIX = ".removing-"


def unmount_all(points: list[str]) -> None:
    """Detach each mount point (deepest first); one already gone is fine. Also what `check_store` is handed
    to detach a dead build's mounts in tmp/ (the image package does not import the runtime's syscalls)."""
    from pyctr.runtime.syscalls import MNT_DETACH, umount2

    for point in points:
        try:
            umount2(point, MNT_DETACH)
        except OSError as e:
            if e.errno not in (22, 2):  # EINVAL: not a mount point (any more); ENOENT
                raise


@dataclass(frozen=True)
class ContainerFacts:
    """One entry of containers/ as found on disk and in the kernel.

    kind: "container" (config and state readable), "half" (no config.json), "unreadable",
    "removing" (a `.removing-<id>` left by an interrupted rm).
    """

    id: str
    kind: str
    name: str = ""
    error: str = ""
    state: st.ContainerState | None = None
    reconciled: st.ContainerState | None = None  # what reconcile says the state really is (None: as stored)
    cgroup_exists: bool = False
    cgroup_pids: tuple[int, ...] = ()
    cgroup_age: float = 0.0
    network_ip: str = ""
    veth_exists: bool = False
    mounts: tuple[str, ...] = ()
    removal_under_way: bool = False  # a `.removing-<id>` whose remover still holds it (st.removal_under_way)


@dataclass(frozen=True)
class StrayCgroup:
    """The cgroup of an id this root knows only from its network records (a removed container)."""

    exists: bool = False
    pids: tuple[int, ...] = ()


@dataclass(frozen=True)
class IndexFacts:
    """The container index as stored: whether its stamp says current, its name entries, its running ids."""

    current: bool = False
    names: dict[str, str] = field(default_factory=dict)
    running: frozenset[str] = frozenset()
    # Read as running before the index was read, stopped by then: the index is a superset of what runs when it
    # is read, not of what ran a moment earlier (a `run --rm` ending during the check).
    stopped_since: frozenset[str] = frozenset()


@dataclass(frozen=True)
class RuntimeSnapshot:
    containers: dict[str, ContainerFacts] = field(default_factory=dict)
    network_ids: frozenset[str] = frozenset()
    network_error: str = ""
    stray_cgroups: dict[str, StrayCgroup] = field(default_factory=dict)
    index: IndexFacts = field(default_factory=IndexFacts)
    orphan_bridges: tuple[str, ...] = ()  # labelled for this root, of a user network that no longer exists


# ------------------------------------------------------------------ deciding (pure)

def _label(facts: ContainerFacts) -> str:
    return f"container {facts.id[:12]}" + (f" ({facts.name})" if facts.name else "")


def is_running(facts: ContainerFacts) -> bool:
    """Running once reconciled: a "running" state whose processes are gone counts as exited."""
    return facts.state is not None and facts.state.running and facts.reconciled is None


def leftovers(facts: ContainerFacts, grace: float = CGROUP_GRACE) -> list[str]:
    """What a non-running container still holds that teardown releases ([] also when it may be starting).

    A container found dead by reconcile had finished starting, so its empty cgroup needs no grace period.
    """
    if facts.cgroup_pids or facts.veth_exists:
        return []  # its processes or its network namespace live: a start in progress, not a leftover
    if facts.cgroup_exists and facts.cgroup_age < grace and facts.reconciled is None:
        return []  # an empty cgroup just created by a start that has not moved its process in yet
    found = []
    if facts.cgroup_exists:
        found.append("a cgroup")
    if facts.network_ip:
        found.append(f"network address {facts.network_ip}")
    if facts.mounts:
        found.append(f"{len(facts.mounts)} mount(s)")
    return found


def decide_container(facts: ContainerFacts, grace: float = CGROUP_GRACE) -> list[Finding]:
    label = _label(facts)
    if facts.kind == "half":
        return [Finding(label, "half-created (no config.json: a create was interrupted)", "remove_container",
                        facts.id)]
    if facts.kind == "unreadable":
        return [Finding(label, f"unreadable state ({facts.error})", "remove_container", facts.id)]
    if facts.kind == "removing":
        if facts.removal_under_way:  # an `rm` emptying it right now, outside the store-wide lock
            return []
        return [Finding(label, "its removal was interrupted", "finish_removal", facts.id)]
    findings = []
    if facts.reconciled is not None:
        findings.append(Finding(label, "recorded as running but its process and monitor are gone", "mark_exited",
                                facts.id, {"exit_code": facts.reconciled.exit_code}))
    if not is_running(facts):
        held = leftovers(facts, grace)
        if held:
            findings.append(Finding(label, f"not running but still holds {', '.join(held)}", "teardown", facts.id))
    return findings


def decide(snapshot: RuntimeSnapshot, grace: float = CGROUP_GRACE) -> list[Finding]:
    """Every problem of the container state, in repair order (directories first, then networks)."""
    findings: list[Finding] = []
    for cid in sorted(snapshot.containers):
        findings += decide_container(snapshot.containers[cid], grace)
    if snapshot.network_error:
        findings.append(Finding("network state", snapshot.network_error, None, "",
                                {"why": "fix or remove network/ipam.json by hand"}))
    gone = sorted(snapshot.network_ids - set(snapshot.containers))
    for cid in gone:
        stray = snapshot.stray_cgroups.get(cid, StrayCgroup())
        extra = " and a cgroup" if stray.exists else ""
        findings.append(Finding(f"network record {cid[:12]}", f"its container no longer exists (address{extra} "
                                "still held)", "reap_network", cid))
    for bridge in snapshot.orphan_bridges:
        findings.append(Finding(f"network bridge {bridge}", "its network no longer exists", "remove_bridge", bridge))
    return findings


def index_findings(snapshot: RuntimeSnapshot) -> list[Finding]:
    """A current index must name every container and list every running one (extra running entries are
    allowed: readers check them). A missing or stale one is no damage (an older pyctr, a directory removed by
    a repair): it is rebuilt quietly, as any command would."""
    from pyctr.runtime.index import entry_name

    index = snapshot.index
    if not index.current:
        return []
    listed = [f for f in snapshot.containers.values() if f.kind == "container"]
    expected = {entry_name(f.name): f.id for f in listed}
    problems = []
    if index.names != expected:
        problems.append("names disagree with the containers")
    if {f.id for f in listed if f.state is not None and f.state.running} - index.running - index.stopped_since:
        problems.append("running containers missing")
    return [Finding("container index", "; ".join(problems), "rebuild_index")] if problems else []


# ------------------------------------------------------------------ reading the disk and the kernel

def _cgroup_facts(cid: str) -> tuple[bool, tuple[int, ...], float]:
    from pyctr.runtime.cgroups import open_cgroup

    try:
        cgroup = open_cgroup(cid)
    except PyctrError:
        return False, (), 0.0
    dirs = cgroup.unique_dirs()
    if not dirs:
        return False, (), 0.0
    try:
        pids = tuple(cgroup.pids())
    except (OSError, PyctrError):
        pids = ()
    ages = []
    for d in dirs:
        with contextlib.suppress(OSError):
            ages.append(time.time() - d.stat().st_mtime)
    return True, pids, min(ages) if ages else 0.0


def _read_json(path: Path) -> dict:
    with open(path, "rb") as f:
        doc = json.load(f)
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    return doc


def _container_facts(store, cid: str, kind: str, points: list[str],
                     network: dict[str, tuple[str, str]]) -> ContainerFacts:
    directory = store.root / (REMOVING_PREFIX + cid if kind == "removing" else cid)
    ip, veth = network.get(cid, ("", ""))
    base = dict(id=cid, kind=kind, mounts=tuple(mounts_under(directory, points)), network_ip=ip,
                veth_exists=bool(veth) and os.path.lexists(f"/sys/class/net/{veth}"))
    exists, pids, age = _cgroup_facts(cid)
    base.update(cgroup_exists=exists, cgroup_pids=pids, cgroup_age=age)
    if kind != "container":
        return ContainerFacts(**base, removal_under_way=kind == "removing" and st.removal_under_way(directory))
    try:
        config = _read_json(directory / st.CONFIG_FILE)
    except FileNotFoundError:
        return ContainerFacts(**{**base, "kind": "half"})
    except (OSError, ValueError) as e:
        return ContainerFacts(**{**base, "kind": "unreadable", "error": f"config.json: {e}"})
    name = str(config.get("Name", ""))
    try:
        state = st.ContainerState.from_dict(_read_json(directory / st.STATE_FILE))
    except (OSError, ValueError, TypeError) as e:
        return ContainerFacts(**{**base, "kind": "unreadable", "name": name, "error": f"state.json: {e}"})
    reconciled = st.reconcile(state, st.boot_id(), st.process_alive, store.read_exit_file(cid))
    return ContainerFacts(**{**base, "name": name, "state": state, "reconciled": reconciled})


def _network_records(config: Config) -> tuple[dict[str, tuple[str, str]], str]:
    """container id -> (ip, host veth) from this root's IPAM state."""
    from pyctr.runtime.network import ipam

    if not ipam.state_file(config.paths.network).exists():
        return {}, ""
    try:
        state = ipam.load_state(config.paths.network)
    except PyctrError as e:
        return {}, e.message
    return {cid: (rec.ip, rec.veth) for b in state.bridges.values() for cid, rec in b.containers.items()}, ""


def snapshot_runtime(config: Config) -> RuntimeSnapshot:
    from pyctr.runtime.names import ID_HEX_LEN
    from pyctr.runtime.state import ContainerStore

    store = ContainerStore(config.paths)
    network, network_error = _network_records(config)
    points = mount_points()
    containers: dict[str, ContainerFacts] = {}
    with contextlib.suppress(FileNotFoundError):
        for entry in sorted(os.listdir(store.root)):
            kind, cid = ("removing", entry[len(REMOVING_PREFIX):]) if entry.startswith(REMOVING_PREFIX) \
                else ("container", entry)
            if len(cid) != ID_HEX_LEN or not all(c in "0123456789abcdef" for c in cid):
                continue  # not pyctr's (a temp file of an atomic write, something a human put there)
            if kind == "container" and not (store.root / entry).is_dir():
                continue
            containers[cid] = _container_facts(store, cid, kind, points, network)
    strays = {}
    for cid in set(network) - set(containers):
        exists, pids, _ = _cgroup_facts(cid)
        strays[cid] = StrayCgroup(exists, pids)
    from pyctr.runtime.network.usermanager import orphan_bridges

    return RuntimeSnapshot(containers, frozenset(network), network_error, strays, _index_facts(store, containers),
                           tuple(orphan_bridges(config)))


def _index_facts(store, containers: dict[str, ContainerFacts]) -> IndexFacts:
    """The index, read after the containers (a start marks it before writing "running"); a container read as
    running that the index lacks is read again: it may have stopped in between."""
    if not store.index.is_current():
        return IndexFacts()
    try:
        names, running = store.index.describe()
    except OSError:
        return IndexFacts()
    suspects = [f.id for f in containers.values()
                if f.state is not None and f.state.running and f.id not in running]
    stopped = frozenset(cid for cid in suspects if not _still_running(store, cid))
    return IndexFacts(True, names, frozenset(running), stopped)


def _still_running(store, container_id: str) -> bool:
    try:
        return store.read_state(container_id).running
    except PyctrError:  # removed meanwhile (`run --rm`), or unreadable: not running now
        return False


# ------------------------------------------------------------------ repairing

class RuntimeRepairer:
    """The actions `decide`'s findings name, for one root."""

    def __init__(self, config: Config, snapshot: RuntimeSnapshot) -> None:
        from pyctr.runtime.state import ContainerStore

        self.config = config
        self.snapshot = snapshot
        self.store = ContainerStore(config.paths)
        self._reaped: list[str] | None = None

    def actions(self) -> dict[str, Callable[[Finding], str]]:
        return {"remove_container": self.remove_container, "finish_removal": self.finish_removal,
                "mark_exited": self.mark_exited, "teardown": self.teardown, "reap_network": self.reap_network,
                "remove_build_step": lambda f: remove_build_step(self.config.paths.build_steps, f.target),
                "rebuild_index": self.rebuild_index, "remove_bridge": self.remove_bridge}

    def rebuild_index(self, finding: Finding) -> str:
        self.store.rebuild_index_locked()  # check_containers holds the store-wide lock
        return "rebuilt"

    def remove_bridge(self, finding: Finding) -> str:
        from pyctr.runtime.network.usermanager import remove_orphan_bridge

        return "removed" if remove_orphan_bridge(self.config, finding.target) else "in use again: left alone"

    def _teardown_by_id(self, cid: str, directory: Path) -> None:
        """For a container whose config cannot be trusted: release cgroup, network and mounts by id."""
        from pyctr.runtime.cgroups import open_cgroup

        cgroup = open_cgroup(cid)
        if cgroup.exists():
            cgroup.destroy()
        if cid in self.snapshot.network_ids:
            from pyctr.runtime.network import teardown_network

            teardown_network(self.config, cid)
        unmount_all(mounts_under(directory, mount_points()))

    def remove_container(self, finding: Finding) -> str:
        directory = self.store.directory(finding.target)
        self._teardown_by_id(finding.target, directory)
        remove_tree(directory)
        return "removed"

    def finish_removal(self, finding: Finding) -> str:
        directory = self.store.root / (REMOVING_PREFIX + finding.target)
        self._teardown_by_id(finding.target, directory)
        remove_tree(directory)
        return "removed"

    def mark_exited(self, finding: Finding) -> str:
        record = self.store.get(finding.target)  # reconciles and persists under the container's lock
        if record.state.running:
            return "it is running again"
        return f"marked exited ({record.state.exit_code})"

    def teardown(self, finding: Finding) -> str:
        from pyctr.runtime import container

        record = self.store.get(finding.target)
        if record.state.running:
            return "it is running again: left alone"
        facts = self.snapshot.containers[finding.target]
        if facts.network_ip and record.state.started_at == st.ZERO_TIME and not record.state.network:
            # teardown skips the network of a never-started container; this one got an address anyway
            from pyctr.runtime.network import teardown_network

            teardown_network(self.config, record.id)
        container.teardown(self.config, record)
        unmount_all(mounts_under(record.directory, mount_points()))
        return "torn down"

    def reap_network(self, finding: Finding) -> str:
        if self._reaped is None:
            from pyctr.runtime.network import reap_stale

            live = {cid for cid, f in self.snapshot.containers.items() if f.kind == "container"}
            self._reaped = list(reap_stale(self.config, live))
        stray = self.snapshot.stray_cgroups.get(finding.target)
        if stray is not None and stray.exists:
            from pyctr.runtime.cgroups import open_cgroup

            open_cgroup(finding.target).destroy()
        if finding.target not in self._reaped:
            return "already released"
        return "address released" + (", cgroup removed" if stray is not None and stray.exists else "")


def check_containers(config: Config, repair: bool = True, grace: float = CGROUP_GRACE) -> list[Outcome]:
    """Verify every container of `config.root` against the kernel; repair unless `repair` is False."""
    paths = config.paths
    if not paths.root.is_dir():
        return []
    from pyctr.image.layout import StoreLayout
    from pyctr.runtime.state import ContainerStore

    # the store-wide lock of ContainerStore (held by create, removal and the index)
    with StoreLayout(paths).gc_lock(shared=False), ContainerStore(paths).global_lock():
        snapshot = snapshot_runtime(config)
        findings = decide(snapshot, grace) + build_step_findings(paths.build_steps) + index_findings(snapshot)
        repairer = RuntimeRepairer(config, snapshot)
        outcomes = apply_findings(findings, repairer.actions() if repair else {}, repair)
        if repair and not repairer.store.index.is_current():  # missing, or repairs removed directories
            with contextlib.suppress(OSError):
                repairer.store.rebuild_index_locked()
        if repair:  # derived, like the index: refreshed quietly (a stale listing is ignored, never shown)
            repairer.store.refresh_stale_listings()
        return outcomes


def build_step_findings(records: Path) -> list[Finding]:
    """Build RUN steps whose build died (SIGKILL): their cgroups stay. With the GC lock held exclusively no build
    runs, so every recorded step is such a leftover (the step itself died with its build)."""
    try:
        ids = sorted(os.listdir(records))
    except FileNotFoundError:
        return []
    return [Finding(f"build step {cid[:12]}", "left by a build that died", "remove_build_step", cid) for cid in ids]


def remove_build_step(records: Path, cid: str) -> str:
    """Destroy a dead build step's cgroup (refused while a process is still in it), then forget the step."""
    from pyctr.runtime.cgroups import open_cgroup

    cgroup = open_cgroup(cid)
    if cgroup.exists():
        if cgroup.pids():
            raise PyctrError(f"build step {cid[:12]} still has processes in its cgroup")
        cgroup.destroy()
    (records / cid).unlink(missing_ok=True)
    return "removed its cgroup"
