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

Usage: monitor.py DIR PID STDOUT_FD STDERR_FD LOG(0|1) CLEANUP_ARGV...
(STDERR_FD is -1 with a tty, whose output arrives on one fd.)
"""

import _signal
import posix as os  # the C module behind os: same functions, none of os.py's imports
import select
import sys
import time

PARTIAL_LIMIT = 16 * 1024  # Docker's copier flushes a line at 16 KiB even without a newline
READ_SIZE = 32 * 1024

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


def relay(sources, log_fd=-1):
    """Copy each (fd, stream_name, copy_to_fd or -1) until every fd hits EOF.

    Each chunk goes to its copy fd as is (the foreground terminal) and, split into
    lines, to the json-file log. A reader that went away (closed pipe) only stops the
    copying to it; the container keeps its output flowing into the log.
    """
    poller = select.poll()
    state = {}
    for fd, stream, copy_to in sources:
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        state[fd] = [stream, copy_to, b""]
    while state:
        for fd, _event in poller.poll():
            entry = state.get(fd)
            if entry is None:
                continue
            try:
                data = os.read(fd, READ_SIZE)
            except OSError:  # EIO from a pty master whose slave closed
                data = b""
            stream, copy_to, pending = entry
            if data and copy_to >= 0 and not _write_all(copy_to, data):
                entry[1] = -1
            if log_fd >= 0:
                lines, entry[2] = split_lines(pending, data, final=not data)
                if lines:
                    _write_all(log_fd, encode_entries(lines, stream))
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
    directory, pid, out_fd, err_fd, log_flag = argv[:5]
    cleanup = argv[5:]
    pid, out_fd, err_fd = int(pid), int(out_fd), int(err_fd)
    for sig in (_signal.SIGHUP, _signal.SIGINT, _signal.SIGPIPE, _signal.SIGTTOU, _signal.SIGTTIN):
        _signal.signal(sig, _signal.SIG_IGN)
    os.chdir("/")
    log_fd = -1
    if log_flag == "1":
        directory = directory.rstrip("/")
        name = directory.rsplit("/", 1)[-1] + "-json.log"
        log_fd = os.open(directory + "/" + name, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                         0o600)
    sources = [(out_fd, "stdout", -1)]
    if err_fd >= 0:
        sources.append((err_fd, "stderr", -1))
    relay(sources, log_fd)
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
