"""linux.resources and cgroupsPath -> the cgroup directories and file writes runc's fs drivers make. Pure.

v1 (runc's libcontainer/cgroups/fs) and v2 (fs2, with runc's conversions: cpu.weight from shares, io.weight
from blkio weight, memory.swap.max = swap - limit) are separate plans, so both are unit-tested on any machine.
A plan is an ordered list of (controller, file, value); the order matters (cpu.cfs_period_us before the quota,
devices.deny before devices.allow, memory.limit_in_bytes before memory.memsw.limit_in_bytes).
"""

from __future__ import annotations

import os

from pyctr.oci.errors import ConfigError

Write = tuple[str, str, str]  # (controller, file, value); controller "" on v2

# runc's specconv.AllowedDevices: what every container may use besides linux.resources.devices.
ALLOWED_DEVICES = (
    ("c", "*", "*", "m"), ("b", "*", "*", "m"), ("c", "1", "3", "rwm"), ("c", "1", "8", "rwm"),
    ("c", "1", "7", "rwm"), ("c", "5", "0", "rwm"), ("c", "1", "5", "rwm"), ("c", "1", "9", "rwm"),
    ("c", "136", "*", "rwm"), ("c", "5", "2", "rwm"), ("c", "10", "200", "rwm"),
)


def cgroup_relative_path(cgroups_path: str, container_id: str, caller_cgroup: str = "/") -> str:
    """runc's rule: an absolute cgroupsPath is below the hierarchy's root, a relative one below the caller's
    cgroup, none is /<id>. "slice:prefix:name" is systemd's form, refused (no --systemd-cgroup here)."""
    if ":" in cgroups_path and not cgroups_path.startswith("/"):
        raise ConfigError(f"cgroupsPath {cgroups_path!r} is systemd's slice:prefix:name form: pyctr-runtime "
                          "manages cgroupfs only (configure the caller with cgroupfs)")
    if not cgroups_path:
        path = "/" + container_id
    elif cgroups_path.startswith("/"):
        path = cgroups_path
    else:
        path = os.path.join(caller_cgroup or "/", cgroups_path)
    path = os.path.normpath("/" + path.lstrip("/"))
    if path == "/" or ".." in path.split("/"):
        raise ConfigError(f"cgroupsPath {cgroups_path!r} is not a cgroup of its own")
    return path


def _num(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"linux.resources.{where} must be an integer")
    return value


def _device_rules(items: list, extra: tuple = ALLOWED_DEVICES) -> list[Write]:
    writes: list[Write] = []
    for item in items or []:
        kind = item.get("type") or "a"
        major = "*" if item.get("major") is None or item.get("major") == -1 else str(item["major"])
        minor = "*" if item.get("minor") is None or item.get("minor") == -1 else str(item["minor"])
        access = item.get("access") or "rwm"
        rule = "a" if kind == "a" and major == minor == "*" else f"{kind} {major}:{minor} {access}"
        writes.append(("devices", "devices.allow" if item.get("allow") else "devices.deny", rule))
    for kind, major, minor, access in extra:
        writes.append(("devices", "devices.allow", f"{kind} {major}:{minor} {access}"))
    return writes


def _throttle(block: dict, key: str) -> list[tuple[str, int]]:
    return [(f"{d['major']}:{d['minor']}", _num(d.get("rate"), f"blockIO.{key}.rate")) for d in block.get(key) or []]


