"""User-defined networks applied to the kernel: create/remove, connect/disconnect, the DNS records.

Same discipline as manager.py: under the network lock (network/ipam.lock, which also guards networks.json),
decide (usernet.py, pure) -> change the kernel -> record. The bridge exists as long as the network does (as
Docker's br-<id>); its nftables table (NAT unless --internal, isolation from every other bridge) exists while
containers are on it; the DNS records file is rewritten whenever an endpoint comes or goes.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from pyctr.config import Config
from pyctr.errors import ConflictError, NotFoundError, PyctrError, RuntimeFailure
from pyctr.fsutil import atomic_write_json
from pyctr.runtime.network import ipam, usernet
from pyctr.runtime.network.usernet import Attachment, NetworkRecord, NetworkStore

DNS_ADDRESS = "127.0.0.11"
DNS_SCRIPT = Path(__file__).with_name("dns_server.py")
DNS_START_TIMEOUT = 5.0
_STARTED: list[subprocess.Popen] = []  # the DNS server outlives the command that started it


@dataclass(frozen=True)
class Endpoint:
    """A container's place on one user network, as inspect shows it."""

    network: NetworkRecord
    ip: str
    prefixlen: int
    mac: str
    aliases: list[str]
    ports: list = field(default_factory=list)  # PortMappings published (the primary network only)
    requested_ip: str = ""  # --ip / connect --ip (inspect's IPAMConfig)


# ------------------------------------------------------------------------------------ create / remove

def create_network(config: Config, name: str, *, driver: str = "bridge", subnets: list[str] = (),  # type: ignore[assignment]
                   gateways: list[str] = (), ip_ranges: list[str] = (), internal: bool = False,  # type: ignore[assignment]
                   labels: dict[str, str] | None = None, options: dict[str, str] | None = None) -> NetworkRecord:
    """`network create`: checks, a subnet, the bridge (created now, as Docker's), the record."""
    from pyctr.runtime import state as st
    from pyctr.runtime.network import bridge as bridge_ops

    usernet.check_driver(driver)
    options = dict(options or {})
    network_dir = config.paths.network
    with ipam.locked_state(network_dir) as state:
        store = usernet.load_store(network_dir)
        usernet.check_name(name, store.networks.values())
        network_id = usernet.new_network_id()
        bridge = usernet.bridge_name(network_id, options)
        if bridge == config.network.bridge or store.by_bridge(bridge) or os.path.exists(f"/sys/class/net/{bridge}"):
            raise ConflictError(f"bridge name {bridge} is already in use")
        taken = [ipaddress.IPv4Network(config.network.subnet)]
        taken += [ipaddress.IPv4Network(n.subnet) for n in store.networks.values()]
        taken += [ipaddress.IPv4Network(b.subnet) for b in state.bridges.values()]
        plan = usernet.plan_addresses(list(subnets), list(gateways), list(ip_ranges), taken, _host_routes())
        record = NetworkRecord(network_id, name, st.now_rfc3339(), plan.subnet, plan.gateway, bridge,
                               plan.ip_range, internal, plan.user_subnet, dict(labels or {}), options, driver)
        prefixlen = ipaddress.IPv4Network(plan.subnet).prefixlen
        owner = bridge_ops.owner_tag(config.root)
        try:
            bridge_ops.ensure_bridge(bridge, plan.gateway, prefixlen, owner)
        except BaseException:
            _delete_link(bridge)
            raise
        store.networks[network_id] = record
        _save_store(config, store)
    record_network_event(config, "create", record.id, record.name, record.driver)
    return record


def record_network_event(config: Config, action: str, network_id: str, name: str, driver: str = "bridge",
                         **extra: str) -> None:
    """dockerd's LogNetworkEventWithAttributes: the network's id as the actor, its name and type (driver)."""
    from pyctr import events

    events.record(config.root, "network", action, network_id, {"name": name, "type": driver, **extra})


def _host_routes() -> list[ipaddress.IPv4Network]:
    try:
        with open("/proc/net/route") as f:
            return usernet.parse_host_routes(f.read())
    except OSError:
        return []


