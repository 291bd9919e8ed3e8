"""The warm server behind the `pyctr` command: everything imported once, one forked worker per command.

Why: see pyctr/client.py. The server is an accelerator, never a dependency: it holds no state (the
store, containers and locks stay on disk exactly as when the CLI runs alone), it serves root only,
and a command it cannot take runs in the client's own process.

Life cycle: the first `pyctr` command that finds no server starts one (`python -P -m pyctr.server`).
It takes a lock (one server per installation), imports pyctr's modules, binds a root-only socket
under /run/pyctr and serves until it has been idle for PYCTR_SERVER_IDLE seconds (default 600) or
its code changed on disk (checked at every request: a stale server serves nothing and leaves).

A spare worker, forked ahead of time, waits in accept(). Right after accept, before it reads a byte, it
checks the client through a pidfd (SO_PEERPIDFD, so a number reused by another process proves nothing):
the same user, capabilities, no_new_privs, seccomp (none: two filters cannot be compared), LSM labels
(every LSM's), cgroups, namespaces and root directory as the server's; a client that differs is declined
there and the spare goes back to accept() (no process is forked for it, nothing is read). A client that
passes makes the spare a worker and the server forks the next spare, up to MAX_WORKERS at a time (beyond,
the server declines by itself). The worker reads a request of at most MAX_REQUEST bytes, checks the
proof descriptor (see pyctr/client.py: only a client Landlock and the LSMs let ptrace the server has it),
takes the client's descriptors, working directory, environment, umask and resource limits, closes every
other descriptor the server had (the listening socket never reaches a container), then runs the CLI as
the client would have. The worker sends the exit code itself; the server reports a worker killed by a
signal, and SIGKILLs the worker if the client dies first, so killing the `pyctr` process kills the
command, as it would in-process.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import io
import marshal
import os
import re
import select
import signal
import socket
import sys
import time

from pyctr import protocol
from pyctr.client import (
    BIN_DIR,
    PACKAGE_DIR,
    PRIVILEGE_FIELDS,
    SOCKET_DIR,
    context,
    lsm_attributes,
    peer_proc_dir,
    proc_dir_of,
    socket_path,
)
from pyctr.protocol import ACCEPTED, DECLINED, MAX_EXTRA_FDS, MAX_REQUEST, PROOF_FD, STATUS
from pyctr.runtime.process.inherited import disown_inherited_fds

IDLE_SECONDS = 600.0
# Modules of pyctr the preload does not walk: the entry points (client, server, __main__) and the detached
# container's monitor (its own process); what they import lazily is not loaded for them. (The monitor is
# loaded all the same: a foreground run imports parts of it lazily.)
NOT_PRELOADED = frozenset({"pyctr.client", "pyctr.server", "pyctr.__main__", "pyctr.runtime.monitor"})
# An indented import line: an import inside a function (or a block), which pyctr writes to keep the in-process
# CLI's start-up small; the server loads all of them ahead. Read off the source on each start, never listed
# by hand (tests/unit/test_client.py checks it against the syntax tree). Groups: `import a.b as c, d` ->
# "a.b as c, d"; `from a.b import (c, d` -> "a.b", "c, d".
LAZY_IMPORT_LINE = re.compile(
    rb"^[ \t]+(?:import[ \t]+([\w. \t,]+)|from[ \t]+(\w[\w.]*)[ \t]+import[ \t]+\(?([\w \t,]*))", re.MULTILINE)
MAX_WORKERS = 32  # commands under way at once; beyond, clients run their commands themselves
REQUEST_SECONDS = 10.0  # for the whole request to arrive
TOOK, STALE = b"t", b"s"  # spare -> server
# Kept, never closed: the server's own std streams, replaced in each worker by the client's.
_ORIGINAL_STREAMS: list[object] = []


def lazy_imports_in(source: bytes) -> list[tuple[str, tuple[str, ...]]]:
    """The indented imports of a module's source: (module, names imported from it; empty for `import m`)."""
    found: list[tuple[str, tuple[str, ...]]] = []
    for modules, package, names in LAZY_IMPORT_LINE.findall(source):
        if modules:
            found += [(word.split()[0].decode(), ()) for word in modules.split(b",") if word.strip()]
        else:
            found.append((package.decode(), tuple(word.split()[0].decode() for word in names.split(b",")
                                                  if word.strip())))
    return found


