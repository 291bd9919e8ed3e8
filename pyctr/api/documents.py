"""Pure conversions between the Engine API's JSON shapes and pyctr's values: a create body -> RunOptions,
a container or image -> its list summary, query filters -> ps filters. Tested in tests/unit/test_api_documents.py.
"""

from __future__ import annotations

import json
from typing import Any

from pyctr.errors import UsageError
from pyctr.output.timefmt import parse_rfc3339


def _strings(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"{what} must be a list of strings")
    return list(value)


def _dict(value: Any, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UsageError(f"{what} must be an object")
    return value


def port_publish_specs(bindings: dict) -> list[str]:
    """HostConfig.PortBindings {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]} -> `-p` values."""
    specs = []
    for key, hosts in _dict(bindings, "PortBindings").items():
        for host in hosts or [{}]:
            host = host or {}
            ip = host.get("HostIp") or ""
            port = str(host.get("HostPort") or "")
            prefix = f"{ip}:{port}:" if ip else (f"{port}:" if port else "")
            if ip and not port:
                prefix = f"{ip}::"
            specs.append(prefix + key)
    return specs


def mount_flag_specs(mounts: Any) -> list[str]:
    """HostConfig.Mounts (moby api/types/mount.Mount) -> `--mount` values, so that the API and the CLI share one
    parse and one set of checks (bind, volume and tmpfs with their options; other types are refused)."""
    if mounts is None:
        return []
    if not isinstance(mounts, list):
        raise UsageError("HostConfig.Mounts must be a list")
    return [_mount_flag(_dict(mount, "a HostConfig.Mounts entry")) for mount in mounts]


def _mount_flag(mount: dict) -> str:
    import csv
    import io

    kind = mount.get("Type") or "volume"
    if kind not in ("bind", "volume", "tmpfs"):
        raise UsageError(f"mount type {kind!r} is not supported")
    fields = [f"type={kind}", f"target={mount.get('Target') or ''}"]
    if mount.get("Source"):
        fields.append(f"source={mount['Source']}")
    if mount.get("ReadOnly"):
        fields.append("readonly=true")
    bind = _dict(mount.get("BindOptions"), "BindOptions")
    if bind.get("Propagation"):
        fields.append(f"bind-propagation={bind['Propagation']}")
    if bind.get("NonRecursive"):
        fields.append("bind-nonrecursive=true")
    volume = _dict(mount.get("VolumeOptions"), "VolumeOptions")
    if volume.get("NoCopy"):
        fields.append("volume-nocopy=true")
    fields += [f"volume-label={k}={v}" for k, v in _dict(volume.get("Labels"), "VolumeOptions.Labels").items()]
    driver = _dict(volume.get("DriverConfig"), "VolumeOptions.DriverConfig")
    if driver.get("Name"):
        fields.append(f"volume-driver={driver['Name']}")
    fields += [f"volume-opt={k}={v}" for k, v in _dict(driver.get("Options"), "DriverConfig.Options").items()]
    tmpfs = _dict(mount.get("TmpfsOptions"), "TmpfsOptions")
    if tmpfs.get("SizeBytes"):
        fields.append(f"tmpfs-size={int(tmpfs['SizeBytes'])}")
    if tmpfs.get("Mode"):
        fields.append(f"tmpfs-mode={int(tmpfs['Mode']):o}")
    text = io.StringIO()
    csv.writer(text, lineterminator="").writerow(fields)  # quoted as docker-cli's CSV parse expects
    return text.getvalue()


def tmpfs_specs(tmpfs: Any) -> list[str]:
    """HostConfig.Tmpfs {"/run": "rw,size=64m"} -> `--tmpfs` values."""
    return [f"{target}:{options}" if options else target for target, options in _dict(tmpfs, "Tmpfs").items()]


def restart_text(policy: Any) -> str:
    """HostConfig.RestartPolicy {Name, MaximumRetryCount} -> the `--restart` value (checked where the flag is)."""
    policy = _dict(policy, "RestartPolicy")
    name = policy.get("Name") or "no"
    count = policy.get("MaximumRetryCount") or 0
    return f"{name}:{int(count)}" if count else name


def healthcheck_fields(check: Any) -> dict:
    """Config.Healthcheck -> RunOptions' health fields: NONE disables, CMD-SHELL is --health-cmd, CMD (exec
    form) is kept as it is, no Test inherits the image's with these durations."""
    check = _dict(check, "Healthcheck")
    if not check:
        return {}
    test = _strings(check.get("Test"), "Healthcheck.Test")
    if test == ["NONE"]:
        return {"no_healthcheck": True}
    fields = {f"health_{key}": int(check.get(name) or 0) for key, name in (
        ("interval", "Interval"), ("timeout", "Timeout"), ("start_period", "StartPeriod"), ("retries", "Retries"))}
    if test[:1] == ["CMD-SHELL"] and len(test) == 2:
        fields["health_cmd"] = test[1]
    elif test:
        if test[0] not in ("CMD", "CMD-SHELL"):
            raise UsageError(f"Healthcheck.Test must start with NONE, CMD or CMD-SHELL, not {test[0]!r}")
        fields["health_test"] = test
    return fields


def ulimit_specs(ulimits: Any) -> list[str]:
    """HostConfig.Ulimits [{Name, Soft, Hard}] -> `--ulimit` values."""
    specs = []
    for item in ulimits or []:
        item = _dict(item, "a HostConfig.Ulimits entry")
        specs.append(f"{item.get('Name', '')}={item.get('Soft', 0)}:{item.get('Hard', 0)}")
    return specs


def network_choice(network_mode: str, networking: Any) -> tuple[str, list[str], str | None]:
    """HostConfig.NetworkMode + NetworkingConfig.EndpointsConfig -> (network, aliases, ip), as dockerd 20.10:
    one endpoint at create at most (more are connected afterwards); with no mode the endpoint names it."""
    endpoints = _dict(_dict(networking, "NetworkingConfig").get("EndpointsConfig"), "EndpointsConfig")
    if len(endpoints) > 1:
        raise UsageError("Container cannot be connected to network endpoints: " + ", ".join(endpoints))
    if network_mode in ("", "default") and endpoints:
        network_mode = next(iter(endpoints))
    endpoint = _dict(endpoints.get(network_mode), f"EndpointsConfig[{network_mode}]")
    ipam = _dict(endpoint.get("IPAMConfig"), "IPAMConfig")
    return network_mode or "default", _strings(endpoint.get("Aliases"), "Aliases"), ipam.get("IPv4Address") or None


def _cpus_text(nano_cpus: Any) -> str | None:
    if not nano_cpus:
        return None
    return repr(int(nano_cpus) / 1e9)


def _bytes_text(value: Any) -> str | None:
    if value in (None, 0):
        return None
    return str(int(value))


def create_options(body: Any, name: str | None):
    """POST /containers/create's body -> RunOptions, as `docker run` would have parsed the same flags."""
    from pyctr.runtime.spec import RunOptions

    body = _dict(body, "the request body")
    image = body.get("Image")
    if not image or not isinstance(image, str):
        raise UsageError("Config.Image is required")  # dockerd: "No command specified" / invalid reference
    host = _dict(body.get("HostConfig"), "HostConfig")
    entrypoint_list = body.get("Entrypoint")
    command = _strings(body.get("Cmd"), "Cmd")
    entrypoint: str | None = None
    if entrypoint_list is not None:
        parts = _strings(entrypoint_list, "Entrypoint")
        entrypoint = parts[0] if parts else ""
        command = parts[1:] + command
    labels = [f"{k}={v}" for k, v in _dict(body.get("Labels"), "Labels").items()]
    attached = bool(body.get("AttachStdout") or body.get("AttachStderr") or body.get("AttachStdin"))
    volumes = _strings(host.get("Binds"), "Binds")
    mounts = mount_flag_specs(host.get("Mounts"))
    tmpfs = tmpfs_specs(host.get("Tmpfs"))
    covered = {v.split(":")[1] if v.count(":") else v for v in volumes}
    covered |= {m.get("Target") for m in host.get("Mounts") or []} | {t.partition(":")[0] for t in tmpfs}
    volumes += [v for v in _dict(body.get("Volumes"), "Volumes") if v not in covered]
    network, aliases, ip = network_choice(host.get("NetworkMode") or "", body.get("NetworkingConfig"))
    memory_swap = host.get("MemorySwap")
    return RunOptions(
        image=image, command=command, entrypoint=entrypoint, env=_strings(body.get("Env"), "Env"),
        workdir=body.get("WorkingDir") or None, user=body.get("User") or None,
        hostname=body.get("Hostname") or None, name=name or None, volumes=volumes,
        read_only=bool(host.get("ReadonlyRootfs")), tty=bool(body.get("Tty")),
        interactive=bool(body.get("OpenStdin")), detach=not attached, rm=bool(host.get("AutoRemove")),
        cap_add=_strings(host.get("CapAdd"), "CapAdd"), cap_drop=_strings(host.get("CapDrop"), "CapDrop"),
        privileged=bool(host.get("Privileged")), security_opt=_strings(host.get("SecurityOpt"), "SecurityOpt"),
        memory=_bytes_text(host.get("Memory")),
        memory_swap=str(int(memory_swap)) if memory_swap not in (None, 0) else None,
        cpus=_cpus_text(host.get("NanoCpus")), cpu_shares=host.get("CpuShares") or None,
        pids_limit=host.get("PidsLimit") if host.get("PidsLimit") not in (None, 0) else None,
        network=network, publish=port_publish_specs(host.get("PortBindings")),
        publish_all=bool(host.get("PublishAllPorts")), dns=_strings(host.get("Dns"), "Dns"),
        add_host=_strings(host.get("ExtraHosts"), "ExtraHosts"), init=bool(host.get("Init")),
        stop_signal=body.get("StopSignal") or None, stop_timeout=body.get("StopTimeout"),
        labels=labels, group_add=_strings(host.get("GroupAdd"), "GroupAdd"),
        mounts=mounts, tmpfs=tmpfs, volumes_from=_strings(host.get("VolumesFrom"), "VolumesFrom"),
        network_aliases=aliases, ip=ip, restart=restart_text(host.get("RestartPolicy")),
        ulimits=ulimit_specs(host.get("Ulimits")), expose=list(_dict(body.get("ExposedPorts"), "ExposedPorts")),
        **healthcheck_fields(body.get("Healthcheck")),
        **kernel_flag_fields(host),
        # h-misc
        **misc_fields(body, host),
    )


def kernel_flag_fields(host: dict) -> dict:
    """HostConfig's namespace, device, sysctl and cgroup keys -> RunOptions' kernel flags (p15-ns), in the form
    `docker run` flags would have given them."""
    devices = []
    for item in host.get("Devices") or []:
        item = _dict(item, "a HostConfig.Devices entry")
        source = str(item.get("PathOnHost") or "")
        devices.append(f"{source}:{item.get('PathInContainer') or source}:{item.get('CgroupPermissions') or 'rwm'}")
    sysctls = _dict(host.get("Sysctls"), "Sysctls")
    weight = host.get("BlkioWeight")
    return {
        "devices": devices, "ipc": _text(host.get("IpcMode"), "IpcMode"), "pid": _text(host.get("PidMode"), "PidMode"),
        "uts": _text(host.get("UTSMode"), "UTSMode"), "cgroupns": _text(host.get("CgroupnsMode"), "CgroupnsMode"),
        "userns": _text(host.get("UsernsMode"), "UsernsMode"), "sysctls": [f"{k}={v}" for k, v in sysctls.items()],
        "shm_size": _bytes_text(host.get("ShmSize")), "oom_kill_disable": bool(host.get("OomKillDisable")),
        "memory_reservation": _bytes_text(host.get("MemoryReservation")),
        "cpuset_cpus": _text(host.get("CpusetCpus"), "CpusetCpus") or None,
        "blkio_weight": int(weight) if isinstance(weight, int) and weight else None,
    }


def _text(value: Any, name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise UsageError(f"HostConfig.{name} must be a string")
    return value


def misc_fields(body: dict, host: dict) -> dict:
    """HostConfig.LogConfig/DnsSearch/DnsOptions/Links and Config.MacAddress -> the h-misc RunOptions fields."""
    log = _dict(host.get("LogConfig"), "LogConfig")
    log_config = _dict(log.get("Config"), "LogConfig.Config")
    mac = body.get("MacAddress") or ""
    if not isinstance(mac, str):
        raise UsageError("MacAddress must be a string")
    return {
        "log_driver": str(log.get("Type") or ""), "log_opts": [f"{k}={v}" for k, v in log_config.items()],
        "mac_address": mac, "dns_search": _strings(host.get("DnsSearch"), "DnsSearch"),
        "dns_options": _strings(host.get("DnsOptions"), "DnsOptions"), "links": _strings(host.get("Links"), "Links"),
    }


def parse_filters(text: str | None) -> dict[str, list[str]]:
    """The `filters` query parameter: {"status": ["running"]}, or the old {"status": {"running": true}}."""
    if not text:
        return {}
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError):
        raise UsageError("invalid filter: the filters parameter is not JSON") from None
    if not isinstance(raw, dict):
        raise UsageError("invalid filter: the filters parameter must be an object")
    parsed = {}
    for key, value in raw.items():
        if isinstance(value, dict):
            parsed[key] = [k for k, on in value.items() if on]
        elif isinstance(value, list):
            parsed[key] = [str(v) for v in value]
        else:
            raise UsageError(f"invalid filter '{key}'")
    return parsed


def unix_time(rfc3339: str) -> int:
    return int(parse_rfc3339(rfc3339) or 0)


def container_summary(item, record) -> dict:
    """One entry of GET /containers/json, from a ps item and its record."""
    import time

    from pyctr.runtime.ps import daemon_command, status_text

    now = time.time()
    ports = []
    for p in item.ports:
        entry = {"PrivatePort": int(p["ContainerPort"]), "Type": p.get("Protocol", "tcp")}
        if p.get("HostPort"):
            entry.update(IP=p.get("HostIp") or "0.0.0.0", PublicPort=int(p["HostPort"]))
        ports.append(entry)
    return {
        "Id": item.id, "Names": ["/" + item.name], "Image": item.image, "ImageID": item.image_id,
        "Command": daemon_command(item.argv), "Created": int(item.created), "Ports": ports,
        "Labels": item.labels, "State": item.status,
        "Status": status_text(item.status, item.exit_code, item.started, item.finished, now),
        "HostConfig": {"NetworkMode": (record.config.get("HostConfig") or {}).get("NetworkMode", "default")},
        "NetworkSettings": {"Networks": summary_networks(record)},
        "Mounts": record.config.get("MountPoints") or [],
    }


def summary_networks(record) -> dict:
    """The list entry's NetworkSettings.Networks: the same endpoints as inspect's (dockerd copies them), so
    NetworkID is there: compose v2 recreates a running container whose networks it cannot find by ID."""
    from pyctr.runtime.inspect import network_name, network_settings

    host_config = record.config.get("HostConfig") or {}
    return network_settings(record.state.network or {}, network_name(host_config), [], record.state.running,
                            None)["Networks"]


def image_summary(image, tag_rows: list[dict] | None) -> dict:
    """One entry of GET /images/json (RepoTags as dockerd: none -> ["<none>:<none>"] before 1.40 clients
    cared; pyctr lists [] as current dockerd)."""
    return {
        "Id": image.id, "ParentId": image.parent or "", "RepoTags": list(image.repo_tags),
        "RepoDigests": list(image.repo_digests), "Created": unix_time(image.created) or int(image.added),
        "Size": image.size, "SharedSize": -1, "VirtualSize": image.size,
        "Labels": ((image.config.get("config") or {}).get("Labels")) or {}, "Containers": -1,
    }


def history_entries(image, ids: dict[int, str]) -> list[dict]:
    """GET /images/{name}/history: config.history newest first, sizes matched to the non-empty entries."""
    cfg = image.config
    history = [h for h in cfg.get("history") or [] if isinstance(h, dict)]
    sizes = [layer.diff_size for layer in image.layers]
    rows, index = [], 0
    for h in history:
        size = 0
        if not h.get("empty_layer") and index < len(sizes):
            size, index = sizes[index], index + 1
        rows.append({"Created": unix_time(h.get("created", "")), "CreatedBy": h.get("created_by", ""),
                     "Size": size, "Comment": h.get("comment", "")})
    rows.reverse()
    for i, row in enumerate(rows):
        row["Id"] = ids.get(i, "<missing>")
        row["Tags"] = list(image.repo_tags) if i == 0 else None
    return rows


def exec_options(body: Any):
    """POST /containers/{id}/exec's body -> ExecOptions (the start request says detach or not)."""
    from pyctr.runtime.exec import ExecOptions

    body = _dict(body, "the request body")
    cmd = _strings(body.get("Cmd"), "Cmd")
    if not cmd:
        raise UsageError("No exec command specified")
    return ExecOptions(args=cmd, interactive=bool(body.get("AttachStdin")), tty=bool(body.get("Tty")),
                       env=_strings(body.get("Env"), "Env"), user=body.get("User") or None,
                       workdir=body.get("WorkingDir") or None, privileged=bool(body.get("Privileged")))
