"""The run/create flags that choose kernel features (p15-ns): --device, --ipc, --pid, --uts, --cgroupns,
--userns, --sysctl, --shm-size, --oom-kill-disable, --memory-reservation, --cpuset-cpus, --blkio-weight.

Pure: each flag is parsed and refused with the words of the Docker 20.10 component that refuses it (docker-cli's
flag parsing: `Error: ...`; dockerd's checks: `Error response from daemon: ...`; runc's checks at start), and
`host_config_fields` gives what `inspect` shows under HostConfig. What happens in the kernel (namespaces joined
or kept, device nodes, sysctls, cgroup files) reads the decisions stored in the spec: runtime/init.py,
runtime/rootfs.py, runtime/cgroups and runtime/lifecycle/launch.py.
"""

from __future__ import annotations

import os
import stat
from dataclasses import asdict, dataclass

from pyctr.errors import PyctrError, RuntimeFailure, UsageError

DEFAULT_SHM_SIZE = 64 * 1024 * 1024  # dockerd's DefaultShmSize
MIN_MEMORY = 6 * 1024 * 1024
IPC_MODES = ("", "private", "shareable", "host", "none")
# docker-cli's opts.ValidateSysctl (20.10): the IPC sysctls by name, then prefixes
IPC_SYSCTLS = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax",
               "kernel.shmmni", "kernel.shm_rmid_forced")
SYSCTL_PREFIXES = ("net.", "fs.mqueue.")
DEVICE_MODE_CHARS = frozenset("rwm")


@dataclass(frozen=True)
class DeviceMapping:
    """One `--device` (HostConfig.Devices entry)."""

    path_on_host: str
    path_in_container: str
    cgroup_permissions: str = "rwm"

    def to_docker(self) -> dict:
        return {"PathOnHost": self.path_on_host, "PathInContainer": self.path_in_container,
                "CgroupPermissions": self.cgroup_permissions}

    @classmethod
    def from_docker(cls, data: dict) -> DeviceMapping:
        return cls(str(data.get("PathOnHost") or ""), str(data.get("PathInContainer") or data.get("PathOnHost")
                                                           or ""), str(data.get("CgroupPermissions") or "rwm"))


@dataclass(frozen=True)
class DeviceNode:
    """A host device resolved at start: what C creates in the container and the cgroup rule that allows it."""

    path: str  # in the container
    type: str  # c | b
    major: int
    minor: int
    mode: int  # permission bits of the host's node
    uid: int
    gid: int
    permissions: str  # cgroup access: r, w, m

    def to_dict(self) -> dict:
        return asdict(self)


def _flag_error(flag: str, value: str, reason: str) -> UsageError:
    return UsageError(f'invalid argument "{value}" for "{flag}" flag: {reason}')


def valid_device_mode(mode: str) -> bool:
    """docker-cli's validDeviceMode: one to three of r, w, m, each once."""
    return 0 < len(mode) <= 3 and set(mode) <= DEVICE_MODE_CHARS and len(set(mode)) == len(mode)


def parse_device(text: str) -> DeviceMapping:
    """docker-cli: `--device` is checked by opts.ValidateDevice (validateLinuxPath) and split by parseDevice."""
    parts = text.split(":")
    if text.count(":") > 2 or not parts[0]:
        raise _flag_error("--device", text, f"bad format for path: {text}")
    source, target, mode = parts[0], "", "rwm"
    if len(parts) == 3:
        if not valid_device_mode(parts[2]):
            raise _flag_error("--device", text, f"bad mode specified: {parts[2]}")
        target, mode = parts[1], parts[2]
    elif len(parts) == 2:
        if valid_device_mode(parts[1]):
            mode = parts[1]
        else:
            target = parts[1]
    checked = target or source
    if not checked.startswith("/"):
        raise _flag_error("--device", text, f"{checked} is not an absolute path")
    return DeviceMapping(source, os.path.normpath(target) if target else source, mode)


def _mode_with_container(flag: str, value: str, plain: tuple[str, ...], words: str) -> str:
    kind, sep, name = value.partition(":")
    if value in plain or (kind == "container" and sep and name and ":" not in name):
        return value
    raise UsageError(f"{flag}: invalid {words} mode")


def parse_ipc(value: str) -> str:
    return _mode_with_container("--ipc", value, IPC_MODES, "IPC")


def parse_pid(value: str) -> str:
    return _mode_with_container("--pid", value, ("", "host"), "PID")


def parse_uts(value: str) -> str:
    if value not in ("", "host"):
        raise UsageError("--uts: invalid UTS mode")
    return value


def parse_cgroupns(value: str) -> str:
    if value not in ("", "host", "private"):
        raise UsageError("--cgroupns: invalid CGROUP mode")
    return value


