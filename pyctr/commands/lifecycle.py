"""Lifecycle commands with Docker's flags and output: pause, unpause, rename, update, commit, export, import,
diff, container prune, system prune and system boot.

Parsing and printing only; the work is in runtime/ (pause, rename, update, commit, export, diff, prune) and
runtime/restart.py (boot).
"""

from __future__ import annotations

import contextlib
import os
import sys

import click

from pyctr.commands import AppContext, pass_app


def _for_each(refs: tuple[str, ...], action) -> None:
    """Docker's multi-container commands: each failure reported as docker-cli words it, exit 1 at the end."""
    from pyctr.errors import PyctrError, cli_error_line, cli_exit_code

    command = click.get_current_context().info_name
    failed: list[PyctrError] = []
    for ref in refs:
        try:
            action(ref)
        except PyctrError as e:
            click.echo(cli_error_line(command, e), err=True)
            failed.append(e)
    if failed:
        sys.exit(cli_exit_code(command, failed[-1]))


@click.command()
@click.argument("containers", nargs=-1, required=True)
@pass_app
def pause(app: AppContext, containers: tuple[str, ...]) -> None:
    """Pause all processes within one or more containers."""
    from pyctr.runtime.pause import pause as pause_one

    def one(ref: str) -> None:
        pause_one(app.config, ref)
        click.echo(ref)

    _for_each(containers, one)


@click.command()
@click.argument("containers", nargs=-1, required=True)
@pass_app
def unpause(app: AppContext, containers: tuple[str, ...]) -> None:
    """Unpause all processes within one or more containers."""
    from pyctr.runtime.pause import unpause as unpause_one

    def one(ref: str) -> None:
        unpause_one(app.config, ref)
        click.echo(ref)

    _for_each(containers, one)


@click.command(hidden=False)
@pass_app
def boot(app: AppContext) -> None:
    """Start the containers whose restart policy brings them back when the host boots (run it at boot)."""
    from pyctr.runtime.restart import boot as boot_containers

    for container_id in boot_containers(app.config):
        click.echo(container_id)


@click.command()
@click.argument("container")
@click.argument("new_name")
@pass_app
def rename(app: AppContext, container: str, new_name: str) -> None:
    """Rename a container."""
    from pyctr.runtime.update import rename as rename_container

    rename_container(app.config, container.strip(), new_name.strip())


@click.command()
@click.option("-m", "--memory", default=None, help="Memory limit")
@click.option("--memory-swap", default=None, help="Swap limit equal to memory plus swap: '-1' to enable unlimited swap")
@click.option("--cpus", default=None, help="Number of CPUs")
@click.option("-c", "--cpu-shares", type=int, default=None, help="CPU shares (relative weight)")
@click.option("--pids-limit", type=int, default=None, help="Tune container pids limit (set -1 for unlimited)")
@click.option("--restart", default=None, help="Restart policy to apply when a container exits")
@click.argument("containers", nargs=-1, required=True)
@pass_app
def update(app: AppContext, memory: str | None, memory_swap: str | None, cpus: str | None, cpu_shares: int | None,
           pids_limit: int | None, restart: str | None, containers: tuple[str, ...]) -> None:
    """Update configuration of one or more containers."""
    from pyctr.errors import ClientError
    from pyctr.runtime.update import UpdateOptions
    from pyctr.runtime.update import update as update_one

    options = UpdateOptions(memory, memory_swap, cpus, cpu_shares, pids_limit, restart)
    if options.empty:
        raise ClientError("You must provide one or more flags when using this command.", exit_code=1)

    def one(ref: str) -> None:
        update_one(app.config, ref, options)
        click.echo(ref)

    _for_each(containers, one)


