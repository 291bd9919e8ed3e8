"""Exec endpoints. An exec instance lives in the daemon's memory (as dockerd's exec store) from create to a
while after it ends; `start` runs `pyctr.runtime.exec.run_exec` in a forked child whose stdio is the hijacked
connection (tty: raw, as is) or pipes the daemon frames (no tty: Docker's multiplexed stream)."""

from __future__ import annotations

import contextlib
import os
import secrets
import select
import signal
import threading
import time
from dataclasses import dataclass, field

from pyctr.api import documents
from pyctr.api.http import HttpError, Request
from pyctr.api.routes import route
from pyctr.api.service import config
from pyctr.api.streams import frame, peer_gone
from pyctr.errors import ConflictError, NotFoundError, PyctrError

MAX_EXECS = 4096  # ended instances beyond this are forgotten, oldest first
ENDED_KEEP_SECONDS = 300.0  # an ended instance stays inspectable this long (dockerd's exec GC: 5 minutes)
MAX_PENDING = 256  # created, never started: beyond this the oldest are forgotten
MAX_EXEC_BODY = 256 * 1024  # a create body: Cmd, Env, User, WorkingDir
START_WAIT_SECONDS = 10.0  # a resize waits this long for its exec to start (dockerd's timeout)
TERM_GRACE_SECONDS = 10.0  # dockerd's termProcessTimeout: TERM, then KILL, when an exec's client goes away
INSPECTED_KEYS = ("Tty", "Cmd", "Privileged", "User", "AttachStdin", "AttachStdout", "AttachStderr", "DetachKeys")


@dataclass
class ExecInstance:
    id: str
    container_id: str
    body: dict
    options: object
    created_at: float = field(default_factory=time.monotonic)
    running: bool = False
    exit_code: int | None = None
    pid: int = 0
    ended_at: float = 0.0
    started: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


_EXECS: dict[str, ExecInstance] = {}
_EXECS_LOCK = threading.Lock()


def expired_ids(execs: list[ExecInstance], running_containers: set[str], now: float) -> set[str]:
    """Which instances to forget (pure): ended ones after ENDED_KEEP_SECONDS or beyond MAX_EXECS (oldest
    first), never-started ones once their container no longer runs (dockerd unregisters a container's execs
    when it stops) or beyond MAX_PENDING (oldest first). A running one is never forgotten."""
    ended = sorted((e for e in execs if e.ended_at), key=lambda e: e.ended_at)
    pending = sorted((e for e in execs if not e.started), key=lambda e: e.created_at)
    gone = {e.id for e in ended if now - e.ended_at > ENDED_KEEP_SECONDS}
    gone |= {e.id for e in ended[:max(0, len(ended) - MAX_EXECS)]}
    gone |= {e.id for e in pending if e.container_id not in running_containers}
    alive = [e for e in pending if e.id not in gone]
    gone |= {e.id for e in alive[:max(0, len(alive) - MAX_PENDING)]}
    return gone


def _expire() -> None:
    from pyctr.runtime.state import ContainerStore

    with _EXECS_LOCK:
        execs = list(_EXECS.values())
    store = ContainerStore(config().paths)
    running = set()
    for container_id in {e.container_id for e in execs if not e.started}:
        try:
            if store.get(container_id).state.running:
                running.add(container_id)
        except PyctrError:
            pass
    gone = expired_ids(execs, running, time.monotonic())
    with _EXECS_LOCK:
        for exec_id in gone:
            _EXECS.pop(exec_id, None)


def _instance(request: Request) -> ExecInstance:
    _expire()
    instance = _EXECS.get(request.params["id"])
    if instance is None:
        raise NotFoundError(f"No such exec instance: {request.params['id']}")
    return instance


@route("POST", "/containers/{id}/exec")
def create(request: Request) -> None:
    from pyctr.runtime.state import ContainerStore

    request.body(limit=MAX_EXEC_BODY)
    body = request.json(default={})
    options = documents.exec_options(body)
    record = ContainerStore(config().paths).get(request.params["id"])
    if not record.state.running:
        raise ConflictError(f"Container {record.id} is not running")
    instance = ExecInstance(secrets.token_hex(32), record.id, {k: body.get(k) for k in INSPECTED_KEYS}, options)
    _expire()
    with _EXECS_LOCK:
        _EXECS[instance.id] = instance
    request.send_json({"Id": instance.id}, status=201)


