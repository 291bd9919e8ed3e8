"""The container process C between fork and execve: namespaces, rootfs, user, capabilities, exec.

Runs in the child that `process.launch` forked as PID 1 of the new PID
namespace. It never returns: it execs the container's command or reports why
it could not over the report pipe (CLOEXEC, so a successful exec closes it
empty) and exits. Order matters and follows runc:

  parent-death signal + non-dumpable (host state still reachable) -> stdio ->
  unshare mount/UTS/IPC/net -> tell M "ready" -> wait for "go" (M has put us in
  our cgroup and network) -> unshare cgroup -> rootfs + pivot_root -> hostname
  -> user lookup in the container's /etc/passwd -> rlimits -> cwd -> setsid/tty
  -> executable lookup -> seccomp filter -> bounding set, inheritable/ambient cleared, setuid,
  permitted/effective, no_new_privs -> close every other fd -> execveat of the sealed exec shim, which
  execs the command (runtime/execshim.py: the host interpreter is never the exe of anything the
  container runs, CVE-2019-5736).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
from dataclasses import dataclass

from pyctr.errors import CommandCannotRun, CommandNotFound, PyctrError, RuntimeFailure
from pyctr.runtime.spec import ContainerSpec
from pyctr.runtime.users import ExecUser, process_groups, resolve_user

READY = b"R"
IN_CGROUP = b"C"
GO = b"G"
ERROR = b"E"
REPORT_FD = 3  # where the report pipe sits during the last steps: everything above SHIM_FD is closed
SHIM_FD = 4  # where the sealed exec shim (runtime/execshim.py) sits during the last steps
MAX_ETC_FILE = 4 * 1024 * 1024
_RESET_SIGNALS = ("SIGPIPE", "SIGINT", "SIGXFSZ", "SIGXFZ", "SIGTERM", "SIGHUP", "SIGCHLD", "SIGWINCH")


@dataclass(frozen=True)
class ChildFds:
    """The fds the container process inherits from M across fork."""

    stdin: int
    stdout: int
    stderr: int
    go: int  # M -> C: one byte "G" after before_exec
    report: int  # C -> M: "R" when in its namespaces, then "E"+json on failure; CLOEXEC
    console: int | None = None  # pty slave for -t: controlling terminal and /dev/console
    seccomp_program: bytes | None = None  # BPF compiled by M; installed while C is still root
    shim: int = -1  # the sealed exec shim's memfd (CLOEXEC), made by M: C execs the command through it
    console_socket: int | None = None  # -t: C sends the master of its own pty here (then `console` only sizes it)


def container_main(spec: ContainerSpec, fds: ChildFds) -> None:
    """Entry point of the forked child. Never returns."""
    code = 125
    try:
        _setup_and_exec(spec, fds)
    except PyctrError as e:
        code = e.exit_code
        _report(fds.report, type(e).__name__, str(e))
    except OSError as e:
        _report(fds.report, "RuntimeFailure", f"{e.strerror or e}" + (f": {e.filename}" if e.filename else ""))
    except BaseException as e:  # the child must never unwind into M's code
        _report(fds.report, "RuntimeFailure", f"container init: {type(e).__name__}: {e}")
    finally:
        os._exit(code)


_report_fd_now: list[int] = []  # where the report pipe is at the moment (it moves to REPORT_FD late)


def _report(fd: int, kind: str, message: str) -> None:
    try:
        payload = ERROR + json.dumps({"kind": kind, "message": message}).encode()
        os.write(_report_fd_now[-1] if _report_fd_now else fd, payload)
    except OSError:
        pass


def _setup_and_exec(spec: ContainerSpec, fds: ChildFds) -> None:
    from pyctr.runtime import capabilities, syscalls

    syscalls.set_parent_death_signal(signal.SIGKILL)
    capabilities.set_dumpable(False)
    os.umask(0o022)
    _install_stdio(fds)
    syscalls.unshare(_namespace_flags(spec))
    os.write(fds.report, READY)
    if "net" in spec.namespaces:
        syscalls.bring_loopback_up()
    from pyctr.runtime.rootfs import build_rootfs, remount_root_readonly

    def in_cgroup() -> None:
        """Wait while M puts us in our cgroup (the mounts so far overlap that), then enter its namespace."""
        if os.read(fds.go, 1) != IN_CGROUP:
            os._exit(125)  # M gave up (its hook failed): it reports the error, not us
        if "cgroup" in spec.namespaces:
            syscalls.unshare(syscalls.CLONE_NEWCGROUP)

    seal_imports()  # the launcher preloaded all we need; after pivot_root an import would read the image
    build_rootfs(spec, None if fds.console_socket is not None else fds.console, in_cgroup)
    if fds.console_socket is not None:
        _container_console(fds)
    if "uts" in spec.namespaces:  # never rename the host
        syscalls.sethostname(spec.hostname)
    user = _container_user(spec)
    env = _final_env(spec.process.env, user)
    _apply_rlimits(spec)
    _enter_workdir(spec.process.cwd)
    if spec.rootfs.readonly:
        remount_root_readonly()
    _become_session_leader(fds.console is not None)
    executable = find_executable(spec.process.args[0], _env_path(env))
    if os.read(fds.go, 1) != GO:  # M made the network meanwhile
        os._exit(125)
    os.close(fds.go)
    if fds.seccomp_program:
        # Before the capability drop (CAP_SYS_ADMIN allows it without no_new_privs); what follows (setuid,
        # capset, prctl, close_range, fcntl, execveat of the shim, its execve) is allowed by Docker's default profile.
        syscalls.seccomp_set_filter(fds.seccomp_program)
    _drop_privileges(spec, user)
    _reset_signals()
    _close_other_fds(fds.report, fds.shim)
    # A container outlives M (run -d, a killed client); a build's step must not (setuid cleared the signal).
    syscalls.set_parent_death_signal(signal.SIGKILL if spec.dies_with_launcher else 0)
    exec_through_shim(executable, spec.process.args, env)


def exec_through_shim(executable: str, args: list[str], env: list[str]) -> None:
    """The last step: after `_close_other_fds`, exec the sealed shim, which execs the command (its failure
    arrives on the report pipe as `E{"errno": N}`: runtime/execshim.shim_failure)."""
    from pyctr.runtime import execshim

    try:
        execshim.exec_command(SHIM_FD, REPORT_FD, executable, args, dict(_split_env(env)))
    except OSError as e:
        if e.errno == errno.E2BIG:  # the command's arguments and environment, not the shim, are too big
            raise exec_error(args[0], e) from None
        # No fallback through a path (/proc/self/fd/N): inside the container, a path is the container's to forge.
        hint = " (the seccomp profile must allow execveat)" if e.errno in (errno.EPERM, errno.ENOSYS) else ""
        raise RuntimeFailure(f"cannot start pyctr's exec shim: {(e.strerror or str(e)).lower()}{hint}") from None


def seal_imports() -> None:
    """Forbid module imports from here on: after pivot_root (or setns into a container's mount namespace) the
    import path names the container's files, and code found there would run as root before capabilities drop.

    Modules already loaded keep working (imports consult sys.modules first); a missing one fails loudly."""
    import sys

    sys.path[:] = []
    sys.path_importer_cache.clear()
    sys.path_hooks[:] = []
    sys.meta_path[:] = [finder for finder in sys.meta_path
                        if getattr(finder, "__name__", "") in ("BuiltinImporter", "FrozenImporter")]


def _namespace_flags(spec: ContainerSpec) -> int:
    from pyctr.runtime import syscalls as s

    flags = s.CLONE_NEWNS
    if "uts" in spec.namespaces:
        flags |= s.CLONE_NEWUTS
    if "ipc" in spec.namespaces:
        flags |= s.CLONE_NEWIPC
    if "net" in spec.namespaces:
        flags |= s.CLONE_NEWNET
    return flags


def _install_stdio(fds: ChildFds) -> None:
    """Put the given fds on 0/1/2, copying first so overlapping numbers cannot clobber each other."""
    copies = [os.dup(fd) for fd in (fds.stdin, fds.stdout, fds.stderr)]
    for target, fd in enumerate(copies):
        os.dup2(fd, target, inheritable=True)
    for fd in copies:
        if fd > 2:
            os.close(fd)


def _read_etc(path: str) -> str:
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


def _container_user(spec: ContainerSpec) -> ExecUser:
    passwd, group = _read_etc("/etc/passwd"), _read_etc("/etc/group")
    return process_groups(resolve_user(spec.process.user, passwd, group), spec.process.additional_groups, group)


def _container_console(fds: ChildFds) -> None:
    """runc's setupConsole, after pivot_root: a pty from the container's own devpts instance (so `tty` prints
    /dev/pts/0 as in Docker), sized as the host pty M made, bound on /dev/console, its master sent to M; its
    slave replaces the host pty on 0, 1 and 2."""
    import socket

    from pyctr.runtime.exec import open_container_pty
    from pyctr.runtime.rootfs import bind_console
    from pyctr.runtime.tty import copy_window_size

    master, slave = open_container_pty()
    try:
        copy_window_size(fds.console, master)
        bind_console(slave)
        with socket.socket(fileno=fds.console_socket) as channel:
            socket.send_fds(channel, [b"T"], [master])
    finally:
        os.close(master)
    for target in (0, 1, 2):
        os.dup2(slave, target, inheritable=True)
    os.close(slave)


def _split_env(env: list[str]) -> list[tuple[str, str]]:
    return [(item.split("=", 1)[0], item.split("=", 1)[1] if "=" in item else "") for item in env]


def _final_env(env: list[str], user: ExecUser) -> list[str]:
    """Docker adds HOME from the container's passwd entry when the spec does not set it."""
    if any(item.startswith("HOME=") for item in env):
        return list(env)
    return list(env) + [f"HOME={user.home or '/'}"]


def _env_path(env: list[str]) -> str:
    for key, value in _split_env(env):
        if key == "PATH":
            return value
    return ""


def _apply_rlimits(spec: ContainerSpec) -> None:
    import resource

    for limit in spec.process.rlimits:
        number = getattr(resource, limit.type, None)
        if number is None:
            raise RuntimeFailure(f"unknown rlimit {limit.type}")
        try:
            resource.setrlimit(number, (limit.soft, limit.hard))
        except (ValueError, OSError) as e:
            raise RuntimeFailure(f"setrlimit {limit.type}: {e}") from None


def _enter_workdir(cwd: str) -> None:
    """chdir to the working directory (created if missing, like Docker) and prove it is inside the new root."""
    try:
        os.makedirs(cwd, mode=0o755, exist_ok=True)
        os.chdir(cwd)
    except OSError as e:
        raise RuntimeFailure(f"chdir to cwd (\"{cwd}\") set in config.json failed: {e.strerror}") from None
    here = os.getcwd()
    if here.startswith("(unreachable)") or not here.startswith("/"):
        raise RuntimeFailure(f"current working directory {here!r} is outside the container root")


def _become_session_leader(terminal: bool) -> None:
    import fcntl
    import termios

    os.setsid()
    if terminal:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def find_executable(name: str, path_env: str) -> str:
    """Go's exec.LookPath, as runc uses it: search the container's PATH, check the mode bits only."""
    if "/" in name:
        try:
            _check_executable(name)
        except FileNotFoundError:
            raise CommandNotFound(
                f'exec: "{name}": stat {name}: no such file or directory') from None
        except PermissionError:
            raise CommandCannotRun(f'exec: "{name}": permission denied') from None
        return name
    for directory in path_env.split(":"):
        candidate = os.path.join(directory or ".", name)
        try:
            _check_executable(candidate)
            return candidate
        except OSError:
            continue
    raise CommandNotFound(f'exec: "{name}": executable file not found in $PATH')


def _check_executable(path: str) -> None:
    st = os.stat(path)
    if stat.S_ISDIR(st.st_mode) or not st.st_mode & 0o111:
        raise PermissionError(errno.EACCES, "permission denied", path)


def exec_error(name: str, error: OSError) -> PyctrError:
    """Map an execve failure to Docker's exit codes: missing -> 127, anything else -> 126."""
    if error.errno == errno.ENOENT:
        return CommandNotFound(f'exec: "{name}": no such file or directory')
    reason = "exec format error" if error.errno == errno.ENOEXEC else (error.strerror or str(error)).lower()
    return CommandCannotRun(f'exec: "{name}": {reason}')


def _drop_privileges(spec: ContainerSpec, user: ExecUser) -> None:
    """Bounding set first (needs CAP_SETPCAP), then ids, then permitted/effective; inheritable/ambient empty."""
    from pyctr.runtime import capabilities

    caps = spec.process.capabilities
    capabilities.drop_bounding_set(caps)
    capabilities.clear_inheritable_and_ambient()
    capabilities.keep_capabilities_across_setuid(True)
    os.setgroups(list(user.additional_gids))
    os.setgid(user.gid)
    os.setuid(user.uid)
    capabilities.keep_capabilities_across_setuid(False)
    capabilities.limit_permitted_and_effective(caps)
    if spec.process.no_new_privileges:
        capabilities.set_no_new_privileges()


def _reset_signals() -> None:
    """Python ignores SIGPIPE and handles SIGINT; the container's command must start with the defaults."""
    for name in _RESET_SIGNALS:
        number = getattr(signal, name, None)
        if number is not None:
            try:
                signal.signal(number, signal.SIG_DFL)
            except (OSError, ValueError):
                pass
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def _close_other_fds(report_fd: int, shim_fd: int) -> None:
    """Keep 0, 1, 2, the report pipe (moved to fd 3) and the sealed shim (fd 4), both CLOEXEC; close every other
    fd (CVE-2024-21626). A missing shim fails here: the command is never exec'd the unsafe way."""
    import fcntl

    from pyctr.runtime import syscalls

    if shim_fd < 0:
        raise RuntimeFailure("pyctr's exec shim was not loaded")
    # Copies above both targets first, so that neither move overwrites the other's source.
    report_copy = fcntl.fcntl(report_fd, fcntl.F_DUPFD_CLOEXEC, SHIM_FD + 1)
    shim_copy = fcntl.fcntl(shim_fd, fcntl.F_DUPFD_CLOEXEC, SHIM_FD + 1)
    os.dup2(report_copy, REPORT_FD, inheritable=False)
    _report_fd_now.append(REPORT_FD)
    os.dup2(shim_copy, SHIM_FD, inheritable=False)
    syscalls.close_range(SHIM_FD + 1)
