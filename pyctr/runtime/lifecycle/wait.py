"""Waiting: for a process (pid, start time) to be gone, for the monitor to record an exit, Docker's `wait`."""

from __future__ import annotations

import errno
import os
import time
from typing import TYPE_CHECKING

from pyctr.errors import NotFoundError
from pyctr.runtime import state as st
from pyctr.runtime.state import ContainerRecord, ContainerStore

if TYPE_CHECKING:
    from pyctr.config import Config


STATE_SETTLE_TIMEOUT = 10.0  # how long stop/kill/rm wait for the monitor to record an exit


POLL_SLICE_MS = 3_600_000


def wait_for_exit(pid: int, start_time: int, timeout: float) -> bool:
    """Block until process (pid, start_time) is gone, at most `timeout` s; True if it is gone."""
    if pid <= 0:
        return True
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    except OSError as e:
        if e.errno != errno.ENOSYS:
            raise
        return _poll_for_exit(pid, start_time, timeout)
    try:
        if st.proc_start_time(pid) != start_time:  # a different process now owns the pid
            return True
        import select

        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            # poll() takes an int of milliseconds: wait in slices of at most an hour (wait uses a year)
            if poller.poll(max(0, min(int(remaining * 1000), POLL_SLICE_MS))):
                return True
            if remaining <= 0:
                return not st.process_alive(pid, start_time)
    finally:
        os.close(pidfd)


def _poll_for_exit(pid: int, start_time: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while st.process_alive(pid, start_time):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def wait_recorded(store: ContainerStore, container_id: str, timeout: float = STATE_SETTLE_TIMEOUT) -> ContainerRecord:
    """After C died: wait for its monitor to record the exit (reconcile takes over if the monitor is gone)."""
    deadline = time.monotonic() + timeout
    while True:
        record = store.get(container_id)
        if not record.state.running or record.state.status == "restarting" or time.monotonic() > deadline:
            return record  # restarting: the exit is recorded, its restart policy answers it
        time.sleep(0.01)


def wait(config: Config, ref: str) -> int:
    """Docker's wait: block until the container stops, return its exit code."""
    store = ContainerStore(config.paths)
    record = store.get(ref)
    last_code = record.state.exit_code
    if record.state.status == "restarting":  # Docker's waiter then fires at the next exit
        from pyctr.runtime.restart import settle_restart

        record = settle_restart(store, record.id, timeout=3600 * 24 * 365)
    while record.state.running:  # Docker's default condition "not-running": a created container returns at once
        wait_for_exit(record.state.pid, record.state.pid_start_time, 3600 * 24 * 365)
        try:
            record = wait_recorded(store, record.id)
            if record.state.status == "restarting":  # an exit the restart policy answers: Docker's wait returns
                return record.state.exit_code
        except NotFoundError:
            code = store.read_exit_file(record.id)
            return code[0] if code else last_code
        last_code = record.state.exit_code
    return record.state.exit_code
