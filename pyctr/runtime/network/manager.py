"""Connecting containers to the bridge and disconnecting them: the lifecycle's entry points.

Every operation runs under the network lock and follows the same order:
decide (pure: address, host ports, rule set) -> change the kernel -> record
the result in the state. A failure undoes its own kernel changes before the
error propagates, and nothing is recorded, so the state never names a veth or
rule that does not exist. What a crash can leave behind (a veth, a bridge, a
rule for a dead container) is exactly what `reap_stale` removes.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pyctr.config import Config
from pyctr.errors import ConfigError, ConflictError, PyctrError, RuntimeFailure
from pyctr.runtime.network import firewall, ipam
from pyctr.runtime.network.ports import (
    Key,
    bind_ipv6,
    ephemeral_range,
    host_has_ipv6,
    host_port_is_free,
    ipv6_bindings,
    resolve_host_ports,
)
from pyctr.runtime.network.publish import ANY_IPV6, PortMapping


@dataclass(frozen=True)
class NetworkInfo:
    """A container's place on the bridge, as `inspect` and `ps` show it."""

    ip: str
    prefixlen: int
    gateway: str
    mac: str
    bridge: str
    ports: list[PortMapping] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "ip": self.ip,
            "prefixlen": self.prefixlen,
            "gateway": self.gateway,
            "mac": self.mac,
            "bridge": self.bridge,
            "ports": [p.to_dict() for p in self.ports],
        }

    @classmethod
    def from_dict(cls, data: dict) -> NetworkInfo:
        ports = [PortMapping.from_dict(p) for p in data.get("ports", [])]
        return cls(data["ip"], int(data["prefixlen"]), data["gateway"], data["mac"], data["bridge"], ports)


def _info(state: ipam.BridgeState, record: ipam.ContainerRecord) -> NetworkInfo:
    network = ipaddress.ip_network(state.subnet)
    ports = listed_ports([PortMapping.from_dict(p) for p in record.ports],
                         [PortMapping.from_dict(p) for p in record.proxy.get("ports", [])])
    return NetworkInfo(
        record.ip, network.prefixlen, ipam.gateway_address(state.subnet), record.mac, state.bridge, ports
    )


def listed_ports(ipv4: list[PortMapping], ipv6: list[PortMapping]) -> list[PortMapping]:
    """The bindings as Docker lists them per port: 0.0.0.0:8000 then its [::]:8000 twin."""
    listed = []
    for mapping in ipv4:
        listed.append(mapping)
        listed.extend(twin for twin in ipv6 if (twin.host_port, twin.container_port, twin.proto)
                      == (mapping.host_port, mapping.container_port, mapping.proto))
    return listed


def taken_ports(state: ipam.NetworkState, except_container: str | None = None) -> list[Key]:
    taken = []
    for bridge_state in state.bridges.values():
        for cid, record in bridge_state.containers.items():
            if cid != except_container:
                taken.extend((p["host_ip"], int(p["host_port"]), p["proto"]) for p in record.ports)
    return taken


def check_ports_free(mappings: list[PortMapping], config: Config | None = None) -> list[PortMapping]:
    """Fail early with Docker's "port is already allocated"; return mappings with host ports chosen.

    Call before starting the container. With `config`, ports published by
    other pyctr containers count as taken (DNAT does not bind a socket, so
    only pyctr's state knows them). setup_network checks again under the lock.
    """
    if not mappings:
        return []
    taken: list[Key] = []
    if config is not None:
        taken = taken_ports(ipam.load_state(config.paths.network))
    return resolve_host_ports(mappings, taken, host_port_is_free, ephemeral_range(), ipv6=host_has_ipv6())


