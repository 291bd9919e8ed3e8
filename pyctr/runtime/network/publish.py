"""`-p` / `-P` port specs: parsing and Docker's `ps` display, all pure.

Parsing follows Docker's nat.ParsePortSpec so that every spec Docker accepts
means the same here and every spec it refuses is refused with its wording.
pyctr publishes IPv4 by kernel DNAT on the bridge; a publish without a host
address is also served on [::] by a userland proxy when the host has IPv6 (as
Docker's docker-proxy does), so an explicit IPv6 host address is refused up
front instead of silently not working.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from pyctr.errors import UsageError

PROTOCOLS = ("tcp", "udp")
ANY_IPV4 = "0.0.0.0"
ANY_IPV6 = "::"


@dataclass(frozen=True)
class PortMapping:
    """One published port: host_ip:host_port -> container_port/proto.

    host_port 0 means "pick a free ephemeral port" (resolved by
    check_ports_free / setup_network); host_port_end > 0 means "any free port
    of host_port..host_port_end" (Docker's `-p 8000-8010:80`). dual_stack: no
    host address was given, so the port is also published on [::] when the host
    has IPv6 (Docker's rule: `-p 0.0.0.0:8000:80` is IPv4 only). It does not take
    part in equality: it says how the mapping came about, not where it points.
    """

    host_ip: str
    host_port: int
    container_port: int
    proto: str = "tcp"
    host_port_end: int = 0
    dual_stack: bool = field(default=False, compare=False)

    def to_dict(self) -> dict:
        return {
            "host_ip": self.host_ip,
            "host_port": self.host_port,
            "container_port": self.container_port,
            "proto": self.proto,
            "host_port_end": self.host_port_end,
            "dual_stack": self.dual_stack,
        }

    @classmethod
    def from_dict(cls, data: dict) -> PortMapping:
        return cls(
            host_ip=data["host_ip"],
            host_port=int(data["host_port"]),
            container_port=int(data["container_port"]),
            proto=data.get("proto", "tcp"),
            host_port_end=int(data.get("host_port_end", 0)),
            dual_stack=bool(data.get("dual_stack", False)),
        )


def parse_publish(spec: str) -> list[PortMapping]:
    """Parse one `-p` value into mappings (one per port of a range)."""
    raw_ip, host_part, container_part = _split_host_container(spec)
    proto, container_part = _split_proto(container_part)
    host_ip = _parse_host_ip(raw_ip)
    if not container_part:
        raise UsageError(f"No port specified: {spec}<empty>")
    start, end = _parse_range(container_part, "containerPort", allow_zero=False)
    host_start, host_end = _parse_range(host_part, "hostPort", allow_zero=True) if host_part else (0, 0)
    if host_part and (end - start) != (host_end - host_start) and end != start:
        raise UsageError(f"Invalid ranges specified for container and host Ports: {container_part} and {host_part}")
    if proto not in PROTOCOLS:
        if proto == "sctp":
            raise UsageError("Invalid proto: sctp (pyctr publishes tcp and udp only)")
        raise UsageError(f"Invalid proto: {proto}")
    dual_stack = not raw_ip
    if end == start and host_end != host_start:
        return [PortMapping(host_ip, host_start, start, proto, host_port_end=host_end, dual_stack=dual_stack)]
    return [
        PortMapping(host_ip, host_start + i if host_part else 0, start + i, proto, dual_stack=dual_stack)
        for i in range(end - start + 1)
    ]


def publish_all(exposed_ports: dict | None) -> list[PortMapping]:
    """`-P`: every ExposedPorts key of the image config on a random host port."""
    mappings = []
    for key in sorted(exposed_ports or {}, key=_exposed_sort_key):
        port, _, proto = key.partition("/")
        proto = (proto or "tcp").lower()
        if proto not in PROTOCOLS:
            continue
        start, end = _parse_range(port, "containerPort", allow_zero=False)
        mappings.extend(PortMapping(ANY_IPV4, 0, p, proto, dual_stack=True) for p in range(start, end + 1))
    return mappings


def _exposed_sort_key(key: str) -> tuple[int, str]:
    port, _, proto = key.partition("/")
    head = port.split("-")[0]
    return (int(head) if head.isdigit() else 0, proto)


def _split_host_container(spec: str) -> tuple[str, str, str]:
    """Split `[ip:][hostPort:]containerPort[/proto]`; IPv6 may be bracketed."""
    parts = spec.split(":")
    if len(parts) == 1:
        return "", "", parts[0]
    if len(parts) == 2:
        return "", parts[0], parts[1]
    return ":".join(parts[:-2]), parts[-2], parts[-1]


def _split_proto(raw: str) -> tuple[str, str]:
    port, sep, proto = raw.partition("/")
    if not port:
        return "", ""
    return (proto.lower() if sep and proto else "tcp"), port


def _parse_host_ip(raw_ip: str) -> str:
    if not raw_ip:
        return ANY_IPV4
    candidate = raw_ip[1:-1] if raw_ip.startswith("[") and raw_ip.endswith("]") else raw_ip
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        raise UsageError(f"Invalid ip address: {raw_ip}") from None
    if address.version != 4:
        raise UsageError(f"Invalid ip address: {raw_ip} (pyctr publishes ports on IPv4 addresses only)")
    return str(address)


def _parse_range(raw: str, what: str, allow_zero: bool) -> tuple[int, int]:
    start_text, dash, end_text = raw.partition("-")
    try:
        start = _parse_port(start_text)
        end = _parse_port(end_text) if dash else start
    except ValueError:
        raise UsageError(f"Invalid {what}: {raw}") from None
    if end < start or (start == 0 and not allow_zero):
        raise UsageError(f"Invalid {what}: {raw}")
    return start, end


def _parse_port(text: str) -> int:
    if not text.isdigit():
        raise ValueError(text)
    port = int(text)
    if port > 65535:
        raise ValueError(text)
    return port


def format_ports(mappings: list[PortMapping], exposed: list[tuple[int, str]] | None = None) -> str:
    """Docker's `ps` PORTS column: groups consecutive ports into ranges.

    `exposed` lists (port, proto) exposed but not published, shown as `80/tcp`.
    """
    entries = [(m.container_port, m.host_ip, m.host_port, m.proto) for m in mappings]
    entries += [(port, "", 0, proto) for port, proto in exposed or []]
    entries.sort()
    groups: dict[str, list[int]] = {}
    order: list[str] = []
    result: list[str] = []
    host_mappings: list[str] = []
    for container_port, host_ip, host_port, proto in entries:
        key = proto
        if host_ip:
            if host_port != container_port:
                host_mappings.append(f"{host_ip}:{host_port}->{container_port}/{proto}")
                continue
            key = f"{host_ip}/{proto}"
        group = groups.get(key)
        if group is None:
            groups[key] = [container_port, container_port]
            order.append(key)
        elif container_port == group[1] + 1:
            group[1] = container_port
        else:
            result.append(_format_group(key, group[0], group[1]))
            groups[key] = [container_port, container_port]
    result.extend(_format_group(key, *groups[key]) for key in order)
    return ", ".join(result + host_mappings)


def _format_group(key: str, first: int, last: int) -> str:
    ip, _, proto = key.rpartition("/")
    ports = str(first) if first == last else f"{first}-{last}"
    return f"{ip}:{ports}->{ports}/{proto}" if ip else f"{ports}/{proto}"