def parse_userns(value: str) -> str:
    """Only `host` (and nothing): without dockerd's userns-remap, docker-cli refuses every other mode."""
    if value not in ("", "host"):
        raise UsageError("--userns: invalid USER mode")
    return value


def container_of(mode: str) -> str | None:
    """`container:NAME` -> NAME."""
    kind, _, name = mode.partition(":")
    return name if kind == "container" and name else None


def parse_sysctls(items: list[str]) -> dict[str, str]:
    """docker-cli's opts.ValidateSysctl, then the map it builds (a later key wins)."""
    result: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not (key in IPC_SYSCTLS or key.startswith(SYSCTL_PREFIXES)):
            raise _flag_error("--sysctl", item, f"sysctl '{item}' is not whitelisted")
        result[key] = value
    return result


def check_sysctls(sysctls: dict[str, str], namespaces: list[str]) -> None:
    """runc's validator at start: an IPC sysctl needs the container's own IPC namespace, a net.* one its own
    network namespace (dockerd passes them through; the OCI runtime refuses them)."""
    for key in sysctls:
        if key in IPC_SYSCTLS or key.startswith("fs.mqueue."):
            if "ipc" not in namespaces:
                raise RuntimeFailure(f'sysctl "{key}" is not allowed in the hosts ipc namespace')
        elif key.startswith("net.") and "net" not in namespaces:
            raise RuntimeFailure(f'sysctl "{key}" is not allowed in the hosts network namespace')


def sysctl_path(key: str) -> str:
    """`net.ipv4.ip_forward` -> `net/ipv4/ip_forward`, relative to /proc/sys (runc: dots become slashes)."""
    if "" in key.split(".") or "/" in key or "\0" in key:  # never a path of its own making
        raise RuntimeFailure(f"invalid sysctl {key!r}")
    return key.replace(".", "/")


def parse_uint_list(text: str, maximum: int | None = None) -> set[int]:
    """moby's parsers.ParseUintList(Maximum): `0-2,4` -> {0, 1, 2, 4}."""
    result: set[int] = set()
    if text == "":
        return result
    invalid = ValueError(f"invalid format: {text}")
    for part in text.split(","):
        low, dash, high = part.partition("-")
        numbers = (low, high) if dash else (part, part)
        if not all(_go_atoi_syntax(n) for n in numbers):
            raise invalid
        first, last = int(numbers[0]), int(numbers[1])
        if first < 0 or last < first:
            raise invalid
        if maximum is not None and last > maximum:
            raise ValueError(f"value of out range, maximum is {maximum}")
        result.update(range(first, last + 1))
    return result


def _go_atoi_syntax(text: str) -> bool:
    """What Go's strconv.Atoi reads: ASCII digits after an optional sign. Python's int() also takes blanks
    around the number and `_` between digits (`--cpuset-cpus " 0"` was taken; Docker refuses it)."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    return digits.isascii() and digits.isdigit()


def check_cpuset(cpus: str, available: str) -> None:
    """dockerd's verifyPlatformContainerResources for --cpuset-cpus, against the host's cpuset."""
    if not cpus:
        return
    have = parse_uint_list(available)
    try:
        wanted = parse_uint_list(cpus, max([8192, *have]))
    except ValueError as e:
        raise PyctrError(f"Invalid value {cpus} for cpuset cpus: {e}") from None
    if not wanted <= have:
        raise PyctrError(f"Requested CPUs are not available - requested {cpus}, available: {available}")


@dataclass(frozen=True)
class HostSupport:
    """What this host's cgroups can do (dockerd's sysinfo): a flag it cannot honour is dropped with a warning."""

    memory_reservation: bool = True
    oom_kill_disable: bool = True
    blkio_weight: bool = True
    cpus: str = "0"


@dataclass(frozen=True)
class ResourceFlags:
    """--memory-reservation, --oom-kill-disable, --cpuset-cpus, --blkio-weight as dockerd keeps them."""

    memory_reservation: int = 0
    oom_kill_disable: bool | None = None  # None: not applicable here (cgroup v2), inspect shows null
    cpuset_cpus: str = ""
    blkio_weight: int = 0
    warnings: tuple[str, ...] = ()


def decide_resources(reservation: str | None, oom_kill_disable: bool, cpuset_cpus: str | None,
                     blkio_weight: int | None, memory: int | None, support: HostSupport) -> ResourceFlags:
    """dockerd 20.10's checks in its order: unsupported settings dropped with its warnings, then its errors."""
    from pyctr.runtime.spec import parse_size

    warnings = []
    reserve = parse_size(reservation, "--memory-reservation") if reservation else 0
    weight = _blkio_weight(blkio_weight)
    if reserve and not support.memory_reservation:
        warnings.append("Your kernel does not support memory soft limit capabilities or the cgroup is not "
                        "mounted. Limitation discarded.")
        reserve = 0
    if 0 < reserve < MIN_MEMORY:
        raise PyctrError("Minimum memory reservation allowed is 6MB")
    if memory and reserve and memory < reserve:
        raise PyctrError("Minimum memory limit can not be less than memory reservation limit, see usage")
    oom: bool | None = oom_kill_disable
    if not support.oom_kill_disable:
        if oom_kill_disable:
            warnings.append("Your kernel does not support OomKillDisable. OomKillDisable discarded.")
        oom = None
    check_cpuset(cpuset_cpus or "", support.cpus)
    if weight and not support.blkio_weight:
        warnings.append("Your kernel does not support Block I/O weight or the cgroup is not mounted. "
                        "Weight discarded.")
        weight = 0
    if weight and not 10 <= weight <= 1000:
        raise PyctrError("Range of blkio weight is from 10 to 1000")
    return ResourceFlags(reserve, oom, cpuset_cpus or "", weight, tuple(warnings))


