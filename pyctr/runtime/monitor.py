"""The per-container monitor: a standalone, stdlib-only script (Docker's containerd-shim).

A detached container's parent M execs this file as `python -I -S monitor.py ...`
once the container C has started, so what stays resident per container is a bare
interpreter, not pyctr with click and friends. It must stay small: it uses only
modules the interpreter has already loaded at start-up (posix, _signal, sys, time)
plus select, and never imports pyctr. Measured per module (Private_Dirty): `json`
would add ~1.4 MiB, `signal` (it builds an enum) ~0.9 MiB, `os` ~0.2 MiB; so the log
entries are encoded by hand and posix/_signal are used directly. M runs it from a
pre-compiled .pyc (see container.monitor_argv): compiling the source would cost
another ~0.4 MiB.

It copies C's stdout/stderr pipes into Docker's json-file log, reaps C (still
its child: exec keeps the pid), leaves the exit code in `<dir>/exitcode` and
then execs pyctr's hidden `_cleanup` command, which records the state and
tears down cgroup, network and mounts (and removes the container with --rm).

The foreground CLI imports `relay` and `encode_entries` from here, so a
container's logs are written by one implementation whichever way it runs.

It also serves the container's attach socket, `DIR/attach.sock` (as conmon's): each client gets the output
from then on as Docker's multiplexed frames (8-byte header: stream 1 or 2, big-endian size), and what a
client sends goes to the container's stdin (an -i container's pipe, whose write end the monitor holds). With
stdin-once, a client's EOF (its half-close) closes the container's stdin. A client that does not take its
output within SEND_TIMEOUT is dropped (memory stays bounded; the container and its log go on). With
wait-for-attach (an attach made before start), the relay begins once the first client connected (at most
ATTACH_WAIT seconds): the container's first output waits in its pipe instead of being missed.

Usage: monitor.py DIR PID STDOUT_FD STDERR_FD LOG(0|1|1:MAX_SIZE:MAX_FILE) STDIN_FD ATTACH_FLAGS CLEANUP_ARGV...
(STDERR_FD is -1 with a tty, whose output arrives on one fd; STDIN_FD is -1 without -i; ATTACH_FLAGS has
`w` for wait-for-attach and `o` for stdin-once, or is `-`.)
"""

import _signal
import _socket  # built into the interpreter: ~70 KiB, where socket.py would import enum and more
import posix as os  # the C module behind os: same functions, none of os.py's imports
import select
import sys
import time

PARTIAL_LIMIT = 16 * 1024  # Docker's copier flushes a line at 16 KiB even without a newline
READ_SIZE = 32 * 1024
ATTACH_SOCKET = "attach.sock"
MAX_ATTACHED = 16
SEND_TIMEOUT = 5.0
ATTACH_WAIT = 10.0
STDIN_BACKLOG = 1024 * 1024  # input a container does not read yet, held for it; a client beyond it is dropped
STREAM_IDS = {"stdout": 1, "stderr": 2}

# Go's encoding/json escaping, which Docker's json-file log uses (HTML-safe: <, >, & escaped).
_ESCAPES = {i: f"\\u{i:04x}" for i in range(32)}
_ESCAPES.update({8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f", 13: "\\r", 34: '\\"', 92: "\\\\",
                 60: "\\u003c", 62: "\\u003e", 38: "\\u0026", 0x2028: "\\u2028", 0x2029: "\\u2029"})


