"""`pyctr cp`: copy files and directories between a container and the host, with Docker's semantics.

Deciding (pure, unit-tested): `split_cp_arg` (which side is the container),
`plan_copy` (Docker's table: file/dir source, destination missing, a file or a
directory, trailing "/" and "/."), `owner_for` (who owns the copies) and
`tar_member_parts` (a tar member's path, refused if it climbs out).

Doing: every path inside the container is resolved against a directory fd of
the container's root with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS):
the kernel treats that fd as "/", so a symlink - even one the container swaps
in while we copy - can never lead outside it (CVE-2018-15664). Below the
resolved top, the trees are walked one component at a time from directory fds
with O_NOFOLLOW, and every write, chown, chmod and utime is done on an fd or
relative to a parent fd without following symlinks.

Where the root comes from: a running container's root is its PID 1's
/proc/<pid>/root (the overlay and volumes are mounted only in its mount
namespace), checked against the recorded PidStartTime. A stopped (or created)
container has nothing mounted: a forked child unshares a private mount
namespace, mounts the overlay at rootfs/merged plus the container's bind
mounts (volumes, /etc/hosts...), does the whole copy there and exits, so the
mounts vanish with it. Not locked against a concurrent `start` (Docker locks).

Hard links inside a copied tree are copied as separate files (hard links in a
tar stream read with `-` are kept). Sockets are skipped, as tar does.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from pyctr.errors import NotFoundError, PyctrError, RuntimeFailure, UnsafeArchiveError, UsageError

if TYPE_CHECKING:
    from pyctr.config import Config
    from pyctr.runtime.state import ContainerRecord

CHUNK = 1 << 20


# ------------------------------------------------------------------------------------------ deciding (pure)


def split_cp_arg(arg: str) -> tuple[str | None, str]:
    """Docker's splitCpArg: "name:path" names a container; "/abs", "./x:y" or no colon is a local path."""
    if arg.startswith("/"):
        return None, arg
    container, sep, path = arg.partition(":")
    if not sep or container.startswith("."):
        return None, arg
    return container, path


@dataclass(frozen=True)
class CopyRequest:
    """What `pyctr cp SRC DST` asks for. `src_path`/`dst_path` "-" mean a tar stream on stdin/stdout."""

    container: str
    to_container: bool
    src_path: str
    dst_path: str


def parse_cp_args(src: str, dst: str) -> CopyRequest:
    """Which side is the container; Docker's errors for zero or two containers."""
    src_container, src_path = split_cp_arg(src) if src != "-" else (None, "-")
    dst_container, dst_path = split_cp_arg(dst) if dst != "-" else (None, "-")
    if src_container is not None and dst_container is not None:
        raise UsageError("copying between containers is not supported")
    if src_container is None and dst_container is None:
        raise UsageError("must specify at least one container source")
    if src_container is not None:
        return CopyRequest(src_container, False, container_path(src_path), dst_path)
    return CopyRequest(dst_container or "", True, src_path, container_path(dst_path))


def container_path(path: str) -> str:
    """Container paths are relative to its "/" (docker cp: `c:tmp/x` is `c:/tmp/x`); keeps a trailing "/" or "/."."""
    return path if path.startswith("/") else "/" + path


def wants_contents(path: str) -> bool:
    """SRC ending in "/." copies what is in the directory, not the directory itself."""
    return path == "." or path.endswith("/.")


def asserts_directory(path: str) -> bool:
    """A trailing "/" (or "/.") says the path must be a directory."""
    return path.endswith("/") or wants_contents(path)


def clean_path(path: str) -> str:
    """Normalised path without its trailing markers ("/" stays "/")."""
    norm = os.path.normpath(path)
    return "/" + norm.lstrip("/") if path.startswith("/") else norm


def base_name(path: str) -> str:
    return os.path.basename(clean_path(path)) or "."


@dataclass(frozen=True)
class CopyTarget:
    """Where the source lands: entry `name` inside directory `directory`, or (name None) merged into `directory`."""

    directory: str
    name: str | None


