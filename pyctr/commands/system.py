"""`pyctr version`, `pyctr info` and the `pyctr system` group."""

from __future__ import annotations

import os
import platform
import sys

import click

from pyctr import API_VERSION, __version__
from pyctr.commands import AppContext, pass_app


@click.command()
@click.option("-f", "--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              help="Output format.")
def version(fmt: str) -> None:
    """Show the pyctr version information."""
    from pyctr.platform_info import host_platform

    os_name, arch, variant = host_platform()
    info = {
        "Version": __version__,
        "ApiVersion": API_VERSION,
        "PythonVersion": platform.python_version(),
        "Os": os_name,
        "Arch": arch + (f"/{variant}" if variant else ""),
        "KernelVersion": os.uname().release,
    }
    if fmt == "json":
        import json

        click.echo(json.dumps(info))
        return
    click.echo(f"pyctr version {__version__}")
    click.echo(f" API version:  {API_VERSION} (Docker-compatible)")
    click.echo(f" Python:       {info['PythonVersion']}")
    click.echo(f" OS/Arch:      {os_name}/{info['Arch']}")
    click.echo(f" Kernel:       {info['KernelVersion']}")


@click.command()
@click.option("-f", "--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              help="Output format.")
@pass_app
def info(app: AppContext, fmt: str) -> None:
    """Report the kernel features pyctr needs, each present or missing with a reason."""
    from pyctr.runtime.features import probe_all

    features = probe_all()
    config = app.config
    if fmt == "json":
        import json

        click.echo(json.dumps({
            "Root": str(config.root),
            "ConfigFile": str(config.config_file),
            "Features": [{"Name": f.name, "Present": f.present, "Detail": f.detail, "Required": f.required}
                         for f in features],
        }))
        return
    click.echo(f"pyctr {__version__}")
    click.echo(f" Root:          {config.root}")
    click.echo(f" Config file:   {config.config_file}"
               + ("" if config.config_file and config.config_file.exists() else " (absent)"))
    click.echo(f" Bridge:        {config.network.bridge} {config.network.subnet}")
    click.echo(" Features:")
    width = max(len(f.name) for f in features)
    for f in features:
        mark = "present" if f.present else "MISSING"
        click.echo(f"  {f.name:<{width}}  {mark:<7}  {f.detail}")
    if not all(f.present for f in features if f.required):
        sys.exit(1)


@click.group()
def system() -> None:
    """Manage pyctr."""


system.add_command(info)


@system.command()
@click.option("--dry-run", is_flag=True, help="Report problems without repairing anything.")
@pass_app
def check(app: AppContext, dry_run: bool) -> None:
    """Verify the image store and the containers; repair what is safe to repair.

    Prints one line per problem. Exits 0 when everything is consistent (after repairs), 1 otherwise.
    """
    from pyctr.image.check import check_store
    from pyctr.runtime.check import check_containers

    config = app.config
    outcomes = check_store(config.paths, repair=not dry_run) + check_containers(config, repair=not dry_run)
    for outcome in outcomes:
        click.echo(outcome.line())
    if any(not outcome.repaired for outcome in outcomes):
        sys.exit(1)


def _add_image_commands() -> None:
    """`system df` lives with the image commands (it is mostly image-store accounting)."""
    from pyctr.commands.image import df

    system.add_command(df)


_add_image_commands()
