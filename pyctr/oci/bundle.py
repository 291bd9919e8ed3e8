"""An OCI bundle's config.json turned into the plan pyctr-runtime carries out. Pure: `plan_from_config` reads
nothing but the dict it is given, so every rule is a unit test (tests/unit/test_oci_bundle.py).

What runc refuses is refused here with runc's words where they help a caller (containerd and podman show
the message); what runc ignores on a machine without the feature (SELinux labels) is ignored.
"""

from __future__ import annotations

import os

from pyctr.oci import SUPPORTED_OCI
from pyctr.oci.errors import ConfigError

NAMESPACES = {"pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc", "uts": "uts", "user": "user",
              "cgroup": "cgroup", "time": "time"}
HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
CAP_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")

# The plan's types are plain classes with __slots__, not dataclasses: `create` and `run` are cold starts a
# caller waits for, and decorating these classes with @dataclass costs more than parsing config.json.


class _Value:
    """Equality and repr from __slots__ (what @dataclass would have given)."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and all(getattr(self, n) == getattr(other, n) for n in self.__slots__)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{n}={getattr(self, n)!r}' for n in self.__slots__)})"


class Mount(_Value):
    __slots__ = ("destination", "type", "source", "options")

    def __init__(self, destination: str, type: str, source: str, options: tuple[str, ...] = ()) -> None:  # noqa: A002
        self.destination, self.type, self.source, self.options = destination, type, source, options

    @property
    def is_bind(self) -> bool:
        return self.type == "bind" or "bind" in self.options or "rbind" in self.options


class Device(_Value):
    __slots__ = ("path", "kind", "major", "minor", "mode", "uid", "gid")

    def __init__(self, path: str, kind: str, major: int, minor: int, mode: int, uid: int, gid: int) -> None:
        self.path, self.kind, self.major, self.minor = path, kind, major, minor  # kind: c, b, u, p
        self.mode, self.uid, self.gid = mode, uid, gid


class Hook(_Value):
    __slots__ = ("path", "args", "env", "timeout")

    def __init__(self, path: str, args: tuple[str, ...] = (), env: tuple[str, ...] = (),
                 timeout: int | None = None) -> None:
        self.path, self.args, self.env, self.timeout = path, args, env, timeout


class Rlimit(_Value):
    __slots__ = ("type", "soft", "hard")

    def __init__(self, type: str, soft: int, hard: int) -> None:  # noqa: A002
        self.type, self.soft, self.hard = type, soft, hard


class ProcessPlan(_Value):
    __slots__ = ("args", "env", "cwd", "uid", "gid", "additional_gids", "umask", "terminal", "no_new_privileges",
                 "oom_score_adj", "rlimits", "capabilities", "console_size")

    def __init__(self, args: list[str], env: list[str], cwd: str, uid: int = 0, gid: int = 0,
                 additional_gids: list[int] | None = None, umask: int | None = None, terminal: bool = False,
                 no_new_privileges: bool = False, oom_score_adj: int | None = None,
                 rlimits: list[Rlimit] | None = None, capabilities: dict[str, list[str]] | None = None,
                 console_size: tuple[int, int] | None = None) -> None:
        self.args, self.env, self.cwd, self.uid, self.gid = args, env, cwd, uid, gid
        self.additional_gids = additional_gids if additional_gids is not None else []
        self.umask, self.terminal, self.no_new_privileges = umask, terminal, no_new_privileges
        self.oom_score_adj = oom_score_adj
        self.rlimits = rlimits if rlimits is not None else []
        self.capabilities = capabilities if capabilities is not None else {s: [] for s in CAP_SETS}
        self.console_size = console_size  # (rows, cols)


class Plan(_Value):
    """Everything config.json decides, checked and normalised."""

    __slots__ = ("oci_version", "bundle", "root", "root_readonly", "process", "hostname", "domainname", "mounts",
                 "namespaces", "uid_mappings", "gid_mappings", "devices", "masked_paths", "readonly_paths",
                 "rootfs_propagation", "sysctl", "seccomp", "resources", "cgroups_path", "hooks", "annotations",
                 "warnings")

    def __init__(self, oci_version: str, bundle: str, root: str, root_readonly: bool, process: ProcessPlan,
                 hostname: str | None = None, domainname: str | None = None, seccomp: dict | None = None) -> None:
        self.oci_version, self.bundle, self.root, self.root_readonly = oci_version, bundle, root, root_readonly
        self.process, self.hostname, self.domainname, self.seccomp = process, hostname, domainname, seccomp
        self.mounts: list[Mount] = []
        self.namespaces: dict[str, str] = {}  # OCI type -> path ("" = new)
        self.uid_mappings: list[tuple[int, int, int]] = []  # (containerID, hostID, size)
        self.gid_mappings: list[tuple[int, int, int]] = []
        self.devices: list[Device] = []
        self.masked_paths: list[str] = []
        self.readonly_paths: list[str] = []
        self.rootfs_propagation = ""
        self.sysctl: dict[str, str] = {}
        self.resources: dict = {}
        self.cgroups_path = ""
        self.hooks: dict[str, list[Hook]] = {}
        self.annotations: dict[str, str] = {}
        self.warnings: list[str] = []

    def new_namespace(self, kind: str) -> bool:
        return self.namespaces.get(kind) == ""

    def joins_namespace(self, kind: str) -> bool:
        return bool(self.namespaces.get(kind))

    def has_user_namespace(self) -> bool:
        """A user namespace of its own (new, or joined by path): the init is then forked from inside it."""
        return "user" in self.namespaces


def _object(value: object, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be an object")
    return value


def _list(value: object, where: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"{where} must be an array")
    return value


def _int(value: object, where: str, default: int | None = None) -> int:
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where} must be an integer")
    return value


def plan_from_config(config: dict, bundle: str, *, known_caps: frozenset[str] | None = None,
                     apparmor_enabled: bool = False) -> Plan:
    """config.json (parsed) of the bundle at `bundle` -> Plan. Raises ConfigError."""
    if not isinstance(config, dict):
        raise ConfigError("config.json must hold an object")
    version = config.get("ociVersion")
    if not isinstance(version, str) or not version.startswith("1."):
        raise ConfigError(f"unsupported spec version {version!r}: pyctr-runtime implements {SUPPORTED_OCI}")
    root = _object(config.get("root"), "root")
    root_path = root.get("path")
    if not isinstance(root_path, str) or not root_path:
        raise ConfigError("root.path is empty")
    linux = _object(config.get("linux"), "linux")
    process = plan_process(config.get("process"), known_caps)
    plan = Plan(version, bundle, os.path.normpath(os.path.join(bundle, root_path)), bool(root.get("readonly")),
                process, hostname=config.get("hostname"), domainname=config.get("domainname"))
    plan.mounts = [plan_mount(m, bundle) for m in _list(config.get("mounts"), "mounts")]
    plan.namespaces = plan_namespaces(_list(linux.get("namespaces"), "linux.namespaces"))
    plan.uid_mappings = _mappings(linux.get("uidMappings"), "uidMappings")
    plan.gid_mappings = _mappings(linux.get("gidMappings"), "gidMappings")
    _check_user_namespace(plan)
    if plan.hostname and not plan.new_namespace("uts") and not plan.joins_namespace("uts"):
        raise ConfigError("unable to set hostname without a private UTS namespace")
    plan.devices = [plan_device(d) for d in _list(linux.get("devices"), "linux.devices")]
    plan.masked_paths = [str(p) for p in _list(linux.get("maskedPaths"), "linux.maskedPaths")]
    plan.readonly_paths = [str(p) for p in _list(linux.get("readonlyPaths"), "linux.readonlyPaths")]
    plan.rootfs_propagation = _propagation(linux.get("rootfsPropagation") or "")
    plan.sysctl = plan_sysctl(_object(linux.get("sysctl"), "linux.sysctl"), plan.namespaces)
    plan.seccomp = plan_seccomp(linux.get("seccomp"))
    plan.resources = _object(linux.get("resources"), "linux.resources")
    plan.cgroups_path = str(linux.get("cgroupsPath") or "")
    plan.hooks = plan_hooks(_object(config.get("hooks"), "hooks"))
    plan.annotations = {str(k): str(v) for k, v in _object(config.get("annotations"), "annotations").items()}
    _refuse_unsupported(linux, config.get("process") or {}, plan, apparmor_enabled)
    return plan


def plan_process(process: object, known_caps: frozenset[str] | None = None) -> ProcessPlan:
    """config.process (or an `exec --process` file) -> ProcessPlan."""
    if not isinstance(process, dict):
        raise ConfigError("process property must not be empty")
    args = _list(process.get("args"), "process.args")
    if not args or not all(isinstance(a, str) for a in args):
        raise ConfigError("args must not be empty")
    cwd = process.get("cwd") or "/"
    if not isinstance(cwd, str) or not cwd.startswith("/"):
        raise ConfigError(f"cwd {cwd!r} is not an absolute path")
    user = _object(process.get("user"), "process.user")
    if user.get("username"):
        raise ConfigError("process.user.username is a Windows field")
    env = [str(e) for e in _list(process.get("env"), "process.env")]
    plan = ProcessPlan(list(args), env, os.path.normpath(cwd),
                       uid=_int(user.get("uid"), "process.user.uid", 0),
                       gid=_int(user.get("gid"), "process.user.gid", 0),
                       additional_gids=[_int(g, "additionalGids") for g in _list(user.get("additionalGids"),
                                                                                  "additionalGids")],
                       terminal=bool(process.get("terminal")),
                       no_new_privileges=bool(process.get("noNewPrivileges")))
    if user.get("umask") is not None:
        plan.umask = _int(user.get("umask"), "process.user.umask")
    if process.get("oomScoreAdj") is not None:
        plan.oom_score_adj = _int(process["oomScoreAdj"], "process.oomScoreAdj")
        if not -1000 <= plan.oom_score_adj <= 1000:
            raise ConfigError(f"oomScoreAdj {plan.oom_score_adj} is outside [-1000, 1000]")
    plan.rlimits = plan_rlimits(_list(process.get("rlimits"), "process.rlimits"))
    caps = _object(process.get("capabilities"), "process.capabilities")
    for name in CAP_SETS:
        plan.capabilities[name] = [c for c in _list(caps.get(name), f"capabilities.{name}")
                                   if known_caps is None or c in known_caps]
    size = process.get("consoleSize")
    if isinstance(size, dict):
        plan.console_size = (_int(size.get("height"), "consoleSize.height", 0),
                             _int(size.get("width"), "consoleSize.width", 0))
    return plan


RLIMITS = ("RLIMIT_AS", "RLIMIT_CORE", "RLIMIT_CPU", "RLIMIT_DATA", "RLIMIT_FSIZE", "RLIMIT_LOCKS",
           "RLIMIT_MEMLOCK", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_RSS",
           "RLIMIT_RTPRIO", "RLIMIT_RTTIME", "RLIMIT_SIGPENDING", "RLIMIT_STACK")


def plan_rlimits(items: list) -> list[Rlimit]:
    seen: set[str] = set()
    limits = []
    for item in items:
        item = _object(item, "process.rlimits[]")
        kind = item.get("type")
        if kind not in RLIMITS:
            raise ConfigError(f"rlimit {kind!r} is not supported")
        if kind in seen:
            raise ConfigError(f"rlimit {kind} is given twice")
        seen.add(kind)
        soft, hard = _int(item.get("soft"), f"{kind}.soft"), _int(item.get("hard"), f"{kind}.hard")
        if soft > hard:
            raise ConfigError(f"rlimit {kind}: soft limit {soft} is above the hard limit {hard}")
        limits.append(Rlimit(kind, soft, hard))
    return limits


def plan_mount(item: object, bundle: str) -> Mount:
    item = _object(item, "mounts[]")
    destination = item.get("destination")
    if not isinstance(destination, str) or not destination.startswith("/"):
        raise ConfigError(f"mount destination {destination!r} is not an absolute path")
    options = tuple(str(o) for o in _list(item.get("options"), "mount options"))
    kind = str(item.get("type") or ("bind" if "bind" in options or "rbind" in options else ""))
    source = str(item.get("source") or "")
    mount = Mount(os.path.normpath(destination), kind, source, options)
    if mount.is_bind and source and not source.startswith("/"):
        mount = Mount(mount.destination, kind, os.path.normpath(os.path.join(bundle, source)), options)
    if not kind:
        raise ConfigError(f"mount {destination}: type is empty")
    return mount


def plan_namespaces(items: list) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in items:
        item = _object(item, "linux.namespaces[]")
        kind = item.get("type")
        if kind not in NAMESPACES:
            raise ConfigError(f"namespace {kind!r} does not exist")
        if kind in found:
            raise ConfigError(f"malformed spec file: duplicated ns {kind!r}")
        found[kind] = str(item.get("path") or "")
    return found


def _mappings(value: object, where: str) -> list[tuple[int, int, int]]:
    result = []
    for item in _list(value, where):
        item = _object(item, where)
        result.append((_int(item.get("containerID"), f"{where}.containerID"),
                       _int(item.get("hostID"), f"{where}.hostID"), _int(item.get("size"), f"{where}.size")))
    return result


def _check_user_namespace(plan: Plan) -> None:
    """runc's rules: mappings need a user namespace; a new one needs both maps (a joined one has its own);
    the process's uid and gid must be mapped (setuid to an unmapped id fails inside)."""
    if (plan.uid_mappings or plan.gid_mappings) and "user" not in plan.namespaces:
        raise ConfigError("User namespace mappings specified, but USER namespace isn't enabled in the config")
    for where, mappings in (("uidMappings", plan.uid_mappings), ("gidMappings", plan.gid_mappings)):
        for container_id, host_id, size in mappings:
            if container_id < 0 or host_id < 0 or size <= 0:
                raise ConfigError(f"{where}: invalid mapping {container_id} {host_id} {size}")
    if not plan.new_namespace("user"):
        return
    if not plan.uid_mappings:
        raise ConfigError("user namespaces enabled, but no uid mappings found")
    if not plan.gid_mappings:
        raise ConfigError("user namespaces enabled, but no gid mappings found")
    if not maps_id(plan.uid_mappings, plan.process.uid):
        raise ConfigError(f"cannot set uid to unmapped user in user namespace: uid {plan.process.uid}")
    for gid in (plan.process.gid, *plan.process.additional_gids):
        if not maps_id(plan.gid_mappings, gid):
            raise ConfigError(f"cannot set gid to unmapped group in user namespace: gid {gid}")


