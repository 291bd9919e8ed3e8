"""`pyctr exec`: run a command inside a running container, the way runc exec does.

Deciding (`plan_exec`, pure): which namespaces to join, the process to run
(the container's process with the exec's args, env, cwd, user and
capabilities), checked against the recorded state.

Doing (`run_exec`), three processes:

  P, the CLI: opens every /proc/<pid>/ns/* of the container's PID 1 before any
  setns, then checks the PID still belongs to the process recorded at start
  (PidStartTime), so a reused PID is never entered. P becomes a child
  subreaper and forks C.
  C: non-dumpable (CVE-2019-5736: nothing in the container may open its
  /proc/<pid>/exe, the host interpreter, or its fds), joins the container's
  cgroup, then the ipc, uts, net, pid, cgroup and mount namespaces (joining the
  mount namespace moves its root and cwd into the container, so the host cwd is
  never reachable), seals the import system (no module may be loaded from the
  container's filesystem by a root Python process), forks G into the PID
  namespace, tells P G's PID (over a pipe) and exits: G is re-parented to P (a child subreaper),
  which waits for it; with -d, P is no subreaper and G goes to the host's init,
  like Docker's exec processes belong to the shim, not to the container's PID 1.
  Whatever G leaves behind when it exits goes to the container's init.
  G: with -t, allocates its pty from the container's own /dev/pts/ptmx (so
  `tty` says /dev/pts/N inside) and passes the master to P over a unix socket
  (SCM_RIGHTS); then the process sequence a container's init runs too, as a
  joiner (process/sequence.py): user from the container's /etc/passwd, HOME,
  rlimits, working directory, setsid (+ controlling tty), PATH lookup, the
  container's seccomp filter, capabilities, every fd but 0/1/2, the CLOEXEC
  report pipe and the sealed exec shim closed (CVE-2024-21626), execveat of the
  shim, which execs the command (runtime/execshim.py: the host interpreter
  never becomes a container process's exe, CVE-2019-5736).

A failure in C or G before the execve arrives on the report pipe
(process/report.py), as for a container start, and is raised in P with
Docker's exec exit code (126: Docker 20.10 + runc report every exec start
failure, even a missing command, as 126). Without -t, P forwards the signals
it gets to G (process/signals.py, via a pidfd).
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import replace
from typing import TYPE_CHECKING, NamedTuple

from pyctr.errors import CommandCannotRun, ConflictError, PyctrError, RuntimeFailure, UsageError

if TYPE_CHECKING:
    from socket import socket

    from pyctr.config import Config
    from pyctr.runtime.cgroups import Cgroup
    from pyctr.runtime.process.kernel import Kernel
    from pyctr.runtime.spec import ContainerSpec
    from pyctr.runtime.state import ContainerState

# (name in spec.namespaces, file under /proc/<pid>/ns, CLONE_* flag), in the order they are joined (runc's:
# mount last, since after it the host's filesystem, /proc included, is out of reach).
NAMESPACES: tuple[tuple[str, str, int], ...] = (
    ("ipc", "ipc", 0x08000000),
    ("uts", "uts", 0x04000000),
    ("net", "net", 0x40000000),
    ("pid", "pid", 0x20000000),
    ("cgroup", "cgroup", 0x02000000),
    ("mount", "mnt", 0x00020000),
)
EXEC_FAILED_PREFIX = "OCI runtime exec failed: exec failed: unable to start container process: "
_MSG_PID = b"P"
_MSG_TTY = b"T"
_MSG_GO = b"G"


class ExecOptions(NamedTuple):
    """What `pyctr exec` parsed from its flags. (NamedTuples in this module: each dataclass costs about a
    millisecond to define at import, and `exec` is latency-bound.)"""

    args: list[str]
    interactive: bool = False
    tty: bool = False
    detach: bool = False
    env: tuple[str, ...] | list[str] = ()
    env_files: tuple[str, ...] | list[str] = ()
    user: str | None = None
    workdir: str | None = None
    privileged: bool = False


class Namespace(NamedTuple):
    name: str
    proc_name: str
    flag: int


class ExecPlan(NamedTuple):
    """Everything decided about one exec: whom to enter and what to run there."""

    container_id: str
    pid: int
    pid_start_time: int
    namespaces: tuple[Namespace, ...]
    spec: ContainerSpec  # the container's spec, its process replaced by the exec'd one
    container_spec: ContainerSpec  # unchanged: the seccomp filter is the container's
    tty: bool
    interactive: bool
    detach: bool


# ------------------------------------------------------------------------------------------ deciding (pure)


def shared_namespaces(spec) -> list[str]:
    """--pid/--ipc container:X (p15-ns): the container runs in X's namespace, which an exec joins too."""
    return [name for name, mode in (("pid", spec.pid_mode), ("ipc", spec.ipc_mode))
            if mode.startswith("container:") and name not in spec.namespaces]


