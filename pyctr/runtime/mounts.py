"""What a container mounts besides its root: `-v`, `--mount`, `--tmpfs`, `--volumes-from` and the image's
VOLUMEs, decided as Docker 20.10 decides them. Pure: no file is read or written here.

Three steps, each Docker's:
1. parsing each flag (docker-cli's `opts/mount.go` for `--mount`, moby's `volume/mounts/linux_parser.go`
   ParseMountRaw for `-v`, `--tmpfs DEST[:OPTS]`) into `MountRequest`s (Docker's `mount.Mount`);
2. validating them as the daemon does (`validateMountConfig`: "invalid mount config for type ...");
3. planning (`plan_mount_points`): the requests, then what `--volumes-from` inherits, then an anonymous volume
   for every image VOLUME (and `-v /path`) no earlier mount covers (moby daemon/volumes.go
   registerMountPoints, create_unix.go). The result is a list of `MountPoint`s: inspect's `.Mounts`
   entries plus what the runtime needs (host source, copy-up, tmpfs data, anonymous or named).

Volume names follow the local driver's rule `[a-zA-Z0-9][a-zA-Z0-9_.-]+`: no `/`, and `..` cannot be a name
(its first character is not alphanumeric), so a name is always one directory under PYCTR_ROOT/volumes.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pyctr.errors import PyctrError, UsageError
from pyctr.units import ram_in_bytes

VOLUME_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_VOLUME_MODES = {"ro", "rw", "z", "Z", "nocopy", "copy", "private", "rprivate", "shared", "rshared", "slave",
                 "rslave", "consistent", "cached", "delegated"}
_PROPAGATIONS = {"private", "rprivate", "shared", "rshared", "slave", "rslave"}
MOUNT_TYPES = ("bind", "volume", "tmpfs")
# Docker's defaults for every tmpfs it mounts for a container (daemon/oci_linux.go): the user's options follow
# and win (`exec` undoes `noexec`).
TMPFS_DEFAULTS = ("noexec", "nosuid", "nodev")


class MountError(PyctrError):
    """A mount the daemon refuses (Docker: `Error response from daemon: ...`, exit 125 from run/create). The
    `--mount` flag's own syntax is the CLI's (`invalid argument ... for "--mount" flag`): a UsageError."""


def invalid_volume_name(name: str) -> str:
    """The local driver's refusal of a name, word for word (exit 125 for run, 1 for `volume create`)."""
    return (f'create {name}: "{name}" includes invalid characters for a local volume name, only '
            '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path')


def check_volume_name(name: str) -> str:
    if not VOLUME_NAME.match(name):
        raise MountError(invalid_volume_name(name))
    return name


@dataclass
class MountRequest:
    """One mount the user asked for (Docker's api/types/mount.Mount plus the `-v` mode text)."""

    type: str
    target: str
    source: str = ""
    readonly: bool = False
    nocopy: bool = False
    volume_options: dict[str, str] = field(default_factory=dict)
    volume_labels: dict[str, str] = field(default_factory=dict)
    volume_driver: str = ""
    propagation: str = ""
    tmpfs_size: int | None = None
    tmpfs_mode: int | None = None
    mode: str = ""  # the `-v` mode text as given (inspect's Mode); "" for --mount
    nonrecursive: bool = False  # bind-nonrecursive: a plain bind, without the mounts below the source
    from_volume_flag: bool = False  # -v (creates a missing bind source; Mode "z" for a named volume)
    has_volume_options: bool = False  # any volume-* key given (refused with another type)
    has_bind_options: bool = False
    has_tmpfs_options: bool = False


def _flag_error(value: str, problem: str) -> UsageError:
    return UsageError(f'invalid argument "{value}" for "--mount" flag: {problem}')