@route("GET", "/exec/{id}/json")
def inspect(request: Request) -> None:
    e = _instance(request)
    body = e.body
    request.send_json({
        "ID": e.id, "Running": e.running, "ExitCode": e.exit_code, "ProcessConfig": {
            "tty": bool(body.get("Tty")), "entrypoint": body["Cmd"][0], "arguments": body["Cmd"][1:],
            "privileged": bool(body.get("Privileged")), "user": body.get("User") or ""},
        "OpenStdin": bool(body.get("AttachStdin")), "OpenStderr": bool(body.get("AttachStderr")),
        "OpenStdout": bool(body.get("AttachStdout")), "CanRemove": False, "ContainerID": e.container_id,
        "DetachKeys": body.get("DetachKeys") or "", "Pid": e.pid})


@route("POST", "/exec/{id}/resize")
def resize(request: Request) -> None:
    """The exec's pty (its slave, held by the command) gets the size: TIOCSWINSZ, SIGWINCH to its job."""
    from pyctr.runtime.exec import resize_exec_terminal

    instance = _instance(request)
    rows, cols = terminal_size(request)
    deadline = time.monotonic() + START_WAIT_SECONDS
    while not instance.pid and time.monotonic() < deadline:  # dockerd waits for the session to start too
        time.sleep(0.01)
    if not instance.pid:
        raise HttpError(500, "timeout waiting for exec session ready")
    # The command gets its terminal a moment after start (docker exec -it resizes right after it): retry.
    while rows and cols and instance.body.get("Tty") and instance.running and time.monotonic() < deadline:
        if resize_exec_terminal(instance.pid, rows, cols):
            break
        time.sleep(0.01)
    request.send_empty(200)


def terminal_size(request: Request) -> tuple[int, int]:
    """The `h` and `w` query values of a resize: 0 to 65535 (a winsize holds 16 bits), else 400."""
    rows, cols = request.int_arg("h", 0), request.int_arg("w", 0)
    if not (0 <= rows <= 0xFFFF and 0 <= cols <= 0xFFFF):
        raise HttpError(400, f"invalid terminal size {rows}x{cols}")
    return rows, cols


@route("POST", "/exec/{id}/start")
def start(request: Request) -> None:
    instance = _instance(request)
    body = request.json(default={}) or {}
    with instance.lock:
        if instance.started:
            raise ConflictError(f"Exec {instance.id} has already been started")
        instance.started = True
    detach = bool(body.get("Detach"))
    tty = bool(instance.body.get("Tty"))
    options = instance.options._replace(detach=detach)
    if detach:
        _run(instance, options, None, None, None)
        request.send_empty(200)
        return
    sock = request.hijack()
    try:
        if tty:
            pid = _spawn(instance, options, sock.fileno(), sock.fileno(), sock.fileno())
            _supervise(instance, pid, sock, {})
        else:
            _run_multiplexed(instance, options, request, sock)
    finally:
        with contextlib.suppress(OSError):
            sock.shutdown(2)


def _run_multiplexed(instance: ExecInstance, options, request: Request, sock) -> None:
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    in_r, in_w = (os.pipe2(os.O_CLOEXEC) if options.interactive else (None, None))
    try:
        pid = _spawn(instance, options, in_r, out_w, err_w)
    finally:
        for fd in (out_w, err_w, in_r):
            if fd is not None:
                os.close(fd)
    if in_w is not None:
        threading.Thread(target=_copy_stdin, args=(request.handler.rfile, in_w), daemon=True).start()
    _supervise(instance, pid, sock, {out_r: 1, err_r: 2})