def maps_id(mappings: list[tuple[int, int, int]], container_id: int) -> bool:
    """Whether `container_id` (a uid or gid inside) has a host id in `mappings`. Pure."""
    return any(start <= container_id < start + size for start, _host, size in mappings)


def host_id(mappings: list[tuple[int, int, int]], container_id: int) -> int | None:
    """The host id of `container_id` through `mappings`, None when unmapped. Pure."""
    for start, host, size in mappings:
        if start <= container_id < start + size:
            return host + container_id - start
    return None


def id_map_text(mappings: list[tuple[int, int, int]]) -> str:
    """/proc/PID/uid_map (gid_map) contents: one "inside outside count" line per mapping, written with one
    write(2) (the kernel takes a map once, whole). Pure."""
    return "".join(f"{inside} {outside} {size}\n" for inside, outside, size in mappings)


def plan_device(item: object) -> Device:
    item = _object(item, "linux.devices[]")
    path = item.get("path")
    if not isinstance(path, str) or not path.startswith("/dev/"):
        raise ConfigError(f"device path {path!r} must be under /dev")
    kind = item.get("type")
    if kind not in ("c", "b", "u", "p"):
        raise ConfigError(f"device {path}: type {kind!r} is not c, b, u or p")
    major = _int(item.get("major"), f"{path}.major", 0)
    minor = _int(item.get("minor"), f"{path}.minor", 0)
    mode = _int(item.get("fileMode"), f"{path}.fileMode", 0o666)
    return Device(os.path.normpath(path), kind, major, minor, mode,
                  _int(item.get("uid"), f"{path}.uid", 0), _int(item.get("gid"), f"{path}.gid", 0))


