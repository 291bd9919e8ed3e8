"""What a container may use: the resource limits, in Docker's units and semantics.

`Limits` is what `pyctr run --memory/--memory-swap/--cpus/--cpu-shares/--pids-limit`
and `--privileged` produce; the per-controller modules turn it into file writes.
Docker's defaults and checks live here (once) so that v1 and v2 agree on them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from pyctr.errors import UsageError
from pyctr.units import ram_in_bytes

CFS_PERIOD_US = 100_000  # Docker's --cpus uses a fixed 100 ms period
MIN_MEMORY = 6 * 1024 * 1024  # Docker: "Minimum memory limit allowed is 6MB"
UNLIMITED = -1


@dataclass(frozen=True)
class DeviceRule:
    """One device-cgroup rule: `type` a (all), c or b; major/minor None means `*`."""

    allow: bool
    type: str = "a"
    major: int | None = None
    minor: int | None = None
    access: str = "rwm"

    def v1_line(self) -> str:
        """The line the v1 devices.allow / devices.deny files take, e.g. `c 1:3 rwm`."""
        if self.type == "a":
            return "a"
        major = "*" if self.major is None else str(self.major)
        minor = "*" if self.minor is None else str(self.minor)
        return f"{self.type} {major}:{minor} {self.access}"


def _char(major: int | None, minor: int | None, access: str = "rwm") -> DeviceRule:
    return DeviceRule(True, "c", major, minor, access)


# Docker's default device cgroup (moby oci defaults): deny everything, then allow
# the standard character devices, the pty slaves, and mknod (only) of anything.
DEFAULT_DEVICE_RULES: tuple[DeviceRule, ...] = (
    DeviceRule(False, "a"),
    _char(None, None, "m"),
    DeviceRule(True, "b", None, None, "m"),
    _char(1, 3),  # /dev/null
    _char(1, 5),  # /dev/zero
    _char(1, 7),  # /dev/full
    _char(1, 8),  # /dev/random
    _char(1, 9),  # /dev/urandom
    _char(5, 0),  # /dev/tty
    _char(5, 1),  # /dev/console
    _char(5, 2),  # /dev/ptmx
    _char(136, None),  # /dev/pts/*
)
PRIVILEGED_DEVICE_RULES: tuple[DeviceRule, ...] = (DeviceRule(True, "a"),)


@dataclass(frozen=True)
class Limits:
    """Resource limits of one container; None means "not set" (the kernel default).

    memory_swap follows Docker: memory + swap in bytes, -1 for unlimited swap,
    and when only memory is set the swap limit defaults to twice the memory.
    """

    memory: int | None = None
    memory_swap: int | None = None
    cpus: float | None = None
    cpu_shares: int | None = None
    pids_limit: int | None = None
    devices: tuple[DeviceRule, ...] = field(default=DEFAULT_DEVICE_RULES)
    privileged: bool = False
    # kernel flags (p15-ns): 0 / False / "" = not set
    memory_reservation: int = 0  # soft limit (v1 memory.soft_limit_in_bytes, v2 memory.low)
    oom_kill_disable: bool = False  # v1 memory.oom_control only
    cpuset_cpus: str = ""
    blkio_weight: int = 0

    @property
    def effective_memory_swap(self) -> int | None:
        """memory+swap limit in bytes, -1 for unlimited, None when memory is not limited."""
        if not self.memory or self.memory <= 0:
            return None
        if self.memory_swap is None or self.memory_swap == 0:
            return self.memory * 2
        if self.memory_swap < 0:
            return UNLIMITED
        return self.memory_swap

    @property
    def cfs_quota_us(self) -> int | None:
        """--cpus as a CFS quota over a 100 ms period (Docker: NanoCPUs * period / 1e9)."""
        if not self.cpus:
            return None
        return max(1000, round(self.cpus * CFS_PERIOD_US))

    @property
    def pids_max(self) -> int | None:
        """pids.max value; Docker treats 0 and negative --pids-limit as unlimited (None)."""
        if self.pids_limit is None or self.pids_limit <= 0:
            return None
        return self.pids_limit

    @property
    def device_rules(self) -> tuple[DeviceRule, ...]:
        return PRIVILEGED_DEVICE_RULES if self.privileged else self.devices

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the container's stored spec (config.json)."""
        data = asdict(self)
        data["devices"] = [asdict(rule) for rule in self.devices]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Limits:
        """Inverse of to_dict; unknown keys are ignored so older stored specs still load."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if "devices" in known:
            known["devices"] = tuple(DeviceRule(**rule) for rule in known["devices"])
        return cls(**known)




def parse_bytes(value: str) -> int:
    """Docker's RAMInBytes: "32m", "1.5g", "512k", "100" (bytes); units are powers of 1024.

    `--memory-swap -1` (unlimited) is handled by the caller before this.
    """
    try:
        return ram_in_bytes(value)
    except ValueError as e:
        raise UsageError(str(e)) from None


def validate_limits(limits: Limits, ncpus: int | None = None) -> None:
    """Refuse what Docker refuses, with Docker's wording, before anything is created."""
    if limits.memory is not None and 0 < limits.memory < MIN_MEMORY:
        raise UsageError("Minimum memory limit allowed is 6MB")
    if limits.memory_swap not in (None, 0, UNLIMITED):
        if not limits.memory:
            raise UsageError("You should always set the Memory limit when using Memoryswap limit")
        if limits.memory_swap < limits.memory:
            raise UsageError("Minimum memoryswap limit should be larger than memory limit, see usage")
    if limits.memory_swap is not None and limits.memory_swap < UNLIMITED:
        raise UsageError(f"invalid --memory-swap value {limits.memory_swap}")
    if limits.cpus is not None:
        _validate_cpus(limits.cpus, ncpus)
    if limits.cpu_shares is not None and limits.cpu_shares < 0:
        raise UsageError(f"invalid --cpu-shares value {limits.cpu_shares}: must be positive")


def _validate_cpus(cpus: float, ncpus: int | None) -> None:
    if ncpus is None:
        import os

        ncpus = os.cpu_count() or 1
    if cpus < 0 or (cpus > 0 and (cpus < 0.01 or cpus > ncpus)):
        raise UsageError(f"Range of CPUs is from 0.01 to {ncpus}.00, as there are only {ncpus} CPUs available")
