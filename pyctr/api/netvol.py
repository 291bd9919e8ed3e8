"""Pure conversions for the network and volume endpoints: request bodies and filters -> the arguments of
pyctr.runtime.network.usermanager and pyctr.runtime.volumes, and their records -> Docker's JSON. Tested in
tests/unit/test_api_netvol.py; the handlers (networks.py, volumes.py) only call these and the packages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyctr.errors import UsageError

NETWORK_LIST_FILTERS = ("name", "id", "driver", "label", "type", "scope", "dangling")
VOLUME_LIST_FILTERS = ("dangling", "name", "driver", "label")
PRUNE_FILTERS = ("label", "label!")


def _dict(value: Any, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UsageError(f"{what} must be an object")
    return value


def _string_map(value: Any, what: str) -> dict[str, str]:
    mapping = _dict(value, what)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
        raise UsageError(f"{what} must map strings to strings")
    return dict(mapping)


def _strings(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"{what} must be a list of strings")
    return list(value)


# ------------------------------------------------------------------------------------------------ networks

@dataclass
class NetworkCreate:
    """POST /networks/create's body, as usermanager.create_network takes it."""

    name: str
    driver: str = "bridge"
    subnets: list[str] = field(default_factory=list)
    gateways: list[str] = field(default_factory=list)
    ip_ranges: list[str] = field(default_factory=list)
    internal: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)


def network_create(body: Any) -> NetworkCreate:
    """Name, Driver, IPAM {Driver, Config [{Subnet, Gateway, IPRange}]}, Internal, Labels, Options. pyctr always
    refuses a second network of one name (CheckDuplicate, which compose and docker-cli send, is its only mode);
    IPv6 and other IPAM drivers are refused as what pyctr cannot do."""
    body = _dict(body, "the request body")
    name = body.get("Name")
    if not name or not isinstance(name, str):
        raise UsageError("network name is required")  # dockerd 20.10: a 400 for an empty name
    if body.get("EnableIPv6"):
        raise UsageError("IPv6 networks are not supported by pyctr")
    ipam = _dict(body.get("IPAM"), "IPAM")
    if (ipam.get("Driver") or "default") != "default":
        raise UsageError(f'IPAM driver "{ipam["Driver"]}" is not supported by pyctr: only "default" is')
    configs = ipam.get("Config") or []
    if not isinstance(configs, list):
        raise UsageError("IPAM.Config must be a list")
    request = NetworkCreate(name, driver=body.get("Driver") or "bridge", internal=bool(body.get("Internal")),
                           labels=_string_map(body.get("Labels"), "Labels"),
                           options=_string_map(body.get("Options"), "Options"))
    for config in configs:
        config = _dict(config, "an IPAM.Config entry")
        for key, values in (("Subnet", request.subnets), ("Gateway", request.gateways),
                            ("IPRange", request.ip_ranges)):
            if config.get(key):
                values.append(str(config[key]))
    return request


def check_filter_keys(filters: dict[str, list[str]], allowed: tuple[str, ...]) -> dict[str, list[str]]:
    """dockerd's filters.Validate: an unknown key is a 400 `Invalid filter 'KEY'`."""
    for key in filters:
        if key not in allowed:
            raise UsageError(f"Invalid filter '{key}'")
    return filters


def network_list_filters(filters: dict[str, list[str]]) -> dict[str, list[str]]:
    check_filter_keys(filters, NETWORK_LIST_FILTERS)
    for value in filters.get("type", []):
        if value not in ("custom", "builtin"):
            raise UsageError(f"invalid filter: 'type'='{value}'")
    return filters


@dataclass(frozen=True)
class Connect:
    container: str
    aliases: list[str]
    ip: str | None


def network_connect(body: Any) -> Connect:
    """POST /networks/{id}/connect: {Container, EndpointConfig {Aliases, IPAMConfig {IPv4Address}}}."""
    body = _dict(body, "the request body")
    container = body.get("Container")
    if not container or not isinstance(container, str):
        raise UsageError("Container is required")
    endpoint = _dict(body.get("EndpointConfig"), "EndpointConfig")
    ipam = _dict(endpoint.get("IPAMConfig"), "EndpointConfig.IPAMConfig")
    return Connect(container, _strings(endpoint.get("Aliases"), "EndpointConfig.Aliases"),
                   ipam.get("IPv4Address") or None)


