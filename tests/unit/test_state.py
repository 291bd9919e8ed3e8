"""Container state: transitions, reconciliation with the kernel (PID reuse, reboots), the store."""

import os
import subprocess
import threading
from pathlib import Path

import pytest

from pyctr.config import Paths
from pyctr.errors import ConflictError, NotFoundError, UsageError
from pyctr.runtime import state as st


def running_state(pid=100, start=555, monitor=0, monitor_start=0, boot="boot-a"):
    return st.started(st.ContainerState(), pid, start, monitor, monitor_start, boot,
                      at="2024-01-01T00:00:00.000000001Z")


def test_round_trip_uses_docker_keys():
    s = running_state()
    d = s.to_dict()
    assert d["Status"] == "running" and d["Pid"] == 100 and d["PidStartTime"] == 555
    assert st.ContainerState.from_dict(d) == s
    assert st.ContainerState.from_dict({"Status": "exited", "Unknown": 1}).status == "exited"


def test_transitions():
    s = running_state()
    assert s.running and s.exit_code == 0 and s.finished_at == st.ZERO_TIME
    e = st.exited(s, 3, oom_killed=True, at="2024-01-01T00:00:01Z")
    assert (e.status, e.exit_code, e.oom_killed, e.pid, e.finished_at) == ("exited", 3, True, 0, "2024-01-01T00:00:01Z")
    again = st.started(e, 7, 8, 9, 10, "b")
    # Docker 20.10: `docker restart` / `docker start` of a stopped container leaves RestartCount at 0 (it
    # counts only restart-policy restarts).
    assert again.restart_count == 0 and again.exit_code == 0 and not again.oom_killed


def test_reconcile_leaves_live_process_alone():
    s = running_state()
    assert st.reconcile(s, "boot-a", lambda pid, start: pid == 100 and start == 555) is None


def test_reconcile_detects_pid_reuse_by_start_time():
    s = running_state()
    # the pid exists, but with another start time: a different process
    fixed = st.reconcile(s, "boot-a", lambda pid, start: False)
    assert fixed.status == "exited" and fixed.exit_code == st.EXIT_UNKNOWN


def test_reconcile_waits_for_a_live_monitor():
    s = running_state(monitor=200, monitor_start=9)
    assert st.reconcile(s, "boot-a", lambda pid, start: pid == 200) is None


def test_reconcile_uses_the_exit_code_the_monitor_left():
    s = running_state(monitor=200, monitor_start=9)
    fixed = st.reconcile(s, "boot-a", lambda pid, start: False, (137, "2024-01-01T00:00:05Z"))
    assert fixed.exit_code == 137 and fixed.finished_at == "2024-01-01T00:00:05Z"


def test_reconcile_after_reboot_ignores_matching_pids():
    s = running_state()
    fixed = st.reconcile(s, "boot-b", lambda pid, start: True)
    assert fixed.status == "exited"


def test_reconcile_ignores_stopped_containers():
    assert st.reconcile(st.ContainerState(), "b", lambda p, s: False) is None


def test_proc_start_time_of_self_and_of_dead_pid():
    me = st.proc_start_time(os.getpid())
    assert isinstance(me, int) and me > 0
    p = subprocess.Popen(["true"])
    p.wait()
    assert st.proc_start_time(p.pid) is None
    assert st.process_alive(os.getpid(), me)
    assert not st.process_alive(os.getpid(), me + 1)


def test_rfc3339_round_trip():
    text = st.format_rfc3339_ns(1_700_000_000_123_456_789)
    assert text == "2023-11-14T22:13:20.123456789Z"
    assert abs(st.parse_rfc3339(text) - 1_700_000_000.123456789) < 1e-6
    assert st.parse_rfc3339(st.ZERO_TIME) == 0.0


@pytest.fixture
def store(tmp_path):
    return st.ContainerStore(Paths(tmp_path))


def make(store, name=None, image="busybox"):
    return store.create(lambda cid, n: {"Image": image, "Config": {"Image": image}}, name)


def test_create_stores_config_and_state(store, tmp_path):
    rec = make(store, "web")
    assert rec.name == "web" and len(rec.id) == 64
    d = tmp_path / "containers" / rec.id
    assert (d / "config.json").exists() and (d / "state.json").exists()
    assert oct(d.stat().st_mode & 0o777) == "0o700"
    loaded = store.get("web")
    assert loaded.id == rec.id and loaded.state.status == "created"


def test_name_conflict_uses_dockers_message(store):
    rec = make(store, "web")
    with pytest.raises(ConflictError) as e:
        make(store, "web")
    assert e.value.message == (
        f'Conflict. The container name "/web" is already in use by container "{rec.id}". '
        "You have to remove (or rename) that container to be able to reuse that name.")


def test_invalid_name_refused(store):
    with pytest.raises(UsageError):
        make(store, "-bad")


