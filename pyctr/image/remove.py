"""Docker's image removal semantics: `rmi` (untag, delete with untagged parents, conflicts with containers,
--force, --no-prune) and `image prune`.

Kept out of the click commands so that any front end (the CLI today, an Engine API later) removes images the
same way; the commands only print the lines these functions return.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyctr.image.store import InUse


def remove_image(store, name: str, force: bool, prune: bool = True, *, in_use: InUse) -> list[str]:
    """Docker's rmi semantics; returns the "Untagged: x" / "Deleted: y" lines.

    By name: remove that name; the image goes only with its last tag. By id: the
    image goes with all its names (refused if several tags, unless forced). An image
    a container uses is refused unless forced, and then only untagged (kept dangling,
    so the container's layers stay), as Docker does for a running container.
    `in_use` is what containers hold, as the runtime reports it (runtime.usage.image_users).
    """
    from pyctr.errors import ConflictError

    image = store.resolve(name)
    users = list(in_use.images.get(image.id, []))
    ref = _names_image(store, name, image.id)
    if ref is not None:
        remaining = ([t for t in image.repo_tags if t != ref.familiar] if not ref.digest
                     else image.repo_tags + [d for d in image.repo_digests if d != ref.familiar])
        if remaining:
            store.untag(ref)
            return [f"Untagged: {ref.familiar}"]
        if users and not force:
            raise ConflictError(f'conflict: unable to remove repository reference "{name}" (must force) - '
                                f"container {users[0][:12]} is using its referenced image {image.short_id}")
    else:
        if users and not force:
            raise ConflictError(f"conflict: unable to delete {image.short_id} (must be forced) - "
                                f"image is being used by stopped container {users[0][:12]}")
        if len(image.repo_tags) > 1 and not force:
            raise ConflictError(f"conflict: unable to delete {image.short_id} (must be forced) - "
                                "image is referenced in multiple repositories")
    lines = [f"Untagged: {t}" for t in image.repo_tags] + [f"Untagged: {d}" for d in image.repo_digests]
    if users:
        for name_ in image.repo_tags + image.repo_digests:
            store.untag(name_)
        return lines
    if store.children().get(image.id):
        if ref is None:
            raise ConflictError(f"conflict: unable to delete {image.short_id} (cannot be forced) - "
                                "image has dependent child images")
        for name_ in image.repo_tags + image.repo_digests:  # by name: untagged, kept for its children
            store.untag(name_)
        return lines
    lines += _delete(store, image, in_use)
    if prune:
        lines += _delete_untagged_parents(store, image.parent, in_use)
    return lines


def _delete(store, image, in_use: InUse) -> list[str]:
    """Delete one image: "Deleted: <id>", then one line per layer only it held (chain ids, top first)."""
    before = {p.name for p in store.paths.layers.iterdir()} if store.paths.layers.is_dir() else set()
    store.delete_image(image.id, in_use)
    after = {p.name for p in store.paths.layers.iterdir()} if store.paths.layers.is_dir() else set()
    return [f"Deleted: {image.id}"] + [f"Deleted: sha256:{h}" for h in (layer.chain_id[7:]
                                                                      for layer in reversed(image.layers))
                                       if h in before - after]


def _delete_untagged_parents(store, parent_id: str, in_use: InUse) -> list[str]:
    """dockerd's rmi (without --no-prune) goes on with the parent while it is an intermediate image: untagged,
    no other child, no container."""
    from pyctr.errors import NotFoundError

    lines: list[str] = []
    while parent_id:
        try:
            parent = store.get_image(parent_id)
        except NotFoundError:
            break
        if parent.repo_tags or parent.repo_digests or store.children().get(parent.id) \
                or in_use.images.get(parent.id):
            break
        lines += _delete(store, parent, in_use)
        parent_id = parent.parent
    return lines


def _names_image(store, name: str, image_id: str):
    """The Reference `name` is, if it is a stored tag/digest of `image_id` (not an id)."""
    from pyctr.errors import InvalidReference
    from pyctr.image.reference import parse_reference

    if name.startswith("sha256:"):
        return None
    try:
        ref = parse_reference(name)
    except InvalidReference:
        return None
    return ref if store.lookup_name(ref) == image_id else None


def prune_images(store, all_unused: bool, *, in_use: InUse) -> tuple[list[str], int]:
    """Remove dangling (or, with all_unused, all) images no container uses, then the blobs and layers nothing
    names any more; (lines, bytes freed).

    An intermediate image (untagged, with a child) is not dangling: it goes when its child goes, as dockerd
    prunes the parents of what it deletes. `in_use`: what containers hold."""
    users = in_use.images
    lines, freed = [], 0
    removed = True
    while removed:  # deleting a child can make its parent prunable
        removed = False
        children = store.children()
        for image in store.list_images():
            if image.id in users or children.get(image.id):
                continue
            if image.repo_tags and not all_unused:
                continue
            lines += [f"untagged: {t}" for t in image.repo_tags] + [f"untagged: {d}" for d in image.repo_digests]
            freed += image.size
            store.delete_image(image.id, in_use)
            lines.append(f"deleted: {image.id}")
            removed = True
    store.collect_garbage(in_use)
    return lines, freed
