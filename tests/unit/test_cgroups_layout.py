"""create/open/inspect a cgroup against temp directories laid out like v1 and v2 cgroupfs.

mkdir in a real cgroupfs makes the control files appear; here the tests lay the
files out beforehand (creation is idempotent, so existing directories are reused)
and check what pyctr wrote into them.
"""

from pathlib import Path

import pytest

from pyctr.errors import RuntimeFailure
from pyctr.runtime.cgroups import (
    CgroupMode,
    Limits,
    blkio,
    cpu,
    cpuset,
    create_cgroup,
    freezer,
    memory,
    open_cgroup,
    pids,
)

MiB = 1024 * 1024
CID = "0123456789ab"
V1_FILES = {
    "memory": ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "memory.oom_control",
               "memory.usage_in_bytes", "memory.max_usage_in_bytes", "memory.stat", "memory.failcnt"],
    "cpu,cpuacct": ["cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.stat", "cpuacct.usage",
                    "cpuacct.stat"],
    "pids": ["pids.max", "pids.current", "pids.events"],
    "devices": ["devices.allow", "devices.deny", "devices.list"],
    "freezer": ["freezer.state"],
    "cpuset": ["cpuset.cpus", "cpuset.mems"],
    "blkio": ["blkio.throttle.io_service_bytes_recursive"],
}
V2_FILES = ["cgroup.procs", "cgroup.controllers", "cgroup.subtree_control", "cgroup.events", "cgroup.freeze",
            "memory.max", "memory.swap.max", "memory.current", "memory.events", "memory.stat", "cpu.max",
            "cpu.weight", "cpu.stat", "pids.max", "pids.current", "io.stat"]


def make_v1_tree(root: Path, with_memsw: bool = True) -> CgroupMode:
    mounts = {}
    for mount_name, files in V1_FILES.items():
        mount = root / mount_name
        for directory in (mount, mount / "pyctr", mount / "pyctr" / CID):
            directory.mkdir(parents=True, exist_ok=True)
            for name in files + ["cgroup.procs"]:
                if name != "memory.memsw.limit_in_bytes" or with_memsw:
                    (directory / name).write_text("")
        for controller in mount_name.split(","):
            mounts[controller] = mount
    (root / "cpuset" / "cpuset.cpus").write_text("0-1\n")
    (root / "cpuset" / "cpuset.mems").write_text("0\n")
    return CgroupMode(version=1, v1_mounts=mounts)


def make_v2_tree(root: Path, controllers: str = "cpuset cpu io memory pids") -> CgroupMode:
    for directory in (root, root / "pyctr", root / "pyctr" / CID):
        directory.mkdir(parents=True, exist_ok=True)
        for name in V2_FILES:
            (directory / name).write_text("")
        (directory / "cgroup.controllers").write_text(controllers + "\n")
    return CgroupMode(version=2, unified=root, v2_controllers=tuple(controllers.split()))


def read(path: Path) -> str:
    return path.read_text().strip()


def test_v1_create_writes_every_controller(tmp_path):
    mode = make_v1_tree(tmp_path)
    cg = create_cgroup(CID, Limits(memory=32 * MiB, cpus=0.5, cpu_shares=512, pids_limit=20), mode)
    d = tmp_path
    assert cg.paths["memory"] == d / "memory" / "pyctr" / CID
    assert cg.paths["cpu"] == cg.paths["cpuacct"] == d / "cpu,cpuacct" / "pyctr" / CID
    assert read(cg.paths["memory"] / "memory.limit_in_bytes") == str(32 * MiB)
    assert read(cg.paths["memory"] / "memory.memsw.limit_in_bytes") == str(64 * MiB)
    assert read(cg.paths["cpu"] / "cpu.cfs_quota_us") == "50000"
    assert read(cg.paths["cpu"] / "cpu.cfs_period_us") == "100000"
    assert read(cg.paths["cpu"] / "cpu.shares") == "512"
    assert read(cg.paths["pids"] / "pids.max") == "20"
    assert read(cg.paths["devices"] / "devices.deny") == "a"
    assert read(cg.paths["devices"] / "devices.allow") == "c 136:* rwm"  # one write per line: the last one stays
    assert cg.devices_enforced


def test_v1_cpuset_is_copied_from_the_parents(tmp_path):
    mode = make_v1_tree(tmp_path)
    cg = create_cgroup(CID, Limits(), mode)
    assert read(tmp_path / "cpuset" / "pyctr" / "cpuset.cpus") == "0-1"
    assert read(cg.paths["cpuset"] / "cpuset.cpus") == "0-1"
    assert read(cg.paths["cpuset"] / "cpuset.mems") == "0"


