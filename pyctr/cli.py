"""The `pyctr` command line: a thin click group over the build, image and runtime packages.

Commands are loaded lazily from a table: `pyctr --help` and `pyctr ps` import
only what they use, because start-up time is part of every command's latency.
Errors are turned into one line and Docker's exit codes here, and only here.
"""

from __future__ import annotations

import gc

# Start-up builds tens of thousands of long-lived objects (modules, classes, click options) and next to no
# garbage: at the default gen0 threshold (700) the cyclic collector ran ~35 times over them per `run`, about
# a tenth of `pyctr ps`. Collect far less often; commands that run long still collect.
gc.set_threshold(50_000, 10, 10)

import os  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402

import click  # noqa: E402

from pyctr import __version__  # noqa: E402
from pyctr.errors import (  # noqa: E402
    EXIT_CLI_FAILURE,
    EXIT_RUNTIME,
    KEEP_RUNTIME_CODE,
    PyctrError,
    cli_error_line,
    cli_exit_code,
)

# name -> (module, attribute, one-line help). A module of None is a command that
# is part of the CLI but not built yet: it exits 125 saying so.
COMMANDS: dict[str, tuple[str | None, str, str]] = {
    # containers
    "run": ("pyctr.commands.container", "run", "Create and run a new container from an image"),
    "create": ("pyctr.commands.container", "create", "Create a new container"),
    "start": ("pyctr.commands.container", "start", "Start one or more stopped containers"),
    "stop": ("pyctr.commands.container", "stop", "Stop one or more running containers"),
    "restart": ("pyctr.commands.container", "restart", "Restart one or more containers"),
    "kill": ("pyctr.commands.container", "kill", "Kill one or more running containers"),
    "rm": ("pyctr.commands.container", "rm", "Remove one or more containers"),
    "ps": ("pyctr.commands.container", "ps", "List containers"),
    "logs": ("pyctr.commands.container", "logs", "Fetch the logs of a container"),
    "wait": ("pyctr.commands.container", "wait", "Block until containers stop, then print their exit codes"),
    "inspect": ("pyctr.commands.container", "inspect", "Return low-level information on containers or images"),
    "stats": ("pyctr.commands.container", "stats", "Display resource usage statistics of containers"),
    "port": ("pyctr.commands.container", "port", "List port mappings of a container"),
    "exec": ("pyctr.commands.enter", "exec_", "Run a command in a running container"),
    "top": ("pyctr.commands.enter", "top", "Display the running processes of a container"),
    "cp": ("pyctr.commands.enter", "cp", "Copy files between a container and the host"),
    # lifecycle (p15-life)
    "pause": ("pyctr.commands.lifecycle", "pause", "Pause all processes within one or more containers"),
    "unpause": ("pyctr.commands.lifecycle", "unpause", "Unpause all processes within one or more containers"),
    "rename": ("pyctr.commands.lifecycle", "rename", "Rename a container"),
    "update": ("pyctr.commands.lifecycle", "update", "Update configuration of one or more containers"),
    "commit": ("pyctr.commands.lifecycle", "commit", "Create a new image from a container's changes"),
    "export": ("pyctr.commands.lifecycle", "export", "Export a container's filesystem as a tar archive"),
    "import": ("pyctr.commands.lifecycle", "import_", "Import a tarball's contents as a filesystem image"),
    "diff": ("pyctr.commands.lifecycle", "diff", "Inspect changes to files or directories on a container's filesystem"),
    "container": ("pyctr.cli", "container_group", "Manage containers"),
    "attach": ("pyctr.commands.attach", "attach", "Attach to a running container's input and output"),
    # images
    "pull": ("pyctr.commands.image", "pull", "Download an image from a registry"),
    "push": ("pyctr.commands.image", "push", "Upload an image to a registry"),
    "images": ("pyctr.commands.image", "images", "List images"),
    "image": ("pyctr.commands.image", "image", "Manage images"),
    "rmi": ("pyctr.commands.image", "rmi", "Remove one or more images"),
    "tag": ("pyctr.commands.image", "tag", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"),
    "save": ("pyctr.commands.image", "save", "Save one or more images to a tar archive"),
    "load": ("pyctr.commands.image", "load", "Load an image from a tar archive or STDIN"),
    "history": ("pyctr.commands.image", "history", "Show the history of an image"),
    "login": ("pyctr.commands.image", "login", "Log in to a registry"),
    "logout": ("pyctr.commands.image", "logout", "Log out from a registry"),
    "build": ("pyctr.commands.build", "build", "Build an image from a Dockerfile"),
    "volume": ("pyctr.commands.volume", "volume", "Manage volumes"),
    "network": ("pyctr.commands.network", "network", "Manage networks"),
    # system
    "system": ("pyctr.commands.system", "system", "Manage pyctr (df, prune, check, info)"),
    "events": ("pyctr.commands.events", "events_command", "Get real time events from the server"),
    "info": ("pyctr.commands.system", "info", "Report the kernel features pyctr needs"),
    "doctor": ("pyctr.commands.system", "info", "Same as info"),
    "version": ("pyctr.commands.system", "version", "Show the pyctr version information"),
    # internal (hidden from help): the container monitor calls this when a container exits
    "_cleanup": ("pyctr.commands.container", "cleanup", "Record a container's exit and tear it down"),
    "_health": ("pyctr.commands.lifecycle", "health_probe", "Run one health probe of a container"),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported only when invoked."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module, attr, help_text = entry
        if module is None:
            return _not_built(cmd_name, help_text)
        import importlib

        try:
            command = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            return _not_built(cmd_name, help_text)
        if cmd_name != command.name:  # aliases such as doctor -> info
            command = click.Command(
                cmd_name, params=command.params, callback=command.callback,
                help=command.help, context_settings=command.context_settings,
            )
        from pyctr.commands.flags import docker_style

        return docker_style(command)  # `--rm=false` and the like, as Docker's flags take them

    def resolve_command(self, ctx: click.Context, args: list[str]):
        """An unknown command is docker-cli's `docker: 'x' is not a docker command.` (exit 1)."""
        if args and args[0] not in COMMANDS and not args[0].startswith("-"):
            raise UnknownCommand(args[0], ctx=ctx)
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context):
        """Tag a failure with its command: Docker's exit code and wording depend on it (errors.cli_exit_code)."""
        try:
            return super().invoke(ctx)
        except PyctrError as e:
            if getattr(e, "command", None) is None:
                e.command = ctx.invoked_subcommand
            raise
        except click.UsageError as e:
            if e.ctx is None or e.ctx is ctx:  # click's parser raises some without the subcommand's context
                e.command_path = " ".join(filter(None, [ctx.command_path, ctx.invoked_subcommand]))
            raise

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_text) for name, (_, _, help_text) in COMMANDS.items() if not name.startswith("_")]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


