"""The events journal (pyctr/events.py) and `pyctr events`' parsing and printing: encoding, torn lines,
rotation, concurrent writers, Docker's filters, the message and the default line, templates."""

from __future__ import annotations

import json
import multiprocessing
import os
import time

import pytest

from pyctr import events
from pyctr.commands.events import line_printer, parse_filters, time_bounds
from pyctr.errors import PyctrError
from pyctr.output.govalues import TemplateError

NS = 10**9


def event(kind="container", action="start", actor="c" * 64, at=5 * NS, **attributes):
    attributes = {"name": "web", "image": "busybox", "tier": "front", **attributes}
    return events.Event(kind, action, actor, attributes, at)


# ------------------------------------------------------------------------------------------ encoding


def test_a_line_round_trips_and_starts_with_the_marker_the_reader_recovers_from():
    original = event(exitCode="3", name='we"ird\nname')
    line = events.encode(original)
    assert line.startswith(events.EVENT_START) and line.endswith(b"\n") and line.count(b"\n") == 1
    assert events.decode(line[:-1]) == original


def test_a_torn_line_is_skipped_and_the_event_appended_after_it_recovered():
    good = events.encode(event(action="die"))
    torn = events.encode(event(action="start"))[:37]  # a writer killed mid-line: no newline
    decoded, rest = events.decode_lines(torn + good + torn)
    assert [e.action for e in decoded] == ["die"]
    assert rest == torn  # kept until its newline comes (or forever: never an event)
    assert events.decode(b"garbage") is None and events.decode(b'{"Type":"container"') is None


def test_an_oversized_event_keeps_only_its_own_attributes():
    labels = {f"label{i}": "x" * 1000 for i in range(40)}
    line = events.encode(events.Event("container", "create", "c1", {**labels, "name": "web", "image": "b"}, 1))
    assert len(line) <= events.MAX_EVENT_BYTES
    assert events.decode(line[:-1]).attributes == {"name": "web", "image": "b"}


# ------------------------------------------------------------------------------------------ the file


def test_record_then_replay_then_follow(tmp_path):
    events.record(tmp_path, "container", "create", "c1", {"name": "a"})
    with events.Subscription(tmp_path, since_ns=0) as sub:
        stream = sub.events(interval=0.01)
        assert next(stream).action == "create"
        events.record(tmp_path, "container", "start", "c1", {"name": "a"})
        assert next(stream).action == "start"
    assert oct(os.stat(events.journal_path(tmp_path)).st_mode & 0o777) == "0o600"


def test_without_since_only_new_events_and_with_a_past_until_only_old_ones(tmp_path):
    events.record(tmp_path, "container", "create", "old")
    live = events.Subscription(tmp_path)
    events.record(tmp_path, "container", "create", "new")
    assert next(live.events(interval=0.01)).actor_id == "new"
    live.close()
    until = time.time_ns()
    events.record(tmp_path, "container", "create", "later")
    with events.Subscription(tmp_path, until_ns=until) as past:
        assert [e.actor_id for e in past.events()] == ["old", "new"]  # ends: until is past


def test_since_and_until_are_inclusive(tmp_path):
    path = events.journal_path(tmp_path)
    with open(path, "wb") as f:
        for at in (1, 2, 3, 4):
            f.write(events.encode(event(actor=str(at), at=at * NS)))
    with events.Subscription(tmp_path, since_ns=2 * NS, until_ns=3 * NS) as sub:
        assert [e.actor_id for e in sub.events()] == ["2", "3"]


def test_rotation_bounds_the_files_and_a_follower_crosses_it(tmp_path):
    limit = 4096
    follower = events.Subscription(tmp_path)
    stream = follower.events(interval=0.001)
    seen = []
    for batch in range(20):  # the follower reads after each batch (~3.5 KB): up to one rotation behind
        for i in range(batch * 25, batch * 25 + 25):
            events.record(tmp_path, "container", "start", f"c{i}", {"name": f"n{i}"}, max_bytes=limit)
        seen += [next(stream).actor_id for _ in range(25)]
    follower.close()
    assert seen == [f"c{i}" for i in range(500)]  # in order, none lost, none twice, across many rotations
    path = events.journal_path(tmp_path)
    assert os.path.getsize(path) <= limit + 200 and os.path.getsize(path + ".1") <= limit + 200
    assert sorted(os.listdir(tmp_path)) == ["events.log", "events.log.1"]
    with events.Subscription(tmp_path, since_ns=0) as replay:  # history: the rotated file, then the current
        kept = [e.actor_id for e in replay.events(stop=lambda: True)]
    assert 25 < len(kept) < 100 and kept == [f"c{i}" for i in range(500 - len(kept), 500)]


