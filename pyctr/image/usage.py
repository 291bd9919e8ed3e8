"""`system df`'s accounting: how many images, containers, volumes and build cache entries there are, how many
are in use, and the bytes each kind holds and could give back, counted as dockerd counts them.

Numbers only; `pyctr.commands.image.df` turns them into Docker's table.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Usage:
    """One row of `docker system df`: a kind of object, how many, how many in use, bytes held and reclaimable."""

    kind: str
    total: int
    active: int
    size: int
    reclaimable: int


def du(path: Path | str) -> int:
    """Bytes a directory tree holds on disk (allocated blocks; each hard-linked inode once), as `du` counts."""
    total = 0
    seen: set[tuple[int, int]] = set()
    for root, dirs, files in os.walk(path):
        for name in files + dirs:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512 if st.st_blocks else st.st_size
    return total


def layers_size(images: list) -> int:
    """Docker's LayersSize: each layer the images use counted once (build steps share their base's layers)."""
    return sum({layer.chain_id: layer.diff_size for image in images for layer in image.layers}.values())


def image_usage(store) -> Usage:
    """dockerd counts no intermediate image (untagged, with a child), but every layer, once; an image is active
    while a container uses it, and reclaimable is what the inactive ones hold alone."""
    children = store.children()
    every_image = store.list_images()
    counted = [i for i in every_image if i.repo_tags or i.repo_digests or not children.get(i.id)]
    users = store.containers_using()
    size = layers_size(every_image)
    active = [i for i in counted if i.id in users]
    return Usage("Images", len(counted), len(active), size, size - layers_size(active))


def _subdirectories(path: Path) -> list[Path]:
    return [p for p in path.iterdir() if p.is_dir()] if path.is_dir() else []


def disk_usage(paths, store) -> list[Usage]:
    """The four rows of `system df`: images, containers (their upper dirs), local volumes, build cache.

    Containers are reported with nothing active and all reclaimable, and the build cache with no entries
    counted, as pyctr has always reported them; a volume is active while a container refers to it (dockerd)."""
    containers = _subdirectories(paths.containers)
    container_size = sum(du(p / "rootfs" / "upper") for p in containers)
    from pyctr.runtime.volumes import volume_usage

    volumes = volume_usage(paths)  # (total, in use, bytes, bytes of the unused)
    cache_size = du(paths.build_cache) if paths.build_cache.is_dir() else 0
    return [
        image_usage(store),
        Usage("Containers", len(containers), 0, container_size, container_size),
        Usage("Local Volumes", *volumes),
        Usage("Build Cache", 0, 0, cache_size, cache_size),
    ]