def _blkio_weight(value: int | None) -> int:
    """pflag's Uint16Var."""
    if value is None:
        return 0
    return parse_uint16_flag("--blkio-weight", str(value)) or 0


def parse_uint16_flag(flag: str, text: str | None) -> int | None:
    """pflag's Uint16Var (strconv.ParseUint(s, 0, 16): decimal, 0x.., 0o.., 0b.., a leading 0 is octal, no
    sign); its words when it fails."""
    if text is None:
        return None
    invalid = _flag_error(flag, text, f'strconv.ParseUint: parsing "{text}": invalid syntax')
    if not text or text.startswith(("-", "+")):
        raise invalid
    try:
        value = int(text, 8) if len(text) > 1 and text[0] == "0" and text[1:].isdigit() else int(text, 0)
    except ValueError:
        raise invalid from None
    if value > 65535:
        raise _flag_error(flag, text, f'strconv.ParseUint: parsing "{text}": value out of range')
    return value


def shm_size(text: str | None) -> int:
    """--shm-size (docker-cli's MemBytes); 0 or unset is dockerd's default 64 MiB."""
    from pyctr.runtime.spec import parse_size

    size = parse_size(text, "--shm-size") if text else 0
    return size or DEFAULT_SHM_SIZE


def check_shm_size(size: int) -> None:
    """dockerd's verifyPlatformContainerSettings, after the resources: `1e30` reaches it as a negative size
    (go-units' int64 conversion overflows, see units.go_int64) and is refused, never mounted."""
    if size < 0:
        raise PyctrError("SHM size can not be less than 0")


def check_hostname(uts_mode: str, hostname: str | None) -> None:
    """dockerd's validateNetMode: a host UTS namespace has the host's name."""
    if uts_mode == "host" and hostname:
        raise PyctrError("conflicting options: hostname and the UTS mode")


def namespaces_for(network_mode: str, ipc_mode: str, pid_mode: str, uts_mode: str, cgroupns_mode: str) -> list[str]:
    """The namespaces a new container unshares: host and container:X modes keep or join another's."""
    wanted = {
        "pid": pid_mode == "",
        "mount": True,
        "uts": uts_mode != "host",
        "ipc": ipc_mode in ("", "private", "shareable", "none"),
        "cgroup": cgroupns_mode == "private",
        "net": network_mode != "host",
    }
    return [name for name in ("pid", "mount", "uts", "ipc", "cgroup", "net") if wanted[name]]


def default_cgroupns(cgroup_version: int) -> str:
    """dockerd 20.10's default-cgroupns-mode: host on cgroup v1, private on v2."""
    return "private" if cgroup_version == 2 else "host"


def shm_mount_options(size: int) -> list[str]:
    """dockerd's /dev/shm options: the size in bytes (the kernel rounds it up to pages). Never in whole KiB
    rounded down: `--shm-size 1000` made `size=0k`, which tmpfs takes as no limit at all."""
    return ["nosuid", "noexec", "nodev", "mode=1777", f"size={size}"]


def device_node(mapping: DeviceMapping, path_on_host: str, path_in_container: str, st: os.stat_result) -> DeviceNode:
    """A stat of a host device -> the node to create in the container (moby's devices.DeviceFromPath)."""
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        raise ValueError("not a device node")
    return DeviceNode(path_in_container, kind, os.major(st.st_rdev), os.minor(st.st_rdev), stat.S_IMODE(st.st_mode),
                      st.st_uid, st.st_gid, mapping.cgroup_permissions)


