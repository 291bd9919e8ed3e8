"""Manifests, indexes and platform selection (pure: bytes in, decisions out).

Registries serve four current formats (OCI and Docker, single-image and
multi-platform); we dispatch on the media type the registry declares, falling
back to the document's own `mediaType`, and refuse the deprecated schema 1
because it has no content-addressed config to verify layers against.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from pyctr.errors import RegistryError, UsageError

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
           "application/vnd.docker.distribution.manifest.v1+prettyjws")
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"

DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
FOREIGN_MARK = "foreign"

INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))
LAYER_TYPES = (DOCKER_LAYER_GZIP, OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD,
               "application/vnd.docker.image.rootfs.diff.tar")

ATTESTATION_ANNOTATION = "vnd.docker.reference.type"


@dataclass(frozen=True)
class Platform:
    """An OCI platform, normalised so `arm64` and `arm64/v8` compare equal."""

    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: dict = field(default_factory=dict, hash=False, compare=False)
    urls: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, d: object) -> Descriptor:
        if not isinstance(d, dict):  # a registry serves anything: refuse, never AttributeError
            raise RegistryError("malformed descriptor in manifest: not a JSON object")
        try:
            plat = d.get("platform")
            platform = None
            if isinstance(plat, dict):
                platform = Platform(*(_text(plat.get(key, "")) for key in ("os", "architecture", "variant")))
            return cls(str(d["mediaType"]) if "mediaType" in d else "", str(d["digest"]), int(d["size"]),
                       platform, dict(d.get("annotations") or {}), tuple(d.get("urls") or ()))
        except (KeyError, TypeError, ValueError, OverflowError) as e:
            raise RegistryError(f"malformed descriptor in manifest: {e}") from None

    def to_json(self) -> dict:
        out: dict = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            out["annotations"] = self.annotations
        return out


def _text(value: object) -> str:
    """A platform field as a string: non-strings (hostile documents) become their JSON-ish text."""
    return value if isinstance(value, str) else str(value)


def _descriptors(value: object, field_name: str) -> tuple[Descriptor, ...]:
    """A manifest's list of descriptors (`layers`, `manifests`); anything but a list is refused."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise RegistryError(f"malformed manifest: '{field_name}' is not a list")
    return tuple(Descriptor.from_json(d) for d in value)


@dataclass(frozen=True)
class ImageManifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


@dataclass(frozen=True)
class ImageIndex:
    media_type: str
    manifests: tuple[Descriptor, ...]


def parse_manifest(data: bytes, content_type: str | None = None) -> ImageManifest | ImageIndex:
    """Decode a manifest or index, dispatching on Content-Type then `mediaType`."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise RegistryError("registry returned a manifest that is not JSON") from None
    if not isinstance(doc, dict):
        raise RegistryError("registry returned a manifest that is not a JSON object")
    declared = (content_type or "").split(";")[0].strip()
    media_type = declared if declared in INDEX_TYPES + MANIFEST_TYPES + SCHEMA1 else doc.get("mediaType", "")
    if not media_type:
        media_type = _guess_media_type(doc)
    if media_type in SCHEMA1 or doc.get("schemaVersion") == 1:
        raise RegistryError(
            "unsupported manifest format: Docker image manifest schema 1 is deprecated and no longer "
            "supported; push the image again with a current client"
        )
    if media_type in INDEX_TYPES:
        return ImageIndex(media_type, _descriptors(doc.get("manifests"), "manifests"))
    if media_type in MANIFEST_TYPES:
        if not isinstance(doc.get("config"), dict):
            raise RegistryError("malformed manifest: no config descriptor")
        layers = _descriptors(doc.get("layers"), "layers")
        return ImageManifest(media_type, Descriptor.from_json(doc["config"]), layers)
    raise RegistryError(f"unsupported manifest media type '{media_type}'")


def _guess_media_type(doc: dict) -> str:
    """OCI allows mediaType to be absent; the shape of the document tells."""
    if "manifests" in doc:
        return OCI_INDEX
    if "config" in doc:
        return OCI_MANIFEST
    return ""


def normalize_platform(p: Platform) -> Platform:
    """containerd's normalisation: aliases, and default variants (arm64 -> v8, arm -> v7)."""
    os_name = (p.os or "linux").lower()
    arch = p.architecture.lower()
    variant = p.variant.lower()
    arch = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "i386": "386", "armhf": "arm",
            "armel": "arm"}.get(arch, arch)
    if arch == "arm64":
        variant = {"": "v8", "8": "v8", "v8.0": "v8"}.get(variant, variant)
    elif arch == "arm":
        variant = {"": "v7", "7": "v7", "6": "v6", "5": "v5", "8": "v8"}.get(variant, variant)
    elif arch == "amd64" and variant in ("v1", "1"):
        variant = ""
    return Platform(os_name, arch, variant)