def plan_copy(src_path: str, src_is_dir: bool, dst_path: str, dst_exists: bool, dst_is_dir: bool) -> CopyTarget:
    """Docker's cp rules (docs of `docker cp`), for an existing source. Raises UsageError in its error cases."""
    if asserts_directory(src_path) and not src_is_dir:
        raise UsageError(f"{src_path}: not a directory")
    dst = clean_path(dst_path)
    if not src_is_dir:
        if dst_exists and dst_is_dir:
            return CopyTarget(dst, base_name(src_path))
        if asserts_directory(dst_path):
            if dst_exists:
                raise UsageError(f"{dst_path}: not a directory")
            raise UsageError(f'destination "{dst_path}" must be a directory: no such directory')
        return CopyTarget(os.path.dirname(dst) or ".", os.path.basename(dst))
    if dst_exists and not dst_is_dir:
        raise UsageError(f'cannot copy directory "{src_path}" to file "{dst_path}"')
    if dst_exists:
        if wants_contents(src_path) or clean_path(src_path) == "/":
            return CopyTarget(dst, None)
        return CopyTarget(dst, base_name(src_path))
    if dst == "/":
        return CopyTarget("/", None)
    return CopyTarget(os.path.dirname(dst) or ".", os.path.basename(dst))


def owner_for(to_container: bool, archive: bool, source_ids: tuple[int, int],
              host_ids: tuple[int, int]) -> tuple[int, int]:
    """Docker: -a keeps the source's uid:gid; otherwise root in the container, the invoking user on the host."""
    if archive:
        return source_ids
    return (0, 0) if to_container else host_ids


def tar_member_parts(name: str) -> tuple[str, ...]:
    """A tar member's path as components below the destination; "." is the top; ".." is refused."""
    parts = tuple(p for p in name.replace("\\", "/").split("/") if p not in ("", "."))
    if ".." in parts:
        raise UnsafeArchiveError(f"refusing tar member {name!r}: it climbs out of the destination")
    return parts


# ------------------------------------------------------------------------------------------ entries


@dataclass
class Entry:
    """One object to copy. `path` is relative to the copied top (() = the top itself)."""

    path: tuple[str, ...]
    kind: str  # dir | file | symlink | hardlink | fifo | chr | blk
    mode: int  # permission bits, setuid/setgid/sticky included
    uid: int
    gid: int
    mtime_ns: int
    size: int = 0
    linkname: str = ""  # symlink target, or for a hardlink the path (in the stream) it links to
    device: int = 0
    reader: Callable[[], BinaryIO] | None = None  # a file's content


_KINDS = ((stat.S_ISDIR, "dir"), (stat.S_ISREG, "file"), (stat.S_ISLNK, "symlink"), (stat.S_ISFIFO, "fifo"),
          (stat.S_ISCHR, "chr"), (stat.S_ISBLK, "blk"))
_MKNOD_TYPE = {"fifo": stat.S_IFIFO, "chr": stat.S_IFCHR, "blk": stat.S_IFBLK}


def kind_of(mode: int) -> str | None:
    for test, kind in _KINDS:
        if test(mode):
            return kind
    return None  # sockets: tar cannot carry them


# ------------------------------------------------------------------------------------------ resolving paths


class Filesystem:
    """The host: paths resolve as usual (the user names host paths themselves)."""

    def open_path(self, path: str, follow: bool) -> int:
        """An O_PATH fd of `path` (of a final symlink itself unless `follow`)."""
        return os.open(path, os.O_PATH | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW))

    def describe(self, path: str) -> str:
        return path


class ContainerFilesystem(Filesystem):
    """Paths inside a container: resolved by the kernel with `root_fd` as "/", never outside it."""

    def __init__(self, root_fd: int, container: str) -> None:
        self.root_fd = root_fd
        self.container = container

    def open_path(self, path: str, follow: bool) -> int:
        from pyctr.runtime.rootfs import resolve_in_root

        return resolve_in_root(self.root_fd, path, flags=0 if follow else os.O_NOFOLLOW)

    def describe(self, path: str) -> str:
        return f"{self.container}:{path}"


def open_existing(fs: Filesystem, path: str, follow: bool) -> int | None:
    """O_PATH fd of `path`, or None when it (or its parent) does not exist."""
    try:
        return fs.open_path(path, follow)
    except (FileNotFoundError, NotADirectoryError):
        return None