def namespaces_to_join(container_namespaces: list[str]) -> tuple[Namespace, ...]:
    """The container's own namespaces, in joining order; one it shares with the host (net=host) is skipped."""
    return tuple(Namespace(name, proc, flag) for name, proc, flag in NAMESPACES if name in container_namespaces)


def exec_env(container_env: list[str], user_env: list[str], tty: bool, host_env: dict[str, str]) -> list[str]:
    """The container's process environment, TERM=xterm with -t (when not set), then -e / --env-file on top."""
    env = list(container_env)
    if tty and not any(item.startswith("TERM=") for item in env):
        env.append("TERM=xterm")
    from pyctr.runtime.spec import expand_user_env, replace_or_append_env

    return replace_or_append_env(env, expand_user_env(user_env, host_env))


def exec_capabilities(container_caps: list[str], privileged: bool) -> list[str]:
    """The container's capability list, or all of them with --privileged (Docker's exec --privileged)."""
    from pyctr.runtime.capabilities import ALL_CAPABILITIES

    return list(ALL_CAPABILITIES) if privileged else list(container_caps)


def ensure_running(container_id: str, state: ContainerState) -> None:
    """Docker refuses to exec into a container that is not running (exit 125)."""
    if not state.running or state.pid <= 0:
        raise ConflictError(f"Error response from daemon: Container {container_id} is not running")
    if state.status == "paused":
        raise ConflictError(f"Error response from daemon: Container {container_id} is paused, unpause the "
                            "container before exec")


def plan_exec(container_id: str, spec: ContainerSpec, state: ContainerState, options: ExecOptions,
              host_env: dict[str, str], env_file_items: list[str] | None = None) -> ExecPlan:
    """Decide the exec: refuse a stopped container or bad flags; build the process to run. Pure."""
    ensure_running(container_id, state)
    if not options.args:
        raise UsageError('"pyctr exec" requires at least 2 arguments')
    cwd = options.workdir or spec.process.cwd or "/"
    if not cwd.startswith("/"):
        raise UsageError(f"the working directory '{cwd}' is invalid, it needs to be an absolute path")
    process = replace(
        spec.process,
        args=list(options.args),
        env=exec_env(spec.process.env, list(env_file_items or []) + list(options.env), options.tty, host_env),
        cwd=os.path.normpath(cwd),
        user=options.user if options.user is not None else spec.process.user,
        terminal=options.tty and not options.detach,
        open_stdin=options.interactive and not options.detach,
        capabilities=exec_capabilities(spec.process.capabilities, options.privileged),
    )
    return ExecPlan(
        container_id=container_id,
        pid=state.pid,
        pid_start_time=state.pid_start_time,
        namespaces=namespaces_to_join(spec.namespaces + shared_namespaces(spec)),
        spec=replace(spec, process=process),
        container_spec=spec,
        tty=process.terminal,
        interactive=process.open_stdin,
        detach=options.detach,
    )


def exec_failure(kind: str, message: str) -> PyctrError:
    """What the CLI reports when the process could not be started inside the container (Docker: 126, whatever
    `kind` the child reported: CommandNotFound, CommandCannotRun or RuntimeFailure)."""
    return CommandCannotRun(EXEC_FAILED_PREFIX + message + ": unknown")


# ------------------------------------------------------------------------------------------ doing


def run_exec(config: Config, ref: str, options: ExecOptions) -> int:
    """`pyctr exec`: the command's exit code (or 0 at once with -d). Raises PyctrError with Docker's codes."""
    from pyctr.runtime.cgroups import warm_attach
    from pyctr.runtime.spec import ContainerSpec
    from pyctr.runtime.state import ContainerStore

    warm_attach()  # the joiner's cgroup write then skips the kernel's grace-period wait (see there)
    record = ContainerStore(config.paths).get(ref)
    ensure_running(record.id, record.state)
    env_file_items = read_env_files(options.env_files)
    spec = ContainerSpec.from_dict(record.config["Spec"])  # container.load_spec, without importing the lifecycle
    plan = plan_exec(record.id, spec, record.state, options, dict(os.environ), env_file_items)
    from pyctr import events

    exec_id, command = os.urandom(32).hex(), " ".join(options.args)
    events.record_container(config.root, record, f"exec_create: {command}", execID=exec_id)
    events.record_container(config.root, record, f"exec_start: {command}", execID=exec_id)
    code = execute(plan)
    if not options.detach:
        events.record_container(config.root, record, "exec_die", execID=exec_id, exitCode=code)
    return code


