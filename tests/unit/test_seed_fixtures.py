"""Pure parts of the test rig: registry config merging, apt source parsing, layout edits, the whiteout layers."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from tests.fixtures import ocilayout, seed
from tests.fixtures.python_image import debian_mirror
from tests.fixtures.registry import deep_merge, registry_config


def test_deep_merge_merges_nested_and_keeps_base():
    base = {"a": {"b": 1, "c": {"d": 2}}, "e": [1]}
    merged = deep_merge(base, {"a": {"c": {"x": 3}}, "e": [2]})
    assert merged == {"a": {"b": 1, "c": {"d": 2, "x": 3}}, "e": [2]}
    assert base == {"a": {"b": 1, "c": {"d": 2}}, "e": [1]}, "base is not mutated"


def test_registry_config_is_loopback_filesystem_delete_enabled(tmp_path):
    config = registry_config(tmp_path, 5123, {"auth": {"token": {"realm": "r"}}})
    assert config["http"]["addr"] == "127.0.0.1:5123"
    assert config["storage"]["filesystem"]["rootdirectory"] == str(tmp_path)
    assert config["storage"]["delete"]["enabled"] is True
    assert config["log"]["level"] == "warn"
    assert "notifications" not in config and "redis" not in config
    assert config["auth"] == {"token": {"realm": "r"}}


def _apt_dir(tmp_path: Path, sources_list: str = "", deb822: str = "") -> Path:
    (tmp_path / "sources.list.d").mkdir()
    if sources_list:
        (tmp_path / "sources.list").write_text(sources_list)
    if deb822:
        (tmp_path / "sources.list.d" / "debian.sources").write_text(deb822)
    return tmp_path


def test_debian_mirror_from_one_line_sources(tmp_path):
    apt = _apt_dir(tmp_path, "# comment\ndeb-src http://src.example/debian bookworm main\n"
                             "deb [signed-by=/k.gpg] http://mirror.example/debian bookworm main contrib\n")
    assert debian_mirror("bookworm", apt) == "http://mirror.example/debian"


def test_debian_mirror_from_deb822_skips_security_suite(tmp_path):
    apt = _apt_dir(tmp_path, deb822="Types: deb\nURIs: http://sec.example/debian-security\nSuites: bookworm-security\n"
                                    "Components: main\n\nTypes: deb\n# note\nURIs: http://mirror.example/debian\n"
                                    "Suites: bookworm bookworm-updates\nComponents: main\n")
    assert debian_mirror("bookworm", apt) == "http://mirror.example/debian"


def test_debian_mirror_missing_is_an_error(tmp_path):
    with pytest.raises(RuntimeError, match="no apt source"):
        debian_mirror("bookworm", _apt_dir(tmp_path))


def _entries(raw: bytes) -> dict[str, bytes | None]:
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        return {m.name: tar.extractfile(m).read() if m.isfile() else None for m in tar.getmembers()}


def _reference_apply(layers: list[bytes]) -> dict[str, bytes | None]:
    """A deliberately naive whiteout semantics model: a layer's opaque marker hides only lower layers."""
    tree: dict[str, bytes | None] = {}
    for raw in layers:
        entries = _entries(raw)
        for name, content in entries.items():
            parent, _, base = name.rpartition("/")
            if base == ".wh..wh..opq":
                prefix = parent + "/"
                tree = {p: v for p, v in tree.items() if not p.startswith(prefix) or p in entries}
            elif base.startswith(".wh."):
                gone = f"{parent}/{base[4:]}" if parent else base[4:]
                tree = {p: v for p, v in tree.items() if p != gone and not p.startswith(gone + "/")}
            else:
                tree[name] = content
    return tree


def test_whiteout_expected_tree_matches_the_layers():
    tree = _reference_apply(seed.whiteout_layer_tars())
    expected = {p: e.content if e.kind == "file" else None for p, e in seed.WHITEOUT_EXPECTED_TREE.items()}
    assert tree == expected
    assert not set(seed.WHITEOUT_REMOVED_PATHS) & set(tree)


def test_whiteout_tars_are_reproducible_and_ordered():
    assert seed.whiteout_layer_tars() == seed.whiteout_layer_tars()
    names = list(_entries(seed.whiteout_layer_tars()[1]))
    assert names == ["a", "a/.wh.gone", "dir", "dir/new", "dir/.wh..wh..opq"]


def test_snapshot_tree_has_the_expected_tree_shape(tmp_path):
    (tmp_path / "d").mkdir(mode=0o755)
    (tmp_path / "d" / "f").write_bytes(b"x")
    (tmp_path / "d" / "f").chmod(0o644)
    (tmp_path / "l").symlink_to("d/f")
    (tmp_path / "d").chmod(0o755)
    assert seed.snapshot_tree(tmp_path) == {
        "d": seed.Entry("dir", 0o755),
        "d/f": seed.Entry("file", 0o644, b"x"),
        "l": seed.Entry("symlink", 0o777, b"d/f"),
    }


def _empty_layout(tmp_path: Path) -> Path:
    (tmp_path / "blobs" / "sha256").mkdir(parents=True)
    (tmp_path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    ocilayout.write_index(tmp_path, {"schemaVersion": 2, "manifests": None})
    config = ocilayout.write_blob(tmp_path, b'{"rootfs":{"type":"layers","diff_ids":[]}}', ocilayout.OCI_CONFIG)
    manifest = {"schemaVersion": 2, "mediaType": ocilayout.OCI_MANIFEST, "config": config, "layers": []}
    ocilayout.set_tag(tmp_path, "t", ocilayout.write_blob(tmp_path, ocilayout.canonical_json(manifest),
                                                          ocilayout.OCI_MANIFEST))
    return tmp_path


def test_append_layer_records_blob_digest_and_diff_id(tmp_path):
    layout = _empty_layout(tmp_path)
    desc = ocilayout.append_layer(layout, "t", b"compressed", ocilayout.OCI_LAYER_ZSTD, "sha256:" + "0" * 64, "x")
    manifest, config = ocilayout.manifest_and_config(layout, "t")
    assert ocilayout.resolve_tag(layout, "t")["digest"] == desc["digest"]
    assert manifest["layers"] == [{"mediaType": ocilayout.OCI_LAYER_ZSTD, "size": 10,
                                   "digest": "sha256:" + hashlib.sha256(b"compressed").hexdigest()}]
    assert config["rootfs"]["diff_ids"] == ["sha256:" + "0" * 64]
    assert len(json.loads((layout / "index.json").read_text())["manifests"]) == 1, "retagging replaces"