def resolve_destination(fs: Filesystem, path: str) -> tuple[str, int | None]:
    """Follow a symlinked destination (Docker's CLI does) to a path whose last component is not a symlink.

    Returns (path, O_PATH fd of it or None when missing). Every lookup is `fs`'s, so in a container the
    chain cannot leave its root.
    """
    current = path
    for _ in range(40):
        fd = open_existing(fs, clean_path(current), follow=False)
        if fd is None or not stat.S_ISLNK(os.fstat(fd).st_mode):
            return current, fd
        target = os.readlink("", dir_fd=fd)
        os.close(fd)
        parent = os.path.dirname(clean_path(current))
        current = target if target.startswith("/") else os.path.join(parent, target)
        if isinstance(fs, ContainerFilesystem):
            current = container_path(current)
    raise UsageError(f"{fs.describe(path)}: too many levels of symbolic links")


# ------------------------------------------------------------------------------------------ sources


def walk(top_fd: int) -> Iterator[Entry]:
    """Entries of the object behind O_PATH `top_fd` and, for a directory, everything below it (depth first),
    never following a symlink: children are opened O_NOFOLLOW relative to their directory's fd. Iterative, so
    depth is bounded by fds (one per level), not by Python's recursion limit. Consumes (closes) `top_fd`."""
    pending: list[tuple[int, tuple[str, ...], Iterator[str]]] = []  # directories being listed
    try:
        yield from _visit(top_fd, (), pending)
        while pending:
            directory, path, names = pending[-1]
            name = next(names, None)
            if name is None:
                os.close(directory)
                pending.pop()
                continue
            try:
                child = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=directory)
            except FileNotFoundError:
                continue  # removed while we copy
            yield from _visit(child, path + (name,), pending)
    finally:
        for directory, _, _ in pending:
            os.close(directory)


def _visit(fd: int, path: tuple[str, ...], pending: list) -> Iterator[Entry]:
    """Yield the entry of O_PATH `fd` (kept open while the consumer reads it, then closed); a directory's
    listing is pushed on `pending`."""
    try:
        st = os.fstat(fd)
        kind = kind_of(st.st_mode)
        if kind is None:
            return
        entry = Entry(path, kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns,
                      st.st_size if kind == "file" else 0, device=st.st_rdev)
        if kind == "symlink":
            entry.linkname = os.readlink("", dir_fd=fd)
        elif kind == "file":
            entry.reader = _reopen_reader(fd)
        elif kind == "dir":
            directory = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
            pending.append((directory, path, iter(sorted(os.listdir(directory)))))
        yield entry
    finally:
        os.close(fd)


def _reopen_reader(fd: int) -> Callable[[], BinaryIO]:
    """Open the very inode behind an O_PATH fd for reading (no path lookup: no race), refusing non-files."""
    def reader() -> BinaryIO:
        data_fd = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        if not stat.S_ISREG(os.fstat(data_fd).st_mode):
            os.close(data_fd)
            raise RuntimeFailure("a file changed into something else while it was copied")
        return os.fdopen(data_fd, "rb", buffering=0)
    return reader


def tar_entries(stream: BinaryIO) -> Iterator[Entry]:
    """Entries of a tar stream (`pyctr cp - c:/dir`); member names are checked, contents read in order."""
    import tarfile

    try:
        archive = tarfile.open(fileobj=stream, mode="r|*")  # noqa: SIM115 - closed by the with below
    except tarfile.TarError as e:
        raise UsageError(f"invalid tar stream on stdin: {e}") from None
    with archive:
        for member in archive:
            parts = tar_member_parts(member.name)
            kind = _tar_kind(member)
            if kind is None or (not parts and kind != "dir"):
                continue
            entry = Entry(parts, kind, member.mode & 0o7777, member.uid, member.gid, int(member.mtime * 1e9),
                          member.size if kind == "file" else 0, device=os.makedev(member.devmajor, member.devminor)
                          if kind in ("chr", "blk") else 0)
            if kind == "symlink":
                entry.linkname = member.linkname
            elif kind == "hardlink":
                entry.linkname = "/".join(tar_member_parts(member.linkname))
            elif kind == "file":
                entry.reader = _member_reader(archive, member)
            yield entry


def _member_reader(archive, member) -> Callable[[], BinaryIO]:
    return lambda: archive.extractfile(member)


def _tar_kind(member) -> str | None:
    if member.isdir():
        return "dir"
    if member.isreg():
        return "file"
    if member.issym():
        return "symlink"
    if member.islnk():
        return "hardlink"
    if member.isfifo():
        return "fifo"
    if member.ischr():
        return "chr"
    if member.isblk():
        return "blk"
    return None


# ------------------------------------------------------------------------------------------ sinks


