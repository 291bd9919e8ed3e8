"""A container's veth pair: host end on the bridge, `eth0` inside the container's netns."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyctr.errors import RuntimeFailure
from pyctr.runtime.network._rtnl import netlink_error_class, open_iproute

CONTAINER_IFNAME = "eth0"
ENODEV = 19
EEXIST = 17


def host_veth_name(container_id: str, taken: set[str] | frozenset[str] = frozenset()) -> str:
    """`veth` + 7 hex of the id: within IFNAMSIZ (15) and recognisable in `ip link`.

    If another container already owns that name (ids sharing 7 leading hex
    digits), the next 7 digits are used, so one container's setup can never
    replace another's veth.
    """
    for start in range(0, max(len(container_id) - 6, 1), 7):
        name = "veth" + container_id[start:start + 7]
        if name not in taken:
            return name
    raise RuntimeFailure(f"no free veth name for container {container_id[:12]}")


def netns_path(pid: int) -> str:
    """The network namespace of process `pid` (for --network container:<name> too)."""
    return f"/proc/{pid}/ns/net"


@dataclass(frozen=True)
class ContainerLink:
    """Everything the container end needs: its address, MAC and default route."""

    veth: str
    mac: str
    ip: str
    prefixlen: int
    gateway: str
    ifname: str = CONTAINER_IFNAME  # eth1, eth2... for `network connect` of a running container
    default_route: bool = True  # only the first non-internal network routes the container out


def attach_container(link: ContainerLink, pid: int, bridge_index: int) -> None:
    """Create the veth pair straight into the container's netns and configure both ends.

    The peer is created inside the target namespace already named eth0, so the
    host never sees a half-configured interface and no rename race exists.
    """
    NetlinkError = netlink_error_class()
    try:
        _create_pair(link, pid, bridge_index)
    except NetlinkError as e:
        remove_veth(link.veth)
        raise RuntimeFailure(f"cannot create veth {link.veth} for process {pid}: {e}") from None
    try:
        _configure_inside(link, pid)
    except (NetlinkError, OSError) as e:
        remove_veth(link.veth)
        raise RuntimeFailure(f"cannot configure {link.ifname} in the network namespace of process {pid}: {e}") from None


def _create_pair(link: ContainerLink, pid: int, bridge_index: int) -> None:
    NetlinkError = netlink_error_class()
    with open_iproute() as ipr:
        peer = {"ifname": link.ifname, "address": link.mac, "net_ns_pid": pid}
        # One request: created already enslaved to the bridge and up (the kernel applies IFLA_MASTER and the
        # flags on creation), instead of create, look up, enslave, bring up: three round trips fewer.
        new = {"ifname": link.veth, "kind": "veth", "peer": peer, "master": bridge_index, "state": "up"}
        try:
            ipr.link("add", **new)
        except NetlinkError as e:
            if e.code != EEXIST:
                raise
            _delete_if_present(ipr, link.veth)  # left over by a crash: replace it
            ipr.link("add", **new)
        _enable_hairpin(link.veth)


def _enable_hairpin(veth_name: str) -> None:
    """Let a container reach its own published port through the gateway.

    With br_netfilter loaded, a DNAT'd packet whose new destination is on the
    bridge is switched back out at layer 2, through the port it came in on:
    the bridge drops that unless the port is in hairpin mode (Docker sets it
    too when it publishes ports without the userland proxy).
    """
    path = f"/sys/class/net/{veth_name}/brport/hairpin_mode"
    try:
        with open(path, "w") as f:
            f.write("1")
    except OSError as e:
        raise RuntimeFailure(f"cannot enable hairpin mode on {veth_name}: {e.strerror}") from None


def _configure_inside(link: ContainerLink, pid: int) -> None:
    def configure(ipr) -> None:
        lo = ipr.link_lookup(ifname="lo")
        if lo:
            ipr.link("set", index=lo[0], state="up")
        eth0 = ipr.link_lookup(ifname=link.ifname)[0]
        ipr.addr("add", index=eth0, address=link.ip, prefixlen=link.prefixlen)
        ipr.link("set", index=eth0, state="up")
        if link.default_route:
            ipr.route("add", dst="0.0.0.0/0", gateway=link.gateway, oif=eth0)

    run_in_netns(pid, configure)


def run_in_netns(pid: int, action: Callable[[Any], None]) -> None:
    """Run action(IPRoute) with a netlink socket inside process `pid`'s network namespace.

    setns(2) on a network namespace moves only the calling thread, so a
    throwaway thread enters the namespace, opens the socket there (a netlink
    socket stays bound to the namespace it was created in) and ends. This is
    ~5x faster than pyroute2's netns= option, which forks a helper process.
    """
    def act() -> None:
        with open_iproute() as ipr:
            action(ipr)

    call_in_netns(pid, act)


def call_in_netns(pid: int, action: Callable[[], None]) -> None:
    """Run action() in a throwaway thread inside process `pid`'s network namespace (see run_in_netns): a
    socket it creates belongs to that namespace (the embedded DNS server's 127.0.0.11:53)."""
    from pyctr.runtime import syscalls

    errors: list[BaseException] = []

    def enter_and_act() -> None:
        try:
            fd = os.open(netns_path(pid), os.O_RDONLY | os.O_CLOEXEC)
            try:
                syscalls.setns(fd, syscalls.CLONE_NEWNET)
            finally:
                os.close(fd)
            action()
        except BaseException as e:  # re-raised in the caller's thread
            errors.append(e)

    worker = threading.Thread(target=enter_and_act, name=f"pyctr-netns-{pid}")
    worker.start()
    worker.join()
    if errors:
        raise errors[0]


DYING_NAMESPACE_GRACE = 0.03  # about what deleting the link ourselves costs
DYING_NAMESPACE_POLL = 0.0005


def link_exists(name: str) -> bool:
    """Cheap check in the host namespace: skips loading pyroute2 when there is nothing to remove."""
    return os.path.exists(f"/sys/class/net/{name}")


def remove_veth(name: str) -> bool:
    """Delete the host end (the kernel deletes the peer with it); True if it existed.

    When a container exits, its namespace and with it both veth ends are
    usually gone already: then this costs one stat, not a netlink socket.
    """
    if not link_exists(name):
        return False
    with open_iproute() as ipr:
        return _delete_if_present(ipr, name)


def remove_veth_of_dying_namespace(name: str, grace: float = DYING_NAMESPACE_GRACE) -> bool:
    """Remove the host end of a stopped container's veth, letting the kernel do it when it can; True if it
    existed.

    Once the last hold on a namespace goes (the container's processes, then the embedded DNS server's
    sockets), the kernel destroys it and both veth ends with it, in the background, in ~5-10 ms. Deleting
    the link ourselves instead blocks in RTNL for ~25-30 ms (a synchronize_net under the lock), which was
    most of what a user network added to `run --rm`. So wait up to `grace` for the kernel, and delete
    the link only if it is still there then (a namespace someone else keeps alive, --network container:)."""
    if not link_exists(name):
        return False
    deadline = time.monotonic() + grace
    while link_exists(name):
        if time.monotonic() >= deadline:
            remove_veth(name)
            break
        time.sleep(DYING_NAMESPACE_POLL)
    return True


def _delete_if_present(ipr, name: str) -> bool:
    NetlinkError = netlink_error_class()
    found = ipr.link_lookup(ifname=name)
    if not found:
        return False
    try:
        ipr.link("del", index=found[0])
    except NetlinkError as e:
        if e.code != ENODEV:
            raise RuntimeFailure(f"cannot remove {name}: {e}") from None
    return True