def network_disconnect(body: Any) -> tuple[str, bool]:
    """POST /networks/{id}/disconnect: {Container, Force}."""
    body = _dict(body, "the request body")
    container = body.get("Container")
    if not container or not isinstance(container, str):
        raise UsageError("Container is required")
    return container, bool(body.get("Force"))


# ------------------------------------------------------------------------------------------------ volumes

@dataclass(frozen=True)
class VolumeCreate:
    name: str | None
    driver: str
    labels: dict[str, str]
    options: dict[str, str]


def volume_create(body: Any) -> VolumeCreate:
    """POST /volumes/create: {Name, Driver, DriverOpts, Labels}; no name makes an anonymous (random) one."""
    body = _dict(body, "the request body")
    name = body.get("Name")
    if name is not None and not isinstance(name, str):
        raise UsageError("Name must be a string")
    return VolumeCreate(name or None, body.get("Driver") or "local", _string_map(body.get("Labels"), "Labels"),
                        _string_map(body.get("DriverOpts"), "DriverOpts"))


def volume_list_filters(filters: dict[str, list[str]]) -> dict[str, list[str]]:
    check_filter_keys(filters, VOLUME_LIST_FILTERS)
    for value in filters.get("dangling", []):
        if value not in ("true", "false", "1", "0"):
            raise UsageError(f"Invalid filter 'dangling={value}'")
    return filters


def prune_label_filters(filters: dict[str, list[str]]) -> tuple[list[str], list[str]]:
    """(label=, label!=) of POST /volumes/prune and /networks/prune (pyctr keeps no `until`)."""
    check_filter_keys(filters, PRUNE_FILTERS)
    return list(filters.get("label", [])), list(filters.get("label!", []))


def volume_document(volume) -> dict:
    """A volume as the API shows it (moby's types.Volume: Labels and Options as objects, never null)."""
    document = volume.inspect()
    document["Labels"] = document.get("Labels") or {}
    document["Options"] = document.get("Options") or {}
    return document


def volume_list(volumes: list, warnings: list[str] | None = None) -> dict:
    """GET /volumes: {"Volumes": [...], "Warnings": null}."""
    return {"Volumes": [volume_document(v) for v in volumes], "Warnings": warnings or None}


# ------------------------------------------------------------------------------------------------ containers

CHANGE_KINDS = {"C": 0, "A": 1, "D": 2}  # moby's archive.ChangeType: modified, added, deleted


def changes_document(changes: list[tuple[str, str]]) -> list[dict]:
    """GET /containers/{id}/changes from (kind letter, path) pairs."""
    return [{"Path": path, "Kind": CHANGE_KINDS[kind]} for kind, path in changes]


def update_arguments(body: Any) -> dict:
    """POST /containers/{id}/update's body -> runtime.update.UpdateOptions' fields (the flags `docker update`
    sends: Memory, MemorySwap, NanoCpus, CpuShares, PidsLimit, RestartPolicy); zero means unchanged."""
    body = _dict(body, "the request body")
    fields: dict = {}
    if body.get("Memory"):
        fields["memory"] = str(int(body["Memory"]))
    if body.get("MemorySwap"):
        fields["memory_swap"] = str(int(body["MemorySwap"]))
    if body.get("NanoCpus"):
        fields["cpus"] = repr(int(body["NanoCpus"]) / 1e9)
    if body.get("CpuShares"):
        fields["cpu_shares"] = int(body["CpuShares"])
    if body.get("PidsLimit"):
        fields["pids_limit"] = int(body["PidsLimit"])
    if _dict(body.get("RestartPolicy"), "RestartPolicy").get("Name"):
        from pyctr.api.documents import restart_text

        fields["restart"] = restart_text(body["RestartPolicy"])
    return fields