def remove_network(config: Config, ref: str) -> NetworkRecord:
    """`network rm`: Docker's refusal while containers are connected; then the bridge and its rules go."""
    network_dir = config.paths.network
    if ref in usernet.PREDEFINED[:3]:
        raise usernet.PredefinedNetwork(ref)
    with ipam.locked_state(network_dir) as state:
        store = usernet.load_store(network_dir)
        net = store.find(ref)
        bridge_state = state.bridges.get(net.bridge)
        if bridge_state is not None:
            _drop_dead(bridge_state)
            if bridge_state.containers:
                raise usernet.ActiveEndpoints(f"error while removing network: network {net.name} id {net.id} "
                                              "has active endpoints")
        _remove_rules(net.bridge)
        _delete_link(net.bridge)
        state.bridges.pop(net.bridge, None)
        del store.networks[net.id]
        for attached in store.attachments.values():
            attached.pop(net.id, None)
        _save_store(config, store)
        _write_dns_table(config, state, store)
    record_network_event(config, "destroy", net.id, net.name, net.driver)
    return net


def prune_networks(config: Config, label_filters: list[str] = (), without_labels: list[str] = ()  # type: ignore[assignment]
                   ) -> list[str]:
    """`network prune`: every user network without a running container, oldest name first (Docker's order);
    with `label=` filters only the networks all of them match, never one every `label!=` filter matches."""
    names = []
    for net in sorted(usernet.load_store(config.paths.network).networks.values(), key=lambda n: n.name):
        if not usernet.prune_wanted(net, list(label_filters), list(without_labels)):
            continue
        try:
            remove_network(config, net.id)
            names.append(net.name)
        except ConflictError:
            continue
    return names


def _delete_link(name: str) -> None:
    from pyctr.runtime.network import veth

    with contextlib.suppress(PyctrError):
        veth.remove_veth(name)  # deletes any link by name (a bridge too)


def _remove_rules(bridge: str) -> None:
    from pyctr.runtime.network import firewall

    with contextlib.suppress(PyctrError, OSError):
        firewall.remove(bridge)


def _save_store(config: Config, store: NetworkStore) -> None:
    """Save, forgetting the attachments of containers that no longer exist (no growth over create/rm cycles)."""
    containers = config.paths.root / "containers"
    store.attachments = {cid: nets for cid, nets in store.attachments.items()
                         if nets and (containers / cid).is_dir()}
    usernet.save_store(config.paths.network, store)


# ------------------------------------------------------------------------------------ containers' choices

def resolve_for_create(config: Config, network: str, aliases: list[str], ip: str | None) -> NetworkRecord | None:
    """run/create --network NAME: the user network (None for bridge/host/none), with Docker's refusals."""
    if network in ("default", "bridge", "host", "none") or network.startswith("container:"):
        if aliases:
            raise PyctrError("network-scoped alias is supported only for containers in user defined networks")
        if ip:
            raise PyctrError("user specified IP address is supported on user defined networks only")
        return None
    try:
        net = usernet.load_store(config.paths.network).find(network)
    except usernet.NetworkNotFound:
        raise NotFoundError(f"network {network} not found") from None  # dockerd's words; a 404 through the API
    if ip:
        usernet.check_requested_ip(net, ip, set())
    return net


def attach(config: Config, container_id: str, net: NetworkRecord, aliases: list[str], ip: str | None) -> None:
    """Record a container's configured endpoint on `net` (applied at each start)."""
    network_dir = config.paths.network
    with ipam.locked_state(network_dir):
        store = usernet.load_store(network_dir)
        if net.id not in store.networks:
            raise usernet.NetworkNotFound(net.name)
        store.attachments.setdefault(container_id, {})[net.id] = Attachment(list(aliases), ip or "")
        _save_store(config, store)


def detach(config: Config, container_id: str, network_id: str) -> None:
    """Forget a container's configured endpoint on a network (disconnect, or a failed connect)."""
    network_dir = config.paths.network
    with ipam.locked_state(network_dir):
        store = usernet.load_store(network_dir)
        store.attachments.get(container_id, {}).pop(network_id, None)
        _save_store(config, store)


