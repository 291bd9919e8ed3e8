"""unpack_layer against an independent referee: umoci.

Each layer is unpacked alone by pyctr, the layer dirs are stacked with a real read-only overlay mount, and the
merged view must equal what `umoci unpack` makes of the same image: same paths, types, modes, owners, link
targets, device numbers, file contents, file mtimes and hardlink groups. Runs as root (mount, mknod, chown).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import subprocess
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pyctr.image.pack import pack_layer
from pyctr.image.unpack import unpack_layer
from tests.fixtures import ocilayout, seed


def run(*cmd: str | Path) -> None:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} failed: {proc.stderr.strip()}", pytrace=False)


def snapshot(root: Path) -> tuple[dict[str, tuple], list[tuple[str, ...]]]:
    """{path: (type, mode, uid, gid, detail, mtime)} and the hardlink groups of a tree (never following links)."""
    entries: dict[str, tuple] = {}
    inodes: dict[tuple[int, int], list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            kind = stat.S_IFMT(st.st_mode)
            mtime = None if stat.S_ISDIR(st.st_mode) else st.st_mtime_ns
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    detail: object = hashlib.sha256(f.read()).hexdigest()
                if st.st_nlink > 1:
                    inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
            elif stat.S_ISLNK(st.st_mode):
                detail = os.readlink(path)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                detail = (os.major(st.st_rdev), os.minor(st.st_rdev))
            else:
                detail = None
            entries[rel] = (kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, detail, mtime)
    groups = sorted(tuple(sorted(paths)) for paths in inodes.values() if len(paths) > 1)
    return entries, groups


@contextmanager
def overlay(layer_dirs: list[Path], work: Path) -> Iterator[Path]:
    """A read-only overlay of `layer_dirs` (base first); an empty bottom layer makes one layer mountable too."""
    empty = work / "empty-bottom"
    empty.mkdir()
    merged = work / "merged"
    merged.mkdir()
    lowers = ":".join(str(d) for d in [*reversed(layer_dirs), empty])
    run("mount", "-t", "overlay", "overlay", "-o", f"ro,lowerdir={lowers}", merged)
    try:
        yield merged
    finally:
        subprocess.run(["umount", str(merged)], check=True)


def unpack_image(layout: Path, tag: str, work: Path) -> list[Path]:
    """Unpack every layer of `layout:tag` with pyctr, each into its own dir, checking the diff_ids."""
    manifest, config = ocilayout.manifest_and_config(layout, tag)
    dirs = []
    for i, (layer, diff_id) in enumerate(zip(manifest["layers"], config["rootfs"]["diff_ids"], strict=True)):
        dest = work / f"layer{i}"
        dest.mkdir()
        with open(ocilayout.blob_path(layout, layer["digest"]), "rb") as blob:
            result = unpack_layer(blob, layer["mediaType"], dest)
        assert result.diff_id == diff_id, f"layer {i} diff_id"
        dirs.append(dest)
    return dirs


def assert_same_trees(ours: Path, theirs: Path) -> None:
    our_entries, our_links = snapshot(ours)
    their_entries, their_links = snapshot(theirs)
    assert sorted(our_entries) == sorted(their_entries)
    for path, value in their_entries.items():
        assert our_entries[path] == value, path
    assert our_links == their_links


# --- a hand-made image built by umoci ------------------------------------------------------------------


def populate_layer1(rootfs: Path) -> None:
    for name in ("bin", "etc", "app", "app/sub", "data", "gone-dir", "gone-dir/inner"):
        (rootfs / name).mkdir(exist_ok=True)
    (rootfs / "bin/tool").write_bytes(b"#!/bin/sh\necho tool\n" + os.urandom(100000))
    os.chmod(rootfs / "bin/tool", 0o4755)
    (rootfs / "bin/sgid").write_bytes(b"sgid")
    os.chmod(rootfs / "bin/sgid", 0o2711)
    os.link(rootfs / "bin/tool", rootfs / "bin/tool-hardlink")
    os.link(rootfs / "bin/tool", rootfs / "data/tool-elsewhere")
    os.symlink("/bin/tool", rootfs / "bin/abs-link")
    os.symlink("../etc/hostname", rootfs / "bin/rel-link")
    os.symlink("/nonexistent/target", rootfs / "dangling")
    (rootfs / "etc/hostname").write_text("referee\n")
    (rootfs / "etc/delete-me").write_text("soon gone\n")
    os.mkfifo(rootfs / "data/fifo", 0o640)
    os.mknod(rootfs / "data/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    (rootfs / "data/owned").write_text("owned\n")
    os.chown(rootfs / "data/owned", 1000, 1001)
    os.chmod(rootfs / "data", 0o1777)
    (rootfs / "app/old").write_text("hidden by the opaque dir\n")
    (rootfs / "app/sub/old").write_text("hidden too\n")
    (rootfs / "gone-dir/inner/file").write_text("x\n")
    long_dir = rootfs / ("d" * 90) / ("e" * 90)
    long_dir.mkdir(parents=True)
    (long_dir / ("f" * 120)).write_text("long name\n")


def change_layer2(rootfs: Path) -> None:
    (rootfs / "etc/delete-me").unlink()
    for path in sorted((rootfs / "gone-dir").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    (rootfs / "gone-dir").rmdir()
    (rootfs / "etc/hostname").write_text("changed\n")
    (rootfs / "etc/new").write_text("new in layer 2\n")
    os.chown(rootfs / "etc/new", 0, 42)


def opaque_layer_tar() -> bytes:
    """Layer 3, by hand: the opaque marker comes after a sibling of the same layer, which must survive."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (("app", None), ("app/fresh", b"fresh\n"), ("app/.wh..wh..opq", b""),
                           ("bin", None), ("bin/.wh.sgid", b"")):
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.mode, info.size = 0o644, len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def umoci_image(tmp_path: Path) -> tuple[Path, str]:
    layout = tmp_path / "layout"
    bundle = tmp_path / "bundle"
    run("umoci", "init", "--layout", layout)
    run("umoci", "new", "--image", f"{layout}:t")
    run("umoci", "unpack", "--image", f"{layout}:t", bundle)
    populate_layer1(bundle / "rootfs")
    run("umoci", "repack", "--image", f"{layout}:t", bundle)
    bundle2 = tmp_path / "bundle2"  # umoci repacks against the manifest a bundle was unpacked from
    run("umoci", "unpack", "--image", f"{layout}:t", bundle2)
    change_layer2(bundle2 / "rootfs")
    run("umoci", "repack", "--image", f"{layout}:t", bundle2)
    (tmp_path / "layer3.tar").write_bytes(opaque_layer_tar())
    run("umoci", "raw", "add-layer", "--image", f"{layout}:t", tmp_path / "layer3.tar")
    return layout, "t"