class DirectorySink:
    """Creates entries below directory fd `base`; every component is opened O_NOFOLLOW, every metadata
    change is made on an fd or without following symlinks."""

    def __init__(self, base: int, owner: Callable[[Entry], tuple[int, int]], create_parents: bool = False) -> None:
        self.base = base
        self.owner = owner
        self.create_parents = create_parents  # a tar stream may omit its directories: make them (0755)
        self._open: list[tuple[str, int]] = []  # the directory chain of the last lookup: one fd per level
        self._finish: list[tuple[tuple[str, ...], Entry]] = []

    def close(self) -> None:
        for _, fd in self._open:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._open.clear()

    def directory(self, parts: tuple[str, ...]) -> int:
        """A directory fd for `parts` below the base, walked without following any symlink.

        Entries arrive depth first, so the chain of the previous lookup is kept and only the components that
        differ are closed and opened: fds stay bounded by the depth. The fd is valid until the next call.
        """
        common = 0
        while common < min(len(parts), len(self._open)) and self._open[common][0] == parts[common]:
            common += 1
        for _, fd in self._open[common:]:
            os.close(fd)
        del self._open[common:]
        for name in parts[common:]:
            parent = self._open[-1][1] if self._open else self.base
            self._open.append((name, self._open_child(parent, name, parts)))
        return self._open[-1][1] if parts else self.base

    def _open_child(self, parent: int, name: str, parts: tuple[str, ...]) -> int:
        if self.create_parents:
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o755, dir_fd=parent)
        try:
            return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise RuntimeFailure(f"refusing to follow {'/'.join(parts)}: not a directory (a symlink?)") from None
            raise

    def _open_fresh(self, parts: tuple[str, ...]) -> int:
        """An fd of its own (the caller closes it) for a directory below the base, without following symlinks."""
        fd = os.dup(self.base)
        for name in parts:
            try:
                child = self._open_child(fd, name, parts)
            finally:
                os.close(fd)
            fd = child
        return fd

    def put(self, parts: tuple[str, ...], entry: Entry, top: bool) -> None:
        parent = self.directory(parts[:-1])
        name = parts[-1]
        existing = _lstat_at(parent, name)
        if entry.kind == "dir":
            self._put_dir(parts, parent, name, existing, entry, top)
            return
        if existing is not None and stat.S_ISDIR(existing.st_mode):
            raise UsageError(f"cannot overwrite directory {'/'.join(parts)!r} with non-directory")
        if existing is not None and not (entry.kind == "file" and stat.S_ISREG(existing.st_mode)):
            os.unlink(name, dir_fd=parent)
        uid, gid = self.owner(entry)
        if entry.kind == "file":
            self._put_file(parent, name, entry, uid, gid)
        elif entry.kind == "symlink":
            os.symlink(entry.linkname, name, dir_fd=parent)
            os.chown(name, uid, gid, dir_fd=parent, follow_symlinks=False)
            os.utime(name, ns=(entry.mtime_ns, entry.mtime_ns), dir_fd=parent, follow_symlinks=False)
        elif entry.kind == "hardlink":
            target = tar_member_parts(entry.linkname)
            if not target:
                raise UnsafeArchiveError(f"hard link {'/'.join(parts)} has no target")
            source_dir = self._open_fresh(target[:-1])
            try:
                os.link(target[-1], name, src_dir_fd=source_dir, dst_dir_fd=parent, follow_symlinks=False)
            finally:
                os.close(source_dir)
        else:
            os.mknod(name, _MKNOD_TYPE[entry.kind] | entry.mode, entry.device, dir_fd=parent)  # umask is 0
            os.chown(name, uid, gid, dir_fd=parent, follow_symlinks=False)
            os.utime(name, ns=(entry.mtime_ns, entry.mtime_ns), dir_fd=parent, follow_symlinks=False)

    def _put_dir(self, parts: tuple[str, ...], parent: int, name: str, existing: os.stat_result | None,
                 entry: Entry, top: bool) -> None:
        if existing is not None and not stat.S_ISDIR(existing.st_mode):
            if top:
                raise UsageError(f"cannot overwrite non-directory {'/'.join(parts)!r} with directory")
            os.unlink(name, dir_fd=parent)
            existing = None
        if existing is None:
            os.mkdir(name, 0o700, dir_fd=parent)  # final mode at the end: a read-only source dir still fills
        self._finish.append((parts, entry))

    def _put_file(self, parent: int, name: str, entry: Entry, uid: int, gid: int) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        fd = os.open(name, flags, 0o600, dir_fd=parent)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise RuntimeFailure(f"{name}: the destination changed into a non-file while copying")
            if entry.reader is not None:
                with entry.reader() as source:
                    _copy_stream(source, fd)
            os.fchown(fd, uid, gid)
            os.fchmod(fd, entry.mode)  # after chown: chown clears setuid bits
            os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))
        finally:
            os.close(fd)

    def finish(self) -> None:
        """Directories' owner, mode and times last (deepest first), so their own contents could be written."""
        self.close()
        for parts, entry in reversed(self._finish):
            fd = self._open_fresh(parts)
            try:
                uid, gid = self.owner(entry)
                os.fchown(fd, uid, gid)
                os.fchmod(fd, entry.mode)
                os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))
            finally:
                os.close(fd)


