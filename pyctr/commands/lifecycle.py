"""Lifecycle commands with Docker's flags and output: pause, unpause, rename, update, commit, export, import,
diff, container prune, system prune and system boot.

Parsing and printing only; the work is in runtime/ (pause, rename, update, commit, export, diff, prune) and
runtime/restart.py (boot).
"""

from __future__ import annotations

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