def attachments_of(config: Config, container_id: str) -> dict[str, Attachment]:
    return dict(usernet.load_store(config.paths.network).attachments.get(container_id, {}))


# ------------------------------------------------------------------------------------ connect at start / live

def start_on_user_networks(config: Config, spec, container_config: dict, pid: int) -> dict:
    """The start of a container whose network is a user-defined one (container.py's hook): its endpoints, its
    /etc/hosts with its address, and the state's Network record (inspect, ps, port)."""
    from pyctr.runtime.network.hostfiles import hosts_file
    from pyctr.runtime.network.publish import PortMapping

    ports = [PortMapping.from_dict(p) for p in container_config.get("PortMappings", [])]
    endpoint = connect_at_start(config, spec.id, spec.name, spec.network.mode, pid, spec.network.dns, ports,
                                mac=spec.network.mac_address, links=spec.network.links)
    # In place: C may have bind-mounted this very file already (a rename would leave it the old one).
    with open(spec.bundle / "hosts", "w") as f:
        f.write(hosts_file(spec.hostname, endpoint.ip, spec.network.extra_hosts))
    return {
        "IPAddress": endpoint.ip, "IPPrefixLen": endpoint.prefixlen, "Gateway": endpoint.network.gateway,
        "MacAddress": endpoint.mac, "Bridge": endpoint.network.bridge,
        "Networks": endpoint_settings(spec.id, endpoints_of(config, spec.id)),
        "Ports": [{"HostIp": p.host_ip or "0.0.0.0", "HostPort": p.host_port, "ContainerPort": p.container_port,
                   "Protocol": p.proto} for p in endpoint.ports],
    }


def connect_at_start(config: Config, container_id: str, name: str, primary: str, pid: int,
                     dns_servers: list[str], ports: list | None = None, mac: str = "",
                     links: list[str] | None = None) -> Endpoint:
    """Plug a starting container into each network it is attached to (primary first, eth0), then give it
    the embedded DNS server. Returns the primary network's endpoint."""
    network_dir = config.paths.network
    store = usernet.load_store(network_dir)
    try:
        primary_net = store.find(primary)
    except usernet.NetworkNotFound:
        raise PyctrError(f"network {primary} not found") from None
    attached = store.attachments.get(container_id, {})
    order = [primary_net.id] + sorted(nid for nid in attached if nid != primary_net.id and nid in store.networks)
    endpoints = []
    try:
        for network_id in order:
            endpoints.append(connect(config, container_id, name, network_id, pid,
                                     attached.get(network_id, Attachment()), fresh=not endpoints,
                                     ports=None if endpoints else ports, mac="" if endpoints else mac,
                                     links=None if endpoints else links))
        start_dns(config, container_id, pid, _upstream(dns_servers, config))
    except BaseException:
        with contextlib.suppress(PyctrError, OSError):
            disconnect_all(config, container_id)
        raise
    return endpoints[0]


def connect_attached(config: Config, container_id: str, name: str, pid: int) -> list[Endpoint]:
    """At the start of a default-bridge container: the user networks `network connect` attached it to while
    it was stopped (eth1...). Costs one stat when no user network exists."""
    if not usernet.store_file(config.paths.network).exists():
        return []
    store = usernet.load_store(config.paths.network)
    attached = store.attachments.get(container_id, {})
    endpoints = []
    try:
        for network_id in sorted(nid for nid in attached if nid in store.networks):
            endpoints.append(connect(config, container_id, name, network_id, pid, attached[network_id]))
    except BaseException:
        with contextlib.suppress(PyctrError, OSError):
            disconnect_all(config, container_id)
        raise
    return endpoints