# `docker container X` is `docker X` (docker-cli registers the same commands twice), with ls/list for ps and
# the group's own prune.
CONTAINER_SUBCOMMANDS = {
    **{name: name for name in ("attach", "commit", "cp", "create", "diff", "exec", "export", "inspect", "kill", "logs",
                               "pause", "port", "rename", "restart", "rm", "run", "start", "stats", "stop", "top",
                               "unpause", "update", "wait")},
    "ls": "ps", "list": "ps",
}


class ContainerGroup(LazyGroup):
    """`pyctr container ...`: the top-level container commands under their docker-cli names, imported lazily."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*CONTAINER_SUBCOMMANDS, "prune"])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name == "prune":
            from pyctr.commands.lifecycle import container_prune

            return container_prune
        target = CONTAINER_SUBCOMMANDS.get(cmd_name)
        command = None if target is None else super().get_command(ctx, target)
        if command is not None and command.name != cmd_name:  # `container ls` is ps under its own name
            command = click.Command(cmd_name, params=command.params, callback=command.callback, help=command.help,
                                    context_settings=command.context_settings)
        if command is not None and cmd_name == "inspect":  # docker-cli's `container inspect` is --type container
            import copy

            command = copy.copy(command)
            command.params = [_defaulting(p, "kind", "container") for p in command.params]
        return command

    def resolve_command(self, ctx: click.Context, args: list[str]):
        if args and args[0] not in CONTAINER_SUBCOMMANDS and args[0] != "prune" and not args[0].startswith("-"):
            raise UnknownCommand(f"container {args[0]}", ctx=ctx)
        return click.Group.resolve_command(self, ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[CONTAINER_SUBCOMMANDS[name]][2]) for name in sorted(CONTAINER_SUBCOMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(sorted([*rows, ("prune", "Remove all stopped containers")]))


def _defaulting(param: click.Parameter, name: str, default: str) -> click.Parameter:
    if param.name != name:
        return param
    import copy

    changed = copy.copy(param)
    changed.default = default
    return changed


@click.group(name="container", cls=ContainerGroup)
def container_group() -> None:
    """Manage containers."""


class UnknownCommand(click.UsageError):
    """A command name pyctr does not have."""

    def __init__(self, name: str, ctx: click.Context | None = None) -> None:
        super().__init__(f"'{name}' is not a pyctr command.", ctx=ctx)
        self.name = name


def usage_error_report(error: click.UsageError) -> tuple[str, int]:
    """docker-cli's text and exit code for a command line it cannot parse.

    Flags (cli/cobra.go FlagErrorFunc): `unknown flag: --bogus` / `See 'docker run --help'.`, exit 125.
    Argument counts (cli/required.go): `"docker rm" requires at least 1 argument.`, the See line, the usage and
    the command's summary, exit 1. An unknown command (cmd/docker/docker.go): exit 1."""
    ctx = error.ctx
    path = getattr(error, "command_path", None) or (ctx.command_path if ctx is not None else "pyctr")
    see = f"See '{path} --help'."
    if isinstance(error, UnknownCommand):
        return f"pyctr: {error.format_message()}\nSee 'pyctr --help'", EXIT_CLI_FAILURE
    if error.message.startswith("No such command"):  # `pyctr image bogus`
        return f"{error.format_message()}\n{see}", EXIT_CLI_FAILURE
    if not getattr(error, "while_parsing", False) and ctx is not None:  # raised by the command itself
        command = ctx.info_name
        return f"Error: {error.format_message()}", EXIT_RUNTIME if command in KEEP_RUNTIME_CODE else EXIT_CLI_FAILURE
    counted = _argument_count_problem(error)
    if counted is not None and ctx is not None:
        usage = " ".join([path, *ctx.command.collect_usage_pieces(ctx)])
        summary = ctx.command.get_short_help_str(limit=200)
        return f'"{path}" {counted}.\n{see}\n\nUsage:  {usage}\n\n{summary}', EXIT_CLI_FAILURE
    return f"{_flag_problem(error)}\n{see}", EXIT_RUNTIME