def rfc3339_nano(ns):
    """Docker's log timestamp: UTC, nanoseconds, trailing Z."""
    secs, frac = divmod(ns, 1000000000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def encode_entry(chunk, stream, stamp):
    """One json-file line: {"log":"...","stream":"stdout","time":"..."} and a newline."""
    text = chunk.decode("utf-8", "replace").translate(_ESCAPES)
    return f'{{"log":"{text}","stream":"{stream}","time":"{stamp}"}}\n'.encode()


def split_lines(pending, data, final=False):
    """Cut complete lines (and over-long partial ones) off `pending + data`; return (lines, rest)."""
    buf = pending + data
    lines = []
    start = 0
    while True:
        nl = buf.find(b"\n", start)
        if nl < 0:
            break
        lines.append(buf[start:nl + 1])
        start = nl + 1
    rest = buf[start:]
    while len(rest) >= PARTIAL_LIMIT:
        lines.append(rest[:PARTIAL_LIMIT])
        rest = rest[PARTIAL_LIMIT:]
    if final and rest:
        lines.append(rest)
        rest = b""
    return lines, rest


def encode_entries(lines, stream, ns=None):
    stamp = rfc3339_nano(time.time_ns() if ns is None else ns)
    return b"".join(encode_entry(line, stream, stamp) for line in lines)


def _write_all(fd, data):
    while data:
        try:
            data = data[os.write(fd, data):]
        except BrokenPipeError:
            return False
    return True


class RotatingLog:
    """The json-file log with Docker's rotation (moby loggerutils.LogFile): before an entry is written, a file
    that reached `max_size` is rotated: NAME.(max_file-2) -> NAME.(max_file-1), ..., NAME -> NAME.1 and a new NAME
    begun (with max_file 1 the file is emptied instead). `max_size` -1: never rotated (Docker's default)."""

    def __init__(self, path, max_size=-1, max_file=1):
        self.path = path
        self.max_size = max_size
        self.max_file = max_file
        self.fd = _open_log_file(path, 0)
        self.size = os.fstat(self.fd).st_size

    def write(self, data):
        """Write whole entries (each ends with a newline: the JSON escapes the ones in the text)."""
        if self.max_size < 0:
            if _write_all(self.fd, data):
                self.size += len(data)
            return
        start = 0
        while start < len(data):
            end = data.find(b"\n", start) + 1 or len(data)
            if self.size >= self.max_size:
                self._rotate()
            if _write_all(self.fd, data[start:end]):
                self.size += end - start
            start = end

    def _rotate(self):
        os.close(self.fd)
        path = self.path
        if self.max_file > 1:
            _unlink_quietly(f"{path}.{self.max_file - 1}")
            last = 1  # only the files that exist are moved: a max-file of thousands costs nothing per rotation
            while last < self.max_file - 2 and _exists(f"{path}.{last + 1}"):
                last += 1
            for i in range(last + 1, 1, -1):
                _rename_quietly(f"{path}.{i - 1}", f"{path}.{i}")
            _rename_quietly(path, path + ".1")
        self.fd = _open_log_file(path, os.O_TRUNC)
        self.size = 0

    def close(self):
        os.close(self.fd)


def _open_log_file(path, extra_flags):
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | extra_flags, 0o600)


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _unlink_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def _rename_quietly(source, target):
    try:
        os.rename(source, target)
    except OSError:
        pass


def open_log(path, argument):
    """The log the monitor's LOG argument asks for: None for 0, else a RotatingLog (`1` or `1:SIZE:FILES`)."""
    parts = argument.split(":")
    if parts[0] != "1":
        return None
    if len(parts) == 3:
        return RotatingLog(path, int(parts[1]), int(parts[2]))
    return RotatingLog(path)


def write_log(log, data):
    """`log` is a RotatingLog, an fd or -1/None (no log)."""
    if isinstance(log, RotatingLog):
        log.write(data)
    elif log is not None and log >= 0:
        _write_all(log, data)


def has_log(log):
    return isinstance(log, RotatingLog) or (log is not None and log >= 0)


def frame_header(stream, size):
    """Docker's multiplexed frame header (stdcopy): stream id, three zero bytes, big-endian payload size."""
    return bytes((STREAM_IDS.get(stream, 1), 0, 0, 0)) + size.to_bytes(4, "big")