def _writer(root: str, worker: int, count: int, limit: int) -> None:
    for i in range(count):
        events.record(root, "container", "exec_start: " + "x" * (i % 700), f"w{worker}-{i}", {"name": "n" * 50},
                      max_bytes=limit)


@pytest.mark.parametrize("limit", [events.MAX_BYTES, 64 * 1024])
def test_concurrent_writers_never_interleave_and_lose_nothing(tmp_path, limit):
    workers, count = 6, 300
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, count, limit)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    data = b""
    for name in ("events.log.1", "events.log"):
        if (tmp_path / name).exists():
            data += (tmp_path / name).read_bytes()
    lines = data.split(b"\n")[:-1]
    for line in lines:
        json.loads(line)  # every line whole: no two writes mixed
    ids = [json.loads(line)["Actor"]["ID"] for line in lines]
    assert len(ids) == len(set(ids))
    if limit == events.MAX_BYTES:
        assert len(ids) == workers * count
    for w in range(workers):  # each writer's own events in its order
        mine = [int(i.split("-")[1]) for i in ids if i.startswith(f"w{w}-")]
        assert mine == sorted(mine)


def test_recording_never_raises(tmp_path):
    events.record(tmp_path / "missing" / "root", "container", "start", "c1")  # no directory: the event is lost


# ------------------------------------------------------------------------------------------ Docker's shapes


def test_message_has_dockers_fields_and_order():
    doc = events.message(event(action="die", exitCode="0"))
    assert list(doc) == ["status", "id", "from", "Type", "Action", "Actor", "scope", "time", "timeNano"]
    assert doc["from"] == "busybox" and doc["time"] == 5 and doc["timeNano"] == 5 * NS
    assert list(doc["Actor"]["Attributes"]) == sorted(doc["Actor"]["Attributes"])
    image = events.message(events.Event("image", "tag", "sha256:a", {"name": "x:1"}, 1))
    assert "from" not in image and image["status"] == "tag"
    network = events.message(events.Event("network", "connect", "n1", {"name": "net"}, 1))
    assert list(network)[:2] == ["Type", "Action"]


def test_default_line_as_docker_cli_prints_it():
    e = event(at=1_796_310_000 * NS + 12)
    assert events.default_line(e, utc_offset=0) == \
        f"2026-12-03T15:00:00.000000012Z container start {'c' * 64} (image=busybox, name=web, tier=front)"
    assert events.default_line(e, utc_offset=3600).startswith("2026-12-03T16:00:00.000000012+01:00 ")
    assert events.default_line(events.Event("daemon", "reload", "d", {}, 0), 0).endswith("daemon reload d")


def test_filters_as_moby_reads_them():
    e = event()
    yes = [{}, {"type": ["container"]}, {"event": ["start", "die"]}, {"container": ["web"]},
           {"container": ["ccc"]}, {"image": ["busybox"]}, {"label": ["tier"]},
           {"label": ["tier=front"]}, {"type": ["image", "container"], "event": ["start"]}, {"scope": ["local"]}]
    no = [{"type": ["image"]}, {"event": ["stop"]}, {"image": ["busybox:latest"]},  # moby compares as given
          {"container": ["other"]}, {"image": ["alpine"]},
          {"label": ["tier=back"]}, {"label": ["tier", "missing"]}, {"network": ["x"]}, {"volume": ["v"]}]
    assert all(events.matches(e, f) for f in yes), [f for f in yes if not events.matches(e, f)]
    assert not any(events.matches(e, f) for f in no), [f for f in no if events.matches(e, f)]
    health = event(action="health_status: healthy")
    assert events.matches(health, {"event": ["health_status"]})  # moby's fuzzy exceptions
    assert not events.matches(event(action="stop"), {"event": ["sto"]})
    tag = events.Event("image", "tag", "sha256:abc", {"name": "mine:1"}, 1)
    assert events.matches(tag, {"image": ["mine"]}) and events.matches(tag, {"image": ["sha256:abc"]})
    connect = events.Event("network", "connect", "n" * 64, {"name": "appnet", "container": "c1"}, 1)
    assert events.matches(connect, {"network": ["appnet"]}) and events.matches(connect, {"network": ["nnn"]})
    assert not events.matches(connect, {"container": ["c1"]})  # moby: container= looks at the actor only


