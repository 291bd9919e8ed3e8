"""`system check` of container state: pure decisions on made-up facts, then repairs of a temp root's state."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import replace

import pytest

from pyctr.config import Config
from pyctr.runtime import check
from pyctr.runtime import state as st
from pyctr.runtime.check import ContainerFacts, RuntimeSnapshot, StrayCgroup, decide

A, B, C = "a" * 64, "b" * 64, "c" * 64


def running(pid=100, start=5):
    return st.started(st.ContainerState(), pid, start, 0, 0, st.boot_id())


def exited():
    return st.exited(running(), 0)


# ------------------------------------------------------------------ pure decisions

def test_half_unreadable_and_removing_directories():
    snap = RuntimeSnapshot(containers={
        A: ContainerFacts(A, "half"),
        B: ContainerFacts(B, "unreadable", error="state.json: Expecting value"),
        C: ContainerFacts(C, "removing"),
    })
    assert [(f.repair, f.target) for f in decide(snap)] == [
        ("remove_container", A), ("remove_container", B), ("finish_removal", C)]


def test_dead_running_container_is_marked_exited_and_torn_down():
    dead = ContainerFacts(A, "container", "web", state=running(), reconciled=st.exited(running(), 255),
                          network_ip="10.0.0.2", cgroup_exists=True, cgroup_age=60)
    findings = decide(RuntimeSnapshot(containers={A: dead}, network_ids=frozenset({A})))
    assert [f.repair for f in findings] == ["mark_exited", "teardown"]
    assert findings[0].subject == f"container {A[:12]} (web)"
    assert "a cgroup, network address 10.0.0.2" in findings[1].problem


def test_live_running_container_is_fine_even_with_cgroup_and_network():
    live = ContainerFacts(A, "container", state=running(), cgroup_exists=True, cgroup_pids=(100,),
                          network_ip="10.0.0.2", veth_exists=True)
    assert decide(RuntimeSnapshot(containers={A: live}, network_ids=frozenset({A}))) == []


@pytest.mark.parametrize("facts", [
    ContainerFacts(A, "container", state=exited(), cgroup_exists=True, cgroup_pids=(7,)),  # start in progress
    ContainerFacts(A, "container", state=exited(), network_ip="10.0.0.2", veth_exists=True),  # netns alive
    ContainerFacts(A, "container", state=exited(), cgroup_exists=True, cgroup_age=1.0),  # cgroup just created
])
def test_what_may_be_a_start_in_progress_is_left_alone(facts):
    assert decide(RuntimeSnapshot(containers={A: facts})) == []


def test_container_found_dead_gets_no_grace_for_its_fresh_cgroup():
    dead = ContainerFacts(A, "container", state=running(), reconciled=st.exited(running(), 255),
                          cgroup_exists=True, cgroup_age=0.5)
    assert [f.repair for f in decide(RuntimeSnapshot(containers={A: dead}))] == ["mark_exited", "teardown"]


def test_exited_container_with_leftover_mount_and_old_cgroup():
    facts = ContainerFacts(A, "container", state=exited(), cgroup_exists=True, cgroup_age=30.0,
                           mounts=("/r/containers/a/rootfs/merged",))
    [finding] = decide(RuntimeSnapshot(containers={A: facts}))
    assert finding.repair == "teardown" and "a cgroup, 1 mount(s)" in finding.problem


def test_network_records_of_removed_containers_are_reaped():
    snap = RuntimeSnapshot(containers={A: ContainerFacts(A, "container", state=exited())},
                           network_ids=frozenset({A, B}), stray_cgroups={B: StrayCgroup(True)})
    findings = decide(snap)
    # A's record is a non-running container's leftover (teardown), B's container is gone (reap)
    assert [(f.repair, f.target) for f in findings] == [("reap_network", B)]
    assert "and a cgroup" in findings[0].problem


def test_unreadable_network_state_cannot_be_repaired():
    [finding] = decide(RuntimeSnapshot(network_error="network state x is unreadable"))
    assert finding.repair is None


# ------------------------------------------------------------------ repairs of a real (temp) root

@pytest.fixture
def config(tmp_path) -> Config:
    root = tmp_path / "root"
    (root / "containers").mkdir(parents=True)
    return Config(root=root)


def dead_pid() -> tuple[int, int]:
    """A pid and start time that no longer name a live process."""
    proc = subprocess.Popen(["true"])
    start = st.proc_start_time(proc.pid) or 1
    proc.wait()
    return proc.pid, start


def write_container(config: Config, cid: str, state: st.ContainerState, name: str = "c") -> None:
    directory = config.paths.containers / cid
    directory.mkdir()
    (directory / "state.json").write_text(json.dumps(state.to_dict()))
    (directory / "config.json").write_text(json.dumps({"Id": cid, "Name": name, "Created": st.now_rfc3339()}))


def test_repairs_on_disk(config):
    containers = config.paths.containers
    (containers / A).mkdir()  # create interrupted before config.json
    (containers / A / "state.json").write_text("{}")
    (containers / f".removing-{B}").mkdir()  # rm interrupted after hiding the directory
    (containers / f".removing-{B}" / "config.json").write_text("{}")
    pid, start = dead_pid()
    write_container(config, C, running(pid, start), "web")
    with open(containers / C / st.EXIT_FILE, "w") as f:
        f.write("3 2024-01-01T00:00:00.000000000Z")
    outcomes = check.check_containers(config)
    assert all(o.repaired for o in outcomes), [o.line() for o in outcomes]
    assert sorted(os.listdir(containers)) == [C]
    assert [o.note for o in outcomes if o.finding.repair == "mark_exited"] == ["marked exited (3)"]
    saved = st.ContainerState.from_dict(json.loads((containers / C / "state.json").read_text()))
    assert (saved.status, saved.exit_code) == ("exited", 3)
    assert check.check_containers(config) == []


def test_unreadable_state_is_removed(config):
    write_container(config, A, exited())
    (config.paths.containers / A / "state.json").write_text("{truncated")
    [outcome] = check.check_containers(config)
    assert outcome.repaired and "unreadable state" in outcome.finding.problem
    assert not (config.paths.containers / A).exists()


def test_dry_run_reports_and_changes_nothing(config):
    pid, start = dead_pid()
    write_container(config, A, running(pid, start))
    [outcome] = check.check_containers(config, repair=False)
    assert not outcome.repaired and outcome.note == "would mark exited"
    assert st.ContainerState.from_dict(json.loads((config.paths.containers / A / "state.json").read_text())).running


def test_live_container_is_left_alone(config):
    me = os.getpid()
    write_container(config, A, replace(running(me, st.proc_start_time(me) or 0)))
    assert check.check_containers(config) == []


def test_foreign_entries_are_ignored(config):
    (config.paths.containers / "README").write_text("not pyctr's")
    (config.paths.containers / ".state.json.tmp.1").write_text("")
    assert check.check_containers(config) == []