def _bool(value: str) -> bool | None:
    """Go's strconv.ParseBool."""
    return {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
            "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}.get(value)


def parse_mount_flag(value: str) -> MountRequest:
    """`--mount type=...,source=...,target=...` as docker-cli's MountOpt.Set parses it (CSV fields)."""
    try:
        fields = next(csv.reader([value]))
    except (csv.Error, StopIteration) as e:
        raise _flag_error(value, str(e)) from None
    request = MountRequest(type="volume", target="")
    for item in fields:
        key, sep, val = item.partition("=")
        key = key.lower()
        if not sep and key in ("readonly", "ro"):
            request.readonly = True
            continue
        if not sep and key == "volume-nocopy":
            request.nocopy = request.has_volume_options = True
            continue
        if not sep and key == "bind-nonrecursive":
            request.has_bind_options = request.nonrecursive = True
            continue
        if not sep:
            raise _flag_error(value, f"invalid field '{item}' must be a key=value pair")
        _set_mount_field(request, key, val, item, value)
    if not request.type:
        raise _flag_error(value, "type is required")
    if not request.target:
        raise _flag_error(value, "target is required")
    for kind, given in (("volume", request.has_volume_options), ("bind", request.has_bind_options),
                        ("tmpfs", request.has_tmpfs_options)):
        if given and request.type != kind:
            raise _flag_error(value, f"cannot mix '{kind}-*' options with mount type '{request.type}'")
    return request


def _set_mount_field(request: MountRequest, key: str, val: str, item: str, value: str) -> None:
    if key == "type":
        request.type = val.lower()
    elif key in ("source", "src"):
        request.source = val
    elif key in ("target", "dst", "destination"):
        request.target = val
    elif key in ("readonly", "ro", "volume-nocopy", "bind-nonrecursive"):
        parsed = _bool(val)
        if parsed is None:
            raise _flag_error(value, f"invalid value for {key}: {val}")
        if key == "volume-nocopy":
            request.nocopy, request.has_volume_options = parsed, True
        elif key == "bind-nonrecursive":
            request.has_bind_options, request.nonrecursive = True, parsed
        else:
            request.readonly = parsed
    elif key == "consistency":
        pass  # Docker for Mac's hint: accepted and ignored on Linux
    elif key == "bind-propagation":
        request.propagation, request.has_bind_options = val.lower(), True
    elif key in ("volume-label", "volume-opt"):
        name, _, setting = val.partition("=")
        target = request.volume_labels if key == "volume-label" else request.volume_options
        target[name] = setting
        request.has_volume_options = True
    elif key == "volume-driver":
        request.volume_driver, request.has_volume_options = val, True
    elif key == "tmpfs-size":
        try:
            request.tmpfs_size = ram_in_bytes(val)
        except ValueError:
            raise _flag_error(value, f"invalid value for {key}: {val}") from None
        request.has_tmpfs_options = True
    elif key == "tmpfs-mode":
        try:
            if not val.isdigit():  # Go's ParseUint(v, 8, 32): no sign, no prefix
                raise ValueError(val)
            request.tmpfs_mode = int(val, 8)
            if request.tmpfs_mode >= 1 << 32:
                raise ValueError(val)
        except ValueError:
            raise _flag_error(value, f"invalid value for {key}: {val}") from None
        request.has_tmpfs_options = True
    else:
        raise _flag_error(value, f"unexpected key '{key}' in '{item}'")


def valid_mode(mode: str) -> bool:
    """moby's linuxValidMountMode: known words, at most one of each kind (rw, label, propagation, copy,
    consistency)."""
    if not mode:
        return True
    kinds = {"rw": "rw", "ro": "rw", "z": "label", "Z": "label", "nocopy": "copy", "consistent": "consistency",
             "cached": "consistency", "delegated": "consistency", **{p: "propagation" for p in _PROPAGATIONS}}
    seen: list[str] = []
    for word in mode.split(","):
        if word not in kinds or kinds[word] in seen:
            return False
        seen.append(kinds[word])
    return True


def parse_volume_flag(spec: str) -> MountRequest:
    """`-v [SOURCE:]DEST[:MODE]` as moby's ParseMountRaw: an absolute SOURCE is a bind, another a named
    volume, none an anonymous one (docker-cli moves `-v /dest` into Config.Volumes, where the daemon makes it
    an anonymous volume)."""
    if spec.count(":") > 2 or not spec.split(":", 1)[0]:
        raise MountError(f"invalid volume specification: '{spec}'")
    parts = spec.split(":")
    source, destination, mode = "", parts[0], ""
    if len(parts) == 2:
        if valid_mode(parts[1]):  # `/foo:rw`: a volume cannot have a mode without a source
            raise MountError(f"invalid volume specification: '{spec}'")
        source, destination = parts
    elif len(parts) == 3:
        source, destination, mode = parts
    if not valid_mode(mode):
        raise MountError(f"invalid mode: {mode}")
    words = mode.split(",") if mode else []
    propagation = next((w for w in words if w in _PROPAGATIONS), "")
    request = MountRequest(type="bind" if source.startswith("/") else "volume", target=destination, source=source,
                           readonly="ro" in words, nocopy="nocopy" in words, propagation=propagation, mode=mode,
                           from_volume_flag=True, has_volume_options="nocopy" in words,
                           has_bind_options=bool(propagation))
    if len(parts) == 1 and destination.startswith("/"):
        return request
    try:
        validate_request(request)
    except MountError as e:
        raise MountError(f"invalid volume specification: '{spec}': {e}") from None
    return request


def parse_tmpfs_flag(value: str) -> tuple[str, str]:
    """`--tmpfs DEST[:OPTIONS]` -> (destination, options text), as HostConfig.Tmpfs records it; the destination
    checked as moby's ValidateTmpfsMountDestination (not "/", then absolute; no "invalid mount config" prefix)."""
    destination, _, options = value.partition(":")
    if os.path.normpath(destination or ".") == "/":
        raise MountError("invalid specification: destination can't be '/'")
    if not destination.startswith("/"):
        raise MountError(f"invalid mount path: '{destination}' mount path must be absolute")
    return destination, options


def parse_volumes_from(value: str) -> tuple[str, str]:
    """`--volumes-from CONTAINER[:MODE]` as moby's ParseVolumesFrom: the mode is rw unless given; neither a
    propagation nor a copy mode may be."""
    if not value:
        raise MountError("volumes-from specification cannot be an empty string")
    container, sep, mode = value.partition(":")
    if not sep:
        return container, "rw"
    words = mode.split(",")
    if not valid_mode(mode) or any(w in _PROPAGATIONS or w == "nocopy" for w in words):
        raise MountError(f"invalid mode: {mode}")
    return container, mode


def _config_error(kind: str, problem: str) -> MountError:
    return MountError(f'invalid mount config for type "{kind}": {problem}')


def validate_request(request: MountRequest) -> None:
    """moby's validateMountConfigImpl (20.10), minus the bind source's existence (I/O: volumes.py), in its
    order: the target, then what each type allows. A named volume's name is the local driver's to refuse
    (`check_volume_name`, when the volume is created)."""
    kind = request.type
    if not request.target:
        raise _config_error(kind, "field Target must not be empty")
    if os.path.normpath(request.target) == "/":
        raise _config_error(kind, "invalid specification: destination can't be '/'")
    if not request.target.startswith("/"):
        raise _config_error(kind, f"invalid mount path: '{request.target}' mount path must be absolute")
    if kind == "bind":
        if not request.source:
            raise _config_error(kind, "field Source must not be empty")
        if request.propagation and request.propagation not in _PROPAGATIONS:
            raise _config_error(kind, f"invalid propagation mode: {request.propagation}")
        if request.has_volume_options:
            raise _config_error(kind, "field VolumeOptions must not be specified")
        if not request.source.startswith("/"):
            raise _config_error(kind, f"invalid mount path: '{request.source}' mount path must be absolute")
    elif kind == "volume":
        if request.has_bind_options:
            raise _config_error(kind, "field BindOptions must not be specified")
        if not request.source and request.readonly:
            raise _config_error(kind, "must not set ReadOnly mode when using anonymous volumes")
    elif kind == "tmpfs":
        if request.has_bind_options:
            raise _config_error(kind, "field BindOptions must not be specified")
        if request.source:
            raise _config_error(kind, "field Source must not be specified")
    else:
        raise _config_error(kind, "mount type unknown")


@dataclass
class MountPoint:
    """One planned mount: inspect's `.Mounts` entry (`inspect()`) and what the runtime mounts (`spec_mount`)."""

    type: str  # bind | volume | tmpfs
    destination: str
    source: str = ""  # host path (bind source, volume _data); "" for tmpfs
    name: str = ""  # volume name
    rw: bool = True
    mode: str = ""
    propagation: str = ""
    anonymous: bool = False  # a volume without a name from the user: `rm -v` removes it
    copy_data: bool = False  # copy the image's content at destination into the volume when it is empty
    tmpfs_options: str = ""  # tmpfs: "size=..,mode=.." etc.
    volume_options: dict[str, str] = field(default_factory=dict)  # `volume create -o`/`volume-opt` of a new volume
    volume_labels: dict[str, str] = field(default_factory=dict)
    create_source: bool = False  # -v binds: Docker creates a missing host directory
    recursive: bool = True  # rbind (Docker's default) or, with bind-nonrecursive, bind
    shown: bool = True  # --tmpfs mounts are not in `.Mounts` (HostConfig.Tmpfs lists them)

    def inspect(self) -> dict:
        """Docker's `.Mounts` entry."""
        doc: dict = {"Type": self.type}
        if self.type == "volume":
            doc["Name"] = self.name
        doc["Source"] = self.source
        doc["Destination"] = self.destination
        if self.type == "volume":
            doc["Driver"] = "local"
        doc.update({"Mode": self.mode, "RW": self.rw, "Propagation": self.propagation})
        return doc

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> MountPoint:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})


