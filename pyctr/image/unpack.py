"""Safe, fast unpacking of one image layer into its own overlay-ready directory.

Why not tarfile.extractall: its filters have been bypassed repeatedly
(CVE-2025-4517) and the safe ones refuse what real root filesystems contain
(absolute symlinks, devices, setuid files). tarfile only parses headers here;
every filesystem write is ours and goes through directory file descriptors:

- every path is resolved component by component from a descriptor of `dest`
  with O_NOFOLLOW|O_DIRECTORY, so no symlink is ever followed while resolving
  (`link -> /etc` then `link/passwd` is refused; runc CVE-2024-45310 class);
- files are created with O_CREAT|O_EXCL|O_NOFOLLOW relative to their parent's
  descriptor: a name that exists (e.g. a symlink planted by an earlier entry)
  is removed first, never written through;
- hardlink targets are resolved the same way and linked without following, so
  a crafted link cannot reach outside `dest` (Docker CVE-2026-17106 class).

The layer dir starts empty and each layer is unpacked alone, so OCI whiteouts
become their overlayfs form here: `.wh.NAME` -> a 0:0 character device NAME,
`.wh..wh..opq` -> xattr trusted.overlay.opaque=y on its directory.

Deciding is separate from doing: `plan_entry` turns a TarInfo into an
`EntryPlan` (pure, unit-tested without root); `_Extractor` applies plans.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
from collections import OrderedDict
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import BinaryIO, cast

from pyctr.errors import StoreError, UnsafeArchiveError
from pyctr.image.tarstream import GZIP_MAGIC, ZSTD_MAGIC, FastTarInfo, LayerSource, SourceError

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
XATTR_PAX_PREFIX = "SCHILY.xattr."
# Overlay's own xattrs steer lookups across layers (redirects, metacopy,
# origin): a layer must never smuggle them in. We set only `opaque` ourselves.
RESERVED_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
PARENT_CACHE_SIZE = 64
STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS)


@dataclass(frozen=True)
class UnpackResult:
    diff_id: str  # "sha256:<hex>" of the uncompressed tar
    size: int  # uncompressed bytes


@dataclass
class EntryPlan:
    """What to do for one tar entry, decided without touching the filesystem."""

    name: str  # the entry's name as in the tar, for messages
    parts: tuple[str, ...]  # cleaned path below dest; () is dest itself
    kind: str  # dir, file, symlink, hardlink, chr, blk, fifo, whiteout, opaque, skip
    mode: int = 0
    uid: int = 0
    gid: int = 0
    mtime_ns: int = 0
    atime_ns: int = 0
    size: int = 0  # apparent size of a file
    stored: int = 0  # data bytes that follow the header in the tar
    sparse: list[tuple[int, int]] | None = None
    linkname: str = ""  # symlink target, verbatim
    link_parts: tuple[str, ...] = ()  # hardlink target, cleaned
    devmajor: int = 0
    devminor: int = 0
    xattrs: dict[str, bytes] = field(default_factory=dict)


def clean_entry_path(path: str, entry: str | None = None) -> tuple[str, ...]:
    """Lexically clean a tar path like Docker does (filepath.Clean, leading / stripped).

    `..` may cancel a component inside the layer but never climb above its
    root: that is refused, naming the entry (`entry` when `path` is its hardlink target).
    """
    what = f"layer entry {path!r}" if entry is None else f"layer entry {entry!r}: hardlink target {path!r}"
    if "\x00" in path:
        raise UnsafeArchiveError(f"{what} has a NUL byte in its name")
    parts: list[str] = []
    for comp in path.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if not parts:
                raise UnsafeArchiveError(f"{what} points outside the layer")
            parts.pop()
        else:
            parts.append(comp)
    return tuple(parts)


def _pax_time_ns(value: str | None) -> int | None:
    """PAX times are decimal seconds with a fraction ("1700000000.123456789")."""
    if value is None:
        return None
    try:
        return int(Decimal(value) * 1_000_000_000)
    except (InvalidOperation, ValueError):
        return None


def _xattrs_of(info: tarfile.TarInfo) -> dict[str, bytes]:
    """SCHILY.xattr.* PAX records as raw bytes, minus overlay's reserved ones."""
    found: dict[str, bytes] = {}
    for key, value in info.pax_headers.items():
        if not key.startswith(XATTR_PAX_PREFIX):
            continue
        xname = key[len(XATTR_PAX_PREFIX):]
        if not xname or xname.startswith(RESERVED_XATTR_PREFIXES):
            continue
        found[xname] = value.encode("utf-8", "surrogateescape")
    return found


