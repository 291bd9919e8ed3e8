"""`pyctr version`, `pyctr info` and the `pyctr system` group."""

from __future__ import annotations

import os
import platform
import sys

import click

from pyctr import API_VERSION, __version__
from pyctr.commands import AppContext, pass_app


@click.command()
@click.option("-f", "--format", "fmt", default=None, help="Format the output using the given Go template ('json').")
def version(fmt: str | None) -> None:
    """Show the pyctr version information."""
    from pyctr.platform_info import host_platform

    os_name, arch, variant = host_platform()
    arch_text = arch + (f"/{variant}" if variant else "")
    if fmt:
        _print_version_template(fmt, version_document(os_name, arch_text))
        return
    click.echo(f"pyctr version {__version__}")
    click.echo(f" API version:  {API_VERSION} (Docker-compatible)")
    click.echo(f" Python:       {platform.python_version()}")
    click.echo(f" OS/Arch:      {os_name}/{arch_text}")
    click.echo(f" Kernel:       {os.uname().release}")


def version_document(os_name: str, arch: str):
    """docker-cli's versionInfo: `{{.Client.Version}}`, `{{.Server.Version}}`, ... (one process is both)."""
    from pyctr.output.template import GoStruct

    python = f"python{platform.python_version()}"
    client = GoStruct("system.clientVersion", {
        "Platform": GoStruct("struct { Name string }", {"Name": ""}), "Version": __version__,
        "APIVersion": API_VERSION, "DefaultAPIVersion": API_VERSION, "GitCommit": "", "GoVersion": python,
        "Os": os_name, "Arch": arch, "BuildTime": "", "Context": "default", "Experimental": True,
    }, json_names={"APIVersion": "ApiVersion"})
    details = {"ApiVersion": API_VERSION, "Arch": arch, "BuildTime": "", "Experimental": "false", "GitCommit": "",
               "GoVersion": python, "KernelVersion": os.uname().release, "MinAPIVersion": API_VERSION,
               "Os": os_name}
    server = GoStruct("*types.Version", {
        "Platform": GoStruct("struct { Name string }", {"Name": "pyctr"}),
        "Components": [GoStruct("types.ComponentVersion", {"Name": "Engine", "Version": __version__,
                                                           "Details": details})],
        "Version": __version__, "APIVersion": API_VERSION, "MinAPIVersion": API_VERSION, "GitCommit": "",
        "GoVersion": python, "Os": os_name, "Arch": arch, "KernelVersion": os.uname().release,
        "BuildTime": "",
    }, json_names={"APIVersion": "ApiVersion"})
    return GoStruct("system.versionInfo", {"Client": client, "Server": server})


def _print_version_template(fmt: str, document) -> None:
    """docker-cli's prettyPrintVersion: the template through tabwriter(20, 1, 1), what ran printed even on error."""
    from pyctr.output import template
    from pyctr.output.table import tabwrite

    try:  # docker-cli 20.10's runVersion: a template that does not parse is StatusError 64
        compiled = template.parse(template.json_shorthand(fmt), name="version")
    except template.TemplateError as e:
        raise template.TemplateError(e.message, exit_code=64) from None
    try:
        text = compiled.execute(document)
    except template.TemplateError:
        click.echo(tabwrite(compiled.execute_partial(document) + "\n", minwidth=20, padding=1), nl=False)
        raise
    click.echo(tabwrite(text + "\n", minwidth=20, padding=1), nl=False)


@click.command()
@click.option("-f", "--format", "fmt", default=None, help="Format the output using the given Go template ('json').")
@pass_app
def info(app: AppContext, fmt: str | None) -> None:
    """Report the kernel features pyctr needs, each present or missing with a reason."""
    from pyctr.runtime.features import probe_all

    features = probe_all()
    config = app.config
    if fmt:
        _print_info_template(fmt, info_document(config, features))
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


def info_document(config, features):
    """What `info --format` sees: Docker's names where pyctr has the fact, plus pyctr's Root/Features."""
    from pyctr.output.template import GoStruct
    from pyctr.platform_info import host_platform

    os_name, arch, _variant = host_platform()
    uname = os.uname()
    return GoStruct("system.info", {
        "Name": uname.nodename, "ServerVersion": __version__, "Driver": "overlay2",
        "DockerRootDir": str(config.root), "KernelVersion": uname.release, "OSType": os_name,
        "Architecture": uname.machine, "NCPU": os.cpu_count() or 0,
        "Root": str(config.root), "ConfigFile": str(config.config_file),
        "Features": [{"Name": f.name, "Present": f.present, "Detail": f.detail, "Required": f.required}
                     for f in features],
    })


def _print_info_template(fmt: str, document) -> None:
    """docker-cli's formatInfo: a parse error exits 64; the output (even a failing one's) ends with a newline."""
    from pyctr.output import template

    try:
        compiled = template.parse(template.json_shorthand(fmt))
    except template.TemplateError as e:
        raise template.TemplateError(e.message, exit_code=64) from None
    try:
        text = compiled.execute(document)
    except template.TemplateError:
        click.echo(compiled.execute_partial(document))
        raise
    click.echo(text)


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
    from pyctr.runtime.check import check_containers, unmount_all

    config = app.config
    outcomes = (check_store(config.paths, repair=not dry_run, unmount=unmount_all)
                + check_containers(config, repair=not dry_run))
    for outcome in outcomes:
        click.echo(outcome.line())
    if any(not outcome.repaired for outcome in outcomes):
        sys.exit(1)


@system.command()
@click.option("-H", "--host", default=None, metavar="URI",
              help="Socket to serve (default unix:///run/pyctr/docker.sock)")
@click.option("-t", "--timeout", "--time", "timeout", type=float, default=0,
              help="Seconds without any connection before the service exits (0: never)")
@click.option("--group", default=None, help="Group that may use the socket (default: root only)")
@click.argument("uri", required=False)
@pass_app
def service(app: AppContext, host: str | None, timeout: float, group: str | None, uri: str | None) -> None:
    """Serve the Docker Engine API on a unix socket (DOCKER_HOST=unix:///run/pyctr/docker.sock)."""
    from pyctr.api.service import DEFAULT_HOST, serve
    from pyctr.errors import UsageError

    if os.geteuid() != 0:
        raise UsageError("pyctr system service must run as root")
    serve(app.config, host or uri or DEFAULT_HOST, timeout, group)


def _add_image_commands() -> None:
    """`system df` lives with the image commands (it is mostly image-store accounting)."""
    from pyctr.commands.image import df

    system.add_command(df)


_add_image_commands()


def _add_lifecycle_commands() -> None:
    """`system boot` and `system prune` live with the lifecycle commands (p15-life)."""
    from pyctr.commands.lifecycle import boot, system_prune

    system.add_command(boot)
    system.add_command(system_prune)


_add_lifecycle_commands()
