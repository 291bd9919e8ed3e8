"""The memory controller: limits, swap (Docker semantics) and OOM detection.

v1 takes memory and memory+swap (`memory.memsw.limit_in_bytes`, present only with
swap accounting); v2 takes memory and *swap alone* (`memory.swap.max`), so the v2
swap value is Docker's --memory-swap minus --memory.
"""

from __future__ import annotations

from pathlib import Path

from pyctr.errors import RuntimeFailure
from pyctr.runtime.cgroups.files import PlanValue, read_int, read_keyed, write_plan
from pyctr.runtime.cgroups.limits import UNLIMITED, Limits

V1_LIMIT = "memory.limit_in_bytes"
V1_MEMSW = "memory.memsw.limit_in_bytes"
V2_MAX = "memory.max"
V2_SWAP = "memory.swap.max"
V1_SOFT = "memory.soft_limit_in_bytes"
V1_OOM_CONTROL = "memory.oom_control"
V2_LOW = "memory.low"
_V1_UNLIMITED_FLOOR = 1 << 62  # v1 reports "no limit" as PAGE_COUNTER_MAX pages, a huge number


def plan_v1(limits: Limits, swap_accounting: bool = True) -> dict[str, PlanValue]:
    """memory first, then memory+swap (a fresh cgroup's memsw is unlimited, so this order works), then
    --memory-reservation's soft limit and --oom-kill-disable."""
    plan: dict[str, PlanValue] = {}
    if limits.memory and limits.memory > 0:
        plan[V1_LIMIT] = str(limits.memory)
        swap = limits.effective_memory_swap
        if swap_accounting and swap is not None:
            plan[V1_MEMSW] = str(swap)
    if limits.memory_reservation:
        plan[V1_SOFT] = str(limits.memory_reservation)
    if limits.oom_kill_disable:
        plan[V1_OOM_CONTROL] = "1"
    return plan


def plan_v2(limits: Limits, swap_accounting: bool = True) -> dict[str, PlanValue]:
    """memory.max and swap; --memory-reservation as memory.low (runc's conversion); no OOM-kill switch in v2."""
    plan: dict[str, PlanValue] = {}
    if limits.memory and limits.memory > 0:
        plan[V2_MAX] = str(limits.memory)
        swap = limits.effective_memory_swap
        if swap_accounting and swap is not None:
            plan[V2_SWAP] = "max" if swap == UNLIMITED else str(max(0, swap - limits.memory))
    if limits.memory_reservation:
        plan[V2_LOW] = str(limits.memory_reservation)
    return plan


def apply_v1(directory: Path, limits: Limits) -> None:
    """Write the v1 plan; on EINVAL retry swap-first (lowering memsw below the old memory fails)."""
    plan = plan_v1(limits, swap_accounting=(directory / V1_MEMSW).exists())
    try:
        write_plan(directory, plan)
    except RuntimeFailure:
        if V1_MEMSW not in plan:
            raise
        write_plan(directory, {V1_MEMSW: plan[V1_MEMSW], **plan})


def apply_v2(directory: Path, limits: Limits) -> None:
    write_plan(directory, plan_v2(limits, swap_accounting=(directory / V2_SWAP).exists()))


def oom_killed_v1(directory: Path) -> bool:
    """`oom_kill` counts kills in this cgroup (kernel >= 4.13); `under_oom` is an OOM in progress."""
    control = read_keyed(directory / "memory.oom_control")
    return control.get("oom_kill", 0) > 0 or control.get("under_oom", 0) > 0


def oom_killed_v2(directory: Path) -> bool:
    return read_keyed(directory / "memory.events").get("oom_kill", 0) > 0


def usage_without_cache(usage: int | None, inactive_file: int | None) -> int | None:
    """What `docker stats` shows as MEM USAGE: usage minus inactive page cache (it can be reclaimed)."""
    if usage is None:
        return None
    if inactive_file is None or inactive_file > usage:
        return usage
    return usage - inactive_file


def stats_v1(directory: Path) -> dict[str, int | None]:
    limit = read_int(directory / V1_LIMIT)
    stat = read_keyed(directory / "memory.stat")
    usage = read_int(directory / "memory.usage_in_bytes")
    inactive_file = stat.get("total_inactive_file", stat.get("inactive_file"))
    return {
        "usage": usage,
        "usage_no_cache": usage_without_cache(usage, inactive_file),
        "max_usage": read_int(directory / "memory.max_usage_in_bytes"),
        "limit": None if limit is None or limit >= _V1_UNLIMITED_FLOOR else limit,
        "inactive_file": inactive_file,
        "failcnt": read_int(directory / "memory.failcnt"),
    }


def stats_v2(directory: Path) -> dict[str, int | None]:
    stat = read_keyed(directory / "memory.stat")
    usage = read_int(directory / "memory.current")
    return {
        "usage": usage,
        "usage_no_cache": usage_without_cache(usage, stat.get("inactive_file")),
        "max_usage": read_int(directory / "memory.peak"),
        "limit": read_int(directory / V2_MAX),
        "inactive_file": stat.get("inactive_file"),
        "failcnt": read_keyed(directory / "memory.events").get("max"),
    }
