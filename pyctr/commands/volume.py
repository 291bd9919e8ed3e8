"""`pyctr volume create|ls|inspect|rm|prune` with docker-cli's flags, columns and messages (Docker 20.10).

Parsing and printing only; the store is pyctr.runtime.volumes. Every error exits 1 as docker-cli's volume
commands do (a bad `create` name too: `Error response from daemon: create a/b: "a/b" includes invalid ...`).
"""

from __future__ import annotations

import json
import sys

import click

from pyctr.commands import AppContext, pass_app
from pyctr.errors import PyctrError, UsageError
from pyctr.output import table
from pyctr.output.template import GoStruct

VOLUME_FORMAT = "table {{.Driver}}\t{{.Name}}"
VOLUME_HEADERS = {"Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE", "Mountpoint": "MOUNTPOINT",
                  "Labels": "LABELS", "Links": "LINKS", "Size": "SIZE"}
FILTER_KEYS = ("dangling", "name", "driver", "label")


def _store(app: AppContext):
    from pyctr.runtime.volumes import VolumeStore

    return VolumeStore(app.config.paths)


def _key_values(values: tuple[str, ...], flag: str) -> dict[str, str]:
    """`--label k=v` / `-o k=v` (a bare key is an empty value, as docker-cli's ListOpts/MapOpts keep it)."""
    result = {}
    for item in values:
        key, _, value = item.partition("=")
        if not key:
            raise UsageError(f'invalid argument "{item}" for "{flag}" flag: invalid key')
        result[key] = value
    return result


@click.command()
@click.argument("name", required=False)
@click.option("-d", "--driver", default="local", help="Specify volume driver name")
@click.option("--label", "labels", multiple=True, help="Set metadata for a volume")
@click.option("-o", "--opt", "opts", multiple=True, help="Set driver specific options")
@click.option("--name", "name_flag", default=None, hidden=True)
@pass_app
def create(app: AppContext, name: str | None, driver: str, labels: tuple[str, ...], opts: tuple[str, ...],
           name_flag: str | None) -> None:
    """Create a volume."""
    if name and name_flag:
        raise UsageError("conflicting options: either specify --name or provide positional arg, not both")
    volume = _store(app).create(name or name_flag, driver, _key_values(labels, "--label"),
                                _key_values(opts, "-o, --opt"))
    click.echo(volume.name)


def parse_filters(filters: tuple[str, ...]) -> dict[str, list[str]]:
    """`--filter key=value`, several values of one key OR-ed, keys AND-ed (Docker's filters.Args)."""
    parsed: dict[str, list[str]] = {}
    for item in filters:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"bad format of filter (expected name=value): {item}")
        key = key.strip().lower()
        if key not in FILTER_KEYS:
            raise PyctrError(f"Invalid filter '{key}'")
        parsed.setdefault(key, []).append(value)
    for value in parsed.get("dangling", []):
        if value not in ("true", "false", "1", "0"):
            raise PyctrError(f"Invalid filter 'dangling=[{' '.join(parsed['dangling'])}]'")
    return parsed


def matches(volume, users: int, parsed: dict[str, list[str]]) -> bool:
    from pyctr.runtime.volumes import volume_matches

    return volume_matches(volume, users, parsed)


def _labels_text(labels: dict | None) -> str:
    return ",".join(f"{k}={v}" for k, v in (labels or {}).items())


def volume_context(volume, size: str = "N/A", links: str = "N/A") -> GoStruct:
    """docker-cli's volumeContext: the fields a `--format` can name, `{{json .}}` with all of them."""
    fields = {"Driver": volume.driver, "Labels": _labels_text(volume.labels), "Links": links,
              "Mountpoint": volume.mountpoint, "Name": volume.name, "Scope": "local", "Size": size}
    return GoStruct("*formatter.volumeContext", fields, json_keys=tuple(fields))


@click.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only display volume names")
@click.option("--format", "fmt", help="Pretty-print volumes using a Go template")
@click.option("-f", "--filter", "filters", multiple=True, help="Provide filter values (e.g. 'dangling=true')")
@pass_app
def ls(app: AppContext, quiet: bool, fmt: str | None, filters: tuple[str, ...]) -> None:
    """List volumes."""
    if fmt:
        table.check(fmt)
    parsed = parse_filters(filters)
    store = _store(app)
    refs = store.refs()
    chosen = [v for v in store.list() if matches(v, len(refs.get(v.name, [])), parsed)]
    if quiet:
        for volume in chosen:
            click.echo(volume.name)
        return
    fmt = VOLUME_FORMAT if not fmt or fmt == "table" else fmt
    click.echo(table.write(fmt, [volume_context(v) for v in chosen], VOLUME_HEADERS), nl=False)


@click.command()
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", help="Format the output using a Go template")
@pass_app
def inspect(app: AppContext, names: tuple[str, ...], fmt: str | None) -> None:
    """Display detailed information on one or more volumes."""
    from pyctr.commands.container import inspect_template
    from pyctr.output import template

    compiled = inspect_template(fmt)
    store = _store(app)
    docs, failed = [], 0
    for name in names:
        try:
            docs.append(store.get(name).inspect())
        except PyctrError as e:
            click.echo(e.message, err=True)
            failed += 1
    if compiled:
        text, errors = template.inspect_lines(fmt, docs)
        click.echo(text, nl=False)
        for error in errors:
            click.echo(f"Error: {error}", err=True)
        failed += len(errors)
    else:
        click.echo(json.dumps(docs, indent=4))
    if failed:
        sys.exit(1)


@click.command()
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Force the removal of one or more volumes")
@pass_app
def rm(app: AppContext, names: tuple[str, ...], force: bool) -> None:
    """Remove one or more volumes. You cannot remove a volume that is in use by a container."""
    from pyctr.errors import cli_error_line

    store = _store(app)
    failed = 0
    for name in names:
        try:
            store.remove(name, force)
            click.echo(name)
        except PyctrError as e:
            click.echo(cli_error_line("volume", e), err=True)
            failed += 1
    if failed:
        sys.exit(1)


@click.command()
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.option("--filter", "filters", multiple=True, help="Provide filter values (e.g. 'label=<label>')")
@pass_app
def prune(app: AppContext, force: bool, filters: tuple[str, ...]) -> None:
    """Remove all unused local volumes."""
    wanted: dict[str, list[str]] = {"label": [], "label!": []}
    for item in filters:
        key, _, value = item.partition("=")
        if key not in wanted:
            raise PyctrError(f"Invalid filter '{key}'")
        wanted[key].append(value)
    if not force:
        click.echo("WARNING! This will remove all local volumes not used by at least one container.")
        if not click.confirm("Are you sure you want to continue?", default=False):
            return
    from pyctr.units import human_size

    removed, reclaimed = _store(app).prune(wanted["label"], wanted["label!"])
    if removed:
        click.echo("Deleted Volumes:")
        for name in removed:
            click.echo(name)
        click.echo("")
    click.echo(f"Total reclaimed space: {human_size(reclaimed)}")


@click.group()
def volume() -> None:
    """Manage volumes."""


def _alias(command: click.Command, name: str) -> click.Command:
    return click.Command(name, params=command.params, callback=command.callback, help=command.help,
                         context_settings=command.context_settings)


volume.add_command(create)
volume.add_command(ls)
volume.add_command(_alias(ls, "list"))
volume.add_command(inspect)
volume.add_command(rm)
volume.add_command(_alias(rm, "remove"))
volume.add_command(prune)