class AttachHub:
    """The attach socket: its listener, its clients, and the container's stdin they write to."""

    def __init__(self, listener, stdin_fd=-1, stdin_once=False):
        self.listener = listener
        self.stdin_fd = stdin_fd
        self.stdin_once = stdin_once
        self.clients = {}  # fd -> socket
        self.poller = None
        # A container that does not read its stdin must not stall this loop (its output and log stop, every
        # attached client with it): a pipe's writes never block; what it does not take waits here, bounded.
        self.backlog = b""
        self.close_after_backlog = False
        self.watching_stdin = False  # registered for POLLOUT by us (with a tty it is also the output's fd)
        # A pipe (not a pty master): only then does a client's EOF close it (Docker closes a tty's stdin never:
        # the master is also the output, and a detach must leave the container running).
        self.stdin_is_pipe = stdin_fd >= 0 and os.fstat(stdin_fd).st_mode & 0o170000 == 0o010000
        if self.stdin_is_pipe:
            os.set_blocking(stdin_fd, False)

    def fds(self):
        return [self.listener.fileno()] + list(self.clients)

    def accept(self):
        try:
            conn, _ = self.listener._accept()
        except OSError:
            return -1
        client = _socket.socket(fileno=conn)
        if len(self.clients) >= MAX_ATTACHED:
            client.close()
            return -1
        client.settimeout(SEND_TIMEOUT)
        self.clients[conn] = client
        if self.poller is not None:
            self.poller.register(conn, select.POLLIN)
        return conn

    def owns(self, fd):
        return fd == self.listener.fileno() or fd in self.clients or (fd == self.stdin_fd and fd >= 0)

    def ready(self, fd):
        """The listener (a new client) or a client (stdin data, or its EOF) is readable."""
        if fd == self.listener.fileno():
            self.accept()
            return
        if fd == self.stdin_fd:  # writable again: what waited goes on
            self._flush()
            return
        client = self.clients.get(fd)
        try:
            data = client.recv(READ_SIZE)
        except OSError:
            data = b""
        if data and self.stdin_fd >= 0:
            self._feed(data, fd)
            return
        if not data:
            self.poller.unregister(fd)  # half-closed: it still reads the output
            if self.stdin_once and self.stdin_fd >= 0 and self.stdin_is_pipe:
                if self.backlog:
                    self.close_after_backlog = True
                else:
                    self._close_stdin()

    def _feed(self, data, client_fd):
        was_waiting = bool(self.backlog)
        self.backlog += data
        if not was_waiting:
            self._flush()
        if len(self.backlog) > STDIN_BACKLOG:
            self.drop(client_fd)  # it keeps sending what the container does not read

    def _flush(self):
        """Write what waits for the container's stdin as far as the pipe takes it, without blocking."""
        try:
            written = os.write(self.stdin_fd, self.backlog) if self.backlog else 0
        except BlockingIOError:
            written = 0
        except OSError:  # the container closed its stdin
            self._close_stdin()
            return
        self.backlog = self.backlog[written:]
        if self.backlog:
            self.poller.register(self.stdin_fd, select.POLLOUT)  # (re-registering only updates the mask)
            self.watching_stdin = True
            return
        self._stop_watching_stdin()
        if self.close_after_backlog:
            self._close_stdin()

    def _stop_watching_stdin(self):
        """Only what this hub registered: with a tty the fd is the pty master the relay reads output from."""
        if self.watching_stdin:
            self.watching_stdin = False
            try:
                self.poller.unregister(self.stdin_fd)
            except (KeyError, ValueError, OSError):
                pass

    def _close_stdin(self):
        self._stop_watching_stdin()
        try:
            os.close(self.stdin_fd)
        except OSError:
            pass
        self.stdin_fd = -1
        self.backlog = b""

    def send(self, stream, data):
        message = frame_header(stream, len(data)) + data
        for fd, client in list(self.clients.items()):
            try:
                client.sendall(message)
            except OSError:  # gone, or not reading: dropped, the container goes on
                self.drop(fd)

    def drop(self, fd):
        client = self.clients.pop(fd, None)
        if client is not None:
            try:
                self.poller.unregister(fd)
            except (KeyError, ValueError, OSError):
                pass
            client.close()

    def close(self):
        for fd in list(self.clients):
            self.drop(fd)
        self.listener.close()


def open_attach_socket(directory):
    """Listen on DIR/attach.sock, reached through /proc/self/fd (the path may exceed sun_path's 108 bytes)."""
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        path = f"/proc/self/fd/{dir_fd}/{ATTACH_SOCKET}"
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        listener = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            listener.bind(path)
        finally:
            os.umask(old)
        listener.listen(MAX_ATTACHED)
        listener.setblocking(False)
        return listener
    finally:
        os.close(dir_fd)


