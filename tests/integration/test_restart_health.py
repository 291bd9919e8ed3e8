"""Restart policies and healthchecks, for real: a crashing container restarted with Docker's back-off and its
RestartCount rising, on-failure:N giving up after N, stop/kill/rm -f ending the restarts, `system boot` after a
simulated crash of everything, and healthchecks turning a container healthy, unhealthy or timed out."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.integration.helpers import lifecycle_runner, proc_gone, removed_after


@pytest.fixture(scope="module")
def lc(pyctr_config, tmp_path_factory):
    yield from lifecycle_runner(pyctr_config, tmp_path_factory, "restart-health")


@pytest.fixture
def cleanup(lc):
    yield from removed_after(lc)


def inspect(lc, name: str) -> dict:
    return json.loads(lc("inspect", name, check=True).stdout)[0]


def wait_until(predicate, seconds: float = 20, what: str = "condition"):
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def log_times(lc, name: str) -> list[float]:
    """The json-file log's time of each line the container printed (one line per run here)."""
    from pyctr.output.timefmt import parse_rfc3339

    log = inspect(lc, name)["LogPath"]
    with open(log) as f:
        return [parse_rfc3339(json.loads(line)["time"]) for line in f]


def ps_status(lc, name: str) -> str:
    for line in lc("ps", "-a", "--format", "{{.Names}}\t{{.Status}}").stdout.splitlines():
        row_name, _, status = line.partition("\t")
        if row_name == name:
            return status
    return ""


# ---------------------------------------------------------------------------------------------- restart

