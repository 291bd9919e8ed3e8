"""GET /events: container and image events as they happen.

pyctr keeps no event log (the CLI and the daemon change the same state directly), so the daemon watches the
state: a snapshot of containers (status, start time, exit code) and image tags every WATCH_INTERVAL, and
the pure `diff_events` turns two snapshots into Docker's events (create, start, die, destroy; tag, untag,
delete), whoever made the change — the API or the CLI. Past events (`since` before now) are not kept.
"""

from __future__ import annotations

import time
from typing import Any

from pyctr.api import documents
from pyctr.api.http import Request
from pyctr.api.routes import route
from pyctr.api.service import config
from pyctr.api.streams import peer_gone

WATCH_INTERVAL = 0.25
ZERO_TIME = "0001-01-01T00:00:00Z"  # a never-started container's StartedAt


def container_snapshot(records) -> dict[str, dict[str, Any]]:
    return {r.id: {"status": r.state.status, "started": r.state.started_at, "exit": r.state.exit_code,
                   "name": r.name, "image": (r.config.get("Config") or {}).get("Image", ""),
                   "labels": (r.config.get("Config") or {}).get("Labels") or {}} for r in records}


def image_snapshot(images) -> dict[str, list[str]]:
    return {image.id: list(image.repo_tags) for image in images}


def _event(kind: str, action: str, actor_id: str, attributes: dict[str, str], now_ns: int) -> dict[str, Any]:
    event = {"Type": kind, "Action": action, "Actor": {"ID": actor_id, "Attributes": attributes},
             "scope": "local", "time": now_ns // 10**9, "timeNano": now_ns}
    if kind == "container":  # the pre-1.22 fields docker-cli still reads
        event.update(status=action, id=actor_id, **{"from": attributes.get("image", "")})
    return event


def diff_events(before: dict, after: dict, now_ns: int) -> list[dict[str, Any]]:
    """Docker's events for what changed between two snapshots ({"containers": ..., "images": ...})."""
    events = []
    old, new = before["containers"], after["containers"]
    for cid, c in new.items():
        attrs = {"image": c["image"], "name": c["name"], **{k: str(v) for k, v in c["labels"].items()}}
        previous = old.get(cid)
        if previous is None:
            events.append(_event("container", "create", cid, attrs, now_ns))
        # started (again) since the last look, even if it already ended: a start time it did not have
        started = c["started"] != (previous["started"] if previous is not None else ZERO_TIME)
        newly_running = c["status"] == "running" and (previous is None or previous["status"] != "running")
        if newly_running or (started and c["status"] in ("running", "exited")):
            events.append(_event("container", "start", cid, attrs, now_ns))
        was_running = previous is not None and previous["status"] == "running"
        if c["status"] == "exited" and (was_running or started):
            events.append(_event("container", "die", cid, {**attrs, "exitCode": str(c["exit"])}, now_ns))
    for cid, c in old.items():
        if cid not in new:
            attrs = {"image": c["image"], "name": c["name"]}
            if c["status"] == "running":
                events.append(_event("container", "die", cid, {**attrs, "exitCode": str(c["exit"])}, now_ns))
            events.append(_event("container", "destroy", cid, attrs, now_ns))
    old_images, new_images = before["images"], after["images"]
    for image_id, tags in new_images.items():
        for tag in sorted(set(tags) - set(old_images.get(image_id, []))):
            events.append(_event("image", "tag", image_id, {"name": tag}, now_ns))
    for image_id, tags in old_images.items():
        for tag in sorted(set(tags) - set(new_images.get(image_id, []))):
            events.append(_event("image", "untag", image_id, {"name": tag}, now_ns))
        if image_id not in new_images:
            events.append(_event("image", "delete", image_id, {"name": image_id}, now_ns))
    return events


def matches(event: dict[str, Any], filters: dict[str, list[str]]) -> bool:
    """Docker's event filters: type, event (action), container / image (id or name), label."""
    attrs = event["Actor"]["Attributes"]
    checks = {
        "type": lambda v: event["Type"] == v,
        "event": lambda v: event["Action"] == v,
        "container": lambda v: event["Type"] == "container" and (event["Actor"]["ID"].startswith(v)
                                                                 or attrs.get("name") == v),
        "image": lambda v: attrs.get("image") == v or attrs.get("name") == v or event["Actor"]["ID"] == v,
        "label": lambda v: (lambda k, _, val: k in attrs and (not val or attrs[k] == val))(*v.partition("=")),
    }
    return all(any(checks[key](v) for v in values) for key, values in filters.items() if key in checks)


def _snapshot() -> dict:
    from pyctr.image.store import ImageStore
    from pyctr.runtime.state import ContainerStore

    cfg = config()
    return {"containers": container_snapshot(ContainerStore(cfg.paths).list()),
            "images": image_snapshot(ImageStore(cfg.paths).list_images())}


@route("GET", "/events")
def events(request: Request) -> None:
    from pyctr.runtime import logs as logfile

    filters = documents.parse_filters(request.arg("filters"))
    until_ns = logfile.time_bound_ns("until", request.arg("until"))
    before = _snapshot()  # the baseline exists once the client has the headers
    stream = request.stream()
    connection = request.handler.connection
    while until_ns is None or time.time_ns() < until_ns:
        time.sleep(WATCH_INTERVAL)
        if peer_gone(connection):
            return
        after = _snapshot()
        for event in diff_events(before, after, time.time_ns()):
            if matches(event, filters):
                stream.write_json(event)
        before = after
    stream.close()
