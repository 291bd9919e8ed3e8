"""Exec endpoints. An exec instance lives in the daemon's memory (as dockerd's exec store) from create to a
while after it ends; `start` runs `pyctr.runtime.exec.run_exec` in a forked child whose stdio is the hijacked
connection (tty: raw, as is) or pipes the daemon frames (no tty: Docker's multiplexed stream)."""

from __future__ import annotations

import contextlib
import os
import secrets
import select
import threading
import time
from dataclasses import dataclass, field

from pyctr.api import documents
from pyctr.api.http import Request
from pyctr.api.routes import route
from pyctr.api.service import config
from pyctr.api.streams import frame
from pyctr.errors import ConflictError, NotFoundError, PyctrError

MAX_EXECS = 4096  # ended instances beyond this are forgotten, oldest first


@dataclass
class ExecInstance:
    id: str
    container_id: str
    body: dict
    options: object
    running: bool = False
    exit_code: int | None = None
    pid: int = 0
    ended_at: float = 0.0
    started: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


_EXECS: dict[str, ExecInstance] = {}
_EXECS_LOCK = threading.Lock()


def _forget_old() -> None:
    ended = sorted((e for e in _EXECS.values() if e.ended_at), key=lambda e: e.ended_at)
    for instance in ended[:max(0, len(_EXECS) - MAX_EXECS)]:
        _EXECS.pop(instance.id, None)


def _instance(request: Request) -> ExecInstance:
    instance = _EXECS.get(request.params["id"])
    if instance is None:
        raise NotFoundError(f"No such exec instance: {request.params['id']}")
    return instance


@route("POST", "/containers/{id}/exec")
def create(request: Request) -> None:
    from pyctr.runtime.state import ContainerStore

    body = request.json(default={})
    options = documents.exec_options(body)
    record = ContainerStore(config().paths).get(request.params["id"])
    if not record.state.running:
        raise ConflictError(f"Container {record.id} is not running")
    instance = ExecInstance(secrets.token_hex(32), record.id, body, options)
    with _EXECS_LOCK:
        _forget_old()
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
    _instance(request)
    request.send_empty(200)


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
            _run(instance, options, sock.fileno(), sock.fileno(), sock.fileno())
        else:
            _run_multiplexed(instance, options, request, sock)
    finally:
        with contextlib.suppress(OSError):
            sock.shutdown(2)


def _run_multiplexed(instance: ExecInstance, options, request: Request, sock) -> None:
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    in_r, in_w = (os.pipe() if options.interactive else (None, None))
    try:
        pid = _spawn(instance, options, in_r, out_w, err_w)
    finally:
        for fd in (out_w, err_w, in_r):
            if fd is not None:
                os.close(fd)
    if in_w is not None:
        threading.Thread(target=_copy_stdin, args=(request.handler.rfile, in_w), daemon=True).start()
    sources = {out_r: 1, err_r: 2}
    while sources:
        readable, _, _ = select.select(list(sources), [], [])
        for fd in readable:
            data = os.read(fd, 65536)
            if not data:
                os.close(fd)
                del sources[fd]
                continue
            with contextlib.suppress(OSError):
                sock.sendall(frame(sources[fd], data))
    _reap(instance, pid)


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
