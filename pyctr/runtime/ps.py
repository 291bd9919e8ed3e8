"""`pyctr ps` output, pure: Docker's strings, columns and filters.

Every function here takes plain values (and `now`), so the table is unit-tested
against the exact strings Docker prints: "Up 31 seconds", "Exited (0) 2 minutes
ago", `"sh -c 'sleep…"`, "0.0.0.0:8000->8000/tcp".
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from pyctr.errors import UsageError
from pyctr.units import bytes_size, human_duration, human_size

COLUMNS = ("CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES")
_FIELDS = ("ID", "Image", "Command", "RunningFor", "Status", "Ports", "Names")
TRUNC_COMMAND = 20
STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")


def status_text(status: str, exit_code: int, started: float, finished: float, now: float) -> str:
    """Docker's STATUS column for one container."""
    if status in ("running", "paused"):
        text = f"Up {human_duration(now - started)}"
        return text + " (Paused)" if status == "paused" else text
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


def command_text(argv: list[str], trunc: bool = True) -> str:
    """The COMMAND cell: the argv joined by spaces, truncated, then quoted like Go's strconv.Quote."""
    command = " ".join(argv)
    if trunc:
        command = ellipsis(command, TRUNC_COMMAND)
    return json.dumps(command, ensure_ascii=False)


def ports_text(ports: list[dict]) -> str:
    """"0.0.0.0:8000->8000/tcp, 0.0.0.0:8443->443/tcp" (exposed-only ports: "80/tcp")."""
    cells = []
    for p in ports:
        proto = p.get("Protocol", "tcp")
        if p.get("HostPort"):
            cells.append(f"{p.get('HostIp') or '0.0.0.0'}:{p['HostPort']}->{p['ContainerPort']}/{proto}")
        else:
            cells.append(f"{p['ContainerPort']}/{proto}")
    return ", ".join(cells)


def created_at_text(epoch: float) -> str:
    """Docker's CreatedAt in `ps --format json`: "2024-05-01 10:00:00 +0000 UTC"."""
    return time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(epoch))


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
    image_id: str = ""  # "sha256:..." (for `ps -s`)
    size_rw: int = 0  # `ps -s`: the container's writable layer (bytes)
    size_root_fs: int = 0  # ... plus its image (0: not measured)


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
        "LocalVolumes": "0",
        "Mounts": "",
        "Names": item.name,
        "Networks": item.network,
        "Ports": ports_text(item.ports) if running else "",
        "RunningFor": f"{human_duration(now - item.created)} ago",
        "Size": size_text(item.size_rw, item.size_root_fs),
        "State": item.status,
        "Status": status_text(item.status, item.exit_code, item.started, item.finished, now),
    }


def format_table(rows: list[dict[str, str]], with_size: bool = False) -> str:
    """Docker's table: Go tabwriter(minwidth 10, padding 3), last column unpadded; `ps -s` adds SIZE last."""
    columns, fields = (COLUMNS + ("SIZE",), _FIELDS + ("Size",)) if with_size else (COLUMNS, _FIELDS)
    table = [list(columns)] + [[row[f] for f in fields] for row in rows]
    widths = [max(10, max(len(line[i]) for line in table) + 3) for i in range(len(columns) - 1)]
    out = []
    for line in table:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(line[:-1])]
        out.append(("".join(cells) + line[-1]).rstrip())
    return "\n".join(out)


def format_json_lines(rows: list[dict[str, str]]) -> str:
    return "\n".join(json.dumps(row, separators=(",", ":"), ensure_ascii=False) for row in rows)


def parse_filters(filters: tuple[str, ...] | list[str]) -> dict[str, list[str]]:
    """`-f key=value` flags into {key: [values]}; unknown keys are refused as Docker does."""
    parsed: dict[str, list[str]] = {}
    for f in filters:
        key, sep, value = f.partition("=")
        if not sep:
            raise UsageError(f"bad format of filter (expected name=value): {f}")
        key = key.strip().lower()
        if key not in ("status", "name", "id", "label", "ancestor", "exited"):
            raise UsageError(f"invalid filter '{key}'")
        if key == "status" and value not in STATUSES:
            raise UsageError(f"invalid filter 'status={value}'")
        parsed.setdefault(key, []).append(value)
    return parsed


