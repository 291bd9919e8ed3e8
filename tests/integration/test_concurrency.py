"""Concurrency: parallel runs, pulls, removals and name conflicts on one root stay consistent.

- 20 parallel `run -d`: all start, with unique names, ids and IP addresses;
- parallel `rm -f` of those 20: each succeeds or fails cleanly (one line, exit 1 as docker-cli), nothing is left behind;
- 5 parallel pulls of the same two-layer image on a fresh root: all succeed and each thing is stored once;
- parallel `run --name same`: exactly one wins, the others get Docker's conflict error and exit 125.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from pyctr.image.store import chain_ids
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

PARALLEL_RUNS = 20
PARALLEL_PULLS = 5
CONFLICTING_RUNS = 5


@pytest.fixture(scope="module")
def shared(registry, tmp_path_factory):
    runner = own_runner(registry, tmp_path_factory.mktemp("concurrency"), "pyctrk3", "10.80.3.0/24")
    runner("pull", "busybox", check=True, timeout=120)
    yield runner
    remove_all(runner)
    assert mounts_under(runner.root) == []


def parallel(fn, items, workers: int) -> list:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))


def assert_clean_failure(proc, context: str, code: int = 1) -> None:
    """A failure is docker-cli's error line (run's with its help line) and its exit code, never a traceback."""
    assert proc.returncode == code, f"{context}: exit {proc.returncode}: {proc.stderr}"
    lines = proc.stderr.strip().splitlines()
    assert lines and lines[0].startswith(("Error", "pyctr: Error")), f"{context}: {proc.stderr}"
    assert len(lines) == 1 or lines[1:] == ["See 'pyctr run --help'."], f"{context}: {proc.stderr}"
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, f"{context}: {proc.stderr}"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_parallel_runs_then_parallel_removals(shared):
    runner = shared
    names = [f"par-{i}" for i in range(PARALLEL_RUNS)]
    results = parallel(lambda n: runner("run", "-d", "--name", n, "-p", "0:80", "busybox", "sleep", "300",
                                        timeout=180), names, PARALLEL_RUNS)
    for name, r in zip(names, results, strict=True):
        assert r.returncode == 0, f"{name}: {r.stderr}"
    ids = [r.stdout.strip() for r in results]
    assert len(set(ids)) == PARALLEL_RUNS and all(re.fullmatch(r"[0-9a-f]{64}", i) for i in ids)

    docs = json.loads(runner("inspect", *ids, check=True).stdout)
    assert [d["Id"] for d in docs] == ids
    assert sorted(d["Name"] for d in docs) == sorted(f"/{n}" for n in names)
    assert all(d["State"]["Status"] == "running" for d in docs)
    ips = [d["NetworkSettings"]["IPAddress"] for d in docs]
    assert len(set(ips)) == PARALLEL_RUNS and all(ip.startswith("10.80.3.") for ip in ips), ips
    host_ports = [d["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"] for d in docs]
    assert len(set(host_ports)) == PARALLEL_RUNS, host_ports

    removals = parallel(lambda cid: runner("rm", "-f", cid, timeout=180), ids, PARALLEL_RUNS)
    for cid, r in zip(ids, removals, strict=True):
        if r.returncode != 0:
            assert_clean_failure(r, f"rm -f {cid[:12]}")
    left = runner("ps", "-aq", "--no-trunc").stdout.split()
    if left:  # a removal that failed cleanly must succeed when repeated
        assert runner("rm", "-f", *left, timeout=180).returncode == 0
    assert runner("ps", "-aq").stdout == ""
    assert list((runner.root / "containers").iterdir()) == []
    assert mounts_under(runner.root) == []
    assert cgroup_dirs(set(ids)) == []
    assert veths_of(ids) == []
    assert ipam_containers(runner.root) == {}
    assert processes_mentioning(str(runner.root)) == []
    assert_check_clean(runner, "after parallel rm -f")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_parallel_run_with_the_same_name(shared):
    runner = shared
    results = parallel(lambda _: runner("run", "-d", "--name", "same", "busybox", "sleep", "300", timeout=180),
                       range(CONFLICTING_RUNS), CONFLICTING_RUNS)
    winners = [r for r in results if r.returncode == 0]
    assert len(winners) == 1, [(r.returncode, r.stderr) for r in results]
    winner = winners[0].stdout.strip()
    for r in results:
        if r.returncode != 0:
            assert_clean_failure(r, "run --name same", code=125)
            assert f'Conflict. The container name "/same" is already in use by container "{winner}"' in r.stderr
    assert runner("ps", "-aq", "--no-trunc").stdout.split() == [winner]
    assert runner("rm", "-f", "same").returncode == 0
    assert_check_clean(runner, "after the conflict")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_parallel_pulls_of_the_same_image_store_it_once(fresh_pyctr):
    runner = fresh_pyctr
    results = parallel(lambda _: runner("pull", "python:3-slim", timeout=300), range(PARALLEL_PULLS), PARALLEL_PULLS)
    for r in results:
        assert r.returncode == 0, r.stderr
    images = runner("images", "-q", "--no-trunc").stdout.split()
    assert len(images) == 1
    image = json.loads(runner("inspect", "--type", "image", images[0], check=True).stdout)[0]
    chains = {c[7:] for c in chain_ids(image["RootFS"]["Layers"])}
    assert len(chains) == 2
    layer_dirs = {p.name for p in (runner.root / "layers").iterdir()}
    assert layer_dirs == chains, "one layer directory per chain id, and no partial ones"
    assert all((runner.root / "layers" / c / "layer.json").is_file() for c in chains)
    blobs = sorted(p.name for p in (runner.root / "blobs" / "sha256").iterdir())
    assert all(re.fullmatch(r"[0-9a-f]{64}", b) for b in blobs), blobs
    assert len(blobs) == 4 + 1 or len(blobs) == 4, blobs  # config, manifest, 2 layers (+ the index it came from)
    assert [p.name for p in (runner.root / "tmp").iterdir() if not p.name.startswith("monitor-")] == []
    assert_check_clean(runner, "after parallel pulls")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_system_check_during_parallel_runs_breaks_nothing(shared):
    """`system check` while containers start and stop: it repairs nothing that is merely in progress."""
    runner = shared

    def job(i: int):
        if i % 3 == 2:
            return runner("system", "check", timeout=180)
        if i % 3 == 1:
            return runner("run", "-d", "--rm", "-p", "0:80", "busybox", "true", timeout=180)
        return runner("run", "-d", "-p", "0:80", "--memory", "64m", "busybox", "sleep", "300", timeout=180)

    results = parallel(job, range(12), 12)
    for i, r in enumerate(results):
        assert r.returncode == 0, f"job {i}: exit {r.returncode}\n{r.stdout}{r.stderr}"
        if i % 3 == 2:
            assert r.stdout == "", f"check {i} repaired something that was only in progress:\n{r.stdout}"
    long_lived = [results[i].stdout.strip() for i in range(0, 12, 3)]
    docs = json.loads(runner("inspect", *long_lived, check=True).stdout)
    assert all(d["State"]["Status"] == "running" for d in docs)
    remove_all(runner)
    assert_check_clean(runner, "after the runs")
