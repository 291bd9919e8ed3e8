"""Healthchecks, as Docker 20.10's daemon/health.go runs them.

Deciding is pure: which check a container has (`merge_healthcheck`: the image's HEALTHCHECK overridden field by
field by --health-*; `NONE` disables it), the probe's command line (`probe_argv`), what one result does to
State.Health (`apply_result`: the last 5 results kept, output capped at 4096 bytes, unhealthy after Retries
failures in a row, failures during the start period not counted while still "starting") and the words `ps`
shows (`status_suffix`).

Doing: one small stdlib-only ticker per running container that has a check (health_ticker.py, started by the
launch, ~2 MiB) runs the hidden `pyctr _health` every Interval; that command (`probe_once`, in a warm server's
worker) runs the probe through `pyctr exec`'s own path (runtime/exec.py run_exec) in a child whose output goes
to a pipe, terminates it at Timeout, and records the result in state.json. The ticker leaves when the
container's process does; a paused container is not probed (Docker stops its checker while paused).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyctr.config import Config

NS = 1_000_000_000
DEFAULT_INTERVAL_NS = 30 * NS
DEFAULT_TIMEOUT_NS = 30 * NS
DEFAULT_START_PERIOD_NS = 0
DEFAULT_RETRIES = 3
MAX_LOG_ENTRIES = 5
MAX_OUTPUT_LEN = 4096
MINIMUM_DURATION_NS = NS // 1000  # api/types/container MinimumDuration: 1 ms
KILL_GRACE_S = 1.0


@dataclass(frozen=True)
class HealthConfig:
    """Config.Healthcheck with Docker's defaults applied for running it."""

    test: tuple[str, ...]
    interval_ns: int = DEFAULT_INTERVAL_NS
    timeout_ns: int = DEFAULT_TIMEOUT_NS
    start_period_ns: int = DEFAULT_START_PERIOD_NS
    retries: int = DEFAULT_RETRIES

    @classmethod
    def from_docker(cls, check: dict | None) -> HealthConfig | None:
        """None when there is nothing to run: no check, `NONE`, or a test type Docker does not know."""
        if not check or not check.get("Test") or check["Test"][0] not in ("CMD", "CMD-SHELL"):
            return None
        return cls(tuple(check["Test"]), int(check.get("Interval") or 0) or DEFAULT_INTERVAL_NS,
                   int(check.get("Timeout") or 0) or DEFAULT_TIMEOUT_NS,
                   int(check.get("StartPeriod") or 0) or DEFAULT_START_PERIOD_NS,
                   int(check.get("Retries") or 0) if int(check.get("Retries") or 0) > 0 else DEFAULT_RETRIES)


