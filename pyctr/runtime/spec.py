"""The container plan: what the CLI asked for (RunOptions) turned into what to build (ContainerSpec).

`make_spec` is pure: Docker's rules for merging the image config with the
command line (Entrypoint/Cmd, Env, WorkingDir, User, capabilities, limits,
volumes) live here, testable without root. The spec is stored as
containers/<id>/config.json, so everything the runtime needs later (start,
restart, inspect) is in it and round-trips through JSON.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from pyctr.errors import UsageError
from pyctr.runtime.capabilities import tweak_capabilities
from pyctr.units import ram_in_bytes

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CPU_PERIOD = 100_000
MIN_MEMORY = 6 * 1024 * 1024

# Docker 20.10's list (moby oci/defaults.go at v20.10.24) plus /sys/devices/virtual/powercap, the fix of
# GHSA-jq35-85cj-fj4p that 20.10.27 backported. Not /proc/interrupts: Docker masks it only from 28.x (2025).
MASKED_PATHS: tuple[str, ...] = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
# --init: Docker bind-mounts its docker-init (tini, static) here and runs the command under it.
INIT_BINARY = "/usr/bin/tini-static"
INIT_PATH = "/sbin/docker-init"

READONLY_PATHS: tuple[str, ...] = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")


@dataclass
class RunOptions:
    """Everything `pyctr run/create` parsed from its flags, before any decision."""

    image: str
    command: list[str] = field(default_factory=list)
    entrypoint: str | None = None
    env: list[str] = field(default_factory=list)
    env_files: list[str] = field(default_factory=list)
    workdir: str | None = None
    user: str | None = None
    hostname: str | None = None
    name: str | None = None
    volumes: list[str] = field(default_factory=list)
    read_only: bool = False
    tty: bool = False
    interactive: bool = False
    detach: bool = False
    rm: bool = False
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    privileged: bool = False
    security_opt: list[str] = field(default_factory=list)
    memory: str | None = None
    memory_swap: str | None = None
    cpus: str | None = None
    cpu_shares: int | None = None
    pids_limit: int | None = None
    network: str = "bridge"
    publish: list[str] = field(default_factory=list)
    publish_all: bool = False
    dns: list[str] = field(default_factory=list)
    add_host: list[str] = field(default_factory=list)
    init: bool = False
    stop_signal: str | None = None
    stop_timeout: int | None = None
    labels: list[str] = field(default_factory=list)
    group_add: list[str] = field(default_factory=list)
    # volumes (p15-vol)
    mounts: list[str] = field(default_factory=list)  # --mount values
    tmpfs: list[str] = field(default_factory=list)  # --tmpfs DEST[:OPTS]
    volumes_from: list[str] = field(default_factory=list)  # --volumes-from CONTAINER[:ro|rw]
    # networks (p15-net)
    network_aliases: list[str] = field(default_factory=list)
    ip: str | None = None
    # lifecycle (p15-life): restart policy and healthcheck (durations in ns, as Docker's API has them)
    restart: str = "no"
    health_cmd: str | None = None
    health_interval: int = 0
    health_timeout: int = 0
    health_start_period: int = 0
    health_retries: int = 0
    no_healthcheck: bool = False
    ulimits: list[str] = field(default_factory=list)
    cidfile: str | None = None
    pull: str = "missing"
    gpus: str | None = None
    oom_score_adj: int = 0
    expose: list[str] = field(default_factory=list)
    quiet: bool = False
    # Engine API (p16-netvol): Config.Healthcheck.Test in exec form (["CMD", ...]), which no flag can say
    health_test: list[str] | None = None
    # kernel flags (p15-ns): runtime/kernel_flags.py parses and checks them
    devices: list[str] = field(default_factory=list)  # --device HOST[:CONTAINER[:PERMS]]
    ipc: str = ""  # "" (dockerd's default: private) | private | shareable | host | none | container:X
    pid: str = ""  # "" | host | container:X
    uts: str = ""  # "" | host
    cgroupns: str = ""  # "" (dockerd's default for this host's cgroups) | host | private
    userns: str = ""  # "" | host
    sysctls: list[str] = field(default_factory=list)
    shm_size: str | None = None
    oom_kill_disable: bool = False
    memory_reservation: str | None = None
    cpuset_cpus: str | None = None
    blkio_weight: int | None = None
    # h-misc: logging, platform, MAC, DNS search/options, legacy links, attach/detach/sig-proxy of `run`
    log_driver: str = ""  # "" = the daemon's default (json-file)
    log_opts: list[str] = field(default_factory=list)  # --log-opt KEY=VALUE
    platform: str = ""
    mac_address: str = ""
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)  # --link NAME[:ALIAS]
    attach: list[str] = field(default_factory=list)  # -a stdin|stdout|stderr (lower-cased)
    detach_keys: str | None = None
    sig_proxy: bool = True


@dataclass
class Mount:
    """One mount inside the container, OCI style: options carry flags (ro, nosuid, rbind...) and data (mode=)."""

    destination: str
    type: str
    source: str
    options: list[str] = field(default_factory=list)
    user_source: bool = False  # a host path the user named (bind, volume device): never pyctr's own state


@dataclass
class Rlimit:
    """One resource limit set in the container before exec (OCI process.rlimits)."""

    type: str  # "RLIMIT_NOFILE"
    soft: int
    hard: int


@dataclass
class ProcessSpec:
    """The container's process; uid/gid are resolved in the container (its /etc/passwd) at start."""

    args: list[str]
    env: list[str]
    cwd: str = "/"
    user: str = ""
    additional_groups: list[str] = field(default_factory=list)
    terminal: bool = False
    open_stdin: bool = False
    no_new_privileges: bool = False
    seccomp: str = "default"  # default | unconfined | custom (then seccomp_profile holds the profile)
    seccomp_profile: dict | None = None
    capabilities: list[str] = field(default_factory=list)
    rlimits: list[Rlimit] = field(default_factory=list)