def _flag_problem(error: click.UsageError) -> str:
    """pflag's words for a bad flag."""
    if isinstance(error, click.NoSuchOption):
        name = error.option_name
        if name.startswith("--"):
            return f"unknown flag: {name}"
        return f"unknown shorthand flag: '{name.lstrip('-')[:1]}' in {name}"
    if isinstance(error, click.BadOptionUsage) and "requires an argument" in error.message:
        name = error.option_name
        return f"flag needs an argument: {name}" if name.startswith("--") else \
            f"flag needs an argument: '{name.lstrip('-')}' in {name}"
    return error.format_message()


def _argument_count_problem(error: click.UsageError) -> str | None:
    """`requires at least 1 argument` and the like when the arguments (not flags) are too few or too many."""
    ctx = error.ctx
    too_few = isinstance(error, click.MissingParameter) and isinstance(error.param, click.Argument)
    too_many = type(error) is click.UsageError and "unexpected extra argument" in error.message
    if ctx is None or not (too_few or too_many):
        return None
    arguments = [p for p in ctx.command.params if isinstance(p, click.Argument)]
    least = sum(1 if p.nargs == -1 else p.nargs for p in arguments if p.required)
    most = None if any(p.nargs == -1 for p in arguments) else sum(p.nargs for p in arguments)
    if least == most:
        return f"requires exactly {least} argument{'s' * (least != 1)}"
    if too_few:
        return f"requires at least {least} argument{'s' * (least != 1)}"
    return f"requires at most {most} argument{'s' * (most != 1)}"


def _not_built(name: str, help_text: str) -> click.Command:
    def callback(args: tuple[str, ...]) -> None:
        from pyctr.errors import NotImplementedYet

        raise NotImplementedYet(f"'pyctr {name}' is not implemented yet")

    return click.Command(
        name,
        callback=callback,
        help=f"{help_text} (not implemented yet)",
        params=[click.Argument(["args"], nargs=-1, type=click.UNPROCESSED)],
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", envvar="PYCTR_ROOT", metavar="DIR",
              help="Where pyctr keeps its state (env PYCTR_ROOT, default /var/lib/pyctr).")
