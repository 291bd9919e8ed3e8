"""The content store: verified blobs, layers once, atomic records, locking between processes, GC."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import multiprocessing
import os
import tarfile
import time

import pytest

from pyctr.config import Paths
from pyctr.errors import ConflictError, DigestMismatch, NotFoundError, StoreError
from pyctr.image.store import ImageStore, InUse, chain_ids


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_layer(files: dict[str, bytes]) -> tuple[bytes, str]:
    """(gzip blob, diff_id) of a tar holding `files`."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.uid = os.getuid()
            info.gid = os.getgid()
            tar.addfile(info, io.BytesIO(data))
    tar_bytes = raw.getvalue()
    return gzip.compress(tar_bytes, mtime=0), digest_of(tar_bytes)


@pytest.fixture
def store(tmp_path):
    s = ImageStore(Paths(tmp_path / "root"))
    s.ensure()
    return s


def add_layer(store, files, parent=None):
    blob, diff_id = make_layer(files)
    digest = store.put_blob_bytes(blob)
    chain = chain_ids([parent, diff_id])[1] if parent else diff_id
    desc = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": len(blob)}
    return store.unpack_blob_layer(desc, diff_id, chain, parent)


def make_image(store, files_per_layer, created="2024-01-02T03:04:05Z", cmd=("sh",)):
    layers, parent = [], None
    for files in files_per_layer:
        layer = add_layer(store, files, parent)
        layers.append(layer)
        parent = layer.chain_id
    config = {"architecture": "amd64", "os": "linux", "created": created, "config": {"Cmd": list(cmd)},
              "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]}}
    return store.put_image(config, layers)


# ---------------------------------------------------------------- blobs

def test_blob_verified_and_stored(store):
    digest = store.put_blob_bytes(b"hello", digest_of(b"hello"))
    assert store.read_blob(digest) == b"hello"
    for d in (store.paths.root, store.paths.blobs.parent, store.paths.blobs, store.paths.layers, store.paths.tmp):
        assert oct(d.stat().st_mode & 0o777) == "0o700", d


def test_digest_mismatch_refused_and_nothing_stored(store):
    wrong = digest_of(b"other")
    with pytest.raises(DigestMismatch):
        store.put_blob_bytes(b"hello", wrong)
    with store.blob_writer(wrong, 5) as writer:
        writer.write(b"hello")
        with pytest.raises(DigestMismatch):
            writer.commit()
    assert not store.has_blob(wrong)
    assert list(store.paths.tmp.iterdir()) == []


def test_blob_larger_than_declared_refused_while_streaming(store):
    data = b"x" * 100
    with store.blob_writer(digest_of(data), 10) as writer, pytest.raises(DigestMismatch, match="larger"):
        writer.write(data)
    assert not store.has_blob(digest_of(data))


def test_partial_blob_resumes(store):
    data = os.urandom(4096)
    digest = digest_of(data)
    with store.blob_writer(digest, len(data)) as writer:
        writer.write(data[:1000])  # then "killed": no commit
    with store.blob_writer(digest, len(data)) as writer:
        assert writer.offset == 1000
        writer.write(data[1000:])
        writer.commit()
    assert store.read_blob(digest) == data


def _store_slowly(root: str, data: bytes, results) -> None:
    s = ImageStore(Paths(__import__("pathlib").Path(root)))
    with s.blob_writer(digest_of(data), len(data)) as writer:
        if writer is None:
            results.put("skipped")
            return
        for i in range(0, len(data), 1024):
            writer.write(data[i:i + 1024])
            time.sleep(0.001)
        writer.commit()
        results.put("wrote")


def test_two_processes_store_the_same_blob_once(store):
    data = os.urandom(64 * 1024)
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    procs = [ctx.Process(target=_store_slowly, args=(str(store.paths.root), data, results)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0]
    assert sorted([results.get(timeout=5), results.get(timeout=5)]) == ["skipped", "wrote"]
    assert store.read_blob(digest_of(data)) == data


# ---------------------------------------------------------------- layers

def test_layer_unpacked_once_and_shared(store):
    a = add_layer(store, {"etc/hello": b"hi"})
    assert (a.diff_dir / "etc" / "hello").read_bytes() == b"hi"
    assert (a.path / "layer.json").exists()
    b = add_layer(store, {"etc/hello": b"hi"})
    assert b.chain_id == a.chain_id and b.path == a.path


def test_layer_with_wrong_diff_id_refused_and_removed(store):
    blob, _ = make_layer({"f": b"1"})
    digest = store.put_blob_bytes(blob)
    bogus = digest_of(b"not the tar")
    desc = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": len(blob)}
    with pytest.raises(DigestMismatch):
        store.unpack_blob_layer(desc, bogus, bogus, None)
    assert not store.layer_path(bogus).exists()
    assert store.get_layer(bogus) is None


def test_half_unpacked_layer_is_redone(store):
    blob, diff_id = make_layer({"f": b"1"})
    digest = store.put_blob_bytes(blob)
    leftover = store.layer_path(diff_id) / "diff"
    leftover.mkdir(parents=True)
    (leftover / "junk").write_text("from a killed unpack")
    desc = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": len(blob)}
    layer = store.unpack_blob_layer(desc, diff_id, diff_id, None)
    assert sorted(os.listdir(layer.diff_dir)) == ["f"]


def test_chain_ids():
    d1, d2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    assert chain_ids([d1]) == [d1]
    assert chain_ids([d1, d2])[1] == "sha256:" + hashlib.sha256(f"{d1} {d2}".encode()).hexdigest()


# ---------------------------------------------------------------- images and names

def test_put_image_resolve_and_names(store):
    image = make_image(store, [{"bin/sh": b"x"}, {"etc/x": b"y"}])
    assert image.id.startswith("sha256:")
    assert [p.name for p in image.layer_dirs] == ["diff", "diff"]
    assert image.config["config"]["Cmd"] == ["sh"]
    store.tag("busybox", image.id)
    store.tag("127.0.0.1:5000/a/b:v1", image.id)
    for name in ("busybox", "busybox:latest", "docker.io/library/busybox", image.id, image.id[7:19], image.id[7:10]):
        assert store.resolve(name).id == image.id
    got = store.resolve("busybox")
    assert got.repo_tags == ["127.0.0.1:5000/a/b:v1", "busybox:latest"]
    assert got.created == "2024-01-02T03:04:05Z"
    # Docker's image Size is the layers' DiffSize (file bytes: 1 + 1 here), not the tar bytes (2 x 10240)
    assert got.size == 2 and sum(layer.size for layer in got.layers) == 20480


def test_size_counts_files_once_per_inode_and_symlinks_by_target_length(tmp_path):
    from pyctr.image.store import directory_size

    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "busybox").write_bytes(b"x" * 1000)
    for name in ("sh", "ls", "cat"):
        os.link(tmp_path / "d" / "busybox", tmp_path / "d" / name)
    (tmp_path / "link").symlink_to("d/busybox")  # 9 bytes of target
    (tmp_path / "empty").write_bytes(b"")
    assert directory_size(tmp_path) == 1009


def test_parent_and_children_of_build_steps(store):
    base = make_image(store, [{"bin/sh": b"x"}])
    child = store.put_image({**base.config, "config": {"Cmd": ["true"]}}, list(base.layers), parent=base.id)
    assert child.parent == base.id and child.inspect()["Parent"] == base.id
    assert store.children() == {base.id: [child.id]}
    again = store.put_image({**base.config, "config": {"Cmd": ["true"]}}, list(base.layers))
    assert again.parent == base.id  # recording it again (a load of the same image) keeps its parent


def test_not_found_message(store):
    with pytest.raises(NotFoundError, match="^No such image: nope$"):
        store.resolve("nope")
    with pytest.raises(NotFoundError, match="No such image: sha256:abc"):
        store.resolve("sha256:abc")


def test_ambiguous_short_id(store):
    seen: dict[str, str] = {}
    for i in range(40):  # two ids sharing a first hex digit come quickly
        image = make_image(store, [{f"f{i}": b"1"}])
        if image.id[7] in seen:
            break
        seen[image.id[7]] = image.id
    with pytest.raises(ConflictError, match="ambiguous"):
        store.resolve(image.id[7])


def test_put_image_checks_diff_ids(store):
    layer = add_layer(store, {"a": b"1"})
    with pytest.raises(StoreError, match="diff_ids"):
        store.put_image({"rootfs": {"type": "layers", "diff_ids": [digest_of(b"z")]}}, [layer])


def test_put_image_by_diff_ids(store):
    layer = add_layer(store, {"a": b"1"})
    image = store.put_image({"os": "linux"}, [layer.diff_id])
    assert image.layers[0].chain_id == layer.chain_id
    assert image.config["rootfs"]["diff_ids"] == [layer.diff_id]


def test_retag_moves_and_untag(store):
    a = make_image(store, [{"a": b"1"}])
    b = make_image(store, [{"b": b"2"}])
    store.tag("x:1", a.id)
    assert store.tag("x:1", b.id) == a.id
    assert store.resolve("x:1").id == b.id
    assert store.untag("x:1") == b.id
    assert store.untag("x:1") is None


def test_delete_collects_unshared_layers_and_blobs(store):
    a = make_image(store, [{"base": b"1"}, {"a": b"2"}])
    b = make_image(store, [{"base": b"1"}, {"b": b"3"}])
    store.tag("a", a.id)
    removed = store.delete_image(a.id)
    assert removed == ["docker.io/library/a:latest"]
    assert a.layers[0].path.exists() and not a.layers[1].path.exists()
    assert not store.has_blob(a.id) and store.has_blob(b.id)
    assert store.resolve(b.id).id == b.id
    assert [i.id for i in store.list_images()] == [b.id]


def test_records_are_json_written_atomically(store):
    image = make_image(store, [{"a": b"1"}])
    store.tag("a", image.id)
    record = json.loads((store.paths.images / f"{image.id[7:]}.json").read_text())
    assert record["layers"] == [image.layers[0].chain_id]
    repos = json.loads((store.paths.images / "repositories.json").read_text())
    assert repos["tags"] == {"docker.io/library/a:latest": image.id}
    assert not [p for p in store.paths.images.iterdir() if ".tmp." in p.name]


def test_layers_in_use_outlive_their_deleted_image(store):
    """What containers stack (told by the runtime) stays; the same delete without it collects the layer."""
    kept = make_image(store, [{"a": b"1"}])
    gone = make_image(store, [{"b": b"2"}])
    in_use = InUse(layers=frozenset({kept.layers[0].path.name}))
    store.delete_image(kept.id, in_use)
    store.delete_image(gone.id, in_use)
    assert kept.layers[0].path.is_dir() and not gone.layers[0].path.exists()
    assert store.list_images() == []
    store.collect_garbage(InUse())  # no container left: the layer goes
    assert not kept.layers[0].path.exists()


def test_inspect_document(store):
    image = make_image(store, [{"a": b"1"}])
    store.tag("a:1", image.id)
    doc = store.resolve("a:1").inspect()
    assert doc["Id"] == image.id and doc["RepoTags"] == ["a:1"]
    assert doc["RootFS"] == {"Type": "layers", "Layers": [image.layers[0].diff_id]}
    assert doc["Config"]["Cmd"] == ["sh"] and doc["Config"]["Entrypoint"] is None
    assert doc["Os"] == "linux" and doc["Architecture"] == "amd64"


def test_collect_garbage_cleans_stale_tmp_and_lock_files(store):
    stale = store.paths.tmp / ("blob-" + "a" * 64 + ".partial")
    stale.write_bytes(b"old")
    dead_staging = store.paths.tmp / "load-999999999-1"
    dead_staging.mkdir()
    live = store.paths.tmp / f"pack-{os.getpid()}-1.tar.gz"
    live.write_bytes(b"mine")
    make_image(store, [{"a": b"1"}])
    assert list(store.paths.locks.glob("blob-*.lock"))
    store.collect_garbage()
    assert not stale.exists() and not dead_staging.exists() and live.exists()
    assert not list(store.paths.locks.glob("blob-*.lock")) and not list(store.paths.locks.glob("layer-*.lock"))
    assert len(store.list_images()) == 1


def test_put_image_refuses_layers_chained_on_another_parent(store):
    base = add_layer(store, {"a": b"1"})
    orphan = add_layer(store, {"b": b"2"})  # stored as a base layer, not on top of `base`
    with pytest.raises(StoreError, match="another parent"):
        store.put_image({"os": "linux"}, [base, orphan])
    assert store.get_layer("") is None and store.get_layer("nonsense") is None


# `docker image inspect` of an image Docker 20.10's legacy builder made (keys in Docker's order) and its
# ContainerConfig when the config has none (BuildKit's images): every key, empty.
DOCKER_IMAGE_KEYS = ["Id", "RepoTags", "RepoDigests", "Parent", "Comment", "Created", "Container",
                     "ContainerConfig", "DockerVersion", "Author", "Config", "Architecture", "Variant", "Os", "Size",
                     "VirtualSize", "GraphDriver", "RootFS", "Metadata"]
EMPTY_CONTAINER_CONFIG = {"Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
                          "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None,
                          "Cmd": None, "Image": "", "Volumes": None, "WorkingDir": "", "Entrypoint": None,
                          "OnBuild": None, "Labels": None}


def test_image_inspect_has_dockers_keys_and_container_config(store):
    base = make_image(store, [{"bin/sh": b"x"}])
    legacy = {**base.config, "variant": "v8", "container": "c" * 64,
              "container_config": {"Hostname": "c" * 12, "Cmd": ["/bin/sh", "-c", "#(nop) ", 'CMD ["sh"]']}}
    doc = store.put_image(legacy, list(base.layers)).inspect()
    assert list(doc) == DOCKER_IMAGE_KEYS
    assert doc["Container"] == "c" * 64
    assert doc["ContainerConfig"]["Cmd"] == ["/bin/sh", "-c", "#(nop) ", 'CMD ["sh"]']
    assert doc["ContainerConfig"]["Hostname"] == "c" * 12
    plain = base.inspect()
    assert plain["Container"] == "" and plain["ContainerConfig"] == EMPTY_CONTAINER_CONFIG
    top = base.layers[-1].path
    assert plain["GraphDriver"] == {"Data": {"MergedDir": f"{top}/merged", "UpperDir": f"{top}/diff",
                                             "WorkDir": f"{top}/work"}, "Name": "overlay2"}
    two = make_image(store, [{"a": b"1"}, {"b": b"2"}]).inspect()["GraphDriver"]["Data"]
    assert list(two) == ["LowerDir", "MergedDir", "UpperDir", "WorkDir"] and ":" not in two["LowerDir"]
    assert "Variant" not in plain