@dataclass
class RootfsSpec:
    """The overlay the container runs on: image layers below, its own writable layer above."""

    lowerdirs: list[str]  # base layer first, as the image store lists them
    upperdir: str
    workdir: str
    merged: str
    readonly: bool = False


@dataclass
class LimitsSpec:
    """Plain numbers the cgroups package's Limits is built from (None = no limit)."""

    memory: int | None = None
    memory_swap: int | None = None  # -1 = unlimited swap
    cpu_quota: int | None = None
    cpu_period: int | None = None
    cpu_shares: int | None = None
    pids_limit: int | None = None
    # kernel flags (p15-ns)
    memory_reservation: int = 0
    oom_kill_disable: bool | None = False  # None where the kernel cannot (cgroup v2): inspect shows null
    cpuset_cpus: str = ""
    blkio_weight: int = 0


@dataclass
class NetworkSpec:
    """The network mode and what it needs: published ports, DNS servers, extra /etc/hosts entries."""

    mode: str = "bridge"  # bridge | host | none
    ports: list[str] = field(default_factory=list)  # -p strings, parsed by network.parse_publish
    publish_all: bool = False
    dns: list[str] = field(default_factory=list)
    extra_hosts: list[str] = field(default_factory=list)
    # h-misc
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    mac_address: str = ""  # --mac-address, lower-cased; "" = Docker's 02:42:<ip>
    links: list[str] = field(default_factory=list)  # "NAME:ALIAS" (NAME as given)