def exec_command_pids(session_pid: int) -> list[int]:
    """The command processes of an exec whose `run_exec` runs in process `session_pid` (G: it is a child
    subreaper, so G is its child once C exits); empty once the command has ended."""
    pids = []
    try:
        tasks = os.listdir(f"/proc/{session_pid}/task")
    except OSError:
        return []
    for task in tasks:
        try:
            with open(f"/proc/{session_pid}/task/{task}/children") as f:
                pids += [int(p) for p in f.read().split()]
        except (OSError, ValueError):
            continue
    return pids


def signal_exec_command(session_pid: int, sig: int, skip: set[int] | frozenset[int] = frozenset()) -> list[int]:
    """Send `sig` to the command of the exec run by `session_pid` (dockerd signals the exec's process when its
    client goes away: TERM, then KILL), except to the pids in `skip`; the pids signalled (none while the
    command is not started yet; the short-lived intermediate C may be among them, G follows once it exists)."""
    signalled = []
    for pid in exec_command_pids(session_pid):
        if pid in skip:
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
            signalled.append(pid)
    return signalled


def resize_exec_terminal(session_pid: int, rows: int, cols: int) -> bool:
    """The window size of an exec's terminal (its pty master lives in `session_pid`, the slave in G)."""
    from pyctr.runtime.tty import resize_terminal_of

    return any(resize_terminal_of(pid, rows, cols) for pid in exec_command_pids(session_pid))


def read_env_files(paths: list[str]) -> list[str]:
    """--env-file contents, parsed as for run (the runtime core's parser)."""
    if not paths:
        return []
    from pyctr.runtime.spec import env_from_files

    return env_from_files(list(paths))


def open_namespaces(plan: ExecPlan) -> dict[Namespace, int]:
    """Open every namespace of the container's PID 1 before joining any, then prove that PID is still it."""
    fds: dict[Namespace, int] = {}
    try:
        for ns in plan.namespaces:
            fds[ns] = os.open(f"/proc/{plan.pid}/ns/{ns.proc_name}", os.O_RDONLY | os.O_CLOEXEC)
        verify_same_process(plan)
    except FileNotFoundError:
        close_all(fds.values())
        raise ConflictError(f"Error response from daemon: Container {plan.container_id} is not running") from None
    except BaseException:
        close_all(fds.values())
        raise
    return fds


def verify_same_process(plan: ExecPlan) -> None:
    """The PID must still be the container's PID 1 started at PidStartTime (not a reused PID)."""
    from pyctr.runtime.process.liveness import is_running

    if not is_running(plan.pid, plan.pid_start_time):
        raise ConflictError(f"Error response from daemon: Container {plan.container_id} is not running")


def close_all(fds) -> None:
    for fd in list(fds):
        with contextlib.suppress(OSError):
            os.close(fd)


def execute(plan: ExecPlan) -> int:
    """Enter the container and run the plan's process; the exit code (0 with -d once it runs)."""
    from pyctr.runtime.cgroups import open_cgroup
    from pyctr.runtime.process import seccomp_program

    program = seccomp_program(plan.container_spec)
    cgroup = open_cgroup(plan.container_id)
    preload_child_modules(plan.tty)
    ns_fds = open_namespaces(plan)
    try:
        return _fork_and_wait(plan, ns_fds, cgroup, program)
    finally:
        close_all(ns_fds.values())


def preload_child_modules(tty: bool) -> None:
    """Import in P everything C and G use: they must not import anything once inside the container."""
    import fcntl  # noqa: F401
    import json  # noqa: F401
    import resource  # noqa: F401
    import stat  # noqa: F401
    import struct  # noqa: F401
    import termios  # noqa: F401

    import pyctr.runtime.process.console  # noqa: F401
    import pyctr.runtime.process.report  # noqa: F401  (sequence imports it lazily)
    import pyctr.runtime.process.sequence  # noqa: F401
    import pyctr.runtime.users  # noqa: F401  (sequence imports it lazily)
    from pyctr.runtime import capabilities, execshim, syscalls  # noqa: F401

    capabilities.preload()
    if tty:  # only -t needs a unix socket (SCM_RIGHTS); `socket` costs milliseconds to import
        import array  # noqa: F401
        import socket  # noqa: F401


