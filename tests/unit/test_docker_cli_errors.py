"""How docker-cli (v20.10) reports errors and takes boolean flags, recorded from its source.

- cmd/docker/docker.go main: a cli.StatusError exits with its code; any other error is printed as is, exit 1.
- cli/command/container/run.go, create.go: cli.StatusError{StatusCode: 125} for their own failures.
- moby client/errors.go wrapResponseError: ContainerRemove, ContainerLogs, ContainerInspect, CopyFromContainer,
  ImageRemove, ImageInspect turn a 404 into `Error: No such <object>: <id>`; every other call gives
  `Error response from daemon: <message>` (client/request.go checkResponseErr).
- pflag bool flags: `--tty=false`, `-t=0`, parsed by strconv.ParseBool; `--tty false` is not a value.
"""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from pyctr.commands.flags import docker_style, parse_go_bool
from pyctr.errors import (
    BuildError,
    ClientError,
    CommandNotFound,
    ConfigError,
    ConflictError,
    NotFoundError,
    RegistryError,
    RuntimeFailure,
    UsageError,
    cli_error_line,
    cli_exit_code,
)

MISSING = NotFoundError("No such container: x")


@pytest.mark.parametrize(("command", "error", "code"), [
    ("run", RuntimeFailure("cannot mount"), 125),
    ("run", CommandNotFound('exec: "x": executable file not found in $PATH'), 127),
    ("create", NotFoundError("No such image: x"), 125),
    ("rm", MISSING, 1), ("stop", MISSING, 1), ("kill", MISSING, 1), ("restart", MISSING, 1),
    ("logs", MISSING, 1), ("inspect", MISSING, 1), ("top", MISSING, 1), ("port", MISSING, 1),
    ("wait", MISSING, 1), ("cp", MISSING, 1), ("start", RuntimeFailure("x"), 1),
    ("exec", ConflictError("Container x is not running"), 1),
    ("exec", CommandNotFound("OCI runtime exec failed"), 127),
    ("build", BuildError("The command '/bin/sh -c exit 3' returned a non-zero code: 3"), 1),
    ("pull", RegistryError("manifest unknown"), 1), ("history", NotFoundError("No such image: x"), 1),
    ("ps", UsageError("Invalid filter 'bogus'"), 1),
    ("ps", ConfigError("config file f: key 'x'"), 125),  # pyctr's own: a bad config file (README)
])
def test_exit_code_per_command(command, error, code):
    assert cli_exit_code(command, error) == code


@pytest.mark.parametrize(("command", "error", "line"), [
    ("rm", MISSING, "Error: No such container: x"),
    ("logs", MISSING, "Error: No such container: x"),
    ("inspect", MISSING, "Error: No such container: x"),
    ("stop", MISSING, "Error response from daemon: No such container: x"),
    ("kill", MISSING, "Error response from daemon: No such container: x"),
    ("start", MISSING, "Error response from daemon: No such container: x"),
    ("exec", MISSING, "Error response from daemon: No such container: x"),
    ("rm", ConflictError("You cannot remove a running container"),
     "Error response from daemon: You cannot remove a running container"),
    ("history", NotFoundError("No such image: x"), "Error response from daemon: No such image: x"),
    ("rmi", NotFoundError("No such image: x"), "Error: No such image: x"),
    ("ps", UsageError("bad value"), "Error: bad value"),
    ("exec", ConflictError("Error response from daemon: Container c is not running"),
     "Error response from daemon: Container c is not running"),  # never twice
])
def test_error_line_per_command(command, error, line):
    assert cli_error_line(command, error) == line


@pytest.mark.parametrize(("text", "value"), [
    ("1", True), ("t", True), ("T", True), ("TRUE", True), ("true", True), ("True", True),
    ("0", False), ("f", False), ("F", False), ("FALSE", False), ("false", False), ("False", False),
])
def test_go_parse_bool(text, value):
    assert parse_go_bool(text, "--tty") is value


@pytest.mark.parametrize("text", ["yes", "no", "tRUE", "", "2"])
def test_go_parse_bool_refuses_what_go_refuses(text):
    with pytest.raises(click.UsageError, match=f'invalid argument "{text}" for "--tty" flag: strconv.ParseBool'):
        parse_go_bool(text, "--tty")


@click.command(context_settings={"allow_interspersed_args": False})
@click.option("-t", "--tty", is_flag=True)
@click.option("--rm", is_flag=True)
@click.option("-e", "--env", multiple=True)
@click.argument("image")
@click.argument("command", nargs=-1)
def probe(tty: bool, rm: bool, env: tuple[str, ...], image: str, command: tuple[str, ...]) -> None:
    click.echo(f"tty={tty} rm={rm} env={list(env)} image={image} command={list(command)}")


docker_style(probe)


@pytest.mark.parametrize(("args", "seen"), [
    (["-t", "img"], "tty=True rm=False env=[] image=img command=[]"),
    (["--tty=false", "img"], "tty=False rm=False env=[] image=img command=[]"),
    (["--tty", "--tty=false", "img"], "tty=False rm=False env=[] image=img command=[]"),  # the last one wins
    (["--rm=false", "--rm=true", "img"], "tty=False rm=True env=[] image=img command=[]"),
    (["-t=0", "img"], "tty=False rm=False env=[] image=img command=[]"),
    (["-t", "false"], "tty=True rm=False env=[] image=false command=[]"),  # a bool never takes the next word
    (["-e", "--tty=false", "img"], "tty=False rm=False env=['--tty=false'] image=img command=[]"),
    (["img", "sh", "--rm=false"], "tty=False rm=False env=[] image=img command=['sh', '--rm=false']"),
])
def test_docker_bool_forms(args, seen):
    result = CliRunner().invoke(probe, args)
    assert result.output.strip() == seen, result.output


def test_a_bad_bool_value_is_refused():
    result = CliRunner().invoke(probe, ["--tty=maybe", "img"])
    assert result.exit_code != 0 and 'invalid argument "maybe" for "-t, --tty" flag' in result.output


@pytest.mark.parametrize(("command", "error", "text"), [
    # run.go / create.go reportError: `docker: <error>.` plus the help line, except for a failed start
    ("run", NotFoundError("No such image: x"),
     "pyctr: Error response from daemon: No such image: x.\nSee 'pyctr run --help'."),
    ("create", ConflictError('Conflict. The container name "/a" is already in use'),
     "pyctr: Error response from daemon: Conflict. The container name \"/a\" is already in use.\n"
     "See 'pyctr create --help'."),
    ("run", UsageError("invalid publish opts format"), "pyctr: invalid publish opts format.\nSee 'pyctr run --help'."),
    ("run", CommandNotFound('exec: "x": executable file not found in $PATH'),
     'pyctr: Error response from daemon: exec: "x": executable file not found in $PATH.'),
    ("run", ClientError("the input device is not a TTY", exit_code=1), "the input device is not a TTY"),
    ("exec", ClientError("the input device is not a TTY", exit_code=1), "the input device is not a TTY"),
])
def test_run_and_create_wrap_as_docker_cli_report_error(command, error, text):
    assert cli_error_line(command, error) == text


def test_a_bad_reference_is_the_clients_own_words():
    """docker-cli parses references itself: `invalid reference format: repository name must be lowercase`."""
    from pyctr.errors import InvalidReference

    error = InvalidReference("invalid reference format: repository name must be lowercase")
    assert cli_error_line("pull", error) == "invalid reference format: repository name must be lowercase"
    assert cli_error_line("run", error) == ("pyctr: invalid reference format: repository name must be lowercase.\n"
                                            "See 'pyctr run --help'.")
