"""The run/create flags that touch the kernel, for real (p15-ns): each one is seen taking effect inside a
container (namespaces compared with the host's, /dev/shm's size, a sysctl read back, cgroup files, a device
opened), and refused with Docker's words and exit code 125 where Docker refuses it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.integration.helpers import lifecycle_runner, mounts_under, removed_after

QUIET = ("--network", "none")


@pytest.fixture(scope="module")
def lc(pyctr_config, tmp_path_factory):
    yield from lifecycle_runner(pyctr_config, tmp_path_factory, "kernel-flags")


@pytest.fixture
def cleanup(lc):
    yield from removed_after(lc)


def run(lc, *args: str) -> str:
    return lc("run", "--rm", *args, check=True).stdout.strip()


def refused(lc, *args: str) -> str:
    """stderr of a run Docker refuses: exit 125 and nothing left running."""
    proc = lc("run", "--rm", *args)
    assert proc.returncode == 125, proc.stderr
    return proc.stderr


def inspect(lc, name: str) -> dict:
    return json.loads(lc("inspect", name, check=True).stdout)[0]


def host_ns(kind: str) -> str:
    return os.readlink(f"/proc/self/ns/{kind}")


def v1_cgroup_file(container_id: str, controller: str, name: str) -> Path:
    return Path("/sys/fs/cgroup") / controller / "pyctr" / container_id / name


V1 = not Path("/sys/fs/cgroup/cgroup.controllers").exists()


def test_pid_and_uts_host_share_the_hosts_namespaces(lc):
    out = run(lc, *QUIET, "--pid", "host", "--uts", "host", "busybox", "sh", "-c",
              "readlink /proc/self/ns/pid; readlink /proc/self/ns/uts; hostname")
    assert out.splitlines() == [host_ns("pid"), host_ns("uts"), os.uname().nodename]
    own = run(lc, *QUIET, "busybox", "sh", "-c", "readlink /proc/self/ns/pid; readlink /proc/self/ns/uts").split()
    assert own[0] != host_ns("pid") and own[1] != host_ns("uts")
    assert "conflicting options: hostname and the UTS mode" in refused(lc, "--uts", "host", "-h", "x", "busybox")
    assert "--pid: invalid PID mode" in refused(lc, "--pid", "private", "busybox")


def test_pid_container_joins_the_donors_namespace(lc, cleanup):
    cleanup.append("kf-pid")
    lc("run", "-d", *QUIET, "--name", "kf-pid", "busybox", "sleep", "30", check=True)
    donor = run(lc, "--pid", "container:kf-pid", *QUIET, "busybox", "sh", "-c", "readlink /proc/self/ns/pid; ps")
    pid = inspect(lc, "kf-pid")["State"]["Pid"]
    assert donor.splitlines()[0] == os.readlink(f"/proc/{pid}/ns/pid")
    assert "sleep 30" in donor  # the donor's process, seen from the joiner
    assert "cannot join PID of a non running container: kf-nope" in refused(lc, "--pid", "container:kf-nope",
                                                                              "busybox")


def test_ipc_modes_and_dev_shm(lc, cleanup):
    mounts = run(lc, *QUIET, "busybox", "grep", " /dev/shm ", "/proc/mounts")
    assert "size=65536k" in mounts  # Docker's default 64m
    assert "size=1048576k" in run(lc, *QUIET, "--shm-size", "1g", "busybox", "grep", " /dev/shm ", "/proc/mounts")
    assert run(lc, *QUIET, "--ipc", "none", "busybox", "sh", "-c", "grep -c ' /dev/shm ' /proc/mounts; true") == "0"
    assert run(lc, *QUIET, "--ipc", "host", "busybox", "readlink", "/proc/self/ns/ipc") == host_ns("ipc")
    assert run(lc, *QUIET, "busybox", "readlink", "/proc/self/ns/ipc") != host_ns("ipc")
    inspected = inspect(lc, lc("create", *QUIET, "--shm-size", "1g", "busybox", check=True).stdout.strip())
    cleanup.append(inspected["Id"])
    assert (inspected["HostConfig"]["IpcMode"], inspected["HostConfig"]["ShmSize"]) == ("private", 1 << 30)
    assert "--ipc: invalid IPC mode" in refused(lc, "--ipc", "bogus", "busybox")


def test_ipc_container_shares_a_shareable_donors_shm_and_namespace(lc, cleanup):
    cleanup += ["kf-ipc", "kf-private"]
    lc("run", "-d", *QUIET, "--ipc", "shareable", "--name", "kf-ipc", "busybox", "sleep", "30", check=True)
    lc("exec", "kf-ipc", "sh", "-c", "echo shared > /dev/shm/note", check=True)
    out = run(lc, *QUIET, "--ipc", "container:kf-ipc", "busybox", "sh", "-c", "cat /dev/shm/note; "
              "readlink /proc/self/ns/ipc").splitlines()
    pid = inspect(lc, "kf-ipc")["State"]["Pid"]
    assert out == ["shared", os.readlink(f"/proc/{pid}/ns/ipc")]
    lc("run", "-d", *QUIET, "--name", "kf-private", "busybox", "sleep", "30", check=True)
    assert "non-shareable IPC" in refused(lc, *QUIET, "--ipc", "container:kf-private", "busybox")
    lc("rm", "-f", "kf-ipc", check=True)
    assert mounts_under(lc.root) == []  # the shareable tmpfs went with its container


def test_cgroupns(lc):
    default = "host" if V1 else "private"  # dockerd 20.10's default-cgroupns-mode
    ns = run(lc, *QUIET, "busybox", "readlink", "/proc/self/ns/cgroup")
    assert (ns == host_ns("cgroup")) == (default == "host")
    assert run(lc, *QUIET, "--cgroupns", "private", "busybox", "readlink", "/proc/self/ns/cgroup") != host_ns("cgroup")
    assert run(lc, *QUIET, "--cgroupns", "host", "busybox", "readlink", "/proc/self/ns/cgroup") == host_ns("cgroup")
    # without its own cgroup namespace the container still sees its own cgroup's files as /sys/fs/cgroup
    limit = "memory/memory.limit_in_bytes" if V1 else "memory.max"
    assert run(lc, *QUIET, "--cgroupns", "host", "-m", "64m", "busybox", "cat", f"/sys/fs/cgroup/{limit}") == \
        str(64 << 20)
    assert "--cgroupns: invalid CGROUP mode" in refused(lc, "--cgroupns", "shared", "busybox")


def test_userns_host_only(lc):
    assert run(lc, *QUIET, "--userns", "host", "busybox", "echo", "ok") == "ok"
    assert "--userns: invalid USER mode" in refused(lc, "--userns", "private", "busybox")


def test_sysctls_are_set_in_the_containers_namespaces(lc):
    before = Path("/proc/sys/net/ipv4/ip_forward").read_text(), Path("/proc/sys/kernel/shmmax").read_text()
    out = run(lc, *QUIET, "--sysctl", "net.ipv4.ip_forward=1", "--sysctl", "kernel.shmmax=123456789",
              "--sysctl", "net.ipv4.conf.lo.forwarding=1", "busybox", "cat", "/proc/sys/net/ipv4/ip_forward",
              "/proc/sys/kernel/shmmax", "/proc/sys/net/ipv4/conf/lo/forwarding")
    assert out.splitlines() == ["1", "123456789", "1"]
    assert (Path("/proc/sys/net/ipv4/ip_forward").read_text(), Path("/proc/sys/kernel/shmmax").read_text()) == before
    assert "sysctl 'vm.swappiness=1' is not whitelisted" in refused(lc, "--sysctl", "vm.swappiness=1", "busybox")
    assert 'sysctl "net.core.somaxconn" is not allowed in the hosts network namespace' in refused(
        lc, "--network", "host", "--sysctl", "net.core.somaxconn=1", "busybox", "true")


def cgroup_file(container_id: str, controller: str, v1_name: str, v2_name: str) -> Path:
    if V1:
        return v1_cgroup_file(container_id, controller, v1_name)
    return Path("/sys/fs/cgroup/pyctr") / container_id / v2_name


def test_memory_cpuset_and_oom_flags_in_the_cgroup(lc, cleanup):
    cleanup.append("kf-cg")
    proc = lc("run", "-d", *QUIET, "--name", "kf-cg", "-m", "64m", "--memory-reservation", "32m",
              "--oom-kill-disable", "--cpuset-cpus", "1", "busybox", "sleep", "30", check=True)
    cid = proc.stdout.strip()
    soft = cgroup_file(cid, "memory", "memory.soft_limit_in_bytes", "memory.low")
    assert soft.read_text().strip() == str(32 << 20)
    assert cgroup_file(cid, "cpuset", "cpuset.cpus", "cpuset.cpus").read_text().strip() == "1"
    assert lc("exec", "kf-cg", "grep", "Cpus_allowed_list", "/proc/self/status", check=True).stdout.split()[-1] == "1"
    host = inspect(lc, "kf-cg")["HostConfig"]
    assert (host["MemoryReservation"], host["CpusetCpus"]) == (32 << 20, "1")
    if V1:
        assert "oom_kill_disable 1" in v1_cgroup_file(cid, "memory", "memory.oom_control").read_text()
        assert host["OomKillDisable"] is True
    else:  # no such switch in cgroup v2: dockerd drops it (inspect shows null)
        assert host["OomKillDisable"] is None
    assert "Requested CPUs are not available - requested 64" in refused(lc, "--cpuset-cpus", "64", "busybox")
    assert "Minimum memory reservation allowed is 6MB" in refused(lc, "--memory-reservation", "1m", "busybox")


def test_oom_kill_disable_without_memory_warns_as_docker_cli(lc):
    proc = lc("run", "--rm", *QUIET, "--oom-kill-disable", "busybox", "true", check=True)
    assert "WARNING: Disabling the OOM killer on containers without setting a '-m/--memory' limit may be " \
           "dangerous." in proc.stderr


def test_blkio_weight(lc, cleanup):
    cleanup.append("kf-blkio")
    proc = lc("create", *QUIET, "--name", "kf-blkio", "--blkio-weight", "300", "busybox", check=True)
    supported = (Path("/sys/fs/cgroup/blkio/blkio.weight").exists() if V1
                 else "io" in Path("/sys/fs/cgroup/cgroup.controllers").read_text().split())
    weight = inspect(lc, "kf-blkio")["HostConfig"]["BlkioWeight"]
    if supported:
        assert weight == 300 and "WARNING" not in proc.stderr
        assert "Range of blkio weight is from 10 to 1000" in refused(lc, "--blkio-weight", "5", "busybox")
    else:  # dockerd drops it with its warning on a kernel without the weight file (BFQ's has another name)
        assert weight == 0
        assert "WARNING: Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight " \
               "discarded." in proc.stderr


def test_device_node_and_its_cgroup_rule(lc, cleanup):
    loop = os.stat("/dev/loop0")
    cleanup.append("kf-dev")
    lc("run", "-d", *QUIET, "--name", "kf-dev", "--device", "/dev/loop0:/dev/xloop:r", "busybox", "sleep", "30",
       check=True)
    listing = lc("exec", "kf-dev", "ls", "-l", "/dev/xloop", check=True).stdout
    assert listing.startswith("b") and f"{os.major(loop.st_rdev)}, {os.minor(loop.st_rdev):>3}" in listing
    lc("exec", "kf-dev", "sh", "-c", ": < /dev/xloop", check=True)  # readable: the rule allows it
    cid = inspect(lc, "kf-dev")["Id"]
    if V1:
        rules = v1_cgroup_file(cid, "devices", "devices.list").read_text().splitlines()
        assert f"b {os.major(loop.st_rdev)}:{os.minor(loop.st_rdev)} r" in rules
        # the same node made by hand in a container without --device cannot be opened: the rule is what allows it
        denied = lc("run", "--rm", *QUIET, "busybox", "sh", "-c",
                    f"mknod /tmp/b b {os.major(loop.st_rdev)} {os.minor(loop.st_rdev)} && : < /tmp/b")
        assert denied.returncode != 0 and "not permitted" in denied.stderr
    assert inspect(lc, "kf-dev")["HostConfig"]["Devices"] == [
        {"PathOnHost": "/dev/loop0", "PathInContainer": "/dev/xloop", "CgroupPermissions": "r"}]
    assert 'error gathering device information while adding custom device "/dev/kf-nope": no such file or ' \
           "directory" in refused(lc, *QUIET, "--device", "/dev/kf-nope", "busybox")
    assert 'for "--device" flag: bad mode specified: rwx' in refused(lc, "--device", "/dev/a:/dev/b:rwx", "busybox")


def test_a_device_target_under_proc_is_runcs_error(lc):
    proc = lc("run", "--rm", *QUIET, "--device", "/dev/null:/proc/kf-dev", "busybox", "true")
    assert proc.returncode != 0
    assert "error creating device nodes: mknod /proc/kf-dev: no such file or directory" in proc.stderr


@pytest.mark.parametrize("size", ["1e30", "99999999999999999999"])
def test_a_shm_size_beyond_int64_is_refused_as_dockerd_does(lc, size):
    assert "SHM size can not be less than 0" in refused(lc, *QUIET, "--shm-size", size, "busybox", "true")


def test_donors_are_looked_up_at_start_as_dockerd_does(lc, cleanup):
    cleanup += ["kf-late", "kf-stopped"]
    lc("create", *QUIET, "--name", "kf-late", "--ipc", "container:kf-nope", "busybox", "true", check=True)
    started = lc("start", "kf-late")
    assert started.returncode != 0
    assert "can't join IPC of container kf-nope: No such container: kf-nope" in started.stderr
    assert inspect(lc, "kf-late")["HostConfig"]["IpcMode"] == "container:kf-nope"
    lc("run", *QUIET, "--name", "kf-stopped", "--ipc", "shareable", "busybox", "true", check=True)
    stopped_id = inspect(lc, "kf-stopped")["Id"]
    assert f"can't join IPC of container kf-stopped: Container {stopped_id} is not running" in refused(
        lc, *QUIET, "--ipc", "container:kf-stopped", "busybox")
    assert mounts_under(lc.root) == []  # the stopped donor's shareable /dev/shm went at its exit
