"""The mount plan: Docker's mounts, in order, with Docker's options (no root needed)."""

from __future__ import annotations

from pathlib import Path

from pyctr.runtime import syscalls as s
from pyctr.runtime.rootfs import (
    _host_cgroup_mounts,
    cgroup_v1_hierarchies,
    comounted_links,
    overlay_options,
    parse_options,
    plan_mounts,
)
from pyctr.runtime.spec import RunOptions, make_spec

CID = "f" * 64


def make(**flags):
    return make_spec({"config": {"Cmd": ["sh"]}}, RunOptions("busybox", **flags), CID, "n",
                     Path("/root/containers") / CID, [Path("/l/1")], volumes_root=Path("/root/volumes"))


def test_default_plan_is_dockers():
    plan = {m.destination: m for m in plan_mounts(make())}
    assert list(plan)[:7] == ["/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue", "/dev/shm"]
    assert plan["/proc"].type == "proc" and set(plan["/proc"].options) == {"nosuid", "noexec", "nodev"}
    assert plan["/dev"].options == ["nosuid", "strictatime", "mode=755", "size=65536k"]
    assert plan["/dev/pts"].options == ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]
    assert "ro" in plan["/sys"].options and "ro" in plan["/sys/fs/cgroup"].options
    assert set(plan["/dev/shm"].options) >= {"mode=1777", "size=67108864", "nosuid", "noexec", "nodev"}
    for name in ("hostname", "hosts", "resolv.conf"):
        assert plan[f"/etc/{name}"].source == f"/root/containers/{CID}/{name}"


def test_privileged_sys_is_writable():
    plan = {m.destination: m for m in plan_mounts(make(privileged=True))}
    assert "ro" not in plan["/sys"].options and "ro" not in plan["/sys/fs/cgroup"].options


def test_volumes_come_last_and_can_replace_etc_files():
    plan = plan_mounts(make(volumes=["/h/hosts:/etc/hosts:ro", "data:/data"]))
    destinations = [m.destination for m in plan]
    assert destinations.count("/etc/hosts") == 1
    assert destinations[-2:] == ["/etc/hosts", "/data"] or destinations[-2:] == ["/data", "/etc/hosts"]
    volume = next(m for m in plan if m.destination == "/data")
    assert volume.source == "/root/volumes/data/_data"


def test_parse_options():
    flags, propagation, data = parse_options(["nosuid", "noexec", "nodev", "mode=755", "ro"])
    assert flags == s.MS_NOSUID | s.MS_NOEXEC | s.MS_NODEV | s.MS_RDONLY and data == "mode=755"
    flags, propagation, data = parse_options(["rbind", "rprivate", "rw"])
    assert flags == s.MS_BIND | s.MS_REC and propagation == s.MS_PRIVATE | s.MS_REC and data == ""


def test_overlay_lowerdirs_top_first():
    assert overlay_options(["/base", "/top"], "/u", "/w") == "lowerdir=/top:/base,upperdir=/u,workdir=/w"


def test_cgroup_hierarchies_from_mountinfo():
    text = (
        "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
        "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"
        "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd\n"
        "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
    )
    assert _host_cgroup_mounts(text) == [("cpu,cpuacct", "cgroup", "cpu,cpuacct"),
                                         ("systemd", "cgroup", "xattr,name=systemd"), ("unified", "cgroup2", "")]


def test_binds_into_proc_and_sys_are_forbidden():
    from pyctr.runtime.rootfs import forbidden_bind_destination

    assert forbidden_bind_destination("/proc/sys/kernel/core_pattern")
    assert forbidden_bind_destination("//sys/fs/cgroup")
    assert forbidden_bind_destination("/proc")
    assert not forbidden_bind_destination("/proc/meminfo")  # lxcfs-style, allowed like runc
    assert not forbidden_bind_destination("/etc/hosts") and not forbidden_bind_destination("/processes")


def test_init_adds_docker_init_bind():
    plan = plan_mounts(make(init=True))
    assert plan[-1].destination == "/sbin/docker-init" and plan[-1].source == "/usr/bin/tini-static"


def test_cgroup_v1_layout_is_runcs():
    """runc mountCgroupV1: the v1 hierarchies only (a hybrid host's cgroup2 `unified` is not repeated) and a
    symlink per controller of a co-mounted hierarchy."""
    mountinfo = (
        "30 25 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755\n"
        "31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate\n"
        "32 30 0:28 / /sys/fs/cgroup/systemd rw,nosuid shared:11 - cgroup cgroup rw,xattr,name=systemd\n"
        "33 30 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:12 - cgroup cgroup rw,cpu,cpuacct\n"
        "34 30 0:30 / /sys/fs/cgroup/pids rw,nosuid shared:13 - cgroup cgroup rw,pids\n")
    v1 = cgroup_v1_hierarchies(_host_cgroup_mounts(mountinfo))
    assert v1 == [("systemd", "xattr,name=systemd"), ("cpu,cpuacct", "cpu,cpuacct"), ("pids", "pids")]
    assert comounted_links([name for name, _ in v1]) == [("cpu", "cpu,cpuacct"), ("cpuacct", "cpu,cpuacct")]
