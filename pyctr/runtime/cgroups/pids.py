"""The pids controller: --pids-limit, the defence against fork bombs. Same files in v1 and v2."""

from __future__ import annotations

from pathlib import Path

from pyctr.runtime.cgroups.files import PlanValue, read_int, read_keyed, write_plan
from pyctr.runtime.cgroups.limits import Limits


def plan(limits: Limits) -> dict[str, PlanValue]:
    """pids.max only when a positive limit is asked; a new cgroup already says "max"."""
    pids_max = limits.pids_max
    return {} if pids_max is None else {"pids.max": str(pids_max)}


plan_v1 = plan_v2 = plan


def apply_v1(directory: Path, limits: Limits) -> None:
    write_plan(directory, plan(limits))


apply_v2 = apply_v1


def stats(directory: Path) -> dict[str, int | None]:
    return {
        "current": read_int(directory / "pids.current"),
        "limit": read_int(directory / "pids.max"),
        "refused_forks": read_keyed(directory / "pids.events").get("max"),
    }
