"""The container's filesystem: Docker's mount plan (pure) and applying it safely (in the container process).

`plan_mounts(spec)` decides the ordered list of mounts, exactly Docker's set.
The appliers below run in the container's own mount namespace, before
pivot_root, with the new root still a directory on the host. Every mount
target is opened with openat2(RESOLVE_IN_ROOT) relative to the new root and
checked (type, not a symlink where a kernel filesystem goes, not inside /proc
or /sys for binds) before anything is mounted on it through /proc/self/fd/N:
an image with a symlinked /proc, /dev or /dev/null cannot redirect a mount onto
the host (runc CVE-2019-19921, CVE-2021-30465, CVE-2025-31133, CVE-2025-52565),
and missing directories are created one component at a time inside the root
(CVE-2024-45310).
"""

from __future__ import annotations

import errno
import os
import stat

from pyctr.errors import RuntimeFailure
from pyctr.runtime.process.kernel import KERNEL, Kernel

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (pyctr-runtime's cold start)
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from pyctr.runtime.spec import ContainerSpec, Mount

_KERNEL_FS_OPTIONS = ["nosuid", "noexec", "nodev"]


class Device:
    """A device node created in the container's /dev (Docker's default set). (A plain class, not a dataclass:
    pyctr-runtime imports this module on every create, and dataclasses with it cost more than the mounts.)"""

    __slots__ = ("path", "major", "minor", "mode")

    def __init__(self, path: str, major: int, minor: int, mode: int = 0o666) -> None:
        self.path, self.major, self.minor, self.mode = path, major, minor, mode  # path: inside, e.g. /dev/null

    def __eq__(self, other: object) -> bool:
        return type(other) is Device and (self.path, self.major, self.minor, self.mode) == \
            (other.path, other.major, other.minor, other.mode)

    def __hash__(self) -> int:
        return hash((self.path, self.major, self.minor, self.mode))

    def __repr__(self) -> str:
        return f"Device({self.path!r}, {self.major}, {self.minor}, {self.mode:#o})"


DEFAULT_DEVICES: tuple[Device, ...] = (
    Device("/dev/null", 1, 3), Device("/dev/zero", 1, 5), Device("/dev/full", 1, 7),
    Device("/dev/random", 1, 8), Device("/dev/urandom", 1, 9), Device("/dev/tty", 5, 0),
)
DEFAULT_DEV_SYMLINKS: tuple[tuple[str, str], ...] = (
    ("/dev/fd", "/proc/self/fd"), ("/dev/stdin", "/proc/self/fd/0"), ("/dev/stdout", "/proc/self/fd/1"),
    ("/dev/stderr", "/proc/self/fd/2"), ("/dev/ptmx", "pts/ptmx"),
)


CGROUP_ROOT = "/sys/fs/cgroup"


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top + "/")


def _apply(root_fd: int, root: str, mount: Mount, kernel: Kernel = KERNEL,
           forbidden_root: str | None = None) -> None:
    try:
        apply_mount(root_fd, root, mount, kernel, forbidden_root)
    except OSError as e:
        raise RuntimeFailure(f"error mounting {mount.source} to rootfs at {mount.destination}: "
                             f"{e.strerror or e}") from None


def plan_mounts(spec: ContainerSpec) -> list[Mount]:
    """Docker's mounts in order: kernel filesystems, /etc files, then the user's volumes (shallowest first)."""
    from pathlib import Path

    from pyctr.runtime.spec import Mount

    ro = [] if spec.privileged else ["ro"]
    bundle = Path(spec.bundle_dir)
    mounts = [
        Mount("/proc", "proc", "proc", list(_KERNEL_FS_OPTIONS)),
        Mount("/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"]),
        Mount("/dev/pts", "devpts", "devpts",
              ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]),
        Mount("/sys", "sysfs", "sysfs", _KERNEL_FS_OPTIONS + ro),
        Mount("/sys/fs/cgroup", "cgroup", "cgroup", _KERNEL_FS_OPTIONS + ["relatime"] + ro),
        Mount("/dev/mqueue", "mqueue", "mqueue", list(_KERNEL_FS_OPTIONS)),
        *shm_mounts(spec),
    ]
    user_destinations = {m.destination for m in spec.mounts}
    for name in ("resolv.conf", "hostname", "hosts"):
        if f"/etc/{name}" not in user_destinations:
            mounts.append(Mount(f"/etc/{name}", "bind", str(bundle / name), ["rbind", "rprivate"]))
    mounts += sorted(spec.mounts, key=lambda m: len(Path(m.destination).parts))
    if spec.init:
        from pyctr.runtime.spec import INIT_BINARY, INIT_PATH

        mounts.append(Mount(INIT_PATH, "bind", INIT_BINARY, ["bind", "ro"]))
    return mounts


