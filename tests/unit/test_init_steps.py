"""The container process's steps, in order, with a recording fake of the kernel seam (tests/fake_kernel.py).

A new container's init (runtime/init.py + rootfs + the shared process sequence) and a process joining one
(runtime/exec.py's entering + the same sequence) run for real in a forked child, in a temporary root, with
every mount, namespace, id and capability call recorded instead of made. What each test asserts is an order
the security of the container depends on (runc's order), so a reordering fails here in milliseconds.
"""

from __future__ import annotations

import os
import signal
from dataclasses import replace
from pathlib import Path

import pytest

from pyctr.runtime import init, syscalls
from pyctr.runtime.exec import ExecOptions, enter_container, plan_exec
from pyctr.runtime.process import prepare_bundle, report, sequence
from pyctr.runtime.spec import RunOptions, make_spec
from pyctr.runtime.state import ContainerState
from tests.fake_kernel import RecordingKernel, record_in_child

CID = "c" * 64
HOST_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def new_spec(tmp_path: Path, command: str = "true", **flags):
    """A container spec whose bundle (and so its rootfs) lives in tmp_path; the command is the host's."""
    bundle = tmp_path / "bundle"
    image = {"config": {"Cmd": [command], "Env": [HOST_PATH]}}
    spec = make_spec(image, RunOptions("busybox", **flags), CID, "steps", bundle, [tmp_path / "layer"],
                     volumes_root=tmp_path / "volumes")
    prepare_bundle(spec)
    merged = Path(spec.rootfs.merged)
    for directory in ("proc/sys", "proc/scsi", "sys/firmware"):  # what the masked/read-only paths hide
        (merged / directory).mkdir(parents=True)
    (merged / "proc" / "kcore").write_text("")
    return spec


def run_init(spec, tmp_path: Path, program: bytes | None = b"\x06\x00\x00\x00\x00\x00\xff\x7f"):
    """The init's steps in a child, M's answers (in cgroup, go) already on the go pipe."""
    kernel = RecordingKernel(spec.rootfs.merged)

    def steps(k: RecordingKernel) -> None:
        go_r, go_w = os.pipe()
        os.write(go_w, report.IN_CGROUP + report.GO)
        report_r, report_w = os.pipe()
        null = os.open(os.devnull, os.O_RDWR)
        shim = os.open(os.devnull, os.O_RDONLY)
        fds = init.ChildFds(null, null, null, go_r, report_w, seccomp_program=program, shim=shim)
        init.set_up_and_exec(spec, fds, k)

    return record_in_child(steps, kernel)


def names(calls: list[list]) -> list[str]:
    return [call[0] for call in calls]


def first(calls: list[list], *match) -> int:
    """Index of the first call starting with `match`."""
    for index, call in enumerate(calls):
        if tuple(call[:len(match)]) == match:
            return index
    raise AssertionError(f"no call {match} in {names(calls)}")


def mounts_at(calls: list[list], target: str) -> list[int]:
    return [i for i, call in enumerate(calls) if call[0] == "mount" and call[2] == target]


def test_init_runs_to_the_exec_of_the_command(tmp_path):
    calls, end = run_init(new_spec(tmp_path), tmp_path)
    assert end == "exec"
    executable, args = calls[-1][1], calls[-1][2]
    assert os.path.basename(executable) == "true" and args == ["true"]


def test_host_state_is_closed_before_the_namespaces_and_imports_sealed_before_any_mount(tmp_path):
    calls, _ = run_init(new_spec(tmp_path), tmp_path)
    unshare = first(calls, "unshare")
    assert first(calls, "set_parent_death_signal", signal.SIGKILL) < unshare
    assert first(calls, "set_dumpable", False) < unshare
    assert calls[unshare][1] & syscalls.CLONE_NEWNS and calls[unshare][1] & syscalls.CLONE_NEWNET
    assert unshare < first(calls, "seal_imports") < first(calls, "mount")


