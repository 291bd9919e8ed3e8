"""User-defined bridge networks: the model, its store and every decision about it (pure where it can be).

A user network is Docker's `docker network create` bridge: its own Linux bridge (`br-<id12>` unless
`-o com.docker.network.bridge.name`), its own subnet from Docker's default pools (172.17-31.0.0/16, then
192.168.x.0/20) never overlapping another network, the default bridge or a host route, its own nftables table
(masquerade unless --internal, isolation from every other bridge) and name resolution through the embedded DNS
server (dns_server.py). Definitions live in `network/networks.json`, written atomically under the same lock
as ipam.json (network/ipam.lock): live endpoints are ipam's ContainerRecords on the network's bridge, the
configured ones (`--network-alias`, `--ip`, `network connect` of a stopped container) are the attachments.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pyctr.errors import ClientError, ConflictError, NotFoundError, PyctrError, UsageError
from pyctr.fsutil import atomic_write_json, read_json

STORE_VERSION = 1
PREDEFINED = ("bridge", "host", "none", "default")
BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
IFNAME_PATTERN = re.compile(r"^[a-zA-Z0-9_.-]{1,15}$")
UNSUPPORTED_DRIVERS = ("overlay", "macvlan", "ipvlan")


class NetworkNotFound(NotFoundError):
    """docker-cli words a missing network itself: `Error: No such network: x`."""

    def __init__(self, ref: str) -> None:
        super().__init__(f"Error: No such network: {ref}")


class PredefinedNetwork(PyctrError):
    """Removing bridge/host/none: dockerd answers 403 Forbidden (the CLI exits 1)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name} is a pre-defined network and cannot be removed", exit_code=1)


class ActiveEndpoints(ConflictError):
    """`network rm` while containers are connected: libnetwork's ActiveEndpointsError, 403 Forbidden in dockerd
    (a ConflictError for the CLI, whose exit code and words do not change)."""


@dataclass
class NetworkRecord:
    """One user-defined network as `network create` made it."""

    id: str
    name: str
    created: str
    subnet: str
    gateway: str
    bridge: str
    ip_range: str = ""
    internal: bool = False
    user_subnet: bool = False  # --subnet given: --ip is allowed (Docker's rule)
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    driver: str = "bridge"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> NetworkRecord:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass
class Attachment:
    """A container's configured endpoint on a user network (kept while the container exists)."""

    aliases: list[str] = field(default_factory=list)
    ip: str = ""


@dataclass
class NetworkStore:
    """networks.json: the networks and the containers' configured attachments to them."""

    networks: dict[str, NetworkRecord] = field(default_factory=dict)
    attachments: dict[str, dict[str, Attachment]] = field(default_factory=dict)  # container id -> net id -> ...

    def to_dict(self) -> dict:
        return {
            "version": STORE_VERSION,
            "networks": {nid: rec.to_dict() for nid, rec in sorted(self.networks.items())},
            "attachments": {cid: {nid: asdict(a) for nid, a in sorted(nets.items())}
                            for cid, nets in sorted(self.attachments.items()) if nets},
        }

    @classmethod
    def from_dict(cls, data: dict) -> NetworkStore:
        networks = {nid: NetworkRecord.from_dict(rec) for nid, rec in (data.get("networks") or {}).items()}
        attachments = {cid: {nid: Attachment(list(a.get("aliases") or []), a.get("ip") or "")
                             for nid, a in nets.items()}
                       for cid, nets in (data.get("attachments") or {}).items()}
        return cls(networks, attachments)

    def find(self, ref: str) -> NetworkRecord:
        """Docker's lookup order: full id, exact name, then a unique id prefix."""
        return find_network(list(self.networks.values()), ref)

    def by_bridge(self, bridge: str) -> NetworkRecord | None:
        return next((n for n in self.networks.values() if n.bridge == bridge), None)


def store_file(network_dir: Path) -> Path:
    return network_dir / "networks.json"


