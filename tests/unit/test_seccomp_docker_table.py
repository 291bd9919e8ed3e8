"""The compiled default filter decides every syscall as Docker 20.10.24's default profile does.

The expected table below is recorded from moby's profiles/seccomp/default.json at v20.10.24 (the Docker that
Debian 12 ships). The filter under test is the real BPF program `compile_bpf` produces with libseccomp; a small
classic-BPF interpreter runs it on a seccomp_data record for every syscall number of the x86_64 and i386
tables (names from libseccomp's own resolver), for each capability set whose answers differ.
"""

from __future__ import annotations

import struct

import pyseccomp
import pytest

from pyctr.runtime.seccomp import compile_bpf, default_profile

# --- Docker 20.10.24, profiles/seccomp/default.json -----------------------------------------------------------
DOCKER_ALLOWED = set("""
accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown chown32 clock_adjtime
clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64 clock_nanosleep
clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2 dup3 epoll_create epoll_create1
epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit
exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir fchmod fchmodat fchown
fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstat64
fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 futex futex_time64 futex_waitv futimesat getcpu getcwd
getdents getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups getgroups32 getitimer
getpeername getpgid getpgrp getpid getppid getpriority getrandom getresgid getresgid32 getresuid getresuid32
getrlimit get_robust_list getrusage getsid getsockname getsockopt get_thread_area gettid gettimeofday getuid
getuid32 getxattr inotify_add_watch inotify_init inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy
io_getevents io_pgetevents io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit io_uring_enter
io_uring_register io_uring_setup ipc kill landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown
lchown32 lgetxattr link linkat listen listxattr llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64
madvise membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2
mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend mq_timedsend_time64
mq_unlink mremap msgctl msgget msgrcv msgsnd msync munlock munlockall munmap nanosleep newfstatat _newselect open
openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2 poll ppoll ppoll_time64 prctl pread64 preadv preadv2
prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read readahead readlink readlinkat
readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr rename renameat renameat2
restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend
rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity sched_getattr sched_getparam
sched_get_priority_max sched_get_priority_min sched_getscheduler sched_rr_get_interval
sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam sched_setscheduler sched_yield seccomp
select semctl semget semop semtimedop semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto setfsgid
setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid setpriority setregid
setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit set_robust_list setsid
setsockopt set_thread_area set_tid_address setuid setuid32 setxattr shmat shmctl shmdt shmget shutdown sigaltstack
signalfd signalfd4 sigprocmask sigreturn socket socketcall socketpair splice stat stat64 statfs statfs64 statx
symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete timer_getoverrun
timer_gettime timer_gettime64 timer_settime timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64
timerfd_settime timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat utime
utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev
ptrace
personality
""".split())  # ptrace: "minKernel 4.8"; personality: for the listed values only (tested below with 0)
DOCKER_AMD64_ONLY = {"arch_prctl", "modify_ldt"}  # includes.arches amd64 / x32 (/ x86): GOARCH amd64 applies them
DOCKER_BY_CAP = {
    "CAP_DAC_READ_SEARCH": {"open_by_handle_at"},
    "CAP_SYS_ADMIN": set("bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount "
                         "mount_setattr move_mount name_to_handle_at open_tree perf_event_open quotactl "
                         "quotactl_fd setdomainname sethostname setns syslog umount umount2 unshare".split()),
    "CAP_SYS_BOOT": {"reboot"},
    "CAP_SYS_CHROOT": {"chroot"},
    "CAP_SYS_MODULE": {"delete_module", "init_module", "finit_module"},
    "CAP_SYS_PACCT": {"acct"},
    "CAP_SYS_PTRACE": {"kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace"},
    "CAP_SYS_RAWIO": {"iopl", "ioperm"},
    "CAP_SYS_TIME": {"settimeofday", "stime", "clock_settime"},
    "CAP_SYS_TTY_CONFIG": {"vhangup"},
    "CAP_SYS_NICE": {"get_mempolicy", "mbind", "set_mempolicy"},
    "CAP_SYSLOG": {"syslog"},
}
EPERM, ENOSYS = 1, 38
# --------------------------------------------------------------------------------------------------------------

