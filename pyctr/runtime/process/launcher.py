"""Launching a container (the M side): fork C into a new PID namespace, run the hooks, wait for its exec.

M is the process calling `launch` (the CLI in the foreground, the monitor for
a detached container). M unshares CLONE_NEWPID, forks C (PID 1 of the new
namespace) and immediately setns()es its pid_for_children back to its own
namespace, so M's later children (subprocesses, other launches) stay on the
host. M remains C's parent and reaps it (`wait_container`).

Why M's executable is safe from the container (CVE-2019-5736): the attack
opens /proc/<runtime pid>/exe from inside the container. M is outside the
container's PID namespace, so no /proc the container can mount shows it;
C itself is made non-dumpable until it execs (so its own /proc/self/exe,
the host python, cannot be opened by other container processes during setup)
and C does not exec the command itself: it execs a sealed memfd copy of a
static shim, which execs the command (runtime/execshim.py), so a command that
is /proc/self/exe (or a symlink or #! to it) runs the shim, never the host
interpreter. pyctr never joins a running container by exec-ing the host
interpreter inside it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pyctr.errors import PyctrError, RuntimeFailure
from pyctr.runtime.process import liveness, reap, report
from pyctr.runtime.spec import ContainerSpec


@dataclass(frozen=True)
class Stdio:
    """The fds C gets as 0/1/2. `console` is the pty slave when -t (then usually stdin=stdout=stderr=console)."""

    stdin: int
    stdout: int
    stderr: int
    console: int | None = None
    # -t: M's end of the pty it relays. Given, C allocates the container's own pty from its devpts instance
    # (runc's setupConsole: `tty` says /dev/pts/0, not a host pty) and launch puts C's master on this fd number.
    console_master: int | None = None

    @classmethod
    def inherit(cls, interactive: bool = True) -> Stdio:
        """M's own stdout/stderr; stdin too with -i, else /dev/null (Docker without -i)."""
        stdin = 0 if interactive else os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        return cls(stdin, 1, 2)

    @classmethod
    def terminal(cls, slave_fd: int, master_fd: int | None = None) -> Stdio:
        """The host pty's slave (its window size is the container's first); with its master, the container's
        own pty replaces the pair when C starts (see console_master)."""
        return cls(slave_fd, slave_fd, slave_fd, console=slave_fd, console_master=master_fd)


@dataclass
class LaunchHooks:
    """Callbacks M runs with C's host PID while C is in its fresh namespaces. If one raises, C is killed and
    reaped and the error propagates from `launch`.

    join_cgroup(pid): put C in its cgroup; C waits for it before it unshares its cgroup namespace.
    before_exec(pid): runs while C builds its rootfs, which it overlaps: set up the network via
    /proc/<pid>/ns/net, rewrite hosts in the bundle *in place* (C bind-mounts that very file). C waits for
    it before it drops its privileges and execs.
    """

    join_cgroup: Callable[[int], None] | None = None
    before_exec: Callable[[int], None] | None = None
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Launched:
    """A started container process, named so that a reused pid is never mistaken for it."""

    pid: int  # C's PID on the host
    start_time: int  # /proc/<pid>/stat field 22: with the pid, identifies this process across pid reuse


def process_start_time(pid: int) -> int:
    """Clock ticks since boot at which `pid` started, a zombie included (it is still the process we launched);
    0 when it is gone (process/liveness.py)."""
    return liveness.start_time(pid) or 0


def prepare_bundle(spec: ContainerSpec) -> None:
    """Create what C will mount and is still missing: overlay dirs, hostname/hosts/resolv.conf, volume dirs.

    Files already written (by the network setup, or a previous start) are kept.
    """
    from pyctr.fsutil import atomic_write_bytes

    bundle = spec.bundle
    for path in (spec.rootfs.upperdir, spec.rootfs.workdir, spec.rootfs.merged):
        Path(path).mkdir(mode=0o755, parents=True, exist_ok=True)
    defaults = {"hostname": spec.hostname + "\n", "hosts": _default_hosts(spec), "resolv.conf": _default_resolv(spec)}
    for name, text in defaults.items():
        if not (bundle / name).exists():
            atomic_write_bytes(bundle / name, text.encode(), mode=0o644, durable=False)
    for source in spec.volumes_to_create:
        try:
            Path(source).mkdir(mode=0o755, parents=True, exist_ok=True)
        except FileExistsError:
            pass  # an existing file (or device, socket) is bound as it is: only a missing source becomes a dir


