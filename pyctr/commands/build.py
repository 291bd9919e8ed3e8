"""`pyctr build`: Docker's legacy-builder command line over pyctr.build."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from pyctr.commands import AppContext, pass_app


def _parse_build_args(values: tuple[str, ...]) -> dict[str, str]:
    """`--build-arg K=V`; a bare `K` takes the value from the environment (skipped when unset), like Docker."""
    args: dict[str, str] = {}
    for item in values:
        key, eq, value = item.partition("=")
        if not key:
            from pyctr.errors import UsageError

            raise UsageError(f"invalid argument \"{item}\" for \"--build-arg\" flag")
        if eq:
            args[key] = value
        elif key in os.environ:
            args[key] = os.environ[key]
    return args


def _parse_labels(values: tuple[str, ...]) -> dict[str, str]:
    """`--label k=v` (repeatable); a bare `k` is an empty value, as Docker's ConvertKVStringsToMap."""
    labels: dict[str, str] = {}
    for item in values:
        key, _eq, value = item.partition("=")
        labels[key] = value
    return labels


@click.command()
@click.option("-t", "--tag", "tags", multiple=True, metavar="NAME:TAG", help="Name and optionally a tag.")
@click.option("-f", "--file", "dockerfile", metavar="PATH",
              help="Name of the Dockerfile (default: PATH/Dockerfile; '-' reads it from stdin).")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="Set metadata for an image.")
@click.option("--build-arg", "build_args", multiple=True, metavar="KEY=VALUE", help="Set build-time variables.")
@click.option("--target", metavar="STAGE", help="Set the target build stage to build.")
@click.option("--no-cache", is_flag=True, help="Do not use cache when building the image.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the build output and print image ID on success.")
@click.option("--network", default="default", metavar="MODE",
              help="Networking mode for the RUN instructions during build (default, none, host, bridge).")
@click.option("--secret", "secrets", multiple=True, metavar="id=ID,src=PATH",
              help="Secret to expose to RUN --mount=type=secret (id=ID,src=PATH or id=ID,env=VAR).")
@click.argument("context", metavar="PATH | -")
@pass_app
def build(app: AppContext, tags: tuple[str, ...], dockerfile: str | None, labels: tuple[str, ...],
          build_args: tuple[str, ...], target: str | None, no_cache: bool, quiet: bool, network: str,
          secrets: tuple[str, ...],
          context: str) -> None:
    """Build an image from a Dockerfile."""
    from pyctr.build.executor import BuildOptions
    from pyctr.build.executor import build as run_build
    from pyctr.build.run_mounts import parse_secret_flag
    from pyctr.errors import UsageError
    from pyctr.image.reference import parse_reference

    if "://" in context:
        raise UsageError("only a local directory or `-` (stdin) is supported as the build context")
    if context == "-" and dockerfile == "-":
        raise UsageError("invalid argument: can't use stdin for both build context and dockerfile")
    if network not in ("default", "none", "host", "bridge"):
        raise UsageError(f"network mode \"{network}\" not supported by buildkit-less builds: use default, "
                         "none, host or bridge")
    for tag in tags:
        parse_reference(tag)  # InvalidReference before any work
    dockerfile_path: Path | None = None
    dockerfile_text = None
    context_stream = sys.stdin.buffer if context == "-" else None
    if dockerfile == "-":
        dockerfile_text = sys.stdin.read()
    elif context == "-" and dockerfile is not None:
        dockerfile_path = Path(dockerfile)  # a path inside the tar read from stdin
    elif dockerfile is not None:
        path = Path(dockerfile)
        dockerfile_path = path if path.is_absolute() or path.exists() else Path(context) / path
    options = BuildOptions(context_dir=Path(context), dockerfile=dockerfile_path, tags=tags,
                           build_args=_parse_build_args(build_args), target=target, no_cache=no_cache,
                           quiet=quiet, network=network, dockerfile_text=dockerfile_text,
                           labels=_parse_labels(labels), context_stream=context_stream,
                           secrets=tuple(parse_secret_flag(s, dict(os.environ)) for s in secrets))

    def out(line: str) -> None:
        click.echo(line)
        sys.stdout.flush()

    def err(line: str) -> None:
        click.echo(line, err=True)

    image_id = run_build(app.config, options, out, err)
    if quiet:
        click.echo(image_id)
