"""The listing copy of config.json kept in state.json (issue 18: `ps -a` reads one small file per container).

What must hold: a listing shows what config.json says, even after a crash between a config.json write and its
state.json rewrite (a stale copy is detected by its stamp and ignored), state transitions keep it, and
`system check` (refresh_stale_listings) brings old or stale ones up to date.
"""

import json

import pytest

from pyctr.config import Paths
from pyctr.fsutil import atomic_write_bytes
from pyctr.runtime import state as st


@pytest.fixture
def store(tmp_path):
    return st.ContainerStore(Paths(tmp_path))


def make(store, name, labels=None):
    return store.create(lambda cid, n: {
        "Image": "sha256:abc", "Path": "sh", "Args": ["-c", "sleep 1"], "Ports": [],
        "Config": {"Image": "busybox", "Labels": labels or {}, "Env": ["A=1"]},
        "HostConfig": {"NetworkMode": "none", "Memory": 5}, "MountPoints": [], "Spec": {"big": True}}, name)


def shown(records):
    """What a listing shows of each record (the config keys ps and GET /containers/json read)."""
    return [(r.id, r.name, r.created, r.config.get("Image"), r.config.get("Path"), r.config.get("Args"),
             r.config.get("Config", {}).get("Image"), r.config.get("Config", {}).get("Labels"),
             (r.config.get("HostConfig") or {}).get("NetworkMode"), r.config.get("MountPoints"),
             r.state.status) for r in records]


def state_document(store, cid):
    return json.loads((store.directory(cid) / st.STATE_FILE).read_bytes())


def test_listing_shows_what_the_full_records_show(store):
    for name in ("ca", "cb", "cc"):
        make(store, name, {"k": name})
    assert shown(store.list_for_listing()) == shown(store.list())
    assert all(st.LISTING_KEY in state_document(store, r.id) for r in store.list())


def test_listing_holds_only_the_shown_keys(store):
    rec = make(store, "ca")
    listing = state_document(store, rec.id)[st.LISTING_KEY]
    assert "Env" not in listing["Config"] and "Memory" not in listing["HostConfig"] and "Spec" not in listing


def test_state_transitions_keep_the_listing(store):
    rec = make(store, "ca")
    store.update_state(rec.id, lambda s: st.exited(s, 3))
    assert st.LISTING_KEY in state_document(store, rec.id)
    (listed,) = store.list_for_listing()
    assert listed.state.status == "exited" and listed.state.exit_code == 3 and listed.name == "ca"


def test_rename_rewrites_the_listing(store):
    rec = make(store, "old")
    store.rename(rec.id, "new")
    assert state_document(store, rec.id)[st.LISTING_KEY]["Name"] == "new"
    assert [r.name for r in store.list_for_listing()] == ["new"]


def test_a_stale_listing_is_ignored_and_check_refreshes_it(store):
    rec = make(store, "old")
    config_path = store.directory(rec.id) / st.CONFIG_FILE
    config = json.loads(config_path.read_bytes())
    # a crash after config.json was rewritten, before state.json was: the listing still says "old"
    atomic_write_bytes(config_path, json.dumps({**config, "Name": "renamed"}).encode(), durable=False)
    assert state_document(store, rec.id)[st.LISTING_KEY]["Name"] == "old"
    assert [r.name for r in store.list_for_listing()] == ["renamed"]
    assert store.refresh_stale_listings() == 1
    assert state_document(store, rec.id)[st.LISTING_KEY]["Name"] == "renamed"
    assert store.refresh_stale_listings() == 0


def test_containers_without_a_listing_are_listed_and_refreshed(store):
    rec = make(store, "ca")
    path = store.directory(rec.id) / st.STATE_FILE
    document = state_document(store, rec.id)
    del document[st.LISTING_KEY]  # written by a pyctr before listings
    path.write_text(json.dumps(document))
    assert shown(store.list_for_listing()) == shown(store.list())
    assert store.refresh_stale_listings() == 1
    assert st.LISTING_KEY in state_document(store, rec.id)


def test_damaged_state_lists_as_dead_and_half_created_not_at_all(store):
    damaged = make(store, "damaged")
    half = make(store, "half")
    (store.directory(damaged.id) / st.STATE_FILE).write_text("{not json")
    (store.directory(half.id) / st.CONFIG_FILE).unlink()
    (listed,) = store.list_for_listing()
    assert listed.id == damaged.id and listed.state.status == "dead"


def test_a_transition_heals_a_missing_or_stale_listing(store):
    rec = make(store, "ca")
    path = store.directory(rec.id) / st.STATE_FILE
    document = state_document(store, rec.id)
    del document[st.LISTING_KEY]  # written by a pyctr before listings
    path.write_text(json.dumps(document))
    store.update_state(rec.id, lambda s: st.exited(s, 1))
    listing = state_document(store, rec.id)[st.LISTING_KEY]
    assert listing["Name"] == "ca"
    assert store.refresh_stale_listings() == 0
