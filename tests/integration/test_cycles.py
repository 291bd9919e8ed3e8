"""Leak check: many `run --rm` cycles (and a few detached + rm -f) leave no mounts, cgroups, processes or dirs."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.integration.helpers import leftovers, lifecycle_runner

CYCLES = 50


@pytest.fixture(scope="module")
def lc(pyctr_config, tmp_path_factory):
    yield from lifecycle_runner(pyctr_config, tmp_path_factory, "cycles")


def pyctr_cgroups() -> set[str]:
    found = set()
    for base in Path("/sys/fs/cgroup").iterdir():
        parent = base / "pyctr"
        if parent.is_dir():
            found |= {f"{base.name}/{p.name}" for p in parent.iterdir() if p.is_dir()}
    return found


def processes_under(root: Path) -> list[int]:
    """Processes whose command line mentions the root (monitors, cleanups)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if str(root).encode() in f.read():
                        pids.append(int(entry))
            except OSError:
                pass
    return pids


def ours(cgroups: set[str], short_ids: set[str]) -> set[str]:
    """The cgroups among `cgroups` that belong to these containers (other tests may run containers meanwhile)."""
    return {c for c in cgroups if c.split("/", 1)[1][:12] in short_ids}


@pytest.mark.slow
def test_run_rm_cycles_leave_nothing(lc):
    short_ids = set()
    for i in range(CYCLES):
        # the default hostname is the short id: it names the cgroup to look for afterwards
        r = lc("run", "--rm", "--network", "none", "busybox", "sh", "-c", f"echo {i}; hostname")
        assert r.returncode == 0 and r.stdout.splitlines()[0] == str(i), r.stderr
        short_ids.add(r.stdout.splitlines()[1])
    assert len(short_ids) == CYCLES
    assert leftovers(lc.root) == []
    assert ours(pyctr_cgroups(), short_ids) == set()
    assert processes_under(lc.root) == []


@pytest.mark.slow
def test_detached_rm_cycles_leave_nothing(lc):
    short_ids = set()
    for _ in range(10):
        cid = lc("run", "-d", "--network", "none", "busybox", "sleep", "60", check=True).stdout.strip()
        assert lc("rm", "-f", cid).returncode == 0
        r = lc("run", "-d", "--rm", "--network", "none", "busybox", "true", check=True)
        short_ids |= {cid[:12], r.stdout.strip()[:12]}
    deadline = time.monotonic() + 10  # the last --rm container's monitor may still be cleaning up
    while (leftovers(lc.root) or processes_under(lc.root)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert leftovers(lc.root) == []
    assert ours(pyctr_cgroups(), short_ids) == set()
    assert processes_under(lc.root) == []
