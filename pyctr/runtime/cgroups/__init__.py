"""cgroups v1 and v2: detection here, one file per controller beside it.

The mode is read from /proc/self/mountinfo text so that unit tests can feed in
the layouts of machines they do not run on (pure v2, v1, hybrid).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class CgroupMode:
    """How this machine mounts cgroups.

    `version` is 2 when the unified hierarchy is the only one (most current
    distributions), 1 for v1 and hybrid (v1 controllers plus an empty unified
    mount, as on this project's development VM).
    """

    version: int
    v1_mounts: dict[str, Path] = field(default_factory=dict)  # controller -> mount point
    unified: Path | None = None
    v2_controllers: tuple[str, ...] = ()

    @property
    def controllers(self) -> tuple[str, ...]:
        if self.version == 2:
            return self.v2_controllers
        return tuple(sorted(self.v1_mounts))


def parse_mountinfo(text: str) -> tuple[dict[str, Path], Path | None]:
    """Find v1 controller mounts (named hierarchies too) and the unified (v2) mount in mountinfo text."""
    from pyctr.runtime.mountinfo import cgroup_mounts

    v1, unified = cgroup_mounts(text, named=True)
    return {k: Path(v) for k, v in v1.items()}, None if unified is None else Path(unified)


def detect(mountinfo: str | None = None, read_controllers=None) -> CgroupMode:
    """Tell whether cgroups are v1/hybrid or pure v2, and which controllers exist."""
    if mountinfo is None:
        mountinfo = Path("/proc/self/mountinfo").read_text()
    v1, unified = parse_mountinfo(mountinfo)
    real_v1 = {k: v for k, v in v1.items() if not k.startswith("name=")}
    if real_v1:
        return CgroupMode(version=1, v1_mounts=real_v1, unified=unified)
    controllers: tuple[str, ...] = ()
    if unified is not None:
        reader = read_controllers or (lambda p: (p / "cgroup.controllers").read_text())
        try:
            controllers = tuple(reader(unified).split())
        except OSError:
            controllers = ()
    return CgroupMode(version=2, unified=unified, v2_controllers=controllers)


# The public API (imported last: these modules use CgroupMode and detect above).
from pyctr.runtime.cgroups.devices import V2_NOTE as DEVICES_V2_NOTE  # noqa: E402
from pyctr.runtime.cgroups.layout import plan_v1, plan_v2  # noqa: E402
from pyctr.runtime.cgroups.limits import (  # noqa: E402
    DEFAULT_DEVICE_RULES,
    PRIVILEGED_DEVICE_RULES,
    DeviceRule,
    Limits,
    parse_bytes,
    validate_limits,
)
from pyctr.runtime.cgroups.manager import (  # noqa: E402
    Cgroup,
    create_cgroup,
    current_mode,
    open_cgroup,
    own_procs_file,
    warm_attach,
)


def devices_enforced(mode: CgroupMode) -> bool:
    """Whether device access can be restricted here (v1 devices controller); v2 needs BPF."""
    return mode.version == 1 and "devices" in mode.v1_mounts


__all__ = [
    "DEFAULT_DEVICE_RULES",
    "DEVICES_V2_NOTE",
    "PRIVILEGED_DEVICE_RULES",
    "Cgroup",
    "CgroupMode",
    "DeviceRule",
    "Limits",
    "create_cgroup",
    "current_mode",
    "detect",
    "devices_enforced",
    "open_cgroup",
    "own_procs_file",
    "parse_bytes",
    "plan_v1",
    "plan_v2",
    "validate_limits",
    "warm_attach",
]