def _default_hosts(spec: ContainerSpec) -> str:
    from pyctr.runtime.network.hostfiles import hosts_file

    return hosts_file(spec.hostname, None, spec.network.extra_hosts)


def _default_resolv(spec: ContainerSpec) -> str:
    from pyctr.runtime.network.hostfiles import read_host_resolv_conf, resolv_conf

    host_text, upstream = read_host_resolv_conf()
    return resolv_conf(host_text, spec.network.dns, upstream)


def launch(spec: ContainerSpec, hooks: LaunchHooks | None = None, stdio: Stdio | None = None) -> Launched:
    """Start the container's process; return once its command was exec'd, or raise after reaping it.

    Raises CommandNotFound (127), CommandCannotRun (126) or RuntimeFailure (125),
    or whatever `hooks.before_exec` raised.
    """
    from pyctr.runtime.init import ChildFds

    hooks = hooks or LaunchHooks()
    if stdio is None:
        stdio = Stdio.inherit(spec.process.open_stdin)
        if stdio.stdin != 0:
            try:
                return launch(spec, hooks, stdio)
            finally:
                os.close(stdio.stdin)
    from pyctr.runtime.execshim import sealed_shim

    prepare_bundle(spec)
    program = seccomp_program(spec)
    shim = sealed_shim()  # before anything is started: without the shim no container starts
    preload_child_modules(terminal=stdio.console is not None and stdio.console_master is not None)
    report_r, report_w = os.pipe2(os.O_CLOEXEC)
    go_r, go_w = os.pipe2(os.O_CLOEXEC)
    console_r, console_w = _console_channel(stdio)
    fds = ChildFds(stdio.stdin, stdio.stdout, stdio.stderr, go_r, report_w, stdio.console, program,
                   shim=shim, console_socket=console_w)
    pid = _fork_into_new_pid_namespace(spec, fds)
    os.close(report_w)
    os.close(go_r)
    if console_w is not None:
        os.close(console_w)
    try:
        _handshake(pid, report_r, go_w, hooks)
        _wait_for_exec(report_r, spec.process.args[0])
        if console_r is not None:
            _adopt_container_console(console_r, stdio.console_master)
    except Exception:
        os.close(go_w)
        go_w = -1
        # C failed first (no such command): its reason wins
        reported = reported_failure(report_r, spec.process.args[0])
        reap.kill_and_reap(pid)
        if reported is not None:
            raise reported from None
        raise
    except BaseException:
        reap.kill_and_reap(pid)
        raise
    finally:
        os.close(report_r)
        if go_w >= 0:
            with contextlib.suppress(OSError):
                os.close(go_w)
        if console_r is not None:
            os.close(console_r)
    return Launched(pid, process_start_time(pid))


def _console_channel(stdio: Stdio) -> tuple[int | None, int | None]:
    """A socketpair (M's end, C's end) on which C sends the master of its own pty (runc's console socket)."""
    if stdio.console is None or stdio.console_master is None:
        return None, None
    import socket

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    return ours.detach(), theirs.detach()


def _adopt_container_console(channel: int, master_fd: int) -> None:
    """Put the container pty's master, sent by C before its exec, on `master_fd` (the host pty's master, which
    closes: the caller relays the container's pty through the same fd number)."""
    import socket

    with socket.socket(fileno=channel) as sock:
        try:
            _, fds, _, _ = socket.recv_fds(sock, 1, 1, socket.MSG_DONTWAIT)
        except BlockingIOError:
            fds = []
        sock.detach()
    if not fds:
        raise RuntimeFailure("container init did not send its console")
    os.dup2(fds[0], master_fd, inheritable=False)
    os.close(fds[0])


REPORT_GRACE_SECONDS = 5.0


