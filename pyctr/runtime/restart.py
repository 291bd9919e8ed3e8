"""Restart policies, as Docker 20.10's restartmanager and daemon/monitor.go decide them.

Deciding is pure (`parse_restart_policy`, `decide`, `start_at_boot`): whether an exited container starts again
and after which back-off (100 ms, doubled at each restart, at most 1 min, back to 100 ms once a run lasted
10 s). Docker keeps the back-off and the cancel flag in its daemon's memory; pyctr has no daemon, so they live
in the container's state.json (`RestartTimeoutMs`, `RestartCanceled`, `HasBeenManuallyStopped`).

Doing is small: `finish` (runtime.container) records a "restarting" state instead of "exited" when `decide`
says so, then `schedule` forks a detached sleeper that takes over as the container's monitor pid (so the
container stays "running" for rm/stop/kill, as Docker's Restarting does), waits the back-off while watching
for a cancel (stop, kill, rm -f), and starts the container again through the ordinary detached start.
`boot` starts, after a reboot, what Docker's daemon restarts when it comes up.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyctr.errors import NotFoundError, PyctrError, UsageError
from pyctr.runtime import state as st

if TYPE_CHECKING:
    from pyctr.config import Config
    from pyctr.runtime.state import ContainerRecord, ContainerState, ContainerStore

DEFAULT_TIMEOUT_MS = 100  # restartmanager's defaultTimeout
MAX_TIMEOUT_MS = 60_000  # maxRestartTimeout
BACKOFF_MULTIPLIER = 2
RESET_AFTER_S = 10.0  # a run this long resets the back-off
POLL_S = 0.05  # how often the sleeper looks for a cancel
SETTLE_S = 10.0  # how long stop/kill/rm wait for a sleeper to give up


@dataclass(frozen=True)
class RestartPolicy:
    """HostConfig.RestartPolicy: Name is "no", "always", "unless-stopped" or "on-failure"."""

    name: str = "no"
    maximum_retry_count: int = 0

    @property
    def is_none(self) -> bool:
        return self.name in ("", "no")

    def to_dict(self) -> dict:
        return {"Name": self.name or "no", "MaximumRetryCount": self.maximum_retry_count}

    @classmethod
    def from_dict(cls, data: dict | None) -> RestartPolicy:
        data = data or {}
        return cls(str(data.get("Name") or "no"), int(data.get("MaximumRetryCount") or 0))


def parse_restart_policy(text: str | None) -> RestartPolicy:
    """`--restart` as docker-cli parses it (opts.ParseRestartPolicy) and dockerd validates it
    (validateRestartPolicy): the CLI's words are UsageErrors, the daemon's are its own errors."""
    if not text:
        return RestartPolicy()
    parts = text.split(":")
    if len(parts) > 2:
        raise UsageError("invalid restart policy format")
    count = 0
    if len(parts) == 2:
        try:
            count = int(parts[1], 10)
        except ValueError:
            raise UsageError("maximum retry count must be an integer") from None
    name = parts[0]
    if name in ("always", "unless-stopped", "no"):
        if count != 0:
            raise PyctrError(f"maximum retry count cannot be used with restart policy '{name}'")
    elif name == "on-failure":
        if count < 0:
            raise PyctrError("maximum retry count cannot be negative")
    elif name != "":
        raise PyctrError(f"invalid restart policy '{name}'")
    return RestartPolicy(name or "no", count)


def check_auto_remove(policy: RestartPolicy, auto_remove: bool) -> None:
    """dockerd refuses `--rm` with a restart policy (daemon/container.go verifyContainerSettings)."""
    if auto_remove and not policy.is_none:
        raise PyctrError("can't create 'AutoRemove' container with restart policy")


@dataclass(frozen=True)
class RestartDecision:
    """What restartmanager.ShouldRestart answers: restart or not, after `delay_ms`; `timeout_ms` is the back-off
    to remember (it doubles even when the answer is no, as Docker's does)."""

    restart: bool
    delay_ms: int
    timeout_ms: int


def next_timeout_ms(timeout_ms: int, ran_for_s: float) -> int:
    """The back-off: reset after a run of 10 s or more, else 100 ms, then doubled up to 1 min."""
    if ran_for_s >= RESET_AFTER_S:
        timeout_ms = 0
    if timeout_ms <= 0:
        return DEFAULT_TIMEOUT_MS
    if timeout_ms < MAX_TIMEOUT_MS:
        timeout_ms *= BACKOFF_MULTIPLIER
    return min(timeout_ms, MAX_TIMEOUT_MS)


def decide(policy: RestartPolicy, *, restart_count: int, timeout_ms: int, exit_code: int,
           manually_stopped: bool, canceled: bool, ran_for_s: float) -> RestartDecision:
    """Docker's ShouldRestart for a container that just exited (pure).

    `canceled` is Docker's ExitOnNext (a stop, a kill with the stop signal or SIGKILL, rm -f): never again.
    `manually_stopped` (any kill or stop by the user) only stops `unless-stopped`."""
    if policy.is_none or canceled:
        return RestartDecision(False, 0, timeout_ms)
    timeout = next_timeout_ms(timeout_ms, ran_for_s)
    if policy.name == "always":
        restart = True
    elif policy.name == "unless-stopped":
        restart = not manually_stopped
    elif policy.name == "on-failure":
        limit = policy.maximum_retry_count
        restart = exit_code != 0 and (limit == 0 or restart_count < limit)
    else:
        restart = False
    return RestartDecision(restart, timeout if restart else 0, timeout)


def start_at_boot(policy: RestartPolicy, state: ContainerState) -> bool:
    """Docker's container.ShouldRestart at daemon start-up: `always` (even one the user stopped, as Docker's
    documentation says), `unless-stopped` unless the user stopped it, `on-failure` after a failure within its
    retry count. A running container is left alone."""
    if state.running:
        return False
    return decide(policy, restart_count=state.restart_count, timeout_ms=0, exit_code=state.exit_code,
                  manually_stopped=state.manually_stopped, canceled=False, ran_for_s=0.0).restart


def cancels_restart(signum: int, stop_signal: int | None) -> bool:
    """Docker's killWithSignal: SIGKILL, or the container's stop signal (any signal when none is configured),
    cancels a pending or future policy restart."""
    import signal

    return signum == signal.SIGKILL or stop_signal is None or signum == stop_signal


def policy_of(record: ContainerRecord) -> RestartPolicy:
    return RestartPolicy.from_dict((record.config.get("HostConfig") or {}).get("RestartPolicy"))


def exit_transition(state: ContainerState, policy: RestartPolicy, exit_code: int, *, oom_killed: bool,
                    at: str | None, now: float) -> tuple[ContainerState, RestartDecision]:
    """The state a just-exited container goes to (restarting or exited) and the decision behind it (pure)."""
    ran_for = max(0.0, now - st.parse_rfc3339(state.started_at)) if state.started_at != st.ZERO_TIME else 0.0
    decision = decide(policy, restart_count=state.restart_count, timeout_ms=state.restart_timeout_ms,
                      exit_code=exit_code, manually_stopped=state.manually_stopped,
                      canceled=state.restart_canceled, ran_for_s=ran_for)
    if decision.restart:
        return st.restarting(state, exit_code, restart_count=state.restart_count + 1,
                             timeout_ms=decision.timeout_ms, oom_killed=oom_killed, at=at), decision
    from dataclasses import replace

    exited = st.exited(state, exit_code, oom_killed=oom_killed, at=at)
    return replace(exited, restart_timeout_ms=decision.timeout_ms), decision


def user_start_state(state: ContainerState) -> ContainerState:
    """A start the user asks for (start, restart) begins a new restart manager: count, back-off and flags reset
    (Docker's containerStart with resetRestartManager)."""
    from dataclasses import replace

    return replace(state, restart_count=0, restart_timeout_ms=0, manually_stopped=False, restart_canceled=False)


def user_signal_state(state: ContainerState, cancel: bool) -> ContainerState:
    from dataclasses import replace

    return replace(state, manually_stopped=True, restart_canceled=state.restart_canceled or cancel)


# ------------------------------------------------------------------------------------------ doing

def reset_for_user_start(store: ContainerStore, container_id: str) -> None:
    with contextlib.suppress(NotFoundError):
        store.update_state(container_id, lambda s: None if s.running else user_start_state(s))


def note_user_signal(store: ContainerStore, record: ContainerRecord, signum: int,
                     settle: bool = True) -> ContainerRecord:
    """stop/kill/rm -f by the user: remember it (HasBeenManuallyStopped, and the cancel when it applies), and
    with `settle`, if the container is waiting for a policy restart, wait until its sleeper gave up (or started
    it meanwhile). Returns the record as it now is."""
    stop_signal = _stop_signal(record)
    cancel = cancels_restart(signum, stop_signal)
    with contextlib.suppress(NotFoundError):
        store.update_state(record.id, lambda s: user_signal_state(s, cancel) if s.running else None)
    if not settle or record.state.status != "restarting":
        return record
    return settle_restart(store, record.id)


def settle_restart(store: ContainerStore, container_id: str, timeout: float = SETTLE_S) -> ContainerRecord:
    """Wait until the container is no longer "restarting" (its sleeper gave up or started it)."""
    deadline = time.monotonic() + timeout
    while True:
        record = store.get(container_id)
        if record.state.status != "restarting" or time.monotonic() > deadline:
            return record
        time.sleep(POLL_S / 2)


def _stop_signal(record: ContainerRecord) -> int | None:
    name = (record.config.get("Config") or {}).get("StopSignal")
    if not name:
        return None
    import signal

    text = str(name).upper()
    with contextlib.suppress(KeyError, ValueError):
        return int(text) if text.isdigit() else int(signal.Signals[text if text.startswith("SIG") else "SIG" + text])
    return None


def schedule(config: Config, container_id: str, delay_ms: int) -> None:
    """Fork the detached sleeper that will start the container again in `delay_ms`; it becomes the container's
    monitor pid (under the state lock) before this returns, so the container is never seen without one."""
    from pyctr.runtime.detach import spawn_detached

    pid = spawn_detached(lambda: _sleep_then_start(config, container_id, delay_ms))
    start_time = st.proc_start_time(pid) or 0
    store = _store(config)
    store.update_state(container_id, lambda s: _with_monitor(s, pid, start_time) if s.status == "restarting" else None)


def _with_monitor(state: ContainerState, pid: int, start_time: int) -> ContainerState:
    from dataclasses import replace

    return replace(state, monitor_pid=pid, monitor_start_time=start_time)


def _store(config: Config) -> ContainerStore:
    from pyctr.runtime.state import ContainerStore

    return ContainerStore(config.paths)


def _sleep_then_start(config: Config, container_id: str, delay_ms: int) -> None:
    """The sleeper: wait the back-off unless canceled, then start. Runs detached, in its own session."""
    store = _store(config)
    me = os.getpid()
    deadline = time.monotonic() + delay_ms / 1000
    while True:
        try:
            state = store.read_state(container_id)
        except (NotFoundError, PyctrError):
            return
        if state.status != "restarting":
            return
        if state.restart_canceled:
            store.update_state(container_id, lambda s: _give_up(s) if s.status == "restarting" else None)
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0 and state.monitor_pid == me:
            break
        if remaining < -SETTLE_S:
            return  # never made the monitor (schedule failed): not ours to start
        time.sleep(min(max(remaining, 0.0), POLL_S) or POLL_S)
    from pyctr.runtime.container import start_detached

    try:
        start_detached(config, store.get(container_id, reconcile_state=False))
    except PyctrError:
        return  # the failed start is recorded (State.Error, exited) by the start itself


def _give_up(state: ContainerState) -> ContainerState:
    """A canceled restart: the container is stopped with the exit it last had (Docker's SetStopped)."""
    from dataclasses import replace

    exited = st.exited(state, state.exit_code, oom_killed=state.oom_killed, at=state.finished_at)
    return replace(exited, restart_timeout_ms=state.restart_timeout_ms)


def boot(config: Config) -> list[str]:
    """Start what Docker's daemon restarts when it comes up (after a reboot): the ids started, in creation
    order. A container that fails to start is skipped (its error is recorded in its state)."""
    from pyctr.runtime.container import start_detached

    store = _store(config)
    started = []
    for record in reversed(store.list()):
        if not start_at_boot(policy_of(record), record.state):
            continue
        try:
            start_detached(config, record)
        except PyctrError:
            continue
        started.append(record.id)
    return started