def healthcheck_from_flags(cmd: str | None, interval_ns: int, timeout_ns: int, start_period_ns: int, retries: int,
                           disabled: bool) -> dict | None:
    """docker-cli's parse of --health-* and --no-healthcheck into Config.Healthcheck (None: none given)."""
    from pyctr.errors import UsageError

    given = bool(cmd) or interval_ns != 0 or timeout_ns != 0 or start_period_ns != 0 or retries != 0
    if disabled:
        if given:
            raise UsageError("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    if not given:
        return None
    for flag, value in (("interval", interval_ns), ("timeout", timeout_ns), ("retries", retries),
                        ("start-period", start_period_ns)):
        if value < 0:
            raise UsageError(f"--health-{flag} cannot be negative")
    check: dict = {"Test": ["CMD-SHELL", cmd] if cmd else None, "Interval": interval_ns, "Timeout": timeout_ns,
                   "StartPeriod": start_period_ns, "Retries": retries}
    validate(check)
    return check


def validate(check: dict) -> None:
    """dockerd's validateHealthCheck."""
    from pyctr.errors import PyctrError

    if check.get("Interval") and check["Interval"] < MINIMUM_DURATION_NS:
        raise PyctrError("Interval in Healthcheck cannot be less than 1ms")
    if check.get("Timeout") and check["Timeout"] < MINIMUM_DURATION_NS:
        raise PyctrError("Timeout in Healthcheck cannot be less than 1ms")
    if (check.get("Retries") or 0) < 0:
        raise PyctrError("Retries in Healthcheck cannot be negative")
    if check.get("StartPeriod") and check["StartPeriod"] < MINIMUM_DURATION_NS:
        raise PyctrError("StartPeriod in Healthcheck cannot be less than 1ms")


def merge_healthcheck(image_check: dict | None, user_check: dict | None) -> dict | None:
    """dockerd's merge (daemon/commit.go): the user's check, its unset fields taken from the image's."""
    if user_check is None:
        return dict(image_check) if image_check else None
    merged = {k: v for k, v in user_check.items() if v}
    if image_check:
        for key in ("Test", "Interval", "Timeout", "StartPeriod", "Retries"):
            if not merged.get(key) and image_check.get(key):
                merged[key] = image_check[key]
    return merged or None


def probe_argv(test: tuple[str, ...] | list[str], shell: list[str] | None = None) -> list[str]:
    """CMD runs its words; CMD-SHELL runs its string with the image's SHELL (default /bin/sh -c)."""
    if test[0] == "CMD-SHELL":
        return [*(shell or ["/bin/sh", "-c"]), *test[1:]]
    return list(test[1:])


def cap_output(data: bytes, truncated: bool) -> str:
    """Docker's limitedBuffer: the first 4096 bytes, "..." when more was written."""
    text = data[:MAX_OUTPUT_LEN].decode("utf-8", "replace")
    return text + "..." if truncated or len(data) > MAX_OUTPUT_LEN else text


def apply_result(health: dict, result: dict, config: HealthConfig, started_at: float, result_start: float) -> dict:
    """One probe result applied to State.Health (Docker's handleProbeResult), pure."""
    log = list(health.get("Log") or [])
    log = (log + [result])[-MAX_LOG_ENTRIES:]
    status = health.get("Status") or "starting"
    streak = int(health.get("FailingStreak") or 0)
    if result["ExitCode"] == 0:
        streak, status = 0, "healthy"
    else:
        in_start_period = status == "starting" and (result_start - started_at) * NS < config.start_period_ns
        if not in_start_period:
            streak += 1
            if streak >= config.retries:
                status = "unhealthy"
    return {"Status": status, "FailingStreak": streak, "Log": log}


def status_suffix(status: str) -> str:
    """Docker's Health.String() in ps: "health: starting", "healthy", "unhealthy"."""
    return "health: starting" if status == "starting" else status


# ------------------------------------------------------------------------------------------ doing

def configured(record_config: dict) -> HealthConfig | None:
    return HealthConfig.from_docker((record_config.get("Config") or {}).get("Healthcheck"))


def start_checker(config: Config, container_id: str, pid: int, pid_start_time: int) -> int:
    """Start the container's detached health ticker (health_ticker.py, stdlib-only); its pid."""
    import sys
    from pathlib import Path

    from pyctr.runtime.container import lighter_interpreter
    from pyctr.runtime.detach import spawn_detached

    check = configured(_store(config).get(container_id, reconcile_state=False).config)
    interval = (check.interval_ns if check else DEFAULT_INTERVAL_NS) / NS
    ticker = str(Path(__file__).with_name("health_ticker.py"))
    probe = probe_command(config, container_id, pid, pid_start_time)
    interpreter = lighter_interpreter() or sys.executable
    argv = [interpreter, "-I", "-S", ticker, str(pid), repr(interval), *probe]
    return spawn_detached(lambda: os.execv(interpreter, argv))


def probe_command(config: Config, container_id: str, pid: int, pid_start_time: int) -> list[str]:
    """How the ticker asks pyctr for one probe: the hidden `_health` command through the `pyctr` client (a warm
    server's worker runs it in a few ms; in-process when there is none)."""
    import sys
    from pathlib import Path

    argv = [sys.executable, "-m", "pyctr.client", "--root", str(config.root)]
    if config.config_file is not None and Path(config.config_file).exists():
        argv += ["--config", str(config.config_file)]
    return argv + ["_health", container_id, "--pid", str(pid), "--pid-start-time", str(pid_start_time)]


def _store(config: Config):
    from pyctr.runtime.state import ContainerStore

    return ContainerStore(config.paths)


def probe_once(config: Config, container_id: str, pid: int, pid_start_time: int) -> None:
    """One probe of a running container (not paused: Docker stops probing then), its result recorded."""
    import time

    from pyctr.errors import PyctrError
    from pyctr.output.timefmt import parse_rfc3339
    from pyctr.runtime.state import proc_start_time

    store = _store(config)
    try:
        record = store.get(container_id, reconcile_state=False)
    except PyctrError:
        return
    check = configured(record.config)
    state = record.state
    if check is None or state.pid != pid or state.status != "running" or proc_start_time(pid) != pid_start_time:
        return
    shell = (record.config.get("Config") or {}).get("Shell")
    started = time.time()
    result = run_probe(config, record, probe_argv(check.test, shell), check.timeout_ns / NS)
    changed = record_result(store, container_id, pid, result, check, parse_rfc3339(state.started_at), started)
    if changed is not None:  # dockerd logs a health_status event when the status changes
        from pyctr import events

        events.record_container(config.root, record, f"health_status: {changed}")


def record_result(store, container_id: str, pid: int, result: dict, check: HealthConfig, started_at: float,
                  probe_start: float) -> str | None:
    """Apply one result under the state lock, if the container is still the process it was probed in; the new
    status when it changed."""
    from dataclasses import replace

    changes = []

    def change(state):
        if state.pid != pid or not state.health:
            return None
        health = apply_result(state.health, result, check, started_at, probe_start)
        if health.get("Status") != state.health.get("Status"):
            changes.append(health.get("Status"))
        return replace(state, health=health)

    store.update_state(container_id, change)
    return changes[-1] if changes else None


def run_probe(config: Config, record, argv: list[str], timeout_s: float) -> dict:
    """Run `argv` in the container as `pyctr exec` would (the container's user and working directory, no tty),
    output captured; a probe past its timeout is terminated and reported as Docker reports it."""
    from pyctr.runtime.state import now_rfc3339

    start = now_rfc3339()
    out_r, out_w = os.pipe()
    status_r, status_w = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the forked child
        os.close(out_r)
        os.close(status_r)
        _probe_child(config, record, argv, out_w, status_w)
    os.close(out_w)
    os.close(status_w)
    output, truncated, timed_out = _collect(out_r, child, timeout_s)
    status_text = _read_all(status_r)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(child, 0)
    end = now_rfc3339()
    if timed_out:
        return {"Start": start, "End": end, "ExitCode": -1,
                "Output": f"Health check exceeded timeout ({go_duration(int(timeout_s * NS))})"}
    try:
        reported = json.loads(status_text)
    except ValueError:
        reported = {"error": "health check ended without a status"}
    if "error" in reported:
        return {"Start": start, "End": end, "ExitCode": -1, "Output": reported["error"]}
    return {"Start": start, "End": end, "ExitCode": int(reported["code"]), "Output": cap_output(output, truncated)}


def _probe_child(config: Config, record, argv: list[str], out_w: int, status_w: int) -> None:  # pragma: no cover
    """In the probe's child: stdout/stderr to the pipe, run the exec, report {"code"} or {"error"}."""
    from pyctr.errors import PyctrError
    from pyctr.runtime.exec import ExecOptions, run_exec

    code = 0
    try:
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out_w, 1)
        os.dup2(out_w, 2)
        docker_config = record.config.get("Config") or {}
        options = ExecOptions(args=argv, user=docker_config.get("User") or None,
                              workdir=docker_config.get("WorkingDir") or None)
        report = {"code": run_exec(config, record.id, options)}
    except PyctrError as e:
        report = {"error": e.message}
        code = 1
    except BaseException as e:  # noqa: BLE001 - reported as the probe's error
        report = {"error": f"{type(e).__name__}: {e}"}
        code = 1
    with contextlib.suppress(OSError):
        os.write(status_w, json.dumps(report).encode())
    os._exit(code)