def connect(config: Config, container_id: str, name: str, network_id: str, pid: int, wanted: Attachment,
            fresh: bool = False, ports: list | None = None, mac: str = "",
            links: list[str] | None = None) -> Endpoint:
    """One veth from the network's bridge into process `pid`'s namespace (eth0, eth1, ... in order); `mac` is
    --mac-address (the primary network's endpoint only, as dockerd 20.10 applies Config.MacAddress)."""
    from pyctr.runtime.network import bridge as bridge_ops
    from pyctr.runtime.network import manager, sysctl, veth

    owner = bridge_ops.owner_tag(config.root)
    with ipam.locked_state(config.paths.network) as state, manager.kernel_errors(f"connect {container_id[:12]}"):
        store = usernet.load_store(config.paths.network)
        net = store.networks.get(network_id)
        if net is None:
            raise usernet.NetworkNotFound(network_id)
        if fresh:
            _forget_stale(state, container_id)
        bridge_state = user_bridge_state(state, net, config)
        _drop_dead(bridge_state)
        if container_id in bridge_state.containers:
            raise ConflictError(f"endpoint with name {name.lstrip('/')} already exists in network {net.name}")
        prefixlen = ipaddress.IPv4Network(net.subnet).prefixlen
        ifname = _next_ifname(state, container_id)  # before this network's record counts as one
        record = _allocate(bridge_state, net, container_id, wanted.ip, manager.veth_names(state))
        record.name, record.aliases, record.ifname = name.lstrip("/"), list(wanted.aliases), ifname
        if mac:
            record.mac = mac
        record.links = list(links or [])
        record.ports = [m.to_dict() for m in _resolve_ports(state, ports or [])]
        rules = manager.start_rules(bridge_state, owner)
        try:
            sysctl.enable_ip_forwarding()
            index = bridge_ops.ensure_bridge(net.bridge, net.gateway, prefixlen, owner)
            if record.ports:
                sysctl.enable_route_localnet(net.bridge)  # DNAT of 127.0.0.1:port, as on the default bridge
            first = record.ifname == "eth0"
            link = veth.ContainerLink(record.veth, record.mac, record.ip, prefixlen, net.gateway,
                                      ifname=record.ifname, default_route=first and not net.internal)
            veth.attach_container(link, pid, index)
            rules.wait()
        except BaseException:
            with contextlib.suppress(PyctrError, OSError):
                rules.wait()
            bridge_state.release(container_id)
            with contextlib.suppress(PyctrError, OSError):
                veth.remove_veth(record.veth)
            with contextlib.suppress(PyctrError, OSError):
                manager.start_rules(bridge_state, owner).wait()
            raise
        _write_dns_table(config, state, store)
        from pyctr.runtime.network.publish import PortMapping

        return Endpoint(net, record.ip, prefixlen, record.mac, list(record.aliases),
                        [PortMapping.from_dict(p) for p in record.ports])


def _resolve_ports(state: ipam.NetworkState, ports: list) -> list:
    """-p on a user network: host ports chosen as on the default bridge (IPv4 DNAT; no [::] twin proxy)."""
    if not ports:
        return []
    from pyctr.runtime.network import manager
    from pyctr.runtime.network.ports import ephemeral_range, host_port_is_free, resolve_host_ports

    return resolve_host_ports(list(ports), manager.taken_ports(state), host_port_is_free, ephemeral_range(),
                              ipv6=False)


def user_bridge_state(state: ipam.NetworkState, net: NetworkRecord, config: Config) -> ipam.BridgeState:
    """The ipam state of the network's bridge, with its firewall policy (isolated; internal: no way out)."""
    bridge_state = state.bridge(net.bridge, net.subnet)
    bridge_state.policy = {"user": True, "internal": net.internal, "isolate_from": [config.network.bridge]}
    return bridge_state


def _allocate(bridge_state: ipam.BridgeState, net: NetworkRecord, container_id: str, ip: str,
              veth_names: set[str]) -> ipam.ContainerRecord:
    from pyctr.runtime.network import veth

    name = veth.host_veth_name(container_id, veth_names)
    if ip:
        address = usernet.check_requested_ip(net, ip, bridge_state.used_addresses())
        record = ipam.ContainerRecord(container_id, address, ipam.mac_for(address), name)
        bridge_state.containers[container_id] = record
        return record
    if net.ip_range:
        used = bridge_state.used_addresses() | {str(a) for a in ipaddress.IPv4Network(net.subnet).hosts()
                                                if a not in ipaddress.IPv4Network(net.ip_range)}
        address = ipam.allocate_address(net.subnet, used | {net.gateway}, bridge_state.last)
        record = ipam.ContainerRecord(container_id, address, ipam.mac_for(address), name)
        bridge_state.containers[container_id] = record
        bridge_state.last = address
        return record
    record = bridge_state.allocate(container_id, name)
    if record.ip == net.gateway:  # a user --gateway that is not the first address
        bridge_state.release(container_id)
        record = ipam.ContainerRecord(container_id, ipam.allocate_address(
            net.subnet, bridge_state.used_addresses() | {net.gateway}, record.ip), "", name)
        record.mac = ipam.mac_for(record.ip)
        bridge_state.containers[container_id] = record
    return record


