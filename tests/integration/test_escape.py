"""The container escape suite: from inside a default container, every classic way out must fail.

Each test is an attack a hostile image could make, run for real through `pyctr run` as root: seeing or ptracing host
processes, mounting, new namespaces, writing /proc/sys or /sys, reading kernel memory or keys, opening a block
device, loading a module, raising rlimits, reaching host files through /proc or a symlinked volume, fork bombs and
memory bombs, and the runc CVEs (CVE-2019-5736 /proc/self/exe, CVE-2024-21626 leaked fds/cwd). The last tests run
the same attempts with --privileged, where Docker allows them, to prove the checks can tell success from failure.

Containers use `--network none` unless networking matters: the test bridge is shared with other pyctr roots on this
machine, and none of these attacks need a network.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

DEFAULT_CAPS = "00000000a80425fb"
BASE = ("run", "--rm", "--network", "none")


def in_container(pyctr, script: str, *flags: str, image: str = "busybox", timeout: float = 60):
    """Run `sh -c script` in a default (but network-less) container; returns CompletedProcess."""
    return pyctr(*BASE, *flags, image, "sh", "-c", script, timeout=timeout)


def run_python(pyctr, registry, code: str, *flags: str, timeout: float = 120):
    """Run python3 code in the python:3-slim seed image (it has ctypes for raw syscalls)."""
    return pyctr(*BASE, *flags, registry.images["python"], "python3", "-c", code, timeout=timeout)


def status_fields(text: str) -> dict[str, str]:
    return {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in text.splitlines() if ":" in line)}


def unique() -> str:
    return f"pyctr-escape-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def host_process() -> Iterator[subprocess.Popen]:
    """A host process with a unique argument, to look for from inside."""
    marker = f"{time.time_ns() % 10**9}.5"
    proc = subprocess.Popen(["sleep", marker])
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture
def host_secret(tmp_path) -> Path:
    """A host file whose content must never be readable from inside."""
    path = tmp_path / unique() / "secret.txt"
    path.parent.mkdir()
    path.write_text(f"host-secret-{uuid.uuid4().hex}\n")
    return path


@pytest.fixture
def detached(pyctr) -> Iterator[list[str]]:
    """Names of detached containers a test started; force-removed afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        pyctr("rm", "-f", name, timeout=60)


# ------------------------------------------------------------------ processes


def test_sees_only_its_own_processes(pyctr, host_process):
    marker = host_process.args[1]
    result = in_container(pyctr, "cat /proc/[0-9]*/cmdline | tr '\\0' ' '; echo; ls /proc | grep -c '^[0-9]'; "
                                 "ps -o pid,comm; true")
    assert result.returncode == 0, result.stderr
    assert marker not in result.stdout
    rows = [line.split() for line in result.stdout.splitlines() if re.match(r"\s*\d+\s", line)]
    assert ["1", "sh"] in rows and all(comm in ("sh", "ps", "cat", "tr", "grep", "ls") for _, comm in rows), rows


def test_cannot_ptrace_a_host_process(pyctr, registry, host_process):
    code = (
        "import ctypes, errno, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        f"rc = libc.ptrace(16, {host_process.pid}, 0, 0)  # PTRACE_ATTACH\n"
        "print(rc, errno.errorcode.get(ctypes.get_errno(), ctypes.get_errno()))\n"
    )
    result = run_python(pyctr, registry, code)
    assert result.returncode == 0, result.stderr
    rc, err = result.stdout.split()
    assert rc == "-1" and err in ("ESRCH", "EPERM"), result.stdout
    assert Path(f"/proc/{host_process.pid}/status").read_text().count("TracerPid:\t0") == 1


# ------------------------------------------------------------------ mounts and namespaces


def test_cannot_mount(pyctr):
    result = in_container(pyctr, "mkdir -p /mnt; mount -t tmpfs none /mnt && echo MOUNTED")
    assert "MOUNTED" not in result.stdout
    assert "permission denied" in result.stderr.lower() or "not permitted" in result.stderr.lower(), result.stderr


@pytest.mark.parametrize("flag, clone_flag", [("-n", "0x40000000"), ("-U", "0x10000000"), ("-m", "0x20000"),
                                               ("-p", "0x20000000")])