def test_container_attributes_labels_then_image_and_name():
    class Record:
        id = "c1"
        name = "web"
        config = {"Config": {"Image": "busybox", "Labels": {"name": "label-loses", "tier": "front"}}}

    assert events.container_attributes(Record(), {"exitCode": 0}) == \
        {"name": "web", "tier": "front", "image": "busybox", "exitCode": "0"}


# ------------------------------------------------------------------------------------------ the command


def test_filter_flag_parsing():
    assert parse_filters((" Type =container", "event=start", "event=die", "")) == \
        {"type": ["container"], "event": ["start", "die"]}
    with pytest.raises(PyctrError, match="bad format of filter"):
        parse_filters(("container",))


def test_time_bounds_reuse_the_logs_parser():
    now = 1_800_000_000.5
    assert time_bounds("10m", None, now) == ((1_800_000_000 - 600) * NS, None)
    assert time_bounds("1700000000.5", "2023-11-14T22:13:21Z", now) == (1_700_000_000 * NS + NS // 2,
                                                                         1_700_000_001 * NS)
    with pytest.raises(PyctrError, match="cannot be after"):
        time_bounds("1700000100", "1700000000", now)
    with pytest.raises(PyctrError) as bad:
        time_bounds("yesterday", None, now)
    assert bad.value.exit_code == 1


def test_format_templates():
    e = event(action="die", exitCode="7")
    assert line_printer("{{.Action}} {{.Actor.Attributes.exitCode}} {{.Status}} {{.From}}")(e) == "die 7 die busybox"
    as_json = json.loads(line_printer("{{json .}}")(e))
    assert as_json == json.loads(json.dumps(events.message(e)))
    assert list(as_json)[:3] == ["status", "id", "from"]
    network = json.loads(line_printer("json")(events.Event("network", "create", "n1", {"name": "x"}, 2 * NS)))
    assert "status" not in network and network["timeNano"] == 2 * NS
    with pytest.raises(TemplateError, match="can't evaluate field Bogus"):
        line_printer("{{.Bogus}}")  # refused before any event, as docker-cli's makeTemplate
    assert line_printer(None) is events.default_line


def test_a_bad_format_is_docker_clis_status_error_64():
    """docker-cli 20.10's runEvents: `Error parsing format: ` + Go's own error, exit 64, for a template that
    does not parse and for one that fails on the empty *events.Message makeTemplate executes."""
    with pytest.raises(TemplateError) as unparsed:
        line_printer("{{.Bogus")
    assert unparsed.value.exit_code == 64
    assert unparsed.value.message == "Error parsing format: template: :1: unclosed action"
    with pytest.raises(TemplateError) as unknown:
        line_printer("{{.Bogus}}")
    assert unknown.value.exit_code == 64
    assert unknown.value.message == ('Error parsing format: template: :1:2: executing "" at <.Bogus>: '
                                     "can't evaluate field Bogus in type *events.Message")


def test_network_actors_of_a_running_container():
    from pyctr.config import Config
    from pyctr.runtime.lifecycle.teardown import network_actors
    from pyctr.runtime.network.usernet import predefined_id

    config = Config(root="/r")
    assert network_actors(config, "none", {}) == [(predefined_id("none", "/r"), "none", "null")]
    user = {"Networks": {"appnet": {"NetworkID": "n1"}, "other": {"NetworkID": "n2"}}}
    assert network_actors(config, "appnet", user) == [("n1", "appnet", "bridge"), ("n2", "other", "bridge")]
    connected_while_stopped = {"IPAddress": "10.0.0.2", "Networks": {"late": {"NetworkID": "n3"}}}
    assert network_actors(config, "bridge", connected_while_stopped) == [
        (predefined_id("bridge", "/r"), "bridge", "bridge"), ("n3", "late", "bridge")]
