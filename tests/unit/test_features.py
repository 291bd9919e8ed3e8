"""Kernel feature probes and cgroup mode detection, against faked files."""

import os
import subprocess
from pathlib import Path

from pyctr.runtime.cgroups import detect
from pyctr.runtime.features import probe_overlayfs

HYBRID = """\
25 1 0:22 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate
27 25 0:24 / /sys/fs/cgroup/systemd rw,nosuid shared:11 - cgroup cgroup rw,xattr,name=systemd
28 25 0:25 / /sys/fs/cgroup/memory rw,nosuid shared:12 - cgroup cgroup rw,memory
29 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:13 - cgroup cgroup rw,cpu,cpuacct
30 25 0:27 / /sys/fs/cgroup/pids rw,nosuid shared:14 - cgroup cgroup rw,pids
"""
PURE_V2 = "30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"


def test_hybrid_is_v1_with_unified():
    mode = detect(HYBRID)
    assert mode.version == 1
    assert mode.unified == Path("/sys/fs/cgroup/unified")
    assert mode.v1_mounts["memory"] == Path("/sys/fs/cgroup/memory")
    assert mode.v1_mounts["cpuacct"] == Path("/sys/fs/cgroup/cpu,cpuacct")
    assert "name=systemd" not in mode.controllers and "xattr" not in mode.controllers


def test_pure_v2_reads_controllers():
    mode = detect(PURE_V2, read_controllers=lambda p: "cpuset cpu io memory pids\n")
    assert mode.version == 2
    assert mode.unified == Path("/sys/fs/cgroup")
    assert mode.controllers == ("cpuset", "cpu", "io", "memory", "pids")


def _filesystem_type(path: Path) -> str:
    """The kernel's name for the filesystem at `path` (statfs, via coreutils: not the mountinfo detect() reads)."""
    return subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True,
                          check=True).stdout.strip()


def _v1_hierarchies() -> list[set[str]]:
    """This process's v1 hierarchies from /proc/self/cgroup ("id:controllers:path"; id 0 is the v2 one)."""
    lines = Path("/proc/self/cgroup").read_text().splitlines()
    hierarchies = [{c for c in line.split(":", 2)[1].split(",") if c and not c.startswith("name=")}
                   for line in lines if not line.startswith("0:")]
    return [h for h in hierarchies if h]


def test_this_machine_is_detected_as_the_kernel_reports_it():
    """detect() reads mountinfo; the kernel's other answers (/proc/self/cgroup, statfs) must agree with it."""
    mode = detect()
    hierarchies = _v1_hierarchies()
    if hierarchies:
        assert mode.version == 1
        assert set(mode.v1_mounts) == set().union(*hierarchies)
        for controllers in hierarchies:  # controllers of one hierarchy share one mount, a cgroup v1 filesystem
            mounts = {mode.v1_mounts[c] for c in controllers}
            assert len(mounts) == 1, (controllers, mounts)
            mount = mounts.pop()
            assert os.path.ismount(mount) and _filesystem_type(mount) == "cgroupfs", mount
    else:
        assert mode.version == 2
        assert mode.v2_controllers == tuple((mode.unified / "cgroup.controllers").read_text().split())
    if mode.unified is not None:
        assert os.path.ismount(mode.unified) and _filesystem_type(mode.unified) == "cgroup2fs", mode.unified


def test_overlay_probe(tmp_path):
    (tmp_path / "filesystems").write_text("nodev\tsysfs\nnodev\toverlay\n")
    assert probe_overlayfs(tmp_path, modules=tmp_path).present
    (tmp_path / "filesystems").write_text("nodev\tsysfs\n")
    assert not probe_overlayfs(tmp_path, modules=tmp_path).present


def test_device_cgroup_probe_v1_and_v2():
    from pyctr.runtime.features import probe_device_cgroup

    assert probe_device_cgroup(HYBRID.replace("rw,pids", "rw,devices")).present
    v2 = probe_device_cgroup(PURE_V2)
    assert not v2.present and not v2.required and "MKNOD" in v2.detail.upper()
