"""Starting and stopping a container's IPv6 userland proxy (the process is userland_proxy.py).

The sockets are bound by the caller (under the network lock); the proxy is
started without waiting for its interpreter, so `run` pays a fork and exec,
never Python's start-up. It is stopped by pid, but only once /proc shows that
pid is still this container's proxy (pids are reused).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
from pathlib import Path

from pyctr.runtime.network.publish import PortMapping

PROXY_SCRIPT = Path(__file__).with_name("userland_proxy.py")
STOP_WAIT_SECONDS = 2.0
_STARTED: list[subprocess.Popen] = []  # kept so Popen does not warn about a running child: it outlives `run`


def proxy_argv(container_id: str, target_ip: str, forwards: list[tuple[int, PortMapping]]) -> list[str]:
    """The proxy's command line: one FD/PROTO/IP/PORT per [::] socket handed over."""
    specs = [f"{fd}/{m.proto}/{target_ip}/{m.container_port}" for fd, m in forwards]
    return [sys.executable, "-I", "-S", str(PROXY_SCRIPT), container_id, *specs]


def start_proxy(container_id: str, target_ip: str, bound: list[tuple[socket.socket, PortMapping]]) -> int:
    """Start the proxy on the bound [::] sockets; return its pid. The caller closes its copies."""
    forwards = [(sock.fileno(), mapping) for sock, mapping in bound]
    process = subprocess.Popen(
        proxy_argv(container_id, target_ip, forwards),
        pass_fds=[fd for fd, _ in forwards],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C at the terminal is the container's, not the proxy's
    )
    _STARTED.append(process)
    return process.pid


def is_proxy_of(cmdline: bytes, container_id: str) -> bool:
    """True if a /proc/PID/cmdline is the proxy of `container_id` (not a process that reused its pid)."""
    args = cmdline.split(b"\0")
    return any(a.endswith(PROXY_SCRIPT.name.encode()) for a in args) and container_id.encode() in args


def stop_proxy(proxy: dict, container_id: str) -> None:
    """Kill the container's proxy and wait until its sockets are closed.

    The pid is pinned by a pidfd before the identity check, so the signal cannot reach a process that took
    the number meanwhile; the wait is on the pidfd, which becomes readable only once the process has exited
    (its files closed). An empty /proc/PID/cmdline is no such sign: it empties when the dying process drops
    its memory, before its sockets are closed."""
    pid = int(proxy.get("pid", 0))
    if pid <= 0:
        return
    try:
        pidfd = os.pidfd_open(pid)
    except (ProcessLookupError, OSError):
        return
    try:
        if not is_proxy_of(_cmdline(pid), container_id):
            return
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        select.select([pidfd], [], [], STOP_WAIT_SECONDS)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # our own child (an in-process start): reap it
    finally:
        os.close(pidfd)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