def lazy_imports(package_dir: str = PACKAGE_DIR) -> list[tuple[str, tuple[str, ...]]]:
    """Every indented import in pyctr's preloaded modules."""
    found = []
    for directory, _, files in os.walk(package_dir):
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            path = os.path.join(directory, name)
            dotted = os.path.relpath(path, os.path.dirname(package_dir))[:-3].replace(os.sep, ".")
            if dotted.removesuffix(".__init__") in NOT_PRELOADED:
                continue
            with open(path, "rb") as file:
                found += lazy_imports_in(file.read())
    return found


def preload() -> None:
    """Import what commands use, so that a worker starts with all of it in memory: pyctr's modules and what
    they import lazily (a `from package import name` may name a submodule: that is loaded too)."""
    import importlib
    import pkgutil

    import pyctr

    for info in pkgutil.walk_packages(pyctr.__path__, "pyctr."):
        if info.name not in NOT_PRELOADED:
            with contextlib.suppress(Exception):
                importlib.import_module(info.name)
    with contextlib.suppress(Exception):
        from pyctr.runtime.network import preload_in_background

        preload_in_background().join()  # first: pyroute2 as a bare package (IPRoute, NetlinkError), not its __init__
    for module, names in lazy_imports():
        with contextlib.suppress(Exception):
            if hasattr(importlib.import_module(module), "__path__"):
                for name in names:
                    with contextlib.suppress(Exception):
                        importlib.import_module(f"{module}.{name}")


def loaded_code() -> tuple[str, ...]:
    """The files the server's code came from: pyctr's loaded modules and the import path's directories
    (installing or upgrading a package changes its directory)."""
    files = {getattr(m, "__file__", None) for m in list(sys.modules.values())}
    return tuple(sorted(f for f in files if f and f.startswith(PACKAGE_DIR))) + tuple(sys.path)


def code_stamp(files: tuple[str, ...]) -> tuple:
    """What those files are on disk now: a change means the server is stale."""
    stamp = []
    for path in files:
        try:
            st = os.stat(path)
            stamp.append((st.st_mtime_ns, st.st_size))
        except OSError:
            stamp.append(None)
    return tuple(stamp)


# ------------------------------------------------------------------ the worker side


def may_serve(peer: tuple, own: tuple) -> bool:
    """Whether a worker with the server's context (`own`) can do nothing the client (`peer`) could not:
    only when both are the same. A seccomp filter cannot be compared with another (the status shows how
    many, not which), so a server under one serves nobody."""
    seccomp = own[0][PRIVILEGE_FIELDS.index("Seccomp")]
    return seccomp == b"0" and peer == own


_OWN: list[tuple] = []  # this process's context, read once per spare before it waits (off a command's path)