def reported_failure(report_r: int, command: str = "", timeout: float = REPORT_GRACE_SECONDS) -> PyctrError | None:
    """After one of M's hooks failed, with the go pipe closed: the error C reported, if it failed on its own.

    C's command lookup (no such command, a directory, an unknown user) runs while M makes the network, and C
    exits right after reporting it, which breaks M's veth or netns set-up: the network error is only the
    consequence. Once the go pipe is closed, a C that has not failed exits silently at its next wait for M,
    so reading the report pipe to its end decides, every time, which failure came first."""
    import select
    import time

    deadline = time.monotonic() + timeout
    chunks = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([report_r], [], [], remaining)[0]:
            break  # C is stuck (say, in a mount): M's own error stands
        chunk = os.read(report_r, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    message = b"".join(chunks)
    return reported_error(message, command) if message.startswith(report.FAILED) else None


def seccomp_program(spec: ContainerSpec) -> bytes | None:
    """The container's seccomp BPF (Docker's default profile unless unconfined/custom), compiled once and cached
    under PYCTR_ROOT/seccomp (the bundle is PYCTR_ROOT/containers/<id>)."""
    if spec.process.seccomp == "unconfined":
        return None
    from pyctr.runtime import seccomp

    profile = spec.process.seccomp_profile if spec.process.seccomp == "custom" else seccomp.default_profile()
    try:
        return seccomp.cached_bpf(spec.bundle.parent.parent / "seccomp", profile or {},
                                  frozenset(spec.process.capabilities))
    except (ImportError, OSError, RuntimeError, ValueError) as e:
        raise RuntimeFailure(f"cannot build the seccomp filter: {e}") from None


def preload_child_modules(terminal: bool) -> None:
    """Import in M what C needs: the child must not pay for imports between fork and exec, and after it
    sealed its imports (runtime/process/sequence.seal_imports) it cannot import at all."""
    import fcntl  # noqa: F401
    import resource  # noqa: F401
    import termios  # noqa: F401

    import pyctr.runtime.init  # noqa: F401
    import pyctr.runtime.kernel_flags  # noqa: F401  (--sysctl's paths, after the imports are sealed)
    import pyctr.runtime.mountinfo  # noqa: F401  (rootfs reads the cgroup mounts)
    import pyctr.runtime.process.report  # noqa: F401  (sequence imports it lazily)
    import pyctr.runtime.rootfs  # noqa: F401
    import pyctr.runtime.users  # noqa: F401  (sequence imports it lazily)
    from pyctr.runtime import capabilities, execshim, syscalls  # noqa: F401

    capabilities.preload()
    if terminal:  # C's -t steps: its own pty, sent to M over a unix socket
        import socket  # noqa: F401

        import pyctr.runtime.process.console  # noqa: F401
        import pyctr.runtime.tty  # noqa: F401


def _fork_into_new_pid_namespace(spec: ContainerSpec, fds) -> int:
    from pyctr.runtime import syscalls

    own_pid_ns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if spec.join.get("pid"):  # --pid container:X (p15-ns): C is born in X's PID namespace
            donor = os.open(spec.join["pid"], os.O_RDONLY | os.O_CLOEXEC)
            try:
                syscalls.setns(donor, syscalls.CLONE_NEWPID)
            finally:
                os.close(donor)
        elif "pid" in spec.namespaces:
            syscalls.unshare(syscalls.CLONE_NEWPID)
        try:
            pid = os.fork()
        except BaseException:
            syscalls.setns(own_pid_ns, syscalls.CLONE_NEWPID)
            raise
        if pid == 0:
            _child(spec, fds)
        syscalls.setns(own_pid_ns, syscalls.CLONE_NEWPID)
    finally:
        os.close(own_pid_ns)
    return pid


def _child(spec: ContainerSpec, fds) -> None:
    try:
        from pyctr.runtime.init import container_main

        container_main(spec, fds)
    finally:
        os._exit(125)


def _handshake(pid: int, report_r: int, go_w: int, hooks: LaunchHooks) -> None:
    """Wait for C to be in its namespaces; cgroup, then let C build its rootfs while the network is made."""
    first = os.read(report_r, 1)
    if first != report.READY:
        raise reported_error(first + report.read_to_end(report_r))
    if hooks.join_cgroup is not None:
        hooks.join_cgroup(pid)  # if it fails, `launch` still prefers what C reported (say, a mount failed)
    _tell(go_w, report.IN_CGROUP)
    if hooks.before_exec is not None:
        hooks.before_exec(pid)  # if it fails because C failed meanwhile (no such command), `launch` says why
    _tell(go_w, report.GO)


def _tell(go_w: int, message: bytes) -> None:
    """A C that failed meanwhile (say, no such command) has closed its end: what it reported is raised next."""
    with contextlib.suppress(BrokenPipeError):
        os.write(go_w, message)


def _wait_for_exec(report_r: int, command: str) -> None:
    """C failed: raise what it reported (or that it died without a word); `launch` then reaps it."""
    failure = report.decode_failure(report.read_to_end(report_r), command)
    if failure is not None:
        raise failure


def reported_error(message: bytes, command: str = "") -> PyctrError:
    """The error a non-empty report of C carried (process/report.py); `command` names a failed execve."""
    return report.decode_failure(message, command) or RuntimeFailure("container init failed")


def wait_container(pid: int) -> int:
    """Block until C exits (it is M's child) and return Docker's exit code."""
    return reap.wait_exit_code(pid)