def test_resolution_by_full_id_name_and_prefix(store):
    a = make(store, "alpha")
    b = make(store, "beta")
    assert store.get(a.id).id == a.id
    assert store.get("beta").id == b.id
    assert store.get("/beta").id == b.id
    assert store.get(a.id[:12]).id == a.id
    with pytest.raises(NotFoundError, match="No such container: nope"):
        store.get("nope")


def test_ambiguous_prefix(store, monkeypatch):
    ids = iter(["ab" + "0" * 62, "ab" + "1" * 62])
    monkeypatch.setattr(st.names, "new_id", lambda: next(ids))
    make(store)
    make(store)
    with pytest.raises(NotFoundError, match="multiple IDs"):
        store.get("ab")
    assert store.get("ab0").id.startswith("ab0")


def test_name_wins_over_prefix(store, monkeypatch):
    monkeypatch.setattr(st.names, "new_id", lambda: "cafe" + "0" * 60)
    make(store, "x1")
    monkeypatch.setattr(st.names, "new_id", lambda: "beef" + "0" * 60)
    make(store, "cafe")
    assert store.get("cafe").id.startswith("beef")


def test_list_newest_first_and_remove(store):
    recs = [make(store) for _ in range(3)]
    listed = store.list()
    assert [r.id for r in listed] == [r.id for r in reversed(recs)]
    store.remove_directory(recs[0].id)
    assert len(store.list()) == 2
    with pytest.raises(NotFoundError):
        store.get(recs[0].id)


def test_list_reconciles_dead_process_and_persists(store):
    rec = make(store)
    p = subprocess.Popen(["true"])
    p.wait()
    store.write_state(rec.id, st.started(st.ContainerState(), p.pid, 12345, 0, 0, st.boot_id()))
    [listed] = store.list()
    assert listed.state.status == "exited" and listed.state.exit_code == 255
    assert store.read_state(rec.id).status == "exited"


def test_list_keeps_live_process_running(store):
    rec = make(store)
    store.write_state(rec.id, st.started(st.ContainerState(), os.getpid(), st.proc_start_time(os.getpid()), 0, 0,
                                         st.boot_id()))
    assert store.get(rec.id).state.status == "running"


def test_parallel_creates_never_share_names(store):
    results, errors = [], []

    def worker():
        try:
            for _ in range(10):
                results.append(make(store))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({r.name for r in results}) == 80 and len({r.id for r in results}) == 80


def test_unfinished_create_is_ignored(store, tmp_path):
    make(store, "ok")
    (tmp_path / "containers" / ("f" * 64)).mkdir()
    assert [r.name for r in store.list()] == ["ok"]


def test_update_state_missing_container(store):
    with pytest.raises(NotFoundError):
        store.update_state("0" * 64, lambda s: s)


def test_exit_file(store):
    rec = make(store)
    Path(store.directory(rec.id), st.EXIT_FILE).write_text("137 2024-01-01T00:00:00Z\n")
    assert store.read_exit_file(rec.id) == (137, "2024-01-01T00:00:00Z")


def test_failed_start_stays_created_with_error():
    s = st.start_failed(st.ContainerState(), 127, 'exec: "x": executable file not found in $PATH')
    assert (s.status, s.exit_code, s.running) == ("created", 127, False)
    assert "not found" in s.error
    assert st.start_failed(st.exited(running_state(), 0), 126, "denied").status == "exited"


def test_failed_config_build_leaves_no_directory(store, tmp_path):
    def bad(cid, name):
        raise UsageError("Minimum memory limit allowed is 6MB")

    with pytest.raises(UsageError):
        store.create(bad, "x1")
    assert list((tmp_path / "containers").iterdir()) == []
    assert store.create(lambda cid, name: {}, "x1").name == "x1"  # the name was released too


def test_spec_is_stored_apart_and_loaded_on_demand(store, tmp_path):
    rec = store.create(lambda cid, n: {"Image": "busybox", "Spec": {"id": cid}, "Options": {"rm": True}}, "sp")
    d = tmp_path / "containers" / rec.id
    import json

    assert "Spec" not in json.loads((d / "config.json").read_text())
    assert json.loads((d / "spec.json").read_text())["Spec"] == {"id": rec.id}
    loaded = store.get("sp")
    assert "Spec" not in dict.keys(loaded.config)  # not parsed by plain reads such as ps
    assert loaded.config["Spec"] == {"id": rec.id}
    assert store.get("sp").config.get("Options") == {"rm": True}
    with pytest.raises(KeyError):
        loaded.config["Nope"]


def test_damaged_state_shows_dead_and_damaged_config_is_skipped(store, tmp_path):
    a = make(store, "hurt")
    b = make(store, "broken")
    (tmp_path / "containers" / a.id / "state.json").write_text("{half")
    (tmp_path / "containers" / b.id / "config.json").write_text("[1, 2")
    listed = {r.name: r for r in store.list()}
    assert list(listed) == ["hurt"]
    assert listed["hurt"].state.status == "dead" and "unreadable" in listed["hurt"].state.error
    assert store.get("hurt").state.status == "dead"
