"""Which rows `images` and `history` show, decided from the image store: tags and untagged images as dockerd
lists them, and which local image made which history entry. The commands format these rows.
"""

from __future__ import annotations

from pyctr.errors import PyctrError
from pyctr.image.reference import parse_reference
from pyctr.output.timefmt import parse_rfc3339


def image_rows(store, show_all: bool, filter_ref: str | None) -> list[dict]:
    """One row per (image, tag) as `docker images` shows them; untagged images once as <none>; untagged
    images a build made another image from (intermediate images) only with -a, as dockerd lists them."""
    rows = []
    children = store.children()
    for image in store.list_images():
        digests = {d.split("@")[0]: d.split("@")[1] for d in image.repo_digests}
        names = [(t.rsplit(":", 1)[0], t.rsplit(":", 1)[1]) for t in image.repo_tags]
        intermediate = not names and not digests and bool(children.get(image.id))
        if intermediate and not show_all:
            continue
        if not names:
            names = [(repo, "<none>") for repo in digests] or [("<none>", "<none>")]
        for repo, tag in names:
            if filter_ref:
                want = parse_reference(filter_ref, default_tag=False)
                if repo not in (want.familiar_name, want.name) or (want.tag and want.tag != tag):
                    continue
            rows.append({"image": image, "Repository": repo, "Tag": tag,
                         "Digest": digests.get(repo, "<none>"), "intermediate": intermediate})
    rows.sort(key=lambda r: (-(parse_rfc3339(r["image"].created) or r["image"].added), r["Repository"], r["Tag"]))
    return rows


def history_image_ids(image, rows: int) -> dict[int, str]:
    """Row (newest first) -> the id of the local image that row made: the image itself on its top row, and for
    each ancestor in its Parent chain (the legacy builder's step images) the row of its own newest history entry,
    as dockerd shows them; rows of images not stored locally are "<missing>"."""
    ids = {0: image.id}
    current = image
    while current.parent:
        try:
            current = image.store.get(current.parent)
        except PyctrError:
            break
        depth = len([h for h in current.config.get("history") or [] if isinstance(h, dict)])
        if 0 < depth <= rows:
            ids[rows - depth] = current.id
    return ids
