"""`logs --since/--until` as docker-cli v20.10 reads them (api/types/time GetTimestamp, then ParseTimestamps).

Recorded from its source: a Go duration counts back from now and is cut to whole seconds; RFC 3339 dates with or
without a time, a fraction (any length, cut to nanoseconds) and a zone (without one: the client's local zone); a
date alone is midnight; `2023-11-14T22` and `2023-11-14T22:13` are layouts of their own; then Unix times, with a
fraction scaled to nanoseconds. A value with a `-` that is no date is Go's parse error; anything else:
`failed to parse value as time or duration: "bogus"`, wrapped by the client as `invalid value for "since": ...`.
"""

from __future__ import annotations

import pytest

from pyctr.errors import UsageError
from pyctr.runtime.logs import LogEntry, get_timestamp, parse_go_duration, time_bound_ns, within

NOW = 1700000600.7  # 2023-11-14T22:23:20.7Z
T0 = 1700000000  # 2023-11-14T22:13:20Z


@pytest.mark.parametrize(("value", "offset", "expected"), [
    ("1700000000", 0, (T0, 0)),
    ("1700000000.123", 0, (T0, 123_000_000)),
    ("1700000000.000000001", 0, (T0, 1)),
    ("0", 0, (0, 0)),
    ("10m", 0, (T0, 0)),
    ("1h30m", 0, (int(NOW) - 5400, 0)),
    ("1.5h", 0, (int(NOW) - 5400, 0)),
    ("300ms", 0, (int(NOW - 0.3), 0)),
    ("-10m", 0, (int(NOW) + 600, 0)),
    ("2023-11-14T22:13:20Z", 0, (T0, 0)),
    ("2023-11-14T22:13:20.5Z", 0, (T0, 500_000_000)),
    ("2023-11-14T22:13:20.123456789123Z", 0, (T0, 123_456_789)),
    ("2023-11-14T22:13:20+01:00", 0, (T0 - 3600, 0)),
    ("2023-11-14T22:13:20-02:30", 0, (T0 + 9000, 0)),
    ("2023-11-14T22:13:20", 3600, (T0 - 3600, 0)),  # no zone: the client's local zone
    ("2023-11-14T22:13:20.25", 0, (T0, 250_000_000)),
    ("2023-11-14T22:13", 0, (T0 - 20, 0)),
    ("2023-11-14T22", 0, (T0 - 800, 0)),
    ("2023-11-14T22:13Z", 0, (T0 - 20, 0)),
    ("2023-11-14", 0, (T0 - 80000, 0)),
    ("2023-11-14", -3600, (T0 - 80000 + 3600, 0)),
    ("2023-11-14Z", 7200, (T0 - 80000, 0)),
])
def test_docker_timestamps(value, offset, expected):
    assert get_timestamp(value, NOW, offset) == expected


@pytest.mark.parametrize(("value", "says"), [
    ("bogus", 'failed to parse value as time or duration: "bogus"'),
    ("2023-13-01", 'parsing time "2023-13-01"'),
    ("2023-11-14t22:13:20z", 'parsing time "2023-11-14t22:13:20z"'),  # Go's layouts: upper-case T and Z only
    ("10 m", 'failed to parse value as time or duration: "10 m"'),
])
def test_refused_as_docker_refuses(value, says):
    with pytest.raises(UsageError) as caught:
        get_timestamp(value, NOW, 0)
    assert says in caught.value.message


def test_10_is_a_unix_time_not_a_duration():
    assert parse_go_duration("10") is None
    assert get_timestamp("10", NOW, 0) == (10, 0)


def test_the_option_names_itself_in_the_error():
    with pytest.raises(UsageError, match='^invalid value for "until": failed to parse value as time or duration'):
        time_bound_ns("until", "soon", NOW)


def entry(seconds: int) -> LogEntry:
    from datetime import UTC, datetime

    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + ".000000001Z"
    return LogEntry("stdout", f"{seconds}\n", stamp)


def test_since_and_until_bound_the_entries_inclusively():
    entries = [entry(T0 + i) for i in range(5)]
    assert [e.text for e in within(entries, (T0 + 1) * 10**9 + 1, (T0 + 3) * 10**9 + 1)] == \
        [f"{T0 + i}\n" for i in (1, 2, 3)]
    assert within(entries, None, None) == entries
    assert within(entries, None, 0) == []  # Docker's `--until 0` is the epoch: nothing is that old
