"""`pyctr events` as docker-cli 20.10's: `--since`, `--until`, `--filter`, `--format`, the default line.

Reading only: the journal is pyctr/events.py; the times are docker-cli's GetTimestamp (runtime/logs.py, the
parser `logs --since` uses). Without `--until` it follows the journal until interrupted.
"""

from __future__ import annotations

import sys
import time

import click

from pyctr import events
from pyctr.commands import AppContext, pass_app
from pyctr.errors import PyctrError, UsageError

EXIT_BAD_FORMAT = 64  # docker-cli 20.10 runEvents: cli.StatusError{StatusCode: 64, "Error parsing format: ..."}


def parse_filters(values: tuple[str, ...]) -> dict[str, list[str]]:
    """docker-cli's FilterOpt: `name=value`, the name trimmed and lower-cased, values of one name OR-ed."""
    parsed: dict[str, list[str]] = {}
    for item in values:
        if not item:
            continue
        name, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f'invalid argument "{item}" for "-f, --filter" flag: '
                             "bad format of filter (expected name=value)")
        parsed.setdefault(name.strip().lower(), []).append(value.strip())
    return parsed


def time_bounds(since: str | None, until: str | None, now: float) -> tuple[int | None, int | None]:
    """(since, until) in ns: docker-cli's GetTimestamp on each, then dockerd's check of their order."""
    from pyctr.runtime.logs import get_timestamp

    def bound(value: str | None) -> int | None:
        if not value:
            return None
        try:
            seconds, nanos = get_timestamp(value, now, time.localtime(now).tm_gmtoff)
        except UsageError as e:
            raise PyctrError(e.message, exit_code=1) from None
        return seconds * 10**9 + nanos

    since_ns, until_ns = bound(since), bound(until)
    if since_ns is not None and until_ns is not None and until_ns < since_ns:
        raise PyctrError(f"`since` time ({since}) cannot be after `until` time ({until})")
    return since_ns, until_ns


def message_context(event: events.Event | None):
    """The template's `.`: Go's events.Message (`.Type`, `.Action`, `.Actor.Attributes.name`, `.Time`...);
    `{{json .}}` prints what dockerd sends, the deprecated status/id/from only where dockerd fills them."""
    from pyctr.output.govalues import GoStruct

    document = events.message(event) if event is not None else {}
    type_name = "events.Message" if event is not None else "*events.Message"  # makeTemplate's &Message{}
    actor = document.get("Actor") or {"ID": "", "Attributes": {}}  # a nil map: `.Attributes.x` is <no value>
    return GoStruct(type_name, {
        "Status": document.get("status", ""), "ID": document.get("id", ""), "From": document.get("from", ""),
        "Type": document.get("Type", ""), "Action": document.get("Action", ""),
        "Actor": GoStruct("events.Actor", {"ID": actor["ID"], "Attributes": actor["Attributes"]}),
        "Scope": document.get("scope", ""), "Time": document.get("time", 0), "TimeNano": document.get("timeNano", 0),
    }, json_names={"Status": "status", "ID": "id", "From": "from", "Scope": "scope", "Time": "time",
                   "TimeNano": "timeNano"}, omit_empty=("Status", "ID", "From", "Time", "TimeNano"))


def line_printer(fmt: str | None):
    """How one event is printed: the default line, or the template (checked once on an empty message, as
    docker-cli's makeTemplate does, so `{{.Bogus}}` fails before anything is read)."""
    if not fmt:
        return events.default_line
    from pyctr.output.template import Template, TemplateError, json_shorthand

    try:
        template = Template(json_shorthand(fmt))
        template.execute(message_context(None))
    except TemplateError as e:  # docker-cli's runEvents: a StatusError 64 with Go's own error text
        raise TemplateError(f"Error parsing format: {e.message}", exit_code=EXIT_BAD_FORMAT) from None
    return lambda event: template.execute(message_context(event))


@click.command()
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output based on conditions provided")
@click.option("--format", "fmt", default=None, help="Format the output using the given Go template")
@click.option("--since", default=None, help="Show all events created since timestamp")
@click.option("--until", default=None, help="Stream events until this timestamp")
@pass_app
def events_command(app: AppContext, filters: tuple[str, ...], fmt: str | None, since: str | None,
                   until: str | None) -> None:
    """Get real time events from the server."""
    parsed = parse_filters(filters)
    since_ns, until_ns = time_bounds(since, until, time.time())
    show = line_printer(fmt)
    out = sys.stdout
    try:
        with events.Subscription(app.config.root, since_ns, until_ns) as subscription:
            for event in subscription.events():
                if events.matches(event, parsed):
                    out.write(show(event) + "\n")
                    out.flush()
    except (BrokenPipeError, KeyboardInterrupt):
        return
