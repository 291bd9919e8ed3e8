"""The HTTP/1.1 layer of the Engine API daemon: the standard library's `http.server` on a unix socket, one
thread per connection.

Why threads and not asyncio: every call the handlers make into pyctr's packages blocks (flocks, fork and
wait, registry downloads, overlay mounts), so an event loop would hand nearly every request to a thread
pool anyway; a thread per connection keeps hijacking trivial (the handler simply owns the socket after
`101 UPGRADED`), reads chunked bodies and streams responses with plain blocking I/O, and an idle
connection costs one parked thread with a small stack (STACK_SIZE). Memory stays bounded: at most
MAX_CONNECTIONS at once, and at most MAX_PER_PROCESS of them from one client process (MAX_PER_USER from one
non-root user; the peer is the kernel's SO_PEERCRED, so a client cannot claim another's): beyond, the
connection gets a 503 and is closed without a thread. Headers are bounded as http.server bounds them (64 KiB
lines, 100 headers) and in time: the request line and headers must arrive within HEADER_SECONDS of their
first byte, however the bytes are trickled. JSON bodies are at most MAX_JSON_BODY, and a connection that
sends nothing for IDLE_SECONDS between requests is closed.
"""

from __future__ import annotations

import io
import json
import socket
import socketserver
import struct
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

MAX_CONNECTIONS = 1024
MAX_PER_PROCESS = 256  # one client process (docker compose with many services opens dozens, not hundreds)
MAX_PER_USER = 512  # one non-root user (a member of the socket's group) across all its processes
HEADER_SECONDS = 10.0  # the whole request line + headers, from their first byte
STACK_SIZE = 512 * 1024
IDLE_SECONDS = 120.0  # a keep-alive connection silent this long is closed (hijacked/streaming ones are exempt)
MAX_JSON_BODY = 4 * 1024 * 1024
READ_CHUNK = 64 * 1024


class HttpError(Exception):
    """An answer with a status and Docker's `{"message": ...}` body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _is_decimal(text: str) -> bool:
    """RFC 9110's 1*DIGIT: what int() would also take (a sign, spaces, underscores) is refused."""
    return 0 < len(text) <= 19 and text.isascii() and text.isdigit()


class BodyReader:
    """The request body as a file-like `read(n)`: Content-Length or chunked, never beyond `limit` bytes."""

    def __init__(self, rfile, headers, limit: int | None) -> None:
        self._rfile = rfile
        self._limit = limit
        self._taken = 0
        self._chunked = "chunked" in (headers.get("Transfer-Encoding") or "").lower()
        length = headers.get("Content-Length")
        if length is not None and not self._chunked and not _is_decimal(length):
            raise HttpError(400, "bad Content-Length")  # a negative one would make read() take everything
        self._remaining = int(length) if length is not None and not self._chunked else None
        if self._remaining is not None and limit is not None and self._remaining > limit:
            raise HttpError(413, f"request body too large (limit {limit} bytes)")
        self._chunk_left = 0
        self._done = not self._chunked and not self._remaining

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            return b"".join(iter(lambda: self.read(READ_CHUNK), b""))
        if self._done or n == 0:
            return b""
        data = self._read_chunked(n) if self._chunked else self._read_length(n)
        self._taken += len(data)
        if self._limit is not None and self._taken > self._limit:
            raise HttpError(413, f"request body too large (limit {self._limit} bytes)")
        return data

    def _read_length(self, n: int) -> bytes:
        data = self._rfile.read(min(n, self._remaining))
        if not data:
            raise HttpError(400, "request body ended early")
        self._remaining -= len(data)
        self._done = self._remaining == 0
        return data

    def _read_chunked(self, n: int) -> bytes:
        if self._chunk_left == 0:
            line = self._rfile.readline(1024)
            size = line.split(b";")[0].strip()
            if not size or size.strip(b"0123456789abcdefABCDEF") or len(size) > 16:
                raise HttpError(400, "bad chunked encoding")  # hex digits only: no sign, no 0x, no _
            self._chunk_left = int(size, 16)
            if self._chunk_left == 0:
                while self._rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                self._done = True
                return b""
        data = self._rfile.read(min(n, self._chunk_left))
        if not data:
            raise HttpError(400, "request body ended early")
        self._chunk_left -= len(data)
        if self._chunk_left == 0:
            self._rfile.readline(16)  # the CRLF after the chunk
        return data

    def drain(self) -> None:
        """Read what the handler left, so the connection can carry the next request."""
        while self.read(READ_CHUNK):
            pass