def test_umoci_built_image_matches_umoci_unpack(tmp_path: Path, umoci_image: tuple[Path, str]) -> None:
    layout, tag = umoci_image
    work = tmp_path / "ours"
    work.mkdir()
    layer_dirs = unpack_image(layout, tag, work)
    assert len(layer_dirs) == 3
    run("umoci", "unpack", "--image", f"{layout}:{tag}", tmp_path / "ref")
    with overlay(layer_dirs, work) as merged:
        assert_same_trees(merged, tmp_path / "ref/rootfs")
        assert (merged / "app/fresh").exists() and not (merged / "app/old").exists()
        assert not (merged / "etc/delete-me").exists() and not (merged / "gone-dir").exists()
        assert not (merged / "bin/sgid").exists()


def test_repacked_layers_unpack_to_the_same_tree(tmp_path: Path, umoci_image: tuple[Path, str]) -> None:
    """pack_layer of each unpacked layer dir, unpacked again and stacked, still matches umoci's rootfs."""
    layout, tag = umoci_image
    first = tmp_path / "first"
    first.mkdir()
    layer_dirs = unpack_image(layout, tag, first)
    second = tmp_path / "second"
    second.mkdir()
    again = []
    for i, layer_dir in enumerate(layer_dirs):
        blob = io.BytesIO()
        packed = pack_layer(layer_dir, blob)
        dest = second / f"layer{i}"
        dest.mkdir()
        blob.seek(0)
        assert unpack_layer(blob, ocilayout.OCI_LAYER_GZIP, dest).diff_id == packed.diff_id
        again.append(dest)
    run("umoci", "unpack", "--image", f"{layout}:{tag}", tmp_path / "ref")
    with overlay(again, second) as merged:
        assert_same_trees(merged, tmp_path / "ref/rootfs")


