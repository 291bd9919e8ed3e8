"""Detached containers: `run -d` returns at once, the container outlives the CLI, stop/kill timing, ps reconciliation,
parallel starts, and the monitor's memory."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.conftest import PYCTR_BIN
from tests.integration.helpers import lifecycle_runner, proc_gone, removed_after


@pytest.fixture(scope="module")
def lc(pyctr_config, tmp_path_factory):
    yield from lifecycle_runner(pyctr_config, tmp_path_factory, "detached")


@pytest.fixture
def cleanup(lc):
    yield from removed_after(lc)


def wait_for_log(lc, name: str, text: str = "ready", seconds: float = 20) -> None:
    """Wait until the container printed `text`: e.g. its signal trap is in place (PID 1 ignores signals it has
    no handler for, so a signal sent before the trap would be lost, however loaded the machine)."""
    deadline = time.monotonic() + seconds
    while text not in lc("logs", name).stdout:
        assert time.monotonic() < deadline, f"{name} never printed {text!r}"
        time.sleep(0.05)


def state(lc, name: str, template: str = "{{.State.Status}}") -> str:
    return lc("inspect", "-f", template, name).stdout.strip()


def test_run_d_prints_id_and_outlives_the_cli(lc, cleanup):
    cleanup.append("d1")
    started = time.monotonic()
    r = lc("run", "-d", "--name", "d1", "--network", "none", "busybox", "sleep", "60", check=True)
    assert time.monotonic() - started < 5
    assert re.fullmatch(r"[0-9a-f]{64}\n", r.stdout)
    time.sleep(0.5)
    row = next(json.loads(line) for line in lc("ps", "--format", "json").stdout.splitlines()
               if json.loads(line)["Names"] == "d1")
    assert row["ID"] == r.stdout[:12] and row["State"] == "running" and row["Status"].startswith("Up ")
    assert row["Command"] == '"sleep 60"' and row["Image"] == "busybox"
    pid = int(state(lc, "d1", "{{.State.Pid}}"))
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        assert f.read() == b"sleep\x0060\x00"


def test_ps_table_header_and_row(lc, cleanup):
    cleanup.append("d2")
    lc("run", "-d", "--name", "d2", "--network", "none", "busybox", "sh", "-c", "sleep 1000; echo never", check=True)
    lines = lc("ps").stdout.splitlines()
    assert re.match(r"CONTAINER ID   IMAGE +COMMAND +CREATED +STATUS +PORTS +NAMES$", lines[0])
    row = next(line for line in lines if line.endswith(" d2"))
    assert '"sh -c \'sleep 1000; …"' in row and "Up " in row
    assert lc("ps", "-q").stdout.split().count(row[:12]) == 1


def test_stop_escalates_to_sigkill_after_timeout(lc, cleanup):
    cleanup.append("stubborn")
    # PID 1 without a TERM handler ignores SIGTERM, as in Docker
    lc("run", "-d", "--name", "stubborn", "--network", "none", "busybox", "sleep", "60", check=True)
    started = time.monotonic()
    r = lc("stop", "-t", "2", "stubborn")
    elapsed = time.monotonic() - started
    assert r.stdout == "stubborn\n" and 1.9 < elapsed < 6, elapsed
    assert state(lc, "stubborn", "{{.State.Status}} {{.State.ExitCode}}") == "exited 137"


def test_stop_with_trap_exits_quickly_with_its_code(lc, cleanup):
    cleanup.append("polite")
    lc("run", "-d", "--name", "polite", "--network", "none", "busybox", "sh", "-c",
       "trap 'exit 3' TERM; echo ready; while true; do sleep 0.1; done", check=True)
    wait_for_log(lc, "polite")
    started = time.monotonic()
    lc("stop", "polite", check=True)
    assert time.monotonic() - started < 3
    assert state(lc, "polite", "{{.State.Status}} {{.State.ExitCode}}") == "exited 3"
    assert state(lc, "polite", "{{.State.FinishedAt}}") != "0001-01-01T00:00:00Z"


def test_stop_signal_option(lc, cleanup):
    cleanup.append("usr")
    lc("run", "-d", "--name", "usr", "--stop-signal", "USR1", "--network", "none", "busybox", "sh", "-c",
       "trap 'exit 9' USR1; echo ready; while true; do sleep 0.1; done", check=True)
    wait_for_log(lc, "usr")
    lc("stop", "usr", check=True)
    assert state(lc, "usr", "{{.State.ExitCode}}") == "9"


def test_killed_from_outside_shows_exited(lc, cleanup):
    cleanup.append("victim")
    lc("run", "-d", "--name", "victim", "--network", "none", "busybox", "sleep", "60", check=True)
    pid = int(state(lc, "victim", "{{.State.Pid}}"))
    os.kill(pid, signal.SIGKILL)
    assert proc_gone(pid)
    deadline = time.monotonic() + 10
    while "Exited (137)" not in lc("ps", "-a").stdout and time.monotonic() < deadline:
        time.sleep(0.1)
    row = next(line for line in lc("ps", "-a").stdout.splitlines() if line.endswith(" victim"))
    assert "Exited (137)" in row
    assert "victim" not in lc("ps").stdout


def test_monitor_killed_too_shows_exited(lc, cleanup):
    """Monitor and container both gone behind pyctr's back (as after a crash): reconcile, Docker's 255."""
    cleanup.append("orphan")
    lc("run", "-d", "--name", "orphan", "--network", "none", "busybox", "sleep", "60", check=True)
    config_dir = next(p for p in (lc.root / "containers").iterdir() if p.name.startswith(
        lc("inspect", "-f", "{{.Id}}", "orphan").stdout.strip()))
    with open(config_dir / "state.json") as f:
        stored = json.load(f)
    os.kill(stored["MonitorPid"], signal.SIGKILL)
    os.kill(stored["Pid"], signal.SIGKILL)
    assert proc_gone(stored["Pid"]) and proc_gone(stored["MonitorPid"])
    assert state(lc, "orphan", "{{.State.Status}} {{.State.ExitCode}}") == "exited 255"


def test_parallel_run_d_gives_unique_names_and_ids(lc):
    def start(_):
        return lc("run", "-d", "--network", "none", "busybox", "sleep", "60", timeout=120)

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(start, range(20)))
    ids = [r.stdout.strip() for r in results]
    try:
        assert all(r.returncode == 0 for r in results), [r.stderr for r in results if r.returncode]
        assert len(set(ids)) == 20
        rows = [json.loads(line) for line in lc("ps", "--format", "json", "--no-trunc").stdout.splitlines()]
        names = {row["Names"] for row in rows if row["ID"] in ids}
        assert len(names) == 20
        assert all(re.fullmatch(r"[a-z]+_[a-z]+\d*", n) for n in names)
    finally:
        lc("rm", "-f", *[i for i in ids if i], timeout=120)


def private_kib(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        fields = dict(line.split(":", 1) for line in f.read().splitlines()[1:])
    return sum(int(fields[k].split()[0]) for k in ("Private_Dirty", "Private_Clean"))


def test_monitor_is_small(lc, cleanup):
    """The per-container monitor stays near containerd-shim's ~2.4 MiB private memory.

    Measured on the second of two monitors: the interpreter's file pages are shared between monitors, as
    the shim binary's are between shims (a lone process counts all of its file pages as private)."""
    monitors = []
    for name in ("mem", "mem2"):
        cleanup.append(name)
        lc("run", "-d", "--name", name, "--network", "none", "busybox", "sh", "-c", "while true; do echo x; "
           "sleep 0.2; done", check=True)
        cid = lc("inspect", "-f", "{{.Id}}", name).stdout.strip()
        with open(lc.root / "containers" / cid / "state.json") as f:
            monitors.append(json.load(f)["MonitorPid"])
    time.sleep(1)
    monitor = monitors[-1]
    with open(f"/proc/{monitor}/cmdline", "rb") as f:
        argv = f.read().split(b"\0")
    assert b"-I" in argv and b"-S" in argv and any(b"monitor" in a for a in argv)
    kib = private_kib(monitor)
    print(f"monitor private memory: {kib} KiB")
    assert kib < 3 * 1024, kib