class Request:
    """What a handler gets: method, path without the version prefix, API version, query, headers, body."""

    def __init__(self, handler: ApiHandler, method: str, path: str, version: tuple[int, int],
                 query: dict[str, list[str]]) -> None:
        self.handler = handler
        self.method = method
        self.path = path
        self.version = version
        self.query = query
        self.headers = handler.headers
        self.params: dict[str, str] = {}
        self._body: BodyReader | None = None

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def flag(self, name: str, default: bool = False) -> bool:
        """Docker's boolean query values: 1/true/True are true, 0/false/"" false."""
        value = self.arg(name)
        if value is None:
            return default
        return value.strip().lower() not in ("", "0", "false", "no")

    def int_arg(self, name: str, default: int | None = None) -> int | None:
        value = self.arg(name)
        if value in (None, ""):
            return default
        try:
            return int(value)
        except ValueError:
            raise HttpError(400, f"invalid value for {name}: {value!r}") from None

    def json_arg(self, name: str, default: Any = None) -> Any:
        value = self.arg(name)
        if not value:
            return default
        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            raise HttpError(400, f"invalid JSON in the {name} parameter") from None

    def body(self, limit: int | None = MAX_JSON_BODY) -> BodyReader:
        if self._body is None:
            self._body = BodyReader(self.handler.rfile, self.headers, limit)
        return self._body

    def json(self, default: Any = None) -> Any:
        """The JSON body (`default` when empty); Docker's 400 for what does not parse."""
        data = self.body().read()
        if not data.strip():
            return default
        try:
            return json.loads(data)
        except ValueError as e:
            raise HttpError(400, f"invalid JSON: {e}") from None
        except RecursionError:
            raise HttpError(400, "invalid JSON: nested too deeply") from None

    def finish_body(self) -> None:
        if self._body is None:
            self._body = BodyReader(self.handler.rfile, self.headers, None)
        self._body.drain()

    # -- answers ----------------------------------------------------------------------------------------------

    def send_json(self, value: Any, status: int = 200) -> None:
        self.handler.send_body(status, json.dumps(value).encode() + b"\n", "application/json")

    def send_empty(self, status: int = 204) -> None:
        self.handler.send_body(status, b"", None)

    def send_bytes(self, data: bytes, content_type: str = "text/plain; charset=utf-8", status: int = 200,
                   headers: dict[str, str] | None = None) -> None:
        self.handler.send_body(status, data, content_type, headers)

    def stream(self, content_type: str = "application/json", headers: dict[str, str] | None = None) -> ChunkedWriter:
        """Start a chunked response whose body the handler writes as it goes (progress, logs, events)."""
        return self.handler.start_chunked(content_type, headers)

    def hijack(self, content_type: str = "application/vnd.docker.raw-stream") -> socket.socket:
        """Take the raw connection over (attach, exec start): `101 UPGRADED` when the client asked for it."""
        return self.handler.hijack(content_type)


class ChunkedWriter:
    """A chunked response body; `write` raises BrokenPipeError/ConnectionError once the client is gone."""

    def __init__(self, wfile) -> None:
        self._wfile = wfile
        self.closed = False

    def write(self, data: bytes) -> None:
        if data:
            self._wfile.write(b"%x\r\n%b\r\n" % (len(data), data))
            self._wfile.flush()

    def write_json(self, value: Any) -> None:
        self.write(json.dumps(value).encode() + b"\r\n")

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._wfile.write(b"0\r\n\r\n")
            self._wfile.flush()