def _propagation(value: str) -> str:
    allowed = ("", "private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable", "runbindable")
    if value not in allowed:
        raise ConfigError(f"rootfsPropagation {value!r} is invalid")
    return value


# Namespaced sysctls (runc's validator): what may be set, and which namespace it needs.
_IPC_SYSCTLS = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax",
                "kernel.shmmni", "kernel.shm_rmid_forced")


def plan_sysctl(values: dict, namespaces: dict[str, str]) -> dict[str, str]:
    for key in values:
        if key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
            if "ipc" not in namespaces:
                raise ConfigError(f"sysctl {key!r} is not allowed as it conflicts with the OCI \"ipc\" namespace")
        elif key.startswith("net."):
            if "network" not in namespaces:
                raise ConfigError(f"sysctl {key!r} is not allowed in the hosts network namespace")
        elif key in ("kernel.domainname", "kernel.hostname"):
            if "uts" not in namespaces:
                raise ConfigError(f"sysctl {key!r} is not allowed in the hosts uts namespace")
        else:
            raise ConfigError(f"sysctl {key!r} is not in a separate kernel namespace")
    return {str(k): str(v) for k, v in values.items()}


def plan_seccomp(value: object) -> dict | None:
    if value is None:
        return None
    profile = _object(value, "linux.seccomp")
    if profile.get("listenerPath"):
        raise ConfigError("seccomp listenerPath is not supported: pyctr-runtime has no seccomp notify agent")
    if not profile.get("defaultAction"):
        raise ConfigError("seccomp: defaultAction is empty")
    for flag in _list(profile.get("flags"), "seccomp.flags"):
        if flag not in ("SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"):
            raise ConfigError(f"seccomp flag {flag!r} is not supported")
    for rule in _list(profile.get("syscalls"), "seccomp.syscalls"):
        for arg in _list(_object(rule, "seccomp.syscalls[]").get("args"), "seccomp args"):
            if _object(arg, "seccomp arg").get("op") not in (
                    "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
                    "SCMP_CMP_MASKED_EQ"):
                raise ConfigError(f"seccomp: unknown operator {arg.get('op')!r}")
    return profile