def shm_mounts(spec: ContainerSpec) -> list[Mount]:
    """/dev/shm by --ipc (p15-ns): none = no mount; a host dir (host's /dev/shm, a shareable container's tmpfs,
    the donor's for container:X) = a bind of it; else the container's own tmpfs of --shm-size."""
    from pyctr.runtime.kernel_flags import shm_mount_options
    from pyctr.runtime.spec import Mount

    if spec.ipc_mode == "none":
        return []
    if spec.shm_source:
        return [Mount("/dev/shm", "bind", spec.shm_source, ["rbind", "rprivate"])]
    return [Mount("/dev/shm", "tmpfs", "shm", shm_mount_options(spec.shm_size))]


# Option name -> (flag to set, flag to clear); anything else is filesystem data (mode=, size=...).
def _flag_table() -> dict[str, tuple[int, int]]:
    from pyctr.runtime import syscalls as s

    return {
        "ro": (s.MS_RDONLY, 0), "rw": (0, s.MS_RDONLY), "nosuid": (s.MS_NOSUID, 0), "suid": (0, s.MS_NOSUID),
        "nodev": (s.MS_NODEV, 0), "dev": (0, s.MS_NODEV), "noexec": (s.MS_NOEXEC, 0), "exec": (0, s.MS_NOEXEC),
        "sync": (s.MS_SYNCHRONOUS, 0), "strictatime": (s.MS_STRICTATIME, 0), "relatime": (s.MS_RELATIME, 0),
        "noatime": (s.MS_NOATIME, 0), "bind": (s.MS_BIND, 0), "rbind": (s.MS_BIND | s.MS_REC, 0),
        # the rest of runc's table (OCI configs from containerd and podman use them)
        "async": (0, s.MS_SYNCHRONOUS), "atime": (0, s.MS_NOATIME), "diratime": (0, s.MS_NODIRATIME),
        "nodiratime": (s.MS_NODIRATIME, 0), "dirsync": (s.MS_DIRSYNC, 0), "mand": (s.MS_MANDLOCK, 0),
        "nomand": (0, s.MS_MANDLOCK), "norelatime": (0, s.MS_RELATIME), "nostrictatime": (0, s.MS_STRICTATIME),
        "silent": (s.MS_SILENT, 0), "loud": (0, s.MS_SILENT), "nosymfollow": (s.MS_NOSYMFOLLOW, 0),
        "symfollow": (0, s.MS_NOSYMFOLLOW), "defaults": (0, 0),
    }


_PROPAGATION = {"private": "MS_PRIVATE", "rprivate": "MS_PRIVATE|MS_REC", "slave": "MS_SLAVE",
                "rslave": "MS_SLAVE|MS_REC", "shared": "MS_SHARED", "rshared": "MS_SHARED|MS_REC",
                "unbindable": "MS_UNBINDABLE", "runbindable": "MS_UNBINDABLE|MS_REC"}


def parse_options(options: list[str]) -> tuple[int, int, str]:
    """Split OCI mount options into (mount flags, propagation flags, data string)."""
    from pyctr.runtime import syscalls

    table = _flag_table()
    flags, propagation, data = 0, 0, []
    for opt in options:
        if opt in table:
            set_bits, clear_bits = table[opt]
            flags = (flags | set_bits) & ~clear_bits
        elif opt in _PROPAGATION:
            for name in _PROPAGATION[opt].split("|"):
                propagation |= getattr(syscalls, name)
        else:
            data.append(opt)
    return flags, propagation, ",".join(data)


# ---------------------------------------------------------------- doing: runs in the container process


def fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def _relative(path: str) -> str:
    rel = os.path.normpath("/" + path).lstrip("/")
    return rel or "."


OPENAT2_RETRIES = 16  # openat2 says EAGAIN when a rename raced with ".." resolution: just retry