def setup_network(config: Config, container_id: str, pid: int, ports: list[PortMapping] | None = None,
                  mac: str = "") -> NetworkInfo:
    """Connect process `pid`'s network namespace to the bridge and publish `ports`; `mac`: --mac-address."""
    from pyctr.runtime.network import bridge as bridge_ops
    from pyctr.runtime.network import sysctl, veth
    from pyctr.runtime.network._rtnl import iproute_class

    _check_own_netns(pid)
    iproute_class()  # import pyroute2 before taking the lock, so parallel starts do not queue behind it
    net = config.network
    gateway = ipam.gateway_address(net.subnet)
    prefixlen = ipaddress.ip_network(net.subnet).prefixlen
    owner = bridge_ops.owner_tag(config.root)
    with ipam.locked_state(config.paths.network) as state, kernel_errors(f"connect {container_id[:12]}"):
        departed = _forget_previous_start(state, container_id, net.bridge)
        bridge_state = state.bridge(net.bridge, net.subnet)
        departed += _drop_dead_records(bridge_state)
        _check_subnet_unchanged(bridge_state, net.subnet)
        _claim_bridge(bridge_state, owner)
        _stop_proxies(departed)  # before the ports are chosen: their [::] sockets are free then
        ipv6 = bool(ports) and host_has_ipv6()
        resolved = resolve_host_ports(list(ports or []), taken_ports(state), host_port_is_free, ephemeral_range(),
                                      ipv6=ipv6)
        bound = _bind_ipv6_twins(ipv6_bindings(resolved, ipv6))
        record = bridge_state.allocate(container_id, veth.host_veth_name(container_id, veth_names(state)))
        if mac:
            record.mac = mac
        record.ports = [m.to_dict() for m in resolved]
        rules = firewall.Pending()
        try:
            rules = start_rules(bridge_state, owner)  # nft works while the links are made
            sysctl.enable_ip_forwarding()
            bridge_index = bridge_ops.ensure_bridge(net.bridge, gateway, prefixlen, owner)
            sysctl.enable_route_localnet(net.bridge)
            link = veth.ContainerLink(record.veth, record.mac, record.ip, prefixlen, gateway)
            veth.attach_container(link, pid, bridge_index)
            rules.wait()
            if bound:
                record.proxy = _start_proxy(container_id, record.ip, bound)
        except BaseException:
            with contextlib.suppress(PyctrError, OSError):
                rules.wait()
            bridge_state.release(container_id)
            _undo_setup(bridge_state, record.veth, owner)
            raise
        finally:
            for sock, _ in bound:
                sock.close()  # the proxy has its own copies
        _forget_udp_flows(departed)
        return _info(bridge_state, record)


def _bind_ipv6_twins(twins: list[PortMapping]) -> list[tuple[socket.socket, PortMapping]]:
    """Take [::]:port for every twin now, or fail with Docker's error having taken none."""
    bound: list[tuple[socket.socket, PortMapping]] = []
    try:
        for twin in twins:
            try:
                bound.append((bind_ipv6(twin.host_port, twin.proto), twin))
            except OSError as e:
                if e.errno != errno.EADDRINUSE:
                    raise RuntimeFailure(
                        f"cannot publish [{ANY_IPV6}]:{twin.host_port}/{twin.proto}: {e.strerror}") from None
                raise ConflictError(f"Bind for {ANY_IPV6}:{twin.host_port} failed: port is already allocated") from None
    except BaseException:
        for sock, _ in bound:
            sock.close()
        raise
    return bound


def _start_proxy(container_id: str, target_ip: str, bound: list[tuple[socket.socket, PortMapping]]) -> dict:
    from pyctr.runtime.network import proxy

    pid = proxy.start_proxy(container_id, target_ip, bound)
    return {"pid": pid, "ports": [twin.to_dict() for _, twin in bound]}


def _stop_proxies(records: list[ipam.ContainerRecord]) -> None:
    """Stop the IPv6 proxies of departed containers (their [::] ports become free)."""
    if not any(record.proxy for record in records):
        return
    from pyctr.runtime.network import proxy

    for record in records:
        if record.proxy:
            proxy.stop_proxy(record.proxy, record.container_id)


def _check_own_netns(pid: int) -> None:
    """Refuse to configure the host's own namespace as if it were a container's (eth0, default route)."""
    try:
        theirs = os.stat(f"/proc/{pid}/ns/net")
    except OSError as e:
        raise RuntimeFailure(f"cannot connect process {pid} to the network: {e.strerror}") from None
    ours = os.stat("/proc/self/ns/net")
    if (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino):
        raise RuntimeFailure(f"process {pid} has no network namespace of its own: refusing to configure the host's")


