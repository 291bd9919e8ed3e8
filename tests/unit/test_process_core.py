"""The process core's shared mechanisms (pyctr/runtime/process/): exit status, report pipe, liveness, signals."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from pyctr.errors import CommandCannotRun, CommandNotFound, RuntimeFailure
from pyctr.protocol import FORWARDED_SIGNALS
from pyctr.runtime import monitor
from pyctr.runtime.process import liveness, reap, report
from pyctr.runtime.process.signals import SignalForwarder

# Every wait status waitpid(pid, 0) can return: exited with 0..255, killed by 1..64 with or without a core.
EXIT_STATUSES = [code << 8 for code in range(256)]
SIGNAL_STATUSES = [number | core for number in range(1, 65) for core in (0, 0x80)]


@pytest.mark.parametrize("status", EXIT_STATUSES + SIGNAL_STATUSES)
def test_the_monitor_copy_of_the_exit_code_agrees_with_the_process_core(status):
    """monitor.py must not import pyctr, so it keeps its own copy: it may never drift from reap.exit_code."""
    assert monitor.exit_code_of(status) == reap.exit_code(status)


def test_exit_codes_are_dockers_for_real_children():
    exited = subprocess.Popen(["sh", "-c", "exit 7"])
    killed = subprocess.Popen(["sleep", "30"])
    killed.send_signal(signal.SIGTERM)
    assert reap.wait_exit_code(exited.pid) == 7
    assert reap.wait_exit_code(killed.pid) == 128 + signal.SIGTERM
    assert reap.wait_exit_code(exited.pid) == reap.EXIT_UNKNOWN  # reaped already: no longer our child
    exited.returncode = killed.returncode = 0  # reaped here: keep Popen from waiting again


@pytest.mark.parametrize("error", [CommandNotFound("exec: \"x\": not found"), CommandCannotRun("no"),
                                   RuntimeFailure("mount failed")])
def test_a_reported_failure_decodes_to_the_same_error(error):
    read_end, write_end = os.pipe()
    code = report.report_exception(write_end, error, "container init")
    os.close(write_end)
    decoded = report.decode_failure(report.read_to_end(read_end), "x")
    os.close(read_end)
    assert type(decoded) is type(error) and decoded.message == error.message and code == error.exit_code


def test_report_of_an_unexpected_exception_an_os_error_and_silence():
    read_end, write_end = os.pipe()
    assert report.report_exception(write_end, FileNotFoundError(2, "No such file", "/x"), "init") == 125
    os.close(write_end)
    decoded = report.decode_failure(report.read_to_end(read_end))
    assert isinstance(decoded, RuntimeFailure) and decoded.message == "No such file: /x"
    assert report.decode_failure(b"") is None  # exec'd: the CLOEXEC pipe closed empty
    died = report.decode_failure(b"\x00garbage", who="the exec'd process")
    assert isinstance(died, RuntimeFailure) and "the exec'd process exited before exec" in died.message


def test_the_exec_shims_errno_is_the_error_execve_of_the_command_means():
    assert isinstance(report.decode_failure(b'E{"errno": 2}', "cmd"), CommandNotFound)
    assert isinstance(report.decode_failure(b'E{"errno": 13}', "cmd"), CommandCannotRun)


def test_a_zombie_is_still_the_process_we_started_but_no_longer_running():
    child = os.fork()
    if child == 0:  # pragma: no cover
        os._exit(0)
    deadline = time.monotonic() + 5
    while liveness.running_start_time(child) is not None and time.monotonic() < deadline:
        time.sleep(0.005)
    started = liveness.start_time(child)
    assert started is not None and liveness.running_start_time(child) is None  # a zombie now
    assert not liveness.is_running(child, started) and liveness.open_pidfd(child, started) is None
    os.waitpid(child, 0)
    assert liveness.start_time(child) is None


def test_a_pidfd_is_given_only_for_the_same_process():
    me = os.getpid()
    started = liveness.running_start_time(me)
    pidfd = liveness.open_pidfd(me, started)
    assert pidfd is not None
    os.close(pidfd)
    assert liveness.open_pidfd(me, started + 1) is None  # same pid, another start: a reused pid
    assert liveness.is_running(me, started) and not liveness.is_running(0, started)


def test_the_forwarder_relays_what_this_process_receives_and_restores_the_handlers():
    child = subprocess.Popen(["sleep", "30"])
    before = signal.getsignal(signal.SIGUSR2)
    with SignalForwarder(child.pid):
        os.kill(os.getpid(), signal.SIGUSR2)  # the handler runs before kill() returns (this thread)
        code = reap.wait_exit_code(child.pid)
    child.returncode = code
    assert code == 128 + signal.SIGUSR2 and signal.getsignal(signal.SIGUSR2) == before


def test_every_relay_uses_the_one_signal_list():
    """The foreground run, exec and the client relay the same signals (Docker's sig-proxy forwards all but a
    few the CLI handles itself): the list lives in protocol.py and nowhere else."""
    import pathlib

    import pyctr

    package = pathlib.Path(pyctr.__file__).parent
    owners = [str(path.relative_to(package)) for path in package.rglob("*.py")
              if "FORWARDED_SIGNALS = " in path.read_text()]
    assert owners == ["protocol.py"]
    assert {signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT} <= set(FORWARDED_SIGNALS)
    assert signal.SIGCHLD not in FORWARDED_SIGNALS and signal.SIGPIPE not in FORWARDED_SIGNALS


# The modules whose code runs in a container process between fork and exec, and their lazy imports.
CHILD_MODULES = ("runtime/init.py", "runtime/rootfs.py", "runtime/process/sequence.py", "runtime/process/kernel.py",
                 "runtime/process/report.py", "runtime/process/console.py", "runtime/users.py",
                 "runtime/execshim.py", "runtime/capabilities.py", "runtime/syscalls.py")
JOINER_MODULES = ("runtime/process/sequence.py", "runtime/process/kernel.py", "runtime/process/report.py",
                  "runtime/process/console.py", "runtime/users.py", "runtime/execshim.py", "runtime/capabilities.py",
                  "runtime/syscalls.py")


def lazy_imports_of(files: tuple[str, ...]) -> set[str]:
    """Every module the files import inside a function (what the child imports when it runs the function),
    `from pkg import submodule` included."""
    import ast
    import importlib.util
    import pathlib

    import pyctr

    package = pathlib.Path(pyctr.__file__).parent
    wanted = set()
    for name in files:
        tree = ast.parse((package / name).read_text())
        functions = [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
        for function in functions:
            for node in ast.walk(function):
                if isinstance(node, ast.Import):
                    wanted.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    wanted.add(node.module)
                    for alias in node.names:
                        candidate = f"{node.module}.{alias.name}"
                        try:
                            if importlib.util.find_spec(candidate) is not None:
                                wanted.add(candidate)
                        except ModuleNotFoundError:
                            pass  # a name defined in the module, not a submodule
    return wanted


@pytest.mark.parametrize("preload, files", [
    ("from pyctr.runtime.process.launcher import preload_child_modules; preload_child_modules(terminal=True)",
     CHILD_MODULES),
    ("from pyctr.runtime.exec import preload_child_modules; preload_child_modules(tty=True)", JOINER_MODULES),
])
def test_what_the_child_imports_after_fork_is_loaded_before_it(preload, files):
    """After fork the child seals its imports (a container's files must never be imported by a root Python):
    everything its code imports lazily must already be loaded by the launcher's preload."""
    import json
    import sys

    probe = f"import json, sys\n{preload}\nprint(json.dumps(sorted(sys.modules)))"
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                           timeout=60, check=True).stdout))
    assert lazy_imports_of(files) - loaded == set()
