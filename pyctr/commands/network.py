"""`pyctr network ...`: Docker 20.10's network commands (bridge driver), printed as docker-cli prints them."""

from __future__ import annotations

import json
import sys

import click

from pyctr.commands import AppContext, pass_app
from pyctr.output import table
from pyctr.output.template import GoStruct


@click.group()
def network() -> None:
    """Manage networks."""


def _net():
    from pyctr.runtime.network import usermanager

    return usermanager


@network.command("create")
@click.argument("name")
@click.option("-d", "--driver", default="bridge", help="Driver to manage the Network")
@click.option("--subnet", "subnets", multiple=True, help="Subnet in CIDR format that represents a network segment")
@click.option("--gateway", "gateways", multiple=True, help="IPv4 or IPv6 Gateway for the master subnet")
@click.option("--ip-range", "ip_ranges", multiple=True, help="Allocate container ip from a sub-range")
@click.option("--internal", is_flag=True, help="Restrict external access to the network")
@click.option("--label", "labels", multiple=True, help="Set metadata on a network")
@click.option("-o", "--opt", "opts", multiple=True, help="Set driver specific options")
@click.option("--attachable", is_flag=True, hidden=True)
@pass_app
def create(app: AppContext, name: str, driver: str, subnets: tuple[str, ...], gateways: tuple[str, ...],
           ip_ranges: tuple[str, ...], internal: bool, labels: tuple[str, ...], opts: tuple[str, ...],
           attachable: bool) -> None:
    """Create a network (prints its id)."""
    from pyctr.runtime.network.usernet import parse_key_values

    record = _net().create_network(
        app.config, name, driver=driver, subnets=list(subnets), gateways=list(gateways),
        ip_ranges=list(ip_ranges), internal=internal, labels=parse_key_values(labels, "label"),
        options=parse_key_values(opts, "option"))
    click.echo(record.id)


def _context(row: dict) -> GoStruct:
    return GoStruct("*formatter.networkContext", row, json_keys=tuple(row))


@network.command("ls")
@click.option("-f", "--filter", "filters", multiple=True, help="Provide filter values (e.g. 'driver=bridge')")
@click.option("--format", "fmt", help="Pretty-print networks using a Go template")
@click.option("-q", "--quiet", is_flag=True, help="Only display network IDs")
@click.option("--no-trunc", is_flag=True, help="Do not truncate the output")
@pass_app
def ls(app: AppContext, filters: tuple[str, ...], fmt: str | None, quiet: bool, no_trunc: bool) -> None:
    """List networks."""
    from pyctr.runtime.network import usernet

    if fmt:
        table.check(fmt)
    wanted = usernet.parse_filters(filters)
    documents = sorted(_net().network_documents(app.config), key=lambda d: d["Name"])
    rows = [usernet.ls_row(d, no_trunc) for d in documents if usernet.matches(d, wanted, bool(d["Containers"]))]
    if quiet:
        for row in rows:
            click.echo(row["ID"])
        return
    fmt = fmt or usernet.LS_DEFAULT_FORMAT
    click.echo(table.write(fmt, [_context(r) for r in rows], usernet.LS_HEADERS), nl=False)


network.add_command(ls, "list")


@network.command("inspect")
@click.argument("refs", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", help="Format the output using the given Go template")
@click.option("-v", "--verbose", is_flag=True, help="Verbose output for diagnostics")
@pass_app
def inspect(app: AppContext, refs: tuple[str, ...], fmt: str | None, verbose: bool) -> None:
    """Display detailed information on one or more networks."""
    from pyctr.commands.container import inspect_template
    from pyctr.errors import PyctrError
    from pyctr.output import template
    from pyctr.runtime.network import usernet

    compiled = inspect_template(fmt)
    documents = _net().network_documents(app.config)
    found, failed = [], 0
    for ref in refs:
        try:
            found.append(usernet.find_document(documents, ref))
        except PyctrError as e:
            click.echo(e.message, err=True)
            failed += 1
    if compiled:
        text, errors = template.inspect_lines(fmt, found)
        click.echo(text, nl=False)
        for error in errors:
            click.echo(f"Error: {error}", err=True)
        failed += len(errors)
    else:
        click.echo(json.dumps(found, indent=4))
    if failed:
        sys.exit(1)


@network.command("rm")
@click.argument("refs", nargs=-1, required=True)
@pass_app
def rm(app: AppContext, refs: tuple[str, ...]) -> None:
    """Remove one or more networks (prints each as given)."""
    from pyctr.errors import PyctrError, cli_error_line

    failed = 0
    for ref in refs:
        try:
            _net().remove_network(app.config, ref)
            click.echo(ref)
        except PyctrError as e:
            click.echo(cli_error_line("network", e), err=True)
            failed += 1
    if failed:
        sys.exit(1)


network.add_command(rm, "remove")


@network.command("prune")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.option("--filter", "filters", multiple=True, help="Provide filter values (e.g. 'label=<key>=<value>')")
@pass_app
def prune(app: AppContext, force: bool, filters: tuple[str, ...]) -> None:
    """Remove all unused networks."""
    from pyctr.errors import PyctrError

    wanted: dict[str, list[str]] = {"label": [], "label!": []}
    for item in filters:
        key, _, value = item.partition("=")
        if key not in wanted:
            raise PyctrError(f"Invalid filter '{key}'")
        wanted[key].append(value)
    if not force:
        click.echo("WARNING! This will remove all custom networks not used by at least one container.")
        if not click.confirm("Are you sure you want to continue?", default=False):
            return
    names = _net().prune_networks(app.config, wanted["label"], wanted["label!"])
    if names:
        click.echo("Deleted Networks:\n" + "".join(f"{n}\n" for n in names))


@network.command("connect")
@click.argument("ref")
@click.argument("container")
@click.option("--alias", "aliases", multiple=True, help="Add network-scoped alias for the container")
@click.option("--ip", default=None, help="IPv4 address (e.g., 172.30.100.104)")
@pass_app
def connect(app: AppContext, ref: str, container: str, aliases: tuple[str, ...], ip: str | None) -> None:
    """Connect a container to a network (a running one at once: eth1, eth2...)."""
    _net().connect_container(app.config, container, ref, list(aliases), ip)


@network.command("disconnect")
@click.argument("ref")
@click.argument("container")
@click.option("-f", "--force", is_flag=True, help="Force the container to disconnect from a network")
@pass_app
def disconnect(app: AppContext, ref: str, container: str, force: bool) -> None:
    """Disconnect a container from a network."""
    _net().disconnect_container(app.config, container, ref, force)
