"""The Engine API's pure parts: version prefix and checks, route matching, error statuses, create bodies,
filters, progress messages and stream frames."""

from __future__ import annotations

import io

import pytest

from pyctr.api import documents, handlers  # noqa: F401 - registers the routes
from pyctr.api.http import BodyReader, HttpError
from pyctr.api.routes import check_version, find_route, split_version, status_for
from pyctr.api.streams import JsonLines, frame, progress_message
from pyctr.errors import ConflictError, NotFoundError, PyctrError, UsageError


def test_version_prefix_is_optional():
    assert split_version("/v1.41/containers/json") == ((1, 41), "/containers/json")
    assert split_version("/containers/json") == (None, "/containers/json")
    assert split_version("/v1.41") == (None, "/v1.41")


def test_versions_outside_the_range_get_dockerds_words():
    assert check_version(None) == (1, 41)
    assert check_version((1, 24)) == (1, 24)
    with pytest.raises(HttpError) as new:
        check_version((1, 43))
    assert (new.value.status, new.value.message) == (
        400, "client version 1.43 is too new. Maximum supported API version is 1.41")
    with pytest.raises(HttpError) as old:
        check_version((1, 12))
    assert old.value.message.startswith("client version 1.12 is too old. Minimum supported API version is 1.24")


def test_routes_match_parameters_and_refuse_unknown_paths_and_methods():
    handler, params = find_route("POST", "/containers/abc/start")
    assert handler.__name__ == "start" and params == {"id": "abc"}
    handler, params = find_route("GET", "/images/127.0.0.1:5000/library/busybox:latest/json")
    assert params == {"name": "127.0.0.1:5000/library/busybox:latest"}
    assert find_route("HEAD", "/containers/x/archive")[0].__name__ == "archive_head"
    with pytest.raises(HttpError) as missing:
        find_route("GET", "/nothing/here")
    assert missing.value.status == 404
    with pytest.raises(HttpError) as method:
        find_route("DELETE", "/_ping")
    assert method.value.status == 405


def test_error_statuses_follow_dockers_errdefs():
    assert status_for(NotFoundError("x")) == 404
    assert status_for(ConflictError("x")) == 409
    assert status_for(UsageError("x")) == 400
    assert status_for(PyctrError("x")) == 500


def test_create_body_maps_onto_run_options():
    options = documents.create_options({
        "Image": "busybox", "Cmd": ["echo", "hi"], "Entrypoint": ["/bin/sh", "-c"], "Env": ["A=1"],
        "Labels": {"a": "b"}, "Tty": True, "OpenStdin": True, "AttachStdout": True,
        "HostConfig": {"Binds": ["/h:/c:ro"], "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}],
                                                              "53/udp": [{"HostPort": "5353"}]},
                       "AutoRemove": True, "NetworkMode": "none", "Memory": 1 << 20, "NanoCpus": 500_000_000,
                       "CapAdd": ["NET_ADMIN"], "Privileged": True, "Init": True, "Dns": ["1.1.1.1"],
                       "ExtraHosts": ["h:1.2.3.4"], "Mounts": [{"Type": "bind", "Source": "/s", "Target": "/t",
                                                                 "ReadOnly": True}]},
    }, "named")
    assert options.entrypoint == "/bin/sh" and options.command == ["-c", "echo", "hi"]
    assert options.name == "named" and options.tty and options.interactive and options.rm and not options.detach
    assert options.volumes == ["/h:/c:ro"] and options.mounts == ["type=bind,target=/t,source=/s,readonly=true"]
    assert sorted(options.publish) == ["127.0.0.1::80/tcp", "5353:53/udp"]
    assert (options.memory, options.cpus, options.network) == (str(1 << 20), "0.5", "none")
    assert options.labels == ["a=b"] and options.add_host == ["h:1.2.3.4"] and options.init and options.privileged


def test_create_body_refuses_wrong_shapes():
    with pytest.raises(UsageError):
        documents.create_options({"Image": "busybox", "Env": "A=1 B=2x", "Cmd": [1]}, None)
    with pytest.raises(UsageError):
        documents.create_options([], None)
    with pytest.raises(UsageError):
        documents.create_options({"Image": "busybox", "HostConfig": {"Mounts": [{"Type": "npipe"}]}}, None)


