"""`pyctr ps` output, pure: Docker's strings, columns and filters.

Every function here takes plain values (and `now`), so the table is unit-tested
against the exact strings Docker prints: "Up 31 seconds", "Exited (0) 2 minutes
ago", `"sh -c 'sleep…"`, "0.0.0.0:8000->8000/tcp".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from pyctr.errors import UsageError
from pyctr.output import table
from pyctr.output.template import GoStruct, Stringer
from pyctr.output.timefmt import go_time_text
from pyctr.units import bytes_size, human_duration, human_size

DEFAULT_FORMAT = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
RAW_FORMAT = """container_id: {{.ID}}
image: {{.Image}}
command: {{.Command}}
created_at: {{.CreatedAt}}
state: {{- pad .State 1 0}}
status: {{- pad .Status 1 0}}
names: {{.Names}}
labels: {{- pad .Labels 1 0}}
ports: {{- pad .Ports 1 0}}
"""
# docker-cli's NewContainerContext header map: what a `table` format prints above each column
HEADERS = {
    "ID": "CONTAINER ID", "Names": "NAMES", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Size": "SIZE",
    "Labels": "LABELS", "Mounts": "MOUNTS", "LocalVolumes": "LOCAL VOLUMES", "Networks": "NETWORKS",
    "Platform": "PLATFORM",
}
CONTEXT_TYPE = "*formatter.ContainerContext"  # docker-cli 20.10's name, seen in "can't evaluate field" errors
TRUNC_COMMAND = 20
STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")
HEALTH_FILTER_VALUES = ("starting", "healthy", "unhealthy", "none")


def status_text(status: str, exit_code: int, started: float, finished: float, now: float, health: str = "") -> str:
    """Docker's STATUS column for one container (`health`: State.Health.Status of a running one, or "")."""
    if status in ("running", "paused"):
        text = f"Up {human_duration(now - started)}"
        if status == "paused":
            return text + " (Paused)"
        if health:
            from pyctr.runtime.health import status_suffix

            return f"{text} ({status_suffix(health)})"
        return text
    if status == "restarting":
        return f"Restarting ({exit_code}) {human_duration(now - finished)} ago"
    if status == "removing":
        return "Removal In Progress"
    if status == "dead":
        return "Dead"
    if status == "exited" and finished:
        return f"Exited ({exit_code}) {human_duration(now - finished)} ago"
    if status == "exited":
        return f"Exited ({exit_code})"
    return "Created"


def ellipsis(text: str, width: int) -> str:
    """Cut to `width` characters, the last being "…" (Docker's formatter.Ellipsis)."""
    if len(text) <= width:
        return text
    return text[: width - 1] + "…"


def daemon_command(argv: list[str]) -> str:
    """The Engine API's `Command` of a container list entry, as dockerd builds it: Path and Args joined by
    spaces, each argument that holds a space wrapped in single quotes (the client quotes and truncates it)."""
    return " ".join(argv[:1] + [f"'{arg}'" if " " in arg else arg for arg in argv[1:]])


def command_text(argv: list[str], trunc: bool = True) -> str:
    """The COMMAND cell: dockerd's command text (what docker-cli receives), truncated, then quoted like Go's
    strconv.Quote."""
    command = daemon_command(argv)
    if trunc:
        command = ellipsis(command, TRUNC_COMMAND)
    return json.dumps(command, ensure_ascii=False)


def ports_text(ports: list[dict]) -> str:
    """docker-cli's DisplayablePorts: "0.0.0.0:8000->80/tcp, :::8000->80/tcp", same-numbered ports grouped
    into ranges ("0.0.0.0:8000-8001->8000-8001/tcp"), exposed-only ports as "80/tcp"."""
    from pyctr.runtime.network.publish import PortMapping, format_ports

    published = [PortMapping(p.get("HostIp") or "0.0.0.0", int(p["HostPort"]), int(p["ContainerPort"]),
                             p.get("Protocol", "tcp")) for p in ports if p.get("HostPort")]
    exposed = [(int(p["ContainerPort"]), p.get("Protocol", "tcp")) for p in ports if not p.get("HostPort")]
    return format_ports(published, exposed)


def created_at_text(epoch: float) -> str:
    """Docker's CreatedAt in `ps --format json`: "2024-05-01 10:00:00 +0000 UTC"."""
    return go_time_text(epoch)


