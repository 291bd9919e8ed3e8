"""The init of a new container: C, between fork and the shared process sequence.

Runs in the child that `process.launch` forked as PID 1 of the new PID
namespace. It never returns: it execs the container's command or reports why
it could not over the report pipe (process/report.py; CLOEXEC, so a successful
exec closes it empty) and exits. Order matters and follows runc:

  parent-death signal + non-dumpable (host state still reachable) -> stdio ->
  unshare mount/UTS/IPC/net -> tell M "ready" -> wait for "in cgroup" (M has
  put us in our cgroup) -> unshare cgroup -> rootfs + pivot_root -> the
  container's own pty (-t) -> hostname -> the process sequence shared with exec
  (process/sequence.py: user, rlimits, cwd, setsid, lookup, wait for M's "go"
  (the network is ready), seccomp, capabilities and ids, fds, exec of the
  sealed shim).

The privileged calls go through a `Kernel` (process/kernel.py): tests/unit/test_init_steps.py runs these
steps with a recording fake.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

from pyctr.errors import RuntimeFailure
from pyctr.runtime import syscalls
from pyctr.runtime.process import report, sequence
from pyctr.runtime.process.kernel import KERNEL, Kernel
from pyctr.runtime.spec import ContainerSpec

# The namespaces C unshares itself, beside its mount namespace.
NAMESPACE_FLAGS = {"uts": syscalls.CLONE_NEWUTS, "ipc": syscalls.CLONE_NEWIPC, "net": syscalls.CLONE_NEWNET}


@dataclass(frozen=True)
class ChildFds:
    """The fds the container process inherits from M across fork."""

    stdin: int
    stdout: int
    stderr: int
    go: int  # M -> C: report.IN_CGROUP after join_cgroup, report.GO after before_exec
    report: int  # C -> M: report.READY when in its namespaces, then a failure report; CLOEXEC
    console: int | None = None  # pty slave for -t: controlling terminal and /dev/console
    seccomp_program: bytes | None = None  # BPF compiled by M; installed while C is still root
    shim: int = -1  # the sealed exec shim's memfd (CLOEXEC), made by M: C execs the command through it
    console_socket: int | None = None  # -t: C sends the master of its own pty here (then `console` only sizes it)


def container_main(spec: ContainerSpec, fds: ChildFds, kernel: Kernel = KERNEL) -> None:
    """Entry point of the forked child. Never returns."""
    code = 125
    try:
        set_up_and_exec(spec, fds, kernel)
    except BaseException as e:  # the child must never unwind into M's code
        code = report.report_exception(fds.report, e, "container init")
    finally:
        os._exit(code)


def namespace_flags(spec: ContainerSpec) -> int:
    """The namespaces C unshares itself (the PID namespace was made by M; cgroup comes after M's cgroup)."""
    flags = syscalls.CLONE_NEWNS
    for name, flag in NAMESPACE_FLAGS.items():
        if name in spec.namespaces:
            flags |= flag
    return flags


def set_up_and_exec(spec: ContainerSpec, fds: ChildFds, kernel: Kernel = KERNEL) -> None:
    """The init's own steps, then the shared process sequence. Returns only by raising."""
    kernel.set_parent_death_signal(signal.SIGKILL)
    kernel.set_dumpable(False)
    os.umask(0o022)
    sequence.install_stdio(fds.stdin, fds.stdout, fds.stderr)
    join_namespaces(spec, kernel)
    kernel.unshare(namespace_flags(spec))
    # --sysctl (p15-ns): written once the network exists (M made it), through the host's /proc/sys (the
    # container's own is read-only by then); what a net.* or ipc key names is this process's namespace's.
    proc_sys = os.open("/proc/sys", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC) if spec.sysctls else -1
    os.write(fds.report, report.READY)
    if "net" in spec.namespaces:
        kernel.bring_loopback_up()
    from pyctr.runtime.rootfs import build_rootfs, remount_root_readonly

    def in_cgroup() -> None:
        """Wait while M puts us in our cgroup (the mounts so far overlap that), then enter its namespace."""
        if os.read(fds.go, 1) != report.IN_CGROUP:
            os._exit(125)  # M gave up (its hook failed): it reports the error, not us
        if "cgroup" in spec.namespaces:
            kernel.unshare(syscalls.CLONE_NEWCGROUP)

    def network_ready() -> None:
        if os.read(fds.go, 1) != report.GO:  # M made the network meanwhile
            os._exit(125)
        os.close(fds.go)
        if proc_sys >= 0:
            write_sysctls(proc_sys, spec.sysctls)

    kernel.seal_imports()  # the launcher preloaded all we need; after pivot_root an import would read the image
    build_rootfs(spec, None if fds.console_socket is not None else fds.console, in_cgroup, kernel)
    if fds.console_socket is not None:
        container_console(fds)
    if "uts" in spec.namespaces:  # never rename the host
        kernel.sethostname(spec.hostname)
    role = sequence.Role(
        joining=False, terminal=fds.console is not None,
        after_workdir=(lambda: remount_root_readonly(kernel)) if spec.rootfs.readonly else None,
        before_privileges=network_ready,
        # A container outlives M (run -d, a killed client); a build's step must not (setuid cleared the signal).
        parent_death_signal=signal.SIGKILL if spec.dies_with_launcher else 0)
    sequence.run_command(spec, role, fds.report, fds.shim, fds.seccomp_program, kernel)


def join_namespaces(spec: ContainerSpec, kernel: Kernel = KERNEL) -> None:
    """--ipc container:X (p15-ns): enter the donor's IPC namespace (opened by path while /proc is the host's)."""
    path = spec.join.get("ipc")
    if path:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            kernel.setns(fd, syscalls.CLONE_NEWIPC)
        finally:
            os.close(fd)


def write_sysctls(proc_sys: int, sysctls: dict[str, str]) -> None:
    """runc's writeSystemProperty for each --sysctl, then the directory fd is closed; runc's error words."""
    from pyctr.runtime.kernel_flags import sysctl_path

    try:
        for key, value in sysctls.items():
            relative = sysctl_path(key)
            try:
                fd = os.open(relative, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW, dir_fd=proc_sys)
                try:
                    os.write(fd, value.encode())
                finally:
                    os.close(fd)
            except OSError as e:
                raise RuntimeFailure(f"write /proc/sys/{relative}: {(e.strerror or str(e)).lower()}") from None
    finally:
        os.close(proc_sys)


def container_console(fds: ChildFds) -> None:
    """runc's setupConsole, after pivot_root: a pty from the container's own devpts instance (so `tty` prints
    /dev/pts/0 as in Docker), sized as the host pty M made, bound on /dev/console, its master sent to M; its
    slave replaces the host pty on 0, 1 and 2."""
    import socket

    from pyctr.runtime.process.console import open_container_pty
    from pyctr.runtime.rootfs import bind_console
    from pyctr.runtime.tty import copy_window_size

    if fds.console is None or fds.console_socket is None:
        raise RuntimeFailure("container init has no terminal to replace")
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