def parse_platform(text: str) -> Platform:
    """`linux/arm64/v8`, `linux/amd64` or `arm64` -> Platform."""
    parts = [p for p in text.strip().split("/")]
    if not text.strip() or any(not p for p in parts) or len(parts) > 3:
        raise UsageError(f"invalid platform {text!r}: expected os/arch[/variant]")
    if len(parts) == 1:
        parts = ["linux", parts[0]]
    return normalize_platform(Platform(*parts))


def is_attestation(desc: Descriptor) -> bool:
    """BuildKit's attestation manifests look like images for `unknown/unknown`: never run them."""
    if desc.annotations.get(ATTESTATION_ANNOTATION) == "attestation-manifest":
        return True
    return desc.platform is not None and desc.platform.os == "unknown"


def select_manifest(index: ImageIndex, wanted: Platform) -> Descriptor:
    """The index entry for `wanted`: exact variant first, then a compatible older one."""
    want = normalize_platform(wanted)
    candidates: list[tuple[int, Descriptor]] = []
    for desc in index.manifests:
        if is_attestation(desc) or desc.platform is None or desc.media_type in INDEX_TYPES:
            continue
        have = normalize_platform(desc.platform)
        if have.os != want.os or have.architecture != want.architecture:
            continue
        rank = _variant_rank(have.variant, want.variant)
        if rank is not None:
            candidates.append((rank, desc))
    if not candidates:
        available = ", ".join(sorted({str(d.platform) for d in index.manifests
                                      if d.platform and not is_attestation(d)})) or "none"
        raise RegistryError(
            f"no matching manifest for {want} in the manifest list entries (available: {available})"
        )
    candidates.sort(key=lambda c: c[0])
    return candidates[0][1]


def _variant_rank(have: str, want: str) -> int | None:
    """0 = exact; n = an older variant the wanted one runs; None = incompatible."""
    if have == want:
        return 0
    if not have or not want:
        return 50
    if have.startswith("v") and want.startswith("v") and have[1:].isdigit() and want[1:].isdigit():
        diff = int(want[1:]) - int(have[1:])
        return diff if diff > 0 else None
    return None


def layer_compression(media_type: str) -> str:
    """'gzip', 'zstd' or '' for a layer media type; RegistryError if not a layer we can use."""
    if FOREIGN_MARK in media_type:
        return "foreign"
    if media_type.endswith("+zstd") or media_type.endswith(".zstd"):
        return "zstd"
    if media_type.endswith("gzip"):
        return "gzip"
    if media_type in (OCI_LAYER, "application/vnd.docker.image.rootfs.diff.tar"):
        return ""
    raise RegistryError(f"unsupported layer media type '{media_type}'")


def build_manifest(config_desc: Descriptor, layers: list[Descriptor], media_type: str = OCI_MANIFEST) -> bytes:
    """Serialise an image manifest (for push): deterministic, so its digest is stable."""
    doc = {"schemaVersion": 2, "mediaType": media_type, "config": config_desc.to_json(),
           "layers": [d.to_json() for d in layers]}
    return json.dumps(doc, separators=(",", ":")).encode()