@dataclass
class ContainerSpec:
    """The complete, stored plan of one container."""

    id: str
    name: str
    image: str
    image_id: str
    process: ProcessSpec
    hostname: str
    rootfs: RootfsSpec
    bundle_dir: str  # containers/<id>: hostname, hosts, resolv.conf live here
    mounts: list[Mount] = field(default_factory=list)  # user volumes; rootfs.plan_mounts adds Docker's own
    masked_paths: list[str] = field(default_factory=list)
    readonly_paths: list[str] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)  # pid, mount, uts, ipc, net, cgroup
    limits: LimitsSpec = field(default_factory=LimitsSpec)
    network: NetworkSpec = field(default_factory=NetworkSpec)
    privileged: bool = False
    init: bool = False
    auto_remove: bool = False
    detach: bool = False
    stop_signal: str = "SIGTERM"
    stop_timeout: int = 10
    labels: dict[str, str] = field(default_factory=dict)
    volumes_to_create: list[str] = field(default_factory=list)  # host dirs (bind sources, named volumes)
    config_env: list[str] = field(default_factory=list)  # Docker's Config.Env (image's + user's, see config_env)
    dies_with_launcher: bool = False  # a build's RUN: SIGKILLed when the process that launched it dies
    mount_points: list[dict] = field(default_factory=list)  # mounts.MountPoint dicts: inspect's Mounts, volumes
    # kernel flags (p15-ns)
    ipc_mode: str = "private"  # private | shareable | host | none | container:X
    pid_mode: str = ""  # "" | host | container:X
    shm_size: int = 64 * 1024 * 1024
    sysctls: dict[str, str] = field(default_factory=dict)
    devices: list[dict] = field(default_factory=list)  # kernel_flags.DeviceMapping.to_docker() dicts
    # Filled by the launcher at each start, never stored: the namespaces to join ({"pid": "/proc/N/ns/pid"}),
    # the device nodes to create (kernel_flags.DeviceNode dicts), the host dir bound on /dev/shm.
    join: dict[str, str] = field(default_factory=dict)
    device_nodes: list[dict] = field(default_factory=list)
    shm_source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ContainerSpec:
        data = dict(data)
        process = dict(data["process"])
        process["rlimits"] = [Rlimit(**r) for r in process.get("rlimits", [])]
        data["process"] = _build(ProcessSpec, process)
        data["rootfs"] = _build(RootfsSpec, data["rootfs"])
        data["mounts"] = [_build(Mount, m) for m in data.get("mounts", [])]
        data["limits"] = _build(LimitsSpec, data.get("limits", {}))
        data["network"] = _build(NetworkSpec, data.get("network", {}))
        return _build(cls, data)

    @property
    def bundle(self) -> Path:
        return Path(self.bundle_dir)


def _build(cls: type, data: dict[str, Any]) -> Any:
    """Construct a dataclass ignoring unknown keys (a newer pyctr may have written more)."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


def parse_size(text: str, flag: str = "-m, --memory") -> int:
    """Docker's RAMInBytes: 512m, 1g, 100k, 1024 (bytes), binary units, case-insensitive; a bad value is refused
    as docker-cli's flag parser does: `invalid argument "12q" for "-m, --memory" flag: invalid suffix: 'q'`."""
    try:
        return ram_in_bytes(text)
    except ValueError as e:
        raise UsageError(f'invalid argument "{text}" for "{flag}" flag: {e}') from None


def parse_limits(options: RunOptions, host_cpus: int | None = None) -> LimitsSpec:
    """--memory, --memory-swap, --cpus, --cpu-shares, --pids-limit with Docker's checks and messages."""
    limits = LimitsSpec(cpu_shares=options.cpu_shares, pids_limit=options.pids_limit)
    if options.pids_limit is not None and options.pids_limit <= 0:
        limits.pids_limit = None  # Docker: 0 or -1 means unlimited
    if options.memory:
        limits.memory = parse_size(options.memory)
        if limits.memory and limits.memory < MIN_MEMORY:
            raise UsageError("Minimum memory limit allowed is 6MB")
    if options.memory_swap:
        swap = options.memory_swap
        limits.memory_swap = -1 if swap.strip() == "-1" else parse_size(swap, "--memory-swap")
        if not limits.memory:
            raise UsageError("You should always set the Memory limit when using Memoryswap limit, see usage")
        if limits.memory_swap != -1 and limits.memory_swap < limits.memory:
            raise UsageError("Minimum memoryswap limit should be larger than memory limit, see usage")
    if options.cpus:
        limits.cpu_quota, limits.cpu_period = _cpu_quota(options.cpus, host_cpus or os.cpu_count() or 1)
    return limits


def _cpu_quota(text: str, host_cpus: int) -> tuple[int, int] | tuple[None, None]:
    try:
        cpus = float(text)
    except ValueError:
        raise UsageError(f'invalid argument "{text}" for "--cpus" flag: failed to parse {text} as a rational number')\
            from None
    if cpus == 0:
        return None, None
    if cpus < 0.01 or cpus > host_cpus:
        raise UsageError(f"Range of CPUs is from 0.01 to {host_cpus}.00, as there are only {host_cpus} CPUs available")
    return int(cpus * CPU_PERIOD), CPU_PERIOD