DOCKER_DEFAULT_CAPS = frozenset(
    "CAP_" + c for c in "CHOWN DAC_OVERRIDE FSETID FOWNER MKNOD NET_RAW SETGID SETUID SETFCAP SETPCAP "
    "NET_BIND_SERVICE SYS_CHROOT KILL AUDIT_WRITE".split())
# Every capability the profile names, one at a time on top of the default set, then none, then all of them
# (plus CAP_BPF/CAP_PERFMON, which 20.10.24's profile does not know: they must unlock nothing).
CAP_SETS = [DOCKER_DEFAULT_CAPS] + [DOCKER_DEFAULT_CAPS | {cap} for cap in DOCKER_BY_CAP] + [
    DOCKER_DEFAULT_CAPS - {"CAP_SYS_CHROOT"}, frozenset(),
    frozenset(DOCKER_BY_CAP) | DOCKER_DEFAULT_CAPS | {"CAP_BPF", "CAP_PERFMON"},
    DOCKER_DEFAULT_CAPS | {"CAP_BPF", "CAP_PERFMON"}]

AUDIT_ARCH = {"x86_64": 0xC000003E, "i386": 0x40000003}
SCMP_ARCH = {"x86_64": pyseccomp.Arch.X86_64, "i386": pyseccomp.Arch.X86}
RET_ALLOW, RET_ERRNO, RET_ACTION_MASK, RET_DATA_MASK = 0x7FFF0000, 0x00050000, 0xFFFF0000, 0xFFFF


def docker_names(caps: frozenset[str]) -> set[str]:
    """The syscalls named by the rules Docker hands runc for this capability set (it drops the others)."""
    held = set().union(*(names for cap, names in DOCKER_BY_CAP.items() if cap in caps))
    return DOCKER_ALLOWED | DOCKER_AMD64_ONLY | held | {"clone", "clone3"}


def runc_last(table: dict[str, int], caps: frozenset[str]) -> int:
    """runc's findLastSyscalls: the highest number among the profile's syscalls on this architecture."""
    return max(table[name] for name in docker_names(caps) if name in table)


def docker_decision(name: str, caps: frozenset[str], nr: int = 0, last: int = 1 << 31) -> str:
    """What Docker 20.10.24 + runc 1.1 answer for `name` (number `nr`, all arguments 0), as "allow" or
    "errno N": the profile's rules, runc's ENOSYS stub above the last syscall the profile names."""
    if nr > last:
        return f"errno {ENOSYS}"
    if name in DOCKER_ALLOWED or name in DOCKER_AMD64_ONLY:
        return "allow"
    if any(name in names for cap, names in DOCKER_BY_CAP.items() if cap in caps):
        return "allow"
    if name == "clone":
        return "allow"  # flags 0: no namespace flag
    if name == "clone3":
        return f"errno {ENOSYS}"
    return f"errno {EPERM}"


def run_filter(program: bytes, nr: int, arch: int, args: tuple[int, ...] = ()) -> str:
    """Run a classic BPF seccomp program on one seccomp_data record; "allow", "errno N" or "ret 0x...".

    The opcodes are the ones libseccomp emits (ld abs/mem, st, ldx, tax/txa, and, jeq/jgt/jge/jset, ja, ret);
    any other one fails the test rather than being guessed."""
    args = tuple(args) + (0,) * (6 - len(args))
    data = struct.pack("<iIQ6Q", nr, arch, 0, *args)
    insns = [struct.unpack_from("<HBBI", program, i) for i in range(0, len(program), 8)]
    a = x = pc = 0
    mem = [0] * 16
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == 0x20:
            a = struct.unpack_from("<I", data, k)[0]
        elif code == 0x60:
            a = mem[k]
        elif code == 0x61:
            x = mem[k]
        elif code == 0x02:
            mem[k] = a
        elif code == 0x03:
            mem[k] = x
        elif code == 0x07:
            x = a
        elif code == 0x87:
            a = x
        elif code == 0x54:
            a &= k
        elif code == 0x05:
            pc += k
        elif code in (0x15, 0x25, 0x35, 0x45, 0x1D, 0x2D, 0x3D, 0x4D):
            operand = x if code & 0x08 else k
            test = {0x10: a == operand, 0x20: a > operand, 0x30: a >= operand, 0x40: bool(a & operand)}[code & 0xF0]
            pc += jt if test else jf
        elif code == 0x06:
            return _outcome(k)
        elif code == 0x16:
            return _outcome(a)
        else:
            raise AssertionError(f"BPF opcode {code:#x} not understood by the test interpreter")