class _Channels(NamedTuple):
    """P <-> C/G plumbing, all CLOEXEC: the report pipe (empty at EOF = exec'd), the pipe C tells G's PID on,
    and with -t a seqpacket socket pair for the pty master (G -> P) and "go" (P -> G); the sealed exec shim
    G execs the command through (made in P: inside the container the host's copy is out of reach)."""

    report_r: int
    report_w: int
    pid_r: int
    pid_w: int
    parent: socket | None
    child: socket | None
    stdin: int
    stdout: int
    stderr: int
    opened: list[int]  # fds P opened for the child's stdio (closed after fork)
    shim: int


def _channels(plan: ExecPlan) -> _Channels:
    from pyctr.runtime.execshim import sealed_shim

    shim = sealed_shim()  # first: without the shim nothing is started
    report_r, report_w = os.pipe2(os.O_CLOEXEC)
    pid_r, pid_w = os.pipe2(os.O_CLOEXEC)
    parent = child = None
    if plan.tty:
        import socket

        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    opened: list[int] = []

    def devnull(flags: int) -> int:
        fd = os.open(os.devnull, flags | os.O_CLOEXEC)
        opened.append(fd)
        return fd

    stdin = 0 if plan.interactive else devnull(os.O_RDONLY)
    out = devnull(os.O_WRONLY) if plan.detach else 1
    err = devnull(os.O_WRONLY) if plan.detach else 2
    return _Channels(report_r, report_w, pid_r, pid_w, parent, child, stdin, out, err, opened, shim)


def _fork_and_wait(plan: ExecPlan, ns_fds: dict[Namespace, int], cgroup: Cgroup, program: bytes | None) -> int:
    from pyctr.runtime import syscalls
    from pyctr.runtime.process.signals import SignalForwarder, forwarded_signals

    ch = _channels(plan)
    if not plan.detach:
        # G is re-parented to us when C exits, so we can wait for it (its own orphans go to the container's init).
        syscalls.prctl(syscalls.PR_SET_CHILD_SUBREAPER, 1)
    # Signals meant for the command are held until we can forward them (C and G start with them blocked too:
    # G's init step resets its mask before exec).
    saved_mask = signal.pthread_sigmask(signal.SIG_BLOCK, forwarded_signals())
    try:
        target, master = _start(plan, ns_fds, cgroup, program, ch)
        forwarder = SignalForwarder(target) if not plan.detach and master is None else None
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, saved_mask)
    if plan.detach:
        return 0
    if master is not None:
        from pyctr.runtime.tty import run_terminal_session

        return run_terminal_session(master, target, forward_stdin=plan.interactive)
    from pyctr.runtime.process.reap import wait_exit_code

    with forwarder:
        return wait_exit_code(target)


def _start(plan: ExecPlan, ns_fds: dict[Namespace, int], cgroup: Cgroup, program: bytes | None,
           ch: _Channels) -> tuple[int, int | None]:
    """Fork C, get G's PID (and pty master), reap C, wait until G exec'd; undo everything if that fails."""
    from pyctr.runtime.process.reap import reap

    intermediate = os.fork()
    if intermediate == 0:  # pragma: no cover - runs in the forked child
        _intermediate_main(plan, ns_fds, cgroup, program, ch)
    close_all([ch.report_w, ch.pid_w, *ch.opened])
    if ch.child is not None:
        ch.child.close()
    target = 0
    master = None
    try:
        target, master = _receive_handshake(plan, ch)
        reap(intermediate)
        intermediate = 0
        _wait_for_exec(ch.report_r, plan.spec.process.args[0])
    except BaseException:
        if not plan.detach:  # with -d, G is not our child: its PID may already belong to someone else
            _kill_quietly(target)
        if master is not None:
            os.close(master)
        if intermediate:
            reap(intermediate)
        if target and not plan.detach:
            reap(target)
        raise
    finally:
        close_all([ch.report_r, ch.pid_r])
        if ch.parent is not None:
            ch.parent.close()
    return target, master


def _receive_handshake(plan: ExecPlan, ch: _Channels) -> tuple[int, int | None]:
    """G's host PID from C, and with -t the pty master from G (then G waits for "go": the size is set first).

    An end of file instead means C or G failed before: the report pipe says why.
    """
    message = os.read(ch.pid_r, 64)  # one small write by C: atomic
    if not message.startswith(_MSG_PID):
        _wait_for_exec(ch.report_r)
        raise RuntimeFailure("pyctr exec: the process entering the container died without reporting why")
    target, master = int(message[1:]), None
    if plan.tty:
        master = _receive_master(ch)
        from pyctr.runtime.tty import copy_window_size

        copy_window_size(0, master)
        ch.parent.send(_MSG_GO)
    return target, master


