"""volumes.py's store on a temporary root (no root privileges needed): metadata, names, references from
containers' configs, removal refused while in use, prune, the local driver's option checks, bind sources
that lead into PYCTR_ROOT; and `volume ls` filters."""

from __future__ import annotations

import json
import os
import re

import pytest

from pyctr.config import Paths
from pyctr.errors import ConflictError, NotFoundError, PyctrError
from pyctr.runtime import volumes as v
from pyctr.runtime.mounts import MountError, MountPoint


@pytest.fixture
def store(tmp_path) -> v.VolumeStore:
    (tmp_path / "root").mkdir()
    return v.VolumeStore(Paths(tmp_path / "root"))


def add_container(store: v.VolumeStore, cid: str, *volume_names: str) -> None:
    directory = store.paths.containers / cid
    directory.mkdir(parents=True)
    points = [{"Type": "volume", "Name": n, "Destination": f"/{n}"} for n in volume_names]
    (directory / "config.json").write_text(json.dumps({"Id": cid, "MountPoints": points}))


def test_create_writes_metadata_and_inspect_is_dockers(store):
    volume = store.create("data", labels={"a": "1"}, options=None)
    doc = volume.inspect()
    assert list(doc) == ["CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options", "Scope"]
    assert (doc["Name"], doc["Driver"], doc["Labels"], doc["Options"], doc["Scope"]) == \
        ("data", "local", {"a": "1"}, None, "local")
    assert doc["Mountpoint"] == str(store.root / "data" / "_data") and os.path.isdir(doc["Mountpoint"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)", doc["CreatedAt"])
    assert store.create("data", labels={"other": "x"}).labels == {"a": "1"}  # existing: returned as it is


def test_anonymous_create_gets_a_random_64_hex_name(store):
    first, second = store.create(None), store.create(None)
    assert re.fullmatch(r"[0-9a-f]{64}", first.name) and first.name != second.name


@pytest.mark.parametrize("name", ["..", "../../etc", "a/b", "/abs", "x"])
def test_hostile_names_never_touch_the_filesystem(store, name):
    with pytest.raises(MountError, match="includes invalid characters"):
        store.create(name)
    with pytest.raises(NotFoundError, match=f"No such volume: {re.escape(name)}"):
        store.get(name)
    assert not store.root.exists() or list(store.root.iterdir()) == []


def test_names_in_natural_order_and_hidden_dirs_ignored(store):
    for name in ("v10", "v2", "v1", "alpha"):
        store.create(name)
    (store.root / ".removing-old-1234").mkdir()
    (store.root / "nodata").mkdir()  # no _data: not a volume
    assert store.names() == ["alpha", "v1", "v2", "v10"]


def test_a_volume_in_use_cannot_be_removed_and_prune_keeps_it(store):
    for name in ("used", "free", "labelled"):
        store.create(name, labels={"keep": "no"} if name == "labelled" else None)
    add_container(store, "c1" * 32, "used")
    add_container(store, "c2" * 32, "used")
    with pytest.raises(ConflictError) as caught:
        store.remove("used")
    assert caught.value.message == f"remove used: volume is in use - [{'c1' * 32}, {'c2' * 32}]"
    assert store.prune(["keep=no"]) == (["labelled"], 0)
    removed, _ = store.prune()
    assert removed == ["free"] and store.names() == ["used"]
    with pytest.raises(NotFoundError, match="No such volume: gone"):
        store.remove("gone")
    assert store.remove("gone", force=True) is False


def test_remove_unused_keeps_a_volume_another_container_uses(store):
    store.create("a" * 64)
    store.create("b" * 64)
    add_container(store, "other", "a" * 64)
    v.remove_unused(store, ["a" * 64, "b" * 64, "c" * 64])
    assert store.names() == ["a" * 64]


@pytest.mark.parametrize(("options", "message"), [
    ({"bogus": "1"}, 'create x1: invalid option: "bogus"'),
    ({"type": "tmpfs"}, 'create x1: missing required option: "device"'),
    ({"device": "/dev/x"}, 'create x1: missing required option: "type"'),
    ({"o": "bind", "type": "none"}, 'create x1: missing required option: "device"'),
    ({"size": "10m"}, "create x1: quota size requested but no quota support"),
])
def test_local_driver_options_are_checked(store, options, message):
    with pytest.raises(MountError) as caught:
        store.create("x1", options=options)
    assert caught.value.message == message
    with pytest.raises(MountError, match='plugin "nfs3" not found'):
        store.create("x1", driver="nfs3")


def test_bind_sources_into_the_state_root_are_refused(store, tmp_path):
    root = v.state_root(store.paths)
    (tmp_path / "outside").mkdir()
    (tmp_path / "link").symlink_to(store.paths.root / "volumes")
    ok = MountPoint("bind", "/x", str(tmp_path / "outside"))
    v.check_bind_source(ok, root)
    v.check_bind_source(MountPoint("bind", "/x", str(tmp_path)), root)  # an ancestor: as Docker, allowed
    for source in (str(tmp_path / "link"), str(tmp_path / "link" / "new" / "dir"), str(store.paths.root)):
        with pytest.raises(MountError, match="state directory"):
            v.check_bind_source(MountPoint("bind", "/x", source, create_source=True), root)
    with pytest.raises(MountError) as caught:
        v.check_bind_source(MountPoint("bind", "/x", "/nonexistent-q"), root)
    assert caught.value.message == 'invalid mount config for type "bind": bind source path does not exist: ' \
                                   "/nonexistent-q"


def test_prepare_creates_on_first_use_and_copy_candidates_are_empty_plain_volumes(store):
    points = [MountPoint("volume", "/a", str(store.root / "fresh" / "_data"), name="fresh", copy_data=True),
              MountPoint("volume", "/b", str(store.root / "full" / "_data"), name="full", copy_data=True),
              MountPoint("volume", "/c", str(store.root / "nocp" / "_data"), name="nocp", copy_data=False),
              MountPoint("volume", "/d", str(store.root / "opts" / "_data"), name="opts", copy_data=True,
                         volume_options={"type": "tmpfs", "device": "tmpfs"})]
    store.create("full")
    (store.root / "full" / "_data" / "f").write_text("x")
    prepared = v.prepare_volumes(store, points, v.state_root(store.paths))
    assert prepared.created == ["fresh", "nocp", "opts"]
    assert store.get("opts").options == {"type": "tmpfs", "device": "tmpfs"}
    assert [p.name for p in v.copy_candidates(store, points)] == ["fresh"]


def test_legacy_volume_dir_without_metadata_is_still_a_volume(store):
    (store.root / "old" / "_data").mkdir(parents=True)
    volume = store.get("old")
    assert (volume.labels, volume.options, volume.driver) == (None, None, "local")


def test_volume_ls_filters():
    from pyctr.commands.volume import matches, parse_filters

    volume = v.Volume("web-data", "/m", "", {"app": "web", "tier": ""})
    assert matches(volume, 0, parse_filters(("dangling=true", "name=^web", "label=app=web", "label=tier")))
    assert not matches(volume, 1, parse_filters(("dangling=1",)))
    assert matches(volume, 1, parse_filters(("dangling=false",)))
    assert not matches(volume, 0, parse_filters(("label=app=db",)))
    assert matches(volume, 0, parse_filters(("name=nomatch", "name=data")))  # one key's values: any
    assert not matches(volume, 0, parse_filters(("driver=nfs",)))
    with pytest.raises(PyctrError, match=r"Invalid filter 'dangling=\[maybe\]'"):
        parse_filters(("dangling=maybe",))
    with pytest.raises(PyctrError, match="Invalid filter 'size'"):
        parse_filters(("size=1",))


def test_system_df_counts_volumes_in_use_as_active(store):
    store.create("used")
    store.create("free")
    (store.root / "free" / "_data" / "blob").write_bytes(b"x" * 8192)
    add_container(store, "c" * 64, "used")
    total, active, size, reclaimable = v.volume_usage(store.paths)
    assert (total, active) == (2, 1) and size >= reclaimable >= 8192


def test_prune_sweeps_what_a_killed_rm_left(store):
    store.create("kept")
    add_container(store, "c" * 64, "kept")
    (store.root / ".removing-old-0a0a" / "_data" / "deep").mkdir(parents=True)
    assert store.prune() == ([], 0)
    assert [p.name for p in store.root.iterdir()] == ["kept"]


def test_prune_skips_volumes_with_options_and_honours_label_not(store):
    store.create("opts", options={"type": "tmpfs", "device": "tmpfs"})
    store.create("keepme", labels={"keep": "yes"})
    store.create("plain", labels={"keep": "no"})
    assert store.prune(without_labels=["keep=yes"]) == (["plain"], 0)
    assert store.names() == ["keepme", "opts"]
    assert v.volume_usage(store.paths)[0] == 1  # system df skips volumes with options too


def test_leads_into_by_path_and_symlink(tmp_path):
    from pyctr.runtime.rootfs import leads_into

    top = tmp_path / "top"
    (top / "sub").mkdir(parents=True)
    (top / "sub" / "f").write_text("x")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(top / "sub")
    for path, expected in ((top / "sub" / "f", True), (tmp_path / "link", True), (top, True),
                           (tmp_path / "elsewhere", False), (tmp_path, False)):
        fd = os.open(path, os.O_PATH)
        try:
            assert leads_into(fd, str(top)) is expected, path
        finally:
            os.close(fd)


def test_ps_mounts_local_volumes_and_volume_filter():
    from pyctr.runtime.ps import PsItem, matches, parse_filters, ps_row

    mounts = [{"Type": "volume", "Name": "a" * 64, "Source": "/r/v/x/_data", "Destination": "/data",
               "Driver": "local"},
              {"Type": "bind", "Source": "/srv/www", "Destination": "/www"}]
    item = PsItem("c" * 64, "web", "busybox", ["sh"], 0.0, "running", mounts=mounts)
    row = ps_row(item, now=10.0)
    assert (row["Mounts"], row["LocalVolumes"]) == ("a" * 14 + "…,/srv/www", "1")
    assert ps_row(item, now=10.0, trunc=False)["Mounts"] == "a" * 64 + ",/srv/www"
    assert matches(item, parse_filters(["volume=" + "a" * 64])) and matches(item, parse_filters(["volume=/www"]))
    assert not matches(item, parse_filters(["volume=other"]))


def test_every_host_path_a_local_volume_names_is_checked_not_only_a_bind_device():
    """The attack review's bypass: `-o type=overlay -o device=overlay -o o=lowerdir=$PYCTR_ROOT,...`."""
    from pyctr.runtime.volumes import host_paths_of

    assert host_paths_of({"type": "none", "o": "bind", "device": "/srv/data"}) == ["/srv/data"]
    assert host_paths_of({"type": "overlay", "device": "overlay",
                          "o": "lowerdir=/var/lib/pyctr:/srv/low,upperdir=/srv/up,workdir=/srv/work"}) == [
        "/var/lib/pyctr", "/srv/low", "/srv/up", "/srv/work"]
    assert host_paths_of({"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}) == []


def test_a_name_longer_than_a_file_name_is_dockerds_mkdir_error_and_otherwise_no_such_volume(store):
    name = "a" * 300  # a valid volume name (Docker's pattern has no length limit): the filesystem refuses it
    with pytest.raises(MountError) as created:
        store.create(name)
    assert created.value.message == f"create {name}: mkdir {store.root / name}: file name too long"
    for lookup in (store.get, store.remove):
        with pytest.raises(NotFoundError) as missing:
            lookup(name)
        assert str(missing.value.message) == f"Error: No such volume: {name}"
    assert store.names() == []