def resolve_in_root(root_fd: int, path: str, *, follow: bool = True, flags: int = 0) -> int:
    """An fd (O_PATH plus `flags`) for `path` with `root_fd` as "/": symlinks and `..` cannot leave it.

    The one resolver of paths inside a root (rootfs mounts, cp, build staging): the kernel walks the path
    with RESOLVE_IN_ROOT, so absolute symlinks and `..` are clamped to the root and magic links
    (/proc/self/fd/N) are refused. `follow=False` refuses every symlink on the way (RESOLVE_NO_SYMLINKS);
    `flags=os.O_NOFOLLOW` opens only a final symlink itself. openat2 answers EAGAIN when a concurrent rename
    could have let `..` escape; retrying is the documented answer, bounded so a hostile loop cannot spin us.
    """
    from pyctr.runtime import syscalls as s

    resolve = s.RESOLVE_IN_ROOT | s.RESOLVE_NO_MAGICLINKS | (0 if follow else s.RESOLVE_NO_SYMLINKS)
    relative = _relative(path)
    for _ in range(OPENAT2_RETRIES):
        try:
            return s.openat2(root_fd, relative, s.O_PATH | flags, resolve)
        except BlockingIOError:
            continue
    raise RuntimeFailure(f"cannot resolve {path}: it keeps changing")


def host_path_in_root(root: Path, path: str, *, _hops: int = 0) -> Path:
    """The host path of `path` inside the directory `root`, resolved by `resolve_in_root` as if `root` were "/".

    Unlike the fd, a host path may name something missing (a destination to create): the existing prefix
    is resolved by the kernel and the missing rest appended; a dangling symlink is followed (inside the
    root) to the path it names. Raises OSError(ELOOP) past 40 links, as the kernel does.
    """
    if _hops > 40:
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
    relative = _relative(path)
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            with opened(resolve_in_root(root_fd, relative)) as fd:
                return _host_path(root, root_fd, fd)
        except FileNotFoundError:
            pass
        if relative == ".":
            raise
        parent, name = os.path.split(relative)
        try:
            link = resolve_in_root(root_fd, relative, flags=os.O_NOFOLLOW)
        except FileNotFoundError:  # `name` or a directory above it is missing
            return host_path_in_root(root, parent or "/", _hops=_hops) / name
        with opened(link):
            target = os.readlink("", dir_fd=link) if stat.S_ISLNK(os.fstat(link).st_mode) else None
        if target is None:  # it appeared meanwhile
            return host_path_in_root(root, relative, _hops=_hops + 1)
        return host_path_in_root(root, os.path.join("/" + parent, target), _hops=_hops + 1)
    finally:
        os.close(root_fd)


def _host_path(root: Path, root_fd: int, fd: int) -> Path:
    """`root` joined with where `fd` is below `root_fd` (the kernel's names, `root` as the caller spelled it)."""
    below = os.path.relpath(os.readlink(fd_path(fd)), os.readlink(fd_path(root_fd)))
    return root if below == "." else root / below


class opened:
    """`with opened(fd) as fd:` closes the fd on the way out. (A class: contextlib, with collections and
    functools behind it, is an import pyctr-runtime's cold start does without.)"""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __enter__(self) -> int:
        return self.fd

    def __exit__(self, *_exc: object) -> None:
        os.close(self.fd)


def ensure_in_root(root_fd: int, path: str, kind: str, *, follow: bool = True, _depth: int = 0) -> int:
    """Open `path` inside the root, creating missing components (directories; a file last if kind == "file").

    A dangling symlink on the way (with `follow`) is followed inside the root and its target created there,
    as Docker's MkdirAll-in-root does; never outside it.
    """
    try:
        return resolve_in_root(root_fd, path, follow=follow)
    except FileNotFoundError:
        if _depth > 40:
            raise OSError(errno.ELOOP, "too many levels of symbolic links", path) from None
    parts = [part for part in _relative(path).split("/") if part not in ("", ".")]  # PurePosixPath(...).parts
    for i, name in enumerate(parts):
        prefix = os.path.join(*parts[: i + 1])
        try:
            os.close(resolve_in_root(root_fd, prefix, follow=follow))
            continue
        except FileNotFoundError:
            pass
        parent = os.path.join(*parts[:i]) if i else "."
        with opened(resolve_in_root(root_fd, parent, follow=follow)) as parent_fd:
            if follow and _is_symlink(name, parent_fd):
                target = os.readlink(name, dir_fd=parent_fd)
                base = "/" if target.startswith("/") else "/" + parent
                redirected = os.path.normpath(os.path.join(base, target, *parts[i + 1:]))
                return ensure_in_root(root_fd, redirected, kind, follow=follow, _depth=_depth + 1)
            _create(name, parent_fd, kind if i == len(parts) - 1 else "dir")
    return resolve_in_root(root_fd, path, follow=follow)


def _is_symlink(name: str, parent_fd: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=parent_fd, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return False


def _create(name: str, parent_fd: int, kind: str) -> None:
    try:
        if kind == "file":
            os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                             dir_fd=parent_fd))
        else:
            os.mkdir(name, 0o755, dir_fd=parent_fd)
    except FileExistsError:
        pass


