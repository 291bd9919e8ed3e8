"""Commands build their parser once (commands/flags.py) and the warm server builds them all before it forks
(cli.warm_up): a reused parser must parse each command line afresh and report errors against its own context."""

from __future__ import annotations

import click
import pytest

from pyctr.cli import COMMANDS, cli, usage_error_report, warm_up


def _context(name: str, args: list[str]) -> click.Context:
    root = click.Context(cli, info_name="pyctr", **cli.context_settings)
    command = cli.get_command(root, name)
    return command.make_context(name, list(args), parent=root)


def test_a_reused_parser_keeps_nothing_of_the_previous_command_line():
    first = _context("ps", ["-a", "--format", "{{.ID}}"])
    second = _context("ps", [])
    assert first.params["show_all"] is True and first.params["fmt"] == "{{.ID}}"
    assert second.params["show_all"] is False and second.params["fmt"] is None
    command = second.command
    assert command.make_parser(second) is command.make_parser(first)  # built once
    assert command.make_parser(first).ctx is first  # and pointed at the context that parses


def test_errors_of_a_reused_parser_name_the_current_command():
    _context("create", ["--network", "none", "busybox"])
    with pytest.raises(click.UsageError) as caught:
        _context("create", ["--bogus", "busybox"])
    text, code = usage_error_report(caught.value)
    assert (text, code) == ("unknown flag: --bogus\nSee 'pyctr create --help'.", 125)


def test_docker_bool_forms_still_parse_with_a_reused_parser():
    _context("rm", ["-f", "x"])
    assert _context("rm", ["-f=false", "x"]).params["force"] is False
    assert _context("rm", ["--force=true", "x"]).params["force"] is True


def test_warm_up_builds_every_command_and_keeps_help_names():
    warm_up()
    root = click.Context(cli, info_name="pyctr", **cli.context_settings)
    for name in ("run", "create", "exec", "ps"):
        command = cli.get_command(root, name)
        assert "_docker_parser" in command.__dict__, name
    assert set(COMMANDS) >= {"run", "create", "exec"}
    help_names = cli.get_command(root, "ps").get_help_option(root).opts
    assert help_names == ["-h", "--help"]