def _outcome(ret: int) -> str:
    if ret & RET_ACTION_MASK == RET_ALLOW:
        return "allow"
    if ret & RET_ACTION_MASK == RET_ERRNO:
        return f"errno {ret & RET_DATA_MASK}"
    return f"ret {ret:#x}"


def syscall_table(arch_name: str) -> dict[str, int]:
    """Every syscall libseccomp knows on this architecture, by name."""
    table = {}
    for nr in range(0, 1024):
        try:
            table[pyseccomp.resolve_syscall(SCMP_ARCH[arch_name], nr).decode()] = nr
        except ValueError:
            continue
    return table


@pytest.fixture(scope="module")
def programs() -> dict[frozenset[str], bytes]:
    return {caps: compile_bpf(default_profile(), caps, "x86_64") for caps in CAP_SETS}


@pytest.mark.parametrize("arch_name", ["x86_64", "i386"])
def test_every_syscall_of_the_table_is_decided_as_docker(programs, arch_name):
    table = syscall_table(arch_name)
    assert len(table) > 300 and "process_vm_readv" in table
    wrong = []
    for caps, program in programs.items():
        last = runc_last(table, caps)
        for name, nr in table.items():
            if arch_name == "i386" and name == "arch_prctl":
                continue  # i386 arch_prctl: libseccomp versions disagree on whether the x86 filter has it
            got = run_filter(program, nr, AUDIT_ARCH[arch_name])
            want = docker_decision(name, caps, nr, last)
            if got != want:
                extra = sorted(caps - DOCKER_DEFAULT_CAPS) or sorted(DOCKER_DEFAULT_CAPS - caps)
                wrong.append(f"{name} ({nr}) with {extra or 'the default caps'}: {got}, Docker: {want}")
    assert not wrong, "\n".join(wrong)


def test_the_cases_of_issue_13(programs):
    """process_vm_readv: EPERM without CAP_SYS_PTRACE; name_to_handle_at: EPERM without CAP_SYS_ADMIN (in
    20.10.24 it sits in the CAP_SYS_ADMIN group, not CAP_DAC_READ_SEARCH's); socket(AF_VSOCK) allowed."""
    table, amd64 = syscall_table("x86_64"), AUDIT_ARCH["x86_64"]
    default = programs[DOCKER_DEFAULT_CAPS]
    assert run_filter(default, table["process_vm_readv"], amd64) == "errno 1"
    assert run_filter(programs[DOCKER_DEFAULT_CAPS | {"CAP_SYS_PTRACE"}], table["process_vm_readv"], amd64) == "allow"
    assert run_filter(default, table["name_to_handle_at"], amd64) == "errno 1"
    assert run_filter(programs[DOCKER_DEFAULT_CAPS | {"CAP_DAC_READ_SEARCH"}], table["name_to_handle_at"],
                      amd64) == "errno 1"
    assert run_filter(programs[DOCKER_DEFAULT_CAPS | {"CAP_SYS_ADMIN"}], table["name_to_handle_at"],
                      amd64) == "allow"
    for family in (1, 2, 10, 16, 38, 40, 44):  # unix inet inet6 netlink alg vsock xdp
        assert run_filter(default, table["socket"], amd64, (family, 1, 0)) == "allow"


