"""GET /events' parameters: the times docker-cli sends, the filters query, dockerd's refusal of until < since;
the events themselves come from the journal (tests/unit/test_events.py)."""

from __future__ import annotations

import pytest

from pyctr import events
from pyctr.api.documents import parse_filters
from pyctr.api.events import time_bounds
from pyctr.errors import UsageError

NS = 10**9


def test_times_as_docker_cli_sends_them():
    assert time_bounds("1700000000.000000000", "1700000005.500000000") == (1_700_000_000 * NS,
                                                                          1_700_000_005 * NS + NS // 2)
    assert time_bounds(None, None) == (None, None)
    assert time_bounds("0", None) == (0, None)  # everything kept
    with pytest.raises(UsageError, match="cannot be after"):
        time_bounds("1700000005", "1700000000")


def test_the_filters_query_reaches_the_journals_matcher():
    die = events.Event("container", "die", "c1", {"name": "web", "image": "busybox", "exitCode": "0"}, 1)
    assert events.matches(die, parse_filters('{"type":["container"],"container":{"web":true}}'))
    assert not events.matches(die, parse_filters('{"event":["start"]}'))
