"""The host bridge: created on first use with the gateway address, then kept (as Docker keeps docker0).

A bridge pyctr creates carries its owner in the interface alias
(`pyctr:<root>`), read and written through sysfs (no netlink needed). Two
pyctr roots configured with the same bridge would otherwise hand out the same
addresses and rebuild each other's NAT table; the alias lets the second one
refuse clearly instead, and lets pyctr delete only bridges it created (an
admin's pre-existing bridge is used, never removed).
"""

from __future__ import annotations

import os
import socket

from pyctr.errors import RuntimeFailure
from pyctr.runtime.network._rtnl import netlink_error_class, open_iproute

OWNER_PREFIX = "pyctr:"
SYS_CLASS_NET = "/sys/class/net"
# A new bridge is born under this prefix, labelled, then renamed into place: a bridge with the final name is
# always labelled, and one left under this prefix by a killed process is garbage that the next start removes.
NEWBORN_PREFIX = "pyctrnew"
IFF_UP = 0x1
SIOCGIFADDR = 0x8915  # the interface's primary IPv4 address
SIOCGIFNETMASK = 0x891B


def owner_tag(root: object) -> str:
    """The alias that marks a bridge as created by the pyctr root `root` (IFALIASZ is 256)."""
    return (OWNER_PREFIX + str(root))[:255]


def read_owner(name: str) -> str | None:
    """The bridge's alias ("" if none); None if the bridge does not exist."""
    try:
        with open(f"{SYS_CLASS_NET}/{name}/ifalias") as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def write_owner(name: str, tag: str) -> None:
    try:
        with open(f"{SYS_CLASS_NET}/{name}/ifalias", "w") as f:
            f.write(tag + "\n")
    except OSError as e:
        raise RuntimeFailure(f"cannot label bridge {name}: {e.strerror}") from None


def attached_ports(name: str) -> list[str]:
    """Interfaces enslaved to bridge `name` (empty if it does not exist)."""
    try:
        return sorted(os.listdir(f"{SYS_CLASS_NET}/{name}/brif"))
    except FileNotFoundError:
        return []


def ensure_bridge(name: str, gateway: str, prefixlen: int, owner: str) -> int:
    """Make sure bridge `name` exists, holds gateway/prefixlen and is up; return its index.

    A bridge created here is labelled with `owner`.
    """
    ready = _ready_index(name, gateway, prefixlen)
    if ready is not None:
        return ready
    NetlinkError = netlink_error_class()
    try:
        with open_iproute() as ipr:
            index = _lookup(ipr, name)
            if index is None:
                remove_newborn_leftovers(ipr)
                index = _create_labelled(ipr, name, owner, NetlinkError)
            if index is None:
                raise RuntimeFailure(f"bridge {name} vanished right after it was created")
            _check_is_bridge(ipr, index, name)
            present = {(a.get("address"), a["prefixlen"]) for a in ipr.get_addr(index=index, family=socket.AF_INET)}
            if (gateway, prefixlen) not in present:
                ipr.addr("add", index=index, address=gateway, prefixlen=prefixlen)
            ipr.link("set", index=index, state="up")
            return index
    except NetlinkError as e:
        raise RuntimeFailure(f"cannot set up bridge {name} ({gateway}/{prefixlen}): {e}") from None


def _ready_index(name: str, gateway: str, prefixlen: int) -> int | None:
    """The bridge's index if it already is a bridge, up, with the gateway as its address; else None.

    The common case after the first container (the bridge stays, like docker0), answered from sysfs and
    two ioctls in well under a millisecond instead of a netlink conversation."""
    import fcntl
    import struct

    base = f"{SYS_CLASS_NET}/{name}"
    try:
        if not os.path.isdir(f"{base}/bridge"):
            return None
        with open(f"{base}/flags") as f:
            if not int(f.read(), 16) & IFF_UP:
                return None
        with open(f"{base}/ifindex") as f:
            index = int(f.read())
        request = struct.pack("16s16x", name.encode())
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            address = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, request)[20:24]
            netmask = fcntl.ioctl(sock.fileno(), SIOCGIFNETMASK, request)[20:24]
    except (OSError, ValueError):  # no IPv4 address yet (EADDRNOTAVAIL), or gone: the full path decides
        return None
    if socket.inet_ntoa(address) != gateway or bin(int.from_bytes(netmask, "big")).count("1") != prefixlen:
        return None
    return index


def _create_labelled(ipr, name: str, owner: str, netlink_error: type[Exception]) -> int | None:
    """Create bridge `name` already carrying its owner label (create, label, rename: never unlabelled)."""
    newborn = f"{NEWBORN_PREFIX}{os.getpid():x}"[:15]
    ipr.link("add", ifname=newborn, kind="bridge")
    write_owner(newborn, owner)
    try:
        ipr.link("set", index=_lookup(ipr, newborn), ifname=name)
    except netlink_error as e:
        ipr.link("del", index=_lookup(ipr, newborn))
        if e.code != 17:  # EEXIST: another process created `name` meanwhile; use theirs
            raise
    return _lookup(ipr, name)


def remove_newborn_leftovers(ipr) -> list[str]:
    """Delete bridges a killed process left under the newborn prefix (never given their name, never used)."""
    removed = []
    for entry in os.listdir(SYS_CLASS_NET):
        if entry.startswith(NEWBORN_PREFIX) and not attached_ports(entry) and not _pid_alive_for(entry):
            index = _lookup(ipr, entry)
            if index is not None:
                ipr.link("del", index=index)
                removed.append(entry)
    return removed


def _pid_alive_for(newborn: str) -> bool:
    """The creating process is still at work (between create and rename): leave its bridge alone."""
    try:
        pid = int(newborn[len(NEWBORN_PREFIX):], 16)
    except ValueError:
        return False
    return pid != os.getpid() and os.path.exists(f"/proc/{pid}")


def _lookup(ipr, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def _check_is_bridge(ipr, index: int, name: str) -> None:
    link = ipr.get_links(index)[0]
    info = link.get("IFLA_LINKINFO")
    kind = info.get("IFLA_INFO_KIND") if info is not None else None
    if kind != "bridge":
        raise RuntimeFailure(f"network interface {name} exists and is not a bridge ({kind or 'unknown kind'})")
