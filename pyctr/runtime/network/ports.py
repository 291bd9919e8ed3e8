"""Host port availability: Docker's "port is already allocated" before a container starts.

A port is taken if another pyctr container publishes it (our DNAT rules do
not bind sockets, so only the state knows) or a host process has it bound.
`resolve_host_ports` is the pure decision; `host_port_is_free` is the probe.
A dual-stack mapping on an IPv6 host must also find its port free on [::],
where the userland proxy will listen (`ipv6_bindings` says which those are).
"""

from __future__ import annotations

import errno
import random
import socket
from collections.abc import Callable, Iterable
from dataclasses import replace

from pyctr.errors import ConflictError, UsageError
from pyctr.runtime.network.publish import ANY_IPV4, ANY_IPV6, PortMapping

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


def ipv6_available(disable_ipv6: str, if_inet6: str) -> bool:
    """IPv6 is on (`net.ipv6.conf.all.disable_ipv6` 0) and the loopback has ::1, as Docker's proxy needs.

    Arguments are the texts of /proc/sys/net/ipv6/conf/all/disable_ipv6 and /proc/net/if_inet6.
    """
    if disable_ipv6.strip() != "0":
        return False
    return any(line.split()[:1] == ["0" * 31 + "1"] and line.split()[-1:] == ["lo"] for line in if_inet6.splitlines())


def host_has_ipv6() -> bool:
    """The probe behind ipv6_available (False when /proc says nothing: no IPv6 in this kernel)."""
    try:
        with open("/proc/sys/net/ipv6/conf/all/disable_ipv6") as f:
            disable = f.read()
        with open("/proc/net/if_inet6") as f:
            addresses = f.read()
    except OSError:
        return False
    return ipv6_available(disable, addresses)


def ipv6_bindings(mappings: list[PortMapping], ipv6: bool) -> list[PortMapping]:
    """The [::] twins Docker adds for publishes without a host address (none when the host lacks IPv6)."""
    if not ipv6:
        return []
    return [replace(m, host_ip=ANY_IPV6, dual_stack=False) for m in mappings if m.dual_stack]


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
    ipv6: bool = False,
) -> list[PortMapping]:
    """Give every mapping a concrete, free host port or raise ConflictError (Docker's wording).

    With `ipv6`, a dual-stack mapping's port must also be free on [::]: a fixed
    port taken there fails as Docker's `Bind for :::8000 failed`, a random one
    is chosen free on both."""
    used = list(taken)
    rng = rng or random.Random()
    resolved = []
    for mapping in mappings:
        port = _choose(mapping, used, is_free, port_range, rng, ipv6 and mapping.dual_stack)
        used.append((mapping.host_ip, port, mapping.proto))
        resolved.append(replace(mapping, host_port=port, host_port_end=0))
    return resolved


def _choose(
    mapping: PortMapping,
    used: list[Key],
    is_free: Callable[[str, int, str], bool],
    port_range: tuple[int, int],
    rng: random.Random,
    ipv6: bool = False,
) -> int:
    if mapping.host_port and not mapping.host_port_end:
        candidates: Iterable[int] = [mapping.host_port]
    elif mapping.host_port_end:
        candidates = range(mapping.host_port, mapping.host_port_end + 1)
    else:
        low, high = port_range
        offset = rng.randrange(high - low + 1)
        candidates = (low + (offset + i) % (high - low + 1) for i in range(high - low + 1))
    taken_on_ipv6 = False
    for port in candidates:
        key = (mapping.host_ip, port, mapping.proto)
        if conflicts(key, used) or not is_free(*key):
            continue
        if not ipv6 or is_free(ANY_IPV6, port, mapping.proto):
            return port
        taken_on_ipv6 = True
    host_ip = ANY_IPV6 if taken_on_ipv6 and not mapping.host_port_end and mapping.host_port else mapping.host_ip
    raise ConflictError(f"Bind for {host_ip}:{_describe(mapping)} failed: port is already allocated")


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
    if host_ip == ANY_IPV6:
        try:
            bind_ipv6(port, proto).close()
        except OSError:
            return False
        return True
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


def bind_ipv6(port: int, proto: str) -> socket.socket:
    """A socket bound to [::]:port only (IPV6_V6ONLY: IPv4 stays the DNAT's), listening if TCP.

    Bound here, under the network lock, and handed to the proxy process: the
    port is ours before `run` goes on, whatever the proxy's start-up takes."""
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(socket.AF_INET6, kind)
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if proto == "tcp":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((ANY_IPV6, port))
        if proto == "tcp":
            sock.listen(socket.SOMAXCONN)
    except BaseException:
        sock.close()
        raise
    return sock