def _lstat_at(parent: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _copy_stream(source: BinaryIO, fd: int) -> None:
    while chunk := source.read(CHUNK):
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view):]


class TarSink:
    """Writes entries as a tar stream (`pyctr cp c:/path -`), named below `top_name`."""

    def __init__(self, out: BinaryIO, top_name: str) -> None:
        import tarfile

        self.tarfile = tarfile
        self.archive = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT)  # noqa: SIM115 - close()
        self.top_name = top_name

    def put(self, entry: Entry) -> None:
        tf = self.tarfile
        parts = entry.path if self.top_name == "." else (self.top_name, *entry.path)
        info = tf.TarInfo("/".join(parts) or ".")
        info.mode, info.uid, info.gid, info.mtime = entry.mode, entry.uid, entry.gid, entry.mtime_ns / 1e9
        info.type = {"dir": tf.DIRTYPE, "file": tf.REGTYPE, "symlink": tf.SYMTYPE, "fifo": tf.FIFOTYPE,
                     "chr": tf.CHRTYPE, "blk": tf.BLKTYPE}[entry.kind]
        info.linkname = entry.linkname
        if entry.kind in ("chr", "blk"):
            info.devmajor, info.devminor = os.major(entry.device), os.minor(entry.device)
        if entry.kind == "file" and entry.reader is not None:
            info.size = entry.size
            with entry.reader() as source:
                self.archive.addfile(info, source)
        else:
            self.archive.addfile(info)

    def close(self) -> None:
        self.archive.close()


# ------------------------------------------------------------------------------------------ copying


@dataclass(frozen=True)
class CopyOptions:
    archive: bool = False  # -a
    follow_link: bool = False  # -L


def copy_tree(source_fd: int, target_dir_fd: int, name: str | None, to_container: bool, options: CopyOptions) -> None:
    """Copy the object behind O_PATH `source_fd` into `target_dir_fd` as `name` (None: merge a directory's
    contents). Consumes `source_fd`."""
    host_ids = (os.getuid(), os.getgid())

    def owner(entry: Entry) -> tuple[int, int]:
        return owner_for(to_container, options.archive, (entry.uid, entry.gid), host_ids)

    sink = DirectorySink(target_dir_fd, owner)
    skipped_devices = 0
    old_umask = os.umask(0)
    try:
        for entry in walk(source_fd):
            if name is None and not entry.path:
                continue  # "/.": the top directory itself is the existing destination
            if not to_container:
                entry = harden_for_host(entry, options.archive)
                if entry is None:
                    skipped_devices += 1
                    continue
            parts = ((name,) if name is not None else ()) + entry.path
            sink.put(parts, entry, top=not entry.path)
        sink.finish()
    finally:
        os.umask(old_umask)
        sink.close()
    if skipped_devices:
        import sys

        print(f"pyctr cp: skipped {skipped_devices} device node(s): not created on the host", file=sys.stderr)


def harden_for_host(entry: Entry, archive: bool) -> Entry | None:
    """What a container may not plant on the host through cp (a deliberate difference from Docker's client):
    no device nodes (one for the host's disk, owned by a container uid with -a, would be raw disk access), and
    without -a no setuid/setgid bits (a container's setuid binary would become a setuid-root one of the host)."""
    if entry.kind in ("chr", "blk"):
        return None
    if not archive and entry.kind == "file" and entry.mode & (stat.S_ISUID | stat.S_ISGID):
        entry.mode &= ~(stat.S_ISUID | stat.S_ISGID)
    return entry