def tmpfs_options(request: MountRequest) -> str:
    """moby's ConvertTmpfsOptions: size= (bytes as k/m/g when exact) and mode= (octal)."""
    options = []
    if request.tmpfs_size:
        options.append(f"size={_tmpfs_size(request.tmpfs_size)}")
    if request.tmpfs_mode is not None:
        options.append(f"mode={request.tmpfs_mode:o}")
    if request.readonly:
        options.append("ro")
    return ",".join(options)


def _tmpfs_size(size: int) -> str:
    for suffix, unit in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
        if size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)


def merge_tmpfs_options(options: str) -> list[str]:
    """Docker's defaults then the user's, a later flag undoing an earlier one (mount.MergeTmpfsOptions)."""
    opposites = {"exec": "noexec", "suid": "nosuid", "dev": "nodev", "rw": "ro"}
    opposites.update({v: k for k, v in opposites.items()})
    merged: list[str] = []
    for opt in list(TMPFS_DEFAULTS) + [o for o in options.split(",") if o]:
        key = opt.split("=", 1)[0]
        merged = [m for m in merged if m.split("=", 1)[0] not in (key, opposites.get(opt, ""))]
        merged.append(opt)
    return merged


def _point_for_request(request: MountRequest, volumes_root: Path, anonymous_name: str) -> MountPoint:
    target = os.path.normpath(request.target)
    if request.type == "bind":
        return MountPoint("bind", target, os.path.normpath(request.source), rw=not request.readonly,
                          mode=request.mode, propagation=request.propagation or "rprivate",
                          create_source=request.from_volume_flag, recursive=not request.nonrecursive)
    if request.type == "tmpfs":
        return MountPoint("tmpfs", target, rw=not request.readonly, tmpfs_options=tmpfs_options(request))
    name = request.source or anonymous_name
    # setBindModeIfNull: a local volume from -v NAME:/dst or --mount records Mode "z"; `-v /dst` (Config.Volumes) ""
    mode = request.mode or ("z" if request.source or not request.from_volume_flag else "")
    return MountPoint("volume", target, str(volumes_root / name / "_data"), name=name, rw=not request.readonly,
                      mode=mode, anonymous=not request.source, copy_data=not request.nocopy,
                      volume_options=dict(request.volume_options), volume_labels=dict(request.volume_labels))