def _supervise(instance: ExecInstance, pid: int, sock, outputs: dict[int, int]) -> None:
    """Until the exec ends: its output pipes (stream number by fd) framed to the client, the client watched.

    The exec is over when its session process ends (its pidfd is readable), not when the pipes close: an
    orphan the command left behind may hold them. A client that goes away (both directions closed) has the
    command sent TERM, then KILL after TERM_GRACE_SECONDS, as dockerd does: nothing outlives it for long."""
    from pyctr.runtime.exec import signal_exec_command

    pidfd = os.pidfd_open(pid)
    poller = select.poll()
    for fd in (*outputs, pidfd, sock.fileno()):
        poller.register(fd, select.POLLIN if fd != sock.fileno() else 0)
    client_gone_at = None
    terminated: set[int] = set()  # each process of the exec gets one TERM, also one that starts after the client left
    try:
        while True:
            events = dict(poller.poll(100 if client_gone_at else 1000))
            if pidfd in events:
                _drain(outputs, sock if client_gone_at is None else None)
                break
            for fd in [fd for fd in outputs if fd in events]:
                if not _forward(fd, outputs, sock if client_gone_at is None else None):
                    poller.unregister(fd)
            if client_gone_at is None and (sock.fileno() in events or peer_gone(sock)):
                client_gone_at = time.monotonic()
                poller.unregister(sock.fileno())
            if client_gone_at is not None and time.monotonic() - client_gone_at > TERM_GRACE_SECONDS:
                signal_exec_command(pid, signal.SIGKILL)
            elif client_gone_at is not None:
                terminated.update(signal_exec_command(pid, signal.SIGTERM, skip=terminated))
    finally:
        os.close(pidfd)
        for fd in outputs:
            os.close(fd)
        _reap(instance, pid)


def _forward(fd: int, outputs: dict[int, int], sock) -> bool:
    """One read of an output pipe to the client (dropped once it is gone); False at the pipe's end."""
    data = os.read(fd, 65536)
    if not data:
        return False
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.sendall(frame(outputs[fd], data))
    return True


def _drain(outputs: dict[int, int], sock) -> None:
    """What the ended command left in its pipes, without waiting for writers that may still hold them."""
    for fd in outputs:
        os.set_blocking(fd, False)
        with contextlib.suppress(BlockingIOError):
            while _forward(fd, outputs, sock):
                pass


def _copy_stdin(rfile, write_end: int) -> None:
    try:
        while data := rfile.read1(65536):
            view = memoryview(data)
            while view:
                view = view[os.write(write_end, view):]
    except (OSError, ValueError):
        pass
    finally:
        os.close(write_end)


def _run(instance: ExecInstance, options, stdin, stdout, stderr) -> None:
    pid = _spawn(instance, options, stdin, stdout, stderr)
    if options.detach:
        threading.Thread(target=_reap, args=(instance, pid), daemon=True).start()
    else:
        _reap(instance, pid)


def _spawn(instance: ExecInstance, options, stdin, stdout, stderr) -> int:
    """Fork a child with the given stdio (None: /dev/null) that runs the exec and exits with its code."""
    from pyctr.runtime.exec import run_exec
    from pyctr.runtime.process.inherited import disown_inherited_fds

    cfg = config()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the forked child
        code = 126
        try:
            devnull = os.open(os.devnull, os.O_RDWR)
            for target, fd in enumerate((stdin, stdout, stderr)):
                os.dup2(devnull if fd is None else fd, target)
            disown_inherited_fds()  # not closerange: the daemon's objects must not close the exec's fds
            os.setsid()
            code = run_exec(cfg, instance.container_id, options)
        except PyctrError as e:
            with contextlib.suppress(OSError):
                os.write(2, (e.message + "\n").encode())
            code = e.exit_code
        except BaseException:  # noqa: BLE001 - never unwind into the daemon's threads
            code = 126
        os._exit(code)
    instance.pid = pid
    instance.running = True
    return pid


def _reap(instance: ExecInstance, pid: int) -> None:
    from pyctr.runtime.monitor import exit_code_of

    while True:
        try:
            _, status = os.waitpid(pid, 0)
            instance.exit_code = exit_code_of(status)
            break
        except InterruptedError:
            continue
        except ChildProcessError:
            instance.exit_code = 126
            break
    instance.running = False
    instance.ended_at = time.monotonic()
