"""Routing of the Engine API: the version prefix, the route table, and Docker's error answers.

Pure parts (version parsing and checks, route matching, error -> status) are functions tested on their own
(tests/unit/test_api_routes.py); `dispatch` is the thin layer the HTTP server calls per request.
"""

from __future__ import annotations

import errno
import json
import re
import sys
import traceback
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

from pyctr.api.http import ApiHandler, HttpError, Request
from pyctr.errors import (
    ConflictError,
    InvalidReference,
    NotFoundError,
    PyctrError,
    UnsafeArchiveError,
    UsageError,
)

MIN_API_VERSION = (1, 24)
MAX_API_VERSION = (1, 41)
VERSION_PREFIX = re.compile(r"^/v(\d+)\.(\d+)(/.*)$")

Handler = Callable[[Request], None]
ROUTES: list[tuple[str, re.Pattern, Handler]] = []


def route(method: str, pattern: str) -> Callable[[Handler], Handler]:
    """Register a handler; `{name}` in the pattern matches one path segment (`{name:path}` the rest)."""
    regex = re.sub(r"\{(\w+):path\}", r"(?P<\1>.+)", pattern)
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", regex)

    def register(handler: Handler) -> Handler:
        ROUTES.append((method, re.compile(f"^{regex}$"), handler))
        return handler

    return register


def version_text(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def split_version(path: str) -> tuple[tuple[int, int] | None, str]:
    """`/v1.41/containers/json` -> ((1, 41), "/containers/json"); no prefix -> (None, path)."""
    match = VERSION_PREFIX.match(path)
    if not match:
        return None, path
    return (int(match.group(1)), int(match.group(2))), match.group(3)


def check_version(version: tuple[int, int] | None) -> tuple[int, int]:
    """dockerd's version middleware: too old or too new is a 400 with its words; none means the newest."""
    if version is None:
        return MAX_API_VERSION
    if version < MIN_API_VERSION:
        raise HttpError(400, f"client version {version_text(version)} is too old. Minimum supported API version "
                             f"is {version_text(MIN_API_VERSION)}, please upgrade your client to a newer version")
    if version > MAX_API_VERSION:
        raise HttpError(400, f"client version {version_text(version)} is too new. Maximum supported API version "
                             f"is {version_text(MAX_API_VERSION)}")
    return version


def find_route(method: str, path: str) -> tuple[Handler, dict[str, str]]:
    """The handler for (method, path) and its path parameters; 404 for an unknown path, 405 for a known path
    with another method (as dockerd's router)."""
    known_path = False
    for route_method, regex, handler in ROUTES:
        match = regex.match(path)
        if match is None:
            continue
        if route_method == method or (method == "HEAD" and route_method == "GET"
                                      and not _has_head(path)):
            return handler, match.groupdict()
        known_path = True
    if known_path:
        raise HttpError(405, "method not allowed")
    raise HttpError(404, "page not found")


def _has_head(path: str) -> bool:
    return any(m == "HEAD" and r.match(path) for m, r, _ in ROUTES)


def status_for(error: PyctrError) -> int:
    """Docker's errdefs -> HTTP status: not found 404, conflict 409, invalid parameter 400 (bad mounts and
    volume names too), else 500."""
    if isinstance(error, NotFoundError):
        return 404
    if isinstance(error, ConflictError):
        return 409
    from pyctr.runtime.mounts import MountError  # a mount or volume dockerd refuses: InvalidParameter

    if isinstance(error, UsageError | InvalidReference | UnsafeArchiveError | MountError):
        return 400
    return 500


# A path or name the client gave that the kernel refuses: the client's error, not the daemon's (dockerd's
# errdefs.InvalidParameter / NotFound for the same lookups).
_NOT_FOUND_ERRNOS = frozenset({errno.ENOENT})
_BAD_PARAMETER_ERRNOS = frozenset({errno.ELOOP, errno.ENAMETOOLONG, errno.ENOTDIR, errno.EISDIR, errno.EINVAL,
                                   errno.EEXIST, errno.ENOTEMPTY})


def answer_for_exception(error: BaseException) -> tuple[int, str] | None:
    """(status, message) for what a handler raised beyond pyctr's own errors, or None for a daemon fault
    (500 with a traceback in the log): an OSError on a client-given path by its errno, a structure nested
    too deep for Python (RecursionError: deeply nested JSON or filters) as the client's bad parameter."""
    if isinstance(error, RecursionError):
        return 400, "invalid request: nested too deeply"
    if isinstance(error, OSError) and not isinstance(error, ConnectionError | TimeoutError):
        text = (error.strerror or str(error)).lower()
        message = f"{error.filename}: {text}" if error.filename else text
        if error.errno in _NOT_FOUND_ERRNOS:
            return 404, message
        if error.errno in _BAD_PARAMETER_ERRNOS:
            return 400, message
    return None


def dispatch(handler: ApiHandler) -> None:
    """One request: parse the path, check the version, run the route, answer errors as dockerd does."""
    request = None
    try:
        parts = urlsplit(handler.path)
        version, path = split_version(parts.path)
        request = Request(handler, handler.command, path, check_version(version),
                          parse_qs(parts.query, keep_blank_values=True))
        route_handler, params = find_route(handler.command, path)
        request.params = params
        route_handler(request)
        if not handler.hijacked:
            request.finish_body()
    except HttpError as e:
        _answer_error(handler, request, e.status, e.message)
    except PyctrError as e:
        _answer_error(handler, request, status_for(e), e.message)
    except (BrokenPipeError, ConnectionError, TimeoutError):
        raise
    except Exception as e:  # noqa: BLE001 - a daemon answers 500 and stays up
        known = answer_for_exception(e)
        if known is None:
            traceback.print_exc()
            known = 500, f"{type(e).__name__}: {e}"
        else:
            sys.stderr.write(f"pyctr api: {handler.command} {request.path if request else '?'}: {known[1]}\n")
        _answer_error(handler, request, *known)


def error_log_line(method: str, path: str, status: int, message: str, debug: bool) -> str | None:
    """dockerd's log of a failed request: every 5xx at level error; a 4xx (a client asking for what is not
    there: compose and the CLI do that on purpose) only at level debug, shown with `pyctr --debug`."""
    if status < 500 and not debug:
        return None
    level = "error" if status >= 500 else "debug"
    return f'level={level} msg={json.dumps(f"Handler for {method} {path} returned error: {message}")} status={status}'


def _log_error(handler: ApiHandler, status: int, message: str) -> None:
    from pyctr.api.service import debug_enabled

    line = error_log_line(handler.command, handler.path, status, message, debug_enabled())
    if line is not None:
        print(line, file=sys.stderr, flush=True)


def _answer_error(handler: ApiHandler, request: Request | None, status: int, message: str) -> None:
    _log_error(handler, status, message)
    if handler.response_started:  # too late for a status: the stream simply ends
        handler.close_connection = True
        return
    if request is not None and status < 500 and status != 413:
        try:
            request.finish_body()
        except (HttpError, OSError, ValueError):
            handler.close_connection = True  # a body we refuse to read: the connection cannot be reused
    else:
        handler.close_connection = True
    handler.send_body(status, json.dumps({"message": message}).encode() + b"\n", "application/json")
