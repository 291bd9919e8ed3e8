"""Seccomp: Docker's default policy, Docker-format profiles, and a cached BPF compiler.

Deciding is separate from doing: `default_profile()` is data in Docker's profile format (so
`--security-opt seccomp=<file>` takes the same shape), `plan_rules(profile, caps, arch)` resolves
its conditions (capabilities, architectures, kernel version) into a flat rule list, and
`compile_bpf()` turns that into a classic BPF program with libseccomp (pyseccomp). The program is
cached under PYCTR_ROOT/seccomp keyed by its inputs, so the container start path only reads a
file and hands it to the kernel (`syscalls.seccomp_set_filter`): no libseccomp import per run.

Syscalls the installed libseccomp does not know are skipped, not fatal: a profile written for a
newer kernel must still start containers on an older one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from pyctr.errors import UsageError

ERRNO_EPERM = 1
ERRNO_ENOSYS = 38

# Docker 20.10.24's default profile (moby profiles/seccomp/default.json at that tag, the Docker Debian 12
# ships), as data. Differences from newer moby (23+), deliberately not taken: they allow name_to_handle_at,
# pkey_*, process_vm_readv/writev (kernel >= 4.8) and newer syscalls unconditionally, refuse socket(AF_ALG),
# socket(AF_VSOCK) and io_uring_*, and add CAP_BPF/CAP_PERFMON/riscv64 rules.
#
# The syscalls Docker's default profile allows whatever the container's capabilities are.
_ALLOWED = """
accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown chown32 clock_adjtime
clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64 clock_nanosleep
clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2 dup3 epoll_create
epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2
execve execveat exit exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir
fchmod fchmodat fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr flock fork
fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 futex
futex_time64 futex_waitv futimesat getcpu getcwd getdents getdents64 getegid getegid32 geteuid geteuid32
getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp getpid getppid getpriority
getrandom getresgid getresgid32 getresuid getresuid32 getrlimit get_robust_list getrusage getsid
getsockname getsockopt get_thread_area gettid gettimeofday getuid getuid32 getxattr inotify_add_watch
inotify_init inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy io_getevents io_pgetevents
io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit io_uring_enter io_uring_register
io_uring_setup ipc kill landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown lchown32
lgetxattr link linkat listen listxattr llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64
madvise membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall
mmap mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend
mq_timedsend_time64 mq_unlink mremap msgctl msgget msgrcv msgsnd msync munlock munlockall munmap
nanosleep newfstatat _newselect open openat openat2 pause pidfd_open pidfd_send_signal
pipe pipe2 poll ppoll ppoll_time64 prctl pread64 preadv preadv2
prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read readahead readlink
readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr rename
renameat renameat2 restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo
rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity
sched_getattr sched_getparam sched_get_priority_max sched_get_priority_min sched_getscheduler
sched_rr_get_interval sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam
sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop semtimedop_time64 send
sendfile sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32
setgroups setgroups32 setitimer setpgid setpriority setregid setregid32 setresgid setresgid32 setresuid
setresuid32 setreuid setreuid32 setrlimit set_robust_list setsid setsockopt set_thread_area
set_tid_address setuid setuid32 setxattr shmat shmctl shmdt shmget shutdown sigaltstack signalfd
signalfd4 sigprocmask sigreturn socket socketcall socketpair splice stat stat64 statfs statfs64 statx symlink
symlinkat sync sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete timer_getoverrun
timer_gettime timer_gettime64 timer_settime timer_settime64 timerfd_create timerfd_gettime
timerfd_gettime64 timerfd_settime timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask
uname unlink unlinkat utime utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write
writev
""".split()

# Syscalls allowed only when the container holds a capability (the default's "includes.caps"), in the
# profile's order; the clone rules come between CAP_SYS_ADMIN and CAP_SYS_BOOT.
_BY_CAPABILITY = {
    "CAP_DAC_READ_SEARCH": "open_by_handle_at",
    "CAP_SYS_ADMIN": "bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount "
    "mount_setattr move_mount name_to_handle_at open_tree perf_event_open quotactl quotactl_fd setdomainname "
    "sethostname setns syslog umount umount2 unshare",
    "CAP_SYS_BOOT": "reboot",
    "CAP_SYS_CHROOT": "chroot",
    "CAP_SYS_MODULE": "delete_module init_module finit_module",
    "CAP_SYS_PACCT": "acct",
    "CAP_SYS_PTRACE": "kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace",
    "CAP_SYS_RAWIO": "iopl ioperm",
    "CAP_SYS_TIME": "settimeofday stime clock_settime",
    "CAP_SYS_TTY_CONFIG": "vhangup",
    "CAP_SYS_NICE": "get_mempolicy mbind set_mempolicy",
    "CAP_SYSLOG": "syslog",
}

# Syscalls allowed only on some architectures (the default's "includes.arches").
_BY_ARCH = [
    (("ppc64le",), "sync_file_range2"),
    (("arm", "arm64"), "arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls"),
    (("amd64", "x32"), "arch_prctl"),
    (("amd64", "x32", "x86"), "modify_ldt"),
    (("s390", "s390x"), "s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr"),
]

# clone without any namespace flag: CLONE_NEWNS|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET|NEWCGROUP.
CLONE_NAMESPACE_MASK = 0x7E020000
# personality values a container may set (PER_LINUX, UNAME26, PER_LINUX32, UNAME26|PER_LINUX32, query).
_PERSONALITIES = (0x0, 0x0008, 0x20000, 0x20008, 0xFFFFFFFF)

# archMap: native architecture -> the compat architectures a filter must also cover.
_ARCH_MAP = {
    "SCMP_ARCH_X86_64": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "SCMP_ARCH_AARCH64": ["SCMP_ARCH_ARM"],
    "SCMP_ARCH_MIPS64": ["SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64N32"],
    "SCMP_ARCH_MIPS64N32": ["SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64"],
    "SCMP_ARCH_MIPSEL64": ["SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64N32"],
    "SCMP_ARCH_MIPSEL64N32": ["SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64"],
    "SCMP_ARCH_S390X": ["SCMP_ARCH_S390"],
}
_UNAME_TO_SCMP = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64", "s390x": "SCMP_ARCH_S390X",
                  "riscv64": "SCMP_ARCH_RISCV64", "ppc64le": "SCMP_ARCH_PPC64LE"}
_UNAME_TO_DOCKER_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "s390x": "s390x", "riscv64": "riscv64",
                         "ppc64le": "ppc64le"}


def default_profile() -> dict:
    """Docker's default seccomp profile, in Docker's JSON profile format, rules in the profile's order.

    No defaultErrnoRet, as in 20.10.24's file: an ERRNO default means EPERM (runc's default)."""
    rules: list[dict] = [{"names": list(_ALLOWED), "action": "SCMP_ACT_ALLOW"},
                         {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}}]
    for value in _PERSONALITIES:
        rules.append({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                      "args": [{"index": 0, "value": value, "op": "SCMP_CMP_EQ"}]})
    for arches, names in _BY_ARCH:
        rules.append({"names": names.split(), "action": "SCMP_ACT_ALLOW", "includes": {"arches": list(arches)}})
    for cap, names in _BY_CAPABILITY.items():
        rules.append({"names": names.split(), "action": "SCMP_ACT_ALLOW", "includes": {"caps": [cap]}})
        if cap == "CAP_SYS_ADMIN":
            rules.extend(_clone_rules())
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "archMap": [{"architecture": a, "subArchitectures": s} for a, s in _ARCH_MAP.items()],
        "syscalls": rules,
    }


def _clone_rules() -> list[dict]:
    """Without CAP_SYS_ADMIN: clone only without namespace flags (flags are argument 1 on s390), clone3 ENOSYS."""
    return [
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": CLONE_NAMESPACE_MASK, "op": "SCMP_CMP_MASKED_EQ"}],
         "excludes": {"caps": ["CAP_SYS_ADMIN"], "arches": ["s390", "s390x"]}},
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 1, "value": CLONE_NAMESPACE_MASK, "op": "SCMP_CMP_MASKED_EQ"}],
         "includes": {"arches": ["s390", "s390x"]}, "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
        # glibc falls back to clone when clone3 says ENOSYS; EPERM would break thread creation.
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ERRNO_ENOSYS,
         "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
    ]


def load_profile_file(path: str) -> dict:
    """Read a Docker-format profile given with `--security-opt seccomp=<file>`."""
    try:
        with open(path, "rb") as f:
            profile = json.load(f)
    except OSError as e:
        raise UsageError(f"opening seccomp profile ({path}) failed: {e.strerror}") from None
    except ValueError as e:
        raise UsageError(f"decoding seccomp profile ({path}) failed: {e}") from None
    if not isinstance(profile, dict) or "defaultAction" not in profile:
        raise UsageError(f"seccomp profile {path}: missing defaultAction")
    return profile


@dataclass(frozen=True)
class Rule:
    """One resolved rule: an action for one syscall, with argument conditions ANDed."""

    name: str
    action: str
    errno: int | None
    args: tuple[tuple[int, str, int, int], ...]  # (index, op, value, valueTwo)


def _kernel_at_least(version: str, release: str) -> bool:
    def parts(v: str) -> tuple[int, ...]:
        nums = []
        for piece in v.split("-")[0].split(".")[:3]:
            digits = "".join(ch for ch in piece if ch.isdigit())
            nums.append(int(digits or 0))
        return tuple(nums)

    return parts(release) >= parts(version)


def _applies(rule: dict, caps: frozenset[str], arch: str, kernel: str) -> bool:
    inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
    if inc.get("caps") and not set(inc["caps"]) <= caps:
        return False
    if inc.get("arches") and arch not in inc["arches"]:
        return False
    if inc.get("minKernel") and not _kernel_at_least(inc["minKernel"], kernel):
        return False
    if exc.get("caps") and set(exc["caps"]) & caps:
        return False
    return not (exc.get("arches") and arch in exc["arches"])


def plan_rules(profile: dict, caps: frozenset[str], machine: str | None = None,
               kernel: str | None = None) -> list[Rule]:
    """Resolve a profile's conditions for one container into a flat list of rules."""
    machine = machine or os.uname().machine
    kernel = kernel or os.uname().release
    arch = _UNAME_TO_DOCKER_ARCH.get(machine, machine)
    rules: list[Rule] = []
    for entry in profile.get("syscalls") or []:
        if not _applies(entry, caps, arch, kernel):
            continue
        names = entry.get("names") or ([entry["name"]] if entry.get("name") else [])
        args = [(a["index"], a["op"], a["value"], a.get("valueTwo", 0)) for a in entry.get("args") or []]
        # runc's rule: if two conditions name the same argument, each becomes its own rule (OR).
        indexes = [a[0] for a in args]
        groups = [tuple(args)] if len(set(indexes)) == len(indexes) else [(a,) for a in args]
        errno = entry.get("errnoRet")
        for name in names:
            for group in groups:
                rules.append(Rule(name, entry["action"], errno, group))
    return rules


