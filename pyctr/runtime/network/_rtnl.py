"""Loading pyroute2's rtnetlink API without its 300-450 ms package import.

`import pyroute2` runs a package __init__ that imports ~50 submodules
(wireless, devlink, NDB, ...). pyctr only needs IPRoute, so when pyroute2 is
not imported yet we register a bare package object with the real search path
and import `pyroute2.iproute.linux` directly (~200 ms less). This module is
the only place that touches pyroute2's import machinery; it is called only
from the functions that talk to the kernel, never at import time.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import types
from typing import Any


def register_bare_package() -> None:
    """Make `pyroute2` importable as a package without running its __init__."""
    if "pyroute2" in sys.modules:
        return
    spec = importlib.util.find_spec("pyroute2")
    if spec is None or spec.submodule_search_locations is None:
        raise ImportError("pyroute2 is not installed")
    package = types.ModuleType("pyroute2")
    package.__path__ = list(spec.submodule_search_locations)
    package.__spec__ = spec
    package.__file__ = spec.origin
    sys.modules["pyroute2"] = package


def iproute_class() -> Any:
    """pyroute2's synchronous IPRoute class."""
    register_bare_package()
    from pyroute2.iproute.linux import IPRoute

    return IPRoute


def netlink_error_class() -> type[Exception]:
    register_bare_package()
    from pyroute2.netlink.exceptions import NetlinkError

    return NetlinkError


def open_iproute(netns_path: str | None = None) -> Any:
    """An IPRoute socket in the current or the given network namespace (by /proc path)."""
    IPRoute = iproute_class()
    if netns_path is None:
        return IPRoute()
    return IPRoute(netns=netns_path, flags=0)


def preload_in_background() -> threading.Thread:
    """Start importing pyroute2 (~250 ms) in a thread, to overlap it with other start-up work.

    For `run` in bridge mode: call it early, then join() the returned thread
    BEFORE forking (a fork while another thread holds an import lock can
    deadlock the child). setup_network works the same with or without it.
    """
    worker = threading.Thread(target=iproute_class, name="pyctr-preload-pyroute2", daemon=True)
    worker.start()
    return worker
