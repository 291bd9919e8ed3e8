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

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        return str(self)


class UsageError(PyctrError):
    """Bad flags or argument values (Docker: 125)."""


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
