"""Address management for the bridge network and the state file that records it.

One JSON file (network/ipam.json) holds, per bridge, the subnet and every
container's address, MAC, host veth and published ports: everything needed to
rebuild the NAT rules or clean up after a crash. It is only read and written
under network/ipam.lock (flock), so parallel `pyctr run`s never hand out the
same address or port, and written atomically so a crash never corrupts it.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pyctr.errors import RuntimeFailure
from pyctr.fsutil import atomic_write_json, ensure_dir, file_lock, read_json

STATE_VERSION = 1


def gateway_address(subnet: str) -> str:
    """The bridge's own address: the first host of the subnet (Docker's choice)."""
    return str(next(ipaddress.ip_network(subnet).hosts()))


def mac_for(ip: str) -> str:
    """Docker's MAC for an address: 02:42 followed by the four IPv4 bytes."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(ip).packed)


def allocate_address(subnet: str, used: set[str], last: str | None = None) -> str:
    """The next free host address after `last` (wrapping), skipping the gateway.

    Handing addresses out round-robin like Docker avoids reusing an address
    another host still has in its ARP cache or conntrack table.
    """
    network = ipaddress.ip_network(subnet)
    first = int(network.network_address) + 2  # +1 is the gateway
    final = int(network.broadcast_address) - 1
    size = final - first + 1
    if size <= 0:
        raise RuntimeFailure(f"no available IPv4 addresses on network {subnet}")
    start = first
    if last is not None and ipaddress.ip_address(last) in network:
        start = int(ipaddress.IPv4Address(last)) + 1
    for step in range(size):
        candidate = first + (start - first + step) % size
        address = str(ipaddress.IPv4Address(candidate))
        if address not in used:
            return address
    raise RuntimeFailure(f"no available IPv4 addresses on network {subnet}: all {size} addresses are in use")


@dataclass
class ContainerRecord:
    """What setup_network installed for one container (enough to undo it)."""

    container_id: str
    ip: str
    mac: str
    veth: str
    ports: list[dict] = field(default_factory=list)
    proxy: dict = field(default_factory=dict)  # the IPv6 userland proxy: {"pid": N, "ports": [[::] mappings]}
    # user-defined networks (usermanager.py): the names the embedded DNS answers, the interface in the container
    name: str = ""
    aliases: list[str] = field(default_factory=list)
    ifname: str = "eth0"
    links: list[str] = field(default_factory=list)  # h-misc: --link NAME:ALIAS on a user network (its DNS alias)

    def to_dict(self) -> dict:
        data: dict = {"ip": self.ip, "mac": self.mac, "veth": self.veth, "ports": self.ports}
        if self.proxy:
            data["proxy"] = self.proxy
        if self.name:
            data["name"] = self.name
        if self.aliases:
            data["aliases"] = self.aliases
        if self.ifname != "eth0":
            data["ifname"] = self.ifname
        if self.links:
            data["links"] = self.links
        return data

    @classmethod
    def from_dict(cls, container_id: str, data: dict) -> ContainerRecord:
        return cls(container_id, data["ip"], data["mac"], data["veth"], list(data.get("ports", [])),
                   dict(data.get("proxy") or {}), data.get("name", ""), list(data.get("aliases") or []),
                   data.get("ifname", "eth0"), list(data.get("links") or []))


