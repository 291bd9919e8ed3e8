"""Reproducible layer tars of a directory (an overlay upper dir after RUN, a COPY staging dir).

The same tree must give the same bytes every time, so build caches and
registries see the same digests: entries in path order (a depth-first walk
with each directory's names sorted bytewise, as Go's filepath.Walk does),
numeric owners only, no atime/ctime, mtimes clamped to SOURCE_DATE_EPOCH when
given, PAX records only where ustar cannot hold a value, gzip with mtime 0, no
file name and a fixed level.

Overlay form goes back to OCI form: a 0:0 character device becomes an empty
`.wh.NAME` file and a directory with trusted.overlay.opaque=y gets a
`.wh..wh..opq` entry right after it. Overlay's own xattrs are never emitted.

The tree is read through directory descriptors with O_NOFOLLOW, so a symlink
swapped in by a still-running container is packed as a symlink, never
followed to a host file.
"""

from __future__ import annotations

import errno
import hashlib
import os
import queue
import stat
import tarfile
import threading
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO

from pyctr.errors import StoreError

BLOCK = 512
GZIP_LEVEL = 3  # fixed (a different level changes every digest); 2.3x faster than 6 for ~9% more bytes
READ_SIZE = 1 << 20
FLUSH_SIZE = 1 << 20
WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
OVERLAY_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")
# Upper-dir features a plain layer tar cannot express.
UNPACKABLE_XATTRS = ("trusted.overlay.redirect", "trusted.overlay.metacopy")
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


@dataclass(frozen=True)
class PackResult:
    diff_id: str  # sha256 of the tar
    size: int  # tar bytes
    digest: str  # sha256 of what was written to `out` (== diff_id when uncompressed)
    compressed_size: int


@dataclass
class TarEntry:
    """One tar member to write, decided from a stat result (pure data)."""

    name: str
    type: bytes
    mode: int = 0
    uid: int = 0
    gid: int = 0
    mtime: int = 0
    size: int = 0
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    xattrs: dict[str, bytes] = field(default_factory=dict)


def clamp_mtime(mtime_ns: int, source_date_epoch: int | None) -> int:
    """Whole seconds, never later than SOURCE_DATE_EPOCH when it is set."""
    seconds = mtime_ns // 1_000_000_000
    return seconds if source_date_epoch is None else min(seconds, source_date_epoch)


def entry_from_stat(name: str, st: os.stat_result, xattrs: dict[str, bytes], source_date_epoch: int | None,
                    linkname: str = "") -> TarEntry | None:
    """The tar entry for a file of the tree (None for what a layer cannot hold: sockets).

    `name` is the path relative to the tree root; a 0:0 character device
    (overlay whiteout) becomes `.wh.<name>`.
    """
    mode = st.st_mode
    common = {"mode": stat.S_IMODE(mode), "uid": st.st_uid, "gid": st.st_gid,
              "mtime": clamp_mtime(st.st_mtime_ns, source_date_epoch)}
    kept = {k: v for k, v in xattrs.items() if not k.startswith(OVERLAY_XATTR_PREFIXES)}
    if stat.S_ISCHR(mode) and st.st_rdev == 0:
        head, _, base = name.rpartition("/")
        wh_name = f"{head}/{WHITEOUT_PREFIX}{base}" if head else WHITEOUT_PREFIX + base
        return TarEntry(wh_name, tarfile.REGTYPE, **{**common, "mode": 0o600})  # Docker's overlay2 form
    if stat.S_ISDIR(mode):
        return TarEntry(name, tarfile.DIRTYPE, xattrs=kept, **common)
    if stat.S_ISREG(mode):
        if linkname:
            return TarEntry(name, tarfile.LNKTYPE, linkname=linkname, xattrs=kept, **common)
        return TarEntry(name, tarfile.REGTYPE, size=st.st_size, xattrs=kept, **common)
    if stat.S_ISLNK(mode):
        return TarEntry(name, tarfile.SYMTYPE, linkname=linkname, xattrs=kept, **common)
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        kind = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
        return TarEntry(name, kind, devmajor=os.major(st.st_rdev), devminor=os.minor(st.st_rdev), xattrs=kept,
                        **common)
    if stat.S_ISFIFO(mode):
        return TarEntry(name, tarfile.FIFOTYPE, xattrs=kept, **common)
    return None  # sockets (and anything unknown) are not part of an image


def opaque_marker(dir_entry: TarEntry) -> TarEntry:
    """The `.wh..wh..opq` file of an opaque directory (mode and owner of the dir, as Docker)."""
    prefix = dir_entry.name + "/" if dir_entry.name else ""
    return TarEntry(prefix + OPAQUE_MARKER, tarfile.REGTYPE, mode=dir_entry.mode & 0o777, uid=dir_entry.uid,
                    gid=dir_entry.gid, mtime=dir_entry.mtime)


