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


def _find_document(documents: list[dict], ref: str) -> dict:
    from pyctr.runtime.network.usernet import NetworkNotFound

    for key in ("Id", "Name"):
        for document in documents:
            if document[key] == ref:
                return document
    matches = [d for d in documents if ref and d["Id"].startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    raise NetworkNotFound(ref)


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

    compiled = inspect_template(fmt)
    documents = _net().network_documents(app.config)
    found, failed = [], 0
    for ref in refs:
        try:
            found.append(_find_document(documents, ref))
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
@click.option("--filter", "filters", multiple=True, hidden=True)
@pass_app
def prune(app: AppContext, force: bool, filters: tuple[str, ...]) -> None:
    """Remove all unused networks."""
    if not force:
        click.echo("WARNING! This will remove all custom networks not used by at least one container.")
        if not click.confirm("Are you sure you want to continue?", default=False):
            return
    names = _net().prune_networks(app.config)
    if names:
        click.echo("Deleted Networks:\n" + "".join(f"{n}\n" for n in names))


def _container(app: AppContext, ref: str):
    from pyctr.runtime.state import ContainerStore

    return ContainerStore(app.config.paths).get(ref)


def _mode(record) -> str:
    return ((record.config.get("Spec") or {}).get("network") or {}).get("mode", "bridge")


@network.command("connect")
@click.argument("ref")
@click.argument("container")
@click.option("--alias", "aliases", multiple=True, help="Add network-scoped alias for the container")
@click.option("--ip", default=None, help="IPv4 address (e.g., 172.30.100.104)")
@pass_app
def connect(app: AppContext, ref: str, container: str, aliases: tuple[str, ...], ip: str | None) -> None:
    """Connect a container to a network (a running one at once: eth1, eth2...)."""
    from pyctr.errors import PyctrError
    from pyctr.runtime.network import usernet

    usermanager = _net()
    net = _user_network(app, ref)
    record = _container(app, container)
    if _mode(record) in ("host", "none"):
        raise PyctrError(f"container cannot be connected to network endpoints: {_mode(record)}")
    if ip:
        usernet.check_requested_ip(net, ip, set())
    previous = usermanager.attachments_of(app.config, record.id).get(net.id)
    if previous is not None and record.state.running:
        raise PyctrError(f"endpoint with name {record.config['Name'].lstrip('/')} already exists in network "
                         f"{net.name}", exit_code=1)
    usermanager.attach(app.config, record.id, net, list(aliases), ip)
    if record.state.running:
        try:
            usermanager.connect(app.config, record.id, record.config["Name"], net.id, record.state.pid,
                                usernet.Attachment(list(aliases), ip or ""))
        except BaseException:
            usermanager.detach(app.config, record.id, net.id)
            raise
        _record_endpoints(app, record.id)


def _record_endpoints(app: AppContext, container_id: str) -> None:
    """Keep the container's state (inspect's NetworkSettings.Networks) in step with its live endpoints."""
    from dataclasses import replace

    from pyctr.runtime.state import ContainerStore

    usermanager = _net()
    networks = usermanager.endpoint_settings(container_id, usermanager.endpoints_of(app.config, container_id))

    def update(state):
        if not state.running:
            return None
        return replace(state, network={**(state.network or {}), "Networks": networks})

    ContainerStore(app.config.paths).update_state(container_id, update)


def _user_network(app: AppContext, ref: str):
    from pyctr.errors import PyctrError
    from pyctr.runtime.network import usernet

    if ref in ("bridge", "host", "none"):
        raise PyctrError(f"pyctr connects containers to the {ref} network only with run/create --network {ref}")
    return usernet.load_store(app.config.paths.network).find(ref)


@network.command("disconnect")
@click.argument("ref")
@click.argument("container")
@click.option("-f", "--force", is_flag=True, help="Force the container to disconnect from a network")
@pass_app
def disconnect(app: AppContext, ref: str, container: str, force: bool) -> None:
    """Disconnect a container from a network."""
    from pyctr.errors import PyctrError

    usermanager = _net()
    net = _user_network(app, ref)
    record = _container(app, container)
    attached = net.id in usermanager.attachments_of(app.config, record.id)
    live = usermanager.disconnect(app.config, record.id, net.id) if record.state.running else False
    if not attached and not live and not force:
        raise PyctrError(f"container {record.id} is not connected to network {net.name}")
    usermanager.detach(app.config, record.id, net.id)
    if live:
        _record_endpoints(app, record.id)