def test_cannot_unshare(pyctr, flag, clone_flag):
    result = in_container(pyctr, f"unshare {flag} true && echo UNSHARED")
    assert "UNSHARED" not in result.stdout
    assert "Operation not permitted" in result.stderr, result.stderr


def test_cannot_setns(pyctr):
    result = in_container(pyctr, "nsenter -t 1 -m -u -i -n -p true && echo ENTERED")
    assert "ENTERED" not in result.stdout
    assert "Operation not permitted" in result.stderr, result.stderr


# ------------------------------------------------------------------ /proc and /sys


def test_cannot_write_proc_sys(pyctr):
    before = Path("/proc/sys/kernel/panic").read_text()
    result = in_container(pyctr, "echo 17 > /proc/sys/kernel/panic && echo WROTE; cat /proc/sys/kernel/panic")
    assert "WROTE" not in result.stdout
    assert "Read-only file system" in result.stderr, result.stderr
    assert Path("/proc/sys/kernel/panic").read_text() == before


def test_cannot_write_sys(pyctr):
    result = in_container(pyctr, "echo x > /sys/kernel/uevent_helper && echo WROTE; "
                                 "mkdir /sys/fs/cgroup/pids/escape && echo MADE")
    assert "WROTE" not in result.stdout and "MADE" not in result.stdout
    assert "Read-only file system" in result.stderr, result.stderr


def test_cannot_trigger_sysrq(pyctr):
    result = in_container(pyctr, "echo h > /proc/sysrq-trigger && echo WROTE")
    assert "WROTE" not in result.stdout