def matches(item: PsItem, filters: dict[str, list[str]]) -> bool:
    """Docker's semantics: values of one key are OR'ed, different keys AND'ed."""
    import re

    checks = {
        "status": lambda v: item.status == v,
        "name": lambda v: re.search(v, item.name) is not None,
        "id": lambda v: item.id.startswith(v),
        "label": lambda v: _label_matches(item.labels, v),
        "ancestor": lambda v: item.image == v or item.image.split(":")[0] == v,
        "exited": lambda v: item.status == "exited" and str(item.exit_code) == v,
    }
    return all(any(checks[key](v) for v in values) for key, values in filters.items())


def _label_matches(labels: dict, spec: str) -> bool:
    key, sep, value = spec.partition("=")
    return key in labels and (not sep or labels[key] == value)


def select_items(items: list[PsItem], *, show_all: bool, filters: dict[str, list[str]],
                 last: int = -1, latest: bool = False) -> list[PsItem]:
    """Which containers ps shows, newest first: running only unless -a, -n/-l, or a status filter."""
    items = sorted(items, key=lambda i: i.created, reverse=True)
    if latest:
        last = 1
    if last <= 0 and not show_all and "status" not in filters:
        items = [i for i in items if i.status in ("running", "paused", "restarting")]
    items = [i for i in items if matches(i, filters)]
    return items[:last] if last > 0 else items


# -- stats (`pyctr stats`): same table machinery, Docker's units ------------------------------------------

STATS_COLUMNS = ("CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS")
_STATS_FIELDS = ("ID", "Name", "CPUPerc", "MemUsage", "MemPerc", "NetIO", "BlockIO", "PIDs")


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


def format_stats_table(rows: list[dict[str, str]]) -> str:
    table = [list(STATS_COLUMNS)] + [[row[f] for f in _STATS_FIELDS] for row in rows]
    widths = [max(10, max(len(line[i]) for line in table) + 3) for i in range(len(STATS_COLUMNS) - 1)]
    return "\n".join(("".join(c.ljust(widths[i]) for i, c in enumerate(line[:-1])) + line[-1]).rstrip()
                     for line in table)


# -- `--format 'table {{.ID}}\t{{.Names}}'`: Docker's custom tables ---------------------------------------------

HEADERS = {
    "ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "RunningFor": "CREATED", "Status": "STATUS",
    "Ports": "PORTS", "Names": "NAMES", "CreatedAt": "CREATED AT", "State": "STATE", "Labels": "LABELS",
    "Networks": "NETWORKS", "Size": "SIZE", "Mounts": "MOUNTS", "LocalVolumes": "LOCAL VOLUMES",
    "Name": "NAME", "Container": "CONTAINER", "CPUPerc": "CPU %", "MemUsage": "MEM USAGE / LIMIT",
    "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS",
}


def align(lines: list[list[str]]) -> str:
    """Go tabwriter(minwidth 10, padding 3) over rows of cells; the last cell is not padded."""
    columns = max((len(line) for line in lines), default=0)
    widths = [max(10, max(len(line[i]) for line in lines if i < len(line)) + 3) for i in range(columns - 1)]
    out = []
    for line in lines:
        cells = [cell.ljust(widths[i]) if i < columns - 1 else cell for i, cell in enumerate(line)]
        out.append("".join(cells).rstrip())
    return "\n".join(out)


def format_template(template: str, rows: list[dict[str, str]]) -> str:
    """Rows through a Go-like template; a `table ` prefix adds Docker's headers and aligns tab-separated cells."""
    import re

    from pyctr.runtime.inspect import render_format

    if not template.startswith("table"):
        return "\n".join(render_format(template, row) for row in rows)
    body = template[len("table"):].strip().replace("\\t", "\t") or "\t".join(
        "{{." + f + "}}" for f in _FIELDS)
    cells = body.split("\t")
    header = [re.sub(r"{{\s*\.(\w+)\s*}}", lambda m: HEADERS.get(m.group(1), m.group(1).upper()), c) for c in cells]
    lines = [header] + [[render_format(c, row) for c in cells] for row in rows]
    return align(lines)
