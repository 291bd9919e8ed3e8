"""Where a container's cgroup lives and what is written there: pure functions only.

v1: one directory per controller, `<controller mount>/pyctr/<id>` (controllers that
share a mount, like cpu,cpuacct, share the directory); on a hybrid host also
`<unified>/pyctr/<id>` so the container has its own node in the v2 tree (runc does
the same), which no limits are written to. v2: a single `<unified>/pyctr/<id>`.
"""

from __future__ import annotations

import re
from pathlib import Path

from pyctr.errors import RuntimeFailure
from pyctr.runtime.cgroups import cpu, devices, memory, pids
from pyctr.runtime.cgroups.files import PlanValue
from pyctr.runtime.cgroups.limits import Limits

PARENT = "pyctr"
UNIFIED = "unified"  # the key of the v2 directory in Cgroup.paths
V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "devices", "freezer", "cpuset", "blkio")
V2_CONTROLLERS = ("cpuset", "cpu", "io", "memory", "pids")  # enabled in the parents' subtree_control
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def check_container_id(container_id: str) -> str:
    """The id becomes a directory name: refuse anything that could escape or nest."""
    if not _SAFE_ID.fullmatch(container_id) or container_id in (".", ".."):
        raise RuntimeFailure(f"invalid container id for a cgroup: {container_id!r}")
    return container_id


def v1_dirs(v1_mounts: dict[str, Path], container_id: str) -> dict[str, Path]:
    """controller -> container directory, for the controllers pyctr uses that are mounted."""
    check_container_id(container_id)
    return {c: v1_mounts[c] / PARENT / container_id for c in V1_CONTROLLERS if c in v1_mounts}


def v2_dir(unified: Path, container_id: str) -> Path:
    return unified / PARENT / check_container_id(container_id)


def plan_v1(limits: Limits, swap_accounting: bool = True) -> dict[str, dict[str, PlanValue]]:
    """controller -> {file: value}, in write order; controllers with nothing to write are left out."""
    plans = {
        "memory": memory.plan_v1(limits, swap_accounting),
        "cpu": cpu.plan_v1(limits),
        "pids": pids.plan_v1(limits),
        "devices": devices.plan_v1(limits),
    }
    return {controller: plan for controller, plan in plans.items() if plan}


def plan_v2(limits: Limits, swap_accounting: bool = True) -> dict[str, PlanValue]:
    """{file: value} for the single v2 directory (no device files exist in v2)."""
    plan: dict[str, PlanValue] = {}
    for part in (memory.plan_v2(limits, swap_accounting), cpu.plan_v2(limits), pids.plan_v2(limits)):
        plan.update(part)
    return plan


def v2_subtree_plan(available: list[str], enabled: list[str]) -> str | None:
    """The cgroup.subtree_control write that enables the controllers pyctr uses, or None."""
    missing = [c for c in V2_CONTROLLERS if c in available and c not in enabled]
    return " ".join(f"+{c}" for c in missing) or None