def test_filters_in_both_of_dockers_shapes():
    assert documents.parse_filters('{"status": ["running"], "label": {"a=b": true}}') == {
        "status": ["running"], "label": ["a=b"]}
    with pytest.raises(UsageError):
        documents.parse_filters("[1]")


def test_progress_lines_become_json_messages():
    sent = []
    out = JsonLines(sent.append)
    out.write("Pulling from library/busybox\n0123456789ab: Pull")
    out.write(" complete\r\n")
    assert sent == [{"status": "Pulling from library/busybox"},
                    {"status": "Pull complete", "progressDetail": {}, "id": "0123456789ab"}]
    assert progress_message("Status: Downloaded") == {"status": "Status: Downloaded"}


def test_multiplexed_frame_header():
    assert frame(2, b"abc") == b"\x02\x00\x00\x00\x00\x00\x00\x03abc"


class Headers(dict):
    def get(self, key, default=None):
        return super().get(key, default)


def test_chunked_bodies_are_decoded_and_bounded():
    raw = io.BufferedReader(io.BytesIO(b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\nNEXT"))
    body = BodyReader(raw, Headers({"Transfer-Encoding": "chunked"}), limit=10)
    assert body.read() == b"abcde"
    assert raw.read() == b"NEXT"  # the next request stays on the connection
    big = BodyReader(io.BufferedReader(io.BytesIO(b"5\r\nabcde\r\n0\r\n\r\n")),
                     Headers({"Transfer-Encoding": "chunked"}), limit=4)
    with pytest.raises(HttpError) as too_big:
        big.read()
    assert too_big.value.status == 413
    with pytest.raises(HttpError):
        BodyReader(io.BytesIO(b""), Headers({"Content-Length": "100"}), limit=10)


@pytest.mark.parametrize("length", ["-1", "+5", " 5", "5_0", "0x10", "", "1" * 20])
def test_a_content_length_that_is_not_plain_digits_is_refused_before_reading(length):
    """The attack review's case: `Content-Length: -1` made read() take the whole stream (300 MiB kept)."""
    stream = io.BufferedReader(io.BytesIO(b"x" * 64))
    with pytest.raises(HttpError) as refused:
        BodyReader(stream, Headers({"Content-Length": length}), limit=None)
    assert refused.value.status == 400
    assert stream.tell() == 0  # nothing was read


@pytest.mark.parametrize("size", [b"-1", b"+5", b"0x5", b"5_0", b"", b"g", b"1" * 17])
def test_a_chunk_size_that_is_not_plain_hex_is_refused(size):
    raw = io.BufferedReader(io.BytesIO(size + b"\r\n" + b"x" * 64))
    body = BodyReader(raw, Headers({"Transfer-Encoding": "chunked"}), limit=None)
    with pytest.raises(HttpError) as refused:
        body.read(10)
    assert refused.value.status == 400
    assert len(raw.read()) == 64  # the data after the size line was never taken


# -- the attack review's second round: connection slots, header deadline, error statuses, exec records ------

def test_one_process_cannot_take_every_connection_slot():
    from pyctr.api.http import ConnectionSlots

    slots = ConnectionSlots(total=10, per_process=3, per_user=5)
    held = [object() for _ in range(5)]
    assert all(slots.take(c, (100, 0)) is None for c in held[:3])
    refused = slots.take(object(), (100, 0))
    assert refused is not None and "process 100" in refused
    assert slots.take(held[3], (101, 0)) is None  # another process still gets in
    slots.give_back(held[0])
    assert slots.take(held[4], (100, 0)) is None  # a slot given back can be taken again


def test_a_non_root_user_is_capped_across_its_processes_and_the_total_holds():
    from pyctr.api.http import ConnectionSlots

    slots = ConnectionSlots(total=8, per_process=2, per_user=3)
    held = [object() for _ in range(9)]  # kept alive: a slot is keyed by its connection object
    assert [slots.take(held[i], (pid, 1000)) for i, pid in enumerate((1, 1, 2))] == [None, None, None]
    assert "user 1000" in slots.take(object(), (3, 1000))
    assert [slots.take(held[3 + i], (pid, 0)) for i, pid in enumerate((4, 4, 5, 5, 6))] == [None] * 5
    assert slots.take(held[8], (7, 0)) == "too many connections to the daemon"  # root: per process and total


def test_the_request_head_has_a_deadline_however_slowly_it_is_trickled():
    import socket
    import threading
    import time

    from pyctr.api.http import DeadlineReader

    ours, theirs = socket.socketpair()
    stop = threading.Event()

    def trickle() -> None:
        while not stop.is_set():
            theirs.send(b"x")  # one byte every 50 ms: each recv alone would never time out
            time.sleep(0.05)

    threading.Thread(target=trickle, daemon=True).start()
    reader = io.BufferedReader(DeadlineReader(ours), 1)
    reader.raw.deadline = time.monotonic() + 0.3
    started = time.monotonic()
    try:
        with pytest.raises(TimeoutError):
            reader.readline(65537)
        assert time.monotonic() - started < 1.0
        reader.raw.lift(None)  # lifted: reads wait as long as the data takes
        assert reader.read1(1) == b"x"
    finally:
        stop.set()
        ours.close()
        theirs.close()


def test_os_errors_on_client_paths_and_deep_nesting_are_the_clients_errors():
    import errno

    from pyctr.api.routes import answer_for_exception

    assert answer_for_exception(OSError(errno.ELOOP, "Too many levels of symbolic links", "a/b"))[0] == 400
    assert answer_for_exception(OSError(errno.ENAMETOOLONG, "File name too long"))[0] == 400
    assert answer_for_exception(FileNotFoundError(errno.ENOENT, "No such file or directory", "x")) == (
        404, "x: no such file or directory")
    assert answer_for_exception(RecursionError())[0] == 400
    assert answer_for_exception(OSError(errno.EIO, "I/O error")) is None  # the daemon's own fault: 500
    assert answer_for_exception(ConnectionResetError()) is None
    assert answer_for_exception(KeyError("x")) is None


def test_deeply_nested_json_is_a_400_not_a_crash():
    from types import SimpleNamespace

    from pyctr.api.http import Request

    deep = b"[" * 200_000 + b"]" * 200_000
    handler = SimpleNamespace(rfile=io.BufferedReader(io.BytesIO(deep)),
                              headers=Headers({"Content-Length": str(len(deep))}))
    with pytest.raises(HttpError) as refused:
        Request(handler, "POST", "/containers/create", (1, 41), {}).json()
    assert refused.value.status == 400
    with pytest.raises(UsageError):
        documents.parse_filters("[" * 100_000)


def test_a_childs_error_keeps_its_kind_so_the_api_keeps_its_status():
    from pyctr.runtime.process.child import error_class, run_in_child

    assert error_class("NotFoundError") is NotFoundError
    assert error_class("os") is PyctrError and error_class(None) is PyctrError

    def missing() -> None:
        raise NotFoundError("Could not find the file /x in container c")

    with pytest.raises(NotFoundError) as raised:
        run_in_child(missing)
    assert status_for(raised.value) == 404


def test_path_errors_map_to_not_found_and_bad_parameter():
    import errno

    from pyctr.runtime.copy import path_error

    assert isinstance(path_error(OSError(errno.ENOENT, "x")), NotFoundError)
    assert status_for(path_error(OSError(errno.ELOOP, "Too many levels of symbolic links", "/l/"))) == 400
    assert status_for(path_error(OSError(errno.ENAMETOOLONG, "File name too long"))) == 400
    assert status_for(path_error(OSError(errno.EIO, "I/O error"))) == 500


def _exec(exec_id: str, container: str = "c1", *, created: float = 0.0, started: bool = False,
          ended_at: float = 0.0):
    from pyctr.api.execs import ExecInstance

    return ExecInstance(exec_id, container, {}, None, created_at=created, started=started, ended_at=ended_at)


def test_exec_records_expire_as_dockerds_do_and_are_bounded():
    from pyctr.api import execs

    now = 10_000.0
    records = [_exec("pending-running", created=1), _exec("pending-stopped", "c2", created=2),
               _exec("ended-old", started=True, ended_at=now - execs.ENDED_KEEP_SECONDS - 1),
               _exec("ended-new", started=True, ended_at=now - 1), _exec("running", "c2", started=True)]
    assert execs.expired_ids(records, {"c1"}, now) == {"pending-stopped", "ended-old"}
    many = [_exec(f"p{i}", created=i) for i in range(execs.MAX_PENDING + 5)]
    gone = execs.expired_ids(many, {"c1"}, now)
    assert gone == {f"p{i}" for i in range(5)}  # the oldest unstarted ones