@pytest.mark.parametrize("path", ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug"])
def test_masked_kernel_files_reveal_nothing(pyctr, path):
    """Masked: empty (a /dev/null bind) or absent on this kernel; never kernel data. (Not /proc/interrupts:
    Docker 20.10 leaves it readable, see test_docker_parity.)"""
    result = in_container(pyctr, f"head -c 4096 {path} | wc -c")
    assert result.stdout.strip() == "0", (result.stdout, result.stderr)


# ------------------------------------------------------------------ devices and kernel modules


def _host_block_device() -> tuple[int, int]:
    """major:minor of a real disk of this machine (not a loop or zram device)."""
    for dev in sorted(Path("/sys/block").iterdir()):
        if not dev.name.startswith(("loop", "zram", "ram", "nbd")) and (dev / "dev").exists():
            major, minor = (dev / "dev").read_text().strip().split(":")
            return int(major), int(minor)
    pytest.fail("no real block device found under /sys/block to aim at", pytrace=False)


def test_block_device_can_be_made_but_not_opened(pyctr):
    """Docker allows mknod (b *:* m) but the v1 devices cgroup denies opening it: no raw disk access."""
    major, minor = _host_block_device()
    result = in_container(pyctr, f"mknod /tmp/disk b {major} {minor} && echo MADE; "
                                 "head -c 512 /tmp/disk | wc -c; echo x >> /tmp/disk && echo WROTE")
    assert "MADE" in result.stdout, result.stderr
    assert "WROTE" not in result.stdout
    lines = result.stdout.split()
    assert lines[1] == "0", result.stdout
    assert "Operation not permitted" in result.stderr, result.stderr


def test_char_device_outside_dockers_allow_list_cannot_be_opened(pyctr, tmp_path):
    """c 1:11 (/dev/kmsg) opens on this host, so only the container's devices cgroup can refuse it.

    (The block-device test above is also refused by this VM itself; this one proves pyctr's own rule works.)
    """
    node = tmp_path / "kmsg"
    os.mknod(node, 0o600 | stat.S_IFCHR, os.makedev(1, 11))
    os.close(os.open(node, os.O_RDONLY | os.O_NONBLOCK))  # precondition: the host allows it
    result = in_container(pyctr, "mknod /tmp/kmsg c 1 11 && echo MADE; : < /tmp/kmsg && echo OPENED; true")
    assert "MADE" in result.stdout, result.stderr
    assert "OPENED" not in result.stdout
    assert "Operation not permitted" in result.stderr, result.stderr


# Syscalls Docker's default profile (or the missing capability) refuses with EPERM: x86_64 numbers, harmless args.
FORBIDDEN_SYSCALLS = {
    "init_module": (175, "ctypes.c_char_p(b'\\0' * 64), 64, ctypes.c_char_p(b'')"),
    "finit_module": (313, "os.open('/dev/null', os.O_RDONLY), ctypes.c_char_p(b''), 0"),
    "delete_module": (176, "ctypes.c_char_p(b'loop'), 0"),
    "kexec_load": (246, "0, 0, 0, 0"),
    "add_key": (248, "b'user', b'pyctr', b'v', 1, -4"),
    "keyctl": (250, "0, -3, 0, 0, 0"),
    "request_key": (249, "b'user', b'pyctr', None, 0"),
    "bpf": (321, "0, 0, 0"),
    "perf_event_open": (298, "0, 0, 0, 0, 0"),
    "open_by_handle_at": (304, "0, 0, 0"),
    "userfaultfd": (323, "0"),
    "swapoff": (168, "b'/nonexistent'"),
    "acct": (163, "None"),
    "syslog": (103, "3, None, 0"),
    "unshare_newuser": (272, "0x10000000"),
    "setns": (308, "os.open('/proc/1/ns/mnt', os.O_RDONLY), 0"),
    "mount": (165, "b'none', b'/tmp', b'tmpfs', 0, None"),
}


@pytest.fixture(scope="module")
def forbidden_syscall_results(pyctr_env, registry) -> dict[str, list[str]]:
    """Every forbidden syscall tried once, in one python container: {name: [rc, errno name]}."""
    from tests.integration.conftest import PyctrRunner

    assert os.uname().machine == "x86_64", "the syscall numbers here are x86_64's"
    lines = ["import ctypes, errno, os", "libc = ctypes.CDLL(None, use_errno=True)"]
    for name, (number, args) in FORBIDDEN_SYSCALLS.items():
        lines.append(f"rc = libc.syscall({number}, {args}); "
                     f"print({name!r}, rc, errno.errorcode.get(ctypes.get_errno(), ctypes.get_errno()), flush=True)")
    result = run_python(PyctrRunner(pyctr_env), registry, "\n".join(lines))
    assert result.returncode == 0, result.stderr
    return {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()}


@pytest.mark.parametrize("name", list(FORBIDDEN_SYSCALLS))
def test_forbidden_syscalls_fail_with_eperm(forbidden_syscall_results, name):
    """Modules, kexec, keyrings, bpf, perf, handles, swap, accounting, the kernel log, namespaces, mounts, clock."""
    assert forbidden_syscall_results.get(name) == ["-1", "EPERM"], forbidden_syscall_results


def test_cannot_read_the_kernel_log_or_set_the_clock(pyctr):
    before = os.uname().nodename
    result = in_container(pyctr, 'dmesg >/dev/null && echo DMESG; date -s "@$(date +%s)" >/dev/null && echo CLOCK; '
                                 "hostname evil && echo HOSTNAME; true")
    assert result.returncode == 0, result.stderr
    assert "DMESG" not in result.stdout and "HOSTNAME" not in result.stdout, result.stdout
    # busybox date exits 0 even when it cannot set the clock: its complaint is the evidence
    for refusal in ("klogctl: Operation not permitted", "can't set date: Operation not permitted",
                    "sethostname: Operation not permitted"):
        assert refusal in result.stderr, result.stderr
    assert os.uname().nodename == before


def test_cgroup_release_agent_escape_is_blocked(pyctr):
    """CVE-2022-0492: mounting cgroupfs or writing release_agent from a container runs code on the host."""
    script = ("mkdir -p /tmp/cg; mount -t cgroup -o memory cgroup /tmp/cg && echo MOUNTED; "
              "echo /evil > /sys/fs/cgroup/memory/release_agent && echo WROTE; "
              "echo 1 > /sys/fs/cgroup/memory/notify_on_release && echo NOTIFY; true")
    result = in_container(pyctr, script)
    assert not result.stdout.strip(), result.stdout


@pytest.mark.parametrize("fd", [3, 4, 5, 6, 7, 8, 9])
def test_workdir_through_a_proc_fd_is_refused(pyctr, fd):
    """CVE-2024-21626: `-w /proc/self/fd/N` must not start the process in a leaked host directory."""
    result = pyctr(*BASE, "-w", f"/proc/self/fd/{fd}", "busybox", "sh", "-c", "pwd; ls -a ../../..; true",
                   timeout=60)
    if result.returncode == 0:
        assert result.stdout.startswith("/proc/"), result.stdout
        assert "work" not in result.stdout.split() and "pyctr" not in result.stdout, result.stdout
    else:
        assert result.returncode in (125, 126, 127), result
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


# ------------------------------------------------------------------ rlimits


def test_cannot_raise_the_hard_nofile_limit_in_shell(pyctr):
    result = in_container(pyctr, "hard=$(ulimit -Hn); ulimit -n $((hard + 1)) && echo RAISED; ulimit -Hn")
    assert "RAISED" not in result.stdout
    assert result.stderr.strip(), "ulimit should have complained"


def test_cannot_raise_hard_rlimits(pyctr, registry):
    code = (
        "import resource\n"
        "for name in ('RLIMIT_NOFILE', 'RLIMIT_NPROC', 'RLIMIT_CORE'):\n"
        "    which = getattr(resource, name)\n"
        "    soft, hard = resource.getrlimit(which)\n"
        "    if hard == resource.RLIM_INFINITY:\n"
        "        print(name, 'unlimited'); continue\n"
        "    try:\n"
        "        resource.setrlimit(which, (soft, hard + 1))\n"
        "        print(name, 'RAISED')\n"
        "    except (ValueError, PermissionError, OSError) as e:\n"
        "        print(name, 'refused')\n"
    )
    result = run_python(pyctr, registry, code)
    assert result.returncode == 0, result.stderr
    assert "RAISED" not in result.stdout and "refused" in result.stdout, result.stdout


# ------------------------------------------------------------------ host filesystem


def test_host_files_are_unreachable_through_proc(pyctr, host_secret):
    secret = host_secret.read_text().strip()
    script = (f"cat /proc/1/root{host_secret} /proc/self/root{host_secret} /proc/[0-9]*/root{host_secret}; "
              f"ls /proc/[0-9]*/root{host_secret.parent}; "
              "for f in /proc/[0-9]*/fd/* /proc/[0-9]*/cwd /proc/[0-9]*/root; do "
              "  cat $f/../../root" + str(host_secret) + "; readlink $f; done; "
              "readlink /proc/1/cwd /proc/1/root; find / -xdev -name secret.txt 2>/dev/null; true")
    result = in_container(pyctr, script)
    assert secret not in result.stdout
    assert str(host_secret.parent) not in result.stdout, result.stdout


def test_no_host_fds_or_cwd_leak_into_the_container(pyctr):
    """CVE-2024-21626: a leaked host directory fd (or cwd) lets `cd /proc/self/fd/N` walk the host."""
    script = ("echo cwd=$(readlink /proc/1/cwd); echo root=$(readlink /proc/1/root); "
              "for fd in /proc/1/fd/* /proc/self/fd/*; do echo \"$fd -> $(readlink $fd)\"; done")
    result = pyctr(*BASE, "-w", "/tmp", "busybox", "sh", "-c", script, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "cwd=/tmp\n" in result.stdout and "root=/\n" in result.stdout, result.stdout
    for line in result.stdout.splitlines():
        if " -> " not in line:
            continue
        fd_path, target = line.split(" -> ", 1)
        fd = int(fd_path.rsplit("/", 1)[1]) if fd_path.rsplit("/", 1)[1].isdigit() else -1
        # 0-2 are the stdio pyctr was given (pipes here); above that only the shell's own fds may exist.
        assert fd <= 2 or target.startswith(("/proc/", "pipe:", "/dev/")) or target == "", line
        assert fd > 2 or target.startswith(("pipe:", "/dev/null", "/dev/pts")), line


def test_symlink_in_a_volume_is_not_followed_on_the_host(pyctr, tmp_path):
    """The container plants `escape -> /` in a bind-mounted dir; writes through it land in the container."""
    volume = tmp_path / "vol"
    volume.mkdir()
    name = unique()
    script = (f"ln -s / /data/escape && ln -s /tmp /data/tmplink && echo pwned > /data/escape/tmp/{name} && "
              f"echo pwned > /data/tmplink/{name}.2 && echo DONE")
    result = pyctr(*BASE, "-v", f"{volume}:/data", "busybox", "sh", "-c", script, timeout=60)
    assert "DONE" in result.stdout, result.stderr
    assert not Path(f"/tmp/{name}").exists() and not Path(f"/tmp/{name}.2").exists()
    assert os.readlink(volume / "escape") == "/"  # still a plain symlink on the host, nothing resolved by pyctr
    assert os.readlink(volume / "tmplink") == "/tmp"


def test_symlink_at_a_mount_target_does_not_redirect_the_bind(pyctr, tmp_path):
    """A container-planted symlink at a mount target (CVE-2021-30465 class) must resolve inside the container.

    The first container plants `/vol/link -> <host tmp>/victim/sub` in a named volume; a second container
    bind-mounts onto /vol/link. Resolved on the host, the runtime would create victim/sub there (and mount onto
    it); resolved in the container's root, the bind lands at the container's own copy of that path.
    """
    victim = tmp_path / "victim"
    victim.mkdir()
    source = tmp_path / "source"
    source.mkdir()
    (source / "payload").write_text("payload\n")
    volume = f"escape-{uuid.uuid4().hex[:8]}"
    try:
        pyctr(*BASE, "-v", f"{volume}:/vol", "busybox", "ln", "-s", str(victim / "sub"), "/vol/link", check=True)
        result = pyctr(*BASE, "-v", f"{volume}:/vol", "-v", f"{source}:/vol/link", "busybox",
                       "sh", "-c", f"ls /vol/link/ {victim}/sub/", timeout=60)
        assert list(victim.iterdir()) == [], "the bind mount target was resolved on the host"
        assert str(victim) not in Path("/proc/self/mountinfo").read_text()
        if result.returncode == 0:
            assert "payload" in result.stdout, result.stdout
        else:
            assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    finally:
        shutil.rmtree(pyctr.root / "volumes" / volume, ignore_errors=True)


def test_cp_resolves_container_symlinks_inside_the_container(pyctr, detached, host_secret, tmp_path):
    """CVE-2018-15664 class: `pyctr cp` through a container-planted symlink never reads or writes host files."""
    name = unique()
    detached.append(name)
    hostdir = host_secret.parent
    plant = (f"ln -s / /tmp/rootlink; ln -s {hostdir} /tmp/hostlink; ln -s ../../../../../..{hostdir} /tmp/rel; "
             "echo inside > /etc/only-inside; sleep 300")
    assert pyctr("run", "-d", "--network", "none", "--name", name, "busybox", "sh", "-c", plant).returncode == 0
    time.sleep(0.5)
    out = tmp_path / "out"
    out.mkdir()
    assert pyctr("cp", f"{name}:/tmp/rootlink/etc/only-inside", out / "inside", timeout=30).returncode == 0
    assert (out / "inside").read_text() == "inside\n"
    for link in ("hostlink", "rel"):
        pyctr("cp", f"{name}:/tmp/{link}/{host_secret.name}", out / link, timeout=30)
        assert not (out / link).exists() or host_secret.read_text() not in (out / link).read_text()
        payload = tmp_path / f"payload-{link}"
        payload.write_text("pwned\n")
        pyctr("cp", payload, f"{name}:/tmp/{link}/{payload.name}", timeout=30)
        assert sorted(p.name for p in hostdir.iterdir()) == [host_secret.name], "cp wrote through to the host"


def test_cp_symlink_exchange_race_stays_inside(pyctr, detached, host_secret, tmp_path):
    """The container swaps a directory and a symlink to a host dir in a loop while the host copies in and out."""
    name = unique()
    detached.append(name)
    hostdir = host_secret.parent
    race = (f"mkdir -p /w/d; echo inside > /w/d/{host_secret.name}; "
            f"while :; do mv /w/d /w/d.real; ln -s {hostdir} /w/d; rm /w/d; mv /w/d.real /w/d; done")
    assert pyctr("run", "-d", "--network", "none", "--name", name, "busybox", "sh", "-c", race).returncode == 0
    payload = tmp_path / "payload"
    payload.write_text("pwned\n")
    secret = host_secret.read_text()
    for i in range(12):
        target = tmp_path / f"got-{i}"
        pyctr("cp", f"{name}:/w/d/{host_secret.name}", target, timeout=30)
        assert not target.exists() or secret not in target.read_text(), "cp read a host file through the race"
        pyctr("cp", payload, f"{name}:/w/d/payload-{i}", timeout=30)
        assert sorted(p.name for p in hostdir.iterdir()) == [host_secret.name], "cp wrote to the host in the race"


# ------------------------------------------------------------------ resource bombs


def _cgroup_dirs(container_id: str) -> list[Path]:
    return [p for p in Path("/sys/fs/cgroup").glob(f"*/pyctr/{container_id}") if p.exists()]


def test_fork_bomb_is_bounded_by_pids_limit(pyctr, detached):
    name = unique()
    detached.append(name)
    # The bomb runs in a child shell (ash gives up at its first failed fork); the parent then counts with
    # builtins only, since every pid is taken.
    script = ("sh -c 'for i in $(seq 200); do sleep 30 & done' 2>/dev/null; "
              "set -- /proc/[0-9]*; echo procs=$#; exit 0")
    started = pyctr("run", "-d", "--network", "none", "--name", name, "--pids-limit", "50", "busybox",
                    "sh", "-c", script, timeout=60)
    assert started.returncode == 0, started.stderr
    container_id = started.stdout.strip()
    waited = pyctr("wait", name, timeout=60)
    assert waited.stdout.strip() == "0", (waited.stdout, waited.stderr)
    logs = pyctr("logs", name, timeout=30).stdout
    procs = int(re.search(r"procs=(\d+)", logs).group(1))
    assert 40 <= procs <= 50, logs  # the bomb reached the limit, and no further
    assert pyctr("rm", name, timeout=60).returncode == 0
    detached.remove(name)
    deadline = time.time() + 10
    while _cgroup_dirs(container_id) and time.time() < deadline:
        time.sleep(0.2)
    assert not _cgroup_dirs(container_id), "cgroups left behind"
    assert name not in pyctr("ps", "-a", "--format", "{{.Names}}").stdout


def test_memory_bomb_is_oom_killed(pyctr, detached):
    name = unique()
    detached.append(name)
    started = pyctr("run", "-d", "--network", "none", "--name", name, "--memory", "32m", "busybox",
                    "tail", "/dev/zero", timeout=60)
    assert started.returncode == 0, started.stderr
    waited = pyctr("wait", name, timeout=120)
    assert waited.stdout.strip() == "137", (waited.stdout, waited.stderr)
    oom = pyctr("inspect", "-f", "{{.State.OOMKilled}}", name, timeout=30)
    assert oom.stdout.strip() == "true", (oom.stdout, oom.stderr)
    assert pyctr("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip() == "137"


def test_memory_bomb_in_foreground_exits_137(pyctr, registry):
    result = run_python(pyctr, registry, "b = bytearray(200 * 1024 * 1024)\nprint('ALLOCATED')", "--memory", "32m")
    assert result.returncode == 137, (result.returncode, result.stdout, result.stderr)
    assert "ALLOCATED" not in result.stdout


# ------------------------------------------------------------------ confinement as Docker's


def test_status_shows_seccomp_and_dockers_capabilities(pyctr):
    result = in_container(pyctr, "cat /proc/self/status")
    fields = status_fields(result.stdout)
    assert fields["Seccomp"] == "2"
    assert fields["CapEff"] == DEFAULT_CAPS and fields["CapPrm"] == DEFAULT_CAPS and fields["CapBnd"] == DEFAULT_CAPS
    assert fields["CapInh"] == "0" * 16 and fields["CapAmb"] == "0" * 16


def test_proc_self_exe_is_the_containers_binary(pyctr):
    """CVE-2019-5736: no container process may reach the host's runtime binary (here: python) via /proc/*/exe."""
    result = in_container(pyctr, "readlink /proc/self/exe; readlink /proc/1/exe")
    assert result.returncode == 0, result.stderr
    for line in result.stdout.split():
        assert "python" not in line and line.startswith("/bin/"), result.stdout


HOST_RUNTIME_MARKERS = (".pyenv", ".venv", "/work/", "/usr/bin/python3")
EXE_WATCHER = """
import os, sys, time
seen, opened = set(), set()
deadline = time.monotonic() + float(sys.argv[1])
me = str(os.getpid())
while time.monotonic() < deadline:
    for pid in os.listdir('/proc'):
        if not pid.isdigit() or pid == me:
            continue
        try:
            target = os.readlink(f'/proc/{pid}/exe')
        except OSError:
            continue
        seen.add(target)
        if target.startswith('/usr/local/bin/python'):
            continue
        try:
            os.close(os.open(f'/proc/{pid}/exe', os.O_RDONLY))
            opened.add(target)
        except OSError:
            pass
print('SEEN', sorted(seen))
print('OPENED', sorted(opened))
"""


def test_exec_never_exposes_the_host_runtime_binary(pyctr, registry, detached):
    """CVE-2019-5736: while `pyctr exec` joins the container, a fast watcher inside must never see (or open) the
    host's python through /proc/<pid>/exe; a container process could otherwise overwrite it once it exits."""
    name = unique()
    detached.append(name)
    started = pyctr("run", "-d", "--network", "none", "--name", name, registry.images["python"],
                    "python3", "-c", EXE_WATCHER, "8", timeout=120)
    assert started.returncode == 0, started.stderr
    execs = 0
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        ran = pyctr("exec", name, "true", timeout=30)
        assert ran.returncode == 0, ran.stderr
        execs += 1
    assert pyctr("wait", name, timeout=60).stdout.strip() == "0"
    report = pyctr("logs", name, timeout=30).stdout
    assert "SEEN" in report and execs >= 3, report
    assert "'/usr/bin/true'" in report or "'/bin/true'" in report, f"the watcher never saw an exec: {report}"
    for marker in HOST_RUNTIME_MARKERS:
        assert marker not in report, f"host runtime binary visible from the container: {report}"


def test_exec_is_confined_like_the_container(pyctr, detached):
    """`pyctr exec` must join every namespace and the cgroup, with the same caps and seccomp as PID 1."""
    name = unique()
    detached.append(name)
    started = pyctr("run", "-d", "--network", "none", "--pids-limit", "30", "--name", name, "busybox",
                    "sleep", "300", timeout=60)
    assert started.returncode == 0, started.stderr
    script = ("cat /proc/self/status; for n in mnt pid net ipc uts cgroup; do "
              "[ \"$(readlink /proc/self/ns/$n)\" = \"$(readlink /proc/1/ns/$n)\" ] || echo OUTSIDE-$n; done; "
              "ps -o pid,comm | grep -c sleep")
    result = pyctr("exec", name, "sh", "-c", script, timeout=30)
    assert result.returncode == 0, result.stderr
    fields = status_fields(result.stdout)
    assert fields["Seccomp"] == "2" and fields["CapEff"] == DEFAULT_CAPS and fields["CapBnd"] == DEFAULT_CAPS
    assert "OUTSIDE" not in result.stdout, result.stdout
    # the sleeps must not hold the exec's stdout open, or the exec would wait for them
    bomb = "sh -c 'for i in $(seq 100); do sleep 30 & done' >/dev/null 2>&1; set -- /proc/[0-9]*; echo procs=$#"
    bombed = pyctr("exec", name, "sh", "-c", bomb, timeout=60)
    procs = int(re.search(r"procs=(\d+)", bombed.stdout).group(1))
    assert procs <= 30, f"exec escaped the pids limit: {bombed.stdout}"


# ------------------------------------------------------------------ the same attempts, privileged


def test_privileged_can_mount(pyctr):
    result = in_container(pyctr, "mkdir -p /mnt; mount -t tmpfs none /mnt && echo MOUNTED && grep -c ' /mnt ' "
                                 "/proc/mounts", "--privileged")
    assert "MOUNTED" in result.stdout, result.stderr


def test_privileged_has_all_capabilities_and_sees_kernel_files(pyctr):
    host_bounding = status_fields(Path("/proc/self/status").read_text())["CapBnd"]
    result = in_container(pyctr, "grep CapEff /proc/self/status; head -c 4096 /proc/timer_list | wc -c; "
                                 "unshare -n true && echo UNSHARED", "--privileged")
    fields = status_fields(result.stdout)
    assert fields.get("CapEff") == host_bounding, result.stdout
    assert "UNSHARED" in result.stdout, result.stderr
    assert int(result.stdout.split()[2]) > 0, "privileged containers see /proc/timer_list unmasked"


def test_privileged_can_open_a_device_the_default_cgroup_denies(pyctr):
    """The counterpart of the devices-cgroup test: privileged, /dev/kmsg's node (c 1:11) opens (not read here)."""
    result = in_container(pyctr, "mknod /tmp/kmsg c 1 11 && : < /tmp/kmsg && echo OPENED", "--privileged")
    assert "OPENED" in result.stdout, result.stderr