@contextlib.contextmanager
def kernel_errors(what: str) -> Iterator[None]:
    """Netlink and OS errors become one-line RuntimeFailures, never tracebacks."""
    from pyctr.runtime.network._rtnl import netlink_error_class

    try:
        yield
    except PyctrError:
        raise
    except (OSError, netlink_error_class()) as e:
        raise RuntimeFailure(f"cannot {what}: {e}") from None


def veth_names(state: ipam.NetworkState) -> set[str]:
    return {rec.veth for bridge_state in state.bridges.values() for rec in bridge_state.containers.values()}


def _forget_udp_flows(departed: list[ipam.ContainerRecord]) -> None:
    from pyctr.runtime.network import conntrack

    conntrack.forget_flows_to([record.ip for record in departed if conntrack.has_udp_ports(record)])


def _drop_dead_records(bridge_state: ipam.BridgeState) -> list[ipam.ContainerRecord]:
    """Release containers whose host veth is gone: their network namespace died without a teardown.

    The kernel deletes a veth pair when either end's namespace is destroyed,
    and records are saved only after their veth exists, so a missing veth
    means a dead container. Its address and host ports become free again and
    its DNAT rules vanish with the rule set rebuilt by this setup.
    """
    from pyctr.runtime.network import veth

    dead = [cid for cid, rec in bridge_state.containers.items() if not veth.link_exists(rec.veth)]
    return [bridge_state.release(cid) for cid in dead]


def _forget_previous_start(state: ipam.NetworkState, container_id: str, bridge: str) -> list[ipam.ContainerRecord]:
    """A record for a container being started is stale (it cannot run twice): undo it first."""
    from pyctr.runtime.network import veth

    found = state.find(container_id, bridge)
    if found is None:
        return []
    bridge_state, record = found
    veth.remove_veth(record.veth)
    bridge_state.release(container_id)
    return [record]


def _check_subnet_unchanged(bridge_state: ipam.BridgeState, subnet: str) -> None:
    if bridge_state.subnet != subnet:
        raise ConfigError(
            f"bridge {bridge_state.bridge} still has containers on {bridge_state.subnet}: "
            f"remove them before changing network.subnet to {subnet}"
        )


def _claim_bridge(bridge_state: ipam.BridgeState, owner: str) -> None:
    """Refuse a bridge another pyctr root is using; take over one it left idle.

    Two roots on one bridge would allocate the same addresses (each has its
    own IPAM) and rebuild each other's NAT table, so the second one stops
    here with the fix in the message. A bridge pyctr did not create (no
    `pyctr:` alias) is simply used.
    """
    from pyctr.runtime.network import bridge as bridge_ops

    current = bridge_ops.read_owner(bridge_state.bridge)
    if current is None or current == owner or not current.startswith(bridge_ops.OWNER_PREFIX):
        return
    mine = {record.veth for record in bridge_state.containers.values()}
    foreign = [port for port in bridge_ops.attached_ports(bridge_state.bridge) if port not in mine]
    if foreign:
        other_root = current[len(bridge_ops.OWNER_PREFIX):]
        raise ConflictError(
            f"network bridge {bridge_state.bridge} is in use by containers of another pyctr root ({other_root}): "
            "give each root its own network.bridge and network.subnet"
        )
    bridge_ops.write_owner(bridge_state.bridge, owner)


def _owns_bridge(bridge: str, owner: str) -> bool:
    """True unless the bridge is labelled as another pyctr root's (then its NAT is not ours to touch)."""
    from pyctr.runtime.network import bridge as bridge_ops

    current = bridge_ops.read_owner(bridge)
    return current is None or current == owner or not current.startswith(bridge_ops.OWNER_PREFIX)


def _undo_setup(bridge_state: ipam.BridgeState, veth_name: str, owner: str) -> None:
    """Best effort: the original error matters more than a failure while undoing."""
    from pyctr.runtime.network import veth

    with contextlib.suppress(PyctrError, OSError):
        veth.remove_veth(veth_name)
    with contextlib.suppress(PyctrError, OSError):
        _apply_rules(bridge_state, owner)


def _apply_rules(bridge_state: ipam.BridgeState, owner: str) -> None:
    start_rules(bridge_state, owner).wait()


