"""What a process sees inside a container, compared with Docker 20.10 (+ runc 1.1) as recorded here.

Issue 13 item 5 (seccomp: the real syscalls, through python's ctypes in the python:3-slim seed image) and issue 19
items 2 (single-file binds), 4 (supplementary groups) and 10 (cgroup v1 layout, masked paths). Docker's outputs
were taken with Docker 20.10.24 on a cgroup v1 host of this kind.
"""

from __future__ import annotations

import os
import textwrap
import uuid
from pathlib import Path

import pytest

from tests.integration.conftest import PYCTR_BIN, PyctrRunner, _env_for, make_root

EPERM = 1


@pytest.fixture(scope="module")
def dk(pyctr_config, tmp_path_factory):
    """A runner on a module root with busybox and python:3-slim pulled."""
    if not PYCTR_BIN.exists():
        pytest.fail(f"{PYCTR_BIN} is missing: run `make install`", pytrace=False)
    runner = PyctrRunner(_env_for(make_root(tmp_path_factory.mktemp("parity") / "root"), pyctr_config))
    runner("pull", "busybox", check=True, timeout=120)
    runner("pull", "python:3-slim", check=True, timeout=300)
    yield runner
    ids = runner("ps", "-aq", "--no-trunc").stdout.split()
    if ids:
        runner("rm", "-f", *ids)


def run_out(dk: PyctrRunner, *args: str) -> str:
    return dk("run", "--rm", "--network", "none", *args, check=True).stdout


# --- issue 13 item 5: seccomp ---------------------------------------------------------------------------------

SYSCALL_PROBE = textwrap.dedent("""
    import ctypes, errno, os, socket
    libc = ctypes.CDLL(None, use_errno=True)
    class iovec(ctypes.Structure):
        _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
    def result(ret):
        return "ok" if ret >= 0 else errno.errorcode[ctypes.get_errno()]
    src, dst = ctypes.create_string_buffer(b"secret!"), ctypes.create_string_buffer(8)
    local, remote = iovec(ctypes.addressof(dst), 8), iovec(ctypes.addressof(src), 8)
    ctypes.set_errno(0)
    ret = libc.syscall(310, os.getpid(), ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
    print("process_vm_readv", result(ret))
    handle, mount_id = ctypes.create_string_buffer(8 + 128), ctypes.c_int()
    ctypes.c_uint.from_buffer(handle).value = 128
    print("name_to_handle_at", result(libc.syscall(303, -100, b"/etc", handle, ctypes.byref(mount_id), 0)))
    print("fchmodat2", result(libc.syscall(452, -100, b"/tmp", 0o1777, 0)))
    try:
        socket.socket(40, socket.SOCK_STREAM).close()
        print("socket_vsock ok")
    except OSError as e:
        print("socket_vsock", errno.errorcode[e.errno])
""")


def probe(dk: PyctrRunner, *flags: str) -> dict[str, str]:
    out = run_out(dk, *flags, "python:3-slim", "python3", "-c", SYSCALL_PROBE)
    return dict(line.split() for line in out.splitlines())


def test_seccomp_default_profile_as_docker(dk):
    """Docker 20.10.24: process_vm_readv and name_to_handle_at EPERM; socket(AF_VSOCK) not refused by seccomp
    (EAFNOSUPPORT without the vsock module, else a socket); fchmodat2 (kernel 6.6) ENOSYS from runc's stub."""
    got = probe(dk)
    assert got["process_vm_readv"] == "EPERM"
    assert got["name_to_handle_at"] == "EPERM"
    assert got["socket_vsock"] in ("ok", "EAFNOSUPPORT")
    assert got["fchmodat2"] == "ENOSYS"  # runc's stub: newer than the profile's last syscall (libc falls back)


def test_seccomp_capability_groups_as_docker(dk):
    """--cap-add SYS_PTRACE opens process_vm_readv; name_to_handle_at is in 20.10.24's CAP_SYS_ADMIN group, so
    DAC_READ_SEARCH leaves it EPERM and SYS_ADMIN opens it."""
    assert probe(dk, "--cap-add", "SYS_PTRACE")["process_vm_readv"] == "ok"
    assert probe(dk, "--cap-add", "DAC_READ_SEARCH")["name_to_handle_at"] == "EPERM"
    assert probe(dk, "--cap-add", "SYS_ADMIN")["name_to_handle_at"] not in ("EPERM",)