def own_context(fresh: bool = False) -> tuple:
    if fresh:
        _OWN.clear()
    if not _OWN:
        proc = os.open("/proc/self", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            _OWN.append(context(proc, lsm_attributes()))
        finally:
            os.close(proc)
    return _OWN[0]


def _may_serve_proc(proc: int | None) -> bool:
    if proc is None:
        return False
    try:
        return may_serve(context(proc, lsm_attributes()), own_context())
    except OSError:  # it exited meanwhile
        return False
    finally:
        os.close(proc)


def same_context(pidfd: int) -> bool:
    """Whether the process `pidfd` names runs with exactly the server's privileges, labels, cgroups,
    namespaces and root directory: the worker acts for the client, so it must never be able to do more
    than the client could."""
    return _may_serve_proc(proc_dir_of(pidfd))


def may_serve_peer(conn: socket.socket) -> bool:
    """The check right after accept, before a byte of the request is read: the connecting process, named by
    a pidfd (none from the kernel: not served), in the server's context."""
    return _may_serve_proc(peer_proc_dir(conn))


def _receive(conn: socket.socket, seconds: float = REQUEST_SECONDS) -> tuple[object, list[int]]:
    """The request and its descriptors: at most MAX_REQUEST bytes, all within `seconds`."""
    deadline = time.monotonic() + seconds
    conn.settimeout(seconds)
    data, ancdata, flags, _ = conn.recvmsg(1 << 16, socket.CMSG_SPACE((protocol.FIXED_FDS + MAX_EXTRA_FDS) * 4))
    fds: list[int] = []
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % 4
            fds += [int.from_bytes(payload[i:i + 4], sys.byteorder) for i in range(0, usable, 4)]
    try:
        if flags & socket.MSG_CTRUNC or len(data) < 4:
            raise ValueError("truncated request")
        size = int.from_bytes(data[:4], "little")
        if size > MAX_REQUEST or len(data) - 4 > size:
            raise ValueError("request too large")
        body = bytearray(size)
        body[:len(data) - 4] = data[4:]
        view, got = memoryview(body), len(data) - 4
        while got < size:
            conn.settimeout(max(0.001, deadline - time.monotonic()))
            n = conn.recv_into(view[got:])
            if not n:
                raise ValueError("truncated request")
            got += n
        return marshal.loads(body), fds
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise


def _stream(fd: int, writing: bool, unbuffered: bool) -> io.TextIOWrapper:
    """A std stream as the interpreter makes one at start-up, over a descriptor it must not close."""
    raw = io.FileIO(fd, "wb" if writing else "rb", closefd=False)
    buffered = io.BufferedWriter(raw) if writing else io.BufferedReader(raw)
    errors = "backslashreplace" if fd == 2 else "surrogateescape"
    line_buffering = writing and (fd == 2 or raw.isatty())
    return io.TextIOWrapper(buffered, encoding="utf-8", errors=errors, line_buffering=line_buffering,
                            write_through=writing and unbuffered)


def _take_over(request: dict, fds: list[int], conn: socket.socket) -> socket.socket:
    """Become the client's process: its descriptors (under the client's numbers), cwd, environment, umask,
    limits and argv. Returns the connection, moved above every number the client uses."""
    argv, environ, limits = request[protocol.ARGV], request[protocol.ENVIRON], request[protocol.LIMITS]
    import resource

    os.close(fds.pop(protocol.PROOF_INDEX))  # the proof: checked, done with

    for kind, (soft, hard) in enumerate(limits):  # first: the one step that may fail (raising a limit)
        if resource.getrlimit(kind) != (soft, hard):
            resource.setrlimit(kind, (soft, hard))
    targets = [*range(protocol.STD_FDS), *request[protocol.EXTRA_FDS]]
    base = max([*targets, *fds, conn.fileno()]) + 1
    moved = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, base) for fd in fds]  # out of the way of every target
    conn = socket.socket(fileno=fcntl.fcntl(conn.detach(), fcntl.F_DUPFD_CLOEXEC, base))
    for fd in fds:
        os.close(fd)
    cwd = protocol.CWD_INDEX  # the proof is gone: the client's other descriptors follow the working directory
    received = dict(zip(targets, [*moved[:cwd], *moved[cwd + 1:]], strict=True))
    for target, fd in received.items():
        os.dup2(fd, target, inheritable=True)
    os.fchdir(moved[cwd])
    for fd in moved:
        os.close(fd)
    os.umask(request[protocol.UMASK])
    os.environ.clear()
    os.environ.update(environ)
    sys.argv = ["pyctr", *argv]
    _ORIGINAL_STREAMS.extend([sys.stdin, sys.stdout, sys.stderr, sys.__stdin__, sys.__stdout__, sys.__stderr__])
    unbuffered = bool(environ.get("PYTHONUNBUFFERED"))
    sys.stdin = sys.__stdin__ = _stream(0, False, unbuffered)
    sys.stdout = sys.__stdout__ = _stream(1, True, unbuffered)
    sys.stderr = sys.__stderr__ = _stream(2, True, unbuffered)
    return conn


