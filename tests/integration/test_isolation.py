"""Isolation, proven from inside and outside: namespaces, /proc and /sys, capabilities, fds, hostile images."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from pyctr.errors import RuntimeFailure
from pyctr.runtime.spec import MASKED_PATHS, READONLY_PATHS
from tests.integration.container_rootfs import Runner, build_busybox_rootfs

DOCKER_DEV = "fd full mqueue null ptmx pts random shm stderr stdin stdout tty urandom zero".split()


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    base = tmp_path_factory.mktemp("isolation")
    yield Runner(base, [build_busybox_rootfs(base / "lower")])
    shutil.rmtree(base, ignore_errors=True)


def status_fields(text: str) -> dict[str, str]:
    return {k: v.strip() for k, v in (line.split(":", 1) for line in text.splitlines() if ":" in line)}


def test_shell_is_pid_1(runner):
    assert runner.run("sh", "-c", "echo $$").stdout == "1\n"


def test_ps_sees_only_the_container(runner):
    result = runner.run("sh", "-c", "sleep 5 & sleep 0.2; ps -o pid,comm; exit 0")
    rows = [line.split() for line in result.stdout.splitlines()[1:]]
    assert sorted(comm for _, comm in rows) == ["ps", "sh", "sleep"]
    assert ["1", "sh"] in rows


def test_host_sees_the_process_under_another_pid(runner):
    seen = {}

    def inspect(pid, spec):
        time.sleep(0.2)
        seen["status"] = status_fields(Path(f"/proc/{pid}/status").read_text())
        seen["cmdline"] = Path(f"/proc/{pid}/cmdline").read_bytes()
        seen["ns"] = {ns: os.readlink(f"/proc/{pid}/ns/{ns}") for ns in ("pid", "mnt", "uts", "ipc", "net", "cgroup")}
        os.kill(pid, 9)

    runner.run("sleep", "30", while_running=inspect)
    assert seen["cmdline"] == b"sleep\x0030\x00"
    host_pid, container_pid = seen["status"]["NSpid"].split()
    assert container_pid == "1" and host_pid != "1"
    for ns, link in seen["ns"].items():
        assert link != os.readlink(f"/proc/self/ns/{ns}"), f"{ns} namespace is shared with the host"


def test_hostname_is_the_containers_own(runner):
    host_before = os.uname().nodename
    result = runner.run("hostname")
    assert result.stdout.strip() == result.spec.id[:12]
    assert os.uname().nodename == host_before


def test_ipc_namespace_is_private(runner):
    result = runner.run("sh", "-c", "readlink /proc/self/ns/ipc; cat /proc/sysvipc/shm | wc -l")
    ns, _shm_lines = result.stdout.split()
    assert ns != os.readlink("/proc/self/ns/ipc")


def test_no_mount_leaks_to_the_host(runner):
    def check(pid, spec):
        time.sleep(0.2)
        assert spec.rootfs.merged not in Path("/proc/self/mountinfo").read_text()
        os.kill(pid, 9)

    runner.run("sleep", "30", while_running=check)


def test_dev_matches_docker(runner):
    assert runner.run("ls", "/dev").stdout.split() == DOCKER_DEV


def test_masked_paths_are_masked(runner):
    present = [p for p in MASKED_PATHS if os.path.exists(p)]
    assert present, "no masked path exists on this kernel: the test would prove nothing"
    script = "; ".join(f"echo {p}: $(ls -A {p} 2>/dev/null | wc -l) $(head -c 64 {p} 2>/dev/null | wc -c)"
                       for p in present)
    result = runner.run("sh", "-c", script)
    for line in result.stdout.splitlines():
        path, entries, nbytes = line.split()
        path = path.rstrip(":")
        if os.path.isdir(path):
            assert entries == "0", f"{path} is not masked"
        else:
            assert nbytes == "0", f"{path} is readable"


def test_readonly_paths_are_readonly(runner):
    present = [p for p in READONLY_PATHS if os.path.exists(p)]
    assert present
    mounts = runner.run("cat", "/proc/self/mountinfo").stdout.splitlines()
    options = {line.split()[4]: line.split()[5].split(",") for line in mounts}
    for path in present:
        assert "ro" in options.get(path, []), f"{path} is not mounted read-only"
    result = runner.run("sh", "-c", "echo 1 > /proc/sys/kernel/ns_last_pid; echo rc=$?")
    assert "rc=1" in result.stdout


def test_sys_and_cgroup_are_readonly(runner):
    """The cgroup hierarchies are read-only. On a v1 host the tmpfs holding them is writable, as Docker + runc
    mount it (mountCgroupV1); on v2 /sys/fs/cgroup is the read-only cgroup2 itself."""
    result = runner.run("sh", "-c", "mkdir /sys/fs/cgroup/x 2>/dev/null; echo rc=$?; "
                        "mkdir /sys/fs/cgroup/memory/x 2>/dev/null; echo rc=$?; ls /sys/fs/cgroup | wc -l")
    lines = result.stdout.split()
    cgroup_v1_host = not os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    assert lines[:2] == ["rc=0" if cgroup_v1_host else "rc=1", "rc=1"] and int(lines[2]) > 0


def test_capabilities_are_dockers(runner):
    status = status_fields(runner.run("cat", "/proc/self/status").stdout)
    assert status["CapPrm"] == status["CapEff"] == status["CapBnd"] == "00000000a80425fb"
    assert status["CapInh"] == status["CapAmb"] == "0000000000000000"
    assert status["NoNewPrivs"] == "0"


def test_no_host_fd_leaks(runner, tmp_path):
    leaky = os.open(tmp_path / "host-secret", os.O_RDWR | os.O_CREAT, 0o600)
    os.set_inheritable(leaky, True)
    cwd_leak = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    os.set_inheritable(cwd_leak, True)
    try:
        result = runner.run("ls", "/proc/self/fd")
    finally:
        os.close(leaky)
        os.close(cwd_leak)
    assert result.stdout.split() == ["0", "1", "2", "3"]  # 3 is ls's own directory fd


def test_cwd_is_inside_the_container(runner):
    assert runner.run("sh", "-c", "cd .. && pwd && ls / | grep -c busybox-root-marker").stdout.split()[0] == "/"


def test_launcher_exe_is_not_reachable(runner):
    result = runner.run("sh", "-c", "ls /proc | grep -c '^[0-9]'")
    assert int(result.stdout) <= 3  # sh, ls, grep: the launcher is outside the PID namespace


@pytest.fixture
def hostile(tmp_path_factory):
    """A second image layer, set up per test, on top of the busybox rootfs."""
    base = tmp_path_factory.mktemp("hostile")
    layer = base / "layer"
    layer.mkdir()
    victim = base / "victim"
    victim.mkdir()
    yield layer, victim
    shutil.rmtree(base, ignore_errors=True)


def _run_with_layer(runner: Runner, layer: Path, *command: str):
    return Runner(runner.base, runner.lowerdirs + [layer]).run(*command)


def test_symlinked_proc_does_not_redirect_the_mount(runner, hostile):
    layer, victim = hostile
    (layer / "proc").symlink_to(victim)  # absolute host path: must not be followed
    with pytest.raises(RuntimeFailure, match="/proc"):
        _run_with_layer(runner, layer, "true")
    assert not os.listdir(victim)
    assert str(victim) not in Path("/proc/self/mountinfo").read_text()


def test_symlinked_dev_does_not_redirect_the_mount(runner, hostile):
    layer, victim = hostile
    (layer / "dev").symlink_to("/tmp")
    with pytest.raises(RuntimeFailure, match="/dev"):
        _run_with_layer(runner, layer, "true")


def test_symlinked_etc_hosts_stays_inside_the_root(runner, hostile):
    layer, victim = hostile
    (victim / "hosts").write_text("host file\n")
    (layer / "etc").mkdir()
    (layer / "etc" / "hosts").symlink_to(victim / "hosts")  # resolved inside the root: a new file there
    result = _run_with_layer(runner, layer, "cat", "/etc/hosts")
    assert "localhost" in result.stdout
    assert (victim / "hosts").read_text() == "host file\n"


def test_etc_file_symlinked_into_proc_is_refused(runner, hostile):
    layer, _ = hostile
    (layer / "etc").mkdir()
    (layer / "etc" / "hostname").symlink_to("/proc/sys/kernel/hostname")
    with pytest.raises(RuntimeFailure, match="inside /proc"):
        _run_with_layer(runner, layer, "true")


def test_volume_target_symlink_cannot_escape(runner, hostile, tmp_path):
    layer, victim = hostile
    (layer / "escape").symlink_to("../../../../../../" + str(victim).lstrip("/"))
    source = tmp_path / "src"
    source.mkdir()
    (source / "marker").write_text("m")
    result = Runner(runner.base, runner.lowerdirs + [layer]).run("ls", "/escape", volumes=[f"{source}:/escape"])
    assert result.stdout.split() == ["marker"]
    assert not os.listdir(victim)


def test_seccomp_default_profile_is_on(runner):
    result = runner.run("sh", "-c", "grep '^Seccomp:' /proc/self/status; unshare -m true 2>/dev/null; echo rc=$?")
    assert result.stdout.split() == ["Seccomp:", "2", "rc=1"]
    unconfined = runner.run("grep", "^Seccomp:", "/proc/self/status", security_opt=["seccomp=unconfined"])
    assert unconfined.stdout.split() == ["Seccomp:", "0"]


def test_volume_inside_proc_is_refused(runner, tmp_path):
    with pytest.raises(RuntimeFailure, match="inside /proc"):
        runner.run("true", volumes=[f"{tmp_path}:/proc/sys/kernel/x"])


def test_privileged_gets_all_capabilities_and_no_masks(runner):
    result = runner.run("sh", "-c", "cat /proc/self/status; ls /proc/acpi 2>/dev/null | wc -l", privileged=True)
    status = status_fields(result.stdout)
    host = status_fields(Path("/proc/self/status").read_text())
    assert status["CapBnd"] == status["CapEff"] == host["CapBnd"]  # everything the host has
    assert status["Seccomp"] == "0"
    if os.path.isdir("/proc/acpi") and os.listdir("/proc/acpi"):
        assert result.stdout.splitlines()[-1] != "0"
