"""The exit and the teardown: record how C ended, undo network, cgroup and mounts, remove a --rm container."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pyctr.errors import NotFoundError, PyctrError, RuntimeFailure
from pyctr.runtime import state as st
from pyctr.runtime.lifecycle.concurrently import Concurrently
from pyctr.runtime.lifecycle.config_document import load_spec
from pyctr.runtime.state import ContainerRecord, ContainerStore

if TYPE_CHECKING:
    from pyctr.config import Config
    from pyctr.runtime.spec import ContainerSpec


def finish(config: Config, container_id: str, exit_code: int, finished_at: str | None = None) -> None:
    """Record the exit of C and tear everything down (the monitor's `_cleanup`, or the foreground CLI)."""
    store = ContainerStore(config.paths)
    try:
        record = store.get(container_id, reconcile_state=False)
    except NotFoundError:
        return  # removed meanwhile (rm -f): nothing left to record
    spec = load_spec(record)
    oom = _oom_killed(container_id)
    from pyctr.runtime import restart as policy

    decisions = []

    from pyctr import events

    def exit_transition(s: st.ContainerState) -> st.ContainerState | None:
        if not s.running or s.status == "restarting":
            return None  # an exit already recorded (rm -f): so is its die
        new, decision = policy.exit_transition(s, policy.policy_of(record), exit_code, oom_killed=oom,
                                               at=finished_at, now=time.time())
        decisions.append(decision)
        # Journaled before the exit shows in the state: `stop` waits for that state, then records its `stop`
        if oom:
            events.record_container(config.root, record, "oom")
        events.record_container(config.root, record, "die", exitCode=exit_code)
        return new

    with contextlib.suppress(NotFoundError):
        store.update_state(container_id, exit_transition)
    try:
        teardown(config, record, spec)  # raises if something stayed: the directory is then kept for `rm -f`
    finally:
        if decisions:
            record_network_events(config, record, spec.network.mode, record.state.network or {}, "disconnect")
            record_volume_events(config, record, spec.mount_points, "unmount")
    if decisions and decisions[0].restart:
        policy.schedule(config, container_id, decisions[0].delay_ms)
        return
    if spec.auto_remove:
        volumes = anonymous_volumes(record)
        store.remove_directory(container_id)
        remove_anonymous_volumes(config, volumes)
        events.record_container(config.root, record, "destroy")


def finish_reporting(config: Config, container_id: str, exit_code: int) -> None:
    """finish() for the foreground CLI: a cleanup problem is a warning; the exit code stays the container's."""
    try:
        finish(config, container_id, exit_code, st.now_rfc3339())
    except PyctrError as e:
        print(f"Warning: {e.message}", file=sys.stderr)


def network_actors(config: Config, mode: str, network: dict) -> list[tuple[str, str, str]]:
    """(network id, name, driver) of each network a running container is on, for dockerd's `network connect` /
    `disconnect` events: the user networks in its state's Networks, else the predefined one its mode names."""
    actors = [(str(settings.get("NetworkID", "")), name, "bridge")
              for name, settings in (network.get("Networks") or {}).items()]
    if mode not in ("bridge", "none", "host"):
        return actors
    from pyctr.runtime.network.usernet import predefined_id

    return [(predefined_id(mode, str(config.root)), mode, {"none": "null"}.get(mode, mode)), *actors]


def record_network_events(config: Config, record: ContainerRecord, mode: str, network: dict, action: str) -> None:
    from pyctr import events

    for network_id, name, driver in network_actors(config, mode, network):
        events.record(config.root, "network", action, network_id, {"container": record.id, "name": name,
                                                                   "type": driver})


def record_volume_events(config: Config, record: ContainerRecord, mount_points: list[dict], action: str) -> None:
    """dockerd's volume `mount` (at start: destination, read/write, propagation) and `unmount` (at the exit)
    events, one per volume the container mounts; binds and tmpfs have none."""
    from pyctr import events

    for point in mount_points:
        if point.get("type") != "volume" or not point.get("name"):
            continue
        attributes = {"driver": "local", "container": record.id}
        if action == "mount":
            attributes.update({"destination": point.get("destination", ""),
                               "read/write": "true" if point.get("rw", True) else "false",
                               "propagation": point.get("propagation", "")})
        events.record(config.root, "volume", action, point["name"], attributes)


def anonymous_volumes(record: ContainerRecord) -> list[str]:
    """Names of the container's anonymous volumes; read them before the container's directory goes."""
    if "AnonymousVolumes" in record.config:
        return list(record.config["AnonymousVolumes"])
    from pyctr.runtime.spec import anonymous_volume_name  # a container of an older pyctr: `-v /path` by index

    volumes = (record.config.get("Options") or {}).get("volumes") or []
    return [anonymous_volume_name(record.id, index) for index, volume in enumerate(volumes) if ":" not in volume]


def remove_anonymous_volumes(config: Config, names: list[str]) -> None:
    """Anonymous volumes go with the container on `rm -v` and --rm; named volumes, binds and volumes another
    container still uses stay."""
    from pyctr.runtime.volumes import VolumeStore, remove_unused

    remove_unused(VolumeStore(config.paths), names)


def _oom_killed(container_id: str) -> bool:
    from pyctr.runtime.cgroups import open_cgroup

    try:
        return open_cgroup(container_id).oom_killed()
    except (OSError, PyctrError):
        return False


def teardown(config: Config, record: ContainerRecord, spec: ContainerSpec | None = None) -> None:
    """Undo what a start set up: network, cgroup, a rootfs mount left on the host. Idempotent."""
    if spec is None:
        try:
            spec = load_spec(record)
        except (PyctrError, KeyError, TypeError, ValueError):
            spec = None  # damaged spec.json: still remove what is named after the id
    mode = spec.network.mode if spec is not None else "bridge"
    merged = Path(spec.rootfs.merged) if spec is not None else record.directory / "rootfs" / "merged"
    errors = []
    never_started = record.state.started_at == st.ZERO_TIME and not record.state.network
    network = None
    if mode not in ("host", "none") and not never_started:  # a never-started container has no veth to remove
        from pyctr.runtime.network import teardown_network

        network = Concurrently(teardown_network, config, record.id)  # alongside the cgroup and the mount
    try:
        from pyctr.runtime.cgroups import open_cgroup

        open_cgroup(record.id).destroy()
    except (OSError, PyctrError) as e:
        errors.append(f"cgroup: {e}")
    _unmount_rootfs(merged)
    from pyctr.runtime.lifecycle.kernel_start import unmount_shm

    unmount_shm(record.directory)  # --ipc shareable (p15-ns)
    if network is not None:
        try:
            network.join()
        except (OSError, PyctrError) as e:
            errors.insert(0, f"network: {e}")
    if errors:
        raise RuntimeFailure(f"cleanup of container {record.short_id} incomplete: {'; '.join(errors)}")


def _unmount_rootfs(merged: Path) -> None:
    """The overlay is normally mounted inside C's own mount namespace; a host mount is cleaned up too."""
    if not os.path.ismount(merged):
        return
    from pyctr.runtime.syscalls import umount2

    MNT_DETACH = 2
    with contextlib.suppress(OSError):
        umount2(str(merged), MNT_DETACH)
