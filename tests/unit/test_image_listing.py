"""Which rows `images` lists (pyctr.image.listing.image_rows), on an in-memory store."""

from __future__ import annotations

from types import SimpleNamespace

from pyctr.image.listing import image_rows


def image(image_id: str, tags: list[str], created: str, digests: tuple[str, ...] = ()) -> SimpleNamespace:
    return SimpleNamespace(id=image_id, repo_tags=tags, repo_digests=list(digests), created=created, added=0.0)


def store_of(images: list, children: dict[str, list[str]]) -> SimpleNamespace:
    return SimpleNamespace(list_images=lambda: images, children=lambda: children)


IMAGES = [
    image("base", ["base:1", "base:latest"], "2024-01-01T00:00:00Z"),
    image("step", [], "2024-01-02T00:00:00Z"),  # intermediate: app was built from it
    image("app", ["app:1"], "2024-01-03T00:00:00Z"),
    image("old", [], "2023-01-01T00:00:00Z"),  # dangling
    image("pulled", [], "2024-01-04T00:00:00Z", digests=("repo@sha256:" + "e" * 64,)),
]
STORE = store_of(IMAGES, {"base": ["step"], "step": ["app"]})


def shown(rows: list[dict]) -> list[tuple[str, str, str]]:
    return [(r["image"].id, r["Repository"], r["Tag"]) for r in rows]


def test_newest_first_one_row_per_tag_and_intermediate_images_only_with_all():
    assert shown(image_rows(STORE, False, None)) == [
        ("pulled", "repo", "<none>"), ("app", "app", "1"), ("base", "base", "1"), ("base", "base", "latest"),
        ("old", "<none>", "<none>")]
    rows = image_rows(STORE, True, None)
    assert ("step", "<none>", "<none>") in shown(rows)
    assert [r["intermediate"] for r in rows if r["image"].id == "step"] == [True]
    assert [r["Digest"] for r in rows if r["image"].id == "pulled"] == ["sha256:" + "e" * 64]


def test_a_repository_argument_keeps_its_rows_and_a_tag_narrows_them():
    assert shown(image_rows(STORE, False, "base")) == [("base", "base", "1"), ("base", "base", "latest")]
    assert shown(image_rows(STORE, False, "base:latest")) == [("base", "base", "latest")]
    assert image_rows(STORE, False, "nothing") == []
