"""The kernel flags of run/create (p15-ns): Docker 20.10's parsing, checks and words, the spec and HostConfig they
give, the cgroup files they write, and the mounts and device nodes they plan. No root needed."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pyctr.api.documents import create_options
from pyctr.errors import PyctrError, RuntimeFailure, UsageError
from pyctr.runtime import kernel_flags as kf
from pyctr.runtime.cgroups import blkio, cpuset, memory
from pyctr.runtime.cgroups.limits import Limits
from pyctr.runtime.rootfs import own_cgroup_sources, plan_mounts
from pyctr.runtime.spec import RunOptions, make_spec
from tests.unit.test_run_options import parse

CID = "0123456789ab" + "c" * 52
BUNDLE = Path("/var/lib/pyctr/containers") / CID
ALL = kf.HostSupport(cpus="0-3")


def spec(network: str = "bridge", cgroup_version: int = 2, support: kf.HostSupport = ALL, **flags):
    options = RunOptions(image="busybox", command=["true"], network=network, **flags)
    choices = kf.decide(options, network, cgroup_version, None, support)
    return make_spec({}, options, CID, "n", BUNDLE, [], kernel=choices, host_cpus=4), options


# ------------------------------------------------------------------------------------------------ --device

@pytest.mark.parametrize(("text", "expected"), [
    ("/dev/sda", ("/dev/sda", "/dev/sda", "rwm")),
    ("/dev/sda:/dev/xvdc", ("/dev/sda", "/dev/xvdc", "rwm")),
    ("/dev/sda:r", ("/dev/sda", "/dev/sda", "r")),
    ("/dev/sda:/dev/xvdc:rw", ("/dev/sda", "/dev/xvdc", "rw")),
    ("/dev/sda:/dev/x/../xvdc:m", ("/dev/sda", "/dev/xvdc", "m")),
])
def test_device_forms(text, expected):
    d = kf.parse_device(text)
    assert (d.path_on_host, d.path_in_container, d.cgroup_permissions) == expected


@pytest.mark.parametrize(("text", "reason"), [
    ("", "bad format for path: "),
    (":/dev/x", "bad format for path: :/dev/x"),
    ("/dev/a:/dev/b:rw:x", "bad format for path: /dev/a:/dev/b:rw:x"),
    ("/dev/a:/dev/b:rwx", "bad mode specified: rwx"),
    ("/dev/a:/dev/b:rr", "bad mode specified: rr"),
    ("/dev/a:dev/b", "dev/b is not an absolute path"),
    ("sda", "sda is not an absolute path"),
])
def test_device_refused_as_docker_cli(text, reason):
    with pytest.raises(UsageError) as e:
        kf.parse_device(text)
    assert e.value.message == f'invalid argument "{text}" for "--device" flag: {reason}'
    assert e.value.exit_code == 125


def test_resolve_devices_finds_the_host_node_and_docker_errors(tmp_path):
    [null] = kf.resolve_devices([kf.DeviceMapping("/dev/null", "/dev/mynull", "r")])
    st = os.stat("/dev/null")
    assert (null.path, null.type, null.major, null.minor, null.permissions) == ("/dev/mynull", "c", 1, 3, "r")
    assert null.mode == stat.S_IMODE(st.st_mode)
    with pytest.raises(PyctrError, match='adding custom device "/dev/nope": no such file or directory$'):
        kf.resolve_devices([kf.DeviceMapping("/dev/nope", "/dev/nope")])
    (tmp_path / "file").write_text("x")
    with pytest.raises(PyctrError, match="not a device node$"):
        kf.resolve_devices([kf.DeviceMapping(str(tmp_path / "file"), "/dev/f")])
    with pytest.raises(PyctrError, match="not a device node$"):  # a directory holding no device
        kf.resolve_devices([kf.DeviceMapping(str(tmp_path), "/dev/d")])


def test_a_symlinked_device_is_the_node_it_names(tmp_path):
    (tmp_path / "link").symlink_to("/dev/zero")
    [node] = kf.resolve_devices([kf.DeviceMapping(str(tmp_path / "link"), "/dev/z")])
    assert (node.path, node.major, node.minor) == ("/dev/z", 1, 5)


# ------------------------------------------------------------------------------------------ namespace modes

@pytest.mark.parametrize("value", ["", "private", "shareable", "host", "none", "container:db"])
def test_ipc_modes_docker_accepts(value):
    assert kf.parse_ipc(value) == value


@pytest.mark.parametrize(("parser", "value", "message"), [
    (kf.parse_ipc, "container:", "--ipc: invalid IPC mode"),
    (kf.parse_ipc, "bogus", "--ipc: invalid IPC mode"),
    (kf.parse_pid, "private", "--pid: invalid PID mode"),
    (kf.parse_pid, "container:", "--pid: invalid PID mode"),
    (kf.parse_uts, "private", "--uts: invalid UTS mode"),
    (kf.parse_cgroupns, "shared", "--cgroupns: invalid CGROUP mode"),
    (kf.parse_userns, "private", "--userns: invalid USER mode"),
    (kf.parse_userns, "keep-id", "--userns: invalid USER mode"),
])
def test_modes_refused_as_docker_cli(parser, value, message):
    with pytest.raises(UsageError) as e:
        parser(value)
    assert e.value.message == message and e.value.exit_code == 125


def test_namespaces_kept_or_joined():
    assert kf.namespaces_for("bridge", "", "", "", "private") == ["pid", "mount", "uts", "ipc", "cgroup", "net"]
    assert kf.namespaces_for("host", "host", "host", "host", "host") == ["mount"]
    assert kf.namespaces_for("bridge", "container:x", "container:y", "", "host") == ["mount", "uts", "net"]
    assert kf.namespaces_for("bridge", "none", "", "", "host") == ["pid", "mount", "uts", "ipc", "net"]


def test_cgroupns_default_follows_the_cgroup_version():
    v1, _ = spec(cgroup_version=1)
    v2, _ = spec(cgroup_version=2)
    assert "cgroup" not in v1.namespaces and "cgroup" in v2.namespaces
    forced, _ = spec(cgroup_version=1, cgroupns="private")
    assert "cgroup" in forced.namespaces


def test_hostname_conflicts_with_host_uts():
    with pytest.raises(PyctrError, match="^conflicting options: hostname and the UTS mode$") as e:
        spec(uts="host", hostname="box")
    assert not isinstance(e.value, UsageError)  # dockerd's: "Error response from daemon: ..."
    s, _ = spec(uts="host")
    assert "uts" not in s.namespaces


# ------------------------------------------------------------------------------------------------ --sysctl

def test_sysctls_docker_allows():
    assert kf.parse_sysctls(["net.ipv4.ip_forward=1", "kernel.shmmax=1000", "fs.mqueue.msg_max=20",
                             "kernel.sem=1 2 3 4", "net.core.somaxconn=a=b"]) == {
        "net.ipv4.ip_forward": "1", "kernel.shmmax": "1000", "fs.mqueue.msg_max": "20", "kernel.sem": "1 2 3 4",
        "net.core.somaxconn": "a=b"}


@pytest.mark.parametrize("item", ["kernel.hostname=x", "vm.swappiness=1", "net.ipv4.ip_forward", "kernel.shm=1"])
def test_sysctls_refused_as_docker_cli(item):
    with pytest.raises(UsageError) as e:
        kf.parse_sysctls([item])
    assert e.value.message == f"invalid argument \"{item}\" for \"--sysctl\" flag: sysctl '{item}' is not whitelisted"


def test_sysctls_need_their_own_namespace_as_runc_says():
    kf.check_sysctls({"net.ipv4.ip_forward": "1", "kernel.msgmax": "9"}, ["ipc", "net"])
    with pytest.raises(RuntimeFailure, match='^sysctl "net.core.somaxconn" is not allowed in the hosts network'):
        kf.check_sysctls({"net.core.somaxconn": "1"}, ["ipc"])
    with pytest.raises(RuntimeFailure, match='^sysctl "fs.mqueue.msg_max" is not allowed in the hosts ipc'):
        kf.check_sysctls({"fs.mqueue.msg_max": "1"}, ["net"])


def test_sysctl_paths_never_leave_proc_sys():
    assert kf.sysctl_path("net.ipv4.conf.all.forwarding") == "net/ipv4/conf/all/forwarding"
    for bad in ("net..x", "net/x", "net.\0"):
        with pytest.raises(RuntimeFailure):
            kf.sysctl_path(bad)


# ------------------------------------------------------------------------------------- --shm-size and /dev/shm

def test_shm_size_default_and_parsed():
    assert kf.shm_size(None) == kf.shm_size("0") == 64 * 1024 * 1024
    assert kf.shm_size("128m") == 128 * 1024 * 1024
    with pytest.raises(UsageError, match='^invalid argument "-1" for "--shm-size" flag: invalid size'):
        kf.shm_size("-1")


def shm(s):
    return [m for m in plan_mounts(s) if m.destination == "/dev/shm"]


def test_dev_shm_by_ipc_mode():
    [own], _ = shm(spec(shm_size="1g")[0]), None
    assert own.type == "tmpfs" and "size=1073741824" in own.options and "mode=1777" in own.options
    assert shm(spec(ipc="none")[0]) == []
    s, _ = spec(ipc="host")
    s.shm_source = "/dev/shm"  # what the launcher fills in at start
    [bound] = shm(s)
    assert (bound.type, bound.source) == ("bind", "/dev/shm")


# ------------------------------------------------------------------------------ cgroup flags (dockerd's checks)

def test_resources_kept_when_supported():
    r = kf.decide_resources("64m", True, "0,2-3", 500, 128 * 1024 * 1024, ALL)
    assert (r.memory_reservation, r.oom_kill_disable, r.cpuset_cpus, r.blkio_weight, r.warnings) == (
        64 * 1024 * 1024, True, "0,2-3", 500, ())


def test_resources_dropped_with_dockerds_warnings():
    none = kf.HostSupport(memory_reservation=False, oom_kill_disable=False, blkio_weight=False, cpus="0-1")
    r = kf.decide_resources("64m", True, None, 5, None, none)  # 5: out of range, but dropped first (dockerd)
    assert (r.memory_reservation, r.oom_kill_disable, r.blkio_weight) == (0, None, 0)
    assert r.warnings == (
        "Your kernel does not support memory soft limit capabilities or the cgroup is not mounted. Limitation "
        "discarded.", "Your kernel does not support OomKillDisable. OomKillDisable discarded.",
        "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.")
    assert kf.decide_resources(None, False, None, None, None, none).warnings == ()


@pytest.mark.parametrize(("args", "message"), [
    (("1m", False, None, None, None), "Minimum memory reservation allowed is 6MB"),
    (("64m", False, None, None, 32 * 1024 * 1024),
     "Minimum memory limit can not be less than memory reservation limit, see usage"),
    ((None, False, "4", None, None), "Requested CPUs are not available - requested 4, available: 0-3"),
    ((None, False, "1-x", None, None), "Invalid value 1-x for cpuset cpus: invalid format: 1-x"),
    ((None, False, "3-1", None, None), "Invalid value 3-1 for cpuset cpus: invalid format: 3-1"),
    ((None, False, None, 5, None), "Range of blkio weight is from 10 to 1000"),
    ((None, False, None, 1001, None), "Range of blkio weight is from 10 to 1000"),
])
def test_resources_refused_as_dockerd(args, message):
    with pytest.raises(PyctrError) as e:
        kf.decide_resources(*args, ALL)
    assert e.value.message == message and not isinstance(e.value, UsageError)


def test_blkio_weight_is_a_uint16_flag():
    with pytest.raises(UsageError, match='"--blkio-weight" flag: strconv.ParseUint: parsing "70000": value out'):
        kf.decide_resources(None, False, None, 70000, None, ALL)
    assert kf.decide_resources(None, False, None, 0, None, ALL).blkio_weight == 0


def test_cgroup_files_of_the_flags():
    limits = Limits(memory_reservation=64 << 20, oom_kill_disable=True, cpuset_cpus="1", blkio_weight=300)
    assert memory.plan_v1(limits) == {"memory.soft_limit_in_bytes": str(64 << 20), "memory.oom_control": "1"}
    assert memory.plan_v2(limits) == {"memory.low": str(64 << 20)}
    both = Limits(memory=128 << 20, memory_reservation=64 << 20)
    assert list(memory.plan_v1(both)) == ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes",
                                          "memory.soft_limit_in_bytes"]
    assert cpuset.plan_cpus(limits) == {"cpuset.cpus": "1"}
    assert blkio.plan_v1(limits) == {"blkio.weight": "300"}
    assert blkio.plan_v2(limits, bfq=True) == {"io.bfq.weight": "300"}
    assert blkio.plan_v2(Limits(blkio_weight=1000), bfq=False) == {"io.weight": "default 10000"}
    assert blkio.plan_v2(Limits(blkio_weight=10), bfq=False) == {"io.weight": "default 1"}
    assert memory.plan_v1(Limits()) == {} and cpuset.plan_cpus(Limits()) == {} and blkio.plan_v1(Limits()) == {}


# ------------------------------------------------------------------------------------------- HostConfig

def test_host_config_fields_of_a_plain_container():
    s, options = spec(cgroup_version=1, support=kf.HostSupport(cpus="0-1"))
    assert kf.host_config_fields(options, s) == {
        "IpcMode": "private", "PidMode": "", "UTSMode": "", "UsernsMode": "", "CgroupnsMode": "host",
        "ShmSize": 67108864, "Sysctls": None, "Devices": [], "MemoryReservation": 0, "OomKillDisable": False,
        "CpusetCpus": "", "BlkioWeight": 0}


def test_host_config_fields_as_given():
    s, options = spec(devices=["/dev/null:/dev/n:r"], ipc="shareable", pid="host", uts="host", cgroupns="private",
                      userns="host", sysctls=["net.ipv4.ip_forward=1"], shm_size="1g", oom_kill_disable=True,
                      memory_reservation="10m", cpuset_cpus="1", blkio_weight=100)
    fields = kf.host_config_fields(options, s)
    assert fields == {
        "IpcMode": "shareable", "PidMode": "host", "UTSMode": "host", "UsernsMode": "host",
        "CgroupnsMode": "private", "ShmSize": 1 << 30, "Sysctls": {"net.ipv4.ip_forward": "1"},
        "Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/n", "CgroupPermissions": "r"}],
        "MemoryReservation": 10 << 20, "OomKillDisable": True, "CpusetCpus": "1", "BlkioWeight": 100}
    assert s.namespaces == ["mount", "ipc", "cgroup", "net"]


def test_cli_flags_reach_run_options():
    o = parse("--device", "/dev/null", "--device", "/dev/zero:/dev/z", "--ipc", "host", "--pid", "container:a",
              "--uts", "host", "--cgroupns", "host", "--userns", "host", "--sysctl", "net.core.somaxconn=9",
              "--shm-size", "1g", "--oom-kill-disable", "--memory-reservation", "10m", "--cpuset-cpus", "0",
              "--blkio-weight", "300", "busybox")
    assert (o.devices, o.ipc, o.pid, o.uts, o.cgroupns, o.userns) == (
        ["/dev/null", "/dev/zero:/dev/z"], "host", "container:a", "host", "host", "host")
    assert (o.sysctls, o.shm_size, o.oom_kill_disable, o.memory_reservation, o.cpuset_cpus, o.blkio_weight) == (
        ["net.core.somaxconn=9"], "1g", True, "10m", "0", 300)


def test_api_host_config_maps_onto_the_same_options():
    host = {"Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/n", "CgroupPermissions": "rw"}],
            "IpcMode": "shareable", "PidMode": "host", "UTSMode": "host", "CgroupnsMode": "private",
            "UsernsMode": "host", "Sysctls": {"net.ipv4.ip_forward": "1"}, "ShmSize": 1 << 30,
            "OomKillDisable": True, "MemoryReservation": 10 << 20, "CpusetCpus": "1", "BlkioWeight": 100}
    o = create_options({"Image": "busybox", "HostConfig": host}, None)
    s, cli = spec(devices=o.devices, ipc=o.ipc, pid=o.pid, uts=o.uts, cgroupns=o.cgroupns, userns=o.userns,
                  sysctls=o.sysctls, shm_size=o.shm_size, oom_kill_disable=o.oom_kill_disable,
                  memory_reservation=o.memory_reservation, cpuset_cpus=o.cpuset_cpus, blkio_weight=o.blkio_weight)
    assert kf.host_config_fields(cli, s) == {**host, "Devices": host["Devices"]}
    plain = create_options({"Image": "busybox", "HostConfig": {}}, None)
    assert (plain.ipc, plain.shm_size, plain.blkio_weight, plain.devices) == ("", None, None, [])


# --------------------------------------------------------------------------------------- --cgroupns host

V1_MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
V1_CGROUP = f"""\
4:memory:/pyctr/{CID}
3:cpu,cpuacct:/pyctr/{CID}
1:name=systemd:/user.slice
0::/
"""


def test_own_cgroup_sources_v1():
    assert own_cgroup_sources(V1_MOUNTINFO, V1_CGROUP) == [
        ("cpu,cpuacct", f"/sys/fs/cgroup/cpu,cpuacct/pyctr/{CID}"), ("memory", f"/sys/fs/cgroup/memory/pyctr/{CID}"),
        ("systemd", "/sys/fs/cgroup/systemd/user.slice")]


def test_own_cgroup_sources_v2():
    mountinfo = "30 23 0:27 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
    assert own_cgroup_sources(mountinfo, f"0::/pyctr/{CID}\n") == [("", f"/sys/fs/cgroup/pyctr/{CID}")]


def test_exec_joins_the_namespaces_a_container_shares_with_another():
    from pyctr.runtime.exec import namespaces_to_join, shared_namespaces

    s, _ = spec(pid="container:a", ipc="container:a")
    assert shared_namespaces(s) == ["pid", "ipc"]
    assert {ns.name for ns in namespaces_to_join(s.namespaces + shared_namespaces(s))} >= {"pid", "ipc", "uts"}
    host, _ = spec(pid="host", ipc="host")
    assert shared_namespaces(host) == []  # the host's: an exec stays in them, as the container does


@pytest.mark.parametrize(("text", "expected"), [("300", 300), ("0", 0), ("0x10", 16), ("010", 8), ("65535", 65535)])
def test_uint16_flag_as_pflag(text, expected):
    assert kf.parse_uint16_flag("--blkio-weight", text) == expected


@pytest.mark.parametrize(("text", "reason"), [("abc", "invalid syntax"), ("-1", "invalid syntax"),
                                              ("+5", "invalid syntax"), ("65536", "value out of range")])
def test_uint16_flag_refused_as_pflag(text, reason):
    with pytest.raises(UsageError) as e:
        kf.parse_uint16_flag("--blkio-weight", text)
    assert e.value.message == f'invalid argument "{text}" for "--blkio-weight" flag: strconv.ParseUint: ' \
                              f'parsing "{text}": {reason}'


def test_cpu_list_is_the_kernels_form():
    assert kf.cpu_list({0, 1, 2, 5, 7, 8}) == "0-2,5,7-8" and kf.cpu_list({3}) == "3" and kf.cpu_list(set()) == ""
    assert kf.parse_uint_list(kf.cpu_list({0, 1, 2, 5})) == {0, 1, 2, 5}


@pytest.mark.parametrize("text", [" 0", "0 ", "1_0", "0- 1", "\u0661", ""])
def test_cpuset_numbers_are_gos_atoi_syntax(text):
    """Python's int() takes blanks, `_` and non-ASCII digits; moby's ParseUintList (strconv.Atoi) does not."""
    with pytest.raises(kf.PyctrError, match="Invalid value .* for cpuset cpus: invalid format"):
        kf.check_cpuset(text if text else ",", "0-1")


class ProcfsKernel:
    """mknod as procfs answers it: a name under /proc that is not a pid is ENOENT, not a node."""

    def mknod(self, name: str, mode: int, device: int, dir_fd: int) -> None:
        raise FileNotFoundError(2, "No such file or directory")


def test_a_device_node_that_cannot_be_made_is_runcs_error(tmp_path):
    from pyctr.runtime.rootfs import create_user_devices

    (tmp_path / "proc").mkdir()
    node = {"path": "/proc/foo", "type": "c", "major": 1, "minor": 3, "mode": 0o666, "uid": 0, "gid": 0}
    root_fd = os.open(tmp_path, os.O_PATH | os.O_DIRECTORY)
    try:
        with pytest.raises(RuntimeFailure) as e:
            create_user_devices(root_fd, [node], ProcfsKernel())
    finally:
        os.close(root_fd)
    assert e.value.message == "error creating device nodes: mknod /proc/foo: no such file or directory"
