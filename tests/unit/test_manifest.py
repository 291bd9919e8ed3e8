"""Manifest dispatch, schema 1 refusal and platform selection (pure)."""

import json

import pytest

from pyctr.errors import RegistryError, UsageError
from pyctr.image import manifest as m


def desc(digest_char, os_="linux", arch="amd64", variant=None, annotations=None, media_type=m.OCI_MANIFEST):
    d = {"mediaType": media_type, "digest": "sha256:" + digest_char * 64, "size": 100,
         "platform": {"os": os_, "architecture": arch}}
    if variant:
        d["platform"]["variant"] = variant
    if annotations:
        d["annotations"] = annotations
    return d


def index(*entries, media_type=m.OCI_INDEX):
    return json.dumps({"schemaVersion": 2, "mediaType": media_type, "manifests": list(entries)}).encode()


IMAGE = json.dumps({
    "schemaVersion": 2, "mediaType": m.DOCKER_MANIFEST,
    "config": {"mediaType": m.DOCKER_CONFIG, "digest": "sha256:" + "c" * 64, "size": 10},
    "layers": [{"mediaType": m.DOCKER_LAYER_GZIP, "digest": "sha256:" + "1" * 64, "size": 5}],
}).encode()


def test_image_manifest_parsed_base_layer_first():
    doc = m.parse_manifest(IMAGE, m.DOCKER_MANIFEST)
    assert isinstance(doc, m.ImageManifest)
    assert doc.config.digest == "sha256:" + "c" * 64
    assert [layer.size for layer in doc.layers] == [5]


def test_content_type_wins_over_body_and_body_used_when_header_generic():
    assert isinstance(m.parse_manifest(index(desc("a")), "application/json"), m.ImageIndex)
    assert isinstance(m.parse_manifest(index(desc("a"), media_type=m.DOCKER_LIST), m.DOCKER_LIST), m.ImageIndex)


def test_oci_manifest_without_media_type_is_guessed():
    body = json.dumps({"schemaVersion": 2, "config": {"digest": "sha256:" + "c" * 64, "size": 1}, "layers": []})
    assert isinstance(m.parse_manifest(body.encode(), None), m.ImageManifest)


@pytest.mark.parametrize("ctype", m.SCHEMA1)
def test_schema1_refused_clearly(ctype):
    body = json.dumps({"schemaVersion": 1, "name": "x", "fsLayers": []}).encode()
    with pytest.raises(RegistryError, match="schema 1 is deprecated"):
        m.parse_manifest(body, ctype)


def test_schema1_refused_by_body_too():
    with pytest.raises(RegistryError, match="schema 1"):
        m.parse_manifest(json.dumps({"schemaVersion": 1}).encode(), "application/json")


def test_garbage_is_a_registry_error():
    with pytest.raises(RegistryError):
        m.parse_manifest(b"<html>", "text/html")
    with pytest.raises(RegistryError, match="unsupported manifest media type"):
        m.parse_manifest(b'{"mediaType": "application/x-other"}', "application/x-other")


def test_platform_selection_amd64():
    idx = m.parse_manifest(index(desc("a", arch="arm64", variant="v8"), desc("b")), m.OCI_INDEX)
    assert m.select_manifest(idx, m.Platform("linux", "amd64")).digest == "sha256:" + "b" * 64


def test_arm64_matches_with_or_without_v8():
    with_variant = m.parse_manifest(index(desc("a", arch="arm64", variant="v8"), desc("b")), None)
    without = m.parse_manifest(index(desc("a", arch="arm64"), desc("b")), None)
    for idx in (with_variant, without):
        assert m.select_manifest(idx, m.parse_platform("linux/arm64")).digest == "sha256:" + "a" * 64
        assert m.select_manifest(idx, m.parse_platform("linux/arm64/v8")).digest == "sha256:" + "a" * 64


def test_arm_exact_variant_preferred_then_older():
    idx = m.parse_manifest(index(desc("6", arch="arm", variant="v6"), desc("7", arch="arm", variant="v7")), None)
    assert m.select_manifest(idx, m.parse_platform("linux/arm/v7")).digest == "sha256:" + "7" * 64
    only_v6 = m.parse_manifest(index(desc("6", arch="arm", variant="v6")), None)
    assert m.select_manifest(only_v6, m.parse_platform("linux/arm/v7")).digest == "sha256:" + "6" * 64
    only_v7 = m.parse_manifest(index(desc("7", arch="arm", variant="v7")), None)
    with pytest.raises(RegistryError):
        m.select_manifest(only_v7, m.parse_platform("linux/arm/v6"))


def test_attestation_entries_skipped():
    attestation = desc("f", os_="unknown", arch="unknown",
                       annotations={"vnd.docker.reference.type": "attestation-manifest"})
    idx = m.parse_manifest(index(attestation, desc("b")), None)
    assert m.select_manifest(idx, m.Platform("linux", "amd64")).digest == "sha256:" + "b" * 64
    only = m.parse_manifest(index(attestation), None)
    with pytest.raises(RegistryError, match="no matching manifest for linux/amd64"):
        m.select_manifest(only, m.Platform("linux", "amd64"))


def test_no_match_lists_what_is_available():
    idx = m.parse_manifest(index(desc("a", arch="s390x")), None)
    with pytest.raises(RegistryError, match="available: linux/s390x"):
        m.select_manifest(idx, m.Platform("linux", "amd64"))


def test_parse_platform():
    assert m.parse_platform("linux/amd64") == m.Platform("linux", "amd64", "")
    assert m.parse_platform("linux/aarch64") == m.Platform("linux", "arm64", "v8")
    assert m.parse_platform("arm64") == m.Platform("linux", "arm64", "v8")
    assert str(m.parse_platform("linux/arm/v6")) == "linux/arm/v6"
    for bad in ("", "a/b/c/d", "linux//"):
        with pytest.raises(UsageError):
            m.parse_platform(bad)


def test_layer_compression():
    assert m.layer_compression(m.DOCKER_LAYER_GZIP) == "gzip"
    assert m.layer_compression(m.OCI_LAYER_GZIP) == "gzip"
    assert m.layer_compression(m.OCI_LAYER_ZSTD) == "zstd"
    assert m.layer_compression(m.OCI_LAYER) == ""
    assert m.layer_compression("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip") == "foreign"
    with pytest.raises(RegistryError):
        m.layer_compression("text/plain")


def test_build_manifest_is_deterministic():
    cfg = m.Descriptor(m.OCI_CONFIG, "sha256:" + "c" * 64, 3)
    layer = m.Descriptor(m.OCI_LAYER_GZIP, "sha256:" + "1" * 64, 4)
    a = m.build_manifest(cfg, [layer])
    assert a == m.build_manifest(cfg, [layer])
    parsed = m.parse_manifest(a, m.OCI_MANIFEST)
    assert parsed.config.digest == cfg.digest and parsed.layers[0].digest == layer.digest
