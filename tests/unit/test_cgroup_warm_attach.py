"""warm_attach (runtime/cgroups/manager.py): the file it writes is this process's own cgroup.procs, so the
write moves nothing; and a thread started with every signal blocked leaves signals to the caller."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

from pyctr.runtime.cgroups import CgroupMode, own_procs_file, warm_attach

HYBRID = CgroupMode(version=1, v1_mounts={"pids": Path("/sys/fs/cgroup/pids"),
                                          "cpu": Path("/sys/fs/cgroup/cpu,cpuacct"),
                                          "cpuacct": Path("/sys/fs/cgroup/cpu,cpuacct")},
                    unified=Path("/sys/fs/cgroup/unified"))


def test_v1_names_the_first_mounted_controller_of_the_process():
    text = "9:name=systemd:/user.slice\n8:pids:/user.slice/a b\n4:cpu,cpuacct:/x\n0::/user.slice\n"
    assert own_procs_file(HYBRID, text) == Path("/sys/fs/cgroup/pids/user.slice/a b/cgroup.procs")


def test_v2_names_the_unified_cgroup():
    mode = CgroupMode(version=2, unified=Path("/sys/fs/cgroup"))
    assert own_procs_file(mode, "0::/system.slice/x.service\n") == \
        Path("/sys/fs/cgroup/system.slice/x.service/cgroup.procs")
    assert own_procs_file(mode, "0::/\n") == Path("/sys/fs/cgroup/cgroup.procs")


def test_nothing_to_name_gives_none():
    mode = CgroupMode(version=2, unified=None)
    assert own_procs_file(mode, "0::/\n") is None
    assert own_procs_file(HYBRID, "") is None
    assert own_procs_file(HYBRID, "garbage\n3:memory:/\n") is None  # memory is not mounted in HYBRID


def test_the_thread_writes_our_pid_with_signals_blocked_and_the_caller_keeps_its_mask(tmp_path, monkeypatch):
    procs = tmp_path / "cgroup.procs"
    procs.write_text("")
    seen: dict = {}
    started = threading.Event()
    from pyctr.runtime.cgroups import manager

    real_write = manager._write_own_pid

    def spy(path: Path) -> None:
        seen["mask"] = signal.pthread_sigmask(signal.SIG_BLOCK, [])
        real_write(path)
        started.set()

    monkeypatch.setattr(manager, "_write_own_pid", spy)
    monkeypatch.setattr(manager, "own_procs_file", lambda mode, text: procs)
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    warm_attach(HYBRID)
    assert started.wait(5)
    assert procs.read_text() == str(os.getpid())
    assert signal.SIGINT in seen["mask"] and signal.SIGTERM in seen["mask"]
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before