def _stored_size(info: tarfile.TarInfo, name: str) -> tuple[int, list[tuple[int, int]] | None]:
    """Bytes of data following the header, and the validated sparse map if any."""
    if info.sparse is None:
        return info.size, None
    sparse = [(int(off), int(num)) for off, num in info.sparse]
    for off, num in sparse:
        if off < 0 or num < 0 or off + num > info.size:
            raise UnsafeArchiveError(f"layer entry {name!r} has a sparse map beyond its size")
    return sum(num for _, num in sparse), sparse


_KIND_BY_TYPE = {
    tarfile.REGTYPE: "file",
    tarfile.AREGTYPE: "file",
    tarfile.CONTTYPE: "file",
    tarfile.GNUTYPE_SPARSE: "file",
    tarfile.DIRTYPE: "dir",
    tarfile.SYMTYPE: "symlink",
    tarfile.LNKTYPE: "hardlink",
    tarfile.CHRTYPE: "chr",
    tarfile.BLKTYPE: "blk",
    tarfile.FIFOTYPE: "fifo",
}


def _whiteout_kind(base: str, name: str) -> str | None:
    """Classify an OCI whiteout basename, or None for an ordinary name."""
    if not base.startswith(WHITEOUT_PREFIX):
        return None
    if base == OPAQUE_MARKER:
        return "opaque"
    if base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
        return "skip"  # other .wh..wh.* entries are metadata (aufs), never files
    if base[len(WHITEOUT_PREFIX):] in ("", ".", ".."):
        raise UnsafeArchiveError(f"layer entry {name!r} is a whiteout of an invalid name")
    return "whiteout"


def plan_entry(info: tarfile.TarInfo, *, whiteouts: bool = True) -> EntryPlan:
    """Decide how to apply one parsed tar header (pure).

    `whiteouts=False` is for archives that are not layers (ADD, a build
    context): there `.wh.NAME` is an ordinary name, as in Docker's untar.
    """
    name = info.name
    parts = clean_entry_path(name)
    kind = _KIND_BY_TYPE.get(info.type)
    if kind is None:
        raise UnsafeArchiveError(f"layer entry {name!r} has unsupported tar type {info.type!r}")
    stored, sparse = _stored_size(info, name) if kind == "file" else (0, None)
    mtime_ns = _pax_time_ns(info.pax_headers.get("mtime"))
    if mtime_ns is None:
        mtime_ns = int(info.mtime) * 1_000_000_000
    atime_ns = _pax_time_ns(info.pax_headers.get("atime"))
    # Docker: the access time is never before the modification time.
    atime_ns = mtime_ns if atime_ns is None or atime_ns < mtime_ns else atime_ns
    plan = EntryPlan(
        name=name, parts=parts, kind=kind, mode=info.mode & 0o7777, uid=info.uid, gid=info.gid,
        mtime_ns=mtime_ns, atime_ns=atime_ns, size=info.size if kind == "file" else 0, stored=stored,
        sparse=sparse, devmajor=info.devmajor, devminor=info.devminor, xattrs=_xattrs_of(info))
    if parts and whiteouts:
        wh = _whiteout_kind(parts[-1], name)
        if wh == "whiteout":
            plan.parts = parts[:-1] + (parts[-1][len(WHITEOUT_PREFIX):],)
        if wh is not None:
            plan.kind = wh
    if not parts and plan.kind not in ("dir", "opaque"):
        raise UnsafeArchiveError(f"layer entry {name!r} would replace the layer root")
    if plan.kind == "symlink":
        plan.linkname = info.linkname
        if "\x00" in info.linkname or not info.linkname:
            raise UnsafeArchiveError(f"layer entry {name!r} has an invalid symlink target")
    elif plan.kind == "hardlink":
        plan.link_parts = clean_entry_path(info.linkname, name)
        if not plan.link_parts:
            raise UnsafeArchiveError(f"layer entry {name!r} is a hardlink to the layer root")
        if plan.link_parts == parts:
            raise UnsafeArchiveError(f"layer entry {name!r} is a hardlink to itself")
    return plan