def _next_ifname(state: ipam.NetworkState, container_id: str) -> str:
    used = {rec.ifname for b in state.bridges.values() for cid, rec in b.containers.items() if cid == container_id}
    return next(f"eth{i}" for i in range(len(used) + 1) if f"eth{i}" not in used)


def _forget_stale(state: ipam.NetworkState, container_id: str) -> None:
    """Records of a container being started are stale (it cannot run twice)."""
    from pyctr.runtime.network import veth

    for bridge_state in state.bridges.values():
        record = bridge_state.release(container_id)
        if record is not None:
            with contextlib.suppress(PyctrError, OSError):
                veth.remove_veth(record.veth)


def _drop_dead(bridge_state: ipam.BridgeState) -> None:
    from pyctr.runtime.network import veth

    for cid in [cid for cid, rec in bridge_state.containers.items() if not veth.link_exists(rec.veth)]:
        bridge_state.release(cid)


def disconnect(config: Config, container_id: str, network_id: str) -> bool:
    """Remove a running container's endpoint on one network; False if it had none."""
    from pyctr.runtime.network import bridge as bridge_ops
    from pyctr.runtime.network import manager, veth

    owner = bridge_ops.owner_tag(config.root)
    with ipam.locked_state(config.paths.network) as state, manager.kernel_errors(f"disconnect {container_id[:12]}"):
        store = usernet.load_store(config.paths.network)
        net = store.networks.get(network_id)
        if net is None or net.bridge not in state.bridges:
            return False
        bridge_state = user_bridge_state(state, net, config)
        record = bridge_state.release(container_id)
        if record is None:
            return False
        rules = manager.start_rules(bridge_state, owner)
        try:
            veth.remove_veth(record.veth)
        finally:
            rules.wait()
        _write_dns_table(config, state, store)
    return True


def release_user_endpoints(config: Config, state: ipam.NetworkState, container_id: str) -> list[ipam.ContainerRecord]:
    """In manager.teardown_network's locked block: a stopping container leaves every user network.

    The DNS server lets go of the container first: its sockets are the last hold on the namespace, whose
    end then takes the veths with it (veth.remove_veth_of_dying_namespace), much faster than deleting them."""
    from pyctr.runtime.network import bridge as bridge_ops
    from pyctr.runtime.network import manager, veth

    stop_dns(config, container_id)
    store = usernet.load_store(config.paths.network)
    owner = bridge_ops.owner_tag(config.root)
    released = []
    for net in store.networks.values():
        bridge_state = state.bridges.get(net.bridge)
        record = bridge_state.release(container_id) if bridge_state is not None else None
        if record is None:
            continue
        released.append(record)
        rules = manager.start_rules(user_bridge_state(state, net, config), owner)
        try:
            veth.remove_veth_of_dying_namespace(record.veth)
        finally:
            rules.wait()
    _write_dns_table(config, state, store)
    return released


def forget_reaped(config: Config, state: ipam.NetworkState, reaped: list[str]) -> None:
    """After manager.reap_stale (same locked block): the DNS records and sockets of reaped containers go, and
    so do bridges this root labelled for a network that no longer exists (a crash inside create or rm)."""
    store = usernet.load_store(config.paths.network)
    _write_dns_table(config, state, store)
    for container_id in reaped:
        stop_dns(config, container_id)
    for bridge in _orphans(config, store, state):
        _remove_rules(bridge)
        _delete_link(bridge)
        state.bridges.pop(bridge, None)