def test_cpuset_inherit_never_overwrites():
    assert cpuset.plan_inherit({"cpuset.cpus": "0-3", "cpuset.mems": "0"}, {"cpuset.cpus": "1", "cpuset.mems": ""}) \
        == {"cpuset.mems": "0"}


def test_v1_without_swap_accounting_sets_memory_only(tmp_path):
    mode = make_v1_tree(tmp_path, with_memsw=False)
    cg = create_cgroup(CID, Limits(memory=32 * MiB), mode)
    assert read(cg.paths["memory"] / "memory.limit_in_bytes") == str(32 * MiB)
    assert not (cg.paths["memory"] / "memory.memsw.limit_in_bytes").exists()


def test_v1_privileged_allows_all(tmp_path):
    cg = create_cgroup(CID, Limits(privileged=True), make_v1_tree(tmp_path))
    assert read(cg.paths["devices"] / "devices.allow") == "a"
    assert read(cg.paths["devices"] / "devices.deny") == ""


def test_v2_create_enables_controllers_and_writes_limits(tmp_path):
    mode = make_v2_tree(tmp_path)
    (tmp_path / "cgroup.subtree_control").write_text("cpuset cpu io pids\n")
    cg = create_cgroup(CID, Limits(memory=32 * MiB, memory_swap=-1, cpus=1.5, cpu_shares=1024, pids_limit=20), mode)
    d = tmp_path / "pyctr" / CID
    assert cg.paths == {"unified": d}
    assert read(tmp_path / "cgroup.subtree_control") == "+memory"  # only the missing one is enabled
    assert read(tmp_path / "pyctr" / "cgroup.subtree_control") == "+pids"  # one write per controller: last one
    assert read(d / "memory.max") == str(32 * MiB)
    assert read(d / "memory.swap.max") == "max"
    assert read(d / "cpu.max") == "150000 100000"
    assert read(d / "cpu.weight") == "39"
    assert read(d / "pids.max") == "20"
    assert not cg.devices_enforced
    assert cg.bind_mounts() == [(d, "")]


def test_v2_limit_on_a_missing_controller_fails_clearly(tmp_path):
    mode = make_v2_tree(tmp_path, controllers="cpu io")
    with pytest.raises(RuntimeFailure, match="memory cgroup controller is not available"):
        create_cgroup(CID, Limits(memory=32 * MiB), mode)


def test_v2_controller_the_parent_did_not_enable_fails_clearly(tmp_path):
    mode = make_v2_tree(tmp_path)
    (tmp_path / "pyctr" / CID / "cgroup.controllers").write_text("cpu io\n")  # subtree_control refused memory
    with pytest.raises(RuntimeFailure, match="memory controller could not be enabled"):
        create_cgroup(CID, Limits(memory=32 * MiB), mode)


def test_add_process_writes_every_unique_directory(tmp_path):
    cg = create_cgroup(CID, Limits(), make_v1_tree(tmp_path))
    cg.add_process(4242)
    for directory in cg.unique_dirs():
        assert read(directory / "cgroup.procs") == "4242"
    assert cg.pids() == [4242]
    assert len(cg.unique_dirs()) == 7  # cpu and cpuacct share a hierarchy


def test_bind_mounts_name_v1_hierarchies_like_the_host(tmp_path):
    cg = open_cgroup(CID, make_v1_tree(tmp_path))
    names = dict((name, path) for path, name in cg.bind_mounts())
    assert names["cpu,cpuacct"] == tmp_path / "cpu,cpuacct" / "pyctr" / CID
    assert set(names) == {"memory", "cpu,cpuacct", "pids", "devices", "freezer", "cpuset", "blkio"}


def test_open_lists_only_existing_directories(tmp_path):
    mode = make_v1_tree(tmp_path)
    cg = open_cgroup("someoneelse", mode)
    assert cg.paths == {} and not cg.exists()
    cg.destroy()  # nothing there: not an error
    assert open_cgroup(CID, mode).exists()


