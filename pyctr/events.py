"""The events journal: Docker's events (`docker events`, the API's `/events`), kept in one file under the root.

dockerd holds its events in memory because every change goes through it; pyctr has no daemon (the CLI, the
monitor's cleanup, the health checker and the API daemon all change the state themselves), so whoever makes a
change appends its event here, and every reader (the `events` command, `/events`) replays and follows the file.

Why this shape:
- One `os.write` of one complete line per event on an O_APPEND descriptor: the kernel appends it whole (the
  inode's lock is held for the write), so concurrent writers never interleave inside a line.
- Bounded: past MAX_BYTES the file is renamed to `events.log.1` (the previous one dropped), so at most two
  files of history. Writers hold a shared flock on the file they write and check it is still the current one;
  the rotator holds it exclusively while renaming, so once a reader sees a new file the old one is complete.
- Crash-safe: a torn last line (a writer killed mid-write, a full disk) never ends in a newline; the next event
  is appended after it, and the reader recovers that event from the merged line (each event starts with
  `{"Type":`, which cannot appear unescaped inside one) and skips the torn bytes.
- Cheap: about 10 system calls per event, no parsing on the writer's side beyond one json.dumps; recording
  never fails the verb that records (a journal that cannot be written loses the event, not the container).

The pure part (encoding, Docker's filters, the message shape, the default line) is unit-tested; readers are
`Subscription` (replay within since/until, then follow; `JournalReader` underneath, across rotations).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

MAX_BYTES = 2 * 1024 * 1024  # per file; two files of history (~ 12000 events of ~300 bytes)
MAX_EVENT_BYTES = 16 * 1024  # a larger event (huge labels) keeps only its own attributes
EVENT_START = b'{"Type":'
TYPES = ("container", "image", "network", "volume", "daemon", "plugin", "service", "node", "secret", "config")
_OWN_ATTRIBUTES = ("name", "image", "exitCode", "signal", "container", "type", "driver", "execID", "oldName",
                   "destination", "read/write", "propagation")


@dataclass(frozen=True)
class Event:
    """One event as Docker's events.Message holds it (the deprecated status/id/from are derived)."""

    type: str
    action: str
    actor_id: str
    attributes: dict[str, str] = field(default_factory=dict)
    time_nano: int = 0
    scope: str = "local"

    @property
    def time(self) -> int:
        return self.time_nano // 10**9


# ------------------------------------------------------------------------------------------ encoding (pure)


def encode(event: Event) -> bytes:
    """The journal's line for an event: Docker's message without the deprecated fields, one line, newline."""
    attributes = {str(k): str(v) for k, v in event.attributes.items()}
    line = _line(event, attributes)
    if len(line) > MAX_EVENT_BYTES:  # labels too large for one append: keep what identifies the actor
        line = _line(event, {k: v[:1024] for k, v in attributes.items() if k in _OWN_ATTRIBUTES})
    return line


