"""Kernel feature probes and cgroup mode detection, against faked files."""

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


def test_this_machine_detects_something():
    assert detect().version in (1, 2)


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
