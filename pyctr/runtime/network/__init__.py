"""Container networking: the default bridge, published ports, --network none/host, hosts files.

The only home of pyroute2 in pyctr, and it is imported lazily: importing this
package costs a few stdlib modules, and `--network none` / `--network host`
never load pyroute2 at all. The pure parts (publish, ipam, firewall plan,
hostfiles, ports.resolve_host_ports) are what unit tests exercise; manager.py
applies them to the kernel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyctr.runtime.network._rtnl import preload_in_background
from pyctr.runtime.network.hostfiles import hosts_file, parse_add_host, read_host_resolv_conf, resolv_conf
from pyctr.runtime.network.loopback import loopback_up_in_current_netns, setup_loopback
from pyctr.runtime.network.publish import PortMapping, format_ports, parse_publish, publish_all
from pyctr.runtime.network.veth import netns_path

if TYPE_CHECKING:
    from pyctr.runtime.network.manager import (
        NetworkInfo,
        check_ports_free,
        network_info,
        reap_stale,
        setup_network,
        teardown_network,
    )

_MANAGER_NAMES = {"NetworkInfo", "check_ports_free", "network_info", "reap_stale", "setup_network", "teardown_network"}

__all__ = [
    "NetworkInfo",
    "PortMapping",
    "check_ports_free",
    "format_ports",
    "hosts_file",
    "loopback_up_in_current_netns",
    "netns_path",
    "network_info",
    "parse_add_host",
    "parse_publish",
    "preload_in_background",
    "publish_all",
    "read_host_resolv_conf",
    "reap_stale",
    "resolv_conf",
    "setup_loopback",
    "setup_network",
    "teardown_network",
]


def __getattr__(name: str) -> Any:
    """Load manager.py (ipam, firewall, ports) only when the bridge is actually used."""
    if name in _MANAGER_NAMES:
        from pyctr.runtime.network import manager

        return getattr(manager, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
