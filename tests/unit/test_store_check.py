"""`system check` of the image store: pure decisions on made-up snapshots, then repairs on a real temp store."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile

import pytest

from pyctr.config import Paths
from pyctr.fsutil import remove_tree
from pyctr.image import check
from pyctr.image.check import BlobFacts, ImageFacts, LayerFacts, StoreSnapshot, TmpEntry, decide
from pyctr.image.store import ImageStore, chain_ids

H1, H2, H3 = "1" * 64, "2" * 64, "3" * 64


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------ pure decisions

def good_layer(diff_hex: str) -> LayerFacts:
    return LayerFacts(diff_hex, {"chain_id": "sha256:" + diff_hex, "diff_id": "sha256:" + diff_hex, "parent": None})


def test_blob_whose_bytes_do_not_match_its_name_is_removed():
    snap = StoreSnapshot(blobs={H1: BlobFacts(H1, 3, H2), H2: BlobFacts(H2, 3, H2), "junk": BlobFacts("junk", 1, H3)})
    findings = decide(snap)
    assert [(f.repair, f.target) for f in findings] == [("remove_blob", H1), ("remove_blob", "junk")]
    assert "does not match its digest" in findings[0].problem


def test_layer_without_record_is_partial_and_removed():
    snap = StoreSnapshot(layers={H1: LayerFacts(H1, None, "missing"), H2: good_layer(H2)})
    [finding] = decide(snap)
    assert (finding.repair, finding.target) == ("remove_layer", H1)
    assert "no layer.json" in finding.problem


@pytest.mark.parametrize("record, has_diff, words", [
    ({"chain_id": "sha256:" + H2, "diff_id": "sha256:" + H1}, True, "not its directory's"),
    ({"chain_id": "sha256:" + H1, "diff_id": "nope"}, True, "invalid diff_id"),
    ({"chain_id": "sha256:" + H1, "diff_id": "sha256:" + H2, "parent": None}, True, "does not follow"),
    ({"chain_id": "sha256:" + H1, "diff_id": "sha256:" + H1}, False, "diff/ directory is missing"),
])
def test_inconsistent_layer_records_are_removed(record, has_diff, words):
    [finding] = decide(StoreSnapshot(layers={H1: LayerFacts(H1, record, "", has_diff)}))
    assert finding.repair == "remove_layer" and words in finding.problem


def test_chained_layer_is_consistent():
    parent = "sha256:" + H1
    chain = chain_ids([parent, "sha256:" + H2])[1]
    rec = {"chain_id": chain, "diff_id": "sha256:" + H2, "parent": parent}
    assert decide(StoreSnapshot(layers={chain[7:]: LayerFacts(chain[7:], rec)})) == []


def image_doc(config_hex: str, layers: list[str], manifest: str | None = None, layer_blobs=None) -> dict:
    return {"id": "sha256:" + config_hex, "layers": layers, "manifest_digest": manifest,
            "layer_blobs": layer_blobs or []}


def test_image_missing_a_layer_is_removed_and_so_are_its_names():
    snap = StoreSnapshot(
        blobs={H3: BlobFacts(H3, 10, H3)},
        layers={H1: LayerFacts(H1, None, "missing")},
        images={H3: ImageFacts(H3, image_doc(H3, ["sha256:" + H1]))},
        repositories={"tags": {"docker.io/library/busybox:latest": "sha256:" + H3}, "digests": {}},
    )
    findings = decide(snap)
    assert [f.repair for f in findings] == ["remove_layer", "remove_image"]  # remove_image takes its names
    assert "layer sha256:111111111111 is missing" in findings[1].problem


def test_name_of_an_image_that_does_not_exist_is_removed():
    repos = {"tags": {"docker.io/library/ghost:latest": "sha256:" + H3}, "digests": {"bad": 1}}
    findings = decide(StoreSnapshot(repositories=repos))
    assert [(f.repair, f.target) for f in findings] == [("untag", "docker.io/library/ghost:latest"),
                                                        ("untag", "bad")]


def test_image_whose_config_blob_is_corrupt_is_removed():
    snap = StoreSnapshot(blobs={H3: BlobFacts(H3, 10, H1)}, layers={H1: good_layer(H1)},
                         images={H3: ImageFacts(H3, image_doc(H3, ["sha256:" + H1]))})
    assert [f.repair for f in decide(snap)] == ["remove_blob", "remove_image"]


def test_image_layer_blob_missing_or_wrong_size():
    blob = {"digest": "sha256:" + H2, "size": 5, "mediaType": "x"}
    base = dict(blobs={H3: BlobFacts(H3, 10, H3)}, layers={H1: good_layer(H1)})
    missing = StoreSnapshot(**base, images={H3: ImageFacts(H3, image_doc(H3, ["sha256:" + H1], layer_blobs=[blob]))})
    assert "layer blob sha256:222222222222 is missing" in decide(missing)[0].problem
    wrong = StoreSnapshot(blobs={**base["blobs"], H2: BlobFacts(H2, 6, H2)}, layers=base["layers"],
                          images={H3: ImageFacts(H3, image_doc(H3, ["sha256:" + H1], layer_blobs=[blob]))})
    assert "has 6 bytes, not 5" in decide(wrong)[0].problem


def test_image_layers_must_follow_config_diff_ids():
    snap = StoreSnapshot(blobs={H3: BlobFacts(H3, 10, H3)}, layers={H1: good_layer(H1)},
                         images={H3: ImageFacts(H3, image_doc(H3, ["sha256:" + H1]), "", ("sha256:" + H2,))})
    assert "rootfs.diff_ids" in decide(snap)[0].problem


def test_consistent_store_has_no_findings():
    snap = StoreSnapshot(blobs={H3: BlobFacts(H3, 10, H3)}, layers={H1: good_layer(H1)},
                         images={H3: ImageFacts(H3, image_doc(H3, ["sha256:" + H1]), "", ("sha256:" + H1,))},
                         repositories={"tags": {"docker.io/library/busybox:latest": "sha256:" + H3},
                                       "digests": {}})
    assert decide(snap) == []


def test_unreadable_repositories_are_reset():
    [finding] = decide(StoreSnapshot(repositories=None, repositories_error="unreadable: bad JSON"))
    assert finding.repair == "reset_repositories"


def test_tmp_leftovers():
    entries = (
        TmpEntry("blob-" + H1 + ".partial", False),  # resumable, blob not stored: kept
        TmpEntry("blob-" + H2 + ".partial", False),  # blob stored: useless
        TmpEntry("monitor-cpython-311-10-20.pyc", False),  # the compiled monitor: kept
        TmpEntry("pack-123-456.tar.gz", False, (), 123, True),  # a live writer: kept
        TmpEntry("save-124-456.tar", False, (), 124, False),  # its writer died
        TmpEntry("build-run-abc", True),  # a build scratch dir (no build runs while we hold the GC lock)
        TmpEntry("build-view-def", True, ("/r/tmp/build-view-def",)),  # still mounted
    )
    findings = decide(StoreSnapshot(blobs={H2: BlobFacts(H2, 1, H2)}, tmp=entries))
    assert sorted(f.target for f in findings) == sorted(["blob-" + H2 + ".partial", "save-124-456.tar",
                                                          "build-run-abc", "build-view-def"])
    assert all(f.repair == "remove_tmp" for f in findings)


def test_outcome_lines_are_one_line_each():
    finding = check.Finding("layer sha256:111111111111", "incomplete (no layer.json)", "remove_layer", H1)
    assert check.Outcome(finding, True, "removed").line() == \
        "layer sha256:111111111111: incomplete (no layer.json): repaired: removed"
    assert check.Outcome(finding, False, "would remove layer").line().endswith("not repaired: would remove layer")


def test_failed_repair_is_reported_not_raised():
    finding = check.Finding("x", "broken", "boom", "t")

    def boom(_f):
        raise OSError("read-only file system")

    [outcome] = check.apply_findings([finding], {"boom": boom}, repair=True)
    assert not outcome.repaired and "read-only file system" in outcome.note


# ------------------------------------------------------------------ repairs on a real store

def make_layer(files: dict[str, bytes]) -> tuple[bytes, str]:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid = len(data), 0o644, os.getuid(), os.getgid()
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0), digest_of(raw.getvalue())


@pytest.fixture
def store(tmp_path) -> ImageStore:
    s = ImageStore(Paths(tmp_path / "root"))
    s.ensure()
    return s


def make_image(store: ImageStore, tag: str, contents: list[bytes]) -> str:
    records, parent = [], None
    for content in contents:
        blob, diff_id = make_layer({"file": content})
        digest = store.put_blob_bytes(blob)
        chain = chain_ids([parent, diff_id])[1] if parent else diff_id
        desc = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": len(blob)}
        records.append(store.unpack_blob_layer(desc, diff_id, chain, parent))
        parent = chain
    config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
              "rootfs": {"type": "layers", "diff_ids": [r.diff_id for r in records]}}
    manifest = json.dumps({"schemaVersion": 2, "config": {}, "layers": []}).encode()
    image = store.put_image(json.dumps(config).encode(), records, manifest)
    store.tag(tag, image.id)
    return image.id


def test_healthy_store_passes(store):
    make_image(store, "busybox:latest", [b"a", b"b"])
    assert check.check_store(store.paths) == []


def test_partial_layer_and_orphan_tmp_are_removed(store):
    image_id = make_image(store, "busybox:latest", [b"a"])
    partial = store.paths.layers / ("9" * 64)
    (partial / "diff" / "sub").mkdir(parents=True)
    (partial / "diff" / "sub" / "f").write_text("x")
    os.chmod(partial / "diff" / "sub", 0o555)  # read-only dirs are common inside layers
    scratch = store.paths.tmp / "build-run-xyz"
    scratch.mkdir()
    (store.paths.tmp / "pack-999999999-1.tar.gz").write_bytes(b"x")  # no such pid
    outcomes = check.check_store(store.paths)
    assert all(o.repaired for o in outcomes), [o.line() for o in outcomes]
    assert len(outcomes) == 3
    assert not partial.exists() and not scratch.exists()
    assert store.resolve("busybox").id == image_id
    assert check.check_store(store.paths) == []


def test_corrupt_blob_takes_its_image_and_tags_with_it(store):
    image_id = make_image(store, "busybox:latest", [b"a"])
    other_id = make_image(store, "other:1", [b"zzz"])
    layer_blob = store.resolve("busybox").layers[0].blob["digest"]
    store.blob_path(layer_blob).write_bytes(b"bit rot")
    outcomes = check.check_store(store.paths)
    lines = [o.line() for o in outcomes]
    assert all(o.repaired for o in outcomes), lines
    assert [o.finding.repair for o in outcomes] == ["remove_blob", "remove_image"], lines
    assert image_id not in store.image_ids() and other_id in store.image_ids()
    assert [i.repo_tags for i in store.list_images()] == [["other:1"]]
    assert check.check_store(store.paths) == []


def test_dangling_tag_and_missing_layer(store):
    image_id = make_image(store, "busybox:latest", [b"a", b"b"])
    record = store.get_image(image_id)
    remove_tree(record.layers[1].path)
    repos = json.loads((store.paths.images / "repositories.json").read_text())
    repos["tags"]["docker.io/library/ghost:latest"] = "sha256:" + "4" * 64
    (store.paths.images / "repositories.json").write_text(json.dumps(repos))
    outcomes = check.check_store(store.paths)
    assert all(o.repaired for o in outcomes), [o.line() for o in outcomes]
    assert store.image_ids() == []
    assert json.loads((store.paths.images / "repositories.json").read_text())["tags"] == {}


def test_unreadable_repositories_file_is_replaced_and_kept_aside(store):
    make_image(store, "busybox:latest", [b"a"])
    (store.paths.images / "repositories.json").write_text("{not json")
    [outcome] = check.check_store(store.paths)
    assert outcome.repaired and "saved as repositories.json.corrupt-" in outcome.note
    assert [i.repo_tags for i in store.list_images()] == [[]]
    assert check.check_store(store.paths) == []


def test_dry_run_changes_nothing(store):
    make_image(store, "busybox:latest", [b"a"])
    partial = store.paths.layers / ("9" * 64)
    partial.mkdir()
    [outcome] = check.check_store(store.paths, repair=False)
    assert not outcome.repaired and outcome.note == "would remove layer"
    assert partial.exists()


def test_missing_root_is_consistent(tmp_path):
    assert check.check_store(Paths(tmp_path / "nothing")) == []
