"""The host bridge: created on first use with the gateway address, removed when unused.

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


def remove_bridge(name: str) -> bool:
    """Delete bridge `name` if present; True if it was there."""
    if not os.path.exists(f"{SYS_CLASS_NET}/{name}"):
        return False
    NetlinkError = netlink_error_class()
    with open_iproute() as ipr:
        index = _lookup(ipr, name)
        if index is None:
            return False
        try:
            ipr.link("del", index=index)
        except NetlinkError as e:
            if e.code != 19:  # ENODEV: someone else removed it first
                raise RuntimeFailure(f"cannot remove bridge {name}: {e}") from None
        return True


def _lookup(ipr, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def _check_is_bridge(ipr, index: int, name: str) -> None:
    link = ipr.get_links(index)[0]
    info = link.get("IFLA_LINKINFO")
    kind = info.get("IFLA_INFO_KIND") if info is not None else None
    if kind != "bridge":
        raise RuntimeFailure(f"network interface {name} exists and is not a bridge ({kind or 'unknown kind'})")
