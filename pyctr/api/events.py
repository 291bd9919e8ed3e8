"""GET /events: Docker's events from the events journal (pyctr/events.py), whoever made the change.

Every verb (the API's, the CLI's, a container's monitor) appends its events to the journal, so the daemon
only reads it: the kept events within `since`/`until` first (dockerd's buffered replay), then the new ones as
they are appended, until `until` or the client leaves. A container created, run and removed between two
reads shows all its events, in order.
"""

from __future__ import annotations

from pyctr import events as journal
from pyctr.api import documents
from pyctr.api.http import Request
from pyctr.api.routes import route
from pyctr.api.service import config
from pyctr.api.streams import peer_gone
from pyctr.errors import UsageError


def time_bounds(since: str | None, until: str | None) -> tuple[int | None, int | None]:
    """The `since`/`until` parameters (docker-cli sends Unix times; dates and durations work too), in ns;
    dockerd's 400 when until comes before since."""
    from pyctr.runtime import logs as logfile

    since_ns = logfile.time_bound_ns("since", since)
    until_ns = logfile.time_bound_ns("until", until)
    if since_ns is not None and until_ns is not None and until_ns < since_ns:
        raise UsageError(f"`since` time ({since}) cannot be after `until` time ({until})")
    return since_ns, until_ns


@route("GET", "/events")
def events(request: Request) -> None:
    filters = documents.parse_filters(request.arg("filters"))
    since_ns, until_ns = time_bounds(request.arg("since"), request.arg("until"))
    connection = request.handler.connection
    with journal.Subscription(config().root, since_ns, until_ns) as subscription:  # before the headers go
        stream = request.stream()
        for event in subscription.events(stop=lambda: peer_gone(connection)):
            if journal.matches(event, filters):
                stream.write_json(journal.message(event))
        stream.close()