SPECIAL_MODE_BITS = 0o7000  # setuid, setgid, sticky


def process_umask() -> int | None:
    """This process's umask, read without changing it (os.umask would race other threads' creates); None if
    the kernel does not say (before Linux 4.7)."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        return None
    return None


def creation_mode(mode: int, umask: int | None) -> int | None:
    """The mode to create a regular file with so that it needs no fchmod afterwards, or None when it does.

    Why: a layer has thousands of files and every syscall saved per file counts. open(2) applies the umask,
    and setuid/setgid bits must be set only after the owner is (chown clears them), so those take fchmod.
    """
    if umask is None or mode & SPECIAL_MODE_BITS or mode & umask:
        return None
    return mode


def needs_owner_change(uid: int, gid: int, creator: tuple[int, int] | None) -> bool:
    """Whether a node this process just made must be chowned to (uid, gid).

    `creator` is the owner a new node gets (the process's euid/egid) when that is certain: in a fresh layer no
    directory is setgid while it fills (directory modes are applied last), so nothing inherits a group. None
    when unknown (an archive merged into an existing tree): then always chown.
    """
    return creator is None or (uid, gid) != creator


class _Extractor:
    """Applies EntryPlans below one directory descriptor, never leaving it."""

    def __init__(self, root_fd: int, source: LayerSource, *, fresh: bool = False) -> None:
        self.root_fd = root_fd
        self.source = source
        self.is_root = os.geteuid() == 0
        # Only in a fresh layer is the owner of a new node known without asking (see needs_owner_change).
        self.creator = (os.geteuid(), os.getegid()) if fresh else None
        self.umask = process_umask()
        self._parents: OrderedDict[tuple[str, ...], int] = OrderedDict()
        self._dir_meta: dict[tuple[str, ...], tuple[int, int, int]] = {}

    # -- resolving ---------------------------------------------------------
    def close(self) -> None:
        for fd in self._parents.values():
            os.close(fd)
        self._parents.clear()

    def _open_component(self, fd: int, comp: str, walked: tuple[str, ...], name: str, create: bool) -> int:
        """Open directory `comp` under `fd` without following a symlink (creating it if asked)."""
        try:
            return os.open(comp, DIR_FLAGS, dir_fd=fd)
        except FileNotFoundError:
            if not create:
                raise UnsafeArchiveError(
                    f"layer entry {name!r}: {'/'.join(walked + (comp,))!r} is not in the layer") from None
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            what = "a symlink" if stat.S_ISLNK(os.stat(comp, dir_fd=fd, follow_symlinks=False).st_mode) \
                else "not a directory"
            raise UnsafeArchiveError(
                f"layer entry {name!r}: parent {'/'.join(walked + (comp,))!r} is {what}") from None
        # Docker creates missing parents 0755 (MkdirAll): same here.
        try:
            os.mkdir(comp, 0o755, dir_fd=fd)
        except FileExistsError:
            pass
        new_fd = os.open(comp, DIR_FLAGS, dir_fd=fd)
        os.fchmod(new_fd, 0o755)
        return new_fd

    def dir_fd(self, parts: tuple[str, ...], name: str, create: bool = True) -> int:
        """A cached descriptor of directory `parts` (never through a symlink).

        The descriptor belongs to the cache: callers must not close it.
        """
        if not parts:
            return self.root_fd
        cached = self._parents.get(parts)
        if cached is not None:
            self._parents.move_to_end(parts)
            return cached
        depth = len(parts) - 1
        while depth > 0 and parts[:depth] not in self._parents:
            depth -= 1
        fd = self.root_fd if depth == 0 else self._parents[parts[:depth]]
        owned = False
        for i in range(depth, len(parts)):
            new_fd = self._open_component(fd, parts[i], parts[:i], name, create)
            if owned:
                os.close(fd)
            fd, owned = new_fd, True
        self._parents[parts] = fd
        if len(self._parents) > PARENT_CACHE_SIZE:
            _, old = self._parents.popitem(last=False)
            os.close(old)
        return fd

    def _forget(self, parts: tuple[str, ...]) -> None:
        """Drop cached descriptors at or below `parts` (it was removed)."""
        n = len(parts)
        for key in [k for k in self._parents if k[:n] == parts]:
            os.close(self._parents.pop(key))

    def _remove(self, pfd: int, parts: tuple[str, ...]) -> None:
        """Remove an earlier entry of this layer that a later one replaces (tar: later wins)."""
        name = parts[-1]
        if stat.S_ISDIR(os.stat(name, dir_fd=pfd, follow_symlinks=False).st_mode):
            self._forget(parts)
            self._dir_meta = {k: v for k, v in self._dir_meta.items() if k[:len(parts)] != parts}
            shutil.rmtree(name, dir_fd=pfd)  # fd-based walk: never follows symlinks
        else:
            os.unlink(name, dir_fd=pfd)

    # -- metadata ----------------------------------------------------------
    def _set_xattrs(self, target: int | str, xattrs: dict[str, bytes]) -> None:
        for key in sorted(xattrs):
            try:
                os.setxattr(target, key, xattrs[key], follow_symlinks=isinstance(target, int))
            except OSError as exc:
                # Docker ignores these too: a filesystem or file type that
                # cannot hold this namespace (e.g. user.* on a symlink).
                if exc.errno not in (errno.ENOTSUP, errno.EPERM):
                    raise

    def _own_fd(self, plan: EntryPlan, fd: int) -> None:
        """Numeric owner from the header (never names); only root can give files away."""
        if self.is_root and needs_owner_change(plan.uid, plan.gid, self.creator):
            os.fchown(fd, plan.uid, plan.gid)

    def _own_at(self, plan: EntryPlan, pfd: int, base: str) -> None:
        if self.is_root and needs_owner_change(plan.uid, plan.gid, self.creator):
            os.chown(base, plan.uid, plan.gid, dir_fd=pfd, follow_symlinks=False)

    # -- entry kinds -------------------------------------------------------
    def apply(self, plan: EntryPlan) -> None:
        getattr(self, "_apply_" + plan.kind)(plan)

    def _apply_skip(self, plan: EntryPlan) -> None:
        pass

    def _create(self, plan: EntryPlan, make) -> int:
        """Run `make(parent_fd, base)`; if the name exists, remove it and retry once."""
        pfd = self.dir_fd(plan.parts[:-1], plan.name)
        base = plan.parts[-1]
        try:
            make(pfd, base)
        except FileExistsError:
            self._remove(pfd, plan.parts)
            make(pfd, base)
        return pfd

    def _apply_file(self, plan: EntryPlan) -> None:
        holder: list[int] = []
        final_mode = creation_mode(plan.mode, self.umask)

        def make(pfd: int, base: str) -> None:
            holder.append(os.open(base, FILE_FLAGS, 0o600 if final_mode is None else final_mode, dir_fd=pfd))

        self._create(plan, make)
        fd = holder[0]
        try:
            self._write_data(fd, plan)
            self._own_fd(plan, fd)
            if final_mode is None:
                os.fchmod(fd, plan.mode)
            if plan.xattrs:
                self._set_xattrs(fd, plan.xattrs)
            os.utime(fd, ns=(plan.atime_ns, plan.mtime_ns))
        finally:
            os.close(fd)

    def _write_data(self, fd: int, plan: EntryPlan) -> None:
        if plan.sparse is None:
            for view in self.source.views(plan.stored):
                while view:
                    view = view[os.write(fd, view):]
            return
        for offset, length in plan.sparse:
            os.lseek(fd, offset, os.SEEK_SET)
            for view in self.source.views(length):
                while view:
                    view = view[os.write(fd, view):]
        os.ftruncate(fd, plan.size)

    def _apply_dir(self, plan: EntryPlan) -> None:
        if plan.parts:
            pfd = self.dir_fd(plan.parts[:-1], plan.name)
            base = plan.parts[-1]
            try:
                os.mkdir(base, 0o700, dir_fd=pfd)
            except FileExistsError:
                if not stat.S_ISDIR(os.stat(base, dir_fd=pfd, follow_symlinks=False).st_mode):
                    self._remove(pfd, plan.parts)
                    os.mkdir(base, 0o700, dir_fd=pfd)
        fd = self.dir_fd(plan.parts, plan.name, create=False)
        self._own_fd(plan, fd)
        self._set_xattrs(fd, plan.xattrs)
        # Mode and times last: children change the mtime, and a 0555 dir must still take them.
        self._dir_meta[plan.parts] = (plan.mode, plan.atime_ns, plan.mtime_ns)

    def _apply_opaque(self, plan: EntryPlan) -> None:
        fd = self.dir_fd(plan.parts[:-1], plan.name)
        os.setxattr(fd, OPAQUE_XATTR, b"y")

    def _apply_whiteout(self, plan: EntryPlan) -> None:
        # overlayfs whiteout: a 0:0 character device (Docker's overlay2 form, owner from the header).
        pfd = self._create(plan, lambda pfd, base: os.mknod(base, stat.S_IFCHR, os.makedev(0, 0), dir_fd=pfd))
        self._own_at(plan, pfd, plan.parts[-1])
        # Not in Docker, but it makes pack(unpack(layer)) give back the same bytes.
        os.utime(plan.parts[-1], ns=(plan.atime_ns, plan.mtime_ns), dir_fd=pfd, follow_symlinks=False)

    def _finish_special(self, plan: EntryPlan, pfd: int) -> None:
        """Owner, mode, xattrs and times of a node that cannot be opened (device, fifo)."""
        base = plan.parts[-1]
        self._own_at(plan, pfd, base)
        os.chmod(base, plan.mode, dir_fd=pfd)  # a node we just made; no other writer exists
        self._set_xattrs(f"/proc/self/fd/{pfd}/{base}", plan.xattrs)
        os.utime(base, ns=(plan.atime_ns, plan.mtime_ns), dir_fd=pfd, follow_symlinks=False)

    def _apply_chr(self, plan: EntryPlan) -> None:
        dev = os.makedev(plan.devmajor, plan.devminor)
        pfd = self._create(plan, lambda pfd, base: os.mknod(base, stat.S_IFCHR | 0o600, dev, dir_fd=pfd))
        self._finish_special(plan, pfd)

    def _apply_blk(self, plan: EntryPlan) -> None:
        dev = os.makedev(plan.devmajor, plan.devminor)
        pfd = self._create(plan, lambda pfd, base: os.mknod(base, stat.S_IFBLK | 0o600, dev, dir_fd=pfd))
        self._finish_special(plan, pfd)

    def _apply_fifo(self, plan: EntryPlan) -> None:
        pfd = self._create(plan, lambda pfd, base: os.mkfifo(base, 0o600, dir_fd=pfd))
        self._finish_special(plan, pfd)

    def _apply_symlink(self, plan: EntryPlan) -> None:
        # The target is kept verbatim (absolute ones too): it is resolved inside the container.
        pfd = self._create(plan, lambda pfd, base: os.symlink(plan.linkname, base, dir_fd=pfd))
        base = plan.parts[-1]
        self._own_at(plan, pfd, base)
        self._set_xattrs(f"/proc/self/fd/{pfd}/{base}", plan.xattrs)
        os.utime(base, ns=(plan.atime_ns, plan.mtime_ns), dir_fd=pfd, follow_symlinks=False)

    def _apply_hardlink(self, plan: EntryPlan) -> None:
        target = plan.link_parts[-1]
        tpfd = self.dir_fd(plan.link_parts[:-1], plan.name, create=False)
        try:
            st = os.stat(target, dir_fd=tpfd, follow_symlinks=False)
        except FileNotFoundError:
            raise UnsafeArchiveError(
                f"layer entry {plan.name!r}: hardlink target {'/'.join(plan.link_parts)!r} is not in the layer"
            ) from None
        if stat.S_ISDIR(st.st_mode):
            raise UnsafeArchiveError(f"layer entry {plan.name!r}: hardlink to a directory")
        pfd = self.dir_fd(plan.parts[:-1], plan.name)
        base = plan.parts[-1]
        try:
            # linkat without AT_SYMLINK_FOLLOW: a symlink target is linked as itself.
            os.link(target, base, src_dir_fd=tpfd, dst_dir_fd=pfd, follow_symlinks=False)
        except FileExistsError:
            self._remove(pfd, plan.parts)
            tpfd = self.dir_fd(plan.link_parts[:-1], plan.name, create=False)  # may have been dropped
            pfd = self.dir_fd(plan.parts[:-1], plan.name)
            os.link(target, base, src_dir_fd=tpfd, dst_dir_fd=pfd, follow_symlinks=False)

    # -- directory metadata, deepest first ------------------------------
    def finish_dirs(self) -> None:
        for parts in sorted(self._dir_meta, key=len, reverse=True):
            mode, atime_ns, mtime_ns = self._dir_meta[parts]
            try:
                fd = self.dir_fd(parts, "/".join(parts), create=False)
            except UnsafeArchiveError:
                continue  # replaced by a later non-directory entry
            os.fchmod(fd, mode)
            os.utime(fd, ns=(atime_ns, mtime_ns))


def _os_error(name: str, exc: OSError) -> Exception:
    """An OSError while applying an entry, as a one-line PyctrError naming it."""
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    if exc.errno in STORAGE_ERRNOS:
        return StoreError(f"cannot unpack layer entry {name!r}: {reason}")
    return UnsafeArchiveError(f"cannot unpack layer entry {name!r}: {reason}")


def _open_tar(source: LayerSource) -> tarfile.TarFile | None:
    try:
        return tarfile.open(fileobj=source, mode="r:", encoding="utf-8", errors="surrogateescape",
                            tarinfo=FastTarInfo)
    except tarfile.ReadError as exc:
        if str(exc) == "empty file":
            return None  # an empty blob is an empty layer
        raise UnsafeArchiveError(f"layer is not a valid tar archive: {exc}") from None


def _next_member(tar: tarfile.TarFile) -> tarfile.TarInfo | None:
    try:
        info = tar.next()
    except (tarfile.TarError, ValueError, UnicodeError) as exc:
        raise UnsafeArchiveError(f"layer tar is malformed: {exc}") from None
    tar.members.clear()  # streaming: keep no history
    return info


def unpack_layer(stream: BinaryIO, media_type: str | None, dest: str | os.PathLike[str], *,
                 threaded: bool = True) -> UnpackResult:
    """Unpack a layer blob (as stored: gzip, zstd or plain tar) into the empty dir `dest`.

    Returns the diff_id (sha256 of the uncompressed tar) and uncompressed size;
    the caller compares the diff_id with the image config and deletes `dest`
    on a mismatch or an error. Nothing is ever written outside `dest`.
    """
    try:
        root_fd = os.open(dest, DIR_FLAGS)
    except OSError as exc:
        raise StoreError(f"cannot unpack a layer into {os.fspath(dest)!r}: {exc.strerror}") from None
    try:
        return _unpack_into(stream, media_type, root_fd, threaded)
    except SourceError as exc:
        raise exc.original from None
    finally:
        os.close(root_fd)


def _unpack_into(stream: BinaryIO, media_type: str | None, root_fd: int, threaded: bool) -> UnpackResult:
    with LayerSource(stream, media_type, threaded=threaded) as source:
        _extract_and_drain(source, root_fd, layer=True)
        return UnpackResult(diff_id=source.diff_id, size=source.size)


def _extract_and_drain(source: LayerSource, root_fd: int, *, layer: bool) -> None:
    """Every entry of `source` into `root_fd`, then directory metadata, then the rest of the stream (verified)."""
    # A layer fills an empty directory we made; a setgid one would hand its group down to what is created in it.
    fresh = layer and not os.fstat(root_fd).st_mode & stat.S_ISGID
    extractor = _Extractor(root_fd, source, fresh=fresh)
    try:
        _extract_all(source, extractor, layer=layer)
        try:
            extractor.finish_dirs()
        except OSError as exc:
            raise _os_error("directory metadata", exc) from None
    finally:
        extractor.close()
    source.drain()


def _extract_all(source: LayerSource, extractor: _Extractor, *, layer: bool = True) -> None:
    tar = _open_tar(source)
    if tar is None:
        return
    while True:
        info = _next_member(tar)
        if info is None:
            return
        plan = plan_entry(info, whiteouts=layer)
        if not layer and not plan.parts:
            continue  # Docker's untar leaves an existing destination's own metadata alone (`./` entry)
        try:
            extractor.apply(plan)
        except OSError as exc:
            raise _os_error(plan.name, exc) from None
        except ValueError as exc:  # e.g. an embedded NUL in a name
            raise UnsafeArchiveError(f"cannot unpack layer entry {plan.name!r}: {exc}") from None
        except RecursionError:  # removing an absurdly deep directory it replaces
            raise UnsafeArchiveError(f"cannot unpack layer entry {plan.name!r}: directories nested too deep") from None


# --- archives that are not layers: ADD of a local tar, a build context on stdin ---------------

BZIP2_MAGIC = b"BZh"
XZ_MAGIC = b"\xfd7zXZ\x00"


COMPRESSION_MAGICS = (GZIP_MAGIC, BZIP2_MAGIC, XZ_MAGIC, ZSTD_MAGIC)


def has_tar_header(block: bytes) -> bool:
    """Whether `block` starts with one valid tar header (Go's tar.Reader.Next succeeding, roughly)."""
    if len(block) < tarfile.BLOCKSIZE:
        return False
    try:
        tarfile.TarInfo.frombuf(block[:tarfile.BLOCKSIZE], "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def looks_like_archive(head: bytes) -> bool:
    """Docker's archive.IsArchive on the first bytes of a stream: a compression magic or a tar header."""
    return head.startswith(COMPRESSION_MAGICS) or has_tar_header(head)


class PrefixedStream:
    """A forward-only stream with the bytes already peeked at put back in front."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head = head
        self._stream = stream

    def read(self, n: int = -1) -> bytes:
        if not self._head:
            return self._stream.read(n)
        if n < 0 or n >= len(self._head):
            data, self._head = self._head, b""
            return data if n < 0 else data + self._stream.read(n - len(data))
        data, self._head = self._head[:n], self._head[n:]
        return data


def decompressed(stream: BinaryIO) -> BinaryIO:
    """`stream` with bzip2 or xz undone; gzip, zstd and plain tar pass through (LayerSource decodes them).

    Docker's untar takes identity, gzip, bzip2 and xz (DecompressStream); a
    layer never needs bzip2/xz, so they are decoded here rather than in the pump.
    """
    import bz2
    import lzma

    head = stream.read(len(XZ_MAGIC))
    rewound = cast(BinaryIO, PrefixedStream(head, stream))
    if head.startswith(BZIP2_MAGIC):
        return cast(BinaryIO, bz2.BZ2File(rewound))
    if head.startswith(XZ_MAGIC):
        return cast(BinaryIO, lzma.LZMAFile(rewound))
    return rewound


def unpack_archive(stream: BinaryIO, dest: str | os.PathLike[str]) -> int:
    """Unpack a tar (plain, gzip, bzip2, xz, zstd) into the existing directory `dest`; returns its size.

    Docker's untar semantics for ADD and `build - < context.tar`: entries are
    merged into what `dest` holds (a later name replaces an earlier one),
    `.wh.*` names are ordinary files, the archive's `./` entry is skipped,
    numeric owners are kept (when root). The same fd-based writer as layers,
    so nothing is written outside `dest` whatever the archive holds (symlink
    chains, `..`, absolute names, hardlinks out): such entries are refused.
    """
    import lzma

    try:
        root_fd = os.open(dest, DIR_FLAGS)
    except OSError as exc:
        raise StoreError(f"cannot unpack an archive into {os.fspath(dest)!r}: {exc.strerror}") from None
    try:
        with LayerSource(decompressed(stream), None, threaded=False) as source:
            _extract_and_drain(source, root_fd, layer=False)
            return source.size
    except SourceError as exc:  # a corrupt bzip2/xz stream, or the stream itself failing
        raise UnsafeArchiveError(f"cannot read the archive: {exc.original}") from None
    except (EOFError, OSError, lzma.LZMAError) as exc:  # the same, met while peeking at the first header
        raise UnsafeArchiveError(f"cannot read the archive: {exc}") from None
    finally:
        os.close(root_fd)
