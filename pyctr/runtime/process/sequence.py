"""The steps every container process takes once it is inside the container, up to the execve of its command.

One sequence for both ways a process comes to be in a container: the init of a new container (runtime/init.py,
after its namespaces and rootfs) and a process joining a running one (runtime/exec.py's G, after setns), and
for the OCI runtime mode that reuses them. `Role` says which; `run_command` runs the sequence, in runc's order:

  user from the container's /etc/passwd -> HOME -> rlimits -> working directory (an init creates it, a joiner
  needs it; an init then remounts a --read-only root) -> a joiner's terminal owned by the user -> setsid (+
  controlling tty) -> PATH lookup -> the role's last wait (an init waits for the launcher's "go") -> seccomp
  filter (while still root: CAP_SYS_ADMIN allows it without no_new_privs) -> bounding set, inheritable and
  ambient cleared, setgroups/setgid/setuid, permitted/effective, no_new_privs -> default signal dispositions ->
  every fd but 0/1/2, the report pipe and the sealed shim closed (CVE-2024-21626) -> parent-death signal ->
  execveat of the sealed exec shim, which execs the command (runtime/execshim.py, CVE-2019-5736).

The privileged calls go through a `Kernel` (process/kernel.py), so unit tests check this order with a
recording fake.
"""

from __future__ import annotations

import errno
import os
import stat