def test_mounts_follow_runc_order_and_pivot_root_comes_after_all_of_them(tmp_path):
    spec = new_spec(tmp_path)
    calls, _ = run_init(spec, tmp_path)
    mount_indexes = [i for i, call in enumerate(calls) if call[0] == "mount"]
    assert calls[mount_indexes[0]][2:5] == ["/", None, syscalls.MS_SLAVE | syscalls.MS_REC]  # host unaffected
    assert calls[mount_indexes[1]][3] == "overlay"
    pivot = first(calls, "pivot_root")
    assert calls[pivot][1] == "/"  # pivoted into the container's root (the fake records it relative to it)
    assert all(i < pivot for i in mount_indexes)  # no --read-only: nothing is mounted after pivot_root
    assert calls[pivot + 1] == ["umount2", ".", syscalls.MNT_DETACH]  # the old root is detached at once
    assert pivot < first(calls, "sethostname", spec.hostname)  # the container's UTS namespace, never the host's


def test_masked_and_readonly_paths_are_mounted_after_proc_and_sys(tmp_path):
    calls, _ = run_init(new_spec(tmp_path), tmp_path)
    proc = mounts_at(calls, "/proc")[0]
    sysfs = mounts_at(calls, "/sys")[0]
    kcore = mounts_at(calls, "/proc/kcore")
    firmware = mounts_at(calls, "/sys/firmware")
    proc_sys = mounts_at(calls, "/proc/sys")
    assert kcore and firmware and proc_sys
    assert calls[kcore[0]][1] == "/dev/null"  # a file is hidden behind the container's own /dev/null
    assert calls[firmware[0]][3] == "tmpfs" and calls[firmware[0]][4] & syscalls.MS_RDONLY
    assert calls[proc_sys[-1]][4] & syscalls.MS_RDONLY  # bound onto itself, then remounted read-only
    assert proc < min(kcore + proc_sys) and sysfs < firmware[0]
    assert first(calls, "mknod", "null") < kcore[0]  # /dev/null exists (and was checked) before it masks


def test_the_cgroup_namespace_is_entered_after_the_other_mounts_and_before_the_cgroup_filesystem(tmp_path):
    calls, _ = run_init(new_spec(tmp_path), tmp_path)
    enter = first(calls, "unshare", syscalls.CLONE_NEWCGROUP)
    cgroup_mounts = [i for i, c in enumerate(calls) if c[0] == "mount" and c[2].startswith("/sys/fs/cgroup")]
    assert cgroup_mounts and all(i > enter for i in cgroup_mounts)
    assert mounts_at(calls, "/proc")[0] < enter and mounts_at(calls, "/etc/hosts")[0] < enter


def test_seccomp_comes_before_the_capability_drop_and_setuid_between_bounding_and_permitted(tmp_path):
    calls, _ = run_init(new_spec(tmp_path, user="1000:1000"), tmp_path)
    seccomp = first(calls, "seccomp_set_filter")
    setuid = first(calls, "setuid", 1000)
    assert seccomp < first(calls, "drop_bounding_set") < setuid  # the bounding set needs CAP_SETPCAP
    assert first(calls, "keep_capabilities_across_setuid", True) < first(calls, "setgroups") \
        < first(calls, "setgid", 1000) < setuid < first(calls, "keep_capabilities_across_setuid", False)
    assert setuid < first(calls, "limit_permitted_and_effective")  # permitted survives setuid only until here
    assert setuid < first(calls, "close_range", sequence.SHIM_FD + 1) < first(calls, "exec_shim")


def test_no_new_privileges_is_set_after_the_ids_and_only_when_asked(tmp_path):
    calls, _ = run_init(new_spec(tmp_path, security_opt=["no-new-privileges"]), tmp_path)
    assert first(calls, "setuid") < first(calls, "set_no_new_privileges") < first(calls, "exec_shim")
    (tmp_path / "again").mkdir()
    calls, _ = run_init(new_spec(tmp_path / "again"), tmp_path / "again")
    assert "set_no_new_privileges" not in names(calls)


def test_a_container_outlives_its_launcher_unless_it_is_a_build_step(tmp_path):
    spec = new_spec(tmp_path)
    calls, _ = run_init(spec, tmp_path)
    last = [c for c in calls if c[0] == "set_parent_death_signal"][-1]
    assert last == ["set_parent_death_signal", 0] and first(calls, "setuid") < calls.index(last)
    calls, _ = run_init(replace(spec, dies_with_launcher=True), tmp_path)
    assert [c for c in calls if c[0] == "set_parent_death_signal"][-1] == ["set_parent_death_signal", signal.SIGKILL]


