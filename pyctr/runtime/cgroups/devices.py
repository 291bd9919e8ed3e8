"""The v1 devices controller: Docker's allow-list of device nodes.

v1 has devices.deny / devices.allow files. v2 has none: device access there is an
eBPF program attached to the cgroup (BPF_CGROUP_DEVICE), which pyctr does not load
yet, so on v2 `V2_ENFORCED` is False, `pyctr info` says so and the runtime drops
CAP_MKNOD instead (a container can then not create device nodes to open).
"""

from __future__ import annotations

from pathlib import Path

from pyctr.runtime.cgroups.files import PlanValue, read_text, write_plan
from pyctr.runtime.cgroups.limits import DeviceRule, Limits

V2_ENFORCED = False
V2_NOTE = "cgroup v2 restricts devices only with an eBPF program, which pyctr does not load: CAP_MKNOD is dropped"


def plan_v1(limits: Limits) -> dict[str, PlanValue]:
    """Reset rule ("a") first, then the specific exceptions, each file written line by line.

    With deny-all first the kernel keeps an allow-list and `devices.allow` lines add to it;
    with allow-all first, `devices.deny` lines are the exceptions. The rules' own order
    among specific entries does not matter once the reset is done.
    """
    return plan_lines(limits.device_rules)


def plan_lines(rules: tuple[DeviceRule, ...]) -> dict[str, PlanValue]:
    reset = [r for r in rules if r.type == "a"]
    specific = [r for r in rules if r.type != "a"]
    allow = [r.v1_line() for r in specific if r.allow]
    deny = [r.v1_line() for r in specific if not r.allow]
    if reset and reset[-1].allow:
        plan: dict[str, PlanValue] = {"devices.allow": ["a"] + allow}
        if deny:
            plan["devices.deny"] = deny
        return plan
    plan = {"devices.deny": (["a"] if reset else []) + deny}
    if allow:
        plan["devices.allow"] = allow
    return {k: v for k, v in plan.items() if v}


def plan_v2(limits: Limits) -> dict[str, PlanValue]:
    """Nothing to write: see V2_ENFORCED."""
    return {}


def apply_v1(directory: Path, limits: Limits) -> None:
    write_plan(directory, plan_v1(limits))


def apply_v2(directory: Path, limits: Limits) -> None:
    return None


def current_v1(directory: Path) -> list[str]:
    """devices.list as the kernel reports it: `a *:* rwm` when everything is allowed."""
    return (read_text(directory / "devices.list") or "").splitlines()