def _action(seccomp, action: str, errno: int | None, default_errno: int):
    if action == "SCMP_ACT_ALLOW":
        return seccomp.ALLOW
    if action == "SCMP_ACT_ERRNO":
        return seccomp.ERRNO(default_errno if errno is None else errno)
    if action in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return seccomp.KILL
    if action == "SCMP_ACT_KILL_PROCESS":
        return seccomp.KILL_PROCESS
    if action == "SCMP_ACT_TRAP":
        return seccomp.TRAP
    if action == "SCMP_ACT_LOG":
        return seccomp.LOG
    if action == "SCMP_ACT_TRACE":
        return seccomp.TRACE(errno or 0)
    raise UsageError(f"seccomp profile: unsupported action {action}")


_OPS = {"SCMP_CMP_NE": "NE", "SCMP_CMP_LT": "LT", "SCMP_CMP_LE": "LE", "SCMP_CMP_EQ": "EQ",
        "SCMP_CMP_GE": "GE", "SCMP_CMP_GT": "GT", "SCMP_CMP_MASKED_EQ": "MASKED_EQ"}


def compile_bpf(profile: dict, caps: frozenset[str], machine: str | None = None) -> bytes:
    """Compile a profile for this container into a classic BPF program (libseccomp)."""
    import tempfile

    import pyseccomp as seccomp

    machine = machine or os.uname().machine
    default_errno = profile.get("defaultErrnoRet", ERRNO_EPERM)
    filt = seccomp.SyscallFilter(_action(seccomp, profile["defaultAction"], default_errno, default_errno))
    native = _UNAME_TO_SCMP.get(machine)
    for sub in _sub_arches(profile, native):
        arch = getattr(seccomp.Arch, sub.removeprefix("SCMP_ARCH_"), None)
        if arch is not None and not filt.exist_arch(arch):
            filt.add_arch(arch)
    for rule in plan_rules(profile, caps, machine):
        action = _action(seccomp, rule.action, rule.errno, default_errno)
        args = [seccomp.Arg(i, getattr(seccomp, _OPS[op]), v, v2) for i, op, v, v2 in rule.args]
        try:
            filt.add_rule(action, rule.name, *args)
        except (OSError, ValueError, RuntimeError):
            continue  # unknown to this libseccomp or not on this arch: skip, as Docker does
    with tempfile.TemporaryFile() as f:
        filt.export_bpf(f)
        f.seek(0)
        program = f.read()
    if profile["defaultAction"] in ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG") or default_errno == ERRNO_ENOSYS:
        return program
    return enosys_stub(_last_syscalls(seccomp, plan_rules(profile, caps, machine), native, profile)) + program


