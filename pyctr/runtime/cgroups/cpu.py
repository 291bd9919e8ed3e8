"""The cpu (and v1 cpuacct) controller: --cpus as a CFS quota, --cpu-shares as a weight.

v1: cpu.cfs_quota_us / cpu.cfs_period_us / cpu.shares, usage from cpuacct.usage (ns).
v2: cpu.max "<quota> <period>", cpu.weight, usage from cpu.stat usage_usec.
"""

from __future__ import annotations

from pathlib import Path

from pyctr.runtime.cgroups.files import PlanValue, read_int, read_keyed, write_plan
from pyctr.runtime.cgroups.limits import CFS_PERIOD_US, Limits

SHARES_MIN, SHARES_MAX = 2, 262_144
WEIGHT_MIN, WEIGHT_MAX = 1, 10_000


def shares_to_weight(shares: int) -> int:
    """The linear v1->v2 mapping runc, crun and Kubernetes use: [2, 262144] onto [1, 10000].

    1024 (the v1 default) maps to 39, not 100; that is the documented convention, kept
    so that a --cpu-shares value means the same under pyctr as under runc.
    """
    shares = min(max(shares, SHARES_MIN), SHARES_MAX)
    return 1 + ((shares - SHARES_MIN) * (WEIGHT_MAX - WEIGHT_MIN)) // (SHARES_MAX - SHARES_MIN)


def plan_v1(limits: Limits) -> dict[str, PlanValue]:
    plan: dict[str, PlanValue] = {}
    if limits.cpu_shares:
        plan["cpu.shares"] = str(min(max(limits.cpu_shares, SHARES_MIN), SHARES_MAX))
    quota = limits.cfs_quota_us
    if quota is not None:
        plan["cpu.cfs_period_us"] = str(CFS_PERIOD_US)
        plan["cpu.cfs_quota_us"] = str(quota)
    return plan


def plan_v2(limits: Limits) -> dict[str, PlanValue]:
    plan: dict[str, PlanValue] = {}
    if limits.cpu_shares:
        plan["cpu.weight"] = str(shares_to_weight(limits.cpu_shares))
    quota = limits.cfs_quota_us
    if quota is not None:
        plan["cpu.max"] = f"{quota} {CFS_PERIOD_US}"
    return plan


def apply_v1(directory: Path, limits: Limits) -> None:
    write_plan(directory, plan_v1(limits))


def apply_v2(directory: Path, limits: Limits) -> None:
    write_plan(directory, plan_v2(limits))


def stats_v1(cpu_dir: Path | None, cpuacct_dir: Path | None) -> dict[str, int | None]:
    """cpu and cpuacct can be separate hierarchies (as on this project's VM) or co-mounted."""
    stat = read_keyed(cpu_dir / "cpu.stat") if cpu_dir else {}
    acct = read_keyed(cpuacct_dir / "cpuacct.stat") if cpuacct_dir else {}
    hz = 100  # cpuacct.stat is in USER_HZ ticks
    return {
        "usage_ns": read_int(cpuacct_dir / "cpuacct.usage") if cpuacct_dir else None,
        "user_ns": acct["user"] * 1_000_000_000 // hz if "user" in acct else None,
        "system_ns": acct["system"] * 1_000_000_000 // hz if "system" in acct else None,
        "periods": stat.get("nr_periods"),
        "throttled_periods": stat.get("nr_throttled"),
        "throttled_ns": stat.get("throttled_time"),
    }


def stats_v2(directory: Path) -> dict[str, int | None]:
    stat = read_keyed(directory / "cpu.stat")

    def ns(key: str) -> int | None:
        return stat[key] * 1000 if key in stat else None

    return {
        "usage_ns": ns("usage_usec"),
        "user_ns": ns("user_usec"),
        "system_ns": ns("system_usec"),
        "periods": stat.get("nr_periods"),
        "throttled_periods": stat.get("nr_throttled"),
        "throttled_ns": ns("throttled_usec"),
    }
