"""Container endpoints: parse, call pyctr.runtime, serialise. The attach/wait/logs streams live here too."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import threading
import time

from pyctr.api import documents
from pyctr.api.http import HttpError, Request
from pyctr.api.routes import route
from pyctr.api.service import config
from pyctr.api.streams import frame, peer_gone
from pyctr.errors import NotFoundError, PyctrError

POLL = 0.05
MAX_ARCHIVE_BODY = 16 << 30  # docker cp into a container: bounded, spooled to disk beyond 1 MiB
_PENDING_ATTACH: dict[str, int] = {}  # container id -> attaches waiting for its start (the monitor waits for them)
_PENDING_LOCK = threading.Lock()


def _store():
    from pyctr.runtime.state import ContainerStore

    return ContainerStore(config().paths)


def _record(request: Request):
    return _store().get(request.params["id"])


@route("POST", "/containers/create")
def create(request: Request) -> None:
    from pyctr.image.reference import parse_reference
    from pyctr.image.store import ImageStore
    from pyctr.runtime import container

    options = documents.create_options(request.json(default={}), request.arg("name"))
    try:
        image = ImageStore(config().paths).resolve(options.image)  # dockerd never pulls on create: the client
    except NotFoundError:                                           # does on 404
        raise NotFoundError(f"No such image: {parse_reference(options.image).familiar}") from None
    if request.arg("platform"):  # h-misc: another platform's image counts as missing (the client pulls it)
        from dataclasses import replace

        from pyctr.runtime.lifecycle.misc_flags import check_platform, platform_mismatch

        check_platform(request.arg("platform"))
        if platform_mismatch(request.arg("platform"), image.config) is not None:
            raise NotFoundError(f"No such image: {parse_reference(options.image).familiar}")
        options = replace(options, platform=request.arg("platform"))
    import io

    out = io.StringIO()  # no pull happens here; dockerd's warnings (p15-ns: flags the kernel cannot honour) do
    record = container.create(config(), options, out=out)
    warnings = [line.removeprefix("WARNING: ") for line in out.getvalue().splitlines() if line.startswith("WARNING: ")]
    request.send_json({"Id": record.id, "Warnings": warnings}, status=201)


@route("GET", "/containers/json")
def list_containers(request: Request) -> None:
    from pyctr.runtime import ps
    from pyctr.runtime.listing import ps_items, with_sizes

    filters = documents.parse_filters(request.arg("filters"))
    records = {r.id: r for r in _store().list_for_listing()}
    items = ps.select_items(ps_items(list(records.values())), show_all=request.flag("all"),
                            filters={k: v for k, v in filters.items() if k in ps_filter_keys()},
                            last=request.int_arg("limit", -1) or -1)
    if request.flag("size"):
        items = with_sizes(config().paths, items)
    summaries = []
    for item in items:
        summary = documents.container_summary(item, records[item.id])
        if request.flag("size"):
            summary.update(SizeRw=item.size_rw, SizeRootFs=item.size_root_fs)
        summaries.append(summary)
    request.send_json(summaries)


def ps_filter_keys() -> tuple[str, ...]:
    return ("status", "name", "id", "label", "ancestor", "exited")


@route("GET", "/containers/{id}/json")
def inspect(request: Request) -> None:
    from pyctr.runtime.inspect import container_inspect

    record = _record(request)
    doc = container_inspect(record.config, record.state.to_dict(), record.directory)
    if request.flag("size"):
        from pyctr.runtime.listing import ps_items, with_sizes

        item = with_sizes(config().paths, ps_items([record]))[0]
        doc.update(SizeRw=item.size_rw, SizeRootFs=item.size_root_fs)
    request.send_json(doc)


@route("POST", "/containers/{id}/start")
def start(request: Request) -> None:
    from pyctr.runtime import container

    record = _record(request)
    if record.state.running:
        request.send_empty(304)
        return
    with _PENDING_LOCK:
        attached = record.id in _PENDING_ATTACH
    container.start_detached(config(), record, wait_for_attach=attached)
    request.send_empty()


@route("POST", "/containers/{id}/stop")
def stop(request: Request) -> None:
    from pyctr.runtime import container

    record = _record(request)
    if not record.state.running:
        request.send_empty(304)
        return
    container.stop(config(), record.id, request.int_arg("t"), request.arg("signal"))
    request.send_empty()


@route("POST", "/containers/{id}/restart")
def restart(request: Request) -> None:
    from pyctr.runtime import container

    container.restart(config(), _record(request).id, request.int_arg("t"))
    request.send_empty()


@route("POST", "/containers/{id}/kill")
def kill(request: Request) -> None:
    from pyctr.runtime import container

    container.kill(config(), _record(request).id, request.arg("signal") or "KILL")
    request.send_empty()


@route("DELETE", "/containers/{id}")
def remove(request: Request) -> None:
    from pyctr.runtime import container

    container.remove(config(), _record(request).id, force=request.flag("force"), volumes=request.flag("v"))
    request.send_empty()


@route("GET", "/containers/{id}/top")
def top(request: Request) -> None:
    from pyctr.runtime.top import container_top

    result = container_top(config(), request.params["id"], request.arg("ps_args") or "-ef")
    request.send_json({"Titles": result.titles, "Processes": result.processes})


@route("POST", "/containers/{id}/resize")
def resize(request: Request) -> None:
    """The window size of a tty container's terminal (TIOCSWINSZ on its pty: SIGWINCH to its job); dockerd's
    409 for a container that does not run; without a tty there is nothing to size."""
    from pyctr.api.execs import terminal_size
    from pyctr.errors import ConflictError
    from pyctr.runtime.tty import resize_container_terminal

    record = _record(request)
    rows, cols = terminal_size(request)
    if not record.state.running:
        raise ConflictError(f"Container {record.id} is not running")
    if rows and cols and _is_tty(record):
        resize_container_terminal(record, rows, cols)
    request.send_empty(200)


# -- wait ---------------------------------------------------------------------------------------------------

@route("POST", "/containers/{id}/wait")
def wait(request: Request) -> None:
    """Headers at once (the client starts the container only after them), the status once the condition holds.

    not-running: a stopped container answers at once; next-exit: the next exit, even if not started yet;
    removed: once the container is gone (AutoRemove). The exit code is read the moment the container's
    process ends (its monitor's `exitcode` file), before an AutoRemove can take the directory away."""
    condition = request.arg("condition") or "not-running"
    if condition not in ("not-running", "next-exit", "removed"):
        raise HttpError(400, f"invalid condition: {condition!r}")
    store = _store()
    record = _record(request)
    stream = request.stream()
    connection = request.handler.connection
    started_seen = record.state.running
    code, error = record.state.exit_code, None
    first_start = record.state.started_at
    polls = 0
    while True:
        try:
            record = store.get(record.id)
        except NotFoundError:
            break
        if record.state.running:
            started_seen = True
            ended = _exit_code_when_it_ends(store, record, connection)
            if ended is None and peer_gone(connection):
                return
            if ended is not None:
                code = ended
                _settled(store, record.id)  # Docker answers once the exit is recorded (a `rm` right after works)
            continue
        started_seen = started_seen or record.state.started_at != first_start
        code, error = record.state.exit_code, record.state.error or None
        if condition == "not-running" or (condition == "next-exit" and started_seen):
            break
        if peer_gone(connection):
            return
        time.sleep(_backoff(polls := polls + 1))
    stream.write_json({"StatusCode": code, "Error": {"Message": error} if error else None})
    stream.close()


def _settled(store, container_id: str) -> None:
    """Until the monitor has recorded the exit (or the container is gone)."""
    from pyctr.runtime.container import wait_recorded

    with contextlib.suppress(NotFoundError):
        wait_recorded(store, container_id)


def _backoff(polls: int) -> float:
    """Short sleeps first (a start or an AutoRemove is usually milliseconds away), then POLL."""
    return 0.005 if polls < 200 else POLL


def _exit_code_when_it_ends(store, record, connection, slice_seconds: float = 1.0) -> int | None:
    """Wait (in slices, checking the client) for the container's process to end; then its exit code, as its
    monitor leaves it, or None while it still runs."""
    from pyctr.output.timefmt import parse_rfc3339
    from pyctr.runtime.container import wait_for_exit

    state = record.state
    if not wait_for_exit(state.pid, state.pid_start_time, slice_seconds):
        return None
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        exit_file = store.read_exit_file(record.id)
        if exit_file is not None and parse_rfc3339(exit_file[1]) >= parse_rfc3339(state.started_at):
            return exit_file[0]  # this run's (a restarted container's file holds the last run's until then)
        try:
            current = store.get(record.id)
        except NotFoundError:
            return None
        if not current.state.running:
            return current.state.exit_code
        time.sleep(0.002)
    return None


# -- logs and attach ----------------------------------------------------------------------------------------

def _is_tty(record) -> bool:
    return bool((record.config.get("Config") or {}).get("Tty"))


def _encoder(tty: bool, timestamps: bool):
    def encode(entry) -> bytes:
        data = entry.render(timestamps).encode()
        return data if tty else frame(2 if entry.stream == "stderr" else 1, data)
    return encode


@route("GET", "/containers/{id}/logs")
def logs(request: Request) -> None:
    from pyctr.runtime import logs as logfile

    if not (request.flag("stdout") or request.flag("stderr")):
        raise HttpError(400, "Bad parameters: you must choose at least one stream")
    store = _store()
    record = _record(request)
    from pyctr.runtime.lifecycle.misc_flags import LOGS_NOT_SUPPORTED, host_log_config

    if not host_log_config(record.config.get("HostConfig") or {}).writes:
        raise HttpError(501, LOGS_NOT_SUPPORTED)  # dockerd: ErrReadLogsNotSupported is errdefs.NotImplemented
    since_ns = logfile.time_bound_ns("since", request.arg("since") if request.arg("since") != "0" else None)
    until_ns = logfile.time_bound_ns("until", request.arg("until") if request.arg("until") != "0" else None)
    wanted = {s for s in ("stdout", "stderr") if request.flag(s)}
    encode = _encoder(_is_tty(record), request.flag("timestamps"))
    path = logfile.log_path(record.directory, record.id)
    entries, offset = logfile.stored_entries(path, logfile.parse_tail(request.arg("tail") or "all"))
    stream = request.stream("application/vnd.docker.raw-stream" if _is_tty(record) else
                            "application/vnd.docker.multiplexed-stream")
    for entry in logfile.iter_within(entries, since_ns, until_ns):
        if entry.stream in wanted:
            stream.write(encode(entry))
    if request.flag("follow") and record.state.running:
        connection = request.handler.connection

        def running() -> bool:
            if peer_gone(connection):
                return False
            try:
                return store.get(record.id).state.running
            except NotFoundError:
                return False

        for entry in logfile.follow(path, offset, running, interval=POLL):
            at = logfile.entry_time_ns(entry.time)
            if until_ns is not None and at is not None and at > until_ns:
                break
            if entry.stream in wanted and (since_ns is None or at is None or at >= since_ns):
                stream.write(encode(entry))
    stream.close()


@route("POST", "/containers/{id}/attach")
def attach(request: Request) -> None:
    """Hijacked: the container's output from its monitor's attach socket (after the log with logs=1), and
    with stdin=1 the client's input to its stdin (the client's half-close is stdin's EOF when the container
    has StdinOnce). Before start, the start waits for this attach (nothing of the output is missed). A
    client that goes away only ends its own stream: the container keeps running."""
    from pyctr.runtime import logs as logfile

    record = _record(request)
    tty = _is_tty(record)
    wanted = {n for n, s in ((1, "stdout"), (2, "stderr")) if request.flag(s)}
    backlog = logfile.stored_entries(logfile.log_path(record.directory, record.id), None)[0] \
        if request.flag("logs") else iter(())
    if not record.state.running:
        with _PENDING_LOCK:
            _PENDING_ATTACH[record.id] = _PENDING_ATTACH.get(record.id, 0) + 1
    if request.flag("stream"):  # dockerd's containerAttach event
        from pyctr import events

        events.record_container(config().root, record, "attach")
    sock = request.hijack()
    monitor = None
    try:
        encode = _encoder(tty, False)
        for entry in backlog:
            if (2 if entry.stream == "stderr" else 1) in wanted:
                sock.sendall(encode(entry))
        if request.flag("stream"):
            monitor = _monitor_connection(record, sock)
            if monitor is not None:
                _relay_attached(request, sock, monitor, wanted, tty, request.flag("stdin"))
    except OSError:
        pass
    finally:
        with _PENDING_LOCK:
            left = _PENDING_ATTACH.get(record.id, 0) - 1
            if left > 0:
                _PENDING_ATTACH[record.id] = left
            else:
                _PENDING_ATTACH.pop(record.id, None)
        for connection in (monitor, sock):
            if connection is not None:
                with contextlib.suppress(OSError):
                    connection.shutdown(2)
        if monitor is not None:
            monitor.close()


def _monitor_connection(record, client):
    """The monitor's attach socket once the container runs (waiting for its start while the client stays)."""
    from pyctr.runtime.attach import wait_for_socket

    store = _store()
    while True:
        try:
            current = store.get(record.id)
        except NotFoundError:
            return None
        if current.state.running:
            break
        if current.state.started_at != record.state.started_at or peer_gone(client):
            return None  # ran and ended meanwhile, or nobody is listening any more
        time.sleep(0.005)

    def alive() -> bool:
        try:
            return store.get(record.id).state.running and not peer_gone(client)
        except NotFoundError:
            return False

    try:
        return wait_for_socket(current.directory, alive)
    except (PyctrError, OSError):
        return None


def _relay_attached(request: Request, client, monitor, wanted: set[int], tty: bool, stdin: bool) -> None:
    from pyctr.runtime.attach import FrameReader

    if stdin:
        threading.Thread(target=_forward_input, args=(request.handler.rfile, monitor), daemon=True).start()
    reader = FrameReader()
    while data := monitor.recv(65536):
        for stream, payload in reader.feed(data):
            if stream in wanted:
                client.sendall(payload if tty else frame(stream, payload))


def _forward_input(rfile, monitor) -> None:
    """Client -> the monitor (the container's stdin) until the client's EOF, which is passed on."""
    try:
        while data := rfile.read1(65536):
            monitor.sendall(data)
        monitor.shutdown(1)
    except (OSError, ValueError):
        pass


# -- archive (docker cp) -----------------------------------------------------------------------------------

@route("HEAD", "/containers/{id}/archive")
def archive_head(request: Request) -> None:
    from pyctr.runtime.copy import stat_container_path

    stat = stat_container_path(_record(request), _path_arg(request))
    request.send_bytes(b"", "application/x-tar", headers={"X-Docker-Container-Path-Stat": _stat_header(stat)})


@route("GET", "/containers/{id}/archive")
def archive_get(request: Request) -> None:
    from pyctr.runtime.copy import CopyOptions, archive_container_path, stat_container_path

    record = _record(request)
    path = _path_arg(request)
    stat = stat_container_path(record, path)
    stream = request.stream("application/x-tar", headers={"X-Docker-Container-Path-Stat": _stat_header(stat)})
    archive_container_path(record, path, _ChunkFile(stream), CopyOptions(archive=True, follow_link=False))
    stream.close()


@route("PUT", "/containers/{id}/archive")
def archive_put(request: Request) -> None:
    import tempfile

    from pyctr.runtime.copy import extract_into_container

    record = _record(request)
    path = _path_arg(request)
    body = request.body(limit=MAX_ARCHIVE_BODY)
    # Spooled first: a stopped container's files are written by a forked child, which must not read the socket.
    with tempfile.SpooledTemporaryFile(max_size=1 << 20, dir=config().paths.tmp) as spool:
        while chunk := body.read(1 << 20):
            spool.write(chunk)
        spool.seek(0)
        extract_into_container(record, path, spool, archive=request.flag("copyUIDGID"))
    request.send_empty(200)


def _path_arg(request: Request) -> str:
    path = request.arg("path")
    if not path:
        raise HttpError(400, "Bad parameter: path cannot be empty")
    return path


def _stat_header(stat: dict) -> str:
    return base64.b64encode(json.dumps(stat).encode()).decode()


class _ChunkFile:
    """A binary file over a chunked response, buffered into 64 KiB chunks."""

    def __init__(self, stream) -> None:
        self._stream = stream
        self._buffer = bytearray()

    def write(self, data: bytes) -> int:
        self._buffer += data
        if len(self._buffer) >= 65536:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self._buffer:
            self._stream.write(bytes(self._buffer))
            self._buffer.clear()


# -- pause, rename, update, changes, export ------------------------------------------------------------------

@route("POST", "/containers/{id}/pause")
def pause(request: Request) -> None:
    from pyctr.runtime.pause import pause as pause_container

    pause_container(config(), request.params["id"])
    request.send_empty()


@route("POST", "/containers/{id}/unpause")
def unpause(request: Request) -> None:
    from pyctr.runtime.pause import unpause as unpause_container

    unpause_container(config(), request.params["id"])
    request.send_empty()


@route("POST", "/containers/{id}/rename")
def rename(request: Request) -> None:
    from pyctr.runtime.update import rename as rename_container

    rename_container(config(), request.params["id"], (request.arg("name") or "").strip())
    request.send_empty()


@route("POST", "/containers/{id}/update")
def update(request: Request) -> None:
    from pyctr.api.netvol import update_arguments
    from pyctr.runtime.update import UpdateOptions
    from pyctr.runtime.update import update as update_container

    options = UpdateOptions(**update_arguments(request.json(default={})))
    if not options.empty:
        update_container(config(), request.params["id"], options)
    else:
        _record(request)  # nothing to change: still a 404 for a missing container
    request.send_json({"Warnings": []})


@route("GET", "/containers/{id}/changes")
def changes(request: Request) -> None:
    from pyctr.api.netvol import changes_document
    from pyctr.runtime.snapshot import container_diff

    request.send_json(changes_document(container_diff(_record(request))) or None)


@route("GET", "/containers/{id}/export")
def export(request: Request) -> None:
    from pyctr.runtime.snapshot import export_container

    record = _record(request)
    failed: list[PyctrError] = []
    read_end, write_end = os.pipe2(os.O_CLOEXEC)

    def produce() -> None:  # the export packs in a forked child that needs a real descriptor: a pipe
        try:
            with open(write_end, "wb") as writer:
                export_container(config(), record, writer)
        except PyctrError as e:
            failed.append(e)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    with open(read_end, "rb") as reader:
        first = reader.read1(65536)
        if not first:
            producer.join()
            if failed:
                raise failed[0]  # nothing sent yet: Docker's status and message
        stream = request.stream("application/x-tar")
        chunk = first
        while chunk:
            stream.write(chunk)
            chunk = reader.read1(65536)
    producer.join()
    if failed:
        raise failed[0]  # the response has started: the connection is closed, the client sees a cut tar
    stream.close()


def error_text(error: PyctrError) -> str:
    return error.message


@route("POST", "/containers/prune")
def prune(request: Request) -> None:
    """`docker container prune` / `system prune`: stopped containers, with until/label filters."""
    from pyctr.runtime.prune import parse_prune_filters, prune_containers

    filters = documents.parse_filters(request.arg("filters"))
    try:
        parsed = parse_prune_filters([f"{key}={value}" for key, values in filters.items() for value in values])
    except PyctrError as e:
        raise HttpError(400, e.message) from None
    removed, reclaimed = prune_containers(config(), parsed)
    request.send_json({"ContainersDeleted": removed or None, "SpaceReclaimed": reclaimed})