def _check_target(fd: int, destination: str, want_dir: bool, root: str) -> None:
    st = os.fstat(fd)
    if want_dir and not stat.S_ISDIR(st.st_mode):
        raise RuntimeFailure(f"mount destination {destination} is not a directory")
    if not want_dir and stat.S_ISDIR(st.st_mode):
        raise RuntimeFailure(f"mount destination {destination} is a directory, the source is a file")
    real = os.readlink(fd_path(fd))
    if real != root and not real.startswith(root.rstrip("/") + "/"):
        raise RuntimeFailure(f"mount destination {destination} resolves outside the container root")


# Files runc lets a bind cover inside /proc (lxcfs-style virtualisation); everything else in /proc or /sys is refused.
_PROC_BIND_ALLOWED = frozenset({
    "/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps", "/proc/uptime",
    "/proc/loadavg", "/proc/slabinfo",
})


def forbidden_bind_destination(path: str) -> bool:
    """A bind onto the container's /proc or /sys could hide or redirect kernel interfaces (CVE-2023-27561)."""
    path = os.path.normpath("/" + path.lstrip("/"))
    top = path.split("/")[1]
    return top in ("proc", "sys") and path not in _PROC_BIND_ALLOWED


def _target(root_fd: int, root: str, mount: Mount, want_dir: bool) -> int:
    """Resolve a mount target; kernel filesystems never follow symlinks, binds follow them only inside the root."""
    is_bind = mount.type == "bind"
    if is_bind and forbidden_bind_destination(mount.destination):
        raise RuntimeFailure(f"mount destination {mount.destination} is inside /proc or /sys: not allowed")
    try:
        fd = ensure_in_root(root_fd, mount.destination, "dir" if want_dir else "file", follow=is_bind)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise RuntimeFailure(f"mount destination {mount.destination} is a symlink: refusing to mount "
                                 f"{mount.type} there") from None
        raise RuntimeFailure(f"mount destination {mount.destination}: {e.strerror}") from None
    try:
        _check_target(fd, mount.destination, want_dir, root)
        if is_bind:
            real = os.readlink(fd_path(fd))[len(root.rstrip("/")):] or "/"
            if forbidden_bind_destination(real):
                raise RuntimeFailure(f"mount destination {mount.destination} resolves to {real}, inside /proc or "
                                     "/sys: not allowed")
    except BaseException:
        os.close(fd)
        raise
    return fd


def state_root_of(spec: ContainerSpec) -> str:
    """PYCTR_ROOT as the kernel names it: the bundle is <root>/containers/<id>."""
    return os.path.realpath(os.path.dirname(os.path.dirname(os.path.normpath(spec.bundle_dir))))