def extract_tar(stream: BinaryIO, target_dir_fd: int, archive: bool) -> None:
    """`pyctr cp - c:/dir`: unpack a tar stream into the directory (owners: root unless -a)."""
    def owner(entry: Entry) -> tuple[int, int]:
        return owner_for(True, archive, (entry.uid, entry.gid), (0, 0))

    sink = DirectorySink(target_dir_fd, owner, create_parents=True)
    old_umask = os.umask(0)
    try:
        for entry in tar_entries(stream):
            if entry.path:
                sink.put(entry.path, entry, top=False)
        sink.finish()
    finally:
        os.umask(old_umask)
        sink.close()


def copy_between(src_fs: Filesystem, src_path: str, dst_fs: Filesystem, dst_path: str, to_container: bool,
                 options: CopyOptions) -> None:
    """Resolve both ends, decide with `plan_copy`, copy."""
    follow = options.follow_link or asserts_directory(src_path)
    source = open_existing(src_fs, clean_path(src_path), follow)
    if source is None:
        raise _missing_source(src_fs, src_path)
    try:
        src_is_dir = stat.S_ISDIR(os.fstat(source).st_mode)
        resolved, dst_fd = resolve_destination(dst_fs, dst_path)
        dst_is_dir = dst_fd is not None and stat.S_ISDIR(os.fstat(dst_fd).st_mode)
        if dst_fd is not None:
            os.close(dst_fd)
        if resolved != dst_path and dst_path.endswith("/"):
            resolved += "/"
        target = plan_copy(src_path, src_is_dir, resolved, dst_fd is not None, dst_is_dir)
        target_dir = _open_target_directory(dst_fs, target.directory)
    except BaseException:
        os.close(source)
        raise
    try:
        copy_tree(source, target_dir, target.name, to_container, options)
    finally:
        os.close(target_dir)


def _missing_source(fs: Filesystem, path: str) -> PyctrError:
    if isinstance(fs, ContainerFilesystem):
        return NotFoundError(f"No such container:path: {fs.container}:{clean_path(path)}")
    return NotFoundError(f"lstat {os.path.abspath(path)}: no such file or directory")


def _open_target_directory(fs: Filesystem, path: str) -> int:
    """A real (readable) directory fd of the destination directory, resolved by `fs`."""
    fd = open_existing(fs, path, follow=True)
    if fd is None:
        raise NotFoundError(f"{fs.describe(path)}: no such file or directory")
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            raise UsageError(f"{fs.describe(path)}: not a directory")
        return os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
    finally:
        os.close(fd)


def stream_out(fs: ContainerFilesystem, src_path: str, out: BinaryIO, options: CopyOptions) -> None:
    """`pyctr cp c:/path -`: the path as a tar stream, its entries named after its base name."""
    follow = options.follow_link or asserts_directory(src_path)
    source = open_existing(fs, clean_path(src_path), follow)
    if source is None:
        raise _missing_source(fs, src_path)
    sink = TarSink(out, "." if wants_contents(src_path) else base_name(src_path))
    try:
        for entry in walk(source):
            sink.put(entry)
    finally:
        sink.close()
    out.flush()


def stream_in(fs: ContainerFilesystem, dst_path: str, stream: BinaryIO, archive: bool) -> None:
    """`pyctr cp - c:/dir`: the destination must be an existing directory."""
    resolved, fd = resolve_destination(fs, dst_path)
    if fd is None or not stat.S_ISDIR(os.fstat(fd).st_mode):
        if fd is not None:
            os.close(fd)
        raise UsageError(f'destination "{fs.describe(dst_path)}" must be a directory')
    os.close(fd)
    target = _open_target_directory(fs, clean_path(resolved))
    try:
        extract_tar(stream, target, archive)
    finally:
        os.close(target)


def perform(request: CopyRequest, root_fd: int, options: CopyOptions, stdin: BinaryIO, stdout: BinaryIO) -> None:
    """The copy itself, given the container's root directory fd."""
    container_fs = ContainerFilesystem(root_fd, request.container)
    if request.to_container and request.src_path == "-":
        stream_in(container_fs, request.dst_path, stdin, options.archive)
    elif not request.to_container and request.dst_path == "-":
        stream_out(container_fs, request.src_path, stdout, options)
    elif request.to_container:
        copy_between(Filesystem(), request.src_path, container_fs, request.dst_path, True, options)
    else:
        copy_between(container_fs, request.src_path, Filesystem(), request.dst_path, False, options)


