"""unpack_layer: what real rootfs layers need survives, whiteouts become overlay form, diff_ids are right.

Tars are built in the tests with tarfile (or GNU tar for sparse files). Tests marked "needs root" create
devices, set owners or trusted.* xattrs; they fail (not skip) without root.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyctr.errors import UnsafeArchiveError
from pyctr.image.tarstream import FastTarInfo, detect_compression
from pyctr.image.unpack import clean_entry_path, plan_entry, unpack_layer

MTIME = 1_700_000_000
GZ = "application/vnd.oci.image.layer.v1.tar+gzip"
ZST = "application/vnd.oci.image.layer.v1.tar+zstd"
TAR = "application/vnd.oci.image.layer.v1.tar"


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("this test needs root (mknod, chown, trusted.* xattrs)", pytrace=False)


def entry(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", *, mode: int = 0o644, uid: int = 0,
          gid: int = 0, mtime: float = MTIME, linkname: str = "", xattrs: dict[str, str] | None = None,
          pax: dict[str, str] | None = None, dev: tuple[int, int] = (0, 0)) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.uname = info.gname = "nosuchuser"
    info.mtime = mtime
    info.linkname = linkname
    info.devmajor, info.devminor = dev
    info.size = len(data) if kind in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0
    headers = dict(pax or {})
    for key, value in (xattrs or {}).items():
        headers["SCHILY.xattr." + key] = value
    info.pax_headers = headers
    return info, data


def make_tar(*entries: tuple[tarfile.TarInfo, bytes], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, encoding="utf-8", errors="surrogateescape") as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def unpack(tmp_path: Path, tar_bytes: bytes, media_type: str | None = TAR, compress: str = "gzip",
           threaded: bool = True) -> tuple[Path, object]:
    dest = tmp_path / "dest"
    dest.mkdir()
    blob = tar_bytes
    if compress == "gzip":
        blob = gzip.compress(tar_bytes)
        media_type = GZ if media_type == TAR else media_type
    elif compress == "zstd":
        import zstandard

        blob = zstandard.ZstdCompressor().compress(tar_bytes)
        media_type = ZST if media_type == TAR else media_type
    result = unpack_layer(io.BytesIO(blob), media_type, dest, threaded=threaded)
    return dest, result


def diff_id(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --- pure planning ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "parts"), [
    ("a/b", ("a", "b")), ("./a/b/", ("a", "b")), ("/etc/passwd", ("etc", "passwd")), ("a//b/./c", ("a", "b", "c")),
    ("a/../b", ("b",)), ("./", ()), ("/", ()),
])
def test_clean_entry_path_is_docker_clean(name: str, parts: tuple[str, ...]) -> None:
    assert clean_entry_path(name) == parts


@pytest.mark.parametrize("name", ["../x", "a/../../x", "/../x", "./..", "a/b/../../../x"])
def test_clean_entry_path_refuses_escapes_naming_entry(name: str) -> None:
    with pytest.raises(UnsafeArchiveError, match="points outside") as exc:
        clean_entry_path(name)
    assert repr(name) in str(exc.value)


def test_plan_whiteouts_and_metadata() -> None:
    assert plan_entry(entry("a/.wh.foo")[0]).kind == "whiteout"
    assert plan_entry(entry("a/.wh.foo")[0]).parts == ("a", "foo")
    assert plan_entry(entry("a/.wh..wh..opq")[0]).kind == "opaque"
    assert plan_entry(entry("a/.wh..wh.plnk")[0]).kind == "skip"
    plan = plan_entry(entry("f", mode=0o4755, uid=12, gid=34, pax={"mtime": "1700000000.5", "atime": "1"},
                            xattrs={"user.a": "b", "trusted.overlay.redirect": "/x"})[0])
    assert (plan.mode, plan.uid, plan.gid) == (0o4755, 12, 34)
    assert plan.mtime_ns == 1_700_000_000_500_000_000
    assert plan.atime_ns == plan.mtime_ns  # Docker: atime never before mtime
    assert plan.xattrs == {"user.a": b"b"}  # overlay's own xattrs are never taken from a layer


def test_detect_compression_by_magic_and_media_type() -> None:
    assert detect_compression(GZ, b"\x1f\x8b\x08\x00") == "gzip"
    assert detect_compression(TAR, b"\x28\xb5\x2f\xfd") == "zstd"  # magic wins, as in Docker
    assert detect_compression(None, b"abcd") == "tar"
    with pytest.raises(UnsafeArchiveError, match="foreign"):
        detect_compression("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", b"\x1f\x8b")
    with pytest.raises(UnsafeArchiveError, match="unsupported layer media type"):
        detect_compression("application/vnd.oci.image.config.v1+json", b"{}")


# --- contents and metadata -------------------------------------------------------------------------


@pytest.mark.parametrize("compress", ["gzip", "zstd", "none"])
@pytest.mark.parametrize("threaded", [True, False])
def test_files_and_diff_id_for_each_compression(tmp_path: Path, compress: str, threaded: bool) -> None:
    big = os.urandom(3 << 20)
    data = make_tar(entry("d", tarfile.DIRTYPE, mode=0o755), entry("d/small", data=b"hello\n"),
                    entry("d/big", data=big), entry("empty"))
    dest, result = unpack(tmp_path, data, compress=compress, threaded=threaded)
    assert result.diff_id == diff_id(data)
    assert result.size == len(data)
    assert (dest / "d/small").read_bytes() == b"hello\n"
    assert (dest / "d/big").read_bytes() == big
    assert (dest / "empty").read_bytes() == b""


def test_modes_special_bits_and_times(tmp_path: Path) -> None:
    data = make_tar(entry("bin", tarfile.DIRTYPE, mode=0o755, mtime=MTIME - 100),
                    entry("bin/su", data=b"x", mode=0o4755), entry("bin/wall", data=b"y", mode=0o2755),
                    entry("tmp", tarfile.DIRTYPE, mode=0o1777, mtime=MTIME - 50),
                    entry("ro", tarfile.DIRTYPE, mode=0o555), entry("ro/f", data=b"z", mode=0o444,
                                                                   pax={"mtime": "1700000000.25"}))
    dest, _ = unpack(tmp_path, data)
    assert stat.S_IMODE((dest / "bin/su").stat().st_mode) == 0o4755
    assert stat.S_IMODE((dest / "bin/wall").stat().st_mode) == 0o2755
    assert stat.S_IMODE((dest / "tmp").stat().st_mode) == 0o1777
    assert stat.S_IMODE((dest / "ro").stat().st_mode) == 0o555
    assert (dest / "ro/f").stat().st_mtime_ns == 1_700_000_000_250_000_000
    # directory times are set after their children were written
    assert (dest / "bin").stat().st_mtime == MTIME - 100
    assert (dest / "tmp").stat().st_mtime == MTIME - 50


def test_numeric_owners_never_names(tmp_path: Path) -> None:
    """needs root"""
    require_root()
    data = make_tar(entry("f", data=b"a", uid=1234, gid=5678, mode=0o6755), entry("d", tarfile.DIRTYPE, uid=7, gid=8),
                    entry("l", tarfile.SYMTYPE, linkname="/nowhere", uid=9, gid=10))
    dest, _ = unpack(tmp_path, data)
    st = (dest / "f").stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 5678, 0o6755)  # chown before chmod
    assert ((dest / "d").stat().st_uid, (dest / "d").stat().st_gid) == (7, 8)
    assert (os.lstat(dest / "l").st_uid, os.lstat(dest / "l").st_gid) == (9, 10)


def test_symlinks_kept_verbatim(tmp_path: Path) -> None:
    data = make_tar(entry("abs", tarfile.SYMTYPE, linkname="/etc/passwd"),
                    entry("rel", tarfile.SYMTYPE, linkname="../../x/y"), entry("dot", tarfile.SYMTYPE, linkname="."))
    dest, _ = unpack(tmp_path, data)
    assert os.readlink(dest / "abs") == "/etc/passwd"
    assert os.readlink(dest / "rel") == "../../x/y"
    assert os.readlink(dest / "dot") == "."
    assert os.lstat(dest / "abs").st_mtime == MTIME


def test_hardlinks_share_an_inode(tmp_path: Path) -> None:
    data = make_tar(entry("usr", tarfile.DIRTYPE), entry("usr/a", data=b"same"),
                    entry("usr/b", tarfile.LNKTYPE, linkname="usr/a"), entry("c", tarfile.LNKTYPE, linkname="/usr/a"),
                    entry("s", tarfile.SYMTYPE, linkname="usr/a"), entry("hs", tarfile.LNKTYPE, linkname="s"))
    dest, _ = unpack(tmp_path, data)
    ino = (dest / "usr/a").stat().st_ino
    assert (dest / "usr/b").stat().st_ino == ino == (dest / "c").stat().st_ino
    assert (dest / "usr/a").stat().st_nlink == 3
    assert os.path.islink(dest / "hs") and os.readlink(dest / "hs") == "usr/a"  # a link to the symlink itself


def test_devices_and_fifos(tmp_path: Path) -> None:
    """needs root"""
    require_root()
    data = make_tar(entry("dev", tarfile.DIRTYPE), entry("dev/null", tarfile.CHRTYPE, mode=0o666, dev=(1, 3)),
                    entry("dev/loop0", tarfile.BLKTYPE, mode=0o660, gid=6, dev=(7, 0)),
                    entry("run/fifo", tarfile.FIFOTYPE, mode=0o600))
    dest, _ = unpack(tmp_path, data)
    st = os.lstat(dest / "dev/null")
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3
    assert stat.S_IMODE(st.st_mode) == 0o666
    st = os.lstat(dest / "dev/loop0")
    assert stat.S_ISBLK(st.st_mode) and st.st_rdev == os.makedev(7, 0) and st.st_gid == 6
    assert stat.S_ISFIFO(os.lstat(dest / "run/fifo").st_mode)
    assert stat.S_IMODE((dest / "run").stat().st_mode) == 0o755  # implicit parent, as Docker's MkdirAll


def test_xattrs_kept_including_capabilities(tmp_path: Path) -> None:
    """needs root (trusted.* and security.capability)"""
    require_root()
    cap = b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"  # cap_net_raw+ep
    data = make_tar(entry("ping", data=b"ELF", mode=0o755, uid=0,
                          xattrs={"security.capability": cap.decode("utf-8", "surrogateescape"),
                                  "user.note": "hi", "trusted.x": "t"}),
                    entry("d", tarfile.DIRTYPE, xattrs={"user.dir": "yes", "trusted.overlay.opaque": "y"}))
    dest, _ = unpack(tmp_path, data)
    assert os.getxattr(dest / "ping", "security.capability") == cap
    assert os.getxattr(dest / "ping", "user.note") == b"hi"
    assert os.getxattr(dest / "ping", "trusted.x") == b"t"
    assert os.getxattr(dest / "d", "user.dir") == b"yes"
    assert "trusted.overlay.opaque" not in os.listxattr(dest / "d")  # only a .wh..wh..opq entry makes it opaque


@pytest.mark.parametrize("fmt", ["gnu", "posix"])
def test_sparse_files(tmp_path: Path, fmt: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "sparse", "wb") as f:
        f.seek(1 << 20)
        f.write(b"middle")
        f.truncate(4 << 20)
    tar_path = tmp_path / "sparse.tar"
    subprocess.run(["tar", "--sparse", f"--format={fmt}", "-C", str(src), "-cf", str(tar_path), "sparse"], check=True)
    data = tar_path.read_bytes()
    dest, result = unpack(tmp_path, data)
    assert result.diff_id == diff_id(data)
    assert (dest / "sparse").read_bytes() == (src / "sparse").read_bytes()
    assert (dest / "sparse").stat().st_blocks * 512 < (1 << 20)  # holes stay holes


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
def test_long_names_and_link_targets(tmp_path: Path, fmt: int) -> None:
    deep = "/".join(["directory-with-a-long-name"] * 8)
    long_file = deep + "/" + "f" * 200
    target = "/" + "t" * 300
    data = make_tar(entry(deep, tarfile.DIRTYPE), entry(long_file, data=b"long"),
                    entry("sym", tarfile.SYMTYPE, linkname=target), entry("hl", tarfile.LNKTYPE, linkname=long_file),
                    entry("caf\u00e9-\udce9", data=b"bytes"), fmt=fmt)
    dest, _ = unpack(tmp_path, data)
    assert (dest / long_file).read_bytes() == b"long"
    assert os.readlink(dest / "sym") == target
    assert (dest / "hl").stat().st_ino == (dest / long_file).stat().st_ino
    assert (os.fsencode(dest) + b"/caf\xc3\xa9-\xe9") in [os.fsencode(p) for p in dest.iterdir()]


def test_whiteouts_become_overlay_char_devices(tmp_path: Path) -> None:
    """needs root (mknod)"""
    require_root()
    data = make_tar(entry("etc", tarfile.DIRTYPE), entry("etc/.wh.motd", uid=0), entry(".wh.gone"),
                    entry("etc/.wh..wh.plnk"), entry(".wh..wh..wh.meta"))
    dest, _ = unpack(tmp_path, data)
    for path in (dest / "etc/motd", dest / "gone"):
        st = os.lstat(path)
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert sorted(p.name for p in dest.iterdir()) == ["etc", "gone"]
    assert sorted(p.name for p in (dest / "etc").iterdir()) == ["motd"]


@pytest.mark.parametrize("position", ["first", "after-dir", "last", "no-dir-entry"])
def test_opaque_dir_whatever_its_position(tmp_path: Path, position: str) -> None:
    """needs root (trusted.overlay.opaque)"""
    require_root()
    marker = entry("app/.wh..wh..opq")
    directory = entry("app", tarfile.DIRTYPE, mode=0o750)
    children = [entry("app/a", data=b"a"), entry("app/sub", tarfile.DIRTYPE), entry("app/sub/b", data=b"b")]
    entries = {
        "first": [marker, directory, *children],
        "after-dir": [directory, marker, *children],
        "last": [directory, *children, marker],
        "no-dir-entry": [marker, *children],
    }[position]
    dest, _ = unpack(tmp_path, make_tar(*entries))
    assert os.getxattr(dest / "app", "trusted.overlay.opaque") == b"y"
    assert (dest / "app/a").read_bytes() == b"a" and (dest / "app/sub/b").read_bytes() == b"b"
    assert not (dest / "app/.wh..wh..opq").exists()
    if position != "no-dir-entry":
        assert stat.S_IMODE((dest / "app").stat().st_mode) == 0o750


def test_opaque_root(tmp_path: Path) -> None:
    """needs root"""
    require_root()
    dest, _ = unpack(tmp_path, make_tar(entry(".wh..wh..opq"), entry("x", data=b"1")))
    assert os.getxattr(dest, "trusted.overlay.opaque") == b"y"


def test_root_entry_metadata_applies_to_dest(tmp_path: Path) -> None:
    dest, _ = unpack(tmp_path, make_tar(entry("./", tarfile.DIRTYPE, mode=0o751), entry("./f", data=b"1")))
    assert stat.S_IMODE(dest.stat().st_mode) == 0o751
    assert dest.stat().st_mtime == MTIME


def test_later_entries_win(tmp_path: Path) -> None:
    data = make_tar(entry("f", data=b"first"), entry("f", data=b"second"),
                    entry("l", tarfile.SYMTYPE, linkname="f"), entry("l", data=b"now a file"),
                    entry("d", tarfile.DIRTYPE), entry("d/inner", data=b"x"), entry("d", data=b"dir became file"),
                    entry("e", tarfile.DIRTYPE, mode=0o700), entry("e/k", data=b"kept"), entry("e", tarfile.DIRTYPE,
                                                                                                mode=0o755))
    dest, _ = unpack(tmp_path, data)
    assert (dest / "f").read_bytes() == b"second"
    assert not os.path.islink(dest / "l") and (dest / "l").read_bytes() == b"now a file"
    assert (dest / "d").read_bytes() == b"dir became file"  # Docker: RemoveAll, then create
    assert (dest / "e/k").read_bytes() == b"kept"  # dir over dir merges
    assert stat.S_IMODE((dest / "e").stat().st_mode) == 0o755


def test_empty_layers(tmp_path: Path) -> None:
    empty_tar = make_tar()
    dest, result = unpack(tmp_path, empty_tar)
    assert result.diff_id == diff_id(empty_tar) and list(dest.iterdir()) == []
    dest2 = tmp_path / "dest2"
    dest2.mkdir()
    assert unpack_layer(io.BytesIO(b""), TAR, dest2).diff_id == diff_id(b"")


def test_multi_member_gzip_and_bounded_inflate(tmp_path: Path) -> None:
    zeros = bytes(32 << 20)  # inflates ~1000x: must stream in bounded chunks (OUT_MAX)
    data = make_tar(entry("zeros", data=zeros), entry("tail", data=b"t"))
    blob = gzip.compress(data[:10240]) + gzip.compress(data[10240:], compresslevel=1)
    dest = tmp_path / "dest"
    dest.mkdir()
    result = unpack_layer(io.BytesIO(blob), GZ, dest)
    assert result.diff_id == diff_id(data)
    assert (dest / "zeros").stat().st_size == len(zeros) and (dest / "tail").read_bytes() == b"t"


@pytest.mark.parametrize("blob_kind", ["truncated", "corrupt", "trailing", "truncated-tar"])
def test_broken_blobs_are_refused(tmp_path: Path, blob_kind: str) -> None:
    data = make_tar(entry("f", data=os.urandom(100000)))
    blob = gzip.compress(data)
    blob = {
        "truncated": blob[: len(blob) // 2],
        "corrupt": blob[:20] + bytes(200) + blob[220:],
        "trailing": blob + b"garbage!",
        "truncated-tar": gzip.compress(data[:60000]),
    }[blob_kind]
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UnsafeArchiveError):
        unpack_layer(io.BytesIO(blob), GZ, dest)


# --- the fast header decoder agrees with tarfile's -------------------------------------------------

ATTRS = ("name", "mode", "uid", "gid", "size", "mtime", "chksum", "type", "linkname", "uname", "gname", "devmajor",
         "devminor")


@settings(max_examples=150, deadline=None)
@given(name=st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), min_size=1,
                    max_size=250),
       kind=st.sampled_from([tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE,
                             tarfile.CHRTYPE, tarfile.FIFOTYPE, tarfile.CONTTYPE]),
       mode=st.integers(0, 0o7777), uid=st.integers(0, 2**21 - 1), mtime=st.integers(0, 2**33 - 1),
       size=st.integers(0, 2**33), dev=st.integers(0, 2**21 - 1), fmt=st.sampled_from(
           [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]))
def test_fast_header_decoder_matches_tarfile(name: str, kind: bytes, mode: int, uid: int, mtime: int, size: int,
                                             dev: int, fmt: int) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid, info.mtime = kind, mode, uid, uid, mtime
    info.size = size if kind in tarfile.REGULAR_TYPES else 0
    info.linkname = name[::-1] if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
    info.devmajor = info.devminor = dev
    info.uname, info.gname = "user", "group"
    try:
        buf = info.tobuf(fmt, "utf-8", "surrogateescape")
    except ValueError:
        return  # not representable in this format
    for offset in range(0, len(buf), 512):
        block = buf[offset:offset + 512]
        slow = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        fast = FastTarInfo.frombuf(block, "utf-8", "surrogateescape")
        assert [getattr(fast, a) for a in ATTRS] == [getattr(slow, a) for a in ATTRS]
        if slow.type in (tarfile.XHDTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK):
            break  # the rest is a data block, not a header


class FailingStream(io.RawIOBase):
    """A blob stream that breaks after `limit` bytes, like a dropped download."""

    def __init__(self, data: bytes, limit: int) -> None:
        self._data = io.BytesIO(data)
        self._limit = limit

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self._data.tell() >= self._limit:
            raise ConnectionResetError("connection reset by peer")
        return self._data.read(min(n if n >= 0 else self._limit, self._limit - self._data.tell()))


@pytest.mark.parametrize("threaded", [True, False])
def test_stream_errors_propagate_unchanged(tmp_path: Path, threaded: bool) -> None:
    blob = gzip.compress(make_tar(entry("f", data=os.urandom(1 << 20))))
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(ConnectionResetError):
        unpack_layer(FailingStream(blob, len(blob) // 2), GZ, dest, threaded=threaded)