@dataclass
class MountInputs:
    """Everything the plan is made of: the user's flags (parsed), inherited mounts and the image's VOLUMEs."""

    requests: list[MountRequest] = field(default_factory=list)
    tmpfs: list[tuple[str, str]] = field(default_factory=list)
    inherited: list[MountPoint] = field(default_factory=list)  # --volumes-from, modes already applied
    image_volumes: list[str] = field(default_factory=list)


def parse_inputs(volumes: list[str], mounts: list[str], tmpfs: list[str], image_volumes: dict | None,
                 inherited: list[MountPoint] | None = None) -> MountInputs:
    """Parse and validate every flag (docker-cli's checks, then the daemon's, then the local driver's names)."""
    flagged = [parse_mount_flag(m) for m in mounts]
    for request in flagged:
        validate_request(request)
    requests = [parse_volume_flag(v) for v in volumes] + flagged
    for request in requests:
        if request.type == "volume" and request.source:
            check_volume_name(request.source)
        if request.type == "volume" and request.volume_driver not in ("", "local"):
            raise MountError(f"create {request.source}: error looking up volume plugin {request.volume_driver}: "
                             f'plugin "{request.volume_driver}" not found')
    return MountInputs(requests, [parse_tmpfs_flag(t) for t in tmpfs], list(inherited or []),
                       sorted(image_volumes or {}))


def plan_mount_points(inputs: MountInputs, volumes_root: Path, anonymous_name) -> list[MountPoint]:
    """Docker's registerMountPoints order and rules; `anonymous_name(i)` names the i-th anonymous volume.

    Every destination is mounted once: two user mounts on one path are Docker's `Duplicate mount point`; an
    inherited mount or an image VOLUME under a path the user mounted is skipped (the user's wins)."""
    points: list[MountPoint] = []
    taken: set[str] = set()
    anonymous = 0

    def next_name() -> str:
        nonlocal anonymous
        anonymous += 1
        return anonymous_name(anonymous - 1)

    for request in inputs.requests:
        point = _point_for_request(request, volumes_root, "" if request.source or request.type != "volume"
                                   else next_name())
        if point.destination in taken:
            raise MountError(f"Duplicate mount point: {point.destination}")
        taken.add(point.destination)
        points.append(point)
    for destination, options in inputs.tmpfs:
        destination = os.path.normpath(destination)
        if destination in taken:
            raise MountError(f"Duplicate mount point: {destination}")
        taken.add(destination)
        points.append(MountPoint("tmpfs", destination, tmpfs_options=options, shown=False))
    for point in inputs.inherited:
        if point.destination not in taken:
            taken.add(point.destination)
            points.append(point)
    for destination in inputs.image_volumes:
        destination = os.path.normpath(destination)
        if destination in taken or not destination.startswith("/") or destination == "/":
            continue
        taken.add(destination)
        points.append(MountPoint("volume", destination, str(volumes_root / (name := next_name()) / "_data"),
                                 name=name, anonymous=True, copy_data=True))
    return points


