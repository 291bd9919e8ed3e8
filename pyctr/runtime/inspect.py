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
        **({"Health": state["Health"]} if state.get("Health") else {}),  # only with a healthcheck (omitempty)
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
    shown = running and mode == "bridge"  # Docker fills the top-level fields from the default bridge only
    ip = network.get("IPAddress", "") if shown else ""
    gateway = network.get("Gateway", "") if shown else ""
    prefix = int(network.get("IPPrefixLen", 0)) if shown else 0
    mac = network.get("MacAddress", "") if shown else ""
    networks = {}
    if mode not in ("none", "host") and not (running and mode in (network.get("Networks") or {})):
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
    if running:
        networks.update(network.get("Networks") or {})  # user-defined networks' endpoints (network connect too)
    return {
        "Bridge": "", "SandboxID": "", "HairpinMode": False, "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0, "Ports": port_map(ports, exposed) if running else {},
        "SandboxKey": "", "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None, "EndpointID": "",
        "Gateway": gateway, "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "IPAddress": ip,
        "IPPrefixLen": prefix, "IPv6Gateway": "", "MacAddress": mac, "Networks": networks,
    }


# Docker 20.10 (API 1.41) HostConfig: every key in the order of moby's api/types/container HostConfig struct
# (Resources embedded where it is), with the values `docker inspect` shows for a plain `docker run busybox`.
# StorageOpt, Tmpfs, Sysctls, Mounts and Init are `omitempty` there: present only when set.
HOST_CONFIG_DEFAULTS: dict[str, Any] = {
    "Binds": None, "ContainerIDFile": "", "LogConfig": {"Type": "json-file", "Config": {}},
    "NetworkMode": "default", "PortBindings": {}, "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
    "AutoRemove": False, "VolumeDriver": "", "VolumesFrom": None,
    "CapAdd": None, "CapDrop": None, "CgroupnsMode": "private", "Dns": [], "DnsOptions": [], "DnsSearch": [],
    "ExtraHosts": None, "GroupAdd": None, "IpcMode": "private", "Cgroup": "", "Links": None, "OomScoreAdj": 0,
    "PidMode": "", "Privileged": False, "PublishAllPorts": False, "ReadonlyRootfs": False, "SecurityOpt": None,
    "StorageOpt": None, "Tmpfs": None, "UTSMode": "", "UsernsMode": "", "ShmSize": 67108864, "Sysctls": None,
    "Runtime": "runc", "ConsoleSize": [0, 0], "Isolation": "",
    "CpuShares": 0, "Memory": 0, "NanoCpus": 0, "CgroupParent": "", "BlkioWeight": 0, "BlkioWeightDevice": [],
    "BlkioDeviceReadBps": None, "BlkioDeviceWriteBps": None, "BlkioDeviceReadIOps": None,
    "BlkioDeviceWriteIOps": None, "CpuPeriod": 0, "CpuQuota": 0, "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0,
    "CpusetCpus": "", "CpusetMems": "", "Devices": [], "DeviceCgroupRules": None, "DeviceRequests": None,
    "KernelMemory": 0, "KernelMemoryTCP": 0, "MemoryReservation": 0, "MemorySwap": 0, "MemorySwappiness": None,
    "OomKillDisable": False, "PidsLimit": None, "Ulimits": None, "CpuCount": 0, "CpuPercent": 0,
    "IOMaximumIOps": 0, "IOMaximumBandwidth": 0,
    "Mounts": None, "MaskedPaths": None, "ReadonlyPaths": None, "Init": None,
}
_HOST_CONFIG_OMITEMPTY = ("StorageOpt", "Tmpfs", "Sysctls", "Mounts", "Init")

# Docker 20.10 container Config, in the order of moby's api/types/container Config struct; the second
# tuple holds its `omitempty` keys (shown only when set).
CONFIG_KEYS = ("Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr", "ExposedPorts",
               "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd", "Healthcheck", "ArgsEscaped", "Image", "Volumes",
               "WorkingDir", "Entrypoint", "NetworkDisabled", "MacAddress", "OnBuild", "Labels", "StopSignal",
               "StopTimeout", "Shell")
_CONFIG_OMITEMPTY = ("ExposedPorts", "Healthcheck", "ArgsEscaped", "NetworkDisabled", "MacAddress", "StopSignal",
                     "StopTimeout", "Shell")
_CONFIG_DEFAULTS: dict[str, Any] = {"Hostname": "", "Domainname": "", "User": "", "AttachStdin": False,
                                    "AttachStdout": False, "AttachStderr": False, "Tty": False, "OpenStdin": False,
                                    "StdinOnce": False, "Env": None, "Cmd": None, "Image": "", "Volumes": None,
                                    "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": None}


def _omit_empty(value: Any) -> bool:
    """Go's encoding/json `omitempty`: false, 0, "", nil and empty maps/slices are left out."""
    return value is None or value is False or value == 0 or value == "" or value == [] or value == {}


def host_config_object(stored: dict) -> dict:
    """Docker's full HostConfig from what create stored (older records stored fewer keys: defaults fill in)."""
    out = {}
    for key, default in HOST_CONFIG_DEFAULTS.items():
        value = stored.get(key, default)
        if key in _HOST_CONFIG_OMITEMPTY and _omit_empty(value):
            continue
        out[key] = value
    return out


def config_object(stored: dict) -> dict:
    """Docker's container (or image) Config: its keys in Docker's order, `omitempty` ones only when set."""
    out = {}
    for key in CONFIG_KEYS:
        value = stored.get(key, _CONFIG_DEFAULTS.get(key))
        if key in _CONFIG_OMITEMPTY and _omit_empty(value):
            continue
        out[key] = value
    return out


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
        # dockerd sets LogPath for json-file only (its `local` files are no API; `none` has none)
        "LogPath": str(directory / f"{container_id}-json.log")
        if (host_config.get("LogConfig") or {}).get("Type", "json-file") == "json-file" else "",
        "Name": "/" + config.get("Name", ""),
        "RestartCount": int(state.get("RestartCount", 0)),
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": None,
        "HostConfig": host_config_object(host_config),
        "GraphDriver": {
            "Data": {
                "LowerDir": ":".join(config.get("LowerDirs", [])),
                "MergedDir": str(rootfs / "merged"),
                "UpperDir": str(rootfs / "upper"),
                "WorkDir": str(rootfs / "work"),
            },
            "Name": "overlay2",
        },
        "Mounts": config["MountPoints"] if "MountPoints" in config else mounts_object(host_config.get("Binds") or []),
        "Config": config_object(docker_config),
        "NetworkSettings": network_settings(state.get("Network") or {}, network_name(host_config),
                                            (state.get("Network") or {}).get("Ports") or config.get("Ports", []),
                                            st["Running"],
                                            docker_config.get("ExposedPorts")),
    }


def network_name(host_config: dict) -> str:
    """The network a container is on: NetworkMode "default" is the bridge network (Docker's Networks key)."""
    mode = host_config.get("NetworkMode", "bridge")
    return "bridge" if mode == "default" else mode
