"""The HTTP/1.1 layer of the Engine API daemon: the standard library's `http.server` on a unix socket, one
thread per connection.

Why threads and not asyncio: every call the handlers make into pyctr's packages blocks (flocks, fork and
wait, registry downloads, overlay mounts), so an event loop would hand nearly every request to a thread
pool anyway; a thread per connection keeps hijacking trivial (the handler simply owns the socket after
`101 UPGRADED`), reads chunked bodies and streams responses with plain blocking I/O, and an idle
connection costs one parked thread with a small stack (STACK_SIZE). Memory stays bounded: at most
MAX_CONNECTIONS at once (beyond that a connection is closed unanswered), headers as http.server bounds
them (64 KiB lines, 100 headers), JSON bodies at most MAX_JSON_BODY, and a connection that sends nothing
for IDLE_SECONDS between requests is closed (slow clients hold nothing else).
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

MAX_CONNECTIONS = 1024
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
        except ValueError:
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


class ApiHandler(BaseHTTPRequestHandler):
    """One connection: parses requests and hands each to the server's dispatcher."""

    protocol_version = "HTTP/1.1"
    server_version = "pyctr"
    sys_version = ""
    timeout = IDLE_SECONDS
    server: ApiServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        """No access log (a unix socket has no peer address to print; dockerd logs nothing either by default)."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._handle()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_GET  # noqa: N815

    def _handle(self) -> None:
        self.response_started = False
        self.hijacked = False
        try:
            self.server.dispatch(self)
        except (BrokenPipeError, ConnectionError, TimeoutError):
            self.close_connection = True

    def common_headers(self) -> None:
        for name, value in self.server.common_headers.items():
            self.send_header(name, value)

    def send_body(self, status: int, body: bytes, content_type: str | None,
                  headers: dict[str, str] | None = None) -> None:
        self.response_started = True
        self.send_response(status)
        self.common_headers()
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
        self.common_headers()
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
                 common_headers: dict[str, str]) -> None:
        threading.stack_size(STACK_SIZE)
        socketserver.BaseServer.__init__(self, listener.getsockname() or "", ApiHandler)
        self.socket = listener
        self.dispatch = dispatch
        self.common_headers = common_headers
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.active = 0
        self.last_activity = 0.0

    def verify_request(self, request, client_address) -> bool:
        """At most MAX_CONNECTIONS at once: beyond, the connection is closed without a thread."""
        return self._slots.acquire(blocking=False)

    def process_request_thread(self, request, client_address) -> None:
        self.active += 1
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.active -= 1
            self._slots.release()
            import time

            self.last_activity = time.monotonic()