def leads_into(fd: int, top: str) -> bool:
    """Whether the object opened as `fd` is `top` or below it: by the kernel's path of it, and by identity,
    walking `..` up from it until the root (device and inode compared with `top`'s), so a second mount of
    `top` elsewhere (a bind alias of the store) is caught as well as a symlink is."""
    real = os.readlink(fd_path(fd))
    if real == top or real.startswith(top.rstrip("/") + "/"):
        return True
    try:
        wanted = os.stat(top)
    except OSError:
        return False
    wanted_key = (wanted.st_dev, wanted.st_ino)
    if stat.S_ISDIR(os.fstat(fd).st_mode):
        current = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
    else:
        current = os.open(os.path.dirname(real) or "/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for _ in range(4096):
            here = os.fstat(current)
            if (here.st_dev, here.st_ino) == wanted_key:
                return True
            parent = os.open("..", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=current)
            above = os.fstat(parent)
            os.close(current)
            current = parent
            if (above.st_dev, above.st_ino) == (here.st_dev, here.st_ino):
                return False  # "/" is its own parent
        return False
    finally:
        os.close(current)


def _check_source(src: int, mount: Mount, forbidden_root: str | None) -> None:
    """A user's bind source, as opened (symlinks followed, as Docker follows them), must not be pyctr's state
    (volumes.check_bind_source says why): checked on the fd that is mounted, so no rename or symlink swap
    between the create-time check and this mount can redirect it there."""
    if mount.user_source and forbidden_root and leads_into(src, forbidden_root):
        raise RuntimeFailure(f"bind source {mount.source} resolves into pyctr's state directory {forbidden_root}: "
                             "refused")


def apply_mount(root_fd: int, root: str, mount: Mount, kernel: Kernel = KERNEL,
                forbidden_root: str | None = None) -> None:
    """Mount one planned entry onto its checked target (a user's source never from `forbidden_root`)."""
    from pyctr.runtime import syscalls as s

    flags, propagation, data = parse_options(mount.options)
    if mount.type == "cgroup":
        _mount_cgroups(root_fd, root, mount, flags, kernel)
        return
    if mount.type == "bind":
        with opened(os.open(mount.source, s.O_PATH | os.O_CLOEXEC)) as src:
            _check_source(src, mount, forbidden_root)
            _bind(root_fd, root, mount, src, flags, kernel)
    else:
        with opened(_target(root_fd, root, mount, True)) as dst:
            kernel.mount(mount.source, fd_path(dst), mount.type, flags, data or None)
    if propagation:
        with opened(resolve_in_root(root_fd, mount.destination)) as dst:
            kernel.mount(None, fd_path(dst), None, propagation)


def _bind(root_fd: int, root: str, mount: Mount, src: int, flags: int, kernel: Kernel = KERNEL) -> None:
    from pyctr.runtime import syscalls as s

    source_is_dir = stat.S_ISDIR(os.fstat(src).st_mode)
    with opened(_target(root_fd, root, mount, source_is_dir)) as dst:
        kernel.mount(fd_path(src), fd_path(dst), None, s.MS_BIND | (flags & s.MS_REC))
    extra = flags & ~(s.MS_BIND | s.MS_REC)
    if extra:
        with opened(resolve_in_root(root_fd, mount.destination)) as dst:
            kernel.mount(None, fd_path(dst), None, s.MS_REMOUNT | s.MS_BIND | extra)


def _host_cgroup_mounts(mountinfo: str) -> list[tuple[str, str, str]]:
    """(name under /sys/fs/cgroup, fstype, superblock options) of the host's cgroup hierarchies."""
    from pyctr.runtime.mountinfo import mount_entries

    found = []
    for mount_point, fstype, superopts in mount_entries(mountinfo):
        if fstype not in ("cgroup", "cgroup2"):
            continue
        opts = ",".join(o for o in superopts.split(",") if o not in ("rw", "ro"))
        found.append((os.path.basename(mount_point), fstype, opts))
    return found


def _mount_cgroups(root_fd: int, root: str, mount: Mount, flags: int, kernel: Kernel = KERNEL) -> None:
    """/sys/fs/cgroup: v2 = the cgroup2 fs (the container's cgroup namespace is its root); v1/hybrid = runc's
    mountCgroupV1: a read-write tmpfs holding each v1 hierarchy (read-only unless --privileged), no cgroup2
    `unified` mount, and a symlink per controller of a co-mounted hierarchy (cpu -> cpu,cpuacct)."""
    from pyctr.runtime import syscalls as s

    with open("/proc/self/mountinfo") as f:
        hierarchies = _host_cgroup_mounts(f.read())
    if any(name == "cgroup" and fstype == "cgroup2" for name, fstype, _ in hierarchies):
        with opened(_target(root_fd, root, mount, True)) as dst:
            kernel.mount("cgroup", fd_path(dst), "cgroup2", flags)
        return
    base = flags & ~s.MS_RDONLY
    kind = type(mount)  # the caller's mount class (runtime/spec's, or pyctr-runtime's own): both take these four
    tmpfs = kind(mount.destination, "tmpfs", "tmpfs", [])
    with opened(_target(root_fd, root, tmpfs, True)) as dst:
        kernel.mount("tmpfs", fd_path(dst), "tmpfs", base, "mode=755")
    v1 = cgroup_v1_hierarchies(hierarchies)
    for name, opts in v1:
        sub = kind(f"{mount.destination}/{name}", "cgroup", "cgroup", [])
        with opened(_target(root_fd, root, sub, True)) as dst:
            kernel.mount("cgroup", fd_path(dst), "cgroup", flags, opts or None)
    with opened(resolve_in_root(root_fd, mount.destination, follow=False)) as top:
        for link, target in comounted_links([name for name, _ in v1]):
            try:
                os.symlink(target, link, dir_fd=top)
            except FileExistsError:
                pass


def cgroup_v1_hierarchies(hierarchies: list[tuple[str, str, str]]) -> list[tuple[str, str]]:
    """(name, options) of the v1 hierarchies runc mounts: fstype cgroup only (GetCgroupMounts), so a hybrid
    host's cgroup2 `unified` mount is not repeated inside the container."""
    return [(name, opts) for name, fstype, opts in hierarchies if fstype == "cgroup"]


def comounted_links(names: list[str]) -> list[tuple[str, str]]:
    """(link, target) for each controller of a co-mounted hierarchy: "cpu,cpuacct" gives cpu and cpuacct."""
    return [(part, name) for name in names if "," in name for part in name.split(",")]


def create_devices(root_fd: int, console_fd: int | None = None, kernel: Kernel = KERNEL) -> None:
    """Docker's /dev: the six character devices, the /proc/self/fd links, and /dev/console for -t."""
    from pyctr.runtime import syscalls as s

    with opened(resolve_in_root(root_fd, "/dev", follow=False)) as dev:
        for device in DEFAULT_DEVICES:
            name = os.path.basename(device.path)
            kernel.mknod(name, stat.S_IFCHR | device.mode, os.makedev(device.major, device.minor), dev)
            os.chmod(name, device.mode, dir_fd=dev)
        for link, target in DEFAULT_DEV_SYMLINKS:
            os.symlink(target, os.path.basename(link), dir_fd=dev)
    if console_fd is not None:
        # The fd was opened in M's mount namespace, which cannot be a bind source here: reopen it by name.
        with opened(os.open(os.ttyname(console_fd), s.O_PATH | os.O_CLOEXEC)) as src, \
                opened(ensure_in_root(root_fd, "/dev/console", "file", follow=False)) as dst:
            kernel.mount(fd_path(src), fd_path(dst), None, s.MS_BIND)


def create_user_devices(root_fd: int, nodes: list[dict], kernel: Kernel = KERNEL) -> None:
    """--device (p15-ns): each host device as a node of the same type, numbers, mode and owner (runc's
    createDeviceNode); a node already there (say, --device /dev/zero) is replaced."""
    for node in nodes:
        directory, name = os.path.split(os.path.normpath(node["path"]))
        if not name or not directory.startswith("/"):
            raise RuntimeFailure(f"invalid device path {node['path']!r}")
        try:
            parent = ensure_in_root(root_fd, directory, "dir", follow=False)
        except OSError as e:
            raise device_node_error("mkdir", directory, e) from None
        with opened(parent):
            _replace_device_node(parent, name, node, kernel)


def _replace_device_node(parent: int, name: str, node: dict, kernel: Kernel) -> None:
    kind = stat.S_IFCHR if node["type"] == "c" else stat.S_IFBLK
    try:
        try:  # no contextlib: pyctr-runtime's create imports this module and keeps its import graph small
            os.unlink(name, dir_fd=parent)
        except FileNotFoundError:
            pass
        kernel.mknod(name, kind | node["mode"], os.makedev(node["major"], node["minor"]), parent)
        os.chown(name, node["uid"], node["gid"], dir_fd=parent, follow_symlinks=False)
        os.chmod(name, node["mode"], dir_fd=parent)
    except OSError as e:
        raise device_node_error("mknod", node["path"], e) from None


def device_node_error(operation: str, path: str, error: OSError) -> RuntimeFailure:
    """runc's prepareRootfs wording for a --device node it cannot make, e.g. a target under /proc, where procfs
    answers ENOENT: `error creating device nodes: mknod /proc/x: no such file or directory` (the path as the
    container sees it, not the host's merged directory)."""
    reason = (error.strerror or str(error)).lower()
    return RuntimeFailure(f"error creating device nodes: {operation} {path}: {reason}")


def own_cgroup_sources(mountinfo: str, proc_cgroup: str) -> list[tuple[str, str]]:
    """--cgroupns host: (name under /sys/fs/cgroup, host directory) pairs = this process's own cgroup in each
    hierarchy, as runc binds them without a cgroup namespace; ("", dir) for a pure v2 host."""
    own: dict[frozenset, str] = {}
    for line in proc_cgroup.splitlines():
        _id, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        own[frozenset(c for c in controllers.split(",") if c)] = path
    from pyctr.runtime.mountinfo import NOT_CONTROLLERS, mount_entries

    sources = []
    for mount_point, fstype, superopts in mount_entries(mountinfo):
        keys = frozenset(o for o in superopts.split(",")
                         if o not in NOT_CONTROLLERS and ("=" not in o or o.startswith("name=")))
        if fstype == "cgroup2" and frozenset() in own and mount_point == CGROUP_ROOT:
            return [("", mount_point + own[frozenset()].rstrip("/"))]
        if fstype == "cgroup" and keys in own:
            sources.append((os.path.basename(mount_point), mount_point + own[keys].rstrip("/")))
    return sources


def bind_own_cgroups(root_fd: int, root: str, mount: Mount, kernel: Kernel = KERNEL) -> None:
    """/sys/fs/cgroup without a cgroup namespace: a tmpfs holding a bind of the container's own directory of
    each v1 hierarchy (read-only unless --privileged), or that directory of the v2 tree at /sys/fs/cgroup."""
    from pyctr.runtime import syscalls as s

    flags, _propagation, _data = parse_options(mount.options)
    extra = s.MS_NOSUID | s.MS_NOEXEC | s.MS_NODEV | (flags & s.MS_RDONLY)
    sources = own_cgroup_sources(_read_text("/proc/self/mountinfo"), _read_text("/proc/self/cgroup"))
    if sources[:1] and sources[0][0] == "":
        _bind_kernel_dir(root_fd, root, mount.destination, sources[0][1], extra, kernel)
        return
    with opened(_target(root_fd, root, type(mount)(mount.destination, "tmpfs", "tmpfs"), True)) as dst:
        kernel.mount("tmpfs", fd_path(dst), "tmpfs", s.MS_NOSUID | s.MS_NOEXEC | s.MS_NODEV, "mode=755")
    for name, source in sources:
        _bind_kernel_dir(root_fd, root, f"{mount.destination}/{name}", source, extra, kernel)
    with opened(resolve_in_root(root_fd, mount.destination, follow=False)) as top:
        for link, target in comounted_links([name for name, _ in sources]):
            try:
                os.symlink(target, link, dir_fd=top)
            except FileExistsError:
                pass


def _read_text(path: str) -> str:
    """A file's text without pathlib (only a type here: see TYPE_CHECKING above; Path was a NameError)."""
    with open(path) as f:
        return f.read()


def _bind_kernel_dir(root_fd: int, root: str, destination: str, source: str, flags: int, kernel: Kernel) -> None:
    """A host cgroup directory bound under /sys/fs/cgroup: the target is made and checked as a kernel
    filesystem's is (never through a symlink), which user binds may not do there."""
    from pyctr.runtime import syscalls as s
    from pyctr.runtime.spec import Mount

    with opened(os.open(source, s.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)) as src, \
            opened(_target(root_fd, root, Mount(destination, "cgroup", "cgroup"), True)) as dst:
        kernel.mount(fd_path(src), fd_path(dst), None, s.MS_BIND)
    with opened(resolve_in_root(root_fd, destination, follow=False)) as mounted:  # the bind, not the dir below
        kernel.mount(None, fd_path(mounted), None, s.MS_REMOUNT | s.MS_BIND | flags)


def bind_console(slave_fd: int, kernel: Kernel = KERNEL) -> None:
    """/dev/console = the container's own pty slave (runc's mountConsole); after pivot_root, so the slave (on
    the container's devpts) is a bind source in this mount namespace and "/" is the container's root."""
    from pyctr.runtime import syscalls as s

    with opened(os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)) as root_fd, \
            opened(ensure_in_root(root_fd, "/dev/console", "file", follow=False)) as dst:
        kernel.mount(fd_path(slave_fd), fd_path(dst), None, s.MS_BIND)