# runc's -ENOSYS stub (libcontainer/seccomp/patchbpf, runc 1.0+, so Docker 20.10 with runc 1.1): a syscall
# numbered above every syscall the profile names, per architecture, gets ENOSYS rather than the default EPERM,
# so that a libc newer than the profile (fchmodat2, mseal, ...) falls back to the old call as on a kernel
# without it. AUDIT_ARCH values from linux/audit.h; x32 shares x86_64's and sets bit 30 in the number.
_AUDIT_ARCH = {"SCMP_ARCH_X86_64": 0xC000003E, "SCMP_ARCH_X32": 0xC000003E, "SCMP_ARCH_X86": 0x40000003,
               "SCMP_ARCH_AARCH64": 0xC00000B7, "SCMP_ARCH_ARM": 0x40000028}
X32_SYSCALL_BIT = 0x40000000
_LD_ABS, _JA, _JEQ, _JGT, _JSET, _RET = 0x20, 0x05, 0x15, 0x25, 0x45, 0x06
_RET_ERRNO = 0x00050000


def _last_syscalls(seccomp, rules: list[Rule], native: str | None, profile: dict) -> dict[str, int]:
    """The highest syscall number the resolved rules name, per architecture of the filter (runc's
    findLastSyscalls); architectures without a stub of ours are left out (they keep the default action)."""
    last: dict[str, int] = {}
    for arch_name in [native or "", *_sub_arches(profile, native)]:
        arch = getattr(seccomp.Arch, arch_name.removeprefix("SCMP_ARCH_"), None)
        if arch is None or arch_name not in _AUDIT_ARCH:
            continue
        numbers = [_resolve(seccomp, arch, name) for name in {rule.name for rule in rules}]
        if any(n > 0 for n in numbers):
            last[arch_name] = max(numbers)
    return last


