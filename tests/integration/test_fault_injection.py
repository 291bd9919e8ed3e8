"""Crash safety: SIGKILL `pull`, `build`, `run -d` and `rm` at seeded random moments, then check and repeat.

Each trial measures nothing new: the command's typical duration is measured once per kind, and each of the 20
seeded trials kills the CLI after `random.Random(seed).uniform(5 ms, that duration)`. Afterwards:
`pyctr system check` exits 0 (and a second check finds nothing: no corruption remains), `pyctr images` lists
only complete images, `pyctr ps -a` only complete containers with a sensible status, and repeating the
command succeeds. Also: the monitor and the container killed (check marks it exited and tears it down),
mounts left under tmp/ and in a half-created container (detached, then removed), and a SIGKILL between
creating a bridge and labelling it (a newborn bridge is left as garbage, never an unlabelled one under the
real name, and the next start removes it). Run with -s to see what each
kill left and what check repaired. The helpers here are shared with test_leaks.py and test_concurrency.py.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.conftest import (
    PYCTR_BIN,
    PyctrRunner,
    wait_for_killed_workers,
)
from tests.integration.helpers import (
    assert_check_clean,
    cgroup_dirs,
    config_of,
    mounts_under,
    own_runner,
    processes_mentioning,
    remaining_problems,
    remove_all,
)

TRIALS = 20
MIN_DELAY = 0.005
SANE_STATUSES = {"created", "running", "exited"}

DOCKERFILE = """\
FROM busybox
RUN echo one > /one && mkdir -p /data && echo two > /data/two
COPY note.txt /data/note.txt
RUN cat /data/note.txt /one > /data/both
CMD ["cat", "/data/both"]
"""


# ------------------------------------------------------------------ helpers shared by the robustness tests

def timed(runner: PyctrRunner, *args: object, timeout: float = 120, cwd: Path | None = None) -> float:
    """Run a command to completion (it must succeed); return how long it took."""
    start = time.monotonic()
    proc = subprocess.run([str(PYCTR_BIN), *map(str, args)], env=runner.env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, cwd=cwd)
    assert proc.returncode == 0, f"{args} exited {proc.returncode}: {proc.stderr}"
    return time.monotonic() - start


def kill_after(runner: PyctrRunner, args: tuple, delay: float, cwd: Path | None = None) -> int | None:
    """Start the CLI, SIGKILL it after `delay` s; returns its exit code if it finished first, else None."""
    proc = subprocess.Popen([str(PYCTR_BIN), *map(str, args)], env=runner.env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd)
    try:
        code = proc.wait(timeout=delay)
        return code
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        wait_for_killed_workers()
        return None


def assert_images_complete(runner: PyctrRunner, context: str) -> list[str]:
    """`pyctr images` lists only complete images: each resolves and its layer dirs have layer.json."""
    from pyctr.image.store import ImageStore

    listed = runner("images", "-q", "--no-trunc")
    assert listed.returncode == 0, f"{context}: images: {listed.stderr}"
    ids = sorted(set(listed.stdout.split()))
    store = ImageStore(config_of(runner).paths)
    for image_id in ids:
        for layer in store.get_image(image_id).layers:
            assert (layer.path / "layer.json").is_file() and layer.diff_dir.is_dir(), \
                f"{context}: {image_id} has a half layer {layer.path}"
    return ids


def _settled(store, cid: str, timeout: float = 10.0):
    """The record once a monitor that outlived its container's process has recorded the exit.

    "Running" with the process gone is the moment between the process's death and its monitor's
    `_cleanup` (state.reconcile leaves it alone while the monitor lives): wait that out, not longer."""
    deadline = time.monotonic() + timeout
    record = store.get(cid)
    while (record.state.status == "running" and not Path(f"/proc/{record.state.pid}").exists()
           and record.state.monitor_pid and Path(f"/proc/{record.state.monitor_pid}").exists()
           and time.monotonic() < deadline):
        time.sleep(0.02)
        record = store.get(cid)
    return record


def assert_containers_complete(runner: PyctrRunner, context: str) -> list[str]:
    """`pyctr ps -a` lists only containers with a complete config and a sensible, truthful status."""
    from pyctr.runtime.state import ContainerStore

    listed = runner("ps", "-aq", "--no-trunc")
    assert listed.returncode == 0, f"{context}: ps -a: {listed.stderr}"
    store = ContainerStore(config_of(runner).paths)
    ids = listed.stdout.split()
    for cid in ids:
        record = _settled(store, cid)
        assert record.config.get("Spec") and record.config.get("Id") == cid, f"{context}: {cid} config incomplete"
        status = record.state.status
        assert status in SANE_STATUSES, f"{context}: {cid} has status {status!r}"
        if status == "running":
            assert Path(f"/proc/{record.state.pid}").exists(), f"{context}: {cid} 'running' without a process"
    return ids


def delays(duration: float, count: int = TRIALS) -> list[tuple[int, float]]:
    """(seed, delay) per trial: seeded, uniform between MIN_DELAY and the measured duration."""
    return [(seed, random.Random(seed).uniform(MIN_DELAY, max(duration, MIN_DELAY * 2))) for seed in range(count)]


# ------------------------------------------------------------------ the trials

@pytest.fixture(scope="module")
def busybox_root(registry, tmp_path_factory):
    """A root with busybox pulled, its own bridge, and nothing left behind after the module."""
    runner = own_runner(registry, tmp_path_factory.mktemp("faults"), "pyctrk1", "10.80.1.0/24")
    runner("pull", "busybox", check=True, timeout=120)
    yield runner
    remove_all(runner)
    assert mounts_under(runner.root) == []
    if not list(Path("/sys/class/net/pyctrk1/brif").glob("*")):
        # normally gone with the last container; a build killed while labelling it leaves it (see the xfail below)
        subprocess.run(["ip", "link", "del", "pyctrk1"], capture_output=True)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sigkill_pull(registry, tmp_path):
    """18 trials with busybox, 2 with python:3-slim (two layers, 60 MB), each on a fresh root."""
    fresh = iter(range(10_000))

    def fresh_runner() -> PyctrRunner:
        return own_runner(registry, tmp_path / f"r{next(fresh)}", "pyctrk1", "10.80.1.0/24")

    durations = {image: timed(fresh_runner(), "pull", image, timeout=300) for image in ("busybox", "python:3-slim")}
    for seed, delay in delays(durations["busybox"]):
        image = "python:3-slim" if seed >= TRIALS - 2 else "busybox"
        if image != "busybox":
            delay = random.Random(seed).uniform(MIN_DELAY, durations[image])
        runner = fresh_runner()
        context = f"pull {image} seed {seed} killed after {delay * 1000:.0f} ms"
        finished = kill_after(runner, ("pull", image), delay)
        assert finished in (None, 0), context
        assert_check_clean(runner, context)
        assert_images_complete(runner, context)
        again = runner("pull", image, timeout=300)
        assert again.returncode == 0, f"{context}: pulling again failed: {again.stderr}"
        assert len(assert_images_complete(runner, context)) == 1
        assert remaining_problems(runner) == [], context
        assert list((runner.root / "tmp").glob("blob-*.partial")) == [], context
        shutil.rmtree(runner.root)  # an image store per trial: keep the disk use of the test small


@pytest.mark.slow
@pytest.mark.timeout(600)
def _pyctr_cgroups() -> set[str]:
    """The ids of every container cgroup pyctr has on this machine (any root)."""
    parents = [*Path("/sys/fs/cgroup").glob("*/pyctr"), *Path("/sys/fs/cgroup").glob("pyctr")]
    return {p.name for parent in parents for p in parent.iterdir() if p.is_dir()}


def test_sigkill_build(busybox_root, tmp_path):
    context_dir = tmp_path / "ctx"
    context_dir.mkdir()
    (context_dir / "Dockerfile").write_text(DOCKERFILE)
    (context_dir / "note.txt").write_text("note\n")
    runner = busybox_root
    cgroups_before = _pyctr_cgroups()
    duration = timed(runner, "build", "--no-cache", "-t", "faulty:latest", ".", cwd=context_dir)
    for seed, delay in delays(duration):
        context = f"build seed {seed} killed after {delay * 1000:.0f} ms"
        finished = kill_after(runner, ("build", "--no-cache", "-t", "faulty:latest", "."), delay, cwd=context_dir)
        assert finished in (None, 0), context
        time.sleep(0.05)  # a RUN container orphaned by the kill runs its (short) command to the end
        assert_check_clean(runner, context)
        assert_images_complete(runner, context)
        assert timed(runner, "build", "--no-cache", "-t", "faulty:latest", ".", cwd=context_dir) > 0
    out = runner("run", "--rm", "--network", "none", "faulty:latest")
    assert (out.returncode, out.stdout) == (0, "note\none\n"), out.stderr
    # every step's cgroup is gone: removed by the step's build, or by the check after a killed build
    assert _pyctr_cgroups() <= cgroups_before, "a killed build left its RUN step's cgroup"
    assert remaining_problems(runner) == []
    assert list((runner.root / "tmp").glob("build-*")) == []
    assert mounts_under(runner.root) == []


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sigkill_run_detached(busybox_root):
    runner = busybox_root
    args = ("run", "-d", "-p", "0:80", "--memory", "64m", "busybox", "sleep", "300")
    start = time.monotonic()
    cid = runner(*args, check=True).stdout.strip()
    duration = time.monotonic() - start
    for seed, delay in delays(duration):
        context = f"run -d seed {seed} killed after {delay * 1000:.0f} ms"
        finished = kill_after(runner, args, delay)
        assert finished in (None, 0), context
        assert_check_clean(runner, context)
        listed = assert_containers_complete(runner, context)
        assert cid in listed, f"{context}: the previous trial's container is gone"
        assert runner("rm", "-f", *listed, timeout=120).returncode == 0, context
        again = runner(*args)
        assert again.returncode == 0, f"{context}: running again failed: {again.stderr}"
        cid = again.stdout.strip()
    remove_all(runner)
    assert_check_clean(runner, "after the last rm -f")
    assert mounts_under(runner.root) == []


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sigkill_rm(busybox_root):
    runner = busybox_root
    run_args = ("run", "-d", "-p", "0:80", "--memory", "64m", "busybox", "sleep", "300")
    cid = runner(*run_args, check=True).stdout.strip()
    start = time.monotonic()
    runner("rm", "-f", cid, check=True)
    duration = time.monotonic() - start
    for seed, delay in delays(duration):
        cid = runner(*run_args, check=True).stdout.strip()
        context = f"rm -f seed {seed} killed after {delay * 1000:.0f} ms"
        finished = kill_after(runner, ("rm", "-f", cid), delay)
        assert finished in (None, 0), context
        assert_check_clean(runner, context)
        listed = assert_containers_complete(runner, context)
        again = runner("rm", "-f", cid)
        if cid in listed:
            assert again.returncode == 0, f"{context}: removing again failed: {again.stderr}"
        else:
            assert "No such container" in again.stderr, f"{context}: {again.stderr}"
        assert not (runner.root / "containers" / cid).exists(), context
        assert not (runner.root / "containers" / f".removing-{cid}").exists(), context
        assert cgroup_dirs({cid}) == [], context
        assert remaining_problems(runner) == [], context + " (after the repeat)"
    assert mounts_under(runner.root) == []
    assert processes_mentioning(str(runner.root)) == []


def wait_gone(pid: int, timeout: float = 10) -> None:
    from pyctr.runtime.state import proc_start_time

    deadline = time.monotonic() + timeout
    while proc_start_time(pid) is not None:
        assert time.monotonic() < deadline, f"process {pid} survived SIGKILL"
        time.sleep(0.02)


@pytest.mark.slow
def test_sigkill_monitor_then_container(busybox_root):
    """The monitor dies before it can record the exit: check marks the container exited and tears it down."""
    from pyctr.runtime.state import ContainerStore

    runner = busybox_root
    cid = runner("run", "-d", "-p", "0:80", "--memory", "64m", "busybox", "sleep", "300", check=True).stdout.strip()
    state = ContainerStore(config_of(runner).paths).read_state(cid)
    assert state.running and state.monitor_pid and state.pid
    os.kill(state.monitor_pid, signal.SIGKILL)
    wait_gone(state.monitor_pid)
    os.kill(state.pid, signal.SIGKILL)
    wait_gone(state.pid)
    assert cgroup_dirs({cid}), "the cgroup of the killed container should still be there before the check"
    report = assert_check_clean(runner, "monitor and container killed")
    assert f"container {cid[:12]}" in report and "marked exited (255)" in report, report
    assert "torn down" in report, report
    assert cgroup_dirs({cid}) == []
    ipam = json.loads((runner.root / "network" / "ipam.json").read_text())
    assert all(cid not in net["containers"] for net in ipam["networks"].values())
    assert assert_containers_complete(runner, "after the check") == [cid]
    assert runner("start", cid).returncode == 0, "the repaired container starts again"
    assert runner("rm", "-f", cid).returncode == 0
    assert processes_mentioning(cid) == []


def test_check_detaches_leftover_mounts(registry, tmp_path):
    """Mounts left under tmp/ (a build's read-only view) or a half-created container are detached, then removed."""
    runner = own_runner(registry, tmp_path, "pyctrk1", "10.80.1.0/24")
    view = runner.root / "tmp" / "build-view-killed"
    half = runner.root / "containers" / ("d" * 64)
    merged = half / "rootfs" / "merged"
    for target in (view, merged):
        target.mkdir(parents=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "leftover", str(target)], check=True)
        (target / "file").write_text("x")
    try:
        report = assert_check_clean(runner, "leftover mounts")
        assert "tmp/build-view-killed: a file system is still mounted there (1): repaired: unmounted 1 and removed" \
            in report, report
        assert f"container {'d' * 12}: half-created" in report, report
        assert mounts_under(runner.root) == []
        assert not view.exists() and not half.exists()
    finally:
        for target in (merged, view):
            subprocess.run(["umount", "-l", str(target)], capture_output=True)


