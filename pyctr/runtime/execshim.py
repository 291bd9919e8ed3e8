"""The exec shim: the container's command is exec'd through a sealed copy of a tiny static program, never by the
host interpreter itself (CVE-2019-5736).

pyctr's container init and `pyctr exec`'s joiner are forked host Python processes. Were they to execve() the
container's command directly and that command be /proc/self/exe (as the command, through a symlink such as
/bin/sh -> /proc/self/exe, or a `#!/proc/self/exe` script), the kernel would resolve the magic link to the
HOST interpreter and start it inside the container, where code of the image (its dynamic loader) could keep a
descriptor to the host binary and write it once no process runs it. So their last step is execveat() of a
sealed memfd holding pyctr/runtime/shim/exec-shim (static, no libc, no loader: nothing of the image runs in it),
which execs the command. From then on /proc/self/exe of every process the container can reach is that memfd:
running it again just runs the shim (which refuses), and the seals refuse every write.

Deciding (pure): `shim_argv` (the shim's command line), `shim_failure` (its report, as the init's error).
Doing: `sealed_shim` (the memfd, once per process; missing shim = a clear error, never the unsafe path),
`exec_command` (the last step of the container process).
"""

from __future__ import annotations

import os

from pyctr.errors import PyctrError, RuntimeFailure

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (pyctr-runtime's cold start)
if TYPE_CHECKING:
    from typing import NoReturn

SHIM_MARK = "pyctr-exec-shim"  # the shim's argv[0]: anything else (the container running it) is refused
SHIM_PATH = os.path.join(os.path.dirname(__file__), "shim", "exec-shim")  # built by `make install`
MAX_SHIM_SIZE = 1 << 20
_sealed: list[int] = []  # this process's sealed copy: fd, st_dev, st_ino (CLOEXEC; a forked child inherits it)


# ------------------------------------------------------------------------------------------ deciding (pure)


def shim_argv(report_fd: int, executable: str, args: list[str]) -> list[str]:
    """The shim's argv: its mark, the report fd it makes close-on-exec, the path to exec, the command's argv."""
    return [SHIM_MARK, str(report_fd), executable, *args]


def shim_failure(report: dict, command: str) -> PyctrError | None:
    """What the shim reported (`E{"errno": N}`: its execve of the command failed) as the error the init would
    raise for that errno (127 for ENOENT, 126 otherwise, Docker's messages); None for any other report."""
    number = report.get("errno")
    if type(number) is not int or number <= 0:
        return None
    from pyctr.runtime.process.sequence import exec_error

    return exec_error(command, OSError(number, os.strerror(number)))


# ------------------------------------------------------------------------------------------ doing


def sealed_shim() -> int:
    """A sealed, close-on-exec memfd copy of the shim, made once per process. Raises RuntimeFailure when the
    shim is missing: a container never starts the unsafe way."""
    if _sealed and not _still_ours(*_sealed):
        _sealed.clear()  # a forked child that closed its inherited fds (the API daemon's start and exec children)
    if not _sealed:
        fd = load_sealed_copy(SHIM_PATH)
        st = os.fstat(fd)
        _sealed.extend((fd, st.st_dev, st.st_ino))
    return _sealed[0]


def _still_ours(fd: int, dev: int, ino: int) -> bool:
    """The cached fd still is the memfd made here (not closed, not reused for another file)."""
    try:
        st = os.fstat(fd)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


def load_sealed_copy(path: str) -> int:
    """Copy `path` into a memfd and seal it against every change (write, shrink, grow, and further seals)."""
    import fcntl

    try:
        with open(path, "rb") as file:
            code = file.read(MAX_SHIM_SIZE + 1)
    except OSError as e:
        raise RuntimeFailure(f"pyctr's exec shim {path} cannot be read ({e.strerror}): run `make install` "
                             "to build it") from None
    if not code.startswith(b"\x7fELF") or len(code) > MAX_SHIM_SIZE:
        raise RuntimeFailure(f"pyctr's exec shim {path} is not a program: run `make install` to rebuild it")
    fd = os.memfd_create(SHIM_MARK, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        os.write(fd, code)  # one write: a memfd takes it whole
        os.fchmod(fd, 0o555)
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS,
                    fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL)
    except BaseException:
        os.close(fd)
        raise
    return fd


def exec_command(shim_fd: int, report_fd: int, executable: str, args: list[str], env: dict[str, str]) -> NoReturn:
    """The container process's last step: exec the shim from its sealed fd (execveat AT_EMPTY_PATH) with the
    report pipe left open for it; the shim execs `executable`. Raises OSError if the shim cannot start."""
    from pyctr.runtime.syscalls import execveat_fd

    os.set_inheritable(report_fd, True)  # the shim makes it close-on-exec again before exec'ing the command
    try:
        execveat_fd(shim_fd, shim_argv(report_fd, executable, args), env)
    except OSError:
        os.set_inheritable(report_fd, False)
        raise
