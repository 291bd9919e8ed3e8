"""`pyctr system service`: the Engine API daemon's life — its socket, its configuration, its exit.

The daemon holds no state of its own (as the CLI's warm server): every handler reads and writes PYCTR_ROOT
through the same packages and locks as the CLI, so a container made through the API shows in `pyctr ps`
and the other way round, and a restart of the daemon leaves running containers running (their monitors are
their parents, not the daemon: Docker's live-restore).
"""

from __future__ import annotations

import contextlib
import errno
import grp
import os
import signal
import socket
import threading
import time
from typing import TYPE_CHECKING

from pyctr.errors import ConflictError, UsageError

if TYPE_CHECKING:
    from pyctr.config import Config

DEFAULT_HOST = "unix:///run/pyctr/docker.sock"
SD_LISTEN_FDS_START = 3
_CONFIG: list[Config] = []


def config() -> Config:
    """The daemon's configuration (PYCTR_ROOT, registries, network), loaded once at start."""
    return _CONFIG[0]


def debug_enabled() -> bool:
    """`pyctr --debug system service` (or PYCTR_DEBUG=1, as for the CLI's tracebacks): log every failed
    request, not only the daemon's own failures."""
    return bool(os.environ.get("PYCTR_DEBUG")) or (bool(_CONFIG) and _CONFIG[0].debug)


def socket_path_of(host: str) -> str:
    """`unix:///run/pyctr/docker.sock` -> the path; anything but a unix socket is refused (no TCP: the
    API is root-equivalent and pyctr serves it only where file permissions guard it)."""
    if host.startswith("unix://"):
        path = host[len("unix://"):]
    elif host.startswith("/"):
        path = host
    else:
        raise UsageError(f"unsupported host {host!r}: only unix:///path sockets are served")
    if not path.startswith("/"):
        raise UsageError(f"the socket path must be absolute: {host!r}")
    return path


def group_id(name: str | None) -> int:
    """The socket's group: root unless --group names another (a name or a number)."""
    if not name:
        return 0
    if name.isdigit():
        return int(name)
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise UsageError(f"group {name!r} not found") from None


def socket_in_use(path: str) -> bool:
    """True if something accepts on `path` now (another daemon): pyctr refuses to take its socket."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
        return True
    except (FileNotFoundError, ConnectionRefusedError):
        return False
    except OSError as e:
        return e.errno not in (errno.ENOENT, errno.ECONNREFUSED, errno.ENOTSOCK)
    finally:
        probe.close()


def bind_socket(path: str, gid: int) -> socket.socket:
    """Listen on `path`, 0660 root:gid, created under a temporary name and renamed into place."""
    if socket_in_use(path):
        raise ConflictError(f"{path} is already served by another daemon")
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    partial = f"{path}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(partial)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        listener.bind(partial)
    finally:
        os.umask(old)
    os.chown(partial, 0, gid)
    os.chmod(partial, 0o660)
    listener.listen(512)
    os.rename(partial, path)
    return listener


def systemd_listener() -> socket.socket | None:
    """The socket systemd passed (socket activation: LISTEN_PID is us, LISTEN_FDS >= 1), else None."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()) or int(os.environ.get("LISTEN_FDS", "0") or 0) < 1:
        return None
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    os.set_inheritable(SD_LISTEN_FDS_START, False)
    return socket.socket(fileno=SD_LISTEN_FDS_START)


def serve(cfg: Config, host: str, timeout: float, group: str | None) -> None:
    """Run the daemon until SIGTERM/SIGINT, or until it has been idle (no connection) `timeout` seconds
    (0: never), as `podman system service --time`."""
    _CONFIG[:] = [cfg]
    listener = systemd_listener()
    path = None
    if listener is None:
        path = socket_path_of(host)
        listener = bind_socket(path, group_id(group))
    from pyctr.api import handlers  # noqa: F401 - registers the routes
    from pyctr.api.http import ApiServer
    from pyctr.api.routes import dispatch
    from pyctr.api.system import ping_headers

    _preload()
    headers = {k: v for k, v in ping_headers().items() if k in ("API-Version", "Docker-Experimental", "OSType")}
    server = ApiServer(listener, dispatch, headers, server_header="Docker/pyctr (linux)")
    server.last_activity = time.monotonic()
    stop = threading.Event()

    def request_stop(_signum, _frame) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True)
    thread.start()
    try:
        while not stop.wait(0.5):
            if timeout > 0 and server.active == 0 and time.monotonic() - server.last_activity > timeout:
                break
    finally:
        server.shutdown()
        listener.close()
        if path is not None:
            with contextlib.suppress(OSError):
                os.unlink(path)


def _preload() -> None:
    """Import everything handlers may import, before any thread runs: a fork (start, exec) taken while
    another thread holds a module's import lock would leave the child unable to import it."""
    from pyctr.server import preload

    preload()
    import pyctr.api.handlers  # noqa: F401
