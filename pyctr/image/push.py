"""`push`: upload an image's blobs and manifest so any registry client can pull it.

The manifest pulled with the image is pushed unchanged when all its blobs are
still in the store (its digest then stays the same, as users pinned it);
images built or loaded locally get a fresh OCI manifest. Layers without a
compressed blob (loaded from an archive by an older pyctr) are packed again.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TextIO

from pyctr.config import Config
from pyctr.errors import NotFoundError, RegistryError, UsageError
from pyctr.image.manifest import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, Descriptor, build_manifest
from pyctr.image.reference import parse_reference
from pyctr.image.store import ImageRecord, ImageStore


def _client_for(config: Config, registry: str, repository: str, actions: tuple[str, ...]):
    from pyctr.image.auth import load_credentials
    from pyctr.image.reference import DOCKER_HUB, Reference
    from pyctr.image.registry import RegistryClient, endpoints_for

    ref = Reference(registry, repository or "library/x", "latest")
    # A push goes to the registry itself, never a pull-through mirror.
    endpoint = endpoints_for(ref, (), config.insecure_registries)[-1]
    creds = load_credentials(DOCKER_HUB if ref.is_docker_hub else registry)
    return RegistryClient(endpoint, repository, creds, actions)


def login_check(config: Config, registry: str, user: str, password: str) -> None:
    """Prove the credentials work against the registry's /v2/ (raises RegistryError if not)."""
    from pyctr.image.reference import DOCKER_HUB_ALIASES

    registry = "docker.io" if registry in DOCKER_HUB_ALIASES + ("registry-1.docker.io",) else registry
    with _client_for(config, registry, "", ()) as client:
        client.credentials = (user, password)
        client.ping()


def manifest_for(store: ImageStore, image: ImageRecord) -> tuple[bytes, str, list[dict]]:
    """(manifest bytes, media type, layer blob descriptors) to push for `image`."""
    if image.manifest_digest and store.has_blob(image.manifest_digest):
        data = store.read_blob(image.manifest_digest)
        doc = json.loads(data)
        layers = doc.get("layers") or []
        if all(store.has_blob(d["digest"]) for d in layers) and doc.get("config", {}).get("digest") == image.id:
            return data, doc.get("mediaType") or image.manifest_media_type or OCI_MANIFEST, layers
    blobs = [store.layer_blob(layer) for layer in image.layers]
    config_size = len(store.read_blob(image.id))
    config_desc = Descriptor(OCI_CONFIG, image.id, config_size)
    layer_descs = [Descriptor(_oci_layer_type(b["mediaType"]), b["digest"], int(b["size"])) for b in blobs]
    return build_manifest(config_desc, layer_descs), OCI_MANIFEST, [d.to_json() for d in layer_descs]


def _oci_layer_type(media_type: str) -> str:
    """Docker layer types inside an OCI manifest would be rejected by strict clients."""
    return {"application/vnd.docker.image.rootfs.diff.tar.gzip": OCI_LAYER_GZIP,
            "application/vnd.docker.image.rootfs.diff.tar": "application/vnd.oci.image.layer.v1.tar"
            }.get(media_type, media_type)


def push(config: Config, name: str, quiet: bool = False, out: TextIO | None = None) -> str:
    """Push the image named `name` (tag defaults to latest); returns the manifest digest."""
    out = out if out is not None else sys.stdout
    ref = parse_reference(name)
    if ref.digest:
        raise UsageError("cannot push a digest reference; push a tag")
    store = ImageStore(config.paths)
    say = (lambda s: None) if quiet else (lambda s: (out.write(s + "\n"), out.flush()))
    say(f"The push refers to repository [{ref.name}]")
    image = _local_image(store, ref)
    with store.gc_lock(shared=True):
        manifest, media_type, layers = manifest_for(store, image)
        with _client_for(config, ref.registry, ref.repository, ("pull", "push")) as client:
            for blob in reversed(layers):  # dockerd announces every layer before pushing any (non-TTY lines)
                say(f"{blob['digest'][7:19]}: Preparing")
            for blob in reversed(layers):
                _push_blob(store, client, blob, say)
            _push_blob(store, client, {"digest": image.id, "size": len(store.read_blob(image.id))}, None)
            client.put_manifest(ref.tag or "latest", manifest, media_type)
    from pyctr.image.pull import sha256_of

    digest = sha256_of(manifest)
    store.add_digest(ref, digest, image.id)
    store.record_event("push", ref.familiar, ref.familiar)
    say(f"{ref.tag}: digest: {digest} size: {len(manifest)}")
    return digest


def _local_image(store: ImageStore, ref) -> ImageRecord:
    """The image `ref` names, or dockerd's error: none of the repository's tags is here, or not this tag."""
    try:
        return store.resolve(str(ref))
    except NotFoundError:
        pass
    repository_tags = [t for image in store.list_images() for t in image.repo_tags
                       if t.rsplit(":", 1)[0] == ref.familiar_name]
    if not repository_tags:
        raise NotFoundError(f"An image does not exist locally with the tag: {ref.familiar_name}", exit_code=1)
    raise NotFoundError(f"tag does not exist: {ref.familiar}", exit_code=1)


def _push_blob(store: ImageStore, client, blob: dict, say) -> None:
    digest, size = blob["digest"], int(blob["size"])
    short = digest[7:19]
    if client.blob_exists(digest):
        if say:
            say(f"{short}: Layer already exists")
        return
    path: Path = store.blob_path(digest)
    if not path.is_file():
        raise RegistryError(f"blob {digest} is missing from the store; cannot push it")
    client.upload_blob(digest, size, path)
    if say:
        say(f"{short}: Pushed")