from pyctr.errors import CommandCannotRun, CommandNotFound, PyctrError, RuntimeFailure
from pyctr.runtime.process.kernel import KERNEL, Kernel

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (pyctr-runtime's cold start)
if TYPE_CHECKING:
    from collections.abc import Callable

    from pyctr.runtime.spec import ContainerSpec
    from pyctr.runtime.users import ExecUser

REPORT_FD = 3  # where the report pipe sits during the last steps: everything above SHIM_FD is closed
SHIM_FD = 4  # where the sealed exec shim (runtime/execshim.py) sits during the last steps
MAX_ETC_FILE = 4 * 1024 * 1024
RESET_SIGNALS = ("SIGPIPE", "SIGINT", "SIGXFSZ", "SIGXFZ", "SIGTERM", "SIGHUP", "SIGCHLD", "SIGWINCH")


class Role:
    """How the process came into the container: what differs between an init and a joiner. (A plain class:
    typing.NamedTuple would cost pyctr-runtime's cold start the typing module, for find_executable alone.)"""

    __slots__ = ("joining", "terminal", "after_workdir", "before_privileges", "parent_death_signal")

    def __init__(self, joining: bool, terminal: bool = False, after_workdir: Callable[[], None] | None = None,
                 before_privileges: Callable[[], None] | None = None, parent_death_signal: int | None = None) -> None:
        self.joining = joining  # a process joining a running container (exec) rather than a new container's init
        self.terminal = terminal  # 0/1/2 are a pty: it becomes the controlling terminal (and a joiner's user owns it)
        # An init's --read-only root, remounted once the working directory exists (None: nothing to do).
        self.after_workdir = after_workdir
        # An init's wait for the launcher's "go" (its network is ready), just before privileges drop.
        self.before_privileges = before_privileges
        # After setuid (which clears it): SIGKILL for a process that must die with its launcher, 0 for none.
        self.parent_death_signal = parent_death_signal


def run_command(spec: ContainerSpec, role: Role, report_fd: int, shim_fd: int, seccomp_program: bytes | None,
                kernel: Kernel = KERNEL) -> None:
    """Set the process up as the container's own and exec its command. Returns only by raising."""
    user = container_user(spec)
    env = final_env(spec.process.env, user)
    apply_rlimits(spec)
    enter_workdir(spec.process.cwd, create=not role.joining)
    if role.after_workdir is not None:
        role.after_workdir()
    if role.joining and role.terminal:
        os.fchown(0, user.uid, -1)  # runc's fixStdioPermissions: the user owns its terminal
    become_session_leader(role.terminal)
    executable = find_executable(spec.process.args[0], env_path(env))
    if role.before_privileges is not None:
        role.before_privileges()
    if seccomp_program:
        # Before the capability drop (CAP_SYS_ADMIN allows it without no_new_privs); what follows (setuid,
        # capset, prctl, close_range, fcntl, execveat of the shim, its execve) is allowed by Docker's default profile.
        kernel.seccomp_set_filter(seccomp_program)
    drop_privileges(spec, user, kernel)
    reset_signals()
    close_other_fds(report_fd, shim_fd, kernel)
    if role.parent_death_signal is not None:
        kernel.set_parent_death_signal(role.parent_death_signal)
    exec_through_shim(executable, spec.process.args, env, kernel)


def install_stdio(stdin: int, stdout: int, stderr: int) -> None:
    """Put the given fds on 0/1/2, copying first so overlapping numbers cannot clobber each other."""
    copies = [os.dup(fd) for fd in (stdin, stdout, stderr)]
    for target, fd in enumerate(copies):
        os.dup2(fd, target, inheritable=True)
    for fd in copies:
        if fd > 2:
            os.close(fd)


_SET_ASIDE: list[dict] = []  # the import caches seal_imports replaced: kept alive, never freed


def seal_imports() -> None:
    """Forbid module imports from here on: after pivot_root (or setns into a container's mount namespace) the
    import path names the container's files, and code found there would run as root before capabilities drop.

    Modules already loaded keep working (imports consult sys.modules first); a missing one fails loudly.

    The old finder cache is set aside, not cleared: freeing its finders (each with its directory listing) in
    a child forked from the big warm worker copied page after page, ~2 ms of every exec. This process execs
    or exits soon; the old cache is never consulted again (no path-based finder is left on sys.meta_path)."""
    import sys

    sys.path[:] = []
    _SET_ASIDE.append(sys.path_importer_cache)
    sys.path_importer_cache = {}
    sys.path_hooks[:] = []
    sys.meta_path[:] = [finder for finder in sys.meta_path
                        if getattr(finder, "__name__", "") in ("BuiltinImporter", "FrozenImporter")]


def read_etc(path: str) -> str:
    """A small regular file of the container (never a FIFO or device that could block or flood us)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return ""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        return os.read(fd, MAX_ETC_FILE).decode(errors="replace")
    finally:
        os.close(fd)


def container_user(spec: ContainerSpec) -> ExecUser:
    """The process's user and groups, looked up in the container's own /etc/passwd and /etc/group."""
    from pyctr.runtime.users import process_groups, resolve_user

    passwd, group = read_etc("/etc/passwd"), read_etc("/etc/group")
    return process_groups(resolve_user(spec.process.user, passwd, group), spec.process.additional_groups, group)


def split_env(env: list[str]) -> list[tuple[str, str]]:
    return [(item.split("=", 1)[0], item.split("=", 1)[1] if "=" in item else "") for item in env]


def final_env(env: list[str], user: ExecUser) -> list[str]:
    """Docker adds HOME from the container's passwd entry when the spec does not set it."""
    if any(item.startswith("HOME=") for item in env):
        return list(env)
    return list(env) + [f"HOME={user.home or '/'}"]


def env_path(env: list[str]) -> str:
    for key, value in split_env(env):
        if key == "PATH":
            return value
    return ""


def apply_rlimits(spec: ContainerSpec) -> None:
    import resource

    for limit in spec.process.rlimits:
        number = getattr(resource, limit.type, None)
        if number is None:
            raise RuntimeFailure(f"unknown rlimit {limit.type}")
        try:
            resource.setrlimit(number, (limit.soft, limit.hard))
        except (ValueError, OSError) as e:
            raise RuntimeFailure(f"setrlimit {limit.type}: {e}") from None


def enter_workdir(cwd: str, create: bool) -> None:
    """chdir to the working directory and prove it is inside the container's root. A new container creates it
    when missing (Docker); a joiner needs it to exist (runc exec does not create it)."""
    try:
        if create:
            os.makedirs(cwd, mode=0o755, exist_ok=True)
        os.chdir(cwd)
    except OSError as e:
        reason = e.strerror if create else (e.strerror or "").lower()
        raise RuntimeFailure(f"chdir to cwd (\"{cwd}\") set in config.json failed: {reason}") from None
    here = os.getcwd()
    if here.startswith("(unreachable)") or not here.startswith("/"):
        raise RuntimeFailure(f"current working directory {here!r} is outside the container root")


def become_session_leader(terminal: bool) -> None:
    import fcntl
    import termios

    os.setsid()
    if terminal:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def find_executable(name: str, path_env: str) -> str:
    """Go's exec.LookPath, as runc uses it: search the container's PATH, check the mode bits only."""
    if "/" in name:
        try:
            check_executable(name)
        except FileNotFoundError:
            raise CommandNotFound(
                f'exec: "{name}": stat {name}: no such file or directory') from None
        except PermissionError:
            raise CommandCannotRun(f'exec: "{name}": permission denied') from None
        return name
    for directory in path_env.split(":"):
        candidate = os.path.join(directory or ".", name)
        try:
            check_executable(candidate)
            return candidate
        except OSError:
            continue
    raise CommandNotFound(f'exec: "{name}": executable file not found in $PATH')


def check_executable(path: str) -> None:
    st = os.stat(path)
    if stat.S_ISDIR(st.st_mode) or not st.st_mode & 0o111:
        raise PermissionError(errno.EACCES, "permission denied", path)


def exec_error(name: str, error: OSError) -> PyctrError:
    """Map an execve failure to Docker's exit codes: missing -> 127, anything else -> 126."""
    if error.errno == errno.ENOENT:
        return CommandNotFound(f'exec: "{name}": no such file or directory')
    reason = "exec format error" if error.errno == errno.ENOEXEC else (error.strerror or str(error)).lower()
    return CommandCannotRun(f'exec: "{name}": {reason}')


def drop_privileges(spec: ContainerSpec, user: ExecUser, kernel: Kernel = KERNEL) -> None:
    """Bounding set first (needs CAP_SETPCAP), then ids, then permitted/effective; inheritable/ambient empty."""
    caps = spec.process.capabilities
    kernel.drop_bounding_set(caps)
    kernel.clear_inheritable_and_ambient()
    kernel.keep_capabilities_across_setuid(True)
    kernel.setgroups(list(user.additional_gids))
    kernel.setgid(user.gid)
    kernel.setuid(user.uid)
    kernel.keep_capabilities_across_setuid(False)
    kernel.limit_permitted_and_effective(caps)
    if spec.process.no_new_privileges:
        kernel.set_no_new_privileges()


def reset_signals() -> None:
    """Python ignores SIGPIPE and handles SIGINT; the container's command must start with the defaults."""
    import signal  # the launchers load it before sealing imports (runtime/init.py, runtime/exec.py)

    for name in RESET_SIGNALS:
        number = getattr(signal, name, None)
        if number is not None:
            try:
                signal.signal(number, signal.SIG_DFL)
            except (OSError, ValueError):
                pass
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def close_other_fds(report_fd: int, shim_fd: int, kernel: Kernel = KERNEL) -> None:
    """Keep 0, 1, 2, the report pipe (moved to fd 3) and the sealed shim (fd 4), both CLOEXEC; close every other
    fd (CVE-2024-21626). A missing shim fails here: the command is never exec'd the unsafe way."""
    import fcntl

    if shim_fd < 0:
        raise RuntimeFailure("pyctr's exec shim was not loaded")
    # Copies above both targets first, so that neither move overwrites the other's source.
    report_copy = fcntl.fcntl(report_fd, fcntl.F_DUPFD_CLOEXEC, SHIM_FD + 1)
    shim_copy = fcntl.fcntl(shim_fd, fcntl.F_DUPFD_CLOEXEC, SHIM_FD + 1)
    os.dup2(report_copy, REPORT_FD, inheritable=False)
    from pyctr.runtime.process import report

    report.report_moved(REPORT_FD)
    os.dup2(shim_copy, SHIM_FD, inheritable=False)
    kernel.close_range(SHIM_FD + 1)


def exec_through_shim(executable: str, args: list[str], env: list[str], kernel: Kernel = KERNEL) -> None:
    """The last step: after `close_other_fds`, exec the sealed shim, which execs the command (its failure
    arrives on the report pipe as `E{"errno": N}`: runtime/execshim.shim_failure)."""
    try:
        kernel.exec_shim(SHIM_FD, REPORT_FD, executable, args, dict(split_env(env)))
    except OSError as e:
        if e.errno == errno.E2BIG:  # the command's arguments and environment, not the shim, are too big
            raise exec_error(args[0], e) from None
        # No fallback through a path (/proc/self/fd/N): inside the container, a path is the container's to forge.
        hint = " (the seccomp profile must allow execveat)" if e.errno in (errno.EPERM, errno.ENOSYS) else ""
        raise RuntimeFailure(f"cannot start pyctr's exec shim: {(e.strerror or str(e)).lower()}{hint}") from None