def tar_header(entry: TarEntry) -> bytes:
    """ustar header, preceded by a PAX header only when a value needs one (long or non-ASCII names, xattrs)."""
    info = tarfile.TarInfo(entry.name)
    info.type = entry.type
    info.mode = entry.mode
    info.uid, info.gid = entry.uid, entry.gid
    info.uname = info.gname = ""
    info.mtime = entry.mtime
    info.size = entry.size if entry.type == tarfile.REGTYPE else 0
    info.linkname = entry.linkname
    info.devmajor, info.devminor = entry.devmajor, entry.devminor
    info.pax_headers = {"SCHILY.xattr." + key: entry.xattrs[key].decode("utf-8", "surrogateescape")
                        for key in sorted(entry.xattrs)}
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


# --- output: hash the tar, optionally gzip it, hash what is written -----------------------------------


class _LayerWriter:
    """Buffers tar bytes and hashes them; a thread gzips them (zlib releases the GIL) and writes `out`.

    Compression is the slow part of packing, so it overlaps reading the tree.
    """

    def __init__(self, out: BinaryIO, compress: bool) -> None:
        self._out = out
        self._tar_hash = hashlib.sha256()
        self._out_hash = hashlib.sha256()
        self.size = 0
        self.out_size = 0
        # wbits 31: a gzip header with mtime 0, no name, OS unix: the same bytes on every run.
        self._gzip = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31, 9) if compress else None
        self._buf = bytearray()
        self._queue: queue.Queue[bytes | None] = queue.Queue(4)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, name="layer-gzip", daemon=True)
        self._thread.start()

    def write(self, data: bytes | memoryview) -> None:
        self._buf += data
        if len(self._buf) >= FLUSH_SIZE:
            self._flush()

    def _flush(self) -> None:
        if not self._buf:
            return
        data = bytes(self._buf)
        self._buf.clear()
        self._tar_hash.update(data)
        self.size += len(data)
        self._put(data)

    def _put(self, item: bytes | None) -> None:
        while self._thread.is_alive():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        self._raise_thread_error()

    def _raise_thread_error(self) -> None:
        if isinstance(self._error, OSError):
            raise StoreError(f"cannot write the layer: {self._error}") from None
        if self._error is not None:
            raise self._error

    def _emit(self, data: bytes) -> None:
        if data:
            self._out_hash.update(data)
            self.out_size += len(data)
            self._out.write(data)

    def _drain(self) -> None:
        try:
            while True:
                data = self._queue.get()
                if data is None:
                    if self._gzip is not None:
                        self._emit(self._gzip.flush())
                    return
                self._emit(self._gzip.compress(data) if self._gzip is not None else data)
        except BaseException as exc:  # reported by the packing thread
            self._error = exc

    def close(self) -> None:
        """Stop the thread (after an error nothing more is written)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def finish(self) -> PackResult:
        self._flush()
        self._put(None)
        self._thread.join()
        self._raise_thread_error()
        diff_id = "sha256:" + self._tar_hash.hexdigest()
        return PackResult(diff_id=diff_id, size=self.size, digest="sha256:" + self._out_hash.hexdigest(),
                          compressed_size=self.out_size)


# --- walking the tree -------------------------------------------------------------------------------


def _xattrs(fd_or_path: int | str) -> dict[str, bytes]:
    follow = isinstance(fd_or_path, int)
    try:
        names = os.listxattr(fd_or_path, follow_symlinks=follow)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.ENODATA):
            return {}
        raise
    found = {}
    for key in names:
        try:
            found[key] = os.getxattr(fd_or_path, key, follow_symlinks=follow)
        except OSError as exc:
            if exc.errno != errno.ENODATA:  # removed meanwhile
                raise
    return found


class _Packer:
    def __init__(self, writer: _LayerWriter, source_date_epoch: int | None,
                 exclude: frozenset[str] = frozenset()) -> None:
        self.writer = writer
        self.epoch = source_date_epoch
        self.exclude = exclude
        self.links: dict[tuple[int, int], str] = {}

    def emit(self, entry: TarEntry) -> None:
        self.writer.write(tar_header(entry))

    def pack_dir(self, fd: int, rel: str) -> None:
        """Entries of directory `fd` (at `rel`), children sorted by name bytes, depth first."""
        for name in sorted(os.listdir(fd), key=os.fsencode):
            path = f"{rel}/{name}" if rel else name
            if path in self.exclude:
                continue
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                self._pack_subdir(fd, name, path, st)
            elif stat.S_ISREG(st.st_mode):
                self._pack_file(fd, name, path, st)
            else:
                self._pack_other(fd, name, path, st)

    def pack_root(self, fd: int) -> None:
        """The root itself gets no entry (a layer is a change set), only its opaque marker if any."""
        xattrs = _xattrs(fd)
        _check_packable(xattrs, ".")
        if xattrs.get(OPAQUE_XATTR) == b"y":
            self.emit(opaque_marker(entry_from_stat("", os.fstat(fd), {}, self.epoch)))
        self.pack_dir(fd, "")

    def _pack_subdir(self, pfd: int, name: str, path: str, st: os.stat_result) -> None:
        fd = os.open(name, DIR_FLAGS, dir_fd=pfd)
        try:
            xattrs = _xattrs(fd)
            _check_packable(xattrs, path)
            entry = entry_from_stat(path, os.fstat(fd), xattrs, self.epoch)
            assert entry is not None
            self.emit(entry)
            if xattrs.get(OPAQUE_XATTR) == b"y":
                self.emit(opaque_marker(entry))
            self.pack_dir(fd, path)
        finally:
            os.close(fd)

    def _pack_file(self, pfd: int, name: str, path: str, st: os.stat_result) -> None:
        fd = os.open(name, FILE_FLAGS, dir_fd=pfd)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):  # swapped meanwhile: pack what is there now
                os.close(fd)
                fd = -1
                self._pack_other(pfd, name, path, os.stat(name, dir_fd=pfd, follow_symlinks=False))
                return
            key = (st.st_dev, st.st_ino)
            first = self.links.get(key) if st.st_nlink > 1 else None
            xattrs = _xattrs(fd)
            _check_packable(xattrs, path)
            entry = entry_from_stat(path, st, xattrs, self.epoch, linkname=first or "")
            assert entry is not None
            self.emit(entry)
            if first is None:
                if st.st_nlink > 1:
                    self.links[key] = path
                self._copy_data(fd, st.st_size, path)
        finally:
            if fd >= 0:
                os.close(fd)

    def _copy_data(self, fd: int, size: int, path: str) -> None:
        left = size
        while left > 0:
            data = os.read(fd, min(READ_SIZE, left))
            if not data:
                raise StoreError(f"cannot pack {path!r}: the file shrank while it was being packed")
            self.writer.write(data)
            left -= len(data)
        pad = -size % BLOCK
        if pad:
            self.writer.write(bytes(pad))

    def _pack_other(self, pfd: int, name: str, path: str, st: os.stat_result) -> None:
        proc_path = f"/proc/self/fd/{pfd}/{name}"
        linkname = os.readlink(name, dir_fd=pfd) if stat.S_ISLNK(st.st_mode) else ""
        xattrs = {} if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0 else _xattrs(proc_path)
        entry = entry_from_stat(path, st, xattrs, self.epoch, linkname=linkname)
        if entry is not None:
            self.emit(entry)


def _check_packable(xattrs: dict[str, bytes], path: str) -> None:
    for key in UNPACKABLE_XATTRS:
        if key in xattrs:
            raise StoreError(f"cannot pack {path!r}: overlay {key.rsplit('.', 1)[1]} is set "
                             "(mount overlay with redirect_dir=off,metacopy=off)")


def pack_layer(src_dir: str | os.PathLike[str], out: BinaryIO | str | os.PathLike[str], *,
               source_date_epoch: int | None = None, compress: bool = True,
               exclude: frozenset[str] = frozenset()) -> PackResult:
    """Write a normalised layer tar of `src_dir` to `out` (a binary file object or a path).

    gzip-compressed unless `compress` is False (docker save's layer.tar). `exclude`: paths relative to
    `src_dir` ("etc/hosts") left out with everything below them (a container's mount-point stubs at commit).
    """
    if isinstance(out, (str, os.PathLike)):
        with open(out, "wb") as f:
            return pack_layer(src_dir, f, source_date_epoch=source_date_epoch, compress=compress, exclude=exclude)
    root_fd = os.open(src_dir, DIR_FLAGS)
    try:
        writer = _LayerWriter(out, compress)
        try:
            _Packer(writer, source_date_epoch, exclude).pack_root(root_fd)
            writer.write(bytes(2 * BLOCK))  # end of archive, as Go's archive/tar writes it (no record padding)
            return writer.finish()
        except OSError as exc:
            raise StoreError(f"cannot pack {os.fspath(src_dir)!r}: {exc}") from None
        except RecursionError:
            raise StoreError(f"cannot pack {os.fspath(src_dir)!r}: directories nested too deep") from None
        finally:
            writer.close()
    finally:
        os.close(root_fd)


def pack_layer_uncompressed(src_dir: str | os.PathLike[str], out: BinaryIO | str | os.PathLike[str], *,
                            source_date_epoch: int | None = None) -> PackResult:
    """pack_layer without gzip: digest == diff_id."""
    return pack_layer(src_dir, out, source_date_epoch=source_date_epoch, compress=False)

