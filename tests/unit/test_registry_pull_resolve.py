"""pull.resolve_manifest: index -> this platform's manifest, digests verified (a fake client, no network)."""

import hashlib
import json

import pytest

from pyctr.errors import DigestMismatch, RegistryError
from pyctr.image import manifest as m
from pyctr.image.pull import resolve_manifest
from pyctr.image.reference import parse_reference


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def image_manifest(tag: str) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": m.OCI_MANIFEST,
                       "config": {"mediaType": m.OCI_CONFIG, "digest": "sha256:" + "c" * 64, "size": 1},
                       "layers": [], "annotations": {"tag": tag}}).encode()


AMD64, ARM64 = image_manifest("amd64"), image_manifest("arm64")
INDEX = json.dumps({"schemaVersion": 2, "mediaType": m.OCI_INDEX, "manifests": [
    {"mediaType": m.OCI_MANIFEST, "digest": "sha256:" + "a" * 64, "size": 10,
     "platform": {"os": "unknown", "architecture": "unknown"},
     "annotations": {"vnd.docker.reference.type": "attestation-manifest"}},
    {"mediaType": m.OCI_MANIFEST, "digest": digest(ARM64), "size": len(ARM64),
     "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
    {"mediaType": m.OCI_MANIFEST, "digest": digest(AMD64), "size": len(AMD64),
     "platform": {"os": "linux", "architecture": "amd64"}},
]}).encode()


class FakeClient:
    def __init__(self, docs: dict[str, tuple[bytes, str]]):
        self.docs = docs
        self.asked: list[str] = []

    def get_manifest(self, reference):
        self.asked.append(reference)
        body, ctype = self.docs[reference]
        return body, ctype, None


def test_index_resolves_to_host_platform_and_keeps_index_digest():
    client = FakeClient({"latest": (INDEX, m.OCI_INDEX), digest(AMD64): (AMD64, m.OCI_MANIFEST),
                         digest(ARM64): (ARM64, m.OCI_MANIFEST)})
    resolved = resolve_manifest(client, parse_reference("x/y"), m.Platform("linux", "amd64"))
    assert resolved.repo_digest == digest(INDEX)
    assert resolved.manifest_bytes == AMD64
    assert client.asked == ["latest", digest(AMD64)]
    arm = resolve_manifest(client, parse_reference("x/y"), m.parse_platform("linux/arm64"))
    assert arm.manifest_bytes == ARM64


def test_pull_by_digest_verifies_the_top_manifest():
    pinned = digest(AMD64)
    ok = FakeClient({pinned: (AMD64, m.OCI_MANIFEST)})
    assert resolve_manifest(ok, parse_reference(f"x/y@{pinned}"), m.Platform("linux", "amd64")).repo_digest == pinned
    lying = FakeClient({pinned: (ARM64, m.OCI_MANIFEST)})
    with pytest.raises(DigestMismatch):
        resolve_manifest(lying, parse_reference(f"x/y@{pinned}"), m.Platform("linux", "amd64"))


def test_index_entry_content_must_match_its_digest():
    client = FakeClient({"latest": (INDEX, m.OCI_INDEX), digest(AMD64): (ARM64, m.OCI_MANIFEST)})
    with pytest.raises(DigestMismatch):
        resolve_manifest(client, parse_reference("x/y"), m.Platform("linux", "amd64"))


def test_nested_index_refused():
    inner = INDEX
    outer = json.dumps({"schemaVersion": 2, "mediaType": m.OCI_INDEX, "manifests": [
        {"mediaType": m.OCI_MANIFEST, "digest": digest(inner), "size": len(inner),
         "platform": {"os": "linux", "architecture": "amd64"}}]}).encode()
    client = FakeClient({"latest": (outer, m.OCI_INDEX), digest(inner): (inner, m.OCI_INDEX)})
    with pytest.raises(RegistryError, match="nested"):
        resolve_manifest(client, parse_reference("x/y"), m.Platform("linux", "amd64"))
