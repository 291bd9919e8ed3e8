"""Leaks: 200 run/rm cycles with a bridge network, a published port and cgroup limits leave nothing behind.

Four workers share one root. Three cycles in four are `run -d ... sleep 60` then `rm -f`; the fourth is
`run -d --rm ... true`, which the monitor removes by itself. Afterwards nothing of any of the 200 containers
remains: mounts, cgroups, veths, addresses in ipam.json, the bridge's NAT table, log files, state dirs,
processes; the bridge itself stays (as Docker's docker0 does), with nothing attached. Other engineers'
roots may run containers meanwhile, so kernel objects are matched by this root's container ids, bridge
and path, never by "anything named pyctr".
"""

from __future__ import annotations

import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.integration.helpers import (
    assert_check_clean,
    cgroup_dirs,
    ipam_containers,
    mounts_under,
    own_runner,
    processes_mentioning,
    remove_all,
    veths_of,
)

CYCLES = 200
WORKERS = 4
BRIDGE = "pyctrk2"
LIMITS = ("-p", "0:80", "--memory", "64m", "--pids-limit", "50")


def one_cycle(runner, i: int) -> str:
    """One container's whole life; returns its id."""
    if i % 4 == 3:
        r = runner("run", "-d", "--rm", *LIMITS, "busybox", "true", timeout=120)
        assert r.returncode == 0, f"cycle {i}: run -d --rm: {r.stderr}"
        return r.stdout.strip()
    r = runner("run", "-d", *LIMITS, "busybox", "sleep", "60", timeout=120)
    assert r.returncode == 0, f"cycle {i}: run -d: {r.stderr}"
    cid = r.stdout.strip()
    rm = runner("rm", "-f", cid, timeout=120)
    assert rm.returncode == 0, f"cycle {i}: rm -f: {rm.stderr}"
    return cid


def wait_removed(root: Path, ids: list[str], timeout: float = 60) -> list[str]:
    """--rm containers go when their monitor's cleanup runs: wait for their directories to disappear."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [cid for cid in ids if (root / "containers" / cid).exists()]
        if not left:
            return []
        time.sleep(0.2)
    return left


def nat_table_present(bridge: str) -> bool:
    ruleset = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    return f"pyctr_{bridge}" in ruleset


@pytest.fixture
def leak_root(registry, tmp_path):
    """The cycles' root; whatever a failed run left is removed after the test."""
    runner = own_runner(registry, tmp_path, BRIDGE, "10.80.2.0/24")
    runner("pull", "busybox", check=True, timeout=120)
    yield runner
    remove_all(runner)


@pytest.mark.slow
@pytest.mark.timeout(900)  # ~1 min on an idle machine; several times that when the 2 cores are shared
def test_run_rm_cycles_leave_nothing(leak_root):
    runner = leak_root
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        ids = list(pool.map(lambda i: one_cycle(runner, i), range(CYCLES)))
    elapsed = time.monotonic() - started
    assert len(set(ids)) == CYCLES
    assert wait_removed(runner.root, ids) == []
    assert runner("ps", "-aq").stdout == ""

    assert mounts_under(runner.root) == []
    assert cgroup_dirs(set(ids)) == []
    assert veths_of(ids) == []
    assert ipam_containers(runner.root) == {}
    assert not nat_table_present(BRIDGE), subprocess.run(["nft", "list", "ruleset"], capture_output=True,
                                                          text=True).stdout
    assert list(Path(f"/sys/class/net/{BRIDGE}/brif").iterdir()) == []  # the bridge stays, like docker0: idle
    assert list((runner.root / "containers").iterdir()) == []  # state dirs and their json logs
    assert list(runner.root.rglob("*-json.log")) == []
    assert processes_mentioning(str(runner.root)) == []
    assert_check_clean(runner, "after the cycles")
    print(f"{CYCLES} cycles with {WORKERS} workers: {elapsed:.1f} s")