@dataclass
class BridgeState:
    """One bridge network: its subnet, round-robin cursor and containers."""

    bridge: str
    subnet: str
    last: str | None = None
    containers: dict[str, ContainerRecord] = field(default_factory=dict)
    # a user-defined network's firewall policy ({"user": True, "internal": bool, "isolate_from": [bridges]});
    # empty for the default bridge
    policy: dict = field(default_factory=dict)

    def used_addresses(self) -> set[str]:
        return {record.ip for record in self.containers.values()}

    def allocate(self, container_id: str, veth: str) -> ContainerRecord:
        """Give `container_id` an address (its existing one if it already has one)."""
        if container_id in self.containers:
            return self.containers[container_id]
        ip = allocate_address(self.subnet, self.used_addresses(), self.last)
        record = ContainerRecord(container_id, ip, mac_for(ip), veth)
        self.containers[container_id] = record
        self.last = ip
        return record

    def release(self, container_id: str) -> ContainerRecord | None:
        return self.containers.pop(container_id, None)

    def to_dict(self) -> dict:
        data = {
            "subnet": self.subnet,
            "last": self.last,
            "containers": {cid: rec.to_dict() for cid, rec in sorted(self.containers.items())},
        }
        if self.policy:
            data["policy"] = self.policy
        return data

    @classmethod
    def from_dict(cls, bridge: str, data: dict) -> BridgeState:
        containers = {cid: ContainerRecord.from_dict(cid, rec) for cid, rec in data.get("containers", {}).items()}
        return cls(bridge, data["subnet"], data.get("last"), containers, dict(data.get("policy") or {}))


@dataclass
class NetworkState:
    """Every bridge pyctr manages under one root."""

    bridges: dict[str, BridgeState] = field(default_factory=dict)

    def bridge(self, name: str, subnet: str) -> BridgeState:
        """The state of bridge `name`, created empty if new (a changed subnet applies once it is empty)."""
        state = self.bridges.get(name)
        if state is None or (not state.containers and state.subnet != subnet):
            state = BridgeState(name, subnet, state.last if state else None)
            self.bridges[name] = state
        return state

    def find(self, container_id: str, bridge: str | None = None) -> tuple[BridgeState, ContainerRecord] | None:
        """The container's record (on `bridge` only, when given: a container may be on user networks too)."""
        for state in self.bridges.values():
            if bridge is not None and state.bridge != bridge:
                continue
            record = state.containers.get(container_id)
            if record is not None:
                return state, record
        return None

    def to_dict(self) -> dict:
        return {
            "version": STATE_VERSION,
            "networks": {name: state.to_dict() for name, state in sorted(self.bridges.items())},
        }

    @classmethod
    def from_dict(cls, data: dict) -> NetworkState:
        networks = data.get("networks", {})
        return cls({name: BridgeState.from_dict(name, value) for name, value in networks.items()})


def state_file(network_dir: Path) -> Path:
    return network_dir / "ipam.json"


def lock_file(network_dir: Path) -> Path:
    return network_dir / "ipam.lock"


def load_state(network_dir: Path) -> NetworkState:
    path = state_file(network_dir)
    try:
        data = read_json(path)
    except FileNotFoundError:
        return NetworkState()
    except (OSError, ValueError) as e:
        raise RuntimeFailure(f"network state {path} is unreadable: {e}") from None
    try:
        return NetworkState.from_dict(data)
    except (KeyError, TypeError, AttributeError) as e:
        raise RuntimeFailure(f"network state {path} is malformed: missing {e}") from None


def save_state(network_dir: Path, state: NetworkState) -> None:
    atomic_write_json(state_file(network_dir), state.to_dict())


@contextlib.contextmanager
def locked_state(network_dir: Path) -> Iterator[NetworkState]:
    """Hold the network lock, yield the state, save it when the block succeeds.

    Nothing is written if the block raises, so callers record a kernel change
    in the state only once it is made (and undo partial changes before raising).
    """
    ensure_dir(network_dir)
    with file_lock(lock_file(network_dir)):
        state = load_state(network_dir)
        before = state.to_dict()
        yield state
        if state.to_dict() != before:
            save_state(network_dir, state)


def allocate(network_dir: Path, bridge: str, subnet: str, container_id: str, veth: str = "") -> ContainerRecord:
    """Reserve an address for a container (kernel untouched): IPAM alone, under the lock."""
    with locked_state(network_dir) as state:
        return state.bridge(bridge, subnet).allocate(container_id, veth)


def release(network_dir: Path, container_id: str) -> ContainerRecord | None:
    """Forget a container's address (kernel untouched); None if it had none."""
    with locked_state(network_dir) as state:
        found = state.find(container_id)
        if found is None:
            return None
        return found[0].release(container_id)