# ------------------------------------------------------------------------------------------ the container's root


def run_cp(config: Config, src: str, dst: str, options: CopyOptions, stdin: BinaryIO, stdout: BinaryIO) -> None:
    """`pyctr cp`: errors are PyctrErrors with Docker's wording (exit 1, as the CLI maps them)."""
    from pyctr.runtime.state import ContainerStore

    request = parse_cp_args(src, dst)
    try:
        record = ContainerStore(config.paths).get(request.container)
    except NotFoundError:  # Docker's client words the archive API's 404 with the path it asked for
        path = request.dst_path if request.to_container else request.src_path
        raise NotFoundError(f"No such container:path: {request.container}:{path}") from None
    raise_fd_limit()

    def action(root_fd: int) -> None:
        try:
            perform(request, root_fd, options, stdin, stdout)
        except OSError as e:
            raise RuntimeFailure(_describe_os_error(e)) from None

    with_container_root(record, action)


def raise_fd_limit() -> None:
    """Deep trees hold one fd per level on each side: allow up to the hard limit (no privilege needed)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _describe_os_error(e: OSError) -> str:
    text = (e.strerror or str(e)).lower()
    return f"{e.filename}: {text}" if e.filename else text


def path_error(e: OSError) -> PyctrError:
    """An OSError met on a path the user named, as the error kind dockerd gives for it: missing is not found,
    a symlink loop or a name too long is the caller's bad parameter, anything else the runtime's failure."""
    if e.errno in (errno.ENOENT, errno.ENOTDIR):
        return NotFoundError(_describe_os_error(e))
    if e.errno in (errno.ELOOP, errno.ENAMETOOLONG, errno.EINVAL):
        return UsageError(_describe_os_error(e))
    return RuntimeFailure(_describe_os_error(e))


def with_container_root(record: ContainerRecord, action: Callable[[int], None]) -> None:
    """Run `action(root_fd)` with a directory fd of the container's root filesystem (see the module doc)."""
    from pyctr.runtime.state import process_alive

    state = record.state
    if state.running and process_alive(state.pid, state.pid_start_time):
        root_fd = os.open(f"/proc/{state.pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            if process_alive(state.pid, state.pid_start_time):
                action(root_fd)
                return
        finally:
            os.close(root_fd)
    _in_private_mount(record, action)


def _in_private_mount(record: ContainerRecord, action: Callable[[int], None]) -> None:
    """A stopped container: mount its filesystem in a child's private mount namespace and act there."""
    import tarfile  # noqa: F401 - imported before fork, like rootfs: the child needs them

    import pyctr.runtime.rootfs  # noqa: F401
    from pyctr.runtime.process.child import run_in_child
    from pyctr.runtime.spec import ContainerSpec

    spec = ContainerSpec.from_dict(record.config["Spec"])
    run_in_child(lambda: _mount_and_act(spec, action))


def _mount_and_act(spec, action: Callable[[int], None]) -> None:  # pragma: no cover - in the forked child
    from pyctr.runtime import rootfs
    from pyctr.runtime import syscalls as s

    s.unshare(s.CLONE_NEWNS)
    s.mount(None, "/", None, s.MS_SLAVE | s.MS_REC)  # nothing we mount propagates back to the host
    for directory in (spec.rootfs.upperdir, spec.rootfs.workdir, spec.rootfs.merged):
        os.makedirs(directory, mode=0o755, exist_ok=True)
    try:
        rootfs.mount_overlay(spec.rootfs.lowerdirs, spec.rootfs.upperdir, spec.rootfs.workdir, spec.rootfs.merged)
    except OSError as e:
        raise RuntimeFailure(f"cannot mount the container's filesystem: {e.strerror}") from None
    root = os.path.realpath(spec.rootfs.merged)
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for mount in rootfs.plan_mounts(spec):
            if mount.type == "bind" and os.path.exists(mount.source):
                rootfs.apply_mount(root_fd, root, mount, forbidden_root=rootfs.state_root_of(spec))
        if spec.rootfs.readonly:  # --read-only: as when it runs, only its volumes take writes
            s.mount(None, root, None, s.MS_REMOUNT | s.MS_BIND | s.MS_RDONLY)
        action(root_fd)
    finally:
        os.close(root_fd)


# ------------------------------------------------------------------------------------------ the Engine API's archive

GO_MODE_DIR, GO_MODE_SYMLINK, GO_MODE_DEVICE, GO_MODE_PIPE = 1 << 31, 1 << 27, 1 << 26, 1 << 25
GO_MODE_SOCKET, GO_MODE_SETUID, GO_MODE_SETGID = 1 << 24, 1 << 23, 1 << 22
GO_MODE_CHARDEV, GO_MODE_STICKY = 1 << 21, 1 << 20


def go_file_mode(mode: int) -> int:
    """A stat mode as Go's os.FileMode (what X-Docker-Container-Path-Stat carries)."""
    go = mode & 0o777
    for flag, bit in ((stat.S_ISUID, GO_MODE_SETUID), (stat.S_ISGID, GO_MODE_SETGID), (stat.S_ISVTX, GO_MODE_STICKY)):
        if mode & flag:
            go |= bit
    kind = stat.S_IFMT(mode)
    go |= {stat.S_IFDIR: GO_MODE_DIR, stat.S_IFLNK: GO_MODE_SYMLINK, stat.S_IFIFO: GO_MODE_PIPE,
           stat.S_IFSOCK: GO_MODE_SOCKET, stat.S_IFBLK: GO_MODE_DEVICE,
           stat.S_IFCHR: GO_MODE_DEVICE | GO_MODE_CHARDEV}.get(kind, 0)
    return go


def _result_through_pipe(record: ContainerRecord, action: Callable[[int], bytes]) -> bytes:
    """Run `action(root_fd)` on the container's root and get its bytes back, also when it ran in the forked
    child that mounts a stopped container's filesystem."""
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    try:
        def act(root_fd: int) -> None:
            data = action(root_fd)
            view = memoryview(data)
            while view:
                view = view[os.write(write_end, view):]

        with_container_root(record, act)
    finally:
        os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        return f.read()


def stat_container_path(record: ContainerRecord, path: str) -> dict:
    """dockerd's ContainerStatPath: name, size, Go mode, mtime and symlink target of `path` in the container
    (resolved in its root; a final symlink is described, not followed, unless a trailing "/" or "/." asks
    for what it points to, as dockerd resolves such a path). NotFoundError as dockerd words it; a symlink
    loop or an overlong name is a UsageError (400), not a failure of the daemon."""
    import json

    def describe(root_fd: int) -> bytes:
        fs = ContainerFilesystem(root_fd, record.name)
        try:
            fd = open_existing(fs, clean_path(path), follow=asserts_directory(path))
        except OSError as e:
            raise path_error(e) from None
        if fd is None:
            return b""
        try:
            st = os.fstat(fd)
            target = os.readlink("", dir_fd=fd) if stat.S_ISLNK(st.st_mode) else ""
        finally:
            os.close(fd)
        from pyctr.output.timefmt import format_rfc3339_ns

        return json.dumps({"name": base_name(path) or "/", "size": st.st_size, "mode": go_file_mode(st.st_mode),
                           "mtime": format_rfc3339_ns(st.st_mtime_ns), "linkTarget": target}).encode()

    data = _result_through_pipe(record, describe)
    if not data:
        raise NotFoundError(f"Could not find the file {path} in container {record.name}")
    return json.loads(data)


def archive_container_path(record: ContainerRecord, path: str, out: BinaryIO, options: CopyOptions) -> None:
    """GET /containers/{id}/archive: `path` as a tar stream (named after its base name), written to `out`."""
    raise_fd_limit()

    def action(root_fd: int) -> None:
        try:
            stream_out(ContainerFilesystem(root_fd, record.name), path, out, options)
        except BrokenPipeError:
            raise
        except OSError as e:
            raise path_error(e) from None

    with_container_root(record, action)


def extract_into_container(record: ContainerRecord, path: str, stream: BinaryIO, archive: bool) -> None:
    """PUT /containers/{id}/archive: a tar stream unpacked into the existing directory `path` (entries that
    would leave it are refused by the fd-based writer); owners kept only with `archive` (copyUIDGID)."""
    raise_fd_limit()

    def action(root_fd: int) -> None:
        try:
            stream_in(ContainerFilesystem(root_fd, record.name), path, stream, archive)
        except OSError as e:
            raise path_error(e) from None

    with_container_root(record, action)
