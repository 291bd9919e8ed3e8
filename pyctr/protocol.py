"""The protocol between the `pyctr` command (pyctr/client.py) and the warm server (pyctr/server.py).

Why a module of its own: both sides must agree on every field and message, and a reader should find them
in one place, by name, not as positions in a tuple. It imports only built-in modules, because the client
imports it on every command's start-up (`python -I -S`; tests/integration/test_startup_imports.py).

A request is a 4-byte little-endian length, then a marshalled dict with exactly the REQUEST_FIELDS as keys
(the same interpreter reads it: the installation is part of the request). Its descriptors travel with it
(SCM_RIGHTS): stdin, stdout, stderr, the working directory, the proof, then the client's other
descriptors in the order of its `extra_fds`. A reply is one kind byte, then a 4-byte little-endian signed
value.
"""

from __future__ import annotations

import _signal

VERSION = 4  # 4: the request is a dict of named fields (3 was a tuple read by position)

# The request's fields.
PROTOCOL = "protocol"  # VERSION of the client
BIN_DIR = "bin_dir"  # the client's interpreter directory: one server per installation
PACKAGE_DIR = "package_dir"  # the client's pyctr package directory
ARGV = "argv"  # the command line after `pyctr`
ENVIRON = "environ"  # the client's environment
UMASK = "umask"
LIMITS = "limits"  # [(soft, hard)] for RLIMIT 0 .. LIMIT_KINDS - 1
EXTRA_FDS = "extra_fds"  # the numbers the client's descriptors above 2 have, in the order they are sent
REQUEST_FIELDS = (PROTOCOL, BIN_DIR, PACKAGE_DIR, ARGV, ENVIRON, UMASK, LIMITS, EXTRA_FDS)

# Reply kinds, server to client, and what their value is.
ACCEPTED = b"A"  # the worker took the command; value: its pid (signals go there)
DECLINED = b"D"  # nothing ran: the client runs the command itself; value: 0
STATUS = b"S"  # the command ended; value: its wait status
REPLY_SIZE = 5  # kind + value

# Descriptors and bounds.
STD_FDS = 3  # stdin, stdout, stderr: the first descriptors sent
CWD_INDEX = 3  # the working directory follows them
PROOF_INDEX = 4  # then the proof
FIXED_FDS = 5  # stdin, stdout, stderr, working directory, proof; then the client's other descriptors
PROOF_FD = 3  # the server's memfd that only a process allowed to ptrace the server can open via /proc
MAX_EXTRA_FDS = 64  # descriptors above 2 passed on; a client with more runs its command itself
MAX_REQUEST = 4 << 20  # bytes of marshalled request: argv and environment fit ARG_MAX many times over
LIMIT_KINDS = 16  # RLIMIT_CPU (0) .. RLIMIT_RTTIME (15) on Linux

# Signals a shell or terminal sends to the one it started; they go on to the process that does the work.
# One list for every relay: the client to its worker here, and the runtime's foreground run and exec
# (runtime/process/signals.py).
FORWARDED_SIGNALS = (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP, _signal.SIGQUIT, _signal.SIGWINCH,
                     _signal.SIGUSR1, _signal.SIGUSR2, _signal.SIGCONT)


def request(bin_dir: str, package_dir: str, argv: list[str], environ: dict[str, str], umask: int,
            limits: list[tuple[int, int]], extra_fds: list[int]) -> dict:
    """A request of this protocol VERSION, every field named."""
    return {PROTOCOL: VERSION, BIN_DIR: bin_dir, PACKAGE_DIR: package_dir, ARGV: argv, ENVIRON: environ,
            UMASK: umask, LIMITS: limits, EXTRA_FDS: list(extra_fds)}


def is_request(value: object) -> bool:
    """Whether a decoded value is a request of this VERSION with exactly its fields (the server's first
    check; the installation and the descriptors are checked after)."""
    return (isinstance(value, dict) and tuple(sorted(value)) == tuple(sorted(REQUEST_FIELDS))
            and value[PROTOCOL] == VERSION and isinstance(value[EXTRA_FDS], list))


def encode_reply(kind: bytes, value: int = 0) -> bytes:
    return kind + value.to_bytes(4, "little", signed=True)


def decode_reply(data: bytes) -> tuple[bytes, int]:
    return data[:1], int.from_bytes(data[1:REPLY_SIZE], "little", signed=True)
