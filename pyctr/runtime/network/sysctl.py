"""The few /proc/sys knobs bridge networking needs."""

from __future__ import annotations

from pathlib import Path

from pyctr.errors import RuntimeFailure

PROC_SYS_NET = Path("/proc/sys/net")


def write_sysctl(relative: str, value: str) -> None:
    """Write /proc/sys/net/<relative> if it differs (skipping the write keeps it cheap)."""
    path = PROC_SYS_NET / relative
    try:
        if path.read_text().strip() == value:
            return
        path.write_text(value + "\n")
    except OSError as e:
        raise RuntimeFailure(f"cannot set {path} to {value}: {e.strerror}") from None


def enable_ip_forwarding() -> None:
    """Containers reach the outside through the host's routing, as with Docker."""
    write_sysctl("ipv4/ip_forward", "1")


def enable_route_localnet(bridge: str) -> None:
    """Let DNAT'd packets from 127.0.0.1 leave through the bridge (so 127.0.0.1:hostPort works)."""
    write_sysctl(f"ipv4/conf/{bridge}/route_localnet", "1")
