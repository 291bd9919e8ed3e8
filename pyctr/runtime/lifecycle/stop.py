"""`stop` (the stop signal, SIGKILL after the timeout) and `restart`."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

from pyctr.runtime.lifecycle.detached import start_detached
from pyctr.runtime.lifecycle.kill import parse_signal, record_kill, signal_container, thaw_if_paused
from pyctr.runtime.lifecycle.wait import STATE_SETTLE_TIMEOUT, wait_for_exit, wait_recorded
from pyctr.runtime.state import ContainerRecord, ContainerStore

if TYPE_CHECKING:
    from pyctr.config import Config


def stop(config: Config, ref: str, timeout: int | None = None, sig: str | None = None) -> ContainerRecord:
    """Docker's stop: the stop signal, then SIGKILL after `timeout` seconds; returns once the exit is recorded."""
    store = ContainerStore(config.paths)
    record = store.get(ref)
    if not record.state.running:
        return record
    spec = record.config.get("Spec", {})
    signum = parse_signal(sig or spec.get("stop_signal") or "SIGTERM")
    timeout = spec.get("stop_timeout", 10) if timeout is None else timeout
    from pyctr.runtime import restart as policy

    record = policy.note_user_signal(store, record, signal.SIGKILL)  # a stop always cancels a policy restart
    if not record.state.running:
        return record
    signal_container(record, signum)
    record_kill(config, record, signum)
    thaw_if_paused(config, record)
    if not wait_for_exit(record.state.pid, record.state.pid_start_time, max(timeout, 0)):
        signal_container(record, signal.SIGKILL)
        record_kill(config, record, signal.SIGKILL)
        wait_for_exit(record.state.pid, record.state.pid_start_time, STATE_SETTLE_TIMEOUT)
    stopped = wait_recorded(store, record.id)
    from pyctr import events

    events.record_container(config.root, record, "stop")
    return stopped


def restart(config: Config, ref: str, timeout: int | None = None) -> ContainerRecord:
    stop(config, ref, timeout)
    store = ContainerStore(config.paths)
    record = store.get(ref)
    from pyctr.runtime.restart import reset_for_user_start

    reset_for_user_start(store, record.id)
    start_detached(config, store.get(record.id))
    from pyctr import events

    events.record_container(config.root, record, "restart")
    return record
