"""Property-based tests of manifest and index parsing: whatever a registry serves, only PyctrError comes out.

A registry (or a proxy in front of it) can serve anything; `pyctr pull` must answer a malformed manifest with a
one-line error, not an AttributeError traceback. Platform selection over a hostile index must likewise either pick
an entry that is in the index or refuse.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pyctr.errors import PyctrError
from pyctr.image.manifest import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    SCHEMA1,
    ImageIndex,
    ImageManifest,
    Platform,
    layer_compression,
    parse_manifest,
    parse_platform,
    select_manifest,
)

FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Nested hostile documents are costly to generate: fewer of them.
FUZZ_STRUCTURED = settings(FUZZ, max_examples=100)
DIGEST = "sha256:" + "ab" * 32
KEYS = ["mediaType", "schemaVersion", "config", "layers", "manifests", "digest", "size", "platform", "os",
        "architecture", "variant", "annotations", "urls", "vnd.docker.reference.type"]
MEDIA_TYPES = [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST, *SCHEMA1, "", "text/plain",
               "application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.oci.image.layer.v1.tar+zstd"]

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                    st.sampled_from(MEDIA_TYPES + [DIGEST, "linux", "amd64", "arm64", "v8", "unknown"]),
                    st.text(max_size=10))
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=5), children, max_size=5),
    max_leaves=25,
)


@st.composite
def descriptor_like(draw) -> object:
    """A descriptor, sometimes well-formed, with any field possibly replaced by a hostile value."""
    desc = {"mediaType": draw(st.sampled_from(MEDIA_TYPES)), "digest": DIGEST, "size": draw(st.integers(0, 10**6)),
            "platform": {"os": "linux", "architecture": draw(st.sampled_from(["amd64", "arm64", "arm", "unknown"]))}}
    for key in draw(st.lists(st.sampled_from(list(desc) + ["annotations", "urls"]), max_size=3)):
        desc[key] = draw(json_values)
    return draw(st.one_of(st.just(desc), json_values))


@st.composite
def manifest_like(draw) -> dict:
    """Documents shaped like manifests or indexes, with hostile values in their fields."""
    doc: dict = {"schemaVersion": draw(st.sampled_from([2, 1, "2", None]))}
    if draw(st.booleans()):
        doc["mediaType"] = draw(st.sampled_from(MEDIA_TYPES) | json_values)
    if draw(st.booleans()):
        doc["config"] = draw(descriptor_like())
        doc["layers"] = draw(st.lists(descriptor_like(), max_size=3) | json_values)
    else:
        doc["manifests"] = draw(st.lists(descriptor_like(), max_size=3) | json_values)
    return doc


def _parse_or_refuse(data: bytes, content_type: str | None) -> object:
    try:
        return parse_manifest(data, content_type)
    except PyctrError as e:
        assert e.message and "\n" not in e.message, repr(e.message)
        return None


@FUZZ
@given(st.binary(max_size=200), st.sampled_from([None, *MEDIA_TYPES]))
@example(b"", None)
@example(b"\xff\xfe", None)
@example(b"[]", OCI_MANIFEST)
@example(b"null", None)
@example(b'{"schemaVersion": 1}', None)
def test_random_bytes_are_refused_in_one_line(data: bytes, content_type: str | None) -> None:
    _parse_or_refuse(data, content_type)


@FUZZ_STRUCTURED
@given(json_values, st.sampled_from([None, *MEDIA_TYPES]))
def test_random_json_parses_or_is_refused(doc: object, content_type: str | None) -> None:
    _parse_or_refuse(json.dumps(doc).encode(), content_type)


@FUZZ_STRUCTURED
@given(manifest_like(), st.sampled_from([None, *MEDIA_TYPES]))
@example({"schemaVersion": 2, "manifests": 5}, None)
@example({"schemaVersion": 2, "manifests": [[1, 2]]}, None)
@example({"schemaVersion": 2, "manifests": [{"digest": DIGEST, "size": 1, "platform": "linux"}]}, None)
@example({"schemaVersion": 2, "config": {"digest": DIGEST, "size": 1}, "layers": {"a": 1}}, None)
@example({"schemaVersion": 2, "config": {"digest": DIGEST, "size": 1}, "layers": [None]}, None)
@example({"schemaVersion": 2, "config": {"digest": DIGEST, "size": 1e400}}, OCI_MANIFEST)
@example({"schemaVersion": 2, "mediaType": [OCI_INDEX]}, None)
@example({"schemaVersion": 2, "mediaType": {"a": 1}}, None)
def test_manifest_shaped_documents_parse_or_are_refused(doc: dict, content_type: str | None) -> None:
    parsed = _parse_or_refuse(json.dumps(doc).encode(), content_type)
    if isinstance(parsed, ImageManifest):
        assert parsed.media_type in MANIFEST_TYPES
        for layer in parsed.layers:
            try:
                layer_compression(layer.media_type)
            except PyctrError:
                pass
    elif isinstance(parsed, ImageIndex):
        assert parsed.media_type in INDEX_TYPES
        try:
            chosen = select_manifest(parsed, Platform("linux", "amd64"))
        except PyctrError as e:
            assert "\n" not in e.message
        else:
            assert chosen in parsed.manifests


@FUZZ
@given(st.text(max_size=30))
@example("")
@example("/")
@example("linux//")
@example("a/b/c/d")
def test_platform_strings_parse_or_are_refused(text: str) -> None:
    try:
        platform = parse_platform(text)
    except PyctrError as e:
        assert "\n" not in e.message
    else:
        assert platform.os and platform.architecture