# A CLI killed inside bridge.ensure_bridge, between creating the bridge and labelling it `pyctr:<root>` (the
# build CLI itself connects its RUN containers, so killing `pyctr build` can land there): reproduced exactly.
KILLED_WHILE_LABELLING = """
import os, signal, sys
from pyctr.runtime.network import bridge
bridge.write_owner = lambda name, tag: os.kill(os.getpid(), signal.SIGKILL)
bridge.ensure_bridge(sys.argv[1], sys.argv[2], 24, bridge.owner_tag(sys.argv[3]))
"""


def test_sigkill_between_bridge_creation_and_label_leaks_no_bridge(registry, tmp_path):
    bridge = "pyctrk5"
    runner = own_runner(registry, tmp_path, bridge, "10.80.5.0/24")
    python = PYCTR_BIN.with_name("python")
    try:
        killed = subprocess.run([str(python), "-c", KILLED_WHILE_LABELLING, bridge, "10.80.5.1", str(runner.root)],
                                capture_output=True)
        assert killed.returncode == -signal.SIGKILL
        # the bridge never appears unlabelled under its real name: only the newborn is left, as garbage
        assert not Path(f"/sys/class/net/{bridge}").exists()
        assert newborn_bridges(), "the killed process left no newborn bridge: the test no longer kills mid-way"
        runner("pull", "busybox", check=True, timeout=120)
        cid = runner("run", "-d", "-p", "0:80", "busybox", "sleep", "300", check=True).stdout.strip()
        runner("rm", "-f", cid, check=True)
        assert_check_clean(runner, "after the last container")
        assert Path(f"/sys/class/net/{bridge}/ifalias").read_text().strip() == f"pyctr:{runner.root}"  # labelled
        assert list(Path(f"/sys/class/net/{bridge}/brif").iterdir()) == []  # kept like docker0, idle
        assert not newborn_bridges(), "a killed creation's newborn bridge was never removed"
    finally:
        remove_all(runner)
        for name in [bridge, *newborn_bridges()]:
            subprocess.run(["ip", "link", "del", name], capture_output=True)


def newborn_bridges() -> list[str]:
    from pyctr.runtime.network.bridge import NEWBORN_PREFIX

    return [n for n in os.listdir("/sys/class/net") if n.startswith(NEWBORN_PREFIX)]