def wait_for_first_client(hub, seconds):
    """Attach before start: hold the relay until the attacher is connected (its output then starts at once)."""
    poller = select.poll()
    poller.register(hub.listener.fileno(), select.POLLIN)
    deadline = time.monotonic() + seconds
    while not hub.clients and time.monotonic() < deadline:
        if poller.poll(max(0, int((deadline - time.monotonic()) * 1000))):
            hub.accept()


def relay(sources, log_fd=-1, hub=None):
    """Copy each (fd, stream_name, copy_to_fd or -1) until every fd hits EOF.

    Each chunk goes to its copy fd as is (the foreground terminal), to the attached clients (`hub`) and,
    split into lines, to the json-file log. A reader that went away (closed pipe) only stops the copying
    to it; the container keeps its output flowing into the log.
    """
    poller = select.poll()
    state = {}
    for fd, stream, copy_to in sources:
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        state[fd] = [stream, copy_to, b""]
    if hub is not None:
        hub.poller = poller
        for fd in hub.fds():
            poller.register(fd, select.POLLIN)
    while state:
        for fd, _event in poller.poll():
            entry = state.get(fd)
            if entry is None:
                if hub is not None and hub.owns(fd):
                    hub.ready(fd)
                continue
            try:
                data = os.read(fd, READ_SIZE)
            except OSError:  # EIO from a pty master whose slave closed
                data = b""
            stream, copy_to, pending = entry
            if data and copy_to >= 0 and not _write_all(copy_to, data):
                entry[1] = -1
            if data and hub is not None and hub.clients:
                hub.send(stream, data)
            if has_log(log_fd):
                lines, entry[2] = split_lines(pending, data, final=not data)
                if lines:
                    write_log(log_fd, encode_entries(lines, stream))
            if not data:
                poller.unregister(fd)
                os.close(fd)
                del state[fd]


def exit_code_of(status):
    """A wait status as Docker reports it: the exit code, or 128 + the killing signal.

    The runtime's own is runtime/process/reap.exit_code; this script must not import pyctr, so it keeps this
    copy, and tests/unit/test_process_core.py proves the two agree on every wait status."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _reap(pid):
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            return exit_code_of(status)
        except ChildProcessError:
            return 255
        except InterruptedError:
            continue


def _record_exit(directory, code, stamp):
    path = directory + "/exitcode"
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, f"{code} {stamp}\n".encode())
    finally:
        os.close(fd)
    os.rename(tmp, path)


def main(argv):
    directory, pid, out_fd, err_fd, log_flag, stdin_fd, attach_flags = argv[:7]
    cleanup = argv[7:]
    pid, out_fd, err_fd, stdin_fd = int(pid), int(out_fd), int(err_fd), int(stdin_fd)
    for sig in (_signal.SIGHUP, _signal.SIGINT, _signal.SIGPIPE, _signal.SIGTTOU, _signal.SIGTTIN):
        _signal.signal(sig, _signal.SIG_IGN)
    os.chdir("/")
    directory = directory.rstrip("/")
    log_fd = open_log(directory + "/" + directory.rsplit("/", 1)[-1] + "-json.log", log_flag)
    sources = [(out_fd, "stdout", -1)]
    if err_fd >= 0:
        sources.append((err_fd, "stderr", -1))
    hub = None
    try:
        hub = AttachHub(open_attach_socket(directory.rstrip("/")), stdin_fd, "o" in attach_flags)
        if "w" in attach_flags:
            wait_for_first_client(hub, ATTACH_WAIT)
    except OSError:
        hub = None  # no attach socket: the container still runs and logs
    relay(sources, log_fd, hub)
    if hub is not None:
        hub.close()
        try:
            os.unlink(directory.rstrip("/") + "/" + ATTACH_SOCKET)
        except OSError:
            pass
    code = _reap(pid)
    stamp = rfc3339_nano(time.time_ns())
    try:
        _record_exit(directory, code, stamp)
    except OSError:
        pass
    if cleanup:
        try:
            os.execv(cleanup[0], cleanup + ["--exit-code", str(code), "--finished-at", stamp])
        except OSError:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
