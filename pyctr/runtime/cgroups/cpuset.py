"""The v1 cpuset controller: a new v1 cpuset is empty and refuses tasks until filled.

A fresh v1 cpuset directory has empty cpuset.cpus and cpuset.mems, and adding a
process to it fails with ENOSPC; so each level (the shared `pyctr` parent, then
the container's directory) copies its parent's values. v2 needs nothing: an
empty cpuset.cpus there means "inherit".
"""

from __future__ import annotations

from pathlib import Path

from pyctr.runtime.cgroups.files import PlanValue, read_text, write_plan
from pyctr.runtime.cgroups.limits import Limits

FILES = ("cpuset.cpus", "cpuset.mems")


def plan_inherit(parent_values: dict[str, str], own_values: dict[str, str]) -> dict[str, PlanValue]:
    """Copy each value that is empty here from the parent (never overwrite a set one)."""
    return {name: parent_values[name] for name in FILES
            if not own_values.get(name, "").strip() and parent_values.get(name, "").strip()}


def _values(directory: Path) -> dict[str, str]:
    return {name: (read_text(directory / name) or "").strip() for name in FILES}


def inherit_v1(directory: Path) -> None:
    write_plan(directory, plan_inherit(_values(directory.parent), _values(directory)))


def plan_cpus(limits: Limits) -> dict[str, PlanValue]:
    """--cpuset-cpus: the same file in v1 (after the inherited values) and v2."""
    return {"cpuset.cpus": limits.cpuset_cpus} if limits.cpuset_cpus else {}


def apply_v1(directory: Path, limits: Limits) -> None:
    write_plan(directory, plan_cpus(limits))


def apply_v2(directory: Path, limits: Limits) -> None:
    write_plan(directory, plan_cpus(limits))