# --- issue 19 item 2: a single file as a bind mount -------------------------------------------------------------

@pytest.mark.parametrize("target", ["/etc/motd", "/etc/passwd", "/new/dir/file"])
@pytest.mark.parametrize("mode", [":ro", ""])
def test_bind_a_single_file(dk, tmp_path, target, mode):
    """Docker: `-v /host/f:/etc/motd:ro busybox cat /etc/motd` prints the file, whether the target is missing
    (created as an empty file, its missing parents as directories) or an existing file such as /etc/passwd."""
    host = tmp_path / "f"
    host.write_text("from the host\n")
    out = run_out(dk, "-v", f"{host}:{target}{mode}", "busybox", "sh", "-c",
                  f"cat {target}; echo hi >> {target} && echo writable || echo read-only")
    assert out.splitlines()[0] == "from the host"
    assert out.splitlines()[-1] == ("read-only" if mode else "writable")
    assert host.read_text() == "from the host\n" + ("" if mode else "hi\n")


def test_bind_a_file_through_a_symlink_stays_inside(dk, tmp_path):
    """A target reached through a symlink (absolute or dangling) resolves inside the container root, never on the
    host, as runc's in-root resolution does: the file appears at the symlink's target inside the container."""
    host_file, data = tmp_path / "f", tmp_path / "data"
    host_file.write_text("bound\n")
    data.mkdir()
    name = f"pyctr-parity-{uuid.uuid4().hex[:8]}"
    (data / "etc").symlink_to("/etc")
    (data / "dangling").symlink_to(f"/{name}/deeper/file")
    out = run_out(dk, "-v", f"{data}:/data", "-v", f"{host_file}:/data/etc/{name}:ro",
                  "-v", f"{host_file}:/data/dangling", "busybox", "sh", "-c",
                  f"cat /etc/{name} /{name}/deeper/file")
    assert out == "bound\nbound\n"
    assert not (tmp_path.parent / name).exists() and not (data / name).exists()
    for host_path in (f"/etc/{name}", f"/{name}"):
        assert not os.path.lexists(host_path), f"{host_path} was created on the host"


# --- issue 19 item 4: supplementary groups ----------------------------------------------------------------------
# Docker 20.10.24 on the seed busybox image (/etc/group: root:x:0:, daemon:x:1:, nobody:x:65534:, app:x:1000:).

@pytest.mark.parametrize(("flags", "docker_id"), [
    ((), "uid=0(root) gid=0(root) groups=0(root)"),
    (("--group-add", "1234"), "uid=0(root) gid=0(root) groups=0(root),1234"),
    (("--group-add", "daemon", "--group-add", "1234"), "uid=0(root) gid=0(root) groups=0(root),1(daemon),1234"),
    (("-u", "app"), "uid=1000(app) gid=1000(app) groups=1000(app)"),
    (("-u", "1234"), "uid=1234 gid=0(root) groups=0(root)"),
    (("-u", "app:daemon", "--group-add", "nobody"), "uid=1000(app) gid=1(daemon) groups=1(daemon),65534(nobody)"),
])
def test_id_in_run(dk, flags, docker_id):
    assert run_out(dk, *flags, "busybox", "id").strip() == docker_id


def test_group_add_unknown_name_is_refused(dk):
    result = dk("run", "--rm", "--network", "none", "--group-add", "nosuch", "busybox", "id")
    assert result.returncode == 125 and "Unable to find group nosuch" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_id_in_exec(dk):
    """exec inherits the container's groups; exec -u resolves the user again, with the container's --group-add."""
    name = f"groups-{uuid.uuid4().hex[:8]}"
    dk("run", "-d", "--name", name, "--network", "none", "--group-add", "1234", "busybox", "sleep", "1000",
       check=True)
    try:
        assert dk("exec", name, "id", check=True).stdout.strip() == "uid=0(root) gid=0(root) groups=0(root),1234"
        assert dk("exec", "-u", "app", name, "id", check=True).stdout.strip() == \
            "uid=1000(app) gid=1000(app) groups=1000(app),1234"
    finally:
        dk("rm", "-f", name)


def test_id_in_build_run(dk, tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN id > /id-root\nUSER app\nRUN id > /tmp/id-app\n"
                                         "USER root\nRUN cat /id-root /tmp/id-app > /ids\n")
    tag = f"groups-{uuid.uuid4().hex[:8]}"
    dk("build", "-q", "-t", tag, str(tmp_path), check=True, timeout=120)
    try:
        assert run_out(dk, tag, "cat", "/ids").splitlines() == [
            "uid=0(root) gid=0(root) groups=0(root)", "uid=1000(app) gid=1000(app) groups=1000(app)"]
    finally:
        dk("rmi", "-f", tag)