def merge_command(image_config: dict, options: RunOptions) -> list[str]:
    """Entrypoint + Cmd: --entrypoint replaces the image's and drops its Cmd; `--entrypoint ""` clears it."""
    if options.entrypoint is not None:
        entrypoint = [options.entrypoint] if options.entrypoint else []
        cmd = list(options.command)
    else:
        entrypoint = list(image_config.get("Entrypoint") or [])
        cmd = list(options.command) or list(image_config.get("Cmd") or [])
    args = entrypoint + cmd
    if not args:
        raise UsageError("No command specified")
    return args


def _env_key(item: str) -> str:
    return item.split("=", 1)[0]


def replace_or_append_env(env: list[str], updates: list[str]) -> list[str]:
    """Docker's ReplaceOrAppendEnvValues: a later K=V replaces K in place, new keys append."""
    result = list(env)
    index = {_env_key(v): i for i, v in enumerate(result)}
    for item in updates:
        key = _env_key(item)
        if key in index:
            result[index[key]] = item
        else:
            index[key] = len(result)
            result.append(item)
    return result


def expand_user_env(items: list[str], host_env: dict[str, str]) -> list[str]:
    """-e K copies K from the host environment; when unset there it is dropped (Docker)."""
    result = []
    for item in items:
        if "=" in item:
            if not _env_key(item):
                raise UsageError(f"invalid environment variable: {item}")
            result.append(item)
        elif item in host_env:
            result.append(f"{item}={host_env[item]}")
    return result


def parse_env_file(text: str, path: str) -> list[str]:
    """--env-file lines: K=V or K; '#' comments and blank lines skipped; values taken literally."""
    items = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        if " " in _env_key(line) or "\t" in _env_key(line):
            raise UsageError(f"{path}: line {number}: variable '{_env_key(line)}' contains whitespaces")
        items.append(line)
    return items


def merge_env(image_config: dict, user_env: list[str], hostname: str, tty: bool,
              host_env: dict[str, str] | None = None) -> list[str]:
    """PATH, HOSTNAME, TERM (with -t) first, then the image's Env, then the user's, replacing keys in place."""
    base = [f"PATH={DEFAULT_PATH}", f"HOSTNAME={hostname}"] + (["TERM=xterm"] if tty else [])
    return replace_or_append_env(base, config_env(image_config, user_env, host_env))


def config_env(image_config: dict, user_env: list[str], host_env: dict[str, str] | None = None) -> list[str]:
    """Docker's `Config.Env`: the image's Env updated by the user's -e/--env-file, without what the runtime
    adds to the process (PATH default, HOSTNAME, TERM), which `inspect` does not show."""
    host_env = dict(os.environ) if host_env is None else host_env
    return replace_or_append_env(list(image_config.get("Env") or []), expand_user_env(user_env, host_env))


def anonymous_volume_name(container_id: str, index: int) -> str:
    """The name of the container's index-th `-v /path` volume: 64 hex digits like Docker's random ids,
    derived from the container id so that `rm -v` finds the same names again."""
    import hashlib

    return hashlib.sha256(f"{container_id}/anonymous-volume/{index}".encode()).hexdigest()


@dataclass(frozen=True)
class SecurityOptions:
    """What --security-opt (and --privileged) decided: no_new_privs and the seccomp profile."""

    no_new_privileges: bool = False
    seccomp: str = "default"
    seccomp_profile: dict | None = None


def parse_security_opts(opts: list[str], privileged: bool = False) -> SecurityOptions:
    """--security-opt: no-new-privileges[=true|false], seccomp=unconfined|<profile.json>; apparmor/label
    =unconfined are accepted (nothing to disable here); anything else is refused rather than ignored."""
    no_new_privs, seccomp, profile = False, "unconfined" if privileged else "default", None
    for opt in opts:
        key, sep, value = opt.partition("=")
        if ":" in opt and not sep:  # Docker's deprecated key:value form
            key, _, value = opt.partition(":")
            sep = "="
        key = key.strip()
        if key == "no-new-privileges" and (not sep or value.lower() in ("true", "false")):
            no_new_privs = not sep or value.lower() == "true"
        elif key == "seccomp" and value == "unconfined":
            seccomp, profile = "unconfined", None
        elif key == "seccomp" and value:
            from pyctr.runtime.seccomp import load_profile_file

            seccomp, profile = "custom", load_profile_file(value)
        elif key in ("apparmor", "label") and value:
            continue
        else:
            raise UsageError(f"Invalid --security-opt: {opt!r}")
    return SecurityOptions(no_new_privs, seccomp, profile)


