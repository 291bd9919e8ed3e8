"""What containers hold of the image store, and the rows of `system df`.

The image store does not know where or how containers are stored: `image_users`
reads the containers (their config's `Image`, their spec's overlay lowerdirs)
and hands the store an `InUse`, which rmi, prune and `system df` obey.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from pyctr.config import Paths
from pyctr.errors import StoreError
from pyctr.image.store import ImageStore, InUse
from pyctr.image.usage import Usage, du, image_usage
from pyctr.runtime.state import CONFIG_FILE, ContainerConfig


def layer_dir_name(lowerdir: str, layers_root: Path) -> str | None:
    """The layer directory (chain id hex) a container's lowerdir `layers/<hex>/diff` lies in, or None for a
    lowerdir that is not an image layer (a build step's init layer, a path from another root)."""
    path = Path(lowerdir)
    if path.parent.parent != layers_root:
        return None
    name = path.parent.name
    return name if len(name) == 64 and all(c in "0123456789abcdef" for c in name) else None


def image_users(paths: Paths) -> InUse:
    """Image id -> ids of the containers created from it, and every layer directory a container's root
    filesystem stacks (kept even if its image is gone), read from the stored containers.

    Every container directory with a readable config counts, whatever its state (even without state.json):
    holding an image too long costs disk, releasing it too early costs a container its root filesystem."""
    images: dict[str, list[str]] = {}
    layers: set[str] = set()
    for container_id, config in stored_configs(paths.containers):
        image_id = config.get("Image")
        if isinstance(image_id, str) and image_id.startswith("sha256:"):
            images.setdefault(image_id, []).append(container_id)
        with contextlib.suppress(StoreError):
            spec = config.get("Spec") or {}
            for lowerdir in (spec.get("rootfs") or {}).get("lowerdirs") or []:
                name = layer_dir_name(str(lowerdir), paths.layers)
                if name:
                    layers.add(name)
    return InUse(images, frozenset(layers))


def stored_configs(containers: Path) -> Iterator[tuple[str, ContainerConfig]]:
    """(id, config) of each container directory whose config.json reads as an object (its spec on demand)."""
    try:
        entries = sorted(os.listdir(containers))
    except (FileNotFoundError, NotADirectoryError):
        return
    for container_id in entries:
        if container_id.startswith("."):  # .removing-<id>: being deleted, its rootfs already torn down
            continue
        directory = containers / container_id
        try:
            config = json.loads((directory / CONFIG_FILE).read_bytes())
        except (OSError, ValueError):
            continue
        if isinstance(config, dict):
            yield container_id, ContainerConfig(config, str(directory))


def _subdirectories(path: Path) -> list[Path]:
    return [p for p in path.iterdir() if p.is_dir()] if path.is_dir() else []


def disk_usage(paths: Paths, store: ImageStore) -> list[Usage]:
    """The four rows of `system df`: images, containers (their upper dirs), local volumes, build cache.

    Containers are reported with nothing active and all reclaimable, and the build cache with no entries
    counted, as pyctr has always reported them; a volume is active while a container refers to it (dockerd)."""
    containers = _subdirectories(paths.containers)
    container_size = sum(du(p / "rootfs" / "upper") for p in containers)
    from pyctr.runtime.volumes import volume_usage

    volumes = volume_usage(paths)  # (total, in use, bytes, bytes of the unused)
    cache_size = du(paths.build_cache) if paths.build_cache.is_dir() else 0
    return [
        image_usage(store, image_users(paths)),
        Usage("Containers", len(containers), 0, container_size, container_size),
        Usage("Local Volumes", *volumes),
        Usage("Build Cache", 0, 0, cache_size, cache_size),
    ]
