"""Docker's document of a container (config.json): its Config/HostConfig views, the runtime spec and
the options, built once at create."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

from pyctr.errors import PyctrError
from pyctr.runtime import state as st

if TYPE_CHECKING:
    from pyctr.runtime.spec import ContainerSpec, RunOptions
    from pyctr.runtime.state import ContainerRecord


def config_document(spec: ContainerSpec, options: RunOptions, image_id: str, image_config: dict,
                    ports: list) -> dict:
    """What config.json holds: Docker's Config/HostConfig views, the runtime spec and the options."""
    inner = image_config.get("config") if isinstance(image_config.get("config"), dict) else image_config
    exposed = dict((inner or {}).get("ExposedPorts") or {})
    for p in ports:
        exposed.setdefault(f"{p.container_port}/{p.proto}", {})
    if options.expose:  # -P publishes the --expose'd ports too (docker-cli merges them into ExposedPorts)
        from pyctr.runtime.lifecycle.run_flags import parse_expose

        exposed.update({k: v for k, v in parse_expose(options.expose).items() if k not in exposed})
    if options.publish_all:
        from pyctr.runtime.network.publish import publish_all

        ports = list(ports) + publish_all(exposed)
    args = shown_command(spec.process.args, options.init)
    from pyctr.runtime.lifecycle.run_flags import apply_to_document

    return apply_to_document({
        "Id": spec.id,
        "Name": spec.name,
        "Created": st.now_rfc3339(),
        "Path": args[0],
        "Args": args[1:],
        "Image": image_id,
        "LowerDirs": list(reversed(spec.rootfs.lowerdirs)),
        "Ports": [_port_dict(p) for p in ports],
        "PortMappings": [p.to_dict() for p in ports],
        "Config": _docker_config(spec, options, exposed, inner or {}),
        "HostConfig": _host_config(spec, options, ports),
        "MountPoints": mount_points(spec, options),
        "AnonymousVolumes": [p["name"] for p in spec.mount_points if p["type"] == "volume" and p["anonymous"]],
        "Spec": spec.to_dict(),
        "Options": asdict(options),
    }, options, inner or {})


def shown_command(process_args: list[str], init: bool) -> list[str]:
    """The container's Path + Args as Docker records them: the user's command, without the `--init` binary
    that only the runtime's process runs in front of it (`docker ps`, inspect and compose show the command)."""
    from pyctr.runtime.spec import INIT_PATH

    if init and process_args[:2] == [INIT_PATH, "--"] and len(process_args) > 2:
        return process_args[2:]
    return process_args


def _port_dict(p) -> dict:
    return {"HostIp": p.host_ip or "0.0.0.0", "HostPort": p.host_port, "ContainerPort": p.container_port,
            "Protocol": p.proto}


def _docker_config(spec: ContainerSpec, options: RunOptions, exposed: dict, image_config: dict) -> dict:
    entrypoint = ([options.entrypoint] if options.entrypoint else []) if options.entrypoint is not None \
        else image_config.get("Entrypoint")
    cmd = list(options.command) or (None if options.entrypoint is not None else image_config.get("Cmd"))
    from pyctr.runtime.inspect import config_object

    volumes = dict(image_config.get("Volumes") or {})
    volumes.update({v: {} for v in options.volumes if ":" not in v})  # `-v /dst`: Docker's CLI puts it here
    return config_object({
        "Hostname": spec.hostname, "Domainname": "", "User": spec.process.user,
        "AttachStdin": options.interactive and not options.detach, "AttachStdout": not options.detach,
        "AttachStderr": not options.detach, "ExposedPorts": exposed or None, "Tty": options.tty,
        "OpenStdin": options.interactive, "StdinOnce": options.interactive and not options.detach,
        "Env": spec.config_env or None, "Cmd": cmd, "Image": options.image, "Volumes": volumes or None,
        "WorkingDir": spec.process.cwd if spec.process.cwd != "/" or options.workdir else "",
        "Entrypoint": entrypoint or None, "OnBuild": image_config.get("OnBuild"), "Labels": spec.labels,
        "StopSignal": options.stop_signal or image_config.get("StopSignal"), "StopTimeout": options.stop_timeout,
    })


def mount_points(spec: ContainerSpec, options: RunOptions) -> list[dict]:
    """Docker's `Mounts` of inspect: every planned mount but --tmpfs ones (HostConfig.Tmpfs lists those)."""
    from pyctr.runtime.mounts import MountPoint

    points = [MountPoint.from_dict(p) for p in spec.mount_points]
    return [p.inspect() for p in points if p.shown]


def _host_config(spec: ContainerSpec, options: RunOptions, ports: list) -> dict:
    bindings: dict[str, list] = {}
    for p in ports:
        bindings.setdefault(f"{p.container_port}/{p.proto}", []).append(
            {"HostIp": p.host_ip if p.host_ip != "0.0.0.0" else "", "HostPort": str(p.host_port or "")})
    limits = spec.limits
    from pyctr.runtime.inspect import host_config_object
    from pyctr.runtime.kernel_flags import host_config_fields
    from pyctr.runtime.mounts import host_config_entries

    cgroup_v2 = _cgroup_version() == 2
    return host_config_object({
        "Binds": [v for v in options.volumes if ":" in v] or None,  # `-v /dst` is a volume of Config.Volumes
        "NetworkMode": options.network, "PortBindings": bindings, "AutoRemove": options.rm,
        "CapAdd": list(options.cap_add) or None, "CapDrop": list(options.cap_drop) or None,
        "Dns": list(options.dns), "ExtraHosts": list(options.add_host) or None,
        "GroupAdd": list(options.group_add) or None, "Privileged": options.privileged,
        "PublishAllPorts": options.publish_all, "ReadonlyRootfs": options.read_only,
        "SecurityOpt": list(options.security_opt) or None, "Init": options.init or None,
        "Memory": limits.memory or 0, "MemorySwap": limits.memory_swap or 0,
        "NanoCpus": int(limits.cpu_quota * 1e9 / limits.cpu_period) if limits.cpu_quota else 0,
        "CpuShares": limits.cpu_shares or 0, "PidsLimit": limits.pids_limit,
        "OomKillDisable": None if cgroup_v2 else False,  # dockerd drops it where the kernel cannot (v2)
        "MaskedPaths": list(spec.masked_paths) or None, "ReadonlyPaths": list(spec.readonly_paths) or None,
        **host_config_entries(options.mounts, options.tmpfs, options.volumes_from),
        **host_config_fields(options, spec),  # kernel flags (p15-ns)
    })


def _cgroup_version() -> int:
    """1 or 2 (2 when it cannot be told: what current distributions run)."""
    try:
        from pyctr.runtime.cgroups import current_mode

        return current_mode().version
    except (OSError, PyctrError):
        return 2


def load_spec(record: ContainerRecord) -> ContainerSpec:
    from pyctr.runtime.spec import ContainerSpec

    return ContainerSpec.from_dict(record.config["Spec"])