def _orphans(config: Config, store: NetworkStore, state: ipam.NetworkState) -> list[str]:
    """Labelled for this root, no network of that bridge, never a default bridge (a changed network.bridge
    leaves the old one, kept like docker0), nothing attached."""
    from pyctr.runtime.network import bridge as bridge_ops

    owner = bridge_ops.owner_tag(config.root)
    known = {net.bridge for net in store.networks.values()} | {config.network.bridge}
    known |= {name for name, b in state.bridges.items() if not b.policy.get("user")}
    return sorted(entry for entry in os.listdir(bridge_ops.SYS_CLASS_NET)
                  if entry not in known and not entry.startswith(bridge_ops.NEWBORN_PREFIX)
                  and bridge_ops.read_owner(entry) == owner and not bridge_ops.attached_ports(entry))


def orphan_bridges(config: Config) -> list[str]:
    """Bridges this root labelled for a user network that no longer exists (a crash inside create or rm):
    what `system check` reports. Reads sysfs only."""
    if not usernet.store_file(config.paths.network).exists():
        return []
    return _orphans(config, usernet.load_store(config.paths.network), ipam.load_state(config.paths.network))


def remove_orphan_bridge(config: Config, bridge: str) -> bool:
    """`system check`'s repair: the bridge and its rules go, unless a network or a container uses it again."""
    with ipam.locked_state(config.paths.network) as state:
        if bridge not in _orphans(config, usernet.load_store(config.paths.network), state):
            return False
        _remove_rules(bridge)
        _delete_link(bridge)
        state.bridges.pop(bridge, None)
    return True


def disconnect_all(config: Config, container_id: str) -> None:
    with ipam.locked_state(config.paths.network) as state:
        release_user_endpoints(config, state, container_id)


def endpoints_of(config: Config, container_id: str) -> list[Endpoint]:
    """The live endpoints of a container on user networks (inspect's NetworkSettings.Networks)."""
    state = ipam.load_state(config.paths.network)
    store = usernet.load_store(config.paths.network)
    found = []
    for net in store.networks.values():
        record = state.bridges.get(net.bridge).containers.get(container_id) if net.bridge in state.bridges else None
        if record is not None:
            wanted = store.attachments.get(container_id, {}).get(net.id)
            found.append(Endpoint(net, record.ip, ipaddress.IPv4Network(net.subnet).prefixlen, record.mac,
                                  list(record.aliases), requested_ip=wanted.ip if wanted else ""))
    return found


def endpoint_settings(container_id: str, endpoints: list[Endpoint]) -> dict[str, dict]:
    """inspect's NetworkSettings.Networks of a running container on user networks (Docker's EndpointSettings:
    the aliases end with the short id, as dockerd adds it on user-defined networks)."""
    return {
        ep.network.name: {
            "IPAMConfig": {"IPv4Address": ep.requested_ip} if ep.requested_ip else None, "Links": None,
            "Aliases": [*ep.aliases, container_id[:12]],
            "NetworkID": ep.network.id, "EndpointID": usernet.endpoint_id(container_id, ep.network.id),
            "Gateway": ep.network.gateway if not ep.network.internal else "", "IPAddress": ep.ip,
            "IPPrefixLen": ep.prefixlen, "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "MacAddress": ep.mac, "DriverOpts": None,
        }
        for ep in endpoints
    }


def network_documents(config: Config) -> list[dict]:
    """Every network's inspect document: the built-ins (bridge, host, none) then the user networks."""
    state = ipam.load_state(config.paths.network)
    store = usernet.load_store(config.paths.network)
    root = str(config.root)
    default = state.bridges.get(config.network.bridge)
    documents = [
        usernet.predefined_document("bridge", usernet.predefined_id("bridge", root), config.network.bridge,
                                    config.network.subnet, _endpoint_view(config, default, config.network.subnet)),
        usernet.predefined_document("host", usernet.predefined_id("host", root), "", config.network.subnet, {}),
        usernet.predefined_document("none", usernet.predefined_id("none", root), "", config.network.subnet, {}),
    ]
    for net in store.networks.values():
        endpoints = _endpoint_view(config, state.bridges.get(net.bridge), net.subnet)
        documents.append(usernet.inspect_document(net, endpoints))
    return documents