@pytest.mark.parametrize(("value", "want"), [
    (0x0, "allow"), (0x0008, "allow"), (0x20000, "allow"), (0x20008, "allow"), (0xFFFFFFFF, "allow"),
    (0x0400000, "errno 1"), (0x0040000, "errno 1"), (0x1, "errno 1"), (0x20009, "errno 1")])
def test_personality_values(programs, value, want):
    program = programs[DOCKER_DEFAULT_CAPS]
    assert run_filter(program, syscall_table("x86_64")["personality"], AUDIT_ARCH["x86_64"], (value,)) == want


@pytest.mark.parametrize(("flags", "default_want", "admin_want"), [
    (0x11, "allow", "allow"),                          # SIGCHLD: fork
    (0x003D0F00, "allow", "allow"),                    # pthread_create's flags
    (0x00020000 | 0x11, "errno 1", "allow"),           # CLONE_NEWNS
    (0x10000000 | 0x11, "errno 1", "allow"),           # CLONE_NEWUSER
    (0x20000000 | 0x11, "errno 1", "allow"),           # CLONE_NEWPID
    (0x40000000 | 0x11, "errno 1", "allow"),           # CLONE_NEWNET
    (0x02000000 | 0x11, "errno 1", "allow"),           # CLONE_NEWCGROUP
    (0x04000000 | 0x11, "errno 1", "allow"),           # CLONE_NEWUTS
    (0x08000000 | 0x11, "errno 1", "allow"),           # CLONE_NEWIPC
])
def test_clone_flags(programs, flags, default_want, admin_want):
    nr, amd64 = syscall_table("x86_64")["clone"], AUDIT_ARCH["x86_64"]
    assert run_filter(programs[DOCKER_DEFAULT_CAPS], nr, amd64, (flags,)) == default_want
    assert run_filter(programs[DOCKER_DEFAULT_CAPS | {"CAP_SYS_ADMIN"}], nr, amd64, (flags,)) == admin_want


def test_clone3_is_enosys_unless_sys_admin(programs):
    nr, amd64 = syscall_table("x86_64")["clone3"], AUDIT_ARCH["x86_64"]
    assert run_filter(programs[DOCKER_DEFAULT_CAPS], nr, amd64) == "errno 38"
    assert run_filter(programs[DOCKER_DEFAULT_CAPS | {"CAP_SYS_ADMIN"}], nr, amd64) == "allow"


def test_other_architectures_are_refused():
    """A syscall made through an architecture the filter does not list (not x86_64, i386 or x32) is refused."""
    program = compile_bpf(default_profile(), DOCKER_DEFAULT_CAPS, "x86_64")
    assert run_filter(program, 0, 0xC00000B7) != "allow"  # AUDIT_ARCH_AARCH64


def test_syscalls_newer_than_the_profile_are_enosys(programs):
    """runc's stub: above the profile's last syscall (futex_waitv, 449, on x86_64 and i386 with libseccomp
    2.5) the answer is ENOSYS, so a newer libc falls back (fchmodat2 452, mseal 462, anything up to the top);
    numbers below it that the profile does not name stay EPERM; x32 numbers are judged against x32's own."""
    program = programs[DOCKER_DEFAULT_CAPS]
    for arch in ("x86_64", "i386"):
        last = runc_last(syscall_table(arch), DOCKER_DEFAULT_CAPS)
        assert run_filter(program, last, AUDIT_ARCH[arch]) == "allow"
        for nr in (last + 1, 452, 462, 1000, 0x3FFFFFFF):
            assert run_filter(program, nr, AUDIT_ARCH[arch]) == "errno 38", (arch, nr)
    assert run_filter(program, 335, AUDIT_ARCH["x86_64"]) == "errno 1"  # unassigned, below the last
    x32 = 0x40000000
    assert run_filter(program, x32 | 0, AUDIT_ARCH["x86_64"]) == "allow"  # x32 read
    assert run_filter(program, x32 | 1000, AUDIT_ARCH["x86_64"]) == "errno 38"
    assert run_filter(program, x32 | 310, AUDIT_ARCH["x86_64"]) == "errno 1"  # below x32's last, not allowed