def _line(event: Event, attributes: dict[str, str]) -> bytes:
    document = {"Type": event.type, "Action": event.action, "Actor": {"ID": event.actor_id, "Attributes":
                attributes}, "scope": event.scope, "time": event.time, "timeNano": event.time_nano}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def decode(line: bytes) -> Event | None:
    """An event from one journal line (without its newline); a torn line before it is skipped; None if none."""
    start = line.rfind(EVENT_START)
    if start < 0:
        return None
    try:
        document = json.loads(line[start:])
        actor = document["Actor"]
        attributes = actor.get("Attributes") or {}
        return Event(str(document["Type"]), str(document["Action"]), str(actor["ID"]),
                     {str(k): str(v) for k, v in attributes.items()}, int(document["timeNano"]),
                     str(document.get("scope") or "local"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def decode_lines(data: bytes) -> tuple[list[Event], bytes]:
    """(events of the complete lines in `data`, the incomplete rest to keep for the next read)."""
    *lines, rest = data.split(b"\n")
    return [event for event in map(decode, lines) if event is not None], rest


def message(event: Event) -> dict[str, Any]:
    """Docker's events.Message as JSON (the API's body, `--format '{{json .}}'`): Go's field order, the
    deprecated status/id/from filled for containers and images as dockerd's events.Log does, maps sorted."""
    document: dict[str, Any] = {}
    if event.type in ("container", "image"):
        document.update(status=event.action, id=event.actor_id)
        if event.type == "container" and event.attributes.get("image"):
            document["from"] = event.attributes["image"]
    document.update(Type=event.type, Action=event.action,
                    Actor={"ID": event.actor_id, "Attributes": dict(sorted(event.attributes.items()))},
                    scope=event.scope, time=event.time, timeNano=event.time_nano)
    return document


def default_line(event: Event, utc_offset: int | None = None) -> str:
    """docker-cli's prettyPrintEvent: RFC 3339 with fixed nanoseconds in local time, type, action, actor id,
    then the attributes sorted by key in parentheses."""
    offset = time.localtime(event.time).tm_gmtoff if utc_offset is None else utc_offset
    seconds, nanos = divmod(event.time_nano, 10**9)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds + offset)) + f".{nanos:09d}"
    hours, minutes = divmod(abs(offset) // 60, 60)
    zone = "Z" if offset == 0 else f"{'+' if offset > 0 else '-'}{hours:02d}:{minutes:02d}"
    text = f"{stamp}{zone} {event.type} {event.action} {event.actor_id}"
    if event.attributes:
        text += " (" + ", ".join(f"{k}={v}" for k, v in sorted(event.attributes.items())) + ")"
    return text


# ------------------------------------------------------------------------------------------ filters (pure)


def _exact(values: list[str] | None, source: str) -> bool:
    return values is None or source in values


def _fuzzy(values: list[str] | None, source: str) -> bool:
    return values is None or any(source.startswith(value) for value in values)


def _familiar_name(image: str) -> str:
    """moby's stripTag: the repository without tag or digest, in Docker's short form."""
    name = image.split("@", 1)[0]
    if name.rfind(":") > name.rfind("/"):
        name = name[:name.rfind(":")]
    for prefix in ("docker.io/library/", "docker.io/"):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def matches(event: Event, filters: dict[str, list[str]]) -> bool:
    """moby's daemon/events Filter.Include (20.10): `event` exact (prefix for health_status/exec_*), `type`,
    `scope`, `container`/`network`/`volume`/`daemon` by id or name prefix whatever the event's type, `image` by
    id or name with or without tag, `label` key or key=value (all of them)."""
    attrs = event.attributes
    wanted = {key: values for key, values in filters.items() if values}
    actions = wanted.get("event")
    fuzzy_actions = actions is not None and any(a in ("health_status", "exec_create", "exec_start") for a in actions)
    if not (_fuzzy if fuzzy_actions else _exact)(actions, event.action):
        return False
    if not _exact(wanted.get("type"), event.type) or not _exact(wanted.get("scope"), event.scope):
        return False
    for kind in ("daemon", "container", "plugin", "volume", "network"):
        values = wanted.get(kind)
        if not (_fuzzy(values, event.actor_id) or _fuzzy(values, attrs.get("name", ""))):
            return False
    return _image_matches(event, wanted.get("image")) and _labels_match(attrs, wanted.get("label"))


def _image_matches(event: Event, values: list[str] | None) -> bool:
    if values is None:
        return True
    name = event.attributes.get("name" if event.type == "image" else "image", "")
    candidates = {event.actor_id, name, _familiar_name(event.actor_id), _familiar_name(name)}
    return any(value in candidates for value in values)


def _labels_match(attrs: dict[str, str], values: list[str] | None) -> bool:
    if values is None:
        return True
    for value in values:
        key, sep, expected = value.partition("=")
        if key not in attrs or (sep and attrs[key] != expected):
            return False
    return True


def within(event: Event, since_ns: int | None, until_ns: int | None) -> bool:
    """dockerd's loadBufferedEvents: since and until both inclusive."""
    return (since_ns is None or event.time_nano >= since_ns) and (until_ns is None or event.time_nano <= until_ns)


def container_attributes(record: Any, extra: dict[str, Any] | None = None) -> dict[str, str]:
    """dockerd's LogContainerEventWithAttributes: the container's labels, then its image and name, then the
    event's own attributes (record: anything with `.name` and a Docker-shaped `.config`)."""
    section = (getattr(record, "config", None) or {}).get("Config") or {}
    attributes = {str(k): str(v) for k, v in (section.get("Labels") or {}).items()}
    attributes["image"] = str(section.get("Image") or "")
    attributes["name"] = str(getattr(record, "name", "") or "").lstrip("/")
    attributes.update({k: str(v) for k, v in (extra or {}).items()})
    return attributes


# ------------------------------------------------------------------------------------------ writing


def journal_path(root: os.PathLike | str) -> str:
    return os.path.join(os.fspath(root), "events.log")


def record(root: os.PathLike | str, kind: str, action: str, actor_id: str, attributes: dict[str, Any] | None = None,
           *, max_bytes: int = MAX_BYTES) -> None:
    """Append one event to the root's journal. Never raises: the verb that happened stays done.

    `root` is the installation's root (Config.root / Paths.root)."""
    event = Event(kind, action, actor_id, {str(k): str(v) for k, v in (attributes or {}).items()}, time.time_ns())
    with contextlib.suppress(OSError):
        append(journal_path(root), encode(event), max_bytes)


def record_container(root: os.PathLike | str, container: Any, action: str, **extra: Any) -> None:
    """A container's event with Docker's attributes (labels, image, name, then `extra`: exitCode, signal...)."""
    record(root, "container", action, container.id, container_attributes(container, extra))


def append(path: str, line: bytes, max_bytes: int = MAX_BYTES) -> None:
    """One write of one line to the current journal file; rotate it once it is past `max_bytes`."""
    for _ in range(8):  # a rotation between open and lock: open the new file
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            if not _is_current(fd, path):
                continue
            os.write(fd, line)
            if os.fstat(fd).st_size > max_bytes:
                _rotate(fd, path, max_bytes)
            return
        finally:
            os.close(fd)


def _is_current(fd: int, path: str) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _rotate(fd: int, path: str, max_bytes: int) -> None:
    """Rename the full file to `.1` while no writer is in it (exclusive lock); another writer may have won."""
    fcntl.flock(fd, fcntl.LOCK_EX)
    if _is_current(fd, path) and os.fstat(fd).st_size > max_bytes:
        os.rename(path, path + ".1")


# ------------------------------------------------------------------------------------------ reading


class JournalReader:
    """Reads the journal from its oldest kept event, then whatever is appended (`poll`), across rotations.

    It keeps the current file open and its own offset: following costs one fstat and one stat per poll while
    nothing happens, and only the new bytes are read."""

    def __init__(self, root: os.PathLike | str) -> None:
        self.path = journal_path(root)
        self._fd = -1
        self._offset = 0
        self._partial = b""

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> JournalReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def history(self) -> list[Event]:
        """Every kept event, oldest first (the rotated file, then the current one); follows on from there."""
        self._open_current()  # first: a rotation from now on leaves its file at `.1`, read once below
        current = os.fstat(self._fd).st_ino if self._fd >= 0 else None
        events = self._read_whole(self.path + ".1", unless_inode=(current,))
        return events + self.poll()

    def skip_history(self) -> None:
        """Start following from the current end (no replay)."""
        self._open_current()
        if self._fd >= 0:
            self._offset = os.fstat(self._fd).st_size

    def poll(self) -> list[Event]:
        """Events appended since the last call (complete lines only)."""
        events = self._read_new()
        if not self._rotated():
            return events
        # The old file is complete (its writers checked it was current under the lock). If it is no longer
        # `.1`, the file after it is: read that whole too (a reader behind by more than one file loses one).
        old_inode = os.fstat(self._fd).st_ino if self._fd >= 0 else None
        self._open_current()
        current = os.fstat(self._fd).st_ino if self._fd >= 0 else None
        if old_inode is not None:
            events += self._read_whole(self.path + ".1", unless_inode=(old_inode, current))
        return events + self._read_new()

    def size_changed(self) -> bool:
        """Whether there may be something new (cheap: one fstat, one stat)."""
        if self._fd < 0:
            return os.path.exists(self.path)
        return os.fstat(self._fd).st_size > self._offset or self._rotated()

    def _open_current(self) -> None:
        self.close()
        self._offset = 0
        self._partial = b""
        with contextlib.suppress(FileNotFoundError):
            self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)

    def _rotated(self) -> bool:
        try:
            current = os.stat(self.path).st_ino
        except FileNotFoundError:
            return False
        return self._fd < 0 or current != os.fstat(self._fd).st_ino

    def _read_new(self) -> list[Event]:
        if self._fd < 0:
            return []
        chunks = []
        while True:
            data = os.pread(self._fd, 1 << 20, self._offset)
            if not data:
                break
            chunks.append(data)
            self._offset += len(data)
        if not chunks:
            return []
        events, self._partial = decode_lines(self._partial + b"".join(chunks))
        return events

    @staticmethod
    def _read_whole(path: str, unless_inode: tuple[int | None, ...]) -> list[Event]:
        try:
            with open(path, "rb") as f:
                if os.fstat(f.fileno()).st_ino in unless_inode:
                    return []  # a file an open descriptor of ours reads (or read)
                data = f.read()
        except FileNotFoundError:
            return []
        return decode_lines(data)[0]