def _endpoint_view(config: Config, bridge_state: ipam.BridgeState | None, subnet: str) -> dict[str, dict]:
    if bridge_state is None:
        return {}
    from pyctr.runtime.network import veth

    prefixlen = ipaddress.IPv4Network(subnet).prefixlen
    containers = config.paths.root / "containers"
    return {cid: {"name": rec.name or _container_name(containers, cid), "ip": rec.ip, "prefixlen": prefixlen,
                  "mac": rec.mac}
            for cid, rec in bridge_state.containers.items() if veth.link_exists(rec.veth)}


def _container_name(containers_dir: Path, container_id: str) -> str:
    """A default-bridge container's name (its ipam record keeps none), from its config.json."""
    import json

    try:
        with open(containers_dir / container_id / "config.json") as f:
            return str(json.load(f).get("Name", "")).lstrip("/") or container_id[:12]
    except (OSError, ValueError, AttributeError):
        return container_id[:12]


# ------------------------------------------------------------------------------------ DNS

def _write_dns_table(config: Config, state: ipam.NetworkState, store: NetworkStore) -> None:
    endpoints: dict[str, list[dict]] = {}
    for net in store.networks.values():
        bridge_state = state.bridges.get(net.bridge)
        if bridge_state is None:
            continue
        endpoints[net.id] = [{"id": cid, "name": rec.name, "aliases": rec.aliases, "ip": rec.ip, "links": rec.links}
                             for cid, rec in bridge_state.containers.items()]
    path = config.paths.network / "dns.json"
    table = usernet.dns_table(store.networks, endpoints)
    if not table["networks"] and not path.exists():
        return
    atomic_write_json(path, table, mode=0o600, durable=False)


def _upstream(dns_servers: list[str], config: Config) -> list[str]:
    """Where names the embedded server does not know go: --dns, else config's, else the host's resolv.conf
    (asked from the host's namespace, so a loopback resolver such as systemd-resolved's works)."""
    if dns_servers:
        return list(dns_servers)
    if config.network.dns:
        return list(config.network.dns)
    try:
        with open("/etc/resolv.conf") as f:
            text = f.read()
    except OSError:
        return []
    return [w[1] for w in (line.split() for line in text.splitlines()) if len(w) >= 2 and w[0] == "nameserver"]


def start_dns(config: Config, container_id: str, pid: int, upstream: list[str]) -> None:
    """Bind 127.0.0.11:53 inside the container's namespace and hand the socket to the DNS server."""
    from pyctr.runtime.network import veth
    from pyctr.runtime.network.dns_server import send_command

    made: list[socket.socket] = []

    def bind() -> None:
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        made.append(udp)
        udp.bind((DNS_ADDRESS, 53))
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        made.append(tcp)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind((DNS_ADDRESS, 53))
        tcp.listen(16)

    try:
        veth.call_in_netns(pid, bind)
        words = ["add", container_id, str(pid), ",".join(upstream) or "-"]
        fds = [sock.fileno() for sock in made]
        reply = _with_server(config, lambda: send_command(str(config.paths.network), words, fds))
    except OSError as e:
        raise RuntimeFailure(f"cannot start the embedded DNS server for {container_id[:12]}: {e}") from None
    finally:
        for sock in made:
            sock.close()
    if reply not in ("ok", "gone"):
        raise RuntimeFailure(f"the embedded DNS server refused container {container_id[:12]}: {reply}")


def stop_dns(config: Config, container_id: str) -> None:
    from pyctr.runtime.network.dns_server import send_command

    with contextlib.suppress(OSError):
        send_command(str(config.paths.network), ["del", container_id], timeout=1.0)


def _with_server(config: Config, request):
    """Run `request` against the DNS server, starting one (and retrying) when none answers."""
    last: OSError | None = None
    for _ in range(3):
        try:
            return request()
        except OSError as e:
            last = e
        _spawn_dns_server(config)
    raise last or OSError("no DNS server")


