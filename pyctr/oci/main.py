"""pyctr-runtime's entry point: parse runc's command line, run the verb, report errors as runc does.

runc logs through logrus: without --log an error goes to stderr as a logrus text line; with --log it goes to
that file (text, or JSON lines {"level","msg","time"} with --log-format json, which containerd's shim reads
back for the message it shows) and the bare message to stderr as well. Every error exits 1.
"""

from __future__ import annotations

import os
import sys
import time

from pyctr.oci import jsonlite

VERSION = "0.1.0"
_log_target: dict[str, object] = {"path": "", "format": "text", "debug": False}


def _timestamp() -> str:
    seconds = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds % 1 * 1e9):09d}Z"


def format_log_line(level: str, message: str, fmt: str, when: str) -> str:
    """One log line in logrus's text or JSON formatter. Pure."""
    if fmt == "json":
        return jsonlite.dumps({"level": level, "msg": message, "time": when}, separators=(",", ":")) + "\n"
    return f"time=\"{when}\" level={level} msg={jsonlite.dumps(message)}\n"


def log(level: str, message: str) -> None:
    """Write one log entry where --log says (stderr when no file)."""
    if level == "debug" and not _log_target["debug"]:
        return
    line = format_log_line(level, message, str(_log_target["format"]), _timestamp())
    path = str(_log_target["path"])
    if path:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError:
            fd = -1
        if fd >= 0:
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)
            return
    try:
        sys.stderr.write(line)
        sys.stderr.flush()
    except OSError:
        pass


def fail(message: str) -> int:
    log("error", message)
    if _log_target["path"]:
        sys.stderr.write(message + "\n")
    return 1


_NEEDS_SITE = {"create", "run", "exec", "features", "update"}


def _enable_site() -> None:
    """The launcher starts Python with -I -S (fast `state`, `kill`, `delete`); the container's launch needs
    the virtualenv's packages (python-prctl, pyseccomp). They are plain modules in its site-packages, so that
    directory goes on sys.path as is: site.main() would also read every .pth file, a few ms of each create."""
    if not sys.flags.no_site:
        return
    venv = os.path.dirname(os.path.dirname(sys.executable))
    packages = os.path.join(venv, "lib", f"python{sys.version_info[0]}.{sys.version_info[1]}", "site-packages")
    if os.path.isfile(os.path.join(venv, "pyvenv.cfg")) and os.path.isdir(packages):
        if packages not in sys.path:
            sys.path.append(packages)
        return
    import site

    site.main()


USAGE = """NAME:
   pyctr-runtime - an OCI runtime with runc's command line

USAGE:
   pyctr-runtime [global options] command [command options] [arguments...]

COMMANDS:
   create, start, run, state, kill, delete, list, ps, exec, pause, resume, update, spec, features

GLOBAL OPTIONS:
   --debug, --log value, --log-format value (text|json), --root value (default: /run/pyctr-runtime),
   --systemd-cgroup (not supported), --version, --help
"""


def run(argv: list[str]) -> int:
    from pyctr.oci import cli

    try:
        inv = cli.parse(argv)
    except cli.CliError as e:
        return fail(str(e))
    _log_target.update(path=str(inv.globals["log"] or ""), format=str(inv.globals["log_format"] or "text"),
                       debug=bool(inv.globals["debug"]))
    if _log_target["format"] not in ("text", "json"):
        return fail(f"invalid log-format: {_log_target['format']}")
    if inv.globals["version"]:
        print(f"pyctr-runtime version {VERSION}\nspec: 1.0.2\npython: {sys.version.split()[0]}")
        return 0
    if not inv.command:
        sys.stdout.write(USAGE)
        return 0
    if inv.globals["systemd_cgroup"] and inv.command in ("create", "run"):
        return fail("systemd cgroup manager is not supported by pyctr-runtime: use cgroupfs")
    if inv.command in _NEEDS_SITE:
        _enable_site()
    return dispatch(inv)


def dispatch(inv) -> int:
    from pyctr.oci import commands
    from pyctr.oci.cli import CliError
    from pyctr.oci.errors import ConfigError, LaunchError
    from pyctr.oci.state import StateError

    verbs = {"create": lambda i, r: (commands.create(i, r), 0)[1], "start": commands.start, "state": commands.state,
             "kill": commands.kill, "delete": commands.delete, "run": commands.run, "list": commands.list_,
             "ps": commands.ps, "pause": commands.pause, "resume": commands.resume, "update": commands.update,
             "spec": commands.spec, "features": commands.features, "exec": commands.exec_}
    root = os.path.abspath(str(inv.globals["root"]))
    log("debug", f"{inv.command} {inv.args}")
    try:
        return verbs[inv.command](inv, root)
    except (CliError, ConfigError, StateError, LaunchError) as e:
        return fail(str(e))
    except OSError as e:
        return fail(f"{e.strerror or e}" + (f": {e.filename}" if e.filename else ""))
    except Exception as e:
        from pyctr.errors import PyctrError

        if not isinstance(e, PyctrError):
            raise
        return fail(str(e))


def main() -> None:
    """Run, flush, and leave without the interpreter's teardown (freeing every module one by one costs a
    cold-started verb several milliseconds, and nothing here needs it: files are closed, state is written)."""
    import gc

    gc.disable()  # a verb lives milliseconds (or waits on its container): collections during imports are waste
    code = run(sys.argv[1:])
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


if __name__ == "__main__":
    main()
