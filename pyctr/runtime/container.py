"""The container lifecycle's public names, where commands/ and runtime/check.py import them from.

The lifecycle itself lives in runtime/lifecycle/, one module per verb (see its __init__); this module only
re-exports, so `from pyctr.runtime import container; container.stop(...)` keeps working.
"""

from __future__ import annotations

from pyctr.runtime.lifecycle.concurrently import Concurrently
from pyctr.runtime.lifecycle.config_document import config_document, load_spec, mount_points
from pyctr.runtime.lifecycle.create import create, resolve_image
from pyctr.runtime.lifecycle.detached import start_detached
from pyctr.runtime.lifecycle.foreground import run_foreground
from pyctr.runtime.lifecycle.kill import kill, parse_signal, signal_container
from pyctr.runtime.lifecycle.launch import Launch, check_startable, pipe_stdio, reap_quietly, terminal_stdio
from pyctr.runtime.lifecycle.monitor_program import (
    MONITOR_SCRIPT,
    cleanup_command,
    lighter_interpreter,
    monitor_program,
)
from pyctr.runtime.lifecycle.remove import remove
from pyctr.runtime.lifecycle.stop import restart, stop
from pyctr.runtime.lifecycle.teardown import (
    anonymous_volumes,
    finish,
    finish_reporting,
    remove_anonymous_volumes,
    teardown,
)
from pyctr.runtime.lifecycle.wait import POLL_SLICE_MS, STATE_SETTLE_TIMEOUT, wait, wait_for_exit, wait_recorded

__all__ = [
    "Concurrently",
    "Launch",
    "MONITOR_SCRIPT",
    "POLL_SLICE_MS",
    "STATE_SETTLE_TIMEOUT",
    "anonymous_volumes",
    "check_startable",
    "cleanup_command",
    "config_document",
    "create",
    "finish",
    "finish_reporting",
    "kill",
    "lighter_interpreter",
    "load_spec",
    "monitor_program",
    "mount_points",
    "parse_signal",
    "pipe_stdio",
    "reap_quietly",
    "remove",
    "remove_anonymous_volumes",
    "resolve_image",
    "restart",
    "run_foreground",
    "signal_container",
    "start_detached",
    "stop",
    "teardown",
    "terminal_stdio",
    "wait",
    "wait_for_exit",
    "wait_recorded",
]
