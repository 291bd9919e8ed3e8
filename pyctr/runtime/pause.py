"""`pause` / `unpause`: freeze every process of a container through its cgroup, as Docker (runc) does.

cgroup v1: the freezer controller's freezer.state (FROZEN / THAWED); v2: cgroup.freeze, whose effect
cgroup.events reports. The state records "paused" so that ps shows "Up ... (Paused)", exec is refused and the
health checker skips its probes; stop/kill/rm -f of a paused container signal it, then thaw it so that it can
take the signal (Docker's killWithSignal).
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import TYPE_CHECKING

from pyctr import events
from pyctr.errors import ConflictError, NotFoundError, PyctrError, RuntimeFailure
from pyctr.runtime.state import ContainerRecord, ContainerState, ContainerStore

if TYPE_CHECKING:
    from pyctr.config import Config


def check_pausable(container_id: str, state: ContainerState) -> None:
    """dockerd's containerPause refusals, in its order (pure)."""
    if not state.running:
        raise ConflictError(f"Container {container_id} is not running")
    if state.status == "paused":
        raise ConflictError(f"Container {container_id} is already paused")
    if state.status == "restarting":
        raise ConflictError(f"Container {container_id} is restarting, wait until the container is running")


def check_unpausable(container_id: str, state: ContainerState) -> None:
    if state.status != "paused":
        raise ConflictError(f"Container {container_id} is not paused")


def pause(config: Config, ref: str) -> ContainerRecord:
    from pyctr.runtime.cgroups import open_cgroup

    store = ContainerStore(config.paths)
    record = store.get(ref)
    check_pausable(record.id, record.state)
    cgroup = open_cgroup(record.id)
    try:
        frozen = cgroup.freeze()
    except (OSError, PyctrError) as e:
        cgroup.thaw()
        raise RuntimeFailure(f"Cannot pause container {record.id}: {e}") from None
    if not frozen:
        cgroup.thaw()
        raise RuntimeFailure(f"Cannot pause container {record.id}: the freezer did not freeze it in time")
    store.update_state(record.id, lambda s: replace(s, status="paused") if s.status == "running" else None)
    events.record_container(config.root, record, "pause")
    return record


def unpause(config: Config, ref: str) -> ContainerRecord:
    from pyctr.runtime.cgroups import open_cgroup

    store = ContainerStore(config.paths)
    record = store.get(ref)
    check_unpausable(record.id, record.state)
    try:
        open_cgroup(record.id).thaw()
    except (OSError, PyctrError) as e:
        raise RuntimeFailure(f"Cannot unpause container {record.id}: {e}") from None
    store.update_state(record.id, lambda s: replace(s, status="running") if s.status == "paused" else None)
    events.record_container(config.root, record, "unpause")
    return record


def thaw_after_signal(config: Config, record: ContainerRecord) -> None:
    """After stop/kill/rm -f signalled a paused container: thaw it so the signal is taken, mark it running."""
    from pyctr.runtime.cgroups import open_cgroup

    with contextlib.suppress(OSError, PyctrError):
        open_cgroup(record.id).thaw()
    store = ContainerStore(config.paths)
    with contextlib.suppress(NotFoundError):
        store.update_state(record.id, lambda s: replace(s, status="running") if s.status == "paused" else None)
