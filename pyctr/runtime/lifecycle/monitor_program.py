"""Which interpreter and program a detached container's monitor (runtime/monitor.py) runs, and how it
calls back into pyctr when the container exits."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyctr.config import Config


MONITOR_SCRIPT = Path(__file__).parent.parent / "monitor.py"


def monitor_program(config: Config) -> tuple[str, str]:
    """(interpreter, program): the monitor compiled to a .pyc under the root's tmp/ (running the .py would
    compile it: +0.4 MiB each), for the lightest interpreter of this Python version that can run it.

    Named after the source's size and mtime and the interpreter, so an updated pyctr never runs a stale
    monitor; falls back to the source if compiling fails.
    """
    light = lighter_interpreter()
    for interpreter in ([light] if light else []) + [sys.executable]:
        try:
            return interpreter, _compiled_monitor(config, interpreter)
        except Exception:  # noqa: BLE001 - whatever went wrong, the next choice (last: the source) works too
            continue
    return sys.executable, str(MONITOR_SCRIPT)


def lighter_interpreter() -> str | None:
    """The distribution's own python3.X when pyctr runs on another build of the same version.

    The monitor is stdlib-only and idles for the container's lifetime, so what counts is the interpreter's
    own private memory: Debian's python3.11 (libpython linked in) idles at ~2.2 MiB private, a shared-libpython
    build such as pyenv's at ~2.5 MiB (its relocated data pages are private to each process)."""
    candidate = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    if not os.access(candidate, os.X_OK) or os.path.realpath(candidate) == os.path.realpath(sys.executable):
        return None
    return candidate


_COMPILE = "import py_compile, sys; py_compile.compile(sys.argv[1], cfile=sys.argv[2], doraise=True)"


def _compiled_monitor(config: Config, interpreter: str) -> str:
    """The monitor's .pyc for `interpreter`, compiled by that interpreter itself (so it surely runs it)."""
    import zlib

    src = MONITOR_SCRIPT.stat()
    key = zlib.crc32(os.path.realpath(interpreter).encode())
    target = config.paths.tmp / f"monitor-{sys.implementation.cache_tag}-{key:08x}-{src.st_size}-{src.st_mtime_ns}.pyc"
    if not target.exists():
        config.paths.tmp.mkdir(mode=0o700, parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}")
        if interpreter == sys.executable:
            import py_compile

            py_compile.compile(str(MONITOR_SCRIPT), cfile=str(partial), doraise=True)
        else:
            import subprocess

            subprocess.run([interpreter, "-I", "-S", "-c", _COMPILE, str(MONITOR_SCRIPT), str(partial)],
                           check=True, timeout=30, stdin=subprocess.DEVNULL, capture_output=True)
        os.rename(partial, target)
    return str(target)


def cleanup_command(config: Config, container_id: str) -> list[str]:
    """How the monitor calls back into pyctr when the container exits: through the `pyctr` client, so that the
    warm server records the exit in a few ms (in-process, imports alone take ~150 ms), else in-process."""
    argv = [sys.executable, "-m", "pyctr.client", "--root", str(config.root)]
    if config.config_file is not None and Path(config.config_file).exists():
        argv += ["--config", str(config.config_file)]
    return argv + ["_cleanup", container_id]