def _collect(fd: int, child: int, timeout_s: float) -> tuple[bytes, bool, bool]:
    """Read the probe's output until EOF or the timeout; at the timeout, terminate the probe (exec forwards
    SIGTERM to the command), then kill it."""
    kept = bytearray()
    truncated = False
    deadline = time.monotonic() + timeout_s
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP)
    timed_out = False
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                _terminate(child)
                break
            if not poller.poll(int(remaining * 1000) + 1):
                continue
            data = os.read(fd, 65536)
            if not data:
                break
            room = MAX_OUTPUT_LEN + 1 - len(kept)
            kept += data[:max(room, 0)]
            truncated = truncated or len(data) > room
    finally:
        os.close(fd)
    return bytes(kept), truncated, timed_out


def _terminate(child: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(child, signal.SIGTERM)
    deadline = time.monotonic() + KILL_GRACE_S
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(child, os.WNOHANG)[0]:
                return
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.kill(child, signal.SIGKILL)


def _read_all(fd: int) -> str:
    chunks = []
    try:
        while True:
            data = os.read(fd, 65536)
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", "replace")


def go_duration(ns: int) -> str:
    """Go's Duration.String() for whole seconds and sub-second values ("30s", "1m30s", "500ms")."""
    if ns < NS:
        if ns % 1_000_000 == 0:
            return f"{ns // 1_000_000}ms"
        return f"{ns / 1_000_000:g}ms"
    seconds = ns / NS
    hours, rest = divmod(int(seconds), 3600)
    minutes, _ = divmod(rest, 60)
    secs = seconds - hours * 3600 - minutes * 60
    text = f"{secs:.9f}".rstrip("0").rstrip(".") + "s"
    if minutes or hours:
        text = f"{minutes}m" + text
    if hours:
        text = f"{hours}h" + text
    return text
