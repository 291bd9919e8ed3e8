"""Host port availability: Docker's "port is already allocated" before a container starts.

A port is taken if another pyctr container publishes it (our DNAT rules do
not bind sockets, so only the state knows) or a host process has it bound.
`resolve_host_ports` is the pure decision; `host_port_is_free` is the probe.
"""

from __future__ import annotations

import errno
import random
import socket
from collections.abc import Callable, Iterable
from dataclasses import replace

from pyctr.errors import ConflictError, UsageError
from pyctr.runtime.network.publish import ANY_IPV4, PortMapping

DEFAULT_EPHEMERAL_RANGE = (49153, 60999)  # Docker's fallback when /proc is unreadable
Key = tuple[str, int, str]  # (host_ip, host_port, proto)


def ephemeral_range() -> tuple[int, int]:
    """The kernel's ip_local_port_range, where Docker picks random host ports."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(v) for v in f.read().split())
        return low, high
    except (OSError, ValueError):
        return DEFAULT_EPHEMERAL_RANGE


def conflicts(key: Key, taken: Iterable[Key]) -> bool:
    """Same port and protocol on the same address, or either side is 0.0.0.0."""
    ip, port, proto = key
    for other_ip, other_port, other_proto in taken:
        same_address = ip == other_ip or ANY_IPV4 in (ip, other_ip)
        if port == other_port and proto == other_proto and same_address:
            return True
    return False


def resolve_host_ports(
    mappings: list[PortMapping],
    taken: Iterable[Key],
    is_free: Callable[[str, int, str], bool],
    port_range: tuple[int, int] = DEFAULT_EPHEMERAL_RANGE,
    rng: random.Random | None = None,
) -> list[PortMapping]:
    """Give every mapping a concrete, free host port or raise ConflictError (Docker's wording)."""
    used = list(taken)
    rng = rng or random.Random()
    resolved = []
    for mapping in mappings:
        port = _choose(mapping, used, is_free, port_range, rng)
        used.append((mapping.host_ip, port, mapping.proto))
        resolved.append(replace(mapping, host_port=port, host_port_end=0))
    return resolved


def _choose(
    mapping: PortMapping,
    used: list[Key],
    is_free: Callable[[str, int, str], bool],
    port_range: tuple[int, int],
    rng: random.Random,
) -> int:
    if mapping.host_port and not mapping.host_port_end:
        candidates: Iterable[int] = [mapping.host_port]
    elif mapping.host_port_end:
        candidates = range(mapping.host_port, mapping.host_port_end + 1)
    else:
        low, high = port_range
        offset = rng.randrange(high - low + 1)
        candidates = (low + (offset + i) % (high - low + 1) for i in range(high - low + 1))
    for port in candidates:
        key = (mapping.host_ip, port, mapping.proto)
        if not conflicts(key, used) and is_free(*key):
            return port
    raise ConflictError(f"Bind for {mapping.host_ip}:{_describe(mapping)} failed: port is already allocated")


def _describe(mapping: PortMapping) -> str:
    if mapping.host_port_end:
        return f"{mapping.host_port}-{mapping.host_port_end}"
    return str(mapping.host_port) if mapping.host_port else "0"


def host_port_is_free(host_ip: str, port: int, proto: str) -> bool:
    """True if a host process could bind host_ip:port/proto right now.

    TCP uses SO_REUSEADDR so connections in TIME_WAIT do not count as "taken",
    only listeners and bound sockets do (as for Docker's proxy bind). A host
    address this machine does not have is a user error, refused like Docker's
    "bind: cannot assign requested address".
    """
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as sock:
        if proto == "tcp":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host_ip or ANY_IPV4, port))
        except OSError as e:
            if e.errno == errno.EADDRNOTAVAIL:
                raise UsageError(
                    f"cannot publish {host_ip}:{port}/{proto}: bind: cannot assign requested address"
                    f" ({host_ip} is not an address of this host)"
                ) from None
            return False
    return True
