"""The `pyctr` command: hand the command line to the warm server when one is up, else run the CLI here.

Why: Python, click and pyctr's own modules cost about 150 ms on this kind of machine before a command
does any work, more than the whole of `docker exec`. Like Docker's CLI talking to dockerd, the `pyctr`
command passes its work to a per-host server (pyctr/server.py) that keeps everything imported and forks
one worker per command. Unlike dockerd the server is started on first use, needs no set-up and leaves
when idle. The worker takes over this process's stdin, stdout, stderr, working directory, environment,
umask and resource limits, so a command behaves as it would in this process; this process relays signals
to it and exits with its status.

This module imports only built-in modules: its own start-up is the floor every command pays. Whenever
the server cannot take a command (not root, PYCTR_SERVER=0, no server yet, a differing security
context, a stale server), the command runs right here, exactly as before.

Trust goes both ways, and neither side takes the other's word (see README, "What the warm server trusts").
Before it sends anything, the client checks that the listener on the socket path is pyctr's server: root,
running the client's own interpreter, in the client's own context (namespaces, privileges, LSM labels,
cgroups), identified by a pidfd so that its number cannot name another process meanwhile. It then opens
the server's PROOF_FD through /proc, which the kernel allows only to a process that may ptrace the server
(Landlock and the LSMs refuse it to anything more confined), and passes it along: the worker checks that
it is its own.
"""

from __future__ import annotations

import _signal
import _socket
import os
import sys

from pyctr import protocol
from pyctr.protocol import ACCEPTED, FORWARDED_SIGNALS, LIMIT_KINDS, MAX_EXTRA_FDS, PROOF_FD, STATUS

SOCKET_DIR = "/run/pyctr"
# Commands that talk to the user's terminal outside stdin/stdout (password prompts): run here.
NOT_SERVED = frozenset({"login", "logout"})
# Global options that take a value: the command name is the first other word.
VALUE_OPTIONS = frozenset({"--root", "--config"})
SO_PEERPIDFD = 77  # Linux 6.5+ (Python 3.11's socket module has no name for it): a pidfd of the peer
# The fields of /proc/PID/status that make up a process's privileges: a client must match the server.
PRIVILEGE_FIELDS = ("Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs",
                    "Seccomp", "Seccomp_filters")
NAMESPACES = ("mnt", "net", "pid", "uts", "ipc", "cgroup", "user", "time")
PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
BIN_DIR = os.path.dirname(os.path.abspath(sys.executable))


def socket_path(bin_dir: str = BIN_DIR, package_dir: str = PACKAGE_DIR) -> str:
    """One server per installation (the interpreter's directory, i.e. the virtualenv, + the package directory),
    so two checkouts or two virtualenvs never share one; python, python3 and python3.X of one venv do."""
    import zlib  # built-in

    key = zlib.crc32(f"{bin_dir}\0{package_dir}".encode())
    return f"{SOCKET_DIR}/server-{key:08x}.sock"


def command_of(argv: list[str]) -> str | None:
    """The subcommand's name in a pyctr command line, skipping global options and their values."""
    i = 0
    while i < len(argv):
        word = argv[i]
        if word in VALUE_OPTIONS:
            i += 2
        elif word.startswith("-"):
            i += 1
        else:
            return word
    return None


def wants_server(argv: list[str], environ: dict[str, str] | os._Environ = os.environ, euid: int | None = None) -> bool:
    """Whether this command line should go to the server (root only; PYCTR_SERVER=0 turns it off)."""
    if (os.geteuid() if euid is None else euid) != 0:
        return False
    if environ.get("PYCTR_SERVER", "1").strip().lower() in ("0", "no", "off", "false"):
        return False
    return command_of(argv) not in NOT_SERVED


def encode_request(argv: list[str], environ: dict[str, str], umask: int, limits: list[tuple[int, int]],
                   extra_fds: list[int] = ()) -> bytes:  # type: ignore[assignment]
    """The request (see pyctr/protocol.py): a length, then the marshalled fields (the same interpreter reads
    it). `extra_fds`: the numbers the client's descriptors above 2 have, in the order they follow stdin,
    stdout, stderr, cwd and the proof."""
    import marshal  # built-in

    body = marshal.dumps(protocol.request(BIN_DIR, PACKAGE_DIR, argv, environ, umask, limits, list(extra_fds)))
    return len(body).to_bytes(4, "little") + body


def exit_for(status: int) -> tuple[int, int]:
    """(exit code, signal to die of or 0) for a worker's wait status, as a shell would see the CLI end."""
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        return 128 - code, -code
    return code, 0


class _Relay:
    """Forwards the signals this process gets to the worker; those before it is known wait for it."""

    def __init__(self) -> None:
        self.worker = 0
        self.pending: list[int] = []

    def __call__(self, signum: int, frame: object) -> None:
        if self.worker:
            try:
                os.kill(self.worker, signum)
            except ProcessLookupError:
                pass
        else:
            self.pending.append(signum)

    def start(self, worker: int) -> None:
        self.worker = worker
        for signum in self.pending:
            self(signum, None)
        self.pending.clear()