_BLKIO_V1 = (("throttleReadBpsDevice", "blkio.throttle.read_bps_device"),
             ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device"),
             ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device"),
             ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device"))


def plan_v1(resources: dict, devices: list | None = None) -> list[Write]:
    """cgroup v1 writes, controller by controller. `devices`: the config's linux.devices (allowed too)."""
    writes: list[Write] = []
    mem = resources.get("memory") or {}
    if mem.get("limit") is not None:
        writes.append(("memory", "memory.limit_in_bytes", str(_num(mem["limit"], "memory.limit"))))
    if mem.get("reservation") is not None:
        writes.append(("memory", "memory.soft_limit_in_bytes", str(_num(mem["reservation"], "memory.reservation"))))
    if mem.get("swap") is not None:
        writes.append(("memory", "memory.memsw.limit_in_bytes", str(_num(mem["swap"], "memory.swap"))))
    if mem.get("swappiness") is not None:
        swappiness = _num(mem["swappiness"], "memory.swappiness")
        if not 0 <= swappiness <= 100:
            raise ConfigError(f"invalid value:{swappiness}. valid memory swappiness range is 0-100")
        writes.append(("memory", "memory.swappiness", str(swappiness)))
    if mem.get("disableOOMKiller"):
        writes.append(("memory", "memory.oom_control", "1"))
    cpu = resources.get("cpu") or {}
    for key, name in (("shares", "cpu.shares"), ("period", "cpu.cfs_period_us"), ("quota", "cpu.cfs_quota_us"),
                      ("realtimePeriod", "cpu.rt_period_us"), ("realtimeRuntime", "cpu.rt_runtime_us")):
        if cpu.get(key) is not None:
            writes.append(("cpu", name, str(_num(cpu[key], f"cpu.{key}"))))
    for key in ("cpus", "mems"):
        if cpu.get(key):
            writes.append(("cpuset", f"cpuset.{key}", str(cpu[key])))
    pids = resources.get("pids") or {}
    if pids.get("limit") is not None:
        limit = _num(pids["limit"], "pids.limit")
        writes.append(("pids", "pids.max", "max" if limit <= 0 else str(limit)))
    block = resources.get("blockIO") or {}
    if block.get("weight") is not None:
        writes.append(("blkio", "blkio.weight", str(_num(block["weight"], "blockIO.weight"))))
    if block.get("leafWeight") is not None:
        writes.append(("blkio", "blkio.leaf_weight", str(_num(block["leafWeight"], "blockIO.leafWeight"))))
    for device in block.get("weightDevice") or []:
        if device.get("weight") is not None:
            writes.append(("blkio", "blkio.weight_device", f"{device['major']}:{device['minor']} {device['weight']}"))
    for key, name in _BLKIO_V1:
        writes += [("blkio", name, f"{dev} {rate}") for dev, rate in _throttle(block, key)]
    for page in resources.get("hugepageLimits") or []:
        writes.append(("hugetlb", f"hugetlb.{page['pageSize']}.limit_in_bytes", str(_num(page.get("limit"),
                                                                                          "hugepageLimits.limit"))))
    net = resources.get("network") or {}
    if net.get("classID") is not None:
        writes.append(("net_cls", "net_cls.classid", str(_num(net["classID"], "network.classID"))))
    for prio in net.get("priorities") or []:
        writes.append(("net_prio", "net_prio.ifpriomap", f"{prio['name']} {prio['priority']}"))
    if resources.get("unified"):
        raise ConfigError("linux.resources.unified requires cgroup v2 (this machine runs cgroup v1)")
    extra = ALLOWED_DEVICES + tuple((d.kind, str(d.major), str(d.minor), "rwm") for d in devices or [])
    if resources.get("devices") is not None or devices:
        writes += _device_rules(resources.get("devices") or [], extra)
    return writes


def shares_to_weight(shares: int) -> int:
    """runc's ConvertCPUSharesToCgroupV2Value: [2, 262144] -> [1, 10000]."""
    return 0 if shares == 0 else 1 + ((shares - 2) * 9999) // 262142


def blkio_weight_to_io_weight(weight: int) -> int:
    """runc's ConvertBlkIOToIOWeightValue: [10, 1000] -> [1, 10000]."""
    return 0 if weight == 0 else 1 + (weight - 10) * 9999 // 990


def memory_swap_v2(swap: int, limit: int | None) -> str:
    """runc's ConvertMemorySwapToCgroupV2Value: v1's memory+swap total becomes v2's swap alone."""
    if swap == -1:
        return "max"
    if limit is None or limit == -1:
        raise ConfigError("unable to set swap limit without memory limit")
    if swap < limit:
        raise ConfigError(f"memory+swap limit ({swap}) should be greater than memory limit ({limit})")
    return str(swap - limit)


def _max(value: int) -> str:
    return "max" if value == -1 else str(value)


def plan_v2(resources: dict) -> list[Write]:
    """cgroup v2 writes (fs2's file layout); `unified` keys are written last, as given."""
    writes: list[Write] = []
    mem = resources.get("memory") or {}
    limit = mem.get("limit")
    if limit is not None:
        writes.append(("", "memory.max", _max(_num(limit, "memory.limit"))))
    if mem.get("reservation") is not None:
        writes.append(("", "memory.low", _max(_num(mem["reservation"], "memory.reservation"))))
    if mem.get("swap") is not None:
        writes.append(("", "memory.swap.max", memory_swap_v2(_num(mem["swap"], "memory.swap"), limit)))
    cpu = resources.get("cpu") or {}
    if cpu.get("shares"):
        writes.append(("", "cpu.weight", str(shares_to_weight(_num(cpu["shares"], "cpu.shares")))))
    if cpu.get("quota") is not None or cpu.get("period") is not None:
        quota = cpu.get("quota")
        period = cpu.get("period") or 100000
        writes.append(("", "cpu.max", f"{'max' if quota is None or quota <= 0 else quota} {period}"))
    for key in ("cpus", "mems"):
        if cpu.get(key):
            writes.append(("", f"cpuset.{key}", str(cpu[key])))
    pids = resources.get("pids") or {}
    if pids.get("limit") is not None:
        limit_pids = _num(pids["limit"], "pids.limit")
        writes.append(("", "pids.max", "max" if limit_pids <= 0 else str(limit_pids)))
    block = resources.get("blockIO") or {}
    if block.get("weight"):
        writes.append(("", "io.weight", f"default {blkio_weight_to_io_weight(_num(block['weight'], 'weight'))}"))
    for key, io_key in (("throttleReadBpsDevice", "rbps"), ("throttleWriteBpsDevice", "wbps"),
                        ("throttleReadIOPSDevice", "riops"), ("throttleWriteIOPSDevice", "wiops")):
        writes += [("", "io.max", f"{dev} {io_key}={rate}") for dev, rate in _throttle(block, key)]
    for page in resources.get("hugepageLimits") or []:
        writes.append(("", f"hugetlb.{page['pageSize']}.max", str(_num(page.get("limit"), "hugepageLimits.limit"))))
    for key, value in (resources.get("unified") or {}).items():
        if "/" in key or key.startswith("."):
            raise ConfigError(f"linux.resources.unified: {key!r} is not a cgroup file name")
        writes.append(("", key, str(value)))
    return writes


def controllers_v1(writes: list[Write]) -> list[str]:
    """The v1 controllers a plan writes to, in first-use order."""
    return list(dict.fromkeys(controller for controller, _, _ in writes))