def plan_hooks(hooks: dict) -> dict[str, list[Hook]]:
    result: dict[str, list[Hook]] = {}
    for kind, items in hooks.items():
        if kind not in HOOK_KINDS:
            continue  # runtime-spec: unknown hook kinds are ignored
        for item in _list(items, f"hooks.{kind}"):
            item = _object(item, f"hooks.{kind}[]")
            path = item.get("path")
            if not isinstance(path, str) or not path.startswith("/"):
                raise ConfigError(f"hooks.{kind}: path {path!r} is not absolute")
            timeout = item.get("timeout")
            if timeout is not None and (_int(timeout, "hook timeout") <= 0):
                raise ConfigError(f"hooks.{kind}: timeout must be positive")
            result.setdefault(kind, []).append(Hook(path, tuple(item.get("args") or ()), tuple(item.get("env") or ()),
                                                    timeout))
    return result


def _refuse_unsupported(linux: dict, process: dict, plan: Plan, apparmor_enabled: bool) -> None:
    if linux.get("intelRdt"):
        raise ConfigError("intelRdt is not supported by pyctr-runtime (runc: Intel RDT is not enabled)")
    if process.get("apparmorProfile") and not apparmor_enabled:
        raise ConfigError(f"apparmor profile {process['apparmorProfile']} specified but AppArmor is not enabled "
                          "on this system")
    if process.get("selinuxLabel") or linux.get("mountLabel"):
        plan.warnings.append("SELinux labels ignored: SELinux is not enabled")
    if linux.get("personality"):
        raise ConfigError("linux.personality is not supported by pyctr-runtime")
    if "time" in plan.namespaces:
        raise ConfigError("time namespaces are not supported by pyctr-runtime")