def inherit(points: list[MountPoint], mode: str) -> list[MountPoint]:
    """What `--volumes-from C[:MODE]` takes from C (moby registerMountPoints): each mount point as it is, read-only
    if C's was or MODE says `ro`, without its Mode text and never copied into. An anonymous volume stays
    anonymous: `rm -v` of either container removes it once no other container uses it."""
    read_write = "ro" not in mode.split(",")
    inherited = []
    for point in points:
        if point.type == "tmpfs" and not point.shown:
            continue  # --tmpfs is HostConfig.Tmpfs, not a mount point
        copy = MountPoint.from_dict(point.to_dict())
        copy.rw, copy.mode = point.rw and read_write, ""
        copy.copy_data, copy.create_source = False, False
        copy.volume_options, copy.volume_labels = {}, {}
        inherited.append(copy)
    return inherited


def spec_mount_fields(point: MountPoint, volume_options: dict[str, str] | None = None) -> tuple[str, str, list[str]]:
    """(type, source, options) of the OCI mount for `point`.

    A local volume created with `-o type=...,device=...,o=...` is mounted as its options say, as Docker's
    local driver mounts it (`mount(device, _data, type, o)`): `type=none,o=bind` is a bind of `device`, a
    tmpfs a tmpfs with the `o=` options. pyctr mounts it straight at the destination in the container's own
    mount namespace (no host mount to leak, nothing to count); so two containers on one tmpfs volume each
    get a tmpfs of their own, where Docker's share one while both run."""
    access = "rw" if point.rw else "ro"
    if point.type == "tmpfs":
        return "tmpfs", "tmpfs", merge_tmpfs_options(point.tmpfs_options) + ([] if point.rw else ["ro"])
    options = volume_options or {}
    if point.type == "volume" and (options.get("type") or options.get("device")):
        o = [x for x in options.get("o", "").split(",") if x]
        if "bind" in o or "rbind" in o:
            return "bind", options.get("device", ""), ["rbind" if "rbind" in o else "bind", "rprivate", access]
        return options.get("type") or "none", options.get("device") or "none", o + [access]
    propagation = point.propagation or "rprivate"
    return "bind", point.source, ["rbind" if point.recursive else "bind", propagation, access]


def api_mount(request: MountRequest) -> dict:
    """HostConfig.Mounts' entry of one `--mount` (moby api/types/mount.Mount, its omitempty keys left out)."""
    doc: dict = {"Type": request.type, "Source": request.source, "Target": request.target}
    if not request.source:
        del doc["Source"]
    if request.readonly:
        doc["ReadOnly"] = True
    if request.has_bind_options:
        doc["BindOptions"] = {k: v for k, v in (("Propagation", request.propagation),
                                                ("NonRecursive", request.nonrecursive)) if v}
    if request.has_volume_options:
        options: dict = {}
        if request.nocopy:
            options["NoCopy"] = True
        if request.volume_labels:
            options["Labels"] = dict(request.volume_labels)
        if request.volume_driver or request.volume_options:
            driver: dict = {"Name": request.volume_driver} if request.volume_driver else {}
            if request.volume_options:
                driver["Options"] = dict(request.volume_options)
            options["DriverConfig"] = driver
        doc["VolumeOptions"] = options
    if request.has_tmpfs_options:
        tmpfs: dict = {}
        if request.tmpfs_size:
            tmpfs["SizeBytes"] = request.tmpfs_size
        if request.tmpfs_mode is not None:
            tmpfs["Mode"] = request.tmpfs_mode
        doc["TmpfsOptions"] = tmpfs
    return doc


def host_config_entries(mounts: list[str], tmpfs: list[str], volumes_from: list[str]) -> dict:
    """HostConfig's Mounts, Tmpfs and VolumesFrom as `docker inspect` shows them (None when unset)."""
    return {
        "Mounts": [api_mount(parse_mount_flag(m)) for m in mounts] or None,
        "Tmpfs": dict(parse_tmpfs_flag(t) for t in tmpfs) or None,
        "VolumesFrom": list(volumes_from) or None,
    }
