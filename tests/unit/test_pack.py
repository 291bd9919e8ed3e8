"""pack_layer: normalised, reproducible layer tars; overlay form back to OCI form; round trips with unpack_layer.

Tests marked "needs root" make whiteout devices, set owners or trusted.* xattrs; they fail (not skip) without root.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import socket
import stat
import subprocess
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from pyctr.errors import StoreError
from pyctr.image.pack import clamp_mtime, entry_from_stat, pack_layer, pack_layer_uncompressed, tar_header
from pyctr.image.unpack import unpack_layer

OLD = 1_600_000_000
NEW = 1_800_000_000
EPOCH = 1_700_000_000


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("this test needs root (mknod, chown, trusted.* xattrs)", pytrace=False)


def build_tree(root: Path, *, with_root_only: bool = True) -> Path:
    """A tree with every kind of thing a layer holds; root-only parts when asked."""
    root.mkdir()
    (root / "etc").mkdir(mode=0o755)
    (root / "etc/hostname").write_text("box\n")
    (root / "bin").mkdir()
    (root / "bin/tool").write_bytes(b"\x7fELF" + os.urandom(300000))
    os.chmod(root / "bin/tool", 0o4755)
    os.link(root / "bin/tool", root / "bin/tool-alias")
    os.symlink("/bin/tool", root / "bin/abs-link")
    os.symlink("tool", root / "bin/rel-link")
    os.mkfifo(root / "fifo", 0o600)
    (root / "z-last").write_bytes(b"")
    (root / ("\u00e9t\u00e9-" + "x" * 120)).write_bytes(b"long non-ascii name")
    os.setxattr(root / "etc/hostname", "user.origin", b"test")
    if with_root_only:
        os.mknod(root / "etc/.gone-file", stat.S_IFCHR, os.makedev(0, 0))  # overlay whiteout
        os.rename(root / "etc/.gone-file", root / "etc/motd")
        (root / "opaque").mkdir()
        (root / "opaque/kept").write_text("kept")
        os.setxattr(root / "opaque", "trusted.overlay.opaque", b"y")
        os.chown(root / "etc/hostname", 1000, 2000)
        os.mknod(root / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    for path in sorted(root.rglob("*"), reverse=True):
        os.utime(path, (OLD, OLD), follow_symlinks=False)
    os.utime(root / "bin/tool", (NEW, NEW))
    return root


def tar_members(blob: bytes) -> list[tarfile.TarInfo]:
    data = gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        return tar.getmembers()


def pack_bytes(src: Path, **kwargs) -> tuple[bytes, object]:
    out = io.BytesIO()
    result = pack_layer(src, out, **kwargs)
    return out.getvalue(), result


def fake_stat(mode: int, *, uid: int = 0, gid: int = 0, size: int = 0, rdev: int = 0) -> SimpleNamespace:
    return SimpleNamespace(st_mode=mode, st_uid=uid, st_gid=gid, st_size=size, st_rdev=rdev, st_mtime_ns=OLD * 10**9)


# --- pure parts -------------------------------------------------------------------------------------


def test_clamp_mtime() -> None:
    assert clamp_mtime(NEW * 10**9 + 999, None) == NEW
    assert clamp_mtime(NEW * 10**9, EPOCH) == EPOCH
    assert clamp_mtime(OLD * 10**9, EPOCH) == OLD


def test_header_has_no_pax_unless_needed() -> None:
    st = fake_stat(stat.S_IFREG | 0o644, size=5)
    plain = tar_header(entry_from_stat("etc/short", st, {}, None))
    assert len(plain) == 512 and plain[257:263] == b"ustar\x00"
    with_xattr = tar_header(entry_from_stat("etc/short", st, {"user.a": b"1", "trusted.overlay.x": b"y"}, None))
    assert len(with_xattr) == 3 * 512 and b"SCHILY.xattr.user.a=1" in with_xattr
    assert b"trusted.overlay" not in with_xattr
    assert b"atime" not in with_xattr and b"ctime" not in with_xattr


def test_whiteout_device_becomes_wh_file() -> None:
    st = fake_stat(stat.S_IFCHR, uid=5, gid=6)
    entry = entry_from_stat("etc/motd", st, {}, None)
    assert (entry.name, entry.type, entry.mode, entry.uid, entry.gid) == ("etc/.wh.motd", tarfile.REGTYPE, 0o600, 5, 6)
    sock = fake_stat(stat.S_IFSOCK | 0o755)
    assert entry_from_stat("run/sock", sock, {}, None) is None


# --- whole trees ------------------------------------------------------------------------------------


def test_normalised_tar(tmp_path: Path) -> None:
    """needs root"""
    require_root()
    src = build_tree(tmp_path / "src")
    blob, result = pack_bytes(src)
    assert blob[:4] == b"\x1f\x8b\x08\x00" and blob[4:8] == bytes(4)  # no FNAME, mtime 0
    raw = gzip.decompress(blob)
    assert result.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest() and result.size == len(raw)
    assert result.digest == "sha256:" + hashlib.sha256(blob).hexdigest() and result.compressed_size == len(blob)
    members = tar_members(blob)
    names = [m.name for m in members]
    assert names == [
        "bin", "bin/abs-link", "bin/rel-link", "bin/tool", "bin/tool-alias", "etc", "etc/hostname", "etc/.wh.motd",
        "fifo", "null", "opaque", "opaque/.wh..wh..opq", "opaque/kept", "z-last", "\u00e9t\u00e9-" + "x" * 120,
    ]
    by_name = {m.name: m for m in members}
    assert all(m.uname == "" and m.gname == "" for m in members)
    assert by_name["bin/tool"].mode == 0o4755 and by_name["bin/tool"].mtime == NEW
    assert by_name["bin/tool-alias"].islnk() and by_name["bin/tool-alias"].linkname == "bin/tool"
    assert by_name["bin/abs-link"].linkname == "/bin/tool"
    assert by_name["etc/hostname"].uid == 1000 and by_name["etc/hostname"].gid == 2000
    assert by_name["etc/hostname"].pax_headers == {"SCHILY.xattr.user.origin": "test"}
    assert by_name["null"].ischr() and (by_name["null"].devmajor, by_name["null"].devminor) == (1, 3)
    assert by_name["fifo"].isfifo()
    assert "SCHILY.xattr.trusted.overlay.opaque" not in by_name["opaque"].pax_headers
    for m in members:
        assert "atime" not in m.pax_headers and "ctime" not in m.pax_headers
    assert raw.endswith(bytes(1024))


def test_names_sorted_bytewise_depth_first(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for name in ("b", "a-b", "a/z", "a/b/c", "B", "a.txt"):
        path = src / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_text(name)
    names = [m.name for m in tar_members(pack_bytes(src)[0])]
    assert names == ["B", "a", "a/b", "a/b/c", "a/z", "a-b", "a.txt", "b"]


def test_sockets_skipped(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "keep").write_text("1")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(src / "sock"))
        assert [m.name for m in tar_members(pack_bytes(src)[0])] == ["keep"]


def test_reproducible_bytes(tmp_path: Path) -> None:
    src = build_tree(tmp_path / "src", with_root_only=os.geteuid() == 0)
    first, r1 = pack_bytes(src, source_date_epoch=EPOCH)
    os.utime(src / "bin/tool", None)  # newer than the epoch before and after: clamped the same
    second, r2 = pack_bytes(src, source_date_epoch=EPOCH)
    assert first == second and r1 == r2
    plain = io.BytesIO()
    r3 = pack_layer_uncompressed(src, plain, source_date_epoch=EPOCH)
    assert r3.digest == r3.diff_id == r1.diff_id and r3.compressed_size == r3.size
    assert gzip.decompress(first) == plain.getvalue()


def test_source_date_epoch_clamps_only_newer(tmp_path: Path) -> None:
    src = build_tree(tmp_path / "src", with_root_only=False)
    by_name = {m.name: m for m in tar_members(pack_bytes(src, source_date_epoch=EPOCH)[0])}
    assert by_name["bin/tool"].mtime == EPOCH  # was NEW
    assert by_name["etc/hostname"].mtime == OLD
    unclamped = {m.name: m for m in tar_members(pack_bytes(src)[0])}
    assert unclamped["bin/tool"].mtime == NEW


def test_pack_to_a_path(tmp_path: Path) -> None:
    src = build_tree(tmp_path / "src", with_root_only=False)
    result = pack_layer(src, tmp_path / "layer.tar.gz")
    assert result.digest == "sha256:" + hashlib.sha256((tmp_path / "layer.tar.gz").read_bytes()).hexdigest()


def test_redirected_upper_dir_refused(tmp_path: Path) -> None:
    """needs root (trusted.overlay.redirect)"""
    require_root()
    src = tmp_path / "src"
    (src / "moved").mkdir(parents=True)
    os.setxattr(src / "moved", "trusted.overlay.redirect", b"/orig")
    with pytest.raises(StoreError, match="'moved'.*redirect"):
        pack_bytes(src)


def test_round_trip_keeps_the_diff_id(tmp_path: Path) -> None:
    """pack(tree) -> T; unpack(T) -> D; pack(D) -> T' == T, whiteouts and opaque dirs included. needs root"""
    require_root()
    src = build_tree(tmp_path / "src")
    original, packed = pack_bytes(src, source_date_epoch=EPOCH)
    dest = tmp_path / "dest"
    dest.mkdir()
    unpacked = unpack_layer(io.BytesIO(original), "application/vnd.oci.image.layer.v1.tar+gzip", dest)
    assert unpacked.diff_id == packed.diff_id
    assert stat.S_ISCHR(os.lstat(dest / "etc/motd").st_mode)
    assert os.getxattr(dest / "opaque", "trusted.overlay.opaque") == b"y"
    again, repacked = pack_bytes(dest, source_date_epoch=EPOCH)
    assert repacked.diff_id == packed.diff_id
    assert again == original