def _receive_master(ch: _Channels) -> int:
    import socket

    message, fds, _, _ = socket.recv_fds(ch.parent, 64, 1, socket.MSG_CMSG_CLOEXEC)
    if message == _MSG_TTY and fds:
        return fds[0]
    close_all(fds)
    _wait_for_exec(ch.report_r)
    raise RuntimeFailure("pyctr exec: the exec'd process died before it set up its terminal")


def _wait_for_exec(report_r: int, command: str = "") -> None:
    """EOF with nothing = the command was exec'd (the pipe is CLOEXEC); otherwise raise what C/G reported
    (the exec shim reports a failed execve of `command` as its errno: runtime/execshim.py)."""
    from pyctr.runtime.process import report

    failure = report.decode_failure(report.read_to_end(report_r), command, who="the exec'd process")
    if failure is not None:
        raise exec_failure(type(failure).__name__, failure.message)


def _kill_quietly(pid: int) -> None:
    if pid > 0:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


# ------------------------------------------------------------------------------------------ C: entering


def _intermediate_main(plan: ExecPlan, ns_fds: dict[Namespace, int], cgroup: Cgroup, program: bytes | None,
                       ch: _Channels) -> None:  # pragma: no cover - runs in the forked child
    """C: join the cgroup and namespaces, fork G into the PID namespace, tell P its PID, exit. Never returns."""
    from pyctr.runtime.process import report

    code = 125
    try:
        close_all([ch.report_r, ch.pid_r])
        if ch.parent is not None:
            ch.parent.close()
        enter_container(plan, ns_fds, cgroup)
        target = os.fork()
        if target == 0:
            _target_main(plan, program, ch)
        os.write(ch.pid_w, _MSG_PID + str(target).encode())
        code = 0
    except BaseException as e:
        report.report_exception(ch.report_w, e, "exec setup")
    finally:
        os._exit(code)


def enter_container(plan: ExecPlan, ns_fds: dict[Namespace, int], cgroup: Cgroup, kernel: Kernel | None = None) -> None:
    """Non-dumpable first; cgroup before the cgroup namespace; the mount namespace last (imports sealed just
    before it: from then on the import path would name the container's files)."""
    from pyctr.runtime.process.kernel import KERNEL

    kernel = kernel or KERNEL
    kernel.set_parent_death_signal(signal.SIGKILL)  # P gone during setup: do not linger half-entered
    kernel.set_dumpable(False)
    if cgroup.paths:
        cgroup.add_process(os.getpid())
    for ns in plan.namespaces:
        if ns.name == "mount":
            kernel.seal_imports()
        kernel.setns(ns_fds[ns], ns.flag)
        os.close(ns_fds[ns])
    os.chdir("/")  # setns(mnt) already moved root and cwd to the container's root; make it explicit
    os.umask(0o022)


# ------------------------------------------------------------------------------------------ G: the process


def _target_main(plan: ExecPlan, program: bytes | None, ch: _Channels) -> None:  # pragma: no cover - child
    """G, inside every namespace: set the process up as the container's own and exec. Never returns."""
    from pyctr.runtime.process import report

    code = 125
    try:
        _prepare_and_exec(plan, program, ch)
    except BaseException as e:
        code = report.report_exception(ch.report_w, e, "exec")
    finally:
        os._exit(code)


def _prepare_and_exec(plan: ExecPlan, program: bytes | None, ch: _Channels) -> None:
    from pyctr.runtime.process import sequence

    console = _container_terminal(ch) if plan.tty else None
    stdio = (console, console, console) if console is not None else (ch.stdin, ch.stdout, ch.stderr)
    sequence.install_stdio(*stdio)
    os.close(ch.pid_w)
    if ch.child is not None:
        ch.child.close()
    if console is not None:
        os.close(console)
    role = sequence.Role(joining=True, terminal=console is not None)
    sequence.run_command(plan.spec, role, ch.report_w, ch.shim, program)


def _container_terminal(ch: _Channels) -> int:
    """Allocate a pty from the container's devpts, hand the master to P, wait until P has sized it."""
    import socket

    from pyctr.runtime.process.console import open_container_pty

    master, slave = open_container_pty()
    try:
        socket.send_fds(ch.child, [_MSG_TTY], [master])
    finally:
        os.close(master)
    if ch.child.recv(8) != _MSG_GO:
        raise RuntimeFailure("pyctr exec went away before the terminal was set up")
    return slave
