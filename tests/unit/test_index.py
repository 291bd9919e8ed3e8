"""The container index (runtime/index.py): consistent with the containers through every transition, rebuilt
when missing, damaged or stale, never trusted where a stale entry would give a wrong answer, and safe under
parallel creates of one name."""

import json
import multiprocessing
import os
import shutil

import pytest

from pyctr.config import Paths
from pyctr.errors import ConflictError, NotFoundError
from pyctr.runtime import index as ix
from pyctr.runtime import state as st


def running_state():
    return st.started(st.ContainerState(), os.getpid(), st.proc_start_time(os.getpid()), 0, 0, st.boot_id())


@pytest.fixture
def store(tmp_path):
    return st.ContainerStore(Paths(tmp_path))


def make(store, name=None):
    return store.create(lambda cid, n: {"Image": "busybox", "Config": {"Image": "busybox"}}, name)


def stored_index(store):
    names, running = store.index.describe()
    return names, running


def index_from_scratch(store):
    """What a rebuild says: the reference every incremental update must equal."""
    store.index.invalidate()
    shutil.rmtree(store.index.root)
    with st.file_lock(store.paths.locks / "containers.lock"):
        store.rebuild_index_locked()
    return stored_index(store)


def test_stamp_matches_only_the_same_directory_state():
    assert ix.stamp_matches(json.dumps({"version": ix.VERSION, "containers": [1, 2, 3]}).encode(), [1, 2, 3])
    assert not ix.stamp_matches(json.dumps({"version": ix.VERSION, "containers": [1, 2, 4]}).encode(), [1, 2, 3])
    assert not ix.stamp_matches(json.dumps({"version": 0, "containers": [1, 2, 3]}).encode(), [1, 2, 3])
    assert not ix.stamp_matches(b"{not json", [1, 2, 3])
    assert not ix.stamp_matches(b"[1, 2, 3]", [1, 2, 3])


def test_long_names_get_a_hashed_entry_that_no_name_can_take():
    long = "a" * 300
    assert ix.entry_name("web") == "web"
    assert ix.entry_name(long).startswith("~") and len(ix.entry_name(long)) < 255


def test_index_follows_create_start_exit_rename_rm(store):
    web, db = make(store, "web"), make(store, "pg")
    store.update_state(web.id, lambda s: running_state())
    assert stored_index(store) == ({"web": web.id, "pg": db.id}, {web.id})
    assert [r.id for r in store.list_running()] == [web.id]
    store.update_state(web.id, lambda s: st.exited(s, 0))
    assert stored_index(store)[1] == set() and store.list_running() == []
    store.rename(db.id, "pg2")
    assert store.get("pg2").id == db.id
    with pytest.raises(NotFoundError):
        store.get("pg")  # not hex: "db" would also be a prefix of 1 in 128 pairs of random ids
    store.remove_directory(web.id)
    assert stored_index(store) == ({"pg2": db.id}, set())
    assert store.index.is_current()
    assert stored_index(store) == index_from_scratch(store)


def test_long_name_round_trip(store):
    rec = make(store, "n" * 300)
    assert store.get("n" * 300).id == rec.id
    with pytest.raises(ConflictError):
        make(store, "n" * 300)


@pytest.mark.parametrize("damage", ["delete", "corrupt", "delete_names"])
def test_missing_or_damaged_index_is_rebuilt_before_use(store, damage):
    web = make(store, "web")
    store.update_state(web.id, lambda s: running_state())
    if damage == "delete":
        shutil.rmtree(store.index.root)
    elif damage == "corrupt":
        (store.index.root / ix.STAMP_FILE).write_text("garbage")
        shutil.rmtree(store.index.running)
    else:
        shutil.rmtree(store.index.names)
    assert [r.id for r in store.list_running()] == [web.id]
    with pytest.raises(ConflictError):
        make(store, "web")
    assert store.get("web").id == web.id and store.index.is_current()


def test_a_container_added_behind_the_index_is_seen(store):
    """A directory the index did not see (an older pyctr, a restore by hand) makes the stamp stale: its name
    must still clash."""
    web = make(store, "web")
    other = "f" * 64
    shutil.copytree(store.directory(web.id), store.directory(other))
    config = json.loads((store.directory(other) / st.CONFIG_FILE).read_text())
    (store.directory(other) / st.CONFIG_FILE).write_text(json.dumps({**config, "Id": other, "Name": "restored"}))
    assert not store.index.is_current()
    with pytest.raises(ConflictError):
        make(store, "restored")
    assert store.get("restored").id == other


def test_stale_entries_are_not_trusted(store):
    web = make(store, "web")
    # a name entry outliving its container (a crash between rename and index update)
    store.index.set_name("ghost", "e" * 64)
    assert make(store, "ghost").name == "ghost"
    with pytest.raises(NotFoundError):
        store.get("e" * 12)
    # a name entry pointing at a container that now has another name
    store.index.set_name("old", web.id)
    with pytest.raises(NotFoundError):
        store.get("old")
    # a running entry of a stopped container: ps does not show it, and forgets it
    store.index.mark_running(web.id)
    assert store.list_running() == []
    assert web.id not in store.index.running_ids()


def test_running_entry_written_before_the_state(store, monkeypatch):
    """A crash between the two writes must leave the index listing more, never less, than what runs."""
    web = make(store, "web")

    def crash(path, obj):
        raise OSError("killed")

    monkeypatch.setattr(store, "_write", crash)
    with pytest.raises(OSError):
        store.update_state(web.id, lambda s: running_state())
    assert web.id in store.index.running_ids()


