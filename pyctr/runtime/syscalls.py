"""The raw Linux system calls the runtime needs, via ctypes, in one place.

Python's os module lacks mount(2), pivot_root(2), unshare(2), setns(2),
sethostname(2), openat2(2) and close_range(2). Each wrapper raises OSError
with errno and the target it acted on, so a failing container setup says
which mount failed and why, instead of a bare "Operation not permitted".
"""

from __future__ import annotations

import ctypes
import os

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (pyctr-runtime's cold start)
if TYPE_CHECKING:
    from collections.abc import Callable

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

# Namespaces (linux/sched.h).
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# mount(2) flags (linux/mount.h).
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24

MNT_DETACH = 2

# openat2(2) (linux/openat2.h).
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

O_PATH = getattr(os, "O_PATH", 0o10000000)

# prctl(2) options python-prctl does not know.
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

# Syscall numbers that glibc does not wrap (or wraps only in recent versions).
_SYSCALLS = {
    "x86_64": {"pivot_root": 155, "setns": 308, "close_range": 436, "openat2": 437, "execveat": 322},
    "aarch64": {"pivot_root": 41, "setns": 268, "close_range": 436, "openat2": 437, "execveat": 281},
}
_NR = _SYSCALLS.get(os.uname().machine, _SYSCALLS["x86_64"])


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def _b(value: str | bytes | None) -> bytes | None:
    if value is None:
        return None
    return value if isinstance(value, bytes) else os.fsencode(value)


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    """mount(2): raise OSError naming the target on failure."""
    result = _libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data))
    _check(result, f"mount {fstype or 'bind'} on {target}")


def umount2(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(_b(target), ctypes.c_int(flags)), f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    result = _libc.syscall(ctypes.c_long(_NR["pivot_root"]), _b(new_root), _b(put_old))
    _check(result, f"pivot_root {new_root}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), f"unshare {flags:#x}")


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), f"setns {nstype:#x}")


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, ctypes.c_size_t(len(raw))), f"sethostname {name}")


def close_range(first: int, last: int = 0xFFFFFFFF, flags: int = 0) -> None:
    """Close every fd in [first, last]; falls back to os.closerange on old kernels."""
    if first > last:
        return
    result = _libc.syscall(ctypes.c_long(_NR["close_range"]), ctypes.c_uint(first), ctypes.c_uint(last),
                           ctypes.c_uint(flags))
    if result < 0:
        os.closerange(first, min(last, os.sysconf("SC_OPEN_MAX")) + 1)


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """openat2(2): open `path` relative to `dirfd` with RESOLVE_* scoping (kernel >= 5.6)."""
    how = _OpenHow(flags=flags | os.O_CLOEXEC, mode=mode, resolve=resolve)
    result = _libc.syscall(ctypes.c_long(_NR["openat2"]), ctypes.c_int(dirfd), _b(path),
                           ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return result


AT_EMPTY_PATH = 0x1000


def execveat_fd(fd: int, argv: list[str], env: dict[str, str]) -> None:
    """execveat(fd, "", argv, envp, AT_EMPTY_PATH): exec the file open at `fd`; returns only by raising OSError.

    Not os.execve(fd) (glibc's fexecve): when execveat fails with ENOSYS (a seccomp profile may say so), glibc
    retries by path, /proc/self/fd/N, and inside a container that path is the container's to forge."""
    encoded = [os.fsencode(arg) for arg in argv]
    environ = [os.fsencode(key) + b"=" + os.fsencode(value) for key, value in env.items()]
    if any(b"\0" in item for item in encoded + environ):
        raise ValueError("embedded null byte")
    c_argv = (ctypes.c_char_p * (len(encoded) + 1))(*encoded, None)
    c_env = (ctypes.c_char_p * (len(environ) + 1))(*environ, None)
    _libc.syscall(ctypes.c_long(_NR["execveat"]), ctypes.c_int(fd), b"", c_argv, c_env, ctypes.c_int(AT_EMPTY_PATH))
    err = ctypes.get_errno()
    raise OSError(err, os.strerror(err))


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """prctl(2) for the few options python-prctl lacks (ambient caps, pdeathsig)."""
    args = [ctypes.c_ulong(a) for a in (arg2, arg3, arg4, arg5)]
    return _check(_libc.prctl(ctypes.c_int(option), *args), f"prctl {option}")


def set_parent_death_signal(signum: int) -> None:
    prctl(PR_SET_PDEATHSIG, signum)


def clear_ambient_capabilities() -> None:
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)


SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
AF_INET = 2
SOCK_DGRAM = 2
SOCK_CLOEXEC = 0o2000000


def bring_loopback_up() -> None:
    """`ip link set lo up` in the current network namespace, by ioctl: a new netns starts with lo down.

    The socket comes from libc: importing Python's socket module here would cost every container start
    several milliseconds between fork and exec."""
    import fcntl
    import struct

    fd = _check(_libc.socket(ctypes.c_int(AF_INET), ctypes.c_int(SOCK_DGRAM | SOCK_CLOEXEC), ctypes.c_int(0)),
                "socket")
    try:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(fd, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(fd, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))
    finally:
        os.close(fd)


PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def seccomp_set_filter(program: bytes) -> None:
    """Install a classic BPF seccomp program (struct sock_filter[], 8 bytes each) on this thread.

    Needs no_new_privs or CAP_SYS_ADMIN: the container process installs it while still root.
    """
    if not program or len(program) % 8:
        raise ValueError("seccomp program must be a non-empty array of 8-byte BPF instructions")
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    result = _libc.prctl(ctypes.c_int(PR_SET_SECCOMP), ctypes.c_ulong(SECCOMP_MODE_FILTER),
                         ctypes.c_void_p(ctypes.addressof(fprog)), ctypes.c_ulong(0), ctypes.c_ulong(0))
    _check(result, "seccomp filter")


def filesystem_type(fd: int) -> int:
    """fstatfs(2)'s f_type (the filesystem's magic number, e.g. 0x1cd1 for devpts): os.fstatvfs lacks it."""
    buffer = ctypes.create_string_buffer(256)  # struct statfs is 120 bytes on 64-bit Linux; f_type comes first
    _check(_libc.fstatfs(ctypes.c_int(fd), buffer), "fstatfs")
    return ctypes.c_long.from_buffer(buffer).value


MADV_POPULATE_WRITE = 23  # Linux >= 5.14


POPULATE_CHUNK = 1 << 20  # populate_private_memory asks `stop` between chunks this size


def populate_private_memory(stop: Callable[[], bool] | None = None) -> int:
    """Copy now every private writable page a fork shares with its parent; returns the bytes populated.

    A forked worker otherwise copies each page the first time it writes to it (Python writes to every object
    it touches: reference counts), thousands of page faults spread over the command. A spare worker calls
    this while it waits for a command, so the command runs on pages of its own. Older kernels: a no-op.

    `stop` is asked between chunks of POPULATE_CHUNK bytes: once it says a command is waiting, the rest is
    left to page faults. Why: copying all of a warm worker's ~45 MB takes 20 ms of CPU and 30-50 ms here;
    a command arriving meanwhile (the next of a script's back-to-back commands) waited that long, which cost
    more than the faults it saves."""
    done = 0
    with open("/proc/self/maps") as maps:
        regions = [line.split() for line in maps]
    for fields in regions:
        perms, name = fields[1], fields[5] if len(fields) > 5 else ""
        if not perms.startswith("rw") or perms[3] != "p" or name.startswith("[s") or name.startswith("[v"):
            continue
        start, end = (int(x, 16) for x in fields[0].split("-"))
        for chunk in range(start, end, POPULATE_CHUNK):
            if stop is not None and stop():
                return done
            size = min(POPULATE_CHUNK, end - chunk)
            if _libc.madvise(ctypes.c_void_p(chunk), ctypes.c_size_t(size), MADV_POPULATE_WRITE) != 0:
                break  # an old kernel (EINVAL) or a region that cannot be populated: the next one
            done += size
    return done