def _dev_null(root_fd: int) -> int:
    """The container's /dev/null, verified to be the real 1:3 device, never a symlink (CVE-2025-31133)."""
    fd = resolve_in_root(root_fd, "/dev/null", follow=False)
    st = os.fstat(fd)
    if not stat.S_ISCHR(st.st_mode) or (os.major(st.st_rdev), os.minor(st.st_rdev)) != (1, 3):
        os.close(fd)
        raise RuntimeFailure("/dev/null in the container is not the null device: refusing to mask paths with it")
    return fd


def _open_existing(root_fd: int, path: str) -> int | None:
    try:
        return resolve_in_root(root_fd, path, follow=False)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise RuntimeFailure(f"cannot open {path} in the container: {e.strerror}") from None


def mask_paths(root_fd: int, paths: list[str], kernel: Kernel = KERNEL) -> None:
    """Hide files behind /dev/null and directories behind an empty read-only tmpfs."""
    from pyctr.runtime import syscalls as s

    with opened(_dev_null(root_fd)) as null:
        for path in paths:
            fd = _open_existing(root_fd, path)
            if fd is None:
                continue
            with opened(fd):
                if stat.S_ISDIR(os.fstat(fd).st_mode):
                    kernel.mount("tmpfs", fd_path(fd), "tmpfs", s.MS_RDONLY, None)
                else:
                    kernel.mount(fd_path(null), fd_path(fd), None, s.MS_BIND)