def test_on_failure_n_restarts_with_backoff_then_gives_up(lc, cleanup):
    cleanup.append("rs1")
    lc("run", "-d", "--name", "rs1", "--network", "none", "--restart", "on-failure:3", "busybox",
       "sh", "-c", "echo run; exit 3", check=True)
    wait_until(lambda: inspect(lc, "rs1")["State"]["Status"] == "exited"
               and inspect(lc, "rs1")["RestartCount"] == 3, what="three restarts, then exited")
    time.sleep(1.0)  # gave up for good: no fourth run
    doc = inspect(lc, "rs1")
    assert doc["RestartCount"] == 3 and doc["State"]["ExitCode"] == 3 and doc["State"]["Status"] == "exited"
    assert doc["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    times = log_times(lc, "rs1")
    assert len(times) == 4, times  # the first run and three restarts
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    # Docker's back-off: 100 ms, 200 ms, 400 ms between a crash and the next start (plus the start itself)
    # (lower bounds only: a cold first cleanup, with no warm server yet, can make any gap longer)
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2 and gaps[2] >= 0.4, gaps


def test_always_restarts_a_clean_exit_and_stop_ends_it(lc, cleanup):
    cleanup.append("rs2")
    lc("run", "-d", "--name", "rs2", "--network", "none", "--restart", "always", "busybox",
       "sh", "-c", "echo run; sleep 0.3", check=True)
    wait_until(lambda: inspect(lc, "rs2")["RestartCount"] >= 2, what="two restarts of a clean exit")
    lc("stop", "-t", "1", "rs2", check=True)
    doc = inspect(lc, "rs2")
    assert doc["State"]["Status"] == "exited", doc["State"]
    count = doc["RestartCount"]
    time.sleep(1.5)
    doc = inspect(lc, "rs2")
    assert doc["State"]["Status"] == "exited" and doc["RestartCount"] == count  # a stop is not a failure


def test_unless_stopped_is_not_restarted_after_kill(lc, cleanup):
    cleanup.append("rs3")
    lc("run", "-d", "--name", "rs3", "--network", "none", "--restart", "unless-stopped", "busybox",
       "sleep", "60", check=True)
    lc("kill", "rs3", check=True)
    wait_until(lambda: inspect(lc, "rs3")["State"]["Status"] == "exited", what="killed")
    time.sleep(1.0)
    doc = inspect(lc, "rs3")
    assert doc["State"]["Status"] == "exited" and doc["RestartCount"] == 0 and doc["State"]["ExitCode"] == 137


def test_restarting_shows_in_ps_and_rm_f_ends_it(lc, cleanup):
    cleanup.append("rs4")
    lc("run", "-d", "--name", "rs4", "--network", "none", "--restart", "always", "busybox",
       "sh", "-c", "exit 2", check=True)
    # after a few crashes the back-off is long enough to see the container waiting
    status = wait_until(lambda: (s := ps_status(lc, "rs4")).startswith("Restarting (2)") and s, seconds=30,
                        what="Restarting in ps")
    assert status.endswith(" ago")
    doc = inspect(lc, "rs4")
    assert doc["State"]["Restarting"] and doc["State"]["Running"] and doc["State"]["Pid"] == 0
    r = lc("rm", "rs4")
    assert r.returncode == 1 and "You cannot remove a running container" in r.stderr
    sleeper = json.loads((lc.root / "containers" / doc["Id"] / "state.json").read_text())["MonitorPid"]
    lc("rm", "-f", "rs4", check=True)
    assert proc_gone(sleeper)  # the back-off's sleeper gave up
    assert "rs4" not in lc("ps", "-a", "--format", "{{.Names}}").stdout.split()
    time.sleep(0.5)
    assert lc("ps", "-a", "-q").stdout.strip() == ""  # not started again by a sleeper left behind


def test_stop_while_restarting_cancels(lc, cleanup):
    cleanup.append("rs5")
    lc("run", "-d", "--name", "rs5", "--network", "none", "--restart", "always", "busybox",
       "sh", "-c", "exit 4", check=True)
    wait_until(lambda: ps_status(lc, "rs5").startswith("Restarting (4)") and inspect(lc, "rs5")["RestartCount"] >= 4,
               seconds=30, what="restarting with a long back-off")
    lc("stop", "rs5", check=True)
    doc = inspect(lc, "rs5")
    assert doc["State"]["Status"] == "exited" and doc["State"]["ExitCode"] == 4
    count = doc["RestartCount"]
    time.sleep(2)
    assert inspect(lc, "rs5")["RestartCount"] == count and inspect(lc, "rs5")["State"]["Status"] == "exited"
    # a user's start begins again: RestartCount back to 0 (Docker's reset of the restart manager)
    lc("start", "rs5", check=True)
    assert inspect(lc, "rs5")["RestartCount"] <= 1


@pytest.mark.parametrize("flags, message", [
    (["--restart", "bogus"], "Error response from daemon: invalid restart policy 'bogus'"),
    (["--restart", "always:3"], "Error response from daemon: maximum retry count cannot be used with restart "
                                "policy 'always'"),
    (["--restart", "on-failure:x"], "maximum retry count must be an integer"),
    (["--restart", "on-failure:1:2"], "invalid restart policy format"),
    (["--restart", "on-failure:-1"], "Error response from daemon: maximum retry count cannot be negative"),
    (["--rm", "--restart", "always"], "Error response from daemon: can't create 'AutoRemove' container with "
                                      "restart policy"),
])
def test_bad_restart_policies_are_refused_as_docker(lc, flags, message):
    r = lc("run", *flags, "busybox", "true")
    assert r.returncode == 125
    assert r.stderr.splitlines()[0] == f"pyctr: {message}.", r.stderr
    assert lc("ps", "-a", "-q").stdout.strip() == ""


def test_system_boot_starts_what_docker_restarts(lc, cleanup):
    cleanup.extend(["bt1", "bt2", "bt3", "bt4"])
    for name, policy in (("bt1", "always"), ("bt2", "unless-stopped"), ("bt3", "unless-stopped"), ("bt4", "no")):
        lc("run", "-d", "--name", name, "--network", "none", "--restart", policy, "busybox", "sleep", "600",
           check=True)
    lc("stop", "-t", "0", "bt1", "bt3", check=True)  # user-stopped: always comes back at boot, unless-stopped not
    # bt2 and bt4 die with their monitor, as at a power cut: no exit recorded, no restart decided
    for name in ("bt2", "bt4"):
        doc = inspect(lc, name)
        monitor = json.loads((lc.root / "containers" / doc["Id"] / "state.json").read_text())["MonitorPid"]
        os.kill(monitor, signal.SIGKILL)
        assert proc_gone(monitor)
        os.kill(doc["State"]["Pid"], signal.SIGKILL)
        assert proc_gone(doc["State"]["Pid"])
        wait_until(lambda n=name: inspect(lc, n)["State"]["Status"] == "exited", what=f"{name} seen exited")
    started = lc("system", "boot", check=True).stdout.split()
    ids = {inspect(lc, n)["Id"]: n for n in ("bt1", "bt2", "bt3", "bt4")}
    assert sorted(ids[i] for i in started) == ["bt1", "bt2"]
    assert inspect(lc, "bt1")["State"]["Status"] == "running"
    assert inspect(lc, "bt2")["State"]["Status"] == "running"
    assert inspect(lc, "bt3")["State"]["Status"] == "exited"
    assert inspect(lc, "bt4")["State"]["Status"] == "exited"
    assert lc("system", "boot", check=True).stdout == ""  # idempotent: the running ones are left alone


# ---------------------------------------------------------------------------------------------- health

def health(lc, name: str) -> dict:
    return inspect(lc, name)["State"].get("Health") or {}


def test_healthy_container(lc, cleanup):
    cleanup.append("hc1")
    lc("run", "-d", "--name", "hc1", "--network", "none", "--health-cmd", "echo ok; test -d /proc/1",
       "--health-interval", "200ms", "busybox", "sleep", "60", check=True)
    assert "(health: starting)" in ps_status(lc, "hc1")
    h = wait_until(lambda: (x := health(lc, "hc1")).get("Status") == "healthy" and x, what="healthy")
    assert h["FailingStreak"] == 0
    entry = h["Log"][-1]
    assert entry["ExitCode"] == 0 and entry["Output"] == "ok\n" and entry["Start"] <= entry["End"]
    assert ps_status(lc, "hc1").endswith("(healthy)")
    check = inspect(lc, "hc1")["Config"]["Healthcheck"]
    assert check == {"Test": ["CMD-SHELL", "echo ok; test -d /proc/1"], "Interval": 200_000_000}
    wait_until(lambda: len(health(lc, "hc1")["Log"]) == 5, what="five log entries")
    time.sleep(0.5)
    assert len(health(lc, "hc1")["Log"]) == 5  # Docker keeps the last five
    tickers = tickers_of(inspect(lc, "hc1")["State"]["Pid"])
    assert len(tickers) == 1
    lc("rm", "-f", "hc1", check=True)
    assert all(proc_gone(t) for t in tickers)  # the ticker leaves with the container


def tickers_of(container_pid: int) -> list[int]:
    """The health ticker processes watching `container_pid` (its argv: ... health_ticker.py PID ...)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(a.endswith(b"health_ticker.py") for a in argv) and str(container_pid).encode() in argv:
            found.append(int(entry))
    return found


def test_unhealthy_container(lc, cleanup):
    cleanup.append("hc2")
    lc("run", "-d", "--name", "hc2", "--network", "none", "--health-cmd", "echo bad >&2; exit 1",
       "--health-interval", "200ms", "--health-retries", "2", "busybox", "sleep", "60", check=True)
    h = wait_until(lambda: (x := health(lc, "hc2")).get("Status") == "unhealthy" and x, what="unhealthy")
    assert h["FailingStreak"] >= 2 and h["Log"][-1]["ExitCode"] == 1 and h["Log"][-1]["Output"] == "bad\n"
    assert ps_status(lc, "hc2").endswith("(unhealthy)")
    assert lc("ps", "--filter", "health=unhealthy", "--format", "{{.Names}}").stdout.split() == ["hc2"]


def test_probe_past_its_timeout(lc, cleanup):
    cleanup.append("hc3")
    lc("run", "-d", "--name", "hc3", "--network", "none", "--health-cmd", "sleep 5", "--health-timeout", "300ms",
       "--health-interval", "200ms", "--health-retries", "1", "busybox", "sleep", "60", check=True)
    h = wait_until(lambda: (x := health(lc, "hc3")).get("Status") == "unhealthy" and x, what="timed out")
    assert h["Log"][-1] == {**h["Log"][-1], "ExitCode": -1, "Output": "Health check exceeded timeout (300ms)"}


def test_image_healthcheck_and_no_healthcheck(lc, cleanup, tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM busybox\nHEALTHCHECK --interval=200ms CMD [\"true\"]\n")
    lc("build", "-q", "-t", "hc-image", str(tmp_path), check=True, timeout=120)
    cleanup.extend(["hc4", "hc5"])
    lc("run", "-d", "--name", "hc4", "--network", "none", "hc-image", "sleep", "60", check=True)
    wait_until(lambda: health(lc, "hc4").get("Status") == "healthy", what="the image's check")
    lc("run", "-d", "--name", "hc5", "--network", "none", "--no-healthcheck", "hc-image", "sleep", "60", check=True)
    time.sleep(0.6)
    assert health(lc, "hc5") == {} and ps_status(lc, "hc5").startswith("Up ") and "(" not in ps_status(lc, "hc5")
    r = lc("run", "--no-healthcheck", "--health-retries", "2", "busybox", "true")
    assert r.returncode == 125 and "--no-healthcheck conflicts with --health-* options" in r.stderr


def test_wait_returns_at_an_exit_the_policy_restarts(lc, cleanup):
    cleanup.append("rs6")
    lc("run", "-d", "--name", "rs6", "--network", "none", "--restart", "always", "busybox", "sh", "-c",
       "sleep 0.5; exit 7", check=True)
    started = time.monotonic()
    assert lc("wait", "rs6", check=True, timeout=30).stdout == "7\n"
    assert time.monotonic() - started < 5
