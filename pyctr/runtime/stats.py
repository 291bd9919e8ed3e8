"""`stats` sampling: two cgroup readings of each container an interval apart, plus its network counters from
/proc, turned into the numbers Docker's stats show (CPU needs a delta, as Docker's first stats line does).

Reading is `sample_stats`; the arithmetic on two readings (`usage_sample`) and the /proc/<pid>/net/dev parsing
(`parse_net_dev`) are pure so unit tests pin them without containers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pyctr.runtime.ps import StatsSample


def host_memory() -> int:
    """The host's physical memory: the limit Docker shows for a container without one."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def sample_stats(records, interval: float = 0.5) -> list[StatsSample]:
    """Two cgroup readings `interval` apart for each record (a stopped container gives an empty sample)."""
    from pyctr.runtime.cgroups import open_cgroup

    first = {r.id: open_cgroup(r.id).stats() if r.state.running else {} for r in records}
    started = time.monotonic()
    if any(r.state.running for r in records):
        time.sleep(interval)
    elapsed = time.monotonic() - started
    samples = []
    for r in records:
        if not r.state.running:
            samples.append(StatsSample(r.id, r.name))
            continue
        samples.append(usage_sample(r.id, r.name, first[r.id], open_cgroup(r.id).stats(), elapsed,
                                    net_io(r.state.pid), host_memory))
    return samples


def usage_sample(container_id: str, name: str, before: dict, now: dict, elapsed: float, net: tuple[int, int],
                 host_memory_of: Callable[[], int] = host_memory) -> StatsSample:
    """One container's numbers from two cgroup readings (`Cgroup.stats()` dicts) `elapsed` seconds apart.

    Memory is usage minus inactive file cache, as docker-cli's calculateMemUsageUnixNoCache; without a limit
    the host's memory is the limit (`host_memory_of()` is asked only then)."""
    mem = now.get("memory", {})
    usage = max(0, (mem.get("usage") or 0) - (mem.get("inactive_file") or 0))
    cpu_then = (before.get("cpu") or {}).get("usage_ns") or 0
    rx, tx = net
    return StatsSample(
        container_id, name, cpu_ns_delta=max(0, ((now.get("cpu") or {}).get("usage_ns") or 0) - cpu_then),
        interval=elapsed, mem_usage=usage,
        mem_limit=mem.get("limit") or host_memory_of(),
        net_rx=rx, net_tx=tx, block_read=(now.get("blkio") or {}).get("read_bytes") or 0,
        block_write=(now.get("blkio") or {}).get("write_bytes") or 0,
        pids=(now.get("pids") or {}).get("current") or 0)


def net_io(pid: int) -> tuple[int, int]:
    """Bytes received/sent by the container's interfaces except lo (/proc/<pid>/net/dev); (0, 0) once it is gone."""
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            return parse_net_dev(f.read())
    except OSError:
        return 0, 0


def parse_net_dev(text: str) -> tuple[int, int]:
    """(rx bytes, tx bytes) summed over the interfaces of a /proc/net/dev text, lo left out."""
    rx = tx = 0
    for line in text.splitlines()[2:]:
        name, _, data = line.partition(":")
        fields = data.split()
        if name.strip() != "lo" and len(fields) >= 9:
            rx += int(fields[0])
            tx += int(fields[8])
    return rx, tx


# -- one reading at a time: what the Engine API's stats stream is made of ----------------------------------

NET_FIELDS = ("rx_bytes", "rx_packets", "rx_errors", "rx_dropped", "tx_bytes", "tx_packets", "tx_errors",
              "tx_dropped")
_NET_COLUMNS = (0, 1, 2, 3, 8, 9, 10, 11)  # /proc/net/dev's columns for NET_FIELDS


@dataclass(frozen=True)
class UsageReading:
    """One look at a running container, as dockerd's stats collector takes one a second: its cgroup's
    numbers (`Cgroup.stats()`), the host's CPU time so far (the CLI divides the container's CPU delta by
    it), the online CPUs and each interface's counters. `at_ns`: when, in epoch nanoseconds."""

    at_ns: int
    cgroup: dict
    system_cpu_ns: int
    online_cpus: int
    networks: dict[str, dict[str, int]] = field(default_factory=dict)


def read_usage(record) -> UsageReading | None:
    """A reading of `record`'s container, or None when it does not run."""
    from pyctr.runtime.cgroups import open_cgroup

    if not record.state.running:
        return None
    try:
        with open(f"/proc/{record.state.pid}/net/dev") as f:
            networks = parse_net_dev_interfaces(f.read())
    except OSError:
        networks = {}
    return UsageReading(time.time_ns(), open_cgroup(record.id).stats(), system_cpu_ns(),
                        os.sysconf("SC_NPROCESSORS_ONLN"), networks)


def system_cpu_ns() -> int:
    """The host's CPU time so far in nanoseconds, as dockerd's getSystemCPUUsage: the `cpu` line of /proc/stat
    (user nice system idle iowait irq softirq, in clock ticks) summed and scaled."""
    try:
        with open("/proc/stat") as f:
            return parse_system_cpu_ns(f.readline(), os.sysconf("SC_CLK_TCK"))
    except OSError:
        return 0


def parse_system_cpu_ns(cpu_line: str, ticks_per_second: int) -> int:
    fields = cpu_line.split()
    if not fields or fields[0] != "cpu":
        return 0
    return sum(int(v) for v in fields[1:8]) * 1_000_000_000 // ticks_per_second


def parse_net_dev_interfaces(text: str) -> dict[str, dict[str, int]]:
    """Each interface's counters (Docker's `networks` keys) from a /proc/net/dev text, lo left out."""
    interfaces = {}
    for line in text.splitlines()[2:]:
        name, _, data = line.partition(":")
        fields = data.split()
        if name.strip() != "lo" and len(fields) >= 12:
            interfaces[name.strip()] = {key: int(fields[i]) for key, i in zip(NET_FIELDS, _NET_COLUMNS, strict=True)}
    return interfaces
