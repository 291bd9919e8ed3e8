"""Container networking: the default bridge, published ports, --network none/host, hosts files.

The only home of pyroute2 in pyctr, and it is imported lazily: importing this
package loads nothing (each name loads from its submodule on first use), and
`--network none` / `--network host` never load pyroute2 at all. The pure parts
(publish, ipam, firewall plan, hostfiles, ports.resolve_host_ports) are what
unit tests exercise; manager.py applies them to the kernel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyctr.runtime.network._rtnl import preload_in_background
    from pyctr.runtime.network.hostfiles import hosts_file, parse_add_host, read_host_resolv_conf, resolv_conf
    from pyctr.runtime.network.loopback import loopback_up_in_current_netns, setup_loopback
    from pyctr.runtime.network.manager import (
        NetworkInfo,
        check_ports_free,
        network_info,
        reap_stale,
        setup_network,
        teardown_network,
    )
    from pyctr.runtime.network.publish import PortMapping, format_ports, parse_publish, publish_all
    from pyctr.runtime.network.veth import netns_path

# public name -> the submodule that defines it. Loaded on first use (PEP 562), so that importing a pure
# submodule such as hostfiles (every `run`) does not pay for socket, threading and the bridge code.
_HOMES = {
    "preload_in_background": "_rtnl",
    "hosts_file": "hostfiles", "parse_add_host": "hostfiles", "read_host_resolv_conf": "hostfiles",
    "resolv_conf": "hostfiles",
    "loopback_up_in_current_netns": "loopback", "setup_loopback": "loopback",
    "NetworkInfo": "manager", "check_ports_free": "manager", "network_info": "manager", "reap_stale": "manager",
    "setup_network": "manager", "teardown_network": "manager",
    "PortMapping": "publish", "format_ports": "publish", "parse_publish": "publish", "publish_all": "publish",
    "netns_path": "veth",
}

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
    """Load the submodule that defines `name` only when it is first asked for (manager.py only when the
    bridge is actually used)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