@dataclass(frozen=True)
class PsItem:
    """What ps needs of one container, as plain values."""

    id: str
    name: str
    image: str
    argv: list[str]
    created: float
    status: str
    exit_code: int = 0
    started: float = 0.0
    finished: float = 0.0
    ports: list[dict] = field(default_factory=list)
    labels: dict = field(default_factory=dict)
    network: str = "bridge"
    platform: dict | None = None  # the OCI platform of the image ({"architecture": "amd64", "os": "linux"})
    image_id: str = ""  # "sha256:..." (for `ps -s`)
    size_rw: int = 0  # `ps -s`: the container's writable layer (bytes)
    size_root_fs: int = 0  # ... plus its image (0: not measured)
    mounts: list[dict] = field(default_factory=list)  # inspect's `.Mounts` entries (volumes, p15-vol)
    health: str = ""  # State.Health.Status: starting | healthy | unhealthy ("" without a healthcheck)


def size_text(size_rw: int, size_root_fs: int) -> str:
    """docker-cli's SIZE cell: "12B (virtual 1.98MB)" (go-units HumanSizeWithPrecision, 3 digits)."""
    text = human_size(size_rw)
    return f"{text} (virtual {human_size(size_root_fs)})" if size_root_fs > 0 else text


def ps_row(item: PsItem, now: float, trunc: bool = True) -> dict[str, str]:
    """One container as Docker's `ps --format '{{json .}}'` object (all values strings)."""
    running = item.status in ("running", "paused", "restarting")
    return {
        "Command": command_text(item.argv, trunc),
        "CreatedAt": created_at_text(item.created),
        "ID": item.id[:12] if trunc else item.id,
        "Image": item.image,
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(item.labels.items())),
        "LocalVolumes": str(sum(1 for m in item.mounts if m.get("Driver") == "local")),
        "Mounts": mounts_text(item.mounts, trunc),
        "Names": item.name,
        "Networks": item.network,
        "Ports": ports_text(item.ports) if running else "",
        "RunningFor": f"{human_duration(now - item.created)} ago",
        "Size": size_text(item.size_rw, item.size_root_fs),
        "State": item.status,
        "Status": status_text(item.status, item.exit_code, item.started, item.finished, now, item.health),
    }


def mounts_text(mounts: list[dict], trunc: bool = True) -> str:
    """docker-cli's MOUNTS cell: each mount's volume name, else its source, cut to 15 characters unless
    --no-trunc."""
    names = [m.get("Name") or m.get("Source", "") for m in mounts]
    return ",".join(ellipsis(n, 15) if trunc else n for n in names)


def platform_value(platform: dict | None) -> Stringer | None:
    """docker-cli's Platform: "linux/arm64/v8" when printed, the OCI platform object in JSON, nil if unknown."""
    if not platform:
        return None
    ordered = {k: platform[k] for k in ("architecture", "os", "os.version", "os.features", "variant")
               if platform.get(k)}
    text = "/".join(p for p in (platform.get("os"), platform.get("architecture"), platform.get("variant")) if p)
    fields = {"Architecture": platform.get("architecture", ""), "OS": platform.get("os", ""),
              "OSVersion": platform.get("os.version", ""), "OSFeatures": platform.get("os.features"),
              "Variant": platform.get("variant", "")}
    return Stringer(text, ordered, fields)


_last_platform: tuple = (None, None)  # (platform dict, its value): one listing's items share one platform dict


def _platform_value_of(platform: dict | None) -> Stringer | None:
    """platform_value, computed once for the platform object every item of a listing shares (the host's).
    One tuple read and one write: threads of the API server never pair a platform with another's value."""
    global _last_platform
    cached = _last_platform
    if platform is None or cached[0] is not platform:
        cached = _last_platform = (platform, platform_value(platform))
    return cached[1]


def ps_context(item: PsItem, row: dict[str, str]) -> GoStruct:
    """One container as docker-cli's ContainerContext: the row's fields, `.Label "k"`, `Platform`."""
    fields: dict = {**row, "Platform": _platform_value_of(item.platform)}
    return GoStruct(CONTEXT_TYPE, fields, {"Label": lambda name: item.labels.get(name, "")},
                    json_keys=tuple(fields))


def format_table(rows: list[dict[str, str]], with_size: bool = False) -> str:
    """Docker's default `ps` table (no trailing newline); `ps -s` adds SIZE last."""
    fmt = DEFAULT_FORMAT + ("\\t{{.Size}}" if with_size else "")
    return table.write(fmt, rows, HEADERS).rstrip("\n")


