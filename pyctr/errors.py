"""One exception tree, mapped to Docker's exit codes.

Docker's CLI exits 125 when the daemon or runtime fails (bad flags, unknown
image, name conflicts), 126 when the container's command cannot be invoked and
127 when it is not found; otherwise it exits with the container's own code.
Every error pyctr raises on purpose is a PyctrError, so the CLI can print it
as one line and exit with its code instead of a traceback.
"""

from __future__ import annotations

EXIT_RUNTIME = 125
EXIT_CANNOT_INVOKE = 126
EXIT_NOT_FOUND = 127


class PyctrError(Exception):
    """Base of every error meant for the user: one line, one exit code."""

    exit_code: int = EXIT_RUNTIME
    daemon_side: bool = True  # Docker's daemon would have refused it (its CLI prefixes `Error response from daemon: `)

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        return str(self)


class UsageError(PyctrError):
    """Bad flags or argument values (Docker: 125)."""


class ClientError(PyctrError):
    """Refused by the command line itself before anything else is asked (docker-cli prints these as they are,
    e.g. `the input device is not a TTY`)."""

    daemon_side = False


class ConfigError(PyctrError):
    """The configuration file is unreadable or has a bad key."""


class NotFoundError(PyctrError):
    """An image, container, volume or file that does not exist."""


class ConflictError(PyctrError):
    """A name in use, an image in use by a container, a container running."""


class NotImplementedYet(PyctrError):
    """A command that is part of the CLI but is not built yet."""


class InvalidReference(PyctrError):
    """An image reference that Docker would also refuse."""


class RegistryError(PyctrError):
    """A registry refused, failed or served something wrong."""


class DigestMismatch(RegistryError):
    """Downloaded content does not match its digest: never stored."""


class StoreError(PyctrError):
    """The content store or container state is inconsistent."""


class UnsafeArchiveError(PyctrError):
    """A layer tar tried to write outside its directory or is malformed."""


class RuntimeFailure(PyctrError):
    """Setting up the container (namespaces, mounts, cgroups) failed."""


class CommandNotFound(PyctrError):
    """The container's command does not exist (Docker: 127)."""

    exit_code = EXIT_NOT_FOUND


class CommandCannotRun(PyctrError):
    """The container's command exists but cannot be executed (Docker: 126)."""

    exit_code = EXIT_CANNOT_INVOKE


class BuildError(PyctrError):
    """A Dockerfile is invalid or a build step failed."""


class DockerfileSyntaxError(BuildError):
    """A Dockerfile parse error; the message names file and line."""


# ------------------------------------------------------------------ how Docker's CLI reports an error

EXIT_CLI_FAILURE = 1  # docker-cli's main: any error that is not a cli.StatusError
DAEMON_PREFIX = "Error response from daemon: "

# Commands whose exit code is their own failure code (125 for pyctr/Docker itself): docker-cli's run and create
# return cli.StatusError{StatusCode: 125}; every other command returns a plain error, so main exits 1.
KEEP_RUNTIME_CODE = frozenset({"run", "create"})

# Docker's API client answers a 404 from these calls with its own `Error: No such <object>: <id>`
# (client/errors.go wrapResponseError: ContainerRemove, ContainerLogs, ContainerInspect, CopyFromContainer and
# ContainerStatPath, ImageRemove, ImageInspect); the other calls pass the daemon's text on after
# `Error response from daemon: ` (client/request.go checkResponseErr).
NOT_FOUND_WORDED_BY_CLIENT = frozenset({"rm", "logs", "inspect", "port", "cp", "rmi"})


def cli_exit_code(command: str | None, error: PyctrError) -> int:
    """Docker's exit code for `error` raised by `command` (moby v20.10, cmd/docker/docker.go main).

    run/create keep theirs (125, or 126/127 when the command cannot start); exec's process that cannot start is
    126 (inspected from the exec); a bad configuration is 125 everywhere (README); all else is 1."""
    if command in KEEP_RUNTIME_CODE or isinstance(error, ConfigError):
        return error.exit_code
    if command == "exec" and error.exit_code in (EXIT_CANNOT_INVOKE, EXIT_NOT_FOUND):
        return error.exit_code
    if isinstance(error, ClientError) and error.exit_code != PyctrError.exit_code:
        return error.exit_code  # docker-cli's StatusError: e.g. inspect's template that does not parse is 64
    return EXIT_CLI_FAILURE


def cli_error_line(command: str | None, error: PyctrError) -> str:
    """What docker-cli prints for `error`: `Error response from daemon: ...` for what dockerd refused,
    `Error: No such container: x` where Docker's client words a 404 itself, `Error: ...` for the client's
    own checks (bad values, a bad configuration), a ClientError as it is. run and create wrap theirs as
    docker-cli's reportError does: `docker: <error>.` and, unless the container's command could not start,
    `See 'docker run --help'.`"""
    line = _worded(command, error)
    if command not in KEEP_RUNTIME_CODE or isinstance(error, ClientError):
        return line
    line = f"pyctr: {line.removeprefix('Error: ').rstrip('.')}."
    if isinstance(error, CommandNotFound | CommandCannotRun | RuntimeFailure):
        return line  # run.go: a failed start is reported without the help line
    return f"{line}\nSee 'pyctr {command} --help'."


def _worded(command: str | None, error: PyctrError) -> str:
    message = error.message
    if isinstance(error, ClientError | InvalidReference) or message.startswith((DAEMON_PREFIX, "Error: ")):
        return message  # docker-cli parses references itself and prints its error as it is
    if command == "build" and isinstance(error, BuildError) and not isinstance(error, DockerfileSyntaxError):
        return message  # a failed step arrives in the build's JSON stream (errorDetail), printed as it is
    if isinstance(error, UsageError | ConfigError) or not error.daemon_side:
        return f"Error: {message}"
    if isinstance(error, NotFoundError) and message.startswith("No such ") and command in NOT_FOUND_WORDED_BY_CLIENT:
        return f"Error: {message}"
    return DAEMON_PREFIX + message