def _read_message(sock: _socket.socket) -> tuple[bytes, int] | None:
    data = b""
    while len(data) < protocol.REPLY_SIZE:
        chunk = sock.recv(protocol.REPLY_SIZE - len(data))
        if not chunk:
            return None
        data += chunk
    return protocol.decode_reply(data)


def other_descriptors(exclude: tuple[int, ...]) -> list[int]:
    """The client's open descriptors above 2 (say /dev/fd/63 from `--env-file <(...)`): the worker gets them
    under the same numbers, as the command would see them in-process."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd not in exclude:
            try:
                os.get_inheritable(fd)  # still open (listdir's own descriptor is not)
            except OSError:
                continue
            found.append(fd)
    return sorted(found)


def _send_request(sock: _socket.socket, request: bytes, extra_fds: list[int] = (), proof: int = -1) -> None:  # type: ignore[assignment]
    """Send the request with stdin, stdout, stderr, the working directory, the proof (-1: a descriptor that
    proves nothing, for tests) and the extra descriptors."""
    cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fds = b"".join(fd.to_bytes(4, sys.byteorder) for fd in (0, 1, 2, cwd, cwd if proof < 0 else proof,
                                                                 *extra_fds))
        sent = sock.sendmsg([request], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
    finally:
        os.close(cwd)
    if sent < len(request):
        sock.sendall(request[sent:])


def proc_dir_of(pidfd: int) -> int | None:
    """A descriptor of the /proc directory of the process `pidfd` names, or None (gone, or outside this PID
    namespace). Why this order: the number is read from the pidfd, the directory opened by number, then
    the pidfd must still have a live process; while it has, the number cannot have passed to another
    process, so the directory opened is that process's."""
    try:
        info = os.read(fd := os.open(f"/proc/self/fdinfo/{pidfd}", os.O_RDONLY | os.O_CLOEXEC), 4096)
        os.close(fd)
        pid = int(info.split(b"\nPid:", 1)[1].split(b"\n", 1)[0])
        if pid <= 0:  # -1: it has exited; 0: not visible from here
            return None
        proc = os.open(f"/proc/{pid}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except (OSError, IndexError, ValueError):
        return None
    try:
        _signal.pidfd_send_signal(pidfd, 0)
    except OSError:
        os.close(proc)
        return None
    return proc


def peer_proc_dir(sock: _socket.socket) -> int | None:
    """The /proc directory of the process at the other end of a connected socket: the one that called
    connect() (seen by the server) or listen() (seen by a client), never one that took its number later.
    None where the kernel gives no pidfd of a peer (before 6.5): then nothing is trusted."""
    try:
        pidfd = sock.getsockopt(_socket.SOL_SOCKET, SO_PEERPIDFD)
    except OSError:
        return None
    try:
        return proc_dir_of(pidfd)
    finally:
        os.close(pidfd)


def peer_uid(sock: _socket.socket) -> int:
    """The peer's effective uid when it connected or listened, in this process's user namespace."""
    raw = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
    return int.from_bytes(raw[4:8], sys.byteorder)


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def open_proof(sock: _socket.socket) -> int | None:
    """If the listener is pyctr's server, the server's proof descriptor, opened through its /proc directory;
    else None, and nothing may be sent. What a server must be, so that a process that bound the path first
    (a container given the host's /run, say) never receives argv, environment, streams or the working
    directory: root, running this very interpreter binary (the server is started as `python -P -m
    pyctr.server` of the same installation, the client by the launcher or a console script of it), in
    this process's context (the same namespaces, where a container has its own; the same privileges,
    LSM labels and cgroups, where a confined process on the host would differ)."""
    proc = peer_proc_dir(sock)
    if proc is None:
        return None
    own = None
    try:
        if peer_uid(sock) != 0 or not _same_file(os.stat("exe", dir_fd=proc), os.stat("/proc/self/exe")):
            return None
        own = os.open("/proc/self", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        if context(proc, lsm_attributes()) != context(own, lsm_attributes()):
            return None
        return os.open(f"fd/{PROOF_FD}", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc)  # fails if we may not ptrace it
    except OSError:
        return None
    finally:
        os.close(proc)
        if own is not None:
            os.close(own)


def read_proc(proc: int, name: str) -> bytes | None:
    """A /proc/PID file, or None where it cannot be read (an LSM attribute no LSM provides)."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc)
    except OSError:
        return None
    try:
        return os.read(fd, 1 << 16)
    except OSError:
        return None
    finally:
        os.close(fd)


def lsm_attributes() -> tuple[str, ...]:
    """Every LSM attribute of a process: the shared attr/ files and, for stacked LSMs, each one's own
    directory (attr/apparmor/, attr/smack/, ...): a label the server cannot see would go unchecked."""
    if _ATTRIBUTES:
        return _ATTRIBUTES[0]
    names = []
    try:
        entries = sorted(os.listdir("/proc/self/attr"))
    except FileNotFoundError:  # a kernel built without LSMs: no labels to compare
        entries = []
    for entry in entries:
        if os.path.isdir(f"/proc/self/attr/{entry}"):
            names += [f"attr/{entry}/{leaf}" for leaf in sorted(os.listdir(f"/proc/self/attr/{entry}"))]
        else:
            names.append(f"attr/{entry}")
    _ATTRIBUTES.append(tuple(names))
    return _ATTRIBUTES[0]


def context(proc: int, attributes: tuple[str, ...]) -> tuple:
    """What confines the process whose /proc directory is `proc`: privileges, LSM labels, cgroups,
    namespaces, root directory. Landlock has no trace here: the proof descriptor covers it. Both sides
    compare it: the server, lest it serve a more confined client; the client, lest it hand its descriptors
    to a more confined process."""
    status = read_proc(proc, "status")
    if status is None:
        raise OSError("no status")
    fields = dict(line.partition(b":")[::2] for line in status.splitlines())
    privileges = tuple(fields.get(key.encode(), b"").strip() for key in PRIVILEGE_FIELDS)
    labels = tuple(read_proc(proc, name) for name in attributes)
    namespaces = tuple(os.stat(f"ns/{ns}", dir_fd=proc).st_ino for ns in NAMESPACES)
    root = os.stat("root", dir_fd=proc)
    return privileges, labels, read_proc(proc, "cgroup"), namespaces, (root.st_dev, root.st_ino)


_ATTRIBUTES: list[tuple[str, ...]] = []  # the kernel's LSM attribute names, listed once


def _limits() -> list[tuple[int, int]]:
    import resource  # a small C module

    return [resource.getrlimit(r) for r in range(LIMIT_KINDS)]


def serve_remotely(argv: list[str], path: str | None = None) -> int | None:
    """Run the command in a server worker: its exit code, or None when it must run here instead."""
    path = path or socket_path()
    try:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    except OSError:
        return None
    relay = _Relay()
    previous = {s: _signal.signal(s, relay) for s in FORWARDED_SIGNALS}
    try:
        try:
            sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError):
            start_server()
            return None
        except OSError:
            return None
        proof = open_proof(sock)
        if proof is None:  # not our server, or we are more confined than it: it must learn nothing
            return None
        umask = os.umask(0o022)
        os.umask(umask)
        try:
            extra = other_descriptors((sock.fileno(), proof))
            if len(extra) > MAX_EXTRA_FDS:
                return None
            _send_request(sock, encode_request(argv, dict(os.environ), umask, _limits(), extra), extra, proof)
            reply = _read_message(sock)
        except Exception:  # noqa: BLE001 - e.g. a closed std fd cannot be passed, or declined mid-way: run here
            return None
        finally:
            os.close(proof)
        if reply is None or reply[0] != ACCEPTED:  # declined, early or late: nothing ran, so it runs here
            return None
        relay.start(reply[1])
        try:
            done = _read_message(sock)
        except OSError:
            done = None
        if done is None or done[0] != STATUS:
            os.write(2, b"Error: the pyctr server stopped before the command finished\n")
            return 125
        code, signum = exit_for(done[1])
        if signum:
            _signal.signal(signum, _signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        return code
    finally:
        sock.close()
        for signum, handler in previous.items():
            _signal.signal(signum, handler)
        if not relay.worker:  # the command runs here after all: it gets what arrived meanwhile
            for signum in relay.pending:
                os.kill(os.getpid(), signum)


def _server_environment() -> dict[str, str]:
    """The server's own environment is minimal: each worker takes its client's."""
    env = {"PATH": os.environ.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")}
    if "PYCTR_SERVER_IDLE" in os.environ:
        env["PYCTR_SERVER_IDLE"] = os.environ["PYCTR_SERVER_IDLE"]
    return env


def start_server() -> None:
    """Start the server in the background for the next commands; this one runs here meanwhile. It gets
    nothing of this process but the interpreter and PATH: /dev/null for its std streams, none of our other
    descriptors (a caller's pipe must see EOF and its flock be released when this command ends, not when
    the server leaves), no blocked or ignored signals, a session of its own."""
    inherited = [(os.POSIX_SPAWN_CLOSE, fd) for fd in other_descriptors(())]
    try:
        os.posix_spawn(
            sys.executable, [sys.executable, "-P", "-m", "pyctr.server"],
            _server_environment(),
            file_actions=[*inherited, (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDWR, 0),
                          (os.POSIX_SPAWN_DUP2, 0, 1), (os.POSIX_SPAWN_DUP2, 0, 2)],
            setsid=True, setsigmask=(),
            setsigdef=[s for s in _signal.valid_signals() if s not in (_signal.SIGKILL, _signal.SIGSTOP)],
        )
    except OSError:
        pass


def main() -> None:
    """Entry point of the `pyctr` command."""
    argv = sys.argv[1:]
    if wants_server(argv):
        code = serve_remotely(argv)
        if code is not None:
            os._exit(code)
    if sys.flags.no_site:  # started by the -I -S launcher (scripts/write_launcher.py): now the CLI needs it
        import site

        site.main()
    from pyctr.cli import main as run_here

    run_here()


if __name__ == "__main__":  # the detached container's monitor calls `python -m pyctr.client ... _cleanup ID`
    main()
