"""`kill`: a signal to the container's process, through a pidfd checked to be that very process."""

from __future__ import annotations

import contextlib
import os
import signal
from typing import TYPE_CHECKING

from pyctr.errors import ConflictError, UsageError
from pyctr.runtime.state import ContainerRecord, ContainerStore

if TYPE_CHECKING:
    from pyctr.config import Config


def parse_signal(value: str | int) -> signal.Signals:
    """KILL, SIGKILL, kill, 9 -> SIGKILL (Docker's signal.ParseSignal)."""
    text = str(value).strip().upper()
    try:
        return signal.Signals(int(text)) if text.isdigit() else signal.Signals[
            text if text.startswith("SIG") else "SIG" + text]
    except (KeyError, ValueError):
        raise UsageError(f"Invalid signal: {value}") from None


def kill(config: Config, ref: str, sig: str | int = "KILL") -> ContainerRecord:
    signum = parse_signal(sig)
    store = ContainerStore(config.paths)
    record = store.get(ref)
    if not record.state.running:
        raise ConflictError(f"Cannot kill container: {ref}: Container {record.id} is not running")
    from pyctr.runtime import restart as policy

    policy.note_user_signal(store, record, signum, settle=False)
    if record.state.status == "restarting":  # Docker: telling the restart to give up is enough
        return record
    signal_container(record, signum)
    record_kill(config, record, signum)
    thaw_if_paused(config, record)
    return record


def record_kill(config: Config, record: ContainerRecord, signum: int) -> None:
    """dockerd's killWithSignal event: `kill` with the signal's number."""
    from pyctr import events

    events.record_container(config.root, record, "kill", signal=int(signum))


def thaw_if_paused(config: Config, record: ContainerRecord) -> None:
    """Docker's kill/stop of a paused container: the signal is sent, then the container is resumed to take it."""
    if record.state.status == "paused":
        from pyctr.runtime.pause import thaw_after_signal

        thaw_after_signal(config, record)


def signal_container(record: ContainerRecord, signum: int) -> None:
    """Signal C through a pidfd opened and checked first: a reused pid can never get the signal."""
    from pyctr.runtime.process.liveness import open_pidfd

    if record.state.pid <= 0:  # restarting: no process
        return
    pidfd = open_pidfd(record.state.pid, record.state.pid_start_time)
    if pidfd is None:
        return
    try:
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(pidfd, signum)
    finally:
        os.close(pidfd)