def resolve_devices(mappings: list[DeviceMapping]) -> list[DeviceNode]:
    """moby's DevicesFromPath at start: a device node, or every device node under a directory; else its error."""
    nodes: list[DeviceNode] = []
    for mapping in mappings:
        host = os.path.realpath(mapping.path_on_host) if os.path.islink(mapping.path_on_host) \
            else mapping.path_on_host
        try:
            nodes.append(device_node(mapping, host, mapping.path_in_container, os.stat(host)))
            continue
        except OSError as e:
            reason = (e.strerror or str(e)).lower()
        except ValueError as e:
            reason = str(e)
            found = _devices_under(mapping, host) if os.path.isdir(host) else []
            if found:
                nodes += found
                continue
        raise PyctrError(f'error gathering device information while adding custom device "{mapping.path_on_host}": '
                         f"{reason}")
    return nodes


def _devices_under(mapping: DeviceMapping, top: str) -> list[DeviceNode]:
    found = []
    for directory, _dirs, files in os.walk(top):
        for name in sorted(files):
            path = os.path.join(directory, name)
            try:
                st = os.lstat(path)
                found.append(device_node(mapping, path, path.replace(top, mapping.path_in_container, 1), st))
            except (OSError, ValueError):
                continue
    return found


def host_config_fields(options, spec) -> dict:
    """HostConfig keys of these flags, as `docker inspect` shows them (from RunOptions and the ContainerSpec)."""
    limits = spec.limits
    return {
        "IpcMode": spec.ipc_mode, "PidMode": options.pid, "UTSMode": options.uts, "UsernsMode": options.userns,
        "CgroupnsMode": "private" if "cgroup" in spec.namespaces else "host", "ShmSize": spec.shm_size,
        "Sysctls": dict(spec.sysctls) or None, "Devices": list(spec.devices),
        "MemoryReservation": limits.memory_reservation, "OomKillDisable": limits.oom_kill_disable,
        "CpusetCpus": limits.cpuset_cpus, "BlkioWeight": limits.blkio_weight,
    }


@dataclass(frozen=True)
class KernelChoices:
    """Everything these flags decide at create, for the spec."""

    namespaces: list[str]
    ipc_mode: str
    pid_mode: str
    shm_size: int
    sysctls: dict[str, str]
    devices: list[dict]
    resources: ResourceFlags


def host_cpus() -> str:
    """The CPUs this process may use, as a cpuset list (dockerd reads its cgroup's cpuset.cpus)."""
    return cpu_list(os.sched_getaffinity(0)) or "0"


def cpu_list(cpus) -> str:
    """{0, 1, 2, 5} -> "0-2,5", the kernel's cpuset list form."""
    ranges: list[list[int]] = []
    for cpu in sorted(cpus):
        if ranges and cpu == ranges[-1][1] + 1:
            ranges[-1][1] = cpu
        else:
            ranges.append([cpu, cpu])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)


def decide(options, network_mode: str, cgroup_version: int = 2, memory: int | None = None,
           support: HostSupport | None = None) -> KernelChoices:
    """Parse and check every kernel flag of `options` (RunOptions), in docker-cli's then dockerd's order."""
    devices = [parse_device(d).to_docker() for d in options.devices]
    sysctls = parse_sysctls(list(options.sysctls))
    size = shm_size(options.shm_size)
    ipc, pid = parse_ipc(options.ipc), parse_pid(options.pid)
    uts, cgroupns = parse_uts(options.uts), parse_cgroupns(options.cgroupns)
    parse_userns(options.userns)
    check_hostname(uts, options.hostname)
    support = support or HostSupport(cpus=host_cpus(), oom_kill_disable=cgroup_version == 1)
    resources = decide_resources(options.memory_reservation, options.oom_kill_disable, options.cpuset_cpus,
                                 options.blkio_weight, memory, support)
    check_shm_size(size)
    namespaces = namespaces_for(network_mode, ipc, pid, uts, cgroupns or default_cgroupns(cgroup_version))
    return KernelChoices(namespaces, ipc or "private", pid, size, sysctls, devices, resources)


def host_support() -> tuple[int, HostSupport]:
    """This host's cgroup version and what its cgroups support (the doing side of dockerd's sysinfo)."""
    from pyctr.runtime.cgroups import current_mode

    mode = current_mode()
    if mode.version == 2:
        controllers = set(mode.v2_controllers)
        return 2, HostSupport("memory" in controllers, False, "io" in controllers, host_cpus())
    memory, blkio = mode.v1_mounts.get("memory"), mode.v1_mounts.get("blkio")
    return 1, HostSupport(
        memory is not None and (memory / "memory.soft_limit_in_bytes").exists(),
        memory is not None and (memory / "memory.oom_control").exists(),
        blkio is not None and (blkio / "blkio.weight").exists(), host_cpus())