def _resolve(seccomp, arch: int, name: str) -> int:
    try:
        return int(seccomp.resolve_syscall(arch, name))
    except (OSError, ValueError):
        return -1


def enosys_stub(last: dict[str, int]) -> bytes:
    """Classic BPF put before libseccomp's program: per architecture, `nr > last` returns ENOSYS, anything else
    goes on into the filter. Instructions are (code, jump-if-true label, jump-if-false label, k)."""
    code: list[tuple[int, str | int, str | int, int]] = []
    labels: dict[str, int] = {}
    natives = sorted({_AUDIT_ARCH[a] for a in last})
    for i, audit in enumerate(natives):
        following = f"arch{i + 1}"
        code += [(_LD_ABS, 0, 0, 4), (_JEQ, 0, following, audit), (_LD_ABS, 0, 0, 0)]
        if audit == _AUDIT_ARCH["SCMP_ARCH_X86_64"]:
            x64, x32 = last.get("SCMP_ARCH_X86_64"), last.get("SCMP_ARCH_X32")
            code.append((_JSET, f"x32_{i}" if x32 else "filter", 0, X32_SYSCALL_BIT))
            code.append((_JGT, "enosys", "filter", x64) if x64 else (_JA, 0, 0, "filter"))
            if x32:
                labels[f"x32_{i}"] = len(code)
                code.append((_JGT, "enosys", "filter", x32))
        else:
            arch_last = max(n for a, n in last.items() if _AUDIT_ARCH[a] == audit)
            code.append((_JGT, "enosys", "filter", arch_last))
        labels[following] = len(code)
    code.append((_JA, 0, 0, "filter"))
    labels["enosys"] = len(code)
    code.append((_RET, 0, 0, _RET_ERRNO | ERRNO_ENOSYS))
    labels["filter"] = len(code)
    return _assemble(code, labels)


def _assemble(code: list[tuple[int, str | int, str | int, int]], labels: dict[str, int]) -> bytes:
    import struct

    def offset(at: int, target: str | int) -> int:
        return labels[target] - at - 1 if isinstance(target, str) else target

    out = []
    for at, (op, jt, jf, k) in enumerate(code):
        if op == _JA:
            out.append(struct.pack("<HBBI", op, 0, 0, offset(at, k)))
        else:
            out.append(struct.pack("<HBBI", op, offset(at, jt), offset(at, jf), k))
    return b"".join(out)


def _sub_arches(profile: dict, native: str | None) -> list[str]:
    for entry in profile.get("archMap") or []:
        if entry.get("architecture") == native:
            return list(entry.get("subArchitectures") or [])
    return list(profile.get("architectures") or [])


def _sha256_hex(data: bytes) -> str:
    """sha256 of the cache key without hashlib when possible: hashlib loads OpenSSL, ~3 ms of every `run`
    for one small digest. CPython's built-in _sha256 gives the same digest; hashlib where it is absent."""
    try:
        from _sha256 import sha256
    except ImportError:
        from hashlib import sha256
    return sha256(data).hexdigest()


def cached_bpf(cache_dir: Path, profile: dict, caps: frozenset[str]) -> bytes:
    """The BPF program for (profile, caps, machine, kernel), compiled once and kept on disk."""
    from pyctr.fsutil import atomic_write_bytes, ensure_dir

    key = json.dumps([profile, sorted(caps), os.uname().machine, os.uname().release], sort_keys=True)
    path = cache_dir / (_sha256_hex(key.encode()) + ".bpf")
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    program = compile_bpf(profile, caps)
    ensure_dir(cache_dir)
    atomic_write_bytes(path, program, durable=False)
    return program