Dispatch = Callable[[Request], None]


class DeadlineReader(io.RawIOBase):
    """The connection's receiving side with an optional deadline for everything read until it is lifted:
    each recv may wait only for what is left of it, so trickling a byte at a time does not stretch it."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock
        self.deadline: float | None = None

    def readable(self) -> bool:
        return True

    def lift(self, timeout: float | None) -> None:
        """No deadline any more: each read waits up to `timeout` (None: as long as it takes)."""
        self.deadline = None
        self._sock.settimeout(timeout)

    def readinto(self, buffer) -> int:
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the request headers took too long")
            self._sock.settimeout(left)
        return self._sock.recv_into(buffer)


class ApiHandler(BaseHTTPRequestHandler):
    """One connection: parses requests and hands each to the server's dispatcher."""

    protocol_version = "HTTP/1.1"
    server_version = "pyctr"
    sys_version = ""
    timeout = IDLE_SECONDS
    server: ApiServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        """No access log (a unix socket has no peer address to print; dockerd logs nothing either by default)."""

    def version_string(self) -> str:
        """The one `Server:` header, dockerd's shape (`Docker/<version> (linux)`)."""
        return self.server.server_header

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # http.server's reader: replaced by one that can hold a deadline for the headers
        self.reader = DeadlineReader(self.connection)
        self.rfile = io.BufferedReader(self.reader, READ_CHUNK)

    def handle_one_request(self) -> None:
        """Wait up to IDLE_SECONDS for a request to begin, then give its line and headers HEADER_SECONDS."""
        self.connection.settimeout(IDLE_SECONDS)
        try:
            if not self.rfile.peek(1):
                self.close_connection = True
                return
        except TimeoutError:  # idle too long (a reset goes on to handle_error: one line in the log)
            self.close_connection = True
            return
        self.reader.deadline = time.monotonic() + HEADER_SECONDS
        try:
            super().handle_one_request()
        finally:
            self.reader.deadline = None

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.reader.lift(IDLE_SECONDS)  # the headers are in: the body reads under the idle timeout
        self._handle()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_GET  # noqa: N815

    def _handle(self) -> None:
        self.response_started = False
        self.hijacked = False
        try:
            self.server.dispatch(self)
        except (BrokenPipeError, ConnectionError, TimeoutError):
            self.close_connection = True

    def common_headers(self, overridden: dict[str, str] | None = None) -> None:
        """The headers every answer carries, except those the answer sets itself (each header once)."""
        for name, value in self.server.common_headers.items():
            if name not in (overridden or {}):
                self.send_header(name, value)

    def send_body(self, status: int, body: bytes, content_type: str | None,
                  headers: dict[str, str] | None = None) -> None:
        self.response_started = True
        self.send_response(status)
        self.common_headers(headers)
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(body)
        self.wfile.flush()

    def start_chunked(self, content_type: str, headers: dict[str, str] | None) -> ChunkedWriter:
        self.response_started = True
        self.connection.settimeout(None)  # streams last as long as their subject
        self.send_response(200)
        self.common_headers(headers)
        self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        return ChunkedWriter(self.wfile)

    def hijack(self, content_type: str) -> socket.socket:
        self.response_started = True
        self.hijacked = True
        self.close_connection = True
        self.connection.settimeout(None)
        upgrade = "upgrade" in (self.headers.get("Connection") or "").lower()
        if upgrade:
            self.send_response_only(101, "UPGRADED")
            self.send_header("Content-Type", content_type)
            self.send_header("Connection", "Upgrade")
            self.send_header("Upgrade", "tcp")
        else:
            self.send_response_only(200)
            self.common_headers()
            self.send_header("Content-Type", content_type)
        self.end_headers()
        self.wfile.flush()
        return self.connection


class ApiServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """Accepts on a listening unix socket (bound by the caller, or handed over by systemd)."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = False

    def __init__(self, listener: socket.socket, dispatch: Callable[[ApiHandler], None],
                 common_headers: dict[str, str], server_header: str) -> None:
        threading.stack_size(STACK_SIZE)
        socketserver.BaseServer.__init__(self, listener.getsockname() or "", ApiHandler)
        self.socket = listener
        self.dispatch = dispatch
        self.common_headers = common_headers
        self.server_header = server_header
        self.slots = ConnectionSlots()
        self.active = 0
        self.last_activity = 0.0

    def verify_request(self, request, client_address) -> bool:
        """A slot for this connection, or a 503 and no thread (the server closes it)."""
        refusal = self.slots.take(request, peer_of(request))
        if refusal is None:
            return True
        body = json.dumps({"message": refusal}).encode() + b"\n"
        head = (f"HTTP/1.1 503 Service Unavailable\r\nServer: {self.server_header}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n")
        try:
            request.send(head.encode() + body, socket.MSG_DONTWAIT)  # never waits on a client that does not read
        except OSError:
            pass
        return False

    def process_request_thread(self, request, client_address) -> None:
        self.active += 1
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.active -= 1
            self.slots.give_back(request)
            self.last_activity = time.monotonic()

    def handle_error(self, request, client_address) -> None:
        """A client that resets or times out is one line in the daemon's log; anything else a traceback."""
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            pid, uid = peer_of(request)
            sys.stderr.write(f"pyctr api: connection from pid {pid} (uid {uid}) ended: "
                             f"{error.strerror or type(error).__name__}\n")
            sys.stderr.flush()
            return
        super().handle_error(request, client_address)


def peer_of(sock: socket.socket) -> tuple[int, int]:
    """(pid, uid) of the process at the other end, as the kernel recorded them at connect (SO_PEERCRED)."""
    try:
        pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                             struct.calcsize("3i")))
        return pid, uid
    except OSError:
        return 0, -1


class ConnectionSlots:
    """Who holds the daemon's connections: at most MAX_CONNECTIONS, MAX_PER_PROCESS from one process and
    MAX_PER_USER from one non-root user (root can stop the daemon anyway; its processes are still capped)."""

    def __init__(self, total: int = MAX_CONNECTIONS, per_process: int = MAX_PER_PROCESS,
                 per_user: int = MAX_PER_USER) -> None:
        self.total, self.per_process, self.per_user = total, per_process, per_user
        self._lock = threading.Lock()
        self._held: dict[object, tuple[int, int]] = {}  # connection -> (pid, uid)
        self._by_pid: dict[int, int] = {}
        self._by_uid: dict[int, int] = {}

    def take(self, connection: object, peer: tuple[int, int]) -> str | None:
        """None when `connection` got a slot, else why not (Docker's `{"message": ...}` text)."""
        pid, uid = peer
        with self._lock:
            if len(self._held) >= self.total:
                return "too many connections to the daemon"
            if self._by_pid.get(pid, 0) >= self.per_process:
                return f"too many connections from process {pid} (at most {self.per_process})"
            if uid != 0 and self._by_uid.get(uid, 0) >= self.per_user:
                return f"too many connections from user {uid} (at most {self.per_user})"
            self._held[connection] = peer
            self._by_pid[pid] = self._by_pid.get(pid, 0) + 1
            self._by_uid[uid] = self._by_uid.get(uid, 0) + 1
            return None

    def give_back(self, connection: object) -> None:
        with self._lock:
            peer = self._held.pop(connection, None)
            if peer is None:
                return
            for counts, key in ((self._by_pid, peer[0]), (self._by_uid, peer[1])):
                counts[key] -= 1
                if counts[key] <= 0:
                    del counts[key]