class Subscription:
    """dockerd's SubscribeTopic: the kept events within [since, until] (only with either given), then, unless
    `until` is already past, the new ones as they are appended until `until` (or forever).

    The journal is opened (and its end noted) when the subscription is made, so an event recorded right after
    (say, once the API's client has its response headers) is never missed."""

    def __init__(self, root: os.PathLike | str, since_ns: int | None = None, until_ns: int | None = None) -> None:
        self.until_ns = until_ns
        self._reader = JournalReader(root)
        if since_ns is not None or until_ns is not None:
            self._backlog = [e for e in self._reader.history() if within(e, since_ns, until_ns)]
        else:
            self._reader.skip_history()
            self._backlog = []

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def events(self, stop: Any = None, interval: float = 0.05) -> Iterator[Event]:
        """The replay, then the live events; `stop()` true (checked between polls) ends it."""
        yield from self._backlog
        until_ns = self.until_ns
        if until_ns is not None and until_ns < time.time_ns():
            return
        while until_ns is None or time.time_ns() <= until_ns:
            if stop is not None and stop():
                return
            if self._reader.size_changed():
                for event in self._reader.poll():
                    if until_ns is not None and event.time_nano > until_ns:
                        return
                    yield event
                continue
            left = interval if until_ns is None else (until_ns - time.time_ns()) / 1e9
            time.sleep(max(0.0, min(interval, left)))