def _acceptable(request: object, fds: list[int]) -> bool:
    """The same protocol and installation, every descriptor announced, and the proof: a descriptor of the
    server's PROOF_FD file, which the client could open through /proc only if Landlock, the LSMs and the
    capability rules let it ptrace the server, i.e. if it is no more confined than the server (its
    privileges, labels and namespaces were compared at accept)."""
    if not protocol.is_request(request):
        return False
    if (request[protocol.BIN_DIR], request[protocol.PACKAGE_DIR]) != (BIN_DIR, PACKAGE_DIR):  # type: ignore[index]
        return False
    if len(fds) != protocol.FIXED_FDS + len(request[protocol.EXTRA_FDS]):  # type: ignore[index]
        return False
    try:
        return os.path.samestat(os.fstat(fds[protocol.PROOF_INDEX]), os.fstat(PROOF_FD))
    except OSError:
        return False


def _reset_signals() -> None:
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD, signal.SIGUSR1, signal.SIGUSR2, signal.SIGQUIT):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as the interpreter sets it at start-up


def _reply(conn: socket.socket, kind: bytes, value: int = 0) -> None:
    conn.sendall(protocol.encode_reply(kind, value), socket.MSG_NOSIGNAL)


def worker(conn: socket.socket) -> None:
    """In a forked child: check and take over the client, then run the CLI. Never returns."""
    accepted = False
    try:
        try:
            request, fds = _receive(conn)
        except (OSError, ValueError, EOFError, TypeError):  # too large, too slow, truncated, not marshal
            _reply(conn, DECLINED)
            os._exit(0)
        if not _acceptable(request, fds):
            _reply(conn, DECLINED)
            os._exit(0)
        try:
            conn = _take_over(request, fds, conn)
        except (OSError, ValueError):  # a limit we may not raise (no CAP_SYS_RESOURCE), a descriptor too high
            with contextlib.suppress(OSError):
                _reply(conn, DECLINED)
            os._exit(0)
        _reply(conn, ACCEPTED, os.getpid())
        accepted = True
        # Keep the client's descriptors and the connection (for the exit status; close-on-exec, so no
        # container ever gets it); close the listening socket, other clients' connections, the server's pipes.
        # Each given up as the API daemon's children give theirs up (runtime/process/inherited.py): no object
        # of the server's, finalized in this worker, can close a descriptor the command opens.
        disown_inherited_fds({*range(protocol.STD_FDS), *request[protocol.EXTRA_FDS], conn.fileno()})
        conn.setblocking(True)
        from pyctr.cli import main

        # The client learns the exit code as soon as the output is flushed, not after this big
        # process's teardown; the server still reports deaths by signal.
        main(on_exit=lambda exit_code: _reply(conn, STATUS, exit_code << 8))
    except BaseException:  # noqa: BLE001 - a worker never returns into the server's loop
        if not accepted:  # the client runs the command itself: it says whatever there is to say
            os._exit(125)
        with contextlib.suppress(Exception):  # only --debug lets an error out of the CLI: show it, as it would
            import traceback

            traceback.print_exc()
            sys.stderr.flush()
    finally:
        os._exit(125)


def spare(listener: socket.socket, channel: socket.socket, files: tuple[str, ...], stamp: tuple,
          parent: int) -> None:
    """A worker forked ahead of time, waiting in accept(): a command reaches it with no process to wake or
    fork on the way. It hands the server a copy of the connection (for the exit status and for noticing
    the client's death), then checks the code on disk is still what it runs, then serves."""
    try:
        _reset_signals()
        from pyctr.runtime.syscalls import populate_private_memory, set_parent_death_signal

        set_parent_death_signal(signal.SIGKILL)  # a spare never outlives its server (it would hold the socket)
        if os.getppid() != parent:
            os._exit(0)
        populate_private_memory(stop=_client_waiting(listener))  # stops as soon as a command is waiting
        own_context(fresh=True)  # what it is now (a process can be moved to another cgroup, say)
        code_stamp(files)  # its first run in a process is several times slower than the next
        conn = _accept_servable(listener)
        set_parent_death_signal(0)  # a command under way finishes even if the server goes
        stale = code_stamp(files) != stamp
        socket.send_fds(channel, [STALE if stale else TOOK], [conn.fileno()])
    except BaseException:  # noqa: BLE001 - killed or the server left: nothing was started
        os._exit(0)
    if stale:  # the client runs the command itself, with the code now on disk
        with contextlib.suppress(OSError):
            _reply(conn, DECLINED)
        os._exit(0)
    worker(conn)


