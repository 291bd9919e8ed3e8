"""Events from two state snapshots: whoever changed the state (API or CLI), Docker's events come out."""

from __future__ import annotations

from pyctr.api.events import diff_events, matches


def snap(containers=None, images=None):
    return {"containers": containers or {}, "images": images or {}}


def box(status, started="t0", exit_code=0):
    return {"status": status, "started": started, "exit": exit_code, "name": "web", "image": "busybox",
            "labels": {"tier": "front"}}


def actions(events):
    return [(e["Type"], e["Action"]) for e in events]


def test_a_container_life_as_events():
    empty = snap()
    created = snap({"c1": box("created", "0001-01-01T00:00:00Z")})
    running = snap({"c1": box("running", "t1")})
    exited = snap({"c1": box("exited", "t1", 3)})
    assert actions(diff_events(empty, created, 1)) == [("container", "create")]
    assert actions(diff_events(created, running, 1)) == [("container", "start")]
    died = diff_events(running, exited, 5 * 10**9)
    assert actions(died) == [("container", "die")]
    assert died[0]["Actor"]["Attributes"]["exitCode"] == "3" and died[0]["time"] == 5
    assert died[0]["status"] == "die" and died[0]["from"] == "busybox"
    assert actions(diff_events(exited, empty, 1)) == [("container", "destroy")]
    assert actions(diff_events(empty, running, 1)) == [("container", "create"), ("container", "start")]
    assert actions(diff_events(running, snap({"c1": box("running", "t2")}), 1)) == [("container", "start")]
    assert actions(diff_events(running, empty, 1)) == [("container", "die"), ("container", "destroy")]
    assert diff_events(running, running, 1) == []
    quick = actions(diff_events(created, exited, 1))  # started and ended between two looks
    assert quick == [("container", "start"), ("container", "die")]
    assert actions(diff_events(empty, exited, 1)) == [("container", "create"), ("container", "start"),
                                                      ("container", "die")]


def test_image_tags_and_deletes():
    before = snap(images={"sha256:a": ["busybox:latest"]})
    after = snap(images={"sha256:a": ["busybox:latest", "mine:1"], "sha256:b": ["new:1"]})
    assert actions(diff_events(before, after, 1)) == [("image", "tag"), ("image", "tag")]
    assert actions(diff_events(after, before, 1)) == [("image", "untag"), ("image", "untag"), ("image", "delete")]


def test_filters():
    event = diff_events(snap(), snap({"c1": box("created", "0001-01-01T00:00:00Z")}), 1)[0]
    assert matches(event, {"type": ["container"], "event": ["create", "start"]})
    assert matches(event, {"container": ["web"]}) and matches(event, {"label": ["tier=front"]})
    assert not matches(event, {"type": ["image"]})
    assert not matches(event, {"label": ["tier=back"]})