def test_a_read_only_root_is_remounted_after_pivot_root_and_before_privileges_drop(tmp_path):
    calls, _ = run_init(new_spec(tmp_path, read_only=True), tmp_path)
    remount = [i for i, c in enumerate(calls) if c[0] == "mount" and c[2] == "/" and c[4] & syscalls.MS_RDONLY]
    assert len(remount) == 1 and first(calls, "pivot_root") < remount[0] < first(calls, "seccomp_set_filter")


def test_a_missing_command_fails_before_any_privilege_is_dropped(tmp_path):
    calls, end = run_init(new_spec(tmp_path, command="no-such-command-here"), tmp_path)
    assert end.startswith("CommandNotFound") and "executable file not found in $PATH" in end
    assert not {"seccomp_set_filter", "setuid", "drop_bounding_set", "exec_shim"} & set(names(calls))


def test_unconfined_seccomp_installs_no_filter(tmp_path):
    calls, end = run_init(new_spec(tmp_path), tmp_path, program=None)
    assert end == "exec" and "seccomp_set_filter" not in names(calls)


# -- a process joining a running container (exec) ------------------------------------------------------------


class RecordingCgroup:
    def __init__(self, kernel: RecordingKernel) -> None:
        self.paths = ["/sys/fs/cgroup/pyctr/x"]
        self.kernel = kernel

    def add_process(self, pid: int) -> None:
        self.kernel.calls.append(("join_cgroup", pid))


def exec_plan(tmp_path: Path, network: str = "bridge", **options):
    spec = new_spec(tmp_path, network=network)
    state = ContainerState(status="running", pid=os.getpid(), pid_start_time=1)
    return plan_exec(CID, spec, state, ExecOptions(["true"], **options), {})


@pytest.mark.parametrize("network, joined", [
    ("bridge", ["ipc", "uts", "net", "pid", "cgroup", "mount"]),
    ("host", ["ipc", "uts", "pid", "cgroup", "mount"]),
])
def test_a_joiner_enters_cgroup_then_namespaces_with_mount_last(tmp_path, monkeypatch, network, joined):
    monkeypatch.chdir(tmp_path)
    plan = exec_plan(tmp_path, network)
    kernel = RecordingKernel()
    ns_fds = {ns: os.open(os.devnull, os.O_RDONLY) for ns in plan.namespaces}
    previous_umask = os.umask(0o077)
    try:
        enter_container(plan, ns_fds, RecordingCgroup(kernel), kernel)
    finally:
        os.umask(previous_umask)
    flags = {ns.flag: ns.name for ns in plan.namespaces}
    calls = [list(c) for c in kernel.calls]
    assert calls[:3] == [["set_parent_death_signal", signal.SIGKILL], ["set_dumpable", False],
                         ["join_cgroup", os.getpid()]]
    assert [flags[c[1]] for c in calls if c[0] == "setns"] == joined
    assert calls[-2:] == [["seal_imports"], ["setns", syscalls.CLONE_NEWNS]]  # imports sealed just before mnt


def test_a_joiner_runs_the_shared_sequence_without_creating_the_workdir(tmp_path):
    plan = exec_plan(tmp_path)

    def steps(k: RecordingKernel) -> None:
        report_r, report_w = os.pipe()
        sequence.run_command(plan.spec, sequence.Role(joining=True), report_w, os.open(os.devnull, os.O_RDONLY),
                             b"bpf", k)

    calls, end = record_in_child(steps, RecordingKernel())
    assert end == "exec"
    assert names(calls)[:2] == ["seccomp_set_filter", "drop_bounding_set"]
    assert "set_parent_death_signal" not in names(calls)  # a joiner keeps none: it is not the container's init
    missing = tmp_path / "no-such-dir"
    spec = replace(plan.spec, process=replace(plan.spec.process, cwd=str(missing)))
    calls, end = record_in_child(
        lambda k: sequence.run_command(spec, sequence.Role(joining=True), 0, 0, None, k), RecordingKernel())
    assert end.startswith("RuntimeFailure") and "chdir to cwd" in end and not missing.exists()
    assert calls == []


def test_the_fake_replaces_every_call_of_the_real_kernel():
    """A method the fake did not override would make the real syscall from a unit test (and record nothing)."""
    from pyctr.runtime.process.kernel import Kernel

    real = {name for name in vars(Kernel) if not name.startswith("_")}
    assert real and real <= set(vars(RecordingKernel))