def _client_waiting(listener: socket.socket):
    """A check, cheap enough to ask every megabyte, whether a connection is waiting to be accepted."""
    waiting = select.poll()
    waiting.register(listener, select.POLLIN)
    return lambda: bool(waiting.poll(0))


def _accept_servable(listener: socket.socket) -> socket.socket:
    """The next connection from a client the server may serve. Others are declined right here, before a byte
    is read and without a fork: a client the server would not serve cannot make it spend memory or processes."""
    while True:
        conn, _ = listener.accept()
        if may_serve_peer(conn):
            return conn
        _decline(conn)


def _decline(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        conn.send(protocol.encode_reply(DECLINED), socket.MSG_NOSIGNAL | socket.MSG_DONTWAIT)
    conn.close()


# ------------------------------------------------------------------ the server side


class Server:
    """Keeps one spare worker waiting for a command, relays workers' exit status, leaves when idle or stale."""

    def __init__(self, listener: socket.socket, path: str, idle: float, lock: int | None = None) -> None:
        self.listener: socket.socket | None = listener
        self.lock = lock  # the installation's server lock: held while this server takes commands
        self.path = path
        self.path_inode = os.stat(path).st_ino  # to remove the socket only while it is still ours
        self.idle = idle
        self.files = loaded_code()
        self.stamp = code_stamp(self.files)
        self.poll = select.poll()
        self.workers: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, client connection)
        self.clients: dict[int, int] = {}  # connection fd -> pidfd
        self.last_active = time.monotonic()
        self.spare: tuple[int, int, socket.socket] | None = None  # pid, pidfd, channel
        self.declining = False  # MAX_WORKERS are busy: no spare, the server declines connections itself
        self._fork_spare()

    def _fork_spare(self) -> None:
        if self.listener is None:
            return
        if len(self.workers) >= MAX_WORKERS:
            if not self.declining:
                self.declining = True
                self.poll.register(self.listener, select.POLLIN)
            return
        if self.declining:
            self.declining = False
            self.poll.unregister(self.listener)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            ours.close()
            spare(self.listener, theirs, self.files, self.stamp, parent)
        theirs.close()
        pidfd = os.pidfd_open(pid)
        self.spare = (pid, pidfd, ours)
        self.poll.register(ours, select.POLLIN)
        self.poll.register(pidfd, select.POLLIN)

    def _forget_spare(self) -> tuple[int, int, socket.socket]:
        pid, pidfd, channel = self.spare  # type: ignore[misc]
        self.spare = None
        self.poll.unregister(channel)
        self.poll.unregister(pidfd)
        return pid, pidfd, channel

    def _drop_spare(self) -> None:
        """Stop the waiting spare: it has not started on any command, so there is nothing to finish."""
        if self.spare is None:
            return
        pid, pidfd, channel = self._forget_spare()
        channel.close()
        with contextlib.suppress(OSError):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(pidfd)

    def serve(self) -> None:
        while self.listener is not None or self.workers:
            if not self.workers and time.monotonic() - self.last_active > self.idle:
                break
            timeout = None if self.workers else max(0.0, self.idle - (time.monotonic() - self.last_active))
            # One event per round: handling it closes and opens descriptors, so the rest of this round's list
            # could name a number that now means something else. Events not handled are reported again.
            for fd, _ in self.poll.poll(None if timeout is None else int(timeout * 1000) + 1)[:1]:
                if self.spare is not None and fd in (self.spare[1], self.spare[2].fileno()):
                    self._spare_news()
                elif fd in self.workers:
                    self._reap(fd)
                elif fd in self.clients:
                    self._client_gone(fd)
                elif self.declining and self.listener is not None and fd == self.listener.fileno():
                    self._decline_one()
        self.retire()

    def _decline_one(self) -> None:
        """At MAX_WORKERS: the client runs its command itself (nothing read, nothing forked)."""
        self.listener.setblocking(False)  # type: ignore[union-attr]
        try:
            conn, _ = self.listener.accept()  # type: ignore[union-attr]
        except OSError:  # another client took it back meanwhile
            return
        finally:
            self.listener.setblocking(True)  # type: ignore[union-attr]
        _decline(conn)

    def _spare_news(self) -> None:
        """The spare took a connection (it is a worker now), found the code stale, or died."""
        pid, pidfd, channel = self._forget_spare()
        try:
            message, fds, _, _ = socket.recv_fds(channel, 16, 1)
        except OSError:
            message, fds = b"", []
        if message == TOOK and fds:
            conn = socket.socket(fileno=fds[0])
            self.workers[pidfd] = (pid, conn)
            self.clients[conn.fileno()] = pidfd
            self.poll.register(pidfd, select.POLLIN)
            self.poll.register(conn, select.POLLRDHUP)
            self.last_active = time.monotonic()
        else:  # the code on disk changed (the spare declines and leaves), or it died waiting
            if message == STALE:
                self.retire()
            for fd in fds:
                os.close(fd)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            os.close(pidfd)
        channel.close()
        self._fork_spare()  # while the worker runs on the other core

    def _reap(self, pidfd: int) -> None:
        pid, conn = self.workers.pop(pidfd)
        _, status = os.waitpid(pid, 0)
        self.poll.unregister(pidfd)
        os.close(pidfd)
        if self.clients.pop(conn.fileno(), None) is not None:
            self.poll.unregister(conn)
        with contextlib.suppress(OSError):
            _reply(conn, STATUS, status)
        conn.close()
        self.last_active = time.monotonic()
        if self.declining:  # a place is free again
            self._fork_spare()

    def _client_gone(self, conn_fd: int) -> None:
        """The `pyctr` process died (killed): its command dies with it, as it would in-process."""
        pidfd = self.clients.pop(conn_fd)
        self.poll.unregister(conn_fd)
        with contextlib.suppress(OSError):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)

    def retire(self) -> None:
        """Stop taking commands: remove the socket (if it is still ours); running workers are still relayed."""
        if self.listener is None:
            return
        if self.declining:
            self.declining = False
            self.poll.unregister(self.listener)
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == self.path_inode:
                os.unlink(self.path)
        self.listener.close()
        self.listener = None
        self._drop_spare()  # the spare shares the lock: gone now, as every worker closed its copy at start
        if self.lock is not None:
            # A retired server may relay a long command (a foreground `run`, `logs -f`) for hours: the next
            # server must not wait for that to start.
            os.close(self.lock)
            self.lock = None