# --- the cached seed images ---------------------------------------------------------------------------


@pytest.mark.parametrize("image", ["busybox", "python"])
def test_seed_image_matches_umoci_unpack(tmp_path: Path, image: str) -> None:
    seed.ensure_layouts((seed.image_layout(image)[0].name,))
    layout, tag = seed.image_layout(image)
    work = tmp_path / "ours"
    work.mkdir()
    layer_dirs = unpack_image(layout, tag, work)
    reference = seed.umoci_unpack(image, tmp_path / "ref")
    with overlay(layer_dirs, work) as merged:
        assert_same_trees(merged, reference)


def test_seed_whiteout_image_matches_expected_tree(tmp_path: Path) -> None:
    """umoci 0.4.7 cannot read its zstd layer: the fixture's expected tree is the referee."""
    seed.ensure_layouts(("whiteout",))
    layout, tag = seed.image_layout("whiteout")
    work = tmp_path / "ours"
    work.mkdir()
    layer_dirs = unpack_image(layout, tag, work)
    with overlay(layer_dirs, work) as merged:
        assert seed.snapshot_tree(merged) == seed.WHITEOUT_EXPECTED_TREE
        for path in seed.WHITEOUT_REMOVED_PATHS:
            assert not os.path.lexists(merged / path), path


# --- pack_layer of a real overlay upper dir --------------------------------------------------------------


def change_through_overlay(merged: Path) -> None:
    """What a RUN step does: deletes (whiteouts), a dir removed and made again (opaque), copy-ups, new files."""
    (merged / "etc/hostname").unlink()
    subprocess.run(["rm", "-rf", str(merged / "app")], check=True)
    (merged / "app").mkdir()
    (merged / "app/only-new").write_text("new app\n")
    os.chmod(merged / "bin/tool", 0o755)  # metadata copy-up (overlay marks it with trusted.overlay.origin)
    (merged / "data/owned").write_text("rewritten\n")
    os.link(merged / "data/owned", merged / "data/owned-link")
    os.symlink("/etc/new", merged / "link-to-new")
    (merged / "etc/added").write_text("added\n")


def test_pack_of_an_overlay_upper_dir_stacks_back_to_the_same_view(tmp_path: Path,
                                                                      umoci_image: tuple[Path, str]) -> None:
    layout, tag = umoci_image
    work = tmp_path / "lower"
    work.mkdir()
    lower_dirs = unpack_image(layout, tag, work)
    upper, ovl_work, merged = tmp_path / "upper", tmp_path / "work", tmp_path / "merged"
    for path in (upper, ovl_work, merged):
        path.mkdir()
    lowers = ":".join(str(d) for d in reversed(lower_dirs))
    run("mount", "-t", "overlay", "overlay", "-o",
        f"lowerdir={lowers},upperdir={upper},workdir={ovl_work},redirect_dir=off,metacopy=off,index=off", merged)
    try:
        change_through_overlay(merged)
        expected = snapshot(merged)
    finally:
        subprocess.run(["umount", str(merged)], check=True)

    blob = io.BytesIO()
    packed = pack_layer(upper, blob, source_date_epoch=None)
    blob.seek(0)
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob.getvalue()))) as tar:
        members = {m.name: m for m in tar}
    assert "etc/.wh.hostname" in members and "app/.wh..wh..opq" in members
    assert not any(k.startswith("SCHILY.xattr.trusted.overlay") for m in members.values() for k in m.pax_headers)
    assert members["data/owned-link"].islnk()

    new_layer = tmp_path / "new-layer"
    new_layer.mkdir()
    blob.seek(0)
    assert unpack_layer(blob, ocilayout.OCI_LAYER_GZIP, new_layer).diff_id == packed.diff_id
    stacked = tmp_path / "stacked"
    stacked.mkdir()
    with overlay([*lower_dirs, new_layer], stacked) as view:
        got = snapshot(view)
    assert sorted(got[0]) == sorted(expected[0])
    for path, value in expected[0].items():
        kind, mode, uid, gid, detail, mtime = value
        # pack keeps whole seconds (normalised tar), so compare mtimes at that precision
        assert got[0][path][:5] == value[:5], path
        if mtime is not None:
            assert got[0][path][5] // 10**9 == mtime // 10**9, path
    assert got[1] == expected[1]
