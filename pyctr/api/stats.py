"""`GET /containers/{id}/stats`: dockerd's StatsJSON from pyctr.runtime.stats readings.

`stats_document` is pure (two readings -> the JSON the docker CLI computes its columns from: CPU % from the
container's and the host's CPU deltas between `precpu_stats` and `cpu_stats`, memory as usage minus the
inactive file cache over the limit, block I/O from `io_service_bytes_recursive`, network per interface,
pids). The endpoint streams one document a second (stream=1, the default), or answers one: after two
readings a second apart (stream=0, as dockerd does so the CPU % has a delta) or after one (one-shot=1).
"""

from __future__ import annotations

import time

from pyctr.api.http import Request
from pyctr.api.routes import route
from pyctr.api.service import config
from pyctr.api.streams import peer_gone
from pyctr.runtime.stats import UsageReading

ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time, what dockerd sends for "no reading"
INTERVAL = 1.0  # dockerd's collector samples once a second


def _cpu_section(reading: UsageReading | None) -> dict:
    cpu = (reading.cgroup.get("cpu") or {}) if reading else {}
    section = {"cpu_usage": {"total_usage": cpu.get("usage_ns") or 0,
                             "usage_in_kernelmode": cpu.get("system_ns") or 0,
                             "usage_in_usermode": cpu.get("user_ns") or 0},
               "throttling_data": {"periods": cpu.get("periods") or 0,
                                   "throttled_periods": cpu.get("throttled_periods") or 0,
                                   "throttled_time": cpu.get("throttled_ns") or 0}}
    if reading:
        section.update(system_cpu_usage=reading.system_cpu_ns, online_cpus=reading.online_cpus)
    return section


def _memory_section(reading: UsageReading, host_memory: int) -> dict:
    memory = reading.cgroup.get("memory") or {}
    inactive = memory.get("inactive_file") or 0
    section = {"usage": memory.get("usage") or 0, "stats": {"inactive_file": inactive, "total_inactive_file": inactive},
               "limit": memory.get("limit") or host_memory}
    if memory.get("max_usage") is not None:
        section["max_usage"] = memory["max_usage"]
    if memory.get("failcnt") is not None:
        section["failcnt"] = memory["failcnt"]
    return section


def _blkio_section(reading: UsageReading | None) -> dict:
    blkio = (reading.cgroup.get("blkio") or {}) if reading else {}
    entries = None
    if reading:
        entries = [{"major": 0, "minor": 0, "op": op, "value": blkio.get(key) or 0}
                   for op, key in (("read", "read_bytes"), ("write", "write_bytes"))]
    return {key: None for key in ("io_serviced_recursive", "io_queue_recursive", "io_service_time_recursive",
                                  "io_wait_time_recursive", "io_merged_recursive", "io_time_recursive",
                                  "sectors_recursive")} | {"io_service_bytes_recursive": entries}


def stats_document(container_id: str, name: str, now: UsageReading | None, before: UsageReading | None,
                   host_memory: int) -> dict:
    """dockerd's StatsJSON (API 1.41) for the reading `now` with `before` as its `pre` (None: zeros, Go's zero
    time), `host_memory` as the limit of a container without one (dockerd does the same)."""
    from pyctr.output.timefmt import format_rfc3339_ns

    doc = {"read": format_rfc3339_ns(now.at_ns) if now else ZERO_TIME,
           "preread": format_rfc3339_ns(before.at_ns) if before else ZERO_TIME,
           "pids_stats": {}, "blkio_stats": _blkio_section(now), "num_procs": 0, "storage_stats": {},
           "cpu_stats": _cpu_section(now), "precpu_stats": _cpu_section(before), "memory_stats": {},
           "name": f"/{name}", "id": container_id}
    if now is None:
        return doc
    pids = now.cgroup.get("pids") or {}
    doc["pids_stats"] = {k: v for k, v in (("current", pids.get("current") or 0), ("limit", pids.get("limit")))
                         if v is not None}
    doc["memory_stats"] = _memory_section(now, host_memory)
    if now.networks:
        doc["networks"] = now.networks
    return doc


@route("GET", "/containers/{id}/stats")
def stats(request: Request) -> None:
    from pyctr.runtime.state import ContainerStore
    from pyctr.runtime.stats import host_memory, read_usage

    store = ContainerStore(config().paths)
    record = store.get(request.params["id"])
    stream = request.flag("stream", True)
    one_shot = request.flag("one-shot")

    def document(now, before) -> dict:
        return stats_document(record.id, record.name, now, before, host_memory())

    if not stream:
        before = None if one_shot else read_usage(record)
        if before is not None:
            time.sleep(INTERVAL)
        request.send_json(document(read_usage(store.get(record.id)), before))
        return
    out = request.stream()
    connection = request.handler.connection
    before = None
    while not peer_gone(connection):
        now = read_usage(store.get(record.id))
        out.write_json(document(now, before))
        before = now
        time.sleep(INTERVAL)
