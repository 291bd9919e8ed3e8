"""Docker-compatible `inspect` JSON, pure (its `--format` is pyctr.output.template's).

The container's stored config (Docker-shaped `Config` and `HostConfig`, written
at create) and its state are merged into the object `docker inspect` prints, so
tools written against Docker (`-f '{{.State.Pid}}'`, `jq .[0].NetworkSettings`)
work unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def state_object(state: dict) -> dict:
    """Docker's State: the stored fields plus the booleans it derives from Status."""
    status = state.get("Status", "created")
    return {
        "Status": status,
        "Running": status in ("running", "paused", "restarting"),
        "Paused": status == "paused",
        "Restarting": status == "restarting",
        "OOMKilled": bool(state.get("OOMKilled", False)),
        "Dead": status == "dead",
        "Pid": int(state.get("Pid", 0)),
        "ExitCode": int(state.get("ExitCode", 0)),
        "Error": state.get("Error", ""),
        "StartedAt": state.get("StartedAt", "0001-01-01T00:00:00Z"),
        "FinishedAt": state.get("FinishedAt", "0001-01-01T00:00:00Z"),
    }


def port_map(ports: list[dict], exposed: dict | None = None) -> dict:
    """NetworkSettings.Ports: {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8000"}], "443/tcp": None}."""
    result: dict[str, Any] = {key: None for key in (exposed or {})}
    for p in ports:
        key = f"{p['ContainerPort']}/{p.get('Protocol', 'tcp')}"
        binding = {"HostIp": p.get("HostIp") or "0.0.0.0", "HostPort": str(p.get("HostPort", ""))}
        if result.get(key) is None:
            result[key] = []
        result[key].append(binding)
    return result


def network_settings(network: dict, mode: str, ports: list[dict], running: bool, exposed: dict | None) -> dict:
    ip = network.get("IPAddress", "") if running else ""
    gateway = network.get("Gateway", "") if running else ""
    prefix = int(network.get("IPPrefixLen", 0)) if running else 0
    mac = network.get("MacAddress", "") if running else ""
    networks = {}
    if mode not in ("none", "host"):
        networks[mode] = {
            "IPAMConfig": None, "Links": None, "Aliases": None, "NetworkID": "", "EndpointID": "",
            "Gateway": gateway, "IPAddress": ip, "IPPrefixLen": prefix, "IPv6Gateway": "",
            "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "MacAddress": mac, "DriverOpts": None,
        }
    elif mode == "none":
        networks["none"] = {"IPAMConfig": None, "Links": None, "Aliases": None, "NetworkID": "",
                            "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
                            "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
                            "MacAddress": "", "DriverOpts": None}
    return {
        "Bridge": "", "SandboxID": "", "HairpinMode": False, "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0, "Ports": port_map(ports, exposed) if running else {},
        "SandboxKey": "", "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None, "EndpointID": "",
        "Gateway": gateway, "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "IPAddress": ip,
        "IPPrefixLen": prefix, "IPv6Gateway": "", "MacAddress": mac, "Networks": networks,
    }


def mounts_object(volumes: list[str]) -> list[dict]:
    """Mounts from `-v src:dst[:ro]` values: bind mounts (absolute src) or named volumes."""
    mounts = []
    for spec in volumes:
        parts = spec.split(":")
        source, dest = (parts[0], parts[1]) if len(parts) > 1 else ("", parts[0])
        mode = parts[2] if len(parts) > 2 else ""
        rw = "ro" not in mode.split(",")
        if source.startswith("/") or not source:
            mounts.append({"Type": "bind", "Source": source, "Destination": dest, "Mode": mode, "RW": rw,
                           "Propagation": "rprivate"})
        else:
            mounts.append({"Type": "volume", "Name": source, "Source": "", "Destination": dest,
                           "Driver": "local", "Mode": mode, "RW": rw, "Propagation": ""})
    return mounts


def container_inspect(config: dict, state: dict, directory: Path) -> dict:
    """The `docker inspect` object of one container."""
    container_id = config["Id"]
    st = state_object(state)
    host_config = config.get("HostConfig", {})
    docker_config = config.get("Config", {})
    rootfs = directory / "rootfs"
    return {
        "Id": container_id,
        "Created": config.get("Created", ""),
        "Path": config.get("Path", ""),
        "Args": config.get("Args", []),
        "State": st,
        "Image": config.get("Image", ""),
        "ResolvConfPath": str(directory / "resolv.conf"),
        "HostnamePath": str(directory / "hostname"),
        "HostsPath": str(directory / "hosts"),
        "LogPath": str(directory / f"{container_id}-json.log"),
        "Name": "/" + config.get("Name", ""),
        "RestartCount": int(state.get("RestartCount", 0)),
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": None,
        "HostConfig": host_config,
        "GraphDriver": {
            "Data": {
                "LowerDir": ":".join(config.get("LowerDirs", [])),
                "MergedDir": str(rootfs / "merged"),
                "UpperDir": str(rootfs / "upper"),
                "WorkDir": str(rootfs / "work"),
            },
            "Name": "overlay2",
        },
        "Mounts": mounts_object(host_config.get("Binds") or []),
        "Config": docker_config,
        "NetworkSettings": network_settings(state.get("Network") or {}, host_config.get("NetworkMode", "bridge"),
                                            (state.get("Network") or {}).get("Ports") or config.get("Ports", []),
                                            st["Running"],
                                            docker_config.get("ExposedPorts")),
    }
