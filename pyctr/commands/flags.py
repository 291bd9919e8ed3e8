"""Docker's boolean flags for every click command: `--tty=false`, `--rm=true`, `-d=0` as pflag takes them.

pflag's bool flags take an optional value attached with `=` (never the next word: `run -t busybox` keeps
`busybox` as the image), parsed by Go's strconv.ParseBool. click's flags refuse any value, so this is the one
place that teaches click that form: `docker_style(command)` gives a command (and a group's subcommands) a parser
that reads `--flag=VALUE` / `-f=VALUE` for every plain boolean flag. The CLI's command table applies it to every
command it loads (pyctr/cli.py), so a new boolean flag needs nothing more than `is_flag=True`.
"""

from __future__ import annotations

import click
import click.parser

# click 8.2 made the parser private (the old name stays as a deprecated alias); 8.1 has only the public name.
_OptionParser = getattr(click.parser, "_OptionParser", None) or click.parser.OptionParser

GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def parse_go_bool(text: str, flag: str) -> bool:
    """Go's strconv.ParseBool, with pflag's error text for a bad value."""
    if text in GO_TRUE:
        return True
    if text in GO_FALSE:
        return False
    raise click.UsageError(
        f'invalid argument "{text}" for "{flag}" flag: strconv.ParseBool: parsing "{text}": invalid syntax')


def is_docker_bool(option: object) -> bool:
    """A plain on-switch (`is_flag=True`, no `--x/--no-x` pair): the flags Docker spells as bools."""
    return (isinstance(option, click.Option) and option.is_flag and option.is_bool_flag
            and not option.secondary_opts and option.default is not True)


class DockerFlagParser(_OptionParser):
    """click's parser, plus `--flag=VALUE` and `-f=VALUE` for boolean flags."""

    def _process_opts(self, arg: str, state) -> None:
        name, has_value, text = arg.partition("=")
        option = (self._long_opt.get(name) or self._short_opt.get(name)) if has_value else None
        if option is not None and is_docker_bool(option.obj):
            label = ", ".join(sorted(option.obj.opts, key=len))  # pflag names a flag "-a, --all"
            state.opts[option.dest] = parse_go_bool(text, label)
            state.order.append(option.obj)
            return
        super()._process_opts(arg, state)


class _DockerFlags:
    """Mixed into a loaded command's class: its parser is DockerFlagParser; a group passes that on."""

    def make_parser(self, ctx: click.Context):
        """Built once per command, then reused with the new context: a parser holds no state of a parse (click
        keeps that in a per-call state object), and building one is ~70 Option objects for `run`/`create`,
        a few ms of every command. The warm server builds them before it forks (cli.warm_up)."""
        parser = self.__dict__.get("_docker_parser")
        if parser is None or parser.ctx.command is not ctx.command:
            parser = super().make_parser(ctx)  # type: ignore[misc]
            parser.__class__ = DockerFlagParser
            self._docker_parser = parser
        parser.ctx = ctx
        parser.allow_interspersed_args = ctx.allow_interspersed_args
        parser.ignore_unknown_options = ctx.ignore_unknown_options
        return parser

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Mark what fails here as a command-line error (pflag's 125); the same click errors raised later by the
        command itself are its own failures (cli.usage_error_report)."""
        try:
            return super().parse_args(ctx, args)  # type: ignore[misc]
        except click.UsageError as e:
            e.while_parsing = True  # type: ignore[attr-defined]
            raise



class _DockerGroupFlags(_DockerFlags):
    """A group's subcommands take Docker's flag forms too."""

    def get_command(self, ctx: click.Context, name: str):
        command = super().get_command(ctx, name)  # type: ignore[misc]
        return docker_style(command) if command is not None else None


_styled: dict[type, type] = {}


def docker_style(command: click.Command) -> click.Command:
    """`command` (in place), taking Docker's boolean flag forms from now on."""
    cls = type(command)
    if issubclass(cls, _DockerFlags):
        return command
    if cls not in _styled:
        mixin = _DockerGroupFlags if issubclass(cls, click.Group) else _DockerFlags
        _styled[cls] = type(f"Docker{cls.__name__}", (mixin, cls), {})
    command.__class__ = _styled[cls]
    return command


def unknown_flag(name: str, ctx: click.Context | None = None) -> click.NoSuchOption:
    """`unknown flag: --x` for a command that passes unknown options through (top) and found one too early."""
    error = click.NoSuchOption(name, ctx=ctx)
    error.while_parsing = True  # type: ignore[attr-defined]
    return error
