"""cgroups for real (v1 on the development VM, the same tests apply to v2 hosts).

Each test creates its cgroups through create_cgroup, starts a real process in them
and proves the limit is enforced by the kernel, then destroys them and checks that
nothing is left under /sys/fs/cgroup. Child processes wait on stdin until they have
been placed in their cgroup, so nothing they do escapes the limits.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from pyctr.runtime.cgroups import Cgroup, Limits, create_cgroup, current_mode, open_cgroup

pytestmark = pytest.mark.integration
MiB = 1024 * 1024
CGROUP_ROOT = Path("/sys/fs/cgroup")


def new_id() -> str:
    return f"cgtest{uuid.uuid4().hex[:12]}"


class Cgroups:
    """Creates cgroups and child processes for one test; `cleanup` kills, reaps and destroys everything."""

    def __init__(self) -> None:
        self.made: list[Cgroup] = []
        self.procs: list[subprocess.Popen] = []

    def create(self, limits: Limits) -> Cgroup:
        cg = create_cgroup(new_id(), limits)
        self.made.append(cg)
        return cg

    def start(self, cg: Cgroup, code: str) -> subprocess.Popen:
        """A python child that runs `code` only once it is inside `cg`."""
        gate = "import sys\nsys.stdin.readline()\n"
        proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", gate + code], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(proc)
        cg.add_process(proc.pid)
        assert proc.pid in cg.pids()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        return proc

    def cleanup(self) -> None:
        for cg in self.made:
            cg.destroy()
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=10)
        for cg in self.made:
            left = [d for d in cg.unique_dirs() if d.exists()]
            assert not left, f"cgroup directories left behind: {left}"


@pytest.fixture
def cgroups():
    helper = Cgroups()
    yield helper
    helper.cleanup()


def pyctr_dirs() -> list[Path]:
    """Every directory named like pyctr within three levels of /sys/fs/cgroup (what the final check flags)."""
    found = []
    for level in ("*", "*/*", "*/*/*"):
        found += [p for p in CGROUP_ROOT.glob(level) if "pyctr" in p.name and p.is_dir()]
    return found


def test_memory_limit_oom_kills_and_is_detected(cgroups):
    cg = cgroups.create(Limits(memory=32 * MiB))
    assert not cg.oom_killed()
    proc = cgroups.start(cg, "chunks = [b'x' * (1 << 20) for _ in range(200)]\nprint('survived', flush=True)\n")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == -9, f"expected SIGKILL from the OOM killer, got {proc.returncode}: {out}"
    assert "survived" not in out
    assert cg.oom_killed()
    assert cg.stats()["memory"]["limit"] == 32 * MiB


def test_memory_swap_defaults_to_twice_memory_on_the_host(cgroups):
    cg = cgroups.create(Limits(memory=32 * MiB))
    if current_mode().version == 2:
        swap = cg.paths["unified"] / "memory.swap.max"
        assert not swap.exists() or swap.read_text().strip() == str(32 * MiB)
    else:
        memsw = cg.paths["memory"] / "memory.memsw.limit_in_bytes"
        assert not memsw.exists() or memsw.read_text().strip() == str(64 * MiB)


def test_a_normal_process_is_not_reported_oom_killed(cgroups):
    cg = cgroups.create(Limits(memory=64 * MiB))
    proc = cgroups.start(cg, "data = b'x' * (4 << 20)\nprint(len(data))\n")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and out.strip() == str(4 << 20)
    assert not cg.oom_killed()


FORK_BOMB = """\
import os, time
ok = fail = 0
for _ in range(200):
    try:
        pid = os.fork()
    except OSError:
        fail += 1
        continue
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    ok += 1
print(ok, fail, flush=True)
time.sleep(60)
"""


def test_pids_limit_contains_a_fork_bomb_and_kill_all_ends_it(cgroups):
    cg = cgroups.create(Limits(pids_limit=20))
    proc = cgroups.start(cg, FORK_BOMB)
    line = proc.stdout.readline()
    ok, fail = map(int, line.split())
    assert ok + fail == 200 and ok <= 19 and fail >= 181, line  # 20 = the bomb itself + at most 19 children
    stats = cg.stats()["pids"]
    assert stats["current"] <= 20 and stats["limit"] == 20, stats
    assert len(cg.pids()) == ok + 1
    # the host is fine: this process can still fork
    assert subprocess.run(["true"]).returncode == 0
    cg.kill_all()
    assert cg.pids() == []
    proc.wait(timeout=10)
    assert proc.returncode == -9


def test_kill_all_with_sigterm_signals_every_process(cgroups):
    cg = cgroups.create(Limits())
    proc = cgroups.start(cg, "import os, time\nif os.fork() == 0:\n    time.sleep(60)\nprint('up', flush=True)\n"
                             "time.sleep(60)\n")
    assert proc.stdout.readline().strip() == "up"
    assert len(cg.pids()) == 2
    cg.kill_all(15)
    deadline = time.monotonic() + 10
    while cg.pids() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert cg.pids() == []
    assert proc.wait(timeout=10) == -15


def test_cpus_quota_is_written_and_throttles(cgroups):
    cg = cgroups.create(Limits(cpus=0.2, cpu_shares=512))
    if current_mode().version == 2:
        assert cg.paths["unified"].joinpath("cpu.max").read_text().split() == ["20000", "100000"]
    else:
        assert cg.paths["cpu"].joinpath("cpu.cfs_quota_us").read_text().strip() == "20000"
        assert cg.paths["cpu"].joinpath("cpu.cfs_period_us").read_text().strip() == "100000"
        assert cg.paths["cpu"].joinpath("cpu.shares").read_text().strip() == "512"
    # burn 0.3 s of CPU: at 20% of one CPU that takes at least 1.5 s of wall time
    proc = cgroups.start(cg, "import time\nt = time.monotonic()\nwhile time.process_time() < 0.3:\n    pass\n"
                             "print(time.monotonic() - t)\n")
    out, _ = proc.communicate(timeout=60)
    assert float(out) > 1.2, f"0.3 s of CPU took only {out.strip()} s: the quota is not enforced"
    cpu = cg.stats()["cpu"]
    assert cpu["throttled_periods"] > 0, cpu
    assert cpu["usage_ns"] >= 250_000_000, cpu  # the interpreter start-up before joining is not counted


def openable_block_device(workdir: Path) -> tuple[int, int]:
    """major:minor of a block device this test process can open (the control), e.g. 7:0 (loop0).

    Probed through a node mknod'ed in `workdir`, as the contained process will do; devices this
    sandbox itself refuses (the VM's disk may be) are skipped so the comparison means something.
    """
    candidates = sorted(Path("/sys/dev/block").iterdir(), key=lambda p: p.name)
    for index, entry in enumerate(candidates):
        major, minor = map(int, entry.name.split(":"))
        node = workdir / f"control{index}"
        os.mknod(node, 0o600 | stat.S_IFBLK, os.makedev(major, minor))
        try:
            os.close(os.open(node, os.O_RDONLY))
            return major, minor
        except OSError:
            continue
        finally:
            node.unlink()
    pytest.fail("no block device that this process may open, to test the device cgroup against", pytrace=False)


DEVICE_PROBE = """\
import os, sys, errno
path, major, minor = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.mknod(path, 0o600 | 0o060000, os.makedev(major, minor))  # S_IFBLK: mknod itself is allowed (b *:* m)
try:
    os.close(os.open(path, os.O_RDONLY))
    print("block:opened")
except OSError as e:
    print("block:" + errno.errorcode[e.errno])
os.mknod(path + "-kmsg", 0o600 | 0o020000, os.makedev(1, 11))  # a char device outside Docker's list
try:
    os.close(os.open(path + "-kmsg", os.O_RDONLY))
    print("kmsg:opened")
except OSError as e:
    print("kmsg:" + errno.errorcode[e.errno])
os.close(os.open("/dev/null", os.O_RDWR))
print("null:opened", flush=True)
"""


def test_devices_deny_a_mknoded_block_device_but_allow_dev_null(cgroups, tmp_path):
    cg = cgroups.create(Limits())
    if current_mode().version == 2:
        assert not cg.devices_enforced  # documented: v2 needs a BPF program; the runtime drops CAP_MKNOD
        return
    assert cg.devices_enforced
    assert "a *:* rwm" not in [line.strip() for line in (cg.paths["devices"] / "devices.list").read_text().splitlines()]
    major, minor = openable_block_device(tmp_path)
    node = tmp_path / "disk"
    gate = "import sys\nsys.stdin.readline()\n"
    proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", gate + DEVICE_PROBE, str(node), str(major), str(minor)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cgroups.procs.append(proc)
    cg.add_process(proc.pid)
    out, err = proc.communicate("go\n", timeout=30)
    assert proc.returncode == 0, err
    assert out.split() == ["block:EPERM", "kmsg:EPERM", "null:opened"]
    assert stat.S_ISBLK(node.stat().st_mode)
    os.close(os.open(node, os.O_RDONLY))  # control: outside the cgroup the same node opens


def test_privileged_allows_every_device(cgroups):
    cg = cgroups.create(Limits(privileged=True))
    if current_mode().version == 1:
        assert (cg.paths["devices"] / "devices.list").read_text().split() == ["a", "*:*", "rwm"]


def test_create_is_idempotent_and_open_finds_it(cgroups):
    cg = cgroups.create(Limits(memory=64 * MiB, pids_limit=50))
    again = create_cgroup(cg.container_id, Limits(memory=64 * MiB, pids_limit=50))
    assert again.paths == cg.paths
    opened = open_cgroup(cg.container_id)
    assert opened.paths == cg.paths and opened.exists()
    proc = cgroups.start(opened, "import time\ntime.sleep(60)\n")
    assert cg.pids() == [proc.pid]
    opened.destroy()  # kills the leftover process, removes the directories
    assert not cg.exists()
    assert proc.wait(timeout=10) == -9
    opened.destroy()  # already gone: not an error


def test_cgroup_paths_and_procfs_agree(cgroups):
    cg = cgroups.create(Limits())
    proc = cgroups.start(cg, "import time\ntime.sleep(60)\n")
    lines = Path(f"/proc/{proc.pid}/cgroup").read_text().splitlines()
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers.startswith("name="):
            continue
        assert path == f"/pyctr/{cg.container_id}", line


def test_concurrent_create_and_destroy_leave_nothing(cgroups):
    errors: list[BaseException] = []
    ids = [new_id() for _ in range(10)]

    def lifecycle(container_id: str) -> None:
        try:
            for _ in range(3):
                cg = create_cgroup(container_id, Limits(memory=64 * MiB, cpus=0.5, pids_limit=10))
                proc = subprocess.Popen(["sleep", "30"])
                try:
                    cg.add_process(proc.pid)
                    assert cg.pids() == [proc.pid]
                finally:
                    cg.destroy()
                    proc.wait(timeout=10)
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=lifecycle, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    leftovers = [p for p in pyctr_dirs() if p.name in ids]
    assert not leftovers, leftovers
    ours_gone = all(not open_cgroup(i).exists() for i in ids)
    assert ours_gone


def test_destroy_removes_the_shared_parent_when_empty(cgroups):
    cg = cgroups.create(Limits())
    parents = {d.parent for d in cg.unique_dirs()}
    assert all(p.name == "pyctr" and p.is_dir() for p in parents)
    cg.destroy()
    for parent in parents:
        others = [c for c in parent.iterdir() if c.is_dir()] if parent.exists() else []
        # another engineer's container may be running; otherwise the parent must be gone
        assert others or not parent.exists(), parent


STRESS = """\
import sys
from pyctr.runtime.cgroups import Limits, create_cgroup
prefix = sys.argv[1]
for i in range(25):
    create_cgroup(f"{prefix}x{i}", Limits(memory=64 << 20, pids_limit=10)).destroy()
print("done", flush=True)
"""


def test_concurrent_processes_race_on_the_shared_parent_without_errors():
    """Separate processes (no GIL between them) create and destroy while others remove `pyctr`."""
    prefixes = [new_id() for _ in range(4)]
    procs = [subprocess.Popen([sys.executable, "-c", STRESS, prefix], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for prefix in prefixes]
    results = [proc.communicate(timeout=120) for proc in procs]
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0 and out.strip() == "done", err
    leftovers = [p for p in pyctr_dirs() if any(p.name.startswith(prefix) for prefix in prefixes)]
    assert not leftovers, leftovers


def test_a_value_the_kernel_refuses_fails_cleanly_and_leaves_nothing():
    from pyctr.errors import RuntimeFailure

    container_id = new_id()
    with pytest.raises(RuntimeFailure, match="pids.max"):
        create_cgroup(container_id, Limits(pids_limit=10**9))  # above PID_MAX_LIMIT: EINVAL
    assert not open_cgroup(container_id).exists()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_v2_mechanics_for_real_on_the_unified_hierarchy(cgroups, sig):
    """The v2 code path against a real cgroup2 mount: the hybrid host's (controller-less) unified tree.

    No limits can be proven there (no controllers are attached on this VM), but joining,
    listing, freezing, SIGTERM to all, cgroup.kill and removal are the real v2 kernel interface.
    """
    from pyctr.runtime.cgroups import CgroupMode

    host = current_mode()
    if host.unified is None:
        pytest.fail("no cgroup2 (unified) mount on this host to test the v2 code path against", pytrace=False)
    mode = CgroupMode(version=2, unified=host.unified, v2_controllers=())
    cg = create_cgroup(new_id(), Limits(), mode)
    cgroups.made.append(cg)
    assert cg.paths == {"unified": host.unified / "pyctr" / cg.container_id}
    assert not cg.devices_enforced
    proc = cgroups.start(cg, "import os, time\nif os.fork() == 0:\n    time.sleep(60)\nprint('up', flush=True)\n"
                             "time.sleep(60)\n")
    assert proc.stdout.readline().strip() == "up"
    assert len(cg.pids()) == 2
    assert f"0::/pyctr/{cg.container_id}" in Path(f"/proc/{proc.pid}/cgroup").read_text()
    assert cg.stats()["cpu"]["usage_ns"] is not None  # cpu.stat exists in every v2 cgroup
    assert not cg.oom_killed()
    cg.kill_all(sig)  # SIGKILL: cgroup.kill on Linux >= 5.14; others: freeze (cgroup.freeze), signal, thaw
    assert proc.wait(timeout=10) == -sig
    deadline = time.monotonic() + 10
    while cg.pids() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert cg.pids() == []
    assert (cg.paths["unified"] / "cgroup.freeze").read_text().strip() == "0"  # thawed again
    cg.destroy()
    assert not cg.exists()


def test_a_failed_re_create_never_tears_down_a_running_container(cgroups):
    from pyctr.errors import RuntimeFailure

    cg = cgroups.create(Limits())
    proc = cgroups.start(cg, "import time\ntime.sleep(60)\n")
    with pytest.raises(RuntimeFailure):
        create_cgroup(cg.container_id, Limits(pids_limit=10**9))
    assert proc.poll() is None and cg.pids() == [proc.pid]
    assert cg.exists()
