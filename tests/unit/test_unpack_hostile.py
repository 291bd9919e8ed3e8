"""Hostile layer tars: nothing may appear or change outside dest, and the error names the entry.

Every test unpacks next to a sentinel directory holding a secret file, then checks the sentinel is exactly as
before and that tmp_path holds nothing but dest, the sentinel and the tar. Tests creating whiteouts need root.
"""

from __future__ import annotations

import io
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from pyctr.errors import UnsafeArchiveError
from pyctr.image.unpack import unpack_layer

TAR = "application/vnd.oci.image.layer.v1.tar"


def entry(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", *, mode: int = 0o644, linkname: str = "",
          pax: dict[str, str] | None = None) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = 1_700_000_000
    info.linkname = linkname
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.pax_headers = dict(pax or {})
    return info, data


def make_tar(*entries: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under root with type, mode, size, link count, content/target and xattrs."""
    found: dict[str, tuple] = {}
    for path in [root, *sorted(root.rglob("*"))]:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            detail: object = os.readlink(path)
        elif stat.S_ISREG(st.st_mode):
            detail = path.read_bytes()
        else:
            detail = None
        xattrs = tuple(sorted(os.listxattr(path, follow_symlinks=False)))
        found[str(path.relative_to(root))] = (st.st_mode, st.st_nlink, st.st_uid, st.st_mtime_ns, detail, xattrs)
    return found


@pytest.fixture
def arena(tmp_path: Path):
    """(dest, sentinel, check): check() asserts nothing outside dest changed."""
    dest = tmp_path / "dest"
    dest.mkdir()
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    (sentinel / "secret").write_bytes(b"do not touch")
    (sentinel / "dir").mkdir()
    before = snapshot(sentinel)

    def check() -> None:
        assert snapshot(sentinel) == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["dest", "sentinel"]

    return dest, sentinel, check


def refuse(dest: Path, data: bytes, entry_name: str, match: str | None = None) -> UnsafeArchiveError:
    with pytest.raises(UnsafeArchiveError, match=match) as exc:
        unpack_layer(io.BytesIO(data), TAR, dest)
    message = str(exc.value)
    assert repr(entry_name) in message, message
    assert "\n" not in message
    return exc.value


@pytest.mark.parametrize("name", ["../escape", "a/../../escape", "./../escape", "a/b/../../../escape"])
def test_dotdot_escape_refused(arena, name: str) -> None:
    dest, _, check = arena
    refuse(dest, make_tar(entry("a", tarfile.DIRTYPE), entry(name, data=b"pwned")), name, "outside")
    check()


def test_absolute_path_is_contained(arena) -> None:
    dest, sentinel, check = arena
    unpack_layer(io.BytesIO(make_tar(entry(str(sentinel / "secret"), data=b"pwned"))), TAR, dest)
    assert (dest / str(sentinel / "secret").lstrip("/")).read_bytes() == b"pwned"
    check()


@pytest.mark.parametrize("target_kind", ["absolute", "relative"])
def test_file_through_symlinked_parent_refused(arena, target_kind: str) -> None:
    dest, sentinel, check = arena
    target = str(sentinel) if target_kind == "absolute" else "../sentinel"
    data = make_tar(entry("link", tarfile.SYMTYPE, linkname=target), entry("link/secret", data=b"pwned"))
    refuse(dest, data, "link/secret", "parent 'link' is a symlink")
    check()


def test_deep_symlinked_parent_refused(arena) -> None:
    dest, _, check = arena
    data = make_tar(entry("a", tarfile.DIRTYPE), entry("a/b", tarfile.SYMTYPE, linkname="/"),
                    entry("a/b/tmp/pwned", data=b"x"))
    refuse(dest, data, "a/b/tmp/pwned", "'a/b' is a symlink")
    check()


def test_directory_entry_through_symlink_refused(arena) -> None:
    dest, sentinel, check = arena
    data = make_tar(entry("link", tarfile.SYMTYPE, linkname=str(sentinel)), entry("link/dir/new", tarfile.DIRTYPE))
    refuse(dest, data, "link/dir/new", "symlink")
    check()


def test_symlink_then_file_replaces_the_symlink(arena) -> None:
    dest, sentinel, check = arena
    data = make_tar(entry("f", tarfile.SYMTYPE, linkname=str(sentinel / "secret")),
                    entry("f", data=b"pwned", mode=0o777))
    unpack_layer(io.BytesIO(data), TAR, dest)
    assert not os.path.islink(dest / "f") and (dest / "f").read_bytes() == b"pwned"
    check()


def test_symlink_then_directory_and_special_files_replace_the_symlink(arena) -> None:
    dest, sentinel, check = arena
    data = make_tar(entry("d", tarfile.SYMTYPE, linkname=str(sentinel / "dir")),
                    entry("d", tarfile.DIRTYPE, mode=0o777),
                    entry("p", tarfile.SYMTYPE, linkname=str(sentinel / "secret")),
                    entry("p", tarfile.FIFOTYPE, mode=0o777))
    unpack_layer(io.BytesIO(data), TAR, dest)
    assert stat.S_ISDIR(os.lstat(dest / "d").st_mode) and stat.S_ISFIFO(os.lstat(dest / "p").st_mode)
    check()


def test_dir_replaced_by_symlink_then_child_refused(arena) -> None:
    dest, sentinel, check = arena
    data = make_tar(entry("d", tarfile.DIRTYPE), entry("d/x", data=b"1"),
                    entry("d", tarfile.SYMTYPE, linkname=str(sentinel)), entry("d/secret", data=b"pwned"))
    refuse(dest, data, "d/secret", "symlink")
    check()


@pytest.mark.parametrize("linkname", ["../sentinel/secret", "a/../../sentinel/secret"])
def test_hardlink_outside_refused(arena, linkname: str) -> None:
    dest, _, check = arena
    refuse(dest, make_tar(entry("a", tarfile.DIRTYPE), entry("h", tarfile.LNKTYPE, linkname=linkname)), "h", "outside")
    check()


def test_hardlink_absolute_target_stays_inside(arena) -> None:
    dest, sentinel, check = arena
    refuse(dest, make_tar(entry("h", tarfile.LNKTYPE, linkname=str(sentinel / "secret"))), "h", "not in the layer")
    check()


def test_hardlink_through_symlink_refused(arena) -> None:
    dest, sentinel, check = arena
    data = make_tar(entry("l", tarfile.SYMTYPE, linkname=str(sentinel)),
                    entry("h", tarfile.LNKTYPE, linkname="l/secret"))
    refuse(dest, data, "h", "parent 'l' is a symlink")
    check()


def test_hardlink_to_escaping_symlink_links_the_symlink_itself(arena) -> None:
    dest, sentinel, check = arena
    data = make_tar(entry("s", tarfile.SYMTYPE, linkname=str(sentinel / "secret")),
                    entry("h", tarfile.LNKTYPE, linkname="s"), entry("h", data=b"pwned"))
    unpack_layer(io.BytesIO(data), TAR, dest)
    assert (dest / "h").read_bytes() == b"pwned" and os.path.islink(dest / "s")
    check()


def test_hardlink_to_directory_refused(arena) -> None:
    dest, _, check = arena
    refuse(dest, make_tar(entry("d", tarfile.DIRTYPE), entry("h", tarfile.LNKTYPE, linkname="d")), "h", "directory")
    check()


def test_hardlink_to_itself_refused(arena) -> None:
    dest, _, check = arena
    refuse(dest, make_tar(entry("f", data=b"1"), entry("f", tarfile.LNKTYPE, linkname="f")), "f", "itself")
    check()


def test_file_under_a_regular_file_refused(arena) -> None:
    dest, _, check = arena
    refuse(dest, make_tar(entry("f", data=b"1"), entry("f/x", data=b"2")), "f/x", "not a directory")
    check()


def test_whiteout_through_symlink_refused(arena) -> None:
    """needs root for the whiteout it would make"""
    dest, sentinel, check = arena
    data = make_tar(entry("l", tarfile.SYMTYPE, linkname=str(sentinel)), entry("l/.wh.secret"))
    refuse(dest, data, "l/.wh.secret", "symlink")
    check()


def test_opaque_through_symlink_refused(arena) -> None:
    dest, sentinel, check = arena
    data = make_tar(entry("l", tarfile.SYMTYPE, linkname=str(sentinel / "dir")), entry("l/.wh..wh..opq"))
    refuse(dest, data, "l/.wh..wh..opq", "symlink")
    check()


@pytest.mark.parametrize("name", [".wh.", "a/.wh..", "a/.wh..."])
def test_whiteout_of_invalid_names_refused(arena, name: str) -> None:
    dest, _, check = arena
    refuse(dest, make_tar(entry("a", tarfile.DIRTYPE), entry(name)), name, "whiteout")
    check()


def test_overlay_xattrs_from_a_layer_are_dropped(arena) -> None:
    """needs root (trusted.* xattrs)"""
    if os.geteuid() != 0:
        pytest.fail("needs root", pytrace=False)
    dest, _, check = arena
    pax = {"SCHILY.xattr.trusted.overlay.redirect": "/sentinel", "SCHILY.xattr.trusted.overlay.metacopy": "",
           "SCHILY.xattr.user.overlay.origin": "x"}
    unpack_layer(io.BytesIO(make_tar(entry("d", tarfile.DIRTYPE, pax=pax), entry("f", data=b"1", pax=pax))), TAR, dest)
    assert os.listxattr(dest / "d") == [] and os.listxattr(dest / "f") == []
    check()


def test_nul_in_pax_path_refused(arena) -> None:
    dest, _, check = arena
    bad = "ok\x00/../../sentinel/secret"
    refuse(dest, make_tar(entry("placeholder", data=b"x", pax={"path": bad})), bad, "NUL")
    check()


def test_nul_in_symlink_target_refused(arena) -> None:
    dest, _, check = arena
    refuse(dest, make_tar(entry("s", tarfile.SYMTYPE, pax={"linkpath": "/x\x00y"})), "s", "symlink target")
    check()


def test_unknown_entry_type_refused(arena) -> None:
    dest, _, check = arena
    refuse(dest, make_tar(entry("v", b"V", data=b"")), "v", "unsupported tar type")
    check()


def test_sparse_map_beyond_size_refused(arena) -> None:
    dest, _, check = arena
    pax = {"GNU.sparse.map": "0,1,99999999999,1", "GNU.sparse.realsize": "10"}
    refuse(dest, make_tar(entry("s", data=b"ab", pax=pax)), "s", "sparse map")
    check()


def test_file_replacing_a_directory_with_escaping_symlinks_inside(arena) -> None:
    """Removing a replaced directory must not follow the symlinks it holds."""
    dest, sentinel, check = arena
    data = make_tar(entry("d", tarfile.DIRTYPE), entry("d/out", tarfile.SYMTYPE, linkname=str(sentinel)),
                    entry("d/up", tarfile.SYMTYPE, linkname="../../sentinel/dir"), entry("d", data=b"file now"))
    unpack_layer(io.BytesIO(data), TAR, dest)
    assert (dest / "d").read_bytes() == b"file now"
    check()


def test_root_cannot_be_replaced(arena) -> None:
    dest, _, check = arena
    refuse(dest, make_tar(entry("./", tarfile.SYMTYPE, linkname="/")), "./", "layer root")
    refuse(dest, make_tar(entry("a/..", data=b"x")), "a/..", "layer root")
    check()


def test_failed_unpack_leaves_outside_untouched_even_midway(arena) -> None:
    """An error in the middle stops the unpack; the caller deletes dest; nothing leaked before it."""
    dest, sentinel, check = arena
    data = make_tar(entry("ok", data=b"fine"), entry("link", tarfile.SYMTYPE, linkname=str(sentinel)),
                    entry("link/secret", data=b"pwned"), entry("after", data=b"never"))
    refuse(dest, data, "link/secret")
    assert (dest / "ok").read_bytes() == b"fine" and not (dest / "after").exists()
    check()


def test_refusal_stops_the_inflate_thread(arena) -> None:
    """An early refusal must not leave the decompressor thread reading the rest of a big blob."""
    import gzip
    import threading

    dest, sentinel, check = arena
    data = make_tar(entry("l", tarfile.SYMTYPE, linkname=str(sentinel)), entry("l/x", data=b"1"),
                    entry("big", data=bytes(32 << 20)))
    with pytest.raises(UnsafeArchiveError, match="'l/x'"):
        unpack_layer(io.BytesIO(gzip.compress(data, compresslevel=1)), None, dest)
    assert not [t for t in threading.enumerate() if t.name == "layer-inflate"]
    check()


def test_very_deep_paths_unpack_without_recursion(arena) -> None:
    dest, _, check = arena
    deep = "/".join(["d"] * 1200)
    unpack_layer(io.BytesIO(make_tar(entry(deep + "/f", data=b"deep"))), TAR, dest)
    fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(1200):
            new = os.open("d", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = new
        assert os.stat("f", dir_fd=fd).st_size == 4
    finally:
        os.close(fd)
    check()
    subprocess.run(["rm", "-rf", str(dest / "d")], check=True)  # GNU rm walks deep trees without recursion limits