def test_prefix_and_name_resolution_with_the_index(store):
    a = make(store, "alpha")
    assert store.get(a.id[:5]).id == a.id
    assert store.get(a.id).id == a.id
    assert store.get("/alpha").id == a.id
    with pytest.raises(NotFoundError):
        store.get("nosuch")


def _create_named(root: str, name: str, results) -> None:
    store = st.ContainerStore(Paths(__import__("pathlib").Path(root)))
    try:
        make(store, name)
        results.put("won")
    except ConflictError:
        results.put("conflict")


def test_parallel_creates_of_one_name_exactly_one_wins(tmp_path):
    make(st.ContainerStore(Paths(tmp_path)), "first")  # an index exists: creates go through it
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    procs = [ctx.Process(target=_create_named, args=(str(tmp_path), "same", results)) for _ in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    outcomes = sorted(results.get(timeout=5) for _ in procs)
    assert outcomes == ["conflict"] * 7 + ["won"]
    store = st.ContainerStore(Paths(tmp_path))
    assert sorted(r.name for r in store.list()) == ["first", "same"]
    assert stored_index(store) == index_from_scratch(store)


def test_system_check_rebuilds_a_missing_index_quietly_and_repairs_a_wrong_one(tmp_path):
    from pyctr.config import Config
    from pyctr.runtime import check

    config = Config(root=tmp_path)
    store = st.ContainerStore(config.paths)
    web = make(store, "web")
    store.update_state(web.id, lambda s: running_state())
    shutil.rmtree(store.index.root)
    assert check.check_containers(config) == [] and store.index.is_current()
    assert stored_index(store) == ({"web": web.id}, {web.id})
    # current stamp, wrong content: a lost running entry and a lost name are damage, reported and repaired
    store.index.unmark_running(web.id)
    store.index.drop_name("web")
    [outcome] = check.check_containers(config)
    assert outcome.repaired and outcome.finding.subject == "container index"
    assert "names disagree" in outcome.finding.problem and "running containers missing" in outcome.finding.problem
    assert stored_index(store) == ({"web": web.id}, {web.id})
    assert check.check_containers(config) == []


def test_a_container_that_stops_while_check_reads_is_not_missing_from_the_index():
    """check reads the containers, then the index: a `run --rm` ending in between (state exited, unmarked)
    must not be reported as a running container the index lacks."""
    from pyctr.runtime import check

    running = check.ContainerFacts("a" * 64, "container", name="web", state=running_state())
    index = check.IndexFacts(True, {"web": "a" * 64}, frozenset())
    assert check.index_findings(check.RuntimeSnapshot({running.id: running}, index=index))
    settled = check.IndexFacts(True, {"web": "a" * 64}, frozenset(), stopped_since=frozenset({running.id}))
    assert check.index_findings(check.RuntimeSnapshot({running.id: running}, index=settled)) == []


@pytest.mark.timeout(30)
def test_a_reader_holding_the_store_lock_rebuilds_instead_of_waiting_for_itself(store):
    """`system check` holds the store-wide lock while it resolves containers: a stale index is rebuilt under
    that same lock (a second flock on the lock file from this process would block forever)."""
    web = make(store, "web")
    with store.global_lock():
        shutil.rmtree(store.index.root)
        assert store.get("web").id == web.id
        assert store.index.is_current()


def test_removing_a_container_twice_is_quiet_and_keeps_the_index_current(store):
    """Two `rm -f` of one container race: the second finds nothing to hide or delete."""
    web = make(store, "web")
    store.remove_directory(web.id)
    store.remove_directory(web.id)
    assert store.index.is_current() and stored_index(store) == ({}, set())


def test_a_straggler_file_in_the_trash_is_removed_too(store, monkeypatch):
    web = make(store, "web")
    trash = store.root / f".removing-{web.id}"
    real_rmdir = os.rmdir
    calls = []

    def rmdir_after_a_straggler(path, *a, **k):
        if not calls:  # the monitor writes one last file just before the first rmdir
            calls.append(path)
            (trash / "late").write_text("x")
        return real_rmdir(path, *a, **k)

    monkeypatch.setattr(os, "rmdir", rmdir_after_a_straggler)
    store.remove_directory(web.id)
    assert not trash.exists() and store.index.is_current()


def test_readers_fall_back_to_scanning_when_the_index_cannot_be_built(store, monkeypatch):
    """A root whose lock or index cannot be written (read-only) still lists and resolves, by reading everything."""
    web = make(store, "web")
    store.update_state(web.id, lambda s: running_state())
    shutil.rmtree(store.index.root)

    def refuse(*a, **k):
        raise st.StoreError("cannot open lock file: Read-only file system")

    monkeypatch.setattr(st, "file_lock", refuse)
    assert store.get("web").id == web.id
    assert [r.id for r in store.list_running()] == [web.id]
    assert not store.index.root.exists()


def test_a_removal_under_way_is_not_an_interrupted_one(tmp_path):
    """rm hides the directory as `.removing-<id>` and empties it outside the store-wide lock, holding an flock on
    it: `system check` (under the store-wide lock) leaves that one alone and finishes only a dead rm's."""
    import fcntl

    from pyctr.runtime import check

    trash = tmp_path / ".removing-x"
    trash.mkdir()
    assert not st.removal_under_way(trash)
    fd = os.open(trash, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        assert st.removal_under_way(trash)
    finally:
        os.close(fd)
    assert not st.removal_under_way(trash)
    busy = check.ContainerFacts("b" * 64, "removing", removal_under_way=True)
    left = check.ContainerFacts("c" * 64, "removing")
    findings = check.decide(check.RuntimeSnapshot({busy.id: busy, left.id: left}))
    assert [f.target for f in findings if f.repair == "finish_removal"] == [left.id]