def _parse_labels(labels: list[str], image_config: dict) -> dict[str, str]:
    result = dict(image_config.get("Labels") or {})
    for label in labels:
        key, _, value = label.partition("=")
        if not key:
            raise UsageError(f"invalid argument \"{label}\" for \"-l, --label\" flag: invalid label '{label}': "
                             "empty name")
        result[key] = value
    return result


def _check_dns(servers: list[str]) -> list[str]:
    """--dns takes IP addresses only (Docker refuses anything else before creating the container)."""
    import ipaddress

    for server in servers:
        try:
            ipaddress.ip_address(server)
        except ValueError:
            raise UsageError(f"{server} is not an ip address") from None
    return list(servers)


def network_extras(options: RunOptions) -> dict:
    """NetworkSpec's h-misc fields from the flags (misc_flags.py checked them): --dns-search, --dns-option,
    --mac-address, --link."""
    from pyctr.runtime.lifecycle.misc_flags import normalized_links, normalized_mac, normalized_search

    return {"dns_search": normalized_search(options.dns_search), "dns_options": list(options.dns_options),
            "mac_address": normalized_mac(options.mac_address), "links": normalized_links(options.links)}


def _check_network(mode: str) -> str:
    """bridge/host/none, or a user-defined network's name (the caller checked that it exists:
    network.usermanager.resolve_for_create)."""
    if mode in ("bridge", "host", "none", "default"):
        return "bridge" if mode == "default" else mode
    if not mode or mode.startswith("container:"):
        raise UsageError(f"network {mode} not found")
    return mode