def load_store(network_dir: Path) -> NetworkStore:
    path = store_file(network_dir)
    try:
        return NetworkStore.from_dict(read_json(path))
    except FileNotFoundError:
        return NetworkStore()
    except (OSError, ValueError, TypeError, AttributeError, KeyError) as e:
        raise PyctrError(f"network store {path} is unreadable: {e}") from None


def save_store(network_dir: Path, store: NetworkStore) -> None:
    atomic_write_json(store_file(network_dir), store.to_dict())


# ---------------------------------------------------------------------------------------- lookups

def find_network(networks: list[NetworkRecord], ref: str) -> NetworkRecord:
    for net in networks:
        if net.id == ref:
            return net
    for net in networks:
        if net.name == ref:
            return net
    matches = [n for n in networks if ref and n.id.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise ConflictError(f"network {ref} is ambiguous ({len(matches)} matches found based on ID prefix)")
    raise NetworkNotFound(ref)


def find_document(documents: list[dict], ref: str) -> dict:
    """A network's inspect document by full id, exact name, then a unique id prefix (built-ins included)."""
    for key in ("Id", "Name"):
        for document in documents:
            if document[key] == ref:
                return document
    matches = [d for d in documents if ref and d["Id"].startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    raise NetworkNotFound(ref)


def new_network_id() -> str:
    return secrets.token_hex(32)


def check_name(name: str, existing: Iterable[NetworkRecord]) -> None:
    """Docker's refusals for a new network's name (pre-defined, clash) plus a safe character set."""
    if name in PREDEFINED:
        raise ConflictError(f"{name} is a pre-defined network and cannot be created")
    if not NAME_PATTERN.match(name) or len(name) > 128:
        raise UsageError(f'invalid network name "{name}": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed'
                         ", at most 128 characters")
    if any(n.name == name for n in existing):
        raise ConflictError(f"network with name {name} already exists")


def check_driver(driver: str) -> None:
    if driver == "bridge":
        return
    if driver in ("host", "null"):
        raise ConflictError(f'only one instance of "{driver}" network is allowed')
    if driver in UNSUPPORTED_DRIVERS:
        raise UsageError(f'network driver "{driver}" is not supported by pyctr: only "bridge" is')
    raise PyctrError(f'plugin "{driver}" not found')


def bridge_name(network_id: str, options: dict[str, str]) -> str:
    """`br-<id12>` (Docker's) unless -o com.docker.network.bridge.name names it."""
    name = options.get(BRIDGE_NAME_OPTION) or f"br-{network_id[:12]}"
    if not IFNAME_PATTERN.match(name) or name in (".", ".."):
        raise UsageError(f"invalid bridge name {name!r}: at most 15 characters of [a-zA-Z0-9_.-]")
    return name


def parse_key_values(items: Iterable[str], what: str) -> dict[str, str]:
    """--label / -o values: KEY=VALUE (a bare KEY is an empty value, as docker-cli's ConvertKVStringsToMap)."""
    result = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise UsageError(f"invalid {what} {item!r}: empty key")
        result[key] = value
    return result


# ---------------------------------------------------------------------------------------- addresses

def docker_default_pools() -> list[ipaddress.IPv4Network]:
    """Docker 20.10's default address pools in its order: 172.17-31.0.0/16, then 192.168.0.0/16 in /20s."""
    pools = [ipaddress.IPv4Network(f"172.{i}.0.0/16") for i in range(17, 32)]
    pools += list(ipaddress.IPv4Network("192.168.0.0/16").subnets(new_prefix=20))
    return pools


def parse_host_routes(proc_net_route: str) -> list[ipaddress.IPv4Network]:
    """The host's IPv4 route destinations from /proc/net/route (little-endian hex), without the default route."""
    routes = []
    for line in proc_net_route.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        try:
            destination = int(fields[1], 16).to_bytes(4, "little")
            mask = int(fields[7], 16).to_bytes(4, "little")
        except ValueError:
            continue
        prefix = bin(int.from_bytes(mask, "big")).count("1")
        if prefix == 0:
            continue
        routes.append(ipaddress.IPv4Network((int.from_bytes(destination, "big"), prefix), strict=False))
    return routes


def allocate_subnet(taken: Iterable[ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
    """The first default pool that overlaps nothing taken (networks, the default bridge, host routes)."""
    taken = list(taken)
    for candidate in docker_default_pools():
        if not any(candidate.overlaps(t) for t in taken):
            return candidate
    raise PyctrError("could not find an available, non-overlapping IPv4 address pool among the defaults "
                     "to assign to the network")


def parse_cidr(text: str) -> ipaddress.IPv4Network:
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ClientError(f"Error: invalid CIDR address: {text}") from None
    if network.version != 4:
        raise UsageError(f"IPv6 subnets are not supported by pyctr: {text}")
    return network  # type: ignore[return-value]


@dataclass(frozen=True)
class AddressPlan:
    subnet: str
    gateway: str
    ip_range: str
    user_subnet: bool


def plan_addresses(subnets: list[str], gateways: list[str], ip_ranges: list[str],
                   taken: list[ipaddress.IPv4Network], host_routes: list[ipaddress.IPv4Network]) -> AddressPlan:
    """The network's subnet, gateway and range: docker-cli's checks, then the daemon's overlap checks."""
    if len(subnets) > 1:
        raise UsageError("pyctr supports one IPv4 --subnet per network")
    if not subnets and (gateways or ip_ranges):
        raise ClientError("Error: every ip-range or gateway must have a corresponding subnet")
    if not subnets:
        subnet = allocate_subnet(taken + host_routes)
        return AddressPlan(str(subnet), str(next(subnet.hosts())), "", False)
    subnet = parse_cidr(subnets[0])
    ip_range = ""
    if ip_ranges:
        if len(ip_ranges) > 1:
            raise UsageError("pyctr supports one --ip-range per network")
        rng = parse_cidr(ip_ranges[0])
        if not rng.subnet_of(subnet):
            raise ClientError(f"Error: no matching subnet for range {ip_ranges[0]}")
        ip_range = str(rng)
    gateway = str(next(subnet.hosts(), subnet.network_address))
    if gateways:
        if len(gateways) > 1:
            raise ClientError(f"Error: cannot configure multiple gateways ({', '.join(gateways)}) for the same subnet")
        try:
            address = ipaddress.IPv4Address(gateways[0])
        except ValueError:
            raise ClientError(f'Error: invalid argument "{gateways[0]}" for "--gateway" flag: invalid string being '
                              "converted to IP address") from None
        if address not in subnet:
            raise ClientError(f"Error: no matching subnet for gateway {gateways[0]}")
        gateway = str(address)
    if subnet.prefixlen > 30:
        raise UsageError(f"subnet {subnet} is too small: a bridge network needs at least a /30")
    for other in taken:
        if subnet.overlaps(other):
            raise ConflictError("Pool overlaps with other one on this address space")
    for route in host_routes:
        if subnet.overlaps(route):
            raise ConflictError(f"Pool overlaps with other one on this address space: {subnet} overlaps "
                                f"the host's route to {route}")
    return AddressPlan(str(subnet), gateway, ip_range, True)


def check_requested_ip(net: NetworkRecord, ip: str, used: set[str]) -> str:
    """`--ip` / `connect --ip` on this network: Docker's rules (user-configured subnet, in range, free)."""
    if not net.user_subnet:
        raise PyctrError("user specified IP address is supported only when connecting to networks "
                         "with user configured subnets")
    try:
        address = ipaddress.IPv4Address(ip)
    except ValueError:
        raise UsageError(f"invalid IPv4 address: {ip}") from None
    subnet = ipaddress.IPv4Network(net.subnet)
    if address not in subnet or address in (subnet.network_address, subnet.broadcast_address) \
            or str(address) == net.gateway:
        raise PyctrError(f"Invalid address {ip}: It does not belong to any of this network's subnets")
    if str(address) in used:
        raise ConflictError(f"Address already in use: {ip}")
    return str(address)


# ---------------------------------------------------------------------------------------- documents

def endpoint_id(container_id: str, network_id: str) -> str:
    import hashlib

    return hashlib.sha256(f"{network_id}/{container_id}".encode()).hexdigest()


def inspect_document(net: NetworkRecord, endpoints: dict[str, dict]) -> dict:
    """Docker 20.10's `network inspect` of a bridge network; `endpoints` = container id -> Name/ip/prefix/mac."""
    config = {"Subnet": net.subnet, "Gateway": net.gateway}
    if net.ip_range:
        config["IPRange"] = net.ip_range
    containers = {
        cid: {"Name": ep["name"], "EndpointID": endpoint_id(cid, net.id), "MacAddress": ep["mac"],
              "IPv4Address": f"{ep['ip']}/{ep['prefixlen']}", "IPv6Address": ""}
        for cid, ep in sorted(endpoints.items())
    }
    return {
        "Name": net.name, "Id": net.id, "Created": net.created, "Scope": "local", "Driver": net.driver,
        "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": {}, "Config": [config]},
        "Internal": net.internal, "Attachable": False, "Ingress": False,
        "ConfigFrom": {"Network": ""}, "ConfigOnly": False,
        "Containers": containers, "Options": dict(net.options), "Labels": dict(net.labels),
    }


def predefined_document(name: str, network_id: str, bridge: str, subnet: str, endpoints: dict[str, dict]) -> dict:
    """The built-in networks as Docker lists them: bridge (pyctr's default bridge), host, none."""
    driver = {"bridge": "bridge", "host": "host", "none": "null"}[name]
    config = [{"Subnet": subnet, "Gateway": str(next(ipaddress.ip_network(subnet).hosts()))}] \
        if name == "bridge" else []
    options = {}
    if name == "bridge":
        options = {
            "com.docker.network.bridge.default_bridge": "true", "com.docker.network.bridge.enable_icc": "true",
            "com.docker.network.bridge.enable_ip_masquerade": "true",
            "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
            "com.docker.network.bridge.name": bridge, "com.docker.network.driver.mtu": "1500",
        }
    document = inspect_document(NetworkRecord(network_id, name, "0001-01-01T00:00:00Z", subnet, "", bridge,
                                              driver=driver), endpoints)
    document["IPAM"]["Config"] = config
    document["Options"] = options
    return document


def predefined_id(name: str, root: str) -> str:
    """A stable id per root for the built-in networks (Docker's are random per daemon)."""
    import hashlib

    return hashlib.sha256(f"pyctr-{name}:{root}".encode()).hexdigest()


# ---------------------------------------------------------------------------------------- ls filters

LS_FILTERS = ("name", "id", "driver", "label", "type", "scope", "dangling")


def parse_filters(items: Iterable[str]) -> dict[str, list[str]]:
    filters: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ClientError(f"Error: bad format of filter (expected name=value): {item}")
        if key not in LS_FILTERS:
            raise PyctrError(f"Invalid filter '{key}'")
        filters.setdefault(key, []).append(value)
    for value in filters.get("type", []):
        if value not in ("custom", "builtin"):
            raise PyctrError(f"invalid filter: 'type'='{value}'")
    return filters


def _search(pattern: str, text: str) -> bool:
    """moby's filters.Match: equal, or the value taken as a regular expression matches."""
    if pattern == text:
        return True
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False


def _labels_match(wanted: list[str], labels: dict[str, str]) -> bool:
    for item in wanted:
        key, sep, value = item.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


def prune_wanted(net: NetworkRecord, label_filters: list[str], without_labels: list[str]) -> bool:
    """moby's prune filters: every `label=` matches, and not every `label!=` does (testcontainers' Ryuk prunes
    its session's networks by label)."""
    if not _labels_match(label_filters, net.labels):
        return False
    return not (without_labels and _labels_match(without_labels, net.labels))


def matches(document: dict, filters: dict[str, list[str]], in_use: bool) -> bool:
    """Whether a network (its inspect document) passes every filter (values of one key are ORed)."""
    checks = {
        "name": lambda v: _search(v, document["Name"]),
        "id": lambda v: _search(v, document["Id"]),
        "driver": lambda v: v == document["Driver"],
        "scope": lambda v: v == document["Scope"],
        "type": lambda v: (v == "builtin") == (document["Name"] in ("bridge", "host", "none")),
        "dangling": lambda v: (v.lower() in ("1", "true")) == (not in_use and document["Name"]
                                                                 not in ("bridge", "host", "none")),
    }
    for key, values in filters.items():
        if key == "label":
            if not _labels_match(values, document.get("Labels") or {}):
                return False
        elif not any(checks[key](v) for v in values):
            return False
    return True


def ls_row(document: dict, no_trunc: bool) -> dict:
    """docker-cli's networkContext fields."""
    labels = document.get("Labels") or {}
    return {
        "ID": document["Id"] if no_trunc else document["Id"][:12], "Name": document["Name"],
        "Driver": document["Driver"], "Scope": document["Scope"],
        "IPv6": "true" if document["EnableIPv6"] else "false",
        "Internal": "true" if document["Internal"] else "false",
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        "CreatedAt": document["Created"],
    }


LS_HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "IPv6": "IPV6",
              "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT"}
LS_DEFAULT_FORMAT = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"


# ---------------------------------------------------------------------------------------- DNS table

def dns_names(container_id: str, container_name: str, aliases: Iterable[str], network_name: str) -> list[str]:
    """The names a container answers to on one network: its name, aliases and short id, bare and
    suffixed with the network's name (Docker answers `c1` and `c1.mynet`), lower-case."""
    bare = [container_name.lstrip("/"), *aliases, container_id[:12]]
    names = []
    for name in bare:
        if not name:
            continue
        for candidate in (name, f"{name}.{network_name}"):
            candidate = candidate.lower().rstrip(".")
            if candidate not in names:
                names.append(candidate)
    return names


def dns_table(networks: dict[str, NetworkRecord], endpoints: dict[str, list[dict]]) -> dict:
    """The records file the DNS server answers from.

    `endpoints` = network id -> [{"id", "name", "aliases", "ip", "links"}]. The result holds, per network id,
    each name -> its addresses and (`reverse`) each address's in-addr.arpa name -> `name.network` (PTR), and per
    container id the networks it is on (what a query from its socket may see) and its --link aliases."""
    from pyctr.runtime.network.dns_server import reverse_name

    table: dict = {"networks": {}, "containers": {}, "reverse": {}}
    for network_id, members in sorted(endpoints.items()):
        net = networks.get(network_id)
        if net is None:
            continue
        names: dict[str, list[str]] = {}
        reverse: dict[str, str] = {}
        for member in members:
            for name in dns_names(member["id"], member["name"], member.get("aliases", []), net.name):
                names.setdefault(name, [])
                if member["ip"] not in names[name]:
                    names[name].append(member["ip"])
            reverse.setdefault(reverse_name(member["ip"]),
                               f"{(member['name'] or member['id'][:12]).lstrip('/')}.{net.name}".lower())
            table["containers"].setdefault(member["id"], {"networks": [], "internal": True})
            entry = table["containers"][member["id"]]
            for link in member.get("links") or []:
                target, _, alias = link.partition(":")
                entry.setdefault("links", {})[(alias or target).lower()] = target.lower().lstrip("/")
            entry["networks"].append(network_id)
            entry["internal"] = entry["internal"] and net.internal
        table["networks"][network_id] = names
        table["reverse"][network_id] = reverse
    return table
