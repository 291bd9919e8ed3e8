"""`system df`'s accounting of the image store: how many images there are, how many are in use, and the bytes
they hold and could give back, counted as dockerd counts them; `du`, the byte count every row of `system df`
uses. The other rows are the runtime's (runtime/usage.py), which also says what is in use.

Numbers only; `pyctr.commands.image.df` turns them into Docker's table.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyctr.image.store import InUse


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


def image_usage(store, in_use: InUse) -> Usage:
    """dockerd counts no intermediate image (untagged, with a child), but every layer, once; an image is active
    while a container uses it (`in_use`, as the runtime reports it), and reclaimable is what the inactive ones
    hold alone."""
    children = store.children()
    every_image = store.list_images()
    counted = [i for i in every_image if i.repo_tags or i.repo_digests or not children.get(i.id)]
    size = layers_size(every_image)
    active = [i for i in counted if i.id in in_use.images]
    return Usage("Images", len(counted), len(active), size, size - layers_size(active))