def readonly_paths(root_fd: int, paths: list[str], kernel: Kernel = KERNEL) -> None:
    """Bind each path onto itself, then remount that bind read-only."""
    from pyctr.runtime import syscalls as s

    for path in paths:
        fd = _open_existing(root_fd, path)
        if fd is None:
            continue
        with opened(fd):
            kernel.mount(fd_path(fd), fd_path(fd), None, s.MS_BIND | s.MS_REC)
        with opened(resolve_in_root(root_fd, path, follow=False)) as again:
            kernel.mount(None, fd_path(again), None,
                    s.MS_REMOUNT | s.MS_BIND | s.MS_RDONLY | s.MS_NOSUID | s.MS_NODEV | s.MS_NOEXEC)


def overlay_options(lowerdirs: list[str], upperdir: str | None, workdir: str | None) -> str:
    """overlayfs wants the top layer first; the image store lists the base first. No upper: read-only."""
    lower = ":".join(reversed(lowerdirs))
    if upperdir is None:
        return f"lowerdir={lower}"
    return f"lowerdir={lower},upperdir={upperdir},workdir={workdir}"


def mount_overlay(lowerdirs: list[str], upperdir: str | None, workdir: str | None, merged: str,
                  kernel: Kernel = KERNEL) -> None:
    """Mount layers (base first) plus a writable layer at `merged`; without `upperdir`, read-only layers only.

    The one overlay mount (containers, cp into a stopped container, build steps). Long layer lists exceed
    the one-page mount data limit, so when needed the lower dirs are given relative to their common parent,
    with the working directory there during the mount (and restored after).
    """
    from pyctr.runtime import syscalls as s

    if not lowerdirs:
        raise RuntimeFailure("the image has no layers")
    flags = 0 if upperdir is not None else s.MS_RDONLY
    data = overlay_options(lowerdirs, upperdir, workdir)
    if len(data) <= 4000:
        kernel.mount("overlay", merged, "overlay", flags, data)
        return
    common = os.path.commonpath(lowerdirs)
    previous = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.chdir(common)
        data = overlay_options([os.path.relpath(d, common) for d in lowerdirs], upperdir, workdir)
        kernel.mount("overlay", merged, "overlay", flags, data)
    finally:
        os.fchdir(previous)
        os.close(previous)