def _bind(path: str) -> socket.socket:
    """Listen on `path`: bound and listening under a temporary name, then renamed into place, so a client
    never finds a socket that is not accepting yet (it would run its command in-process)."""
    partial = f"{path}.{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(partial)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o077)
    try:
        listener.bind(partial)
    finally:
        os.umask(old)
    listener.listen(128)
    os.rename(partial, path)
    return listener


def _idle_seconds() -> float:
    try:
        return float(os.environ.get("PYCTR_SERVER_IDLE", IDLE_SECONDS))
    except ValueError:
        return IDLE_SECONDS


def make_proof() -> None:
    """The proof descriptor at PROOF_FD (see pyctr/client.py), close-on-exec: no command ever has it."""
    fd = os.memfd_create("pyctr-proof", os.MFD_CLOEXEC)
    if fd != PROOF_FD:
        os.dup2(fd, PROOF_FD, inheritable=False)
        os.close(fd)


def main() -> int:
    """Run the server for this installation, unless one is running already."""
    if os.geteuid() != 0:
        return 1
    os.closerange(3, 1 << 20)  # whatever a caller left us (the client passes nothing: see start_server)
    make_proof()
    os.chdir("/")
    os.makedirs(SOCKET_DIR, mode=0o700, exist_ok=True)
    if os.stat(SOCKET_DIR).st_uid != 0:
        return 1
    path = socket_path()
    lock = os.open(path.removesuffix(".sock") + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # another server serves this installation
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    preload()
    with contextlib.suppress(Exception):
        from pyctr.cli import warm_up

        warm_up()  # the commands' parsers, built once here rather than in every worker
    gc.collect()
    gc.freeze()  # workers share these pages with the server instead of copying them on the first collection
    server = Server(_bind(path), path, _idle_seconds(), lock)
    signal.signal(signal.SIGTERM, lambda *_: server.retire())
    server.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
