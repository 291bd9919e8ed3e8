"""Block I/O (v1 blkio, v2 io): --blkio-weight, and the bytes read and written for `pyctr stats`."""

from __future__ import annotations

from pathlib import Path

from pyctr.runtime.cgroups.files import PlanValue, read_text, write_plan
from pyctr.runtime.cgroups.limits import Limits

V1_BYTES = ("blkio.throttle.io_service_bytes_recursive", "blkio.throttle.io_service_bytes")


def parse_v1_service_bytes(text: str) -> dict[str, int]:
    """Lines `8:0 Read 4096`, `8:0 Write 0`, ..., `Total 4096`: sum Read and Write over devices."""
    totals = {"read_bytes": 0, "write_bytes": 0}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in ("Read", "Write") and parts[2].isdigit():
            totals["read_bytes" if parts[1] == "Read" else "write_bytes"] += int(parts[2])
    return totals


def parse_v2_io_stat(text: str) -> dict[str, int]:
    """Lines `8:0 rbytes=4096 wbytes=0 rios=1 wios=0 ...`: sum rbytes and wbytes over devices."""
    totals = {"read_bytes": 0, "write_bytes": 0}
    for line in text.splitlines():
        for field in line.split()[1:]:
            key, _, value = field.partition("=")
            if key in ("rbytes", "wbytes") and value.isdigit():
                totals["read_bytes" if key == "rbytes" else "write_bytes"] += int(value)
    return totals


def stats_v1(directory: Path) -> dict[str, int]:
    for name in V1_BYTES:
        text = read_text(directory / name)
        if text is not None:
            return parse_v1_service_bytes(text)
    return {"read_bytes": 0, "write_bytes": 0}


def stats_v2(directory: Path) -> dict[str, int]:
    return parse_v2_io_stat(read_text(directory / "io.stat") or "")


def plan_v1(limits: Limits) -> dict[str, PlanValue]:
    return {"blkio.weight": str(limits.blkio_weight)} if limits.blkio_weight else {}


def plan_v2(limits: Limits, bfq: bool) -> dict[str, PlanValue]:
    """runc: io.bfq.weight takes the weight as it is; io.weight (1..10000) takes it converted."""
    if not limits.blkio_weight:
        return {}
    if bfq:
        return {"io.bfq.weight": str(limits.blkio_weight)}
    return {"io.weight": f"default {1 + (limits.blkio_weight - 10) * 9999 // 990}"}


def apply_v1(directory: Path, limits: Limits) -> None:
    write_plan(directory, plan_v1(limits))


def apply_v2(directory: Path, limits: Limits) -> None:
    write_plan(directory, plan_v2(limits, bfq=(directory / "io.bfq.weight").exists()))
