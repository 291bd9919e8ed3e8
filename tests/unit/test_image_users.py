"""The runtime tells the image store what containers hold (runtime/usage.py), and the store obeys it: a container's
image is refused to rmi and kept by prune, its layers outlive their image."""

from __future__ import annotations

import json
from pathlib import Path

from pyctr.config import Paths
from pyctr.image.remove import prune_images
from pyctr.image.store import ImageStore, InUse
from pyctr.runtime.state import ContainerStore
from pyctr.runtime.usage import image_users, layer_dir_name


def make_image(store: ImageStore, content: bytes):
    layer_dir = store.paths.tmp / "src"
    store.ensure()
    layer_dir.mkdir(exist_ok=True)
    (layer_dir / "f").write_bytes(content)
    layer = store.add_layer_from_dir(layer_dir)
    return store.put_image({"os": "linux", "architecture": "amd64"}, [layer])


def create_container(paths: Paths, image_id: str, lowerdirs: list[Path]) -> str:
    """A stored container as `create` writes it: Image in config.json, the rootfs plan in spec.json."""
    record = ContainerStore(paths).create(lambda cid, name: {
        "Image": image_id, "Spec": {"rootfs": {"lowerdirs": [str(p) for p in lowerdirs]}}, "Options": {}})
    return record.id


def test_image_users_reads_the_image_and_the_layers_each_container_stacks(tmp_path):
    paths = Paths(tmp_path / "root")
    store = ImageStore(paths)
    image = make_image(store, b"1")
    cid = create_container(paths, image.id, [*image.layer_dirs, tmp_path / "init"])
    in_use = image_users(paths)
    assert in_use.images == {image.id: [cid]}
    assert in_use.layers == {image.layers[0].path.name}


def test_a_layer_a_container_stacks_survives_a_prune_of_its_image(tmp_path):
    """rmi -f leaves an image dangling; `image prune` keeps it while a container uses it, and even a record
    removed some other way cannot take the container's layer with it."""
    paths = Paths(tmp_path / "root")
    store = ImageStore(paths)
    image = make_image(store, b"1")
    create_container(paths, image.id, image.layer_dirs)
    in_use = image_users(paths)
    assert prune_images(store, all_unused=True, in_use=in_use) == ([], 0)
    store.delete_image(image.id, in_use)  # e.g. `system check` dropped a damaged record
    assert image.layers[0].diff_dir.is_dir()
    store.collect_garbage(InUse())
    assert not image.layers[0].path.exists()


def test_layer_dir_name_accepts_only_layers_of_this_root(tmp_path):
    layers = tmp_path / "layers"
    assert layer_dir_name(str(layers / ("a" * 64) / "diff"), layers) == "a" * 64
    assert layer_dir_name(str(tmp_path / "other" / ("a" * 64) / "diff"), layers) is None
    assert layer_dir_name(str(layers / "not-hex" / "diff"), layers) is None


def test_the_stored_spec_is_where_the_lowerdirs_are(tmp_path):
    """image_users must read spec.json (where `create` puts the rootfs plan), not only config.json."""
    paths = Paths(tmp_path / "root")
    cid = create_container(paths, "sha256:" + "b" * 64, [paths.layers / ("c" * 64) / "diff"])
    assert "lowerdirs" not in (paths.containers / cid / "config.json").read_text()
    assert json.loads((paths.containers / cid / "spec.json").read_text())["Spec"]["rootfs"]["lowerdirs"]
    assert image_users(paths).layers == {"c" * 64}