@click.command()
@click.option("-a", "--author", default="", help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")')
@click.option("-c", "--change", "changes", multiple=True, help="Apply Dockerfile instruction to the created image")
@click.option("-m", "--message", default="", help="Commit message")
@click.option("-p", "--pause/--no-pause", "pause_it", default=True, help="Pause container during commit")
@click.argument("container")
@click.argument("repository", required=False)
@pass_app
def commit(app: AppContext, author: str, changes: tuple[str, ...], message: str, pause_it: bool, container: str,
           repository: str | None) -> None:
    """Create a new image from a container's changes."""
    from pyctr.build.changes import apply_changes
    from pyctr.image.reference import parse_reference
    from pyctr.runtime.snapshot import CommitOptions
    from pyctr.runtime.snapshot import commit as commit_container
    from pyctr.runtime.state import ContainerStore

    if repository:
        parse_reference(repository)  # a bad name is refused before anything is packed
    record = ContainerStore(app.config.paths).get(container)
    config_section = apply_changes(dict(record.config.get("Config") or {}), list(changes))
    image = commit_container(app.config, record, config_section,
                             CommitOptions(reference=repository, author=author, message=message, pause=pause_it))
    click.echo(image.id)


@click.command()
@click.option("-o", "--output", default=None, help="Write to a file, instead of STDOUT")
@click.argument("container")
@pass_app
def export(app: AppContext, output: str | None, container: str) -> None:
    """Export a container's filesystem as a tar archive."""
    from pyctr.errors import ClientError
    from pyctr.runtime.snapshot import export_container
    from pyctr.runtime.state import ContainerStore

    if output is None and sys.stdout.isatty():
        raise ClientError("cowardly refusing to save to a terminal. Use the -o flag or redirect", exit_code=1)
    record = ContainerStore(app.config.paths).get(container)
    if output is None:
        sys.stdout.flush()
        export_container(app.config, record, sys.stdout.buffer)
        return
    partial = f"{output}.pyctr-partial"
    try:
        with open(partial, "wb") as out:
            export_container(app.config, record, out)
        os.replace(partial, output)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise


@click.command(name="import")
@click.option("-c", "--change", "changes", multiple=True, help="Apply Dockerfile instruction to the created image")
@click.option("-m", "--message", default="", help="Set commit message for imported image")
@click.option("--platform", default=None, help="Set platform if server is multi-platform capable")
@click.argument("source")
@click.argument("repository", required=False)
@pass_app
def import_(app: AppContext, changes: tuple[str, ...], message: str, platform: str | None, source: str,
            repository: str | None) -> None:
    """Import the contents from a tarball to create a filesystem image."""
    from pyctr.build.changes import apply_changes
    from pyctr.errors import PyctrError
    from pyctr.image.reference import parse_reference
    from pyctr.runtime.snapshot import import_tarball

    if repository:
        parse_reference(repository)
    config_section = apply_changes({}, list(changes))
    if source == "-":
        image = import_tarball(app.config, sys.stdin.buffer, source, config_section, message, repository)
    elif "://" in source:
        raise PyctrError("import from a URL is not supported by pyctr: download the file and import it")
    else:
        try:
            stream = open(source, "rb")  # noqa: SIM115 - closed below
        except OSError as e:
            raise PyctrError(f"open {source}: {(e.strerror or str(e)).lower()}") from None
        with stream:
            image = import_tarball(app.config, stream, source, config_section, message, repository)
    click.echo(image.id)


@click.command()
@click.argument("container")
@pass_app
def diff(app: AppContext, container: str) -> None:
    """Inspect changes to files or directories on a container's filesystem."""
    from pyctr.runtime.snapshot import container_diff
    from pyctr.runtime.state import ContainerStore

    for kind, path in container_diff(ContainerStore(app.config.paths).get(container)):
        click.echo(f"{kind} {path}")


def _confirm(lines: list[str]) -> bool:
    for line in lines:
        click.echo(line)
    return click.confirm("Are you sure you want to continue?", default=False)


@click.command(name="prune")
@click.option("--filter", "filters", multiple=True, help="Provide filter values (e.g. 'until=<timestamp>')")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@pass_app
def container_prune(app: AppContext, filters: tuple[str, ...], force: bool) -> None:
    """Remove all stopped containers."""
    from pyctr.runtime.prune import parse_prune_filters, prune_containers
    from pyctr.units import human_size

    parsed = parse_prune_filters(filters)
    if not force and not _confirm(["WARNING! This will remove all stopped containers."]):
        return
    removed, reclaimed = prune_containers(app.config, parsed)
    if removed:
        click.echo("Deleted Containers:")
        for container_id in removed:
            click.echo(container_id)
        click.echo("")
    click.echo(f"Total reclaimed space: {human_size(reclaimed)}")


@click.command(name="prune")
@click.option("-a", "--all", "all_unused", is_flag=True, help="Remove all unused images not just dangling ones")
@click.option("--filter", "filters", multiple=True, help="Provide filter values (e.g. 'label=<key>=<value>')")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.option("--volumes", is_flag=True, help="Prune volumes")
@pass_app
def system_prune(app: AppContext, all_unused: bool, filters: tuple[str, ...], force: bool, volumes: bool) -> None:
    """Remove unused data: stopped containers, unused networks, dangling (or with -a all unused) images."""
    from pyctr.image.remove import prune_images
    from pyctr.image.store import ImageStore
    from pyctr.runtime.prune import parse_prune_filters, prune_containers
    from pyctr.units import human_size

    parsed = parse_prune_filters(filters)
    if not force:
        warning = ["WARNING! This will remove:", "  - all stopped containers",
                   "  - all networks not used by at least one container"]
        if volumes:
            warning.append("  - all volumes not used by at least one container")
        warning.append("  - all images without at least one container associated to them" if all_unused
                       else "  - all dangling images")
        warning += ["  - all dangling build cache", ""]
        if not _confirm(warning):
            return
    removed, reclaimed = prune_containers(app.config, parsed)
    if removed:
        click.echo("Deleted Containers:")
        for container_id in removed:
            click.echo(container_id)
        click.echo("")
    from pyctr.runtime.network.usermanager import prune_networks

    networks = prune_networks(app.config)
    if networks:
        click.echo("Deleted Networks:")
        for name in networks:
            click.echo(name)
        click.echo("")
    if volumes:
        from pyctr.runtime.volumes import VolumeStore

        gone, volume_bytes = VolumeStore(app.config.paths).prune()
        reclaimed += volume_bytes
        if gone:
            click.echo("Deleted Volumes:")
            for name in gone:
                click.echo(name)
            click.echo("")
    from pyctr.runtime.usage import image_users

    lines, freed = prune_images(ImageStore(app.config.paths), all_unused, in_use=image_users(app.config.paths))
    if lines:
        click.echo("Deleted Images:")
        for line in lines:
            click.echo(line)
        click.echo("")
    click.echo(f"Total reclaimed space: {human_size(reclaimed + freed)}")


@click.command(name="_health", hidden=True)
@click.option("--pid", type=int, required=True)
@click.option("--pid-start-time", type=int, required=True)
@click.argument("container_id")
@pass_app
def health_probe(app: AppContext, pid: int, pid_start_time: int, container_id: str) -> None:
    """Internal: run one health probe of a container and record it (its health ticker runs this)."""
    from pyctr.runtime.health import probe_once

    probe_once(app.config, container_id, pid, pid_start_time)