def test_oom_v1_counter_and_under_oom(tmp_path):
    (tmp_path / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
    assert not memory.oom_killed_v1(tmp_path)
    (tmp_path / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    assert memory.oom_killed_v1(tmp_path)
    (tmp_path / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 1\n")  # kernels before 4.13
    assert memory.oom_killed_v1(tmp_path)


def test_oom_v2_events(tmp_path):
    assert not memory.oom_killed_v2(tmp_path)  # no file: no OOM, no error
    (tmp_path / "memory.events").write_text("low 0\nhigh 0\nmax 12\noom 1\noom_kill 0\n")
    assert not memory.oom_killed_v2(tmp_path)
    (tmp_path / "memory.events").write_text("low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n")
    assert memory.oom_killed_v2(tmp_path)


def test_cgroup_oom_killed_uses_the_memory_directory(tmp_path):
    mode = make_v2_tree(tmp_path)
    cg = open_cgroup(CID, mode)
    (tmp_path / "pyctr" / CID / "memory.events").write_text("oom_kill 2\n")
    assert cg.oom_killed()


def test_stats_v1(tmp_path):
    mode = make_v1_tree(tmp_path)
    cg = open_cgroup(CID, mode)
    m, c, p = cg.paths["memory"], cg.paths["cpu"], cg.paths["pids"]
    (m / "memory.usage_in_bytes").write_text("1048576\n")
    (m / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    (m / "memory.stat").write_text("cache 0\ntotal_inactive_file 4096\n")
    (c / "cpuacct.usage").write_text("123456789\n")
    (c / "cpu.stat").write_text("nr_periods 10\nnr_throttled 4\nthrottled_time 5000\n")
    (p / "pids.current").write_text("3\n")
    (p / "pids.max").write_text("max\n")
    (cg.paths["blkio"] / "blkio.throttle.io_service_bytes_recursive").write_text(
        "8:0 Read 4096\n8:0 Write 512\n8:0 Total 4608\nTotal 4608\n")
    stats = cg.stats()
    assert stats["memory"]["usage"] == 1048576
    assert stats["memory"]["limit"] is None  # v1's "unlimited" is a huge number
    assert stats["memory"]["inactive_file"] == 4096
    assert stats["memory"]["usage_no_cache"] == 1048576 - 4096  # docker stats' MEM USAGE
    assert stats["cpu"]["usage_ns"] == 123456789
    assert stats["cpu"]["throttled_periods"] == 4
    assert stats["pids"] == {"current": 3, "limit": None, "refused_forks": None}
    assert stats["blkio"] == {"read_bytes": 4096, "write_bytes": 512}


def test_stats_v2(tmp_path):
    d = tmp_path
    (d / "memory.current").write_text("2097152\n")
    (d / "memory.max").write_text("33554432\n")
    (d / "cpu.stat").write_text("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 2\n"
                                "nr_throttled 1\nthrottled_usec 30\n")
    (d / "pids.current").write_text("1\n")
    (d / "pids.max").write_text("20\n")
    (d / "io.stat").write_text("8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n"
                               "8:16 rbytes=1 wbytes=2 rios=1 wios=1 dbytes=0 dios=0\n")
    assert memory.stats_v2(d)["usage"] == 2097152 and memory.stats_v2(d)["limit"] == 33554432
    assert cpu.stats_v2(d)["usage_ns"] == 1_500_000
    assert cpu.stats_v2(d)["throttled_ns"] == 30_000
    assert pids.stats(d)["limit"] == 20
    assert blkio.stats_v2(d) == {"read_bytes": 101, "write_bytes": 202}


def test_stats_of_a_gone_cgroup_are_empty_not_errors(tmp_path):
    cg = open_cgroup(CID, CgroupMode(version=2, unified=tmp_path))
    assert cg.stats() == {"memory": {}, "cpu": {}, "pids": {}, "blkio": {}}
    assert not cg.oom_killed()
    assert cg.pids() == []


def test_freezer_v1_freeze_and_thaw(tmp_path):
    (tmp_path / "freezer.state").write_text("THAWED\n")
    assert freezer.freeze_v1(tmp_path)  # this fake "kernel" reports FROZEN at once
    assert read(tmp_path / "freezer.state") == "FROZEN"
    freezer.thaw_v1(tmp_path)
    assert read(tmp_path / "freezer.state") == "THAWED"
    assert not freezer.freeze_v1(tmp_path / "missing")  # no freezer controller: report, do not fail


def test_freezer_v2_waits_for_cgroup_events(tmp_path):
    (tmp_path / "cgroup.freeze").write_text("0\n")
    (tmp_path / "cgroup.events").write_text("populated 1\nfrozen 0\n")
    assert not freezer.freeze_v2(tmp_path, timeout=0.05)  # never reported frozen: gives up
    (tmp_path / "cgroup.events").write_text("populated 1\nfrozen 1\n")
    assert freezer.freeze_v2(tmp_path)
    freezer.thaw_v2(tmp_path)
    assert read(tmp_path / "cgroup.freeze") == "0"


def test_cgroup_kill_v2_only_when_the_kernel_has_it(tmp_path):
    assert not freezer.kill_v2(tmp_path)
    (tmp_path / "cgroup.kill").write_text("")
    assert freezer.kill_v2(tmp_path)
    assert read(tmp_path / "cgroup.kill") == "1"


def test_kill_all_refuses_when_the_caller_is_inside(tmp_path):
    import os

    cg = open_cgroup(CID, make_v2_tree(tmp_path))
    (cg.paths["unified"] / "cgroup.procs").write_text(f"{os.getpid()}\n")
    with pytest.raises(RuntimeFailure, match="own process"):
        cg.kill_all(0)  # signal 0: harmless even if the guard were missing
