"""Times as Docker prints and stores them: RFC 3339 with nanoseconds, "2 minutes ago", Go's time.Time text.

One home so `ps`, `images`, `history` and the state files agree on what a timestamp means (an image's
"2024-01-01T01:00:00+01:00" and a container's "...T10:00:00.123456789Z" alike).
"""

from __future__ import annotations

import calendar
import time

from pyctr.units import human_duration

ZERO_TIME = "0001-01-01T00:00:00Z"


def format_rfc3339_ns(ns: int) -> str:
    """Epoch nanoseconds in Docker's UTC RFC 3339 with nanoseconds ("2024-05-01T10:00:00.123456789Z")."""
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch of an RFC 3339 time (UTC "Z" or an offset); 0.0 for the zero time or garbage.

    Hand-parsed: `ps` converts three per container and strptime is ~50 us each.
    """
    if not text or text.startswith("0001-") or len(text) < 20 or text[4] != "-" or text[10] not in "Tt ":
        return 0.0
    try:
        fields = (int(text[0:4]), int(text[5:7]), int(text[8:10]), int(text[11:13]), int(text[14:16]),
                  int(text[17:19]))
        rest = text[19:]
        zone_at = max(rest.find("Z"), rest.find("z"), rest.find("+"), rest.rfind("-"))
        if zone_at < 0:
            return 0.0
        frac, zone = rest[:zone_at], rest[zone_at:]
        offset = 0
        if zone not in ("Z", "z"):
            if len(zone) != 6 or zone[3] != ":":
                return 0.0
            offset = (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60) * (1 if zone[0] == "+" else -1)
        seconds = calendar.timegm(fields) - offset
        if frac:
            if not frac.startswith(".") or len(frac) < 2 or not frac[1:].isdigit():
                return 0.0
            return seconds + float(frac)
        return float(seconds)
    except ValueError:
        return 0.0


def since(created: str, now: float | None = None) -> str:
    """Docker's CREATED column ("2 hours ago"); "N/A" when the time is unknown."""
    seconds = parse_rfc3339(created)
    if not seconds:
        return "N/A"
    return human_duration((time.time() if now is None else now) - seconds) + " ago"


def go_time_text(epoch: float) -> str:
    """Go's time.Time String() in UTC, as docker-cli prints CreatedAt: "2024-05-01 10:00:00 +0000 UTC"."""
    return time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(epoch))
