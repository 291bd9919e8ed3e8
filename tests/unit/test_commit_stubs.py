"""commit leaves the runtime's mount-point stubs out of the new layer (Docker keeps them in the init layer):
which paths count as stubs, and pack_layer leaving them out with everything below them."""

from __future__ import annotations

import io
import tarfile

from pyctr.image.pack import pack_layer
from pyctr.runtime.snapshot import init_layer_stubs


def tree(root, files=(), dirs=()):
    for d in dirs:
        (root / d).mkdir(parents=True, exist_ok=True)
    for f in files:
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        (root / f).write_text("x")
    return root


def test_stubs_are_the_init_layer_paths_the_image_did_not_have(tmp_path):
    upper = tree(tmp_path / "upper", files=["etc/hosts", "etc/hostname", "etc/resolv.conf", "greeting"],
                 dirs=["proc", "sys", "dev", "data"])
    lower = tree(tmp_path / "lower", files=["etc/hostname"], dirs=["dev", "etc"])
    assert init_layer_stubs(upper, [lower]) == {"etc/hosts", "etc/resolv.conf", "proc", "sys"}


def member_names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getnames()


def test_pack_layer_leaves_excluded_paths_and_their_subtrees_out(tmp_path):
    upper = tree(tmp_path / "upper", files=["etc/hosts", "etc/passwd", "sys/fs/x", "greeting"], dirs=["proc"])
    out = io.BytesIO()
    pack_layer(upper, out, compress=False, exclude=frozenset({"etc/hosts", "sys", "proc"}))
    assert member_names(out.getvalue()) == ["etc", "etc/passwd", "greeting"]
    everything = io.BytesIO()
    pack_layer(upper, everything, compress=False)
    assert "etc/hosts" in member_names(everything.getvalue())