def pivot_into(root: str, kernel: Kernel = KERNEL) -> None:
    """pivot_root into `root` and detach the old root (runc's pivot_root(".", ".") trick)."""
    from pyctr.runtime import syscalls as s

    os.chdir(root)
    kernel.pivot_root(".", ".")
    kernel.umount2(".", s.MNT_DETACH)
    os.chdir("/")


def remount_root_readonly(kernel: Kernel = KERNEL) -> None:
    from pyctr.runtime import syscalls as s

    kernel.mount(None, "/", None, s.MS_REMOUNT | s.MS_BIND | s.MS_RDONLY)


def build_rootfs(spec: ContainerSpec, console_fd: int | None = None,
                 in_cgroup: Callable[[], None] | None = None, kernel: Kernel = KERNEL) -> None:
    """Everything between unshare(CLONE_NEWNS) and pivot_root, in the container process.

    `in_cgroup` waits until the process is in its cgroup and enters its cgroup namespace: it is called
    once every mount outside /sys/fs/cgroup is made (so they overlap the parent's cgroup writes), before
    the cgroup filesystems, which must show the container's own cgroup as their root, and the devices.
    A --read-only root is remounted read-only later by init, after it created the working directory.
    """
    from pyctr.runtime import syscalls as s

    kernel.mount(None, "/", None, s.MS_SLAVE | s.MS_REC)
    rootfs = spec.rootfs
    mount_overlay(rootfs.lowerdirs, rootfs.upperdir, rootfs.workdir, rootfs.merged, kernel)
    root = os.path.realpath(rootfs.merged)
    plan = plan_mounts(spec)
    late = [m for m in plan if _under(m.destination, CGROUP_ROOT)]  # nothing else is mounted below them
    forbidden_root = state_root_of(spec)
    with opened(os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)) as root_fd:
        for mount in plan:
            if not _under(mount.destination, CGROUP_ROOT):
                _apply(root_fd, root, mount, kernel, forbidden_root)
        if in_cgroup is not None:
            in_cgroup()
        for mount in late:
            if mount.type == "cgroup" and "cgroup" not in spec.namespaces:
                bind_own_cgroups(root_fd, root, mount, kernel)  # --cgroupns host (p15-ns)
            else:
                _apply(root_fd, root, mount, kernel)
        create_devices(root_fd, console_fd, kernel)
        create_user_devices(root_fd, spec.device_nodes, kernel)
        readonly_paths(root_fd, spec.readonly_paths, kernel)
        mask_paths(root_fd, spec.masked_paths, kernel)
    pivot_into(root, kernel)