# --- issue 19 item 10: what a container sees -------------------------------------------------------------------

def host_cgroup_layout() -> str:
    return "v2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "v1"


def mounts_in_container(dk: PyctrRunner, *flags: str) -> dict[str, tuple[str, set[str]]]:
    """mount point -> (fstype, per-mount options) from the container's /proc/self/mountinfo."""
    out = run_out(dk, *flags, "busybox", "cat", "/proc/self/mountinfo")
    found = {}
    for line in out.splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        found[fields[4]] = (right.split()[0], set(fields[5].split(",")))
    return found


def test_sys_fs_cgroup_as_docker(dk):
    """Docker 20.10 + runc 1.1 (mountCgroupV1) on a v1 host: /sys/fs/cgroup is a read-write tmpfs (nosuid, nodev,
    noexec), each v1 hierarchy below it read-only, no cgroup2 `unified`; on a v2 host: cgroup2, read-only."""
    mounts = mounts_in_container(dk)
    cgroup_mounts = {point: m for point, m in mounts.items() if point.startswith("/sys/fs/cgroup")}
    if host_cgroup_layout() == "v2":
        assert cgroup_mounts == {"/sys/fs/cgroup": ("cgroup2", cgroup_mounts["/sys/fs/cgroup"][1])}
        assert "ro" in cgroup_mounts["/sys/fs/cgroup"][1]
        return
    fstype, options = cgroup_mounts.pop("/sys/fs/cgroup")
    assert fstype == "tmpfs" and "rw" in options and {"nosuid", "nodev", "noexec"} <= options
    assert cgroup_mounts and all(fstype == "cgroup" and "ro" in opts for fstype, opts in cgroup_mounts.values())
    assert "/sys/fs/cgroup/unified" not in cgroup_mounts
    host_v1 = {os.path.basename(line.split()[4]) for line in Path("/proc/self/mountinfo").read_text().splitlines()
               if line.partition(" - ")[2].split()[0] == "cgroup"}
    assert {os.path.basename(p) for p in cgroup_mounts} == host_v1
    out = run_out(dk, "busybox", "sh", "-c", "touch /sys/fs/cgroup/x && echo tmpfs-writable; "
                  "mkdir /sys/fs/cgroup/pids/x 2>/dev/null && echo controller-writable || echo controller-ro")
    assert out.split() == ["tmpfs-writable", "controller-ro"]


def test_proc_interrupts_is_not_masked(dk):
    """Docker 20.10 (up to 27.x) masks no /proc/interrupts: it is the kernel's file, not /dev/null."""
    assert "/proc/interrupts" not in mounts_in_container(dk)
    assert run_out(dk, "busybox", "head", "-1", "/proc/interrupts").split()[0] == "CPU0"


def run_in_a_terminal(dk: PyctrRunner, *args: str, timeout: float = 30) -> bytes:
    """`pyctr <args>` with a pty as its terminal (as a user's shell gives it); everything it printed."""
    from tests.integration.helpers import run_under_a_pty

    return run_under_a_pty(dk.env, *args, timeout=timeout)[1]


def test_the_tty_is_dev_pts_0(dk):
    """Docker: `docker run -t busybox tty` prints /dev/pts/0 (the container's own devpts, first index), which is
    also /dev/console; the same for a detached -t container, seen through its logs."""
    out = run_in_a_terminal(dk, "run", "--rm", "-t", "--network", "none", "busybox", "sh", "-c",
                            "tty; ls /dev/pts; stat -c %t:%T /dev/console /dev/pts/0")
    assert [line.rstrip(b"\r") for line in out.split(b"\n")][:4] == [b"/dev/pts/0", b"0     ptmx", b"88:0", b"88:0"]
    name = f"tty-{uuid.uuid4().hex[:8]}"
    dk("run", "-dt", "--name", name, "--network", "none", "busybox", "sh", "-c", "tty; sleep 1000", check=True)
    try:
        import time

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "/dev/pts/0" not in dk("logs", name).stdout:
            time.sleep(0.1)
        assert dk("logs", name).stdout.splitlines() == ["/dev/pts/0"]
    finally:
        dk("rm", "-f", name)
