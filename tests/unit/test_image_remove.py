"""rmi and image prune decisions (pyctr.image.remove) on an in-memory store: which names go, which images are
deleted, which conflicts refuse, without touching a real store or containers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest

from pyctr.errors import ConflictError, NotFoundError
from pyctr.image.reference import parse_reference
from pyctr.image.remove import prune_images, remove_image
from pyctr.image.store import InUse


@dataclass
class FakeImage:
    id: str
    repo_tags: list[str] = field(default_factory=list)
    repo_digests: list[str] = field(default_factory=list)
    parent: str = ""
    size: int = 100
    layers: list = field(default_factory=list)

    @property
    def short_id(self) -> str:
        return self.id[7:19]


class FakeStore:
    """The ImageStore calls remove.py makes, over dicts; each image owns one layer dir named after it."""

    def __init__(self, root: Path, images: list[FakeImage], users: dict[str, list[str]] | None = None):
        self.images = {i.id: i for i in images}
        self.users = users or {}
        self.paths = SimpleNamespace(layers=root / "layers")
        self.paths.layers.mkdir()
        self.garbage_collected = False
        for image in images:
            (self.paths.layers / image.id[7:]).mkdir()
            image.layers = [SimpleNamespace(chain_id=image.id, diff_size=image.size)]

    def resolve(self, name: str) -> FakeImage:
        if name.startswith("sha256:"):
            return self.images[name]
        image_id = self.lookup_name(parse_reference(name))
        if image_id is None:
            raise NotFoundError(f"No such image: {name}")
        return self.images[image_id]

    def lookup_name(self, ref) -> str | None:
        return next((i.id for i in self.images.values() if ref.familiar in i.repo_tags + i.repo_digests), None)

    def untag(self, ref) -> None:
        name = ref if isinstance(ref, str) else ref.familiar
        for image in self.images.values():
            for names in (image.repo_tags, image.repo_digests):
                if name in names:
                    names.remove(name)

    def get_image(self, image_id: str) -> FakeImage:
        if image_id not in self.images:
            raise NotFoundError(image_id)
        return self.images[image_id]

    def list_images(self) -> list[FakeImage]:
        return list(self.images.values())

    def children(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for image in self.images.values():
            if image.parent:
                out.setdefault(image.parent, []).append(image.id)
        return out

    @property
    def in_use(self) -> InUse:
        """What the runtime would report: the containers using each image."""
        return InUse(self.users)

    def delete_image(self, image_id: str, in_use: InUse) -> None:
        assert in_use.images == self.users  # the store's GC is told what containers hold
        del self.images[image_id]
        (self.paths.layers / image_id[7:]).rmdir()

    def collect_garbage(self, in_use: InUse) -> None:
        assert in_use.images == self.users
        self.garbage_collected = True


BASE, STEP, TOP, OTHER = (f"sha256:{c * 64}" for c in "abcd")
CONTAINER = "f" * 64


def test_removing_one_of_two_tags_only_untags(tmp_path):
    store = FakeStore(tmp_path, [FakeImage(TOP, ["app:1", "app:2"])])
    assert remove_image(store, "app:1", force=False, in_use=store.in_use) == ["Untagged: app:1"]
    assert store.images[TOP].repo_tags == ["app:2"]


def test_by_id_an_image_with_several_tags_needs_force(tmp_path):
    store = FakeStore(tmp_path, [FakeImage(TOP, ["app:1", "app:2"])])
    with pytest.raises(ConflictError, match="referenced in multiple repositories"):
        remove_image(store, TOP, force=False, in_use=store.in_use)
    assert remove_image(store, TOP, force=True, in_use=store.in_use) == [
        "Untagged: app:1", "Untagged: app:2", f"Deleted: {TOP}", f"Deleted: sha256:{TOP[7:]}"]
    assert TOP not in store.images


def test_an_image_a_container_uses_is_refused_then_only_untagged_when_forced(tmp_path):
    store = FakeStore(tmp_path, [FakeImage(TOP, ["app:1"])], users={TOP: [CONTAINER]})
    with pytest.raises(ConflictError, match=f"container {CONTAINER[:12]} is using its referenced image"):
        remove_image(store, "app:1", force=False, in_use=store.in_use)
    with pytest.raises(ConflictError, match=f"used by stopped container {CONTAINER[:12]}"):
        remove_image(store, TOP, force=False, in_use=store.in_use)
    assert remove_image(store, "app:1", force=True, in_use=store.in_use) == ["Untagged: app:1"]
    assert store.images[TOP].repo_tags == []  # kept, dangling, for the container's layers


def test_last_tag_deletes_the_untagged_parents_unless_no_prune(tmp_path):
    def chain(root: Path) -> FakeStore:
        root.mkdir()
        return FakeStore(root, [FakeImage(BASE, ["base:1"]), FakeImage(STEP, parent=BASE),
                                FakeImage(TOP, ["app:1"], parent=STEP)])

    store = chain(tmp_path / "pruned")
    assert remove_image(store, "app:1", force=False, in_use=store.in_use) == [
        "Untagged: app:1", f"Deleted: {TOP}", f"Deleted: sha256:{TOP[7:]}", f"Deleted: {STEP}",
        f"Deleted: sha256:{STEP[7:]}"]
    assert set(store.images) == {BASE}  # the tagged parent stays
    store = chain(tmp_path / "kept")
    remove_image(store, "app:1", force=False, prune=False, in_use=store.in_use)
    assert set(store.images) == {BASE, STEP}


def test_an_image_with_children_cannot_be_deleted_by_id_but_is_untagged_by_name(tmp_path):
    store = FakeStore(tmp_path, [FakeImage(BASE, ["base:1"]), FakeImage(TOP, ["app:1"], parent=BASE)])
    with pytest.raises(ConflictError, match="image has dependent child images"):
        remove_image(store, BASE, force=True, in_use=store.in_use)
    assert remove_image(store, "base:1", force=False, in_use=store.in_use) == ["Untagged: base:1"]
    assert BASE in store.images


def test_prune_removes_dangling_and_the_parents_they_free_but_not_tagged_or_used(tmp_path):
    store = FakeStore(tmp_path, [
        FakeImage(BASE, size=10), FakeImage(STEP, parent=BASE, size=20), FakeImage(TOP, ["app:1"], size=40),
        FakeImage(OTHER, size=80)], users={OTHER: [CONTAINER]})
    lines, freed = prune_images(store, all_unused=False, in_use=store.in_use)
    assert lines == [f"deleted: {STEP}", f"deleted: {BASE}"] and freed == 30
    assert set(store.images) == {TOP, OTHER} and store.garbage_collected


def test_prune_all_removes_tagged_images_no_container_uses(tmp_path):
    store = FakeStore(tmp_path, [FakeImage(TOP, ["app:1"], size=40), FakeImage(OTHER, ["db:1"], size=80)],
                      users={OTHER: [CONTAINER]})
    assert prune_images(store, all_unused=True, in_use=store.in_use) == (["untagged: app:1", f"deleted: {TOP}"], 40)
    assert set(store.images) == {OTHER}