def make_spec(image_config: dict, options: RunOptions, container_id: str, name: str, bundle_dir: Path,
              lowerdirs: list[Path], *, image_id: str = "", volumes_root: Path | None = None,
              host_env: dict[str, str] | None = None, host_cpus: int | None = None,
              inherited_mounts: list | None = None, volume_options: dict[str, dict] | None = None,
              kernel: Any = None) -> ContainerSpec:
    """Decide everything about a container from its image config and the command line. Pure.

    `image_config` is the image's config JSON (its "config" object, or the whole
    OCI config: both are accepted). `volumes_root` is PYCTR_ROOT/volumes
    (default: bundle_dir/../../volumes). `inherited_mounts` are the `--volumes-from` mount points
    (mounts.MountPoint), `volume_options` the `-o` options of existing volumes by name (their local driver
    mounts them as those say). Raises UsageError with Docker's wording.
    """
    inner = image_config.get("config")
    config = (inner if isinstance(inner, dict) else image_config) or {}
    bundle = Path(bundle_dir)
    volumes_root = volumes_root or bundle.parent.parent / "volumes"
    hostname = options.hostname or container_id[:12]
    network_mode = _check_network(options.network)
    if network_mode == "host" and not options.hostname:
        hostname = os.uname().nodename  # Docker: --network host shows the host's name
    workdir = options.workdir or config.get("WorkingDir") or "/"
    if not workdir.startswith("/"):
        raise UsageError(f"the working directory '{workdir}' is invalid, it needs to be an absolute path")
    user_env = env_from_files(options.env_files) + list(options.env)
    capabilities = tweak_capabilities(options.cap_add, options.cap_drop, options.privileged)
    points = plan_volumes(config, options, container_id, volumes_root, inherited_mounts)
    mounts = sorted(spec_mounts(points, volume_options or {}), key=lambda m: len(Path(m.destination).parts))
    security = parse_security_opts(options.security_opt, options.privileged)
    args = merge_command(config, options)
    if options.init:
        args = [INIT_PATH, "--"] + args
    process = ProcessSpec(
        args=args,
        env=merge_env(config, user_env, hostname, options.tty, host_env),
        cwd=os.path.normpath(workdir),
        user=options.user if options.user is not None else (config.get("User") or ""),
        additional_groups=list(options.group_add),
        terminal=options.tty,
        open_stdin=options.interactive,
        no_new_privileges=security.no_new_privileges,
        seccomp=security.seccomp,
        seccomp_profile=security.seccomp_profile,
        capabilities=capabilities,
    )
    limits = parse_limits(options, host_cpus)
    if kernel is None:
        from pyctr.runtime import kernel_flags

        kernel = kernel_flags.decide(options, network_mode, memory=limits.memory)
    resources = kernel.resources
    limits.memory_reservation, limits.oom_kill_disable = resources.memory_reservation, resources.oom_kill_disable
    limits.cpuset_cpus, limits.blkio_weight = resources.cpuset_cpus, resources.blkio_weight
    return ContainerSpec(
        id=container_id,
        name=name,
        image=options.image,
        image_id=image_id,
        process=process,
        hostname=hostname,
        rootfs=RootfsSpec(
            lowerdirs=[str(p) for p in lowerdirs],
            upperdir=str(bundle / "rootfs" / "upper"),
            workdir=str(bundle / "rootfs" / "work"),
            merged=str(bundle / "rootfs" / "merged"),
            readonly=options.read_only,
        ),
        bundle_dir=str(bundle),
        mounts=mounts,
        masked_paths=[] if options.privileged else list(MASKED_PATHS),
        readonly_paths=[] if options.privileged else list(READONLY_PATHS),
        namespaces=list(kernel.namespaces),
        limits=limits,
        network=NetworkSpec(network_mode, list(options.publish), options.publish_all, _check_dns(options.dns),
                            list(options.add_host), **network_extras(options)),
        privileged=options.privileged,
        init=options.init,
        auto_remove=options.rm,
        detach=options.detach,
        stop_signal=options.stop_signal or config.get("StopSignal") or "SIGTERM",
        stop_timeout=options.stop_timeout if options.stop_timeout is not None else 10,
        labels=_parse_labels(options.labels, config),
        volumes_to_create=[p.source for p in points if p.create_source or p.type == "volume"],
        config_env=config_env(config, user_env, host_env),
        mount_points=[p.to_dict() for p in points],
        ipc_mode=kernel.ipc_mode, pid_mode=kernel.pid_mode, shm_size=kernel.shm_size, sysctls=dict(kernel.sysctls),
        devices=list(kernel.devices),
    )


def plan_volumes(image_config: dict, options: RunOptions, container_id: str, volumes_root: Path,
                 inherited: list | None = None) -> list:
    """The container's mount points (mounts.py): -v, --mount, --tmpfs, --volumes-from, the image's VOLUMEs."""
    from pyctr.runtime import mounts

    inputs = mounts.parse_inputs(options.volumes, options.mounts, options.tmpfs, image_config.get("Volumes"),
                                 inherited)
    return mounts.plan_mount_points(inputs, volumes_root, lambda i: anonymous_volume_name(container_id, i))


def spec_mounts(points: list, volume_options: dict[str, dict]) -> list[Mount]:
    """The OCI mounts of the planned mount points (a volume created with `-o` mounts as its options say; an
    existing volume's own options, in `volume_options`, win over a `--mount volume-opt=` for a new one)."""
    from pyctr.runtime.mounts import spec_mount_fields

    result = []
    for point in points:
        own = volume_options.get(point.name, point.volume_options) if point.type == "volume" else {}
        kind, source, opts = spec_mount_fields(point, own)
        user = point.type == "bind" or (point.type == "volume" and bool(own.get("device")))
        result.append(Mount(point.destination, kind, source, opts, user_source=user))
    return result


def env_from_files(paths: list[str]) -> list[str]:
    """Read --env-file files (the only I/O make_spec does, and only when the flag is used)."""
    items: list[str] = []
    for path in paths:
        try:
            with open(path) as f:
                items += parse_env_file(f.read(), path)
        except OSError as e:
            raise UsageError(f"open {path}: {e.strerror.lower() if e.strerror else e}") from None
    return items
