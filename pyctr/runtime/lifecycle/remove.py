"""`rm`: refuse a running container unless forced; tear down and delete everything."""

from __future__ import annotations

import contextlib
import os
import signal
from typing import TYPE_CHECKING

from pyctr import events
from pyctr.errors import ConflictError, NotFoundError, RuntimeFailure
from pyctr.runtime import state as st
from pyctr.runtime.lifecycle.kill import record_kill, signal_container, thaw_if_paused
from pyctr.runtime.lifecycle.teardown import (
    anonymous_volumes,
    record_network_events,
    record_volume_events,
    remove_anonymous_volumes,
    teardown,
)
from pyctr.runtime.lifecycle.wait import STATE_SETTLE_TIMEOUT, wait_for_exit
from pyctr.runtime.state import ContainerRecord, ContainerStore

if TYPE_CHECKING:
    from pyctr.config import Config


def remove(config: Config, ref: str, force: bool = False, volumes: bool = False) -> ContainerRecord:
    """Docker's rm: refuse a running container unless forced; tear down and delete everything."""
    store = ContainerStore(config.paths)
    record = store.get(ref)
    if record.state.running:
        if not force:
            raise ConflictError(f"You cannot remove a running container {record.id}. Stop the container before "
                                "attempting removal or force remove")
        from pyctr.runtime import restart as policy

        record = policy.note_user_signal(store, record, signal.SIGKILL)  # rm -f ends a policy restart too
        signal_container(record, signal.SIGKILL)
        record_kill(config, record, signal.SIGKILL)
        thaw_if_paused(config, record)
        wait_for_exit(record.state.pid, record.state.pid_start_time, STATE_SETTLE_TIMEOUT)
        # Let the monitor finish (it keeps its pid through the exec of `_cleanup`): it writes into the
        # container's directory until then, which must not race with deleting it.
        if record.state.monitor_pid and record.state.monitor_pid != os.getpid():
            wait_for_exit(record.state.monitor_pid, record.state.monitor_start_time, STATE_SETTLE_TIMEOUT)
        marked: list[bool] = []

        def killed(s: st.ContainerState) -> st.ContainerState | None:
            marked.append(s.running)
            if not s.running:
                return None
            events.record_container(config.root, record, "die", exitCode=137)  # the monitor did not record it
            return st.exited(s, 137)

        with contextlib.suppress(NotFoundError):
            store.update_state(record.id, killed)
        if any(marked):
            mode = (record.config.get("Spec") or {}).get("network", {}).get("mode", "bridge")
            record_network_events(config, record, mode, record.state.network or {}, "disconnect")
            record_volume_events(config, record, (record.config.get("Spec") or {}).get("mount_points") or [],
                                 "unmount")
    try:
        teardown(config, record)
    except RuntimeFailure:
        teardown(config, record)  # once more (e.g. a process was still leaving its cgroup); then report
    anonymous = anonymous_volumes(record) if volumes else []
    store.remove_directory(record.id)
    remove_anonymous_volumes(config, anonymous)
    events.record_container(config.root, record, "destroy")
    return record