@click.option("--config", "config_file", envvar="PYCTR_CONFIG", metavar="FILE",
              help="TOML configuration file (env PYCTR_CONFIG, default /etc/pyctr/config.toml).")
@click.option("-D", "--debug", is_flag=True, help="Show tracebacks on errors.")
@click.version_option(__version__, "-v", "--version", prog_name="pyctr",
                      message="pyctr version %(version)s")
@click.pass_context
def cli(ctx: click.Context, root: str | None, config_file: str | None, debug: bool) -> None:
    """A container runtime with a Docker-compatible command line."""
    from pyctr.commands import AppContext

    ctx.obj = AppContext(root=root, config_file=config_file, debug=debug)


def warm_up() -> None:
    """Build every command's parser (and click's help option) once, in the warm server before it forks its
    workers: each command then starts with them built instead of spending a few ms on ~70 Option objects
    (`run`, `create`). Only parsers are built: nothing is parsed, no callback runs, nothing is read."""
    import contextlib

    root = click.Context(cli, info_name="pyctr", **cli.context_settings)  # as make_context makes it
    cli.make_parser(root)
    for name in COMMANDS:
        with contextlib.suppress(Exception):
            _warm_command(root, name)


def _warm_command(parent: click.Context, name: str) -> None:
    command = parent.command.get_command(parent, name)  # type: ignore[attr-defined]
    if command is None:
        return
    ctx = click.Context(command, info_name=name, parent=parent, **command.context_settings)
    command.make_parser(ctx)
    if isinstance(command, click.Group):
        for sub in command.list_commands(ctx):
            _warm_command(ctx, sub)


def _debug_requested(argv: list[str]) -> bool:
    return bool(os.environ.get("PYCTR_DEBUG")) or "--debug" in argv or "-D" in argv[:1]


def main(argv: list[str] | None = None, *, on_exit: Callable[[int], None] | None = None) -> None:
    """Run the CLI and turn every failure into one line and Docker's exit code.

    `on_exit` is called with the exit code once all output is flushed, just before the process leaves:
    the server's worker (pyctr/server.py) tells its client then, not after the interpreter's teardown."""
    as_program = argv is None
    argv = sys.argv[1:] if argv is None else argv
    try:
        code = cli.main(args=argv, prog_name="pyctr", standalone_mode=False)
    except click.exceptions.Exit as e:
        code = e.exit_code
    except SystemExit as e:
        # A command's sys.exit(code) (`run` returns the container's code so): leave as quickly as a return
        # does. Python's own exit would tear the interpreter down first, ~70 ms of `run --rm`.
        if not as_program or not isinstance(e.code, int | None):
            raise
        code = e.code
    except click.exceptions.Abort:
        click.echo("", err=True)
        code = 130
    except click.UsageError as e:
        text, code = usage_error_report(e)
        click.echo(text, err=True)
    except click.ClickException as e:
        click.echo(f"Error: {e.format_message()}", err=True)
        code = EXIT_RUNTIME
    except PyctrError as e:
        if _debug_requested(argv):
            raise
        command = getattr(e, "command", None)
        click.echo(cli_error_line(command, e), err=True)
        code = cli_exit_code(command, e)
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        # A closed pipe (`pyctr ps | head`) is not an error; keep Python quiet at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 141
    except Exception as e:  # noqa: BLE001 - the one place that keeps tracebacks from users
        if _debug_requested(argv):
            raise
        click.echo(f"Error: internal error: {type(e).__name__}: {e} (run with --debug for details)",
                   err=True)
        code = EXIT_RUNTIME
    code = code if isinstance(code, int) else 0
    if as_program:
        _exit_now(code, on_exit)
    sys.exit(code)


def _exit_now(code: int, on_exit: Callable[[int], None] | None = None) -> None:
    """Leave without interpreter teardown (tens of ms with click loaded): every command has finished its
    work and closed its files by now; only buffered output remains to flush."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        code = code or 141
    if on_exit is not None:
        on_exit(code)
    os._exit(code)