def start_rules(bridge_state: ipam.BridgeState, owner: str) -> firewall.Pending:
    """Start making the kernel's NAT match the state: the table exists iff containers do.

    The bridge itself stays once created, as Docker's docker0 does: an idle bridge carries no traffic and
    no rules, and re-creating it for every container cost a `run` about 85 ms."""
    bridge = bridge_state.bridge
    if bridge_state.containers:
        forwards = firewall.forwards_from_records(bridge_state.containers.values())
        return firewall.start_apply(bridge, bridge_state.subnet, forwards, bridge_state.policy)
    if _owns_bridge(bridge, owner):
        firewall.remove(bridge)  # one netlink transaction: done already
    return firewall.Pending()


def teardown_network(config: Config, container_id: str) -> None:
    """Disconnect a container: veth, address, DNAT rules; the NAT table goes with the last one.

    Idempotent: calling it again, or for a container never connected, is a no-op.
    """
    from pyctr.runtime.network import bridge as bridge_ops
    from pyctr.runtime.network import veth

    owner = bridge_ops.owner_tag(config.root)
    with ipam.locked_state(config.paths.network) as state, kernel_errors(f"disconnect {container_id[:12]}"):
        if any(container_id in b.containers for b in state.bridges.values() if b.policy.get("user")):
            from pyctr.runtime.network import usermanager

            usermanager.release_user_endpoints(config, state, container_id)
        found = state.find(container_id, config.network.bridge)
        if found is None:
            # Never connected, or a crash before its record was saved: remove a veth
            # by its default name unless another container owns that name.
            name = veth.host_veth_name(container_id)
            if name not in veth_names(state):
                veth.remove_veth(name)
            return
        bridge_state, record = found
        bridge_state.release(container_id)
        rules = start_rules(bridge_state, owner)  # nft works while the veth goes
        try:
            _stop_proxies([record])
            veth.remove_veth(record.veth)
        finally:
            rules.wait()
        _forget_udp_flows([record])


def reap_stale(config: Config, live_container_ids: set[str] | list[str]) -> list[str]:
    """After a crash: forget containers not in `live_container_ids` and remove what they left.

    Also removes pyctr veths on this root's bridge that no record owns, and the
    NAT table when no container is left. Returns the reaped ids.
    """
    from pyctr.runtime.network import bridge as bridge_ops
    from pyctr.runtime.network import veth

    owner = bridge_ops.owner_tag(config.root)
    live = set(live_container_ids)
    reaped: list[str] = []
    with ipam.locked_state(config.paths.network) as state, kernel_errors("clean up stale networks"):
        state.bridge(config.network.bridge, config.network.subnet)  # make sure the configured one is checked
        for bridge_state in state.bridges.values():
            departed = []
            for cid in sorted(set(bridge_state.containers) - live):
                record = bridge_state.release(cid)
                if record is not None:
                    _stop_proxies([record])
                    veth.remove_veth(record.veth)
                    departed.append(record)
                reaped.append(cid)
            if bridge_ops.read_owner(bridge_state.bridge) == owner:
                owned = {record.veth for record in bridge_state.containers.values()}
                for name in bridge_ops.attached_ports(bridge_state.bridge):
                    if _is_pyctr_veth(name) and name not in owned:
                        veth.remove_veth(name)
            _apply_rules(bridge_state, owner)
            _forget_udp_flows(departed)
        if any(b.policy.get("user") for b in state.bridges.values()) or \
                (config.paths.network / "networks.json").exists():
            from pyctr.runtime.network import usermanager

            usermanager.forget_reaped(config, state, reaped)
    return reaped


def _is_pyctr_veth(name: str) -> bool:
    suffix = name[4:]
    return name.startswith("veth") and len(suffix) == 7 and all(c in "0123456789abcdef" for c in suffix)


def network_info(config: Config, container_id: str) -> NetworkInfo | None:
    """The recorded network of a container (None if it is not on a bridge)."""
    network_dir: Path = config.paths.network
    if not ipam.state_file(network_dir).exists():
        return None
    found = ipam.load_state(network_dir).find(container_id, config.network.bridge)
    return _info(*found) if found else None