def test_round_trip_of_a_hand_made_normalised_tar(tmp_path: Path) -> None:
    """A tar written by tarfile in the normalised form comes back byte for byte."""

    def member(name: str, kind: bytes, data: bytes = b"", mode: int = 0o644, link: str = "") -> tuple:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime, info.linkname = kind, mode, OLD, link
        info.uname = info.gname = ""
        info.size = len(data)
        return info, data

    members = [member("a", tarfile.DIRTYPE, mode=0o755), member("a/f", tarfile.REGTYPE, b"hello", 0o600),
               member("a/g", tarfile.LNKTYPE, mode=0o600, link="a/f"),
               member("a/s", tarfile.SYMTYPE, link="/x", mode=0o777),
               member("b", tarfile.REGTYPE, b"x" * 1000, 0o755)]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
        end_of_members = tar.offset
    original = buf.getvalue()[:end_of_members] + bytes(1024)  # without tarfile's record padding
    dest = tmp_path / "dest"
    dest.mkdir()
    unpack_layer(io.BytesIO(original), None, dest)
    repacked = io.BytesIO()
    pack_layer_uncompressed(dest, repacked)
    assert repacked.getvalue() == original


def test_absurdly_deep_tree_is_a_clean_error(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    fd = os.open(src, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(700):
            os.mkdir("d", dir_fd=fd)
            new = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = new
    finally:
        os.close(fd)
    try:
        with pytest.raises(StoreError, match="nested too deep"):
            pack_bytes(src)
    finally:
        subprocess.run(["rm", "-rf", str(src)], check=True)  # GNU rm walks deep trees without recursion limits