def test_cli_does_not_hold_callers_pipes(lc, cleanup):
    """`run -d` under a caller that reads its output to EOF must not hang: the monitor keeps none of its fds."""
    cleanup.append("pipes")
    proc = subprocess.run([str(PYCTR_BIN), "run", "-d", "--name", "pipes", "--network", "none", "busybox", "sleep",
                           "60"], env=lc.env, capture_output=True, timeout=20, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0


def test_stats_no_stream(lc, cleanup):
    cleanup.append("st1")
    cid = lc("run", "-d", "--name", "st1", "--network", "none", "-m", "64m", "busybox", "sleep", "60",
             check=True).stdout.strip()
    lines = lc("stats", "--no-stream", "st1", check=True).stdout.splitlines()
    assert lines[0].split() == ["CONTAINER", "ID", "NAME", "CPU", "%", "MEM", "USAGE", "/", "LIMIT", "MEM", "%",
                                "NET", "I/O", "BLOCK", "I/O", "PIDS"]
    assert lines[1].startswith(cid[:12]) and " st1 " in lines[1] and "/ 64MiB" in lines[1]
    assert lines[1].split()[-1] == "1"
    row = json.loads(lc("stats", "--no-stream", "--format", "json", "st1", check=True).stdout)
    assert row["Name"] == "st1" and row["PIDs"] == "1" and row["MemUsage"].endswith("/ 64MiB")


def test_published_port_shows_in_ps_port_and_inspect(lc, cleanup):
    cleanup.append("web")
    lc("run", "-d", "--name", "web", "-p", "127.0.0.1:18765:80", "busybox", "httpd", "-f", "-p", "80", check=True)
    assert lc("port", "web").stdout == "80/tcp -> 127.0.0.1:18765\n"
    assert lc("port", "web", "80").stdout == "127.0.0.1:18765\n"
    row = next(line for line in lc("ps").stdout.splitlines() if line.endswith(" web"))
    assert "127.0.0.1:18765->80/tcp" in row
    ports = json.loads(lc("inspect", "-f", "{{json .NetworkSettings.Ports}}", "web").stdout)
    assert ports == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18765"}]}
    assert re.fullmatch(r"10\.78\.0\.\d+", lc("inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web").stdout.strip())