def parse_filters(filters: tuple[str, ...] | list[str]) -> dict[str, list[str]]:
    """`-f key=value` flags into {key: [values]}; unknown keys are refused as Docker does."""
    parsed: dict[str, list[str]] = {}
    for f in filters:
        key, sep, value = f.partition("=")
        if not sep:
            raise UsageError(f"bad format of filter (expected name=value): {f}")
        key = key.strip().lower()
        if key not in ("status", "name", "id", "label", "ancestor", "exited", "volume", "health"):
            raise UsageError(f"invalid filter '{key}'")
        if key == "health" and value not in HEALTH_FILTER_VALUES:
            raise UsageError(f"Unrecognised filter value for health: {value}")
        if key == "status" and value not in STATUSES:
            raise UsageError(f"invalid filter 'status={value}'")
        parsed.setdefault(key, []).append(value)
    return parsed


def matches(item: PsItem, filters: dict[str, list[str]]) -> bool:
    """Docker's semantics: values of one key are OR'ed, different keys AND'ed; but every `label` must match
    (moby's MatchKVList: compose selects a project's service with project AND service AND oneoff labels)."""
    import re

    checks = {
        "status": lambda v: item.status == v,
        "name": lambda v: re.search(v, item.name) is not None,
        "id": lambda v: item.id.startswith(v),
        "label": lambda v: _label_matches(item.labels, v),
        "ancestor": lambda v: item.image == v or item.image.split(":")[0] == v,
        "exited": lambda v: item.status == "exited" and str(item.exit_code) == v,
        # dockerd: a volume's name, or a mount's destination
        "volume": lambda v: any(m.get("Name") == v or m.get("Destination") == v for m in item.mounts),
        "health": lambda v: (item.health or "none") == v,
    }
    return all((all if key == "label" else any)(checks[key](v) for v in values) for key, values in filters.items())


def _label_matches(labels: dict, spec: str) -> bool:
    key, sep, value = spec.partition("=")
    return key in labels and (not sep or labels[key] == value)


def running_only(*, show_all: bool, filters: dict[str, list[str]], last: int = -1, latest: bool = False) -> bool:
    """Whether ps shows only running containers, so the store need not read the stopped ones."""
    return not show_all and not latest and last <= 0 and "status" not in filters


def select_items(items: list[PsItem], *, show_all: bool, filters: dict[str, list[str]],
                 last: int = -1, latest: bool = False) -> list[PsItem]:
    """Which containers ps shows, newest first: running only unless -a, -n/-l, or a status filter."""
    items = sorted(items, key=lambda i: i.created, reverse=True)
    if latest:
        last = 1
    if running_only(show_all=show_all, filters=filters, last=last):
        items = [i for i in items if i.status in ("running", "paused", "restarting")]
    items = [i for i in items if matches(i, filters)]
    return items[:last] if last > 0 else items


# -- stats (`pyctr stats`): same table machinery, Docker's units ------------------------------------------

STATS_FORMAT = ("table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}"
                "\t{{.PIDs}}")
STATS_HEADERS = {
    "Container": "CONTAINER", "Name": "NAME", "ID": "CONTAINER ID", "CPUPerc": "CPU %",
    "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS",
}
STATS_CONTEXT_TYPE = "*container.statsContext"


@dataclass(frozen=True)
class StatsSample:
    """Usage numbers of one container between two readings `interval` seconds apart."""

    id: str
    name: str
    cpu_ns_delta: int = 0
    interval: float = 1.0
    mem_usage: int = 0
    mem_limit: int = 0
    net_rx: int = 0
    net_tx: int = 0
    block_read: int = 0
    block_write: int = 0
    pids: int = 0


def stats_row(s: StatsSample) -> dict[str, str]:
    """One container as Docker's `stats --format '{{json .}}'` object."""
    cpu = s.cpu_ns_delta / (s.interval * 1e9) * 100 if s.interval > 0 else 0.0
    mem_percent = s.mem_usage / s.mem_limit * 100 if s.mem_limit else 0.0
    return {
        "BlockIO": f"{human_size(s.block_read)} / {human_size(s.block_write)}",
        "CPUPerc": f"{cpu:.2f}%",
        "Container": s.id[:12],
        "ID": s.id[:12],
        "MemPerc": f"{mem_percent:.2f}%",
        "MemUsage": f"{bytes_size(s.mem_usage)} / {bytes_size(s.mem_limit)}",
        "Name": s.name,
        "NetIO": f"{human_size(s.net_rx)} / {human_size(s.net_tx)}",
        "PIDs": str(s.pids),
    }


def stats_context(row: dict[str, str]) -> GoStruct:
    return GoStruct(STATS_CONTEXT_TYPE, dict(row), json_keys=tuple(row))


def format_stats_table(rows: list[dict[str, str]]) -> str:
    """Docker's default `stats` table (no trailing newline)."""
    return table.write(STATS_FORMAT, rows, STATS_HEADERS).rstrip("\n")