def _spawn_dns_server(config: Config) -> None:
    from pyctr.runtime.network.dns_server import control_path, send_command

    network_dir = str(config.paths.network)
    process = subprocess.Popen([sys.executable, "-I", "-S", str(DNS_SCRIPT), network_dir],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True, cwd="/")  # holds no directory of its starter's
    try:
        process.wait(DNS_START_TIMEOUT)  # it forks the server and leaves at once
    except subprocess.TimeoutExpired:
        _STARTED.append(process)
    deadline = time.monotonic() + DNS_START_TIMEOUT
    while time.monotonic() < deadline:
        if os.path.exists(control_path(network_dir)):
            with contextlib.suppress(OSError):
                if send_command(network_dir, ["ping"], timeout=1.0) == "ok":
                    return
        time.sleep(0.003)


def dns_server_pids(config: Config) -> list[int]:
    """The DNS server processes of this root (for leak checks and `system check`)."""
    needle = [str(DNS_SCRIPT).encode(), str(config.paths.network).encode()]
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                args = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if all(n in args for n in needle):
                pids.append(int(entry))
    return pids


# ------------------------------------------------------------------------------------ network connect / disconnect

def user_network(config: Config, ref: str) -> NetworkRecord:
    """The user network `network connect/disconnect` may name (the built-ins only through run --network)."""
    if ref in ("bridge", "host", "none"):
        raise PyctrError(f"pyctr connects containers to the {ref} network only with run/create --network {ref}")
    return usernet.load_store(config.paths.network).find(ref)


def _network_mode(record) -> str:
    return ((record.config.get("Spec") or {}).get("network") or {}).get("mode", "bridge")


def connect_container(config: Config, container_ref: str, network_ref: str, aliases: list[str],
                      ip: str | None) -> None:
    """`network connect` (CLI and API): a running container at once (eth1, eth2...), a stopped one at its start."""
    from pyctr.runtime.state import ContainerStore

    net = user_network(config, network_ref)
    record = ContainerStore(config.paths).get(container_ref)
    if _network_mode(record) in ("host", "none"):
        raise PyctrError(f"container cannot be connected to network endpoints: {_network_mode(record)}")
    if ip:
        usernet.check_requested_ip(net, ip, set())
    previous = attachments_of(config, record.id).get(net.id)
    if previous is not None and record.state.running:
        raise PyctrError(f"endpoint with name {record.config['Name'].lstrip('/')} already exists in network "
                         f"{net.name}", exit_code=1)
    attach(config, record.id, net, list(aliases), ip)
    if record.state.running:
        try:
            connect(config, record.id, record.config["Name"], net.id, record.state.pid,
                    Attachment(list(aliases), ip or ""))
        except BaseException:
            detach(config, record.id, net.id)
            raise
        record_endpoints(config, record.id)
        record_network_event(config, "connect", net.id, net.name, net.driver, container=record.id)


def disconnect_container(config: Config, container_ref: str, network_ref: str, force: bool = False) -> None:
    """`network disconnect` (CLI and API): the live endpoint goes now, the configured one for good."""
    from pyctr.runtime.state import ContainerStore

    net = user_network(config, network_ref)
    record = ContainerStore(config.paths).get(container_ref)
    attached = net.id in attachments_of(config, record.id)
    live = disconnect(config, record.id, net.id) if record.state.running else False
    if not attached and not live and not force:
        raise PyctrError(f"container {record.id} is not connected to network {net.name}")
    detach(config, record.id, net.id)
    if live:
        record_endpoints(config, record.id)
        record_network_event(config, "disconnect", net.id, net.name, net.driver, container=record.id)


def record_endpoints(config: Config, container_id: str) -> None:
    """Keep the container's state (inspect's NetworkSettings.Networks) in step with its live endpoints."""
    from dataclasses import replace

    from pyctr.runtime.state import ContainerStore

    networks = endpoint_settings(container_id, endpoints_of(config, container_id))

    def update(state):
        if not state.running:
            return None
        return replace(state, network={**(state.network or {}), "Networks": networks})

    ContainerStore(config.paths).update_state(container_id, update)
