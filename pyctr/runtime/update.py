"""`rename` and `update`: the few things Docker lets change in a created container.

`update` decides the new limits purely (`updated_limits`: only the flags given change, Docker's checks and
words), writes them into the live cgroup of a running container (memory, cpu, pids: as at creation) and into
its stored config, so inspect shows them and the next start applies them; `--restart` changes the policy.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from pyctr.errors import PyctrError, UsageError

if TYPE_CHECKING:
    from pyctr.config import Config
    from pyctr.runtime.spec import LimitsSpec
    from pyctr.runtime.state import ContainerRecord


def rename(config: Config, ref: str, new_name: str) -> None:
    """Docker's rename, with dockerd's words."""
    from pyctr.runtime.state import ContainerStore

    if not ref or not new_name:
        raise UsageError("Neither old nor new names may be empty")
    store = ContainerStore(config.paths)
    record = store.get(ref)
    if new_name.lstrip("/") == record.name:
        raise PyctrError("Renaming a container with the same name as its current name")
    try:
        store.rename(record.id, new_name)
    except UsageError as e:  # dockerd validates the name: its words after "Error response from daemon"
        raise PyctrError(e.message) from None
    from pyctr import events

    events.record_container(config.root, store.get(record.id), "rename", oldName="/" + record.name)


@dataclass(frozen=True)
class UpdateOptions:
    memory: str | None = None
    memory_swap: str | None = None
    cpus: str | None = None
    cpu_shares: int | None = None
    pids_limit: int | None = None
    restart: str | None = None

    @property
    def empty(self) -> bool:
        return all(value is None for value in (self.memory, self.memory_swap, self.cpus, self.cpu_shares,
                                               self.pids_limit, self.restart))


def updated_limits(current: LimitsSpec, options: UpdateOptions) -> LimitsSpec:
    """The container's limits with the given flags applied (pure); Docker's checks of the combination."""
    from pyctr.runtime.spec import RunOptions, parse_limits

    memory = options.memory
    if options.memory_swap and not memory and current.memory:
        memory = str(current.memory)  # swap is checked against the memory in force
    parsed = parse_limits(RunOptions(image="", memory=memory, memory_swap=options.memory_swap, cpus=options.cpus,
                                     cpu_shares=options.cpu_shares, pids_limit=options.pids_limit))
    new = current
    if options.memory is not None:
        if (options.memory_swap is None and current.memory_swap and current.memory_swap > 0 and parsed.memory
                and parsed.memory > current.memory_swap):
            raise PyctrError("Cannot update container: Memory limit should be smaller than already set memoryswap "
                             "limit, update the memoryswap at the same time")
        new = replace(new, memory=parsed.memory or None)
    if options.memory_swap is not None:
        new = replace(new, memory_swap=parsed.memory_swap)
    if options.cpus is not None:
        new = replace(new, cpu_quota=parsed.cpu_quota, cpu_period=parsed.cpu_period)
    if options.cpu_shares is not None:
        new = replace(new, cpu_shares=options.cpu_shares or None)
    if options.pids_limit is not None:
        new = replace(new, pids_limit=parsed.pids_limit)
    return new


def host_config_limits(limits: LimitsSpec) -> dict:
    """The HostConfig keys inspect shows for these limits."""
    return {"Memory": limits.memory or 0, "MemorySwap": limits.memory_swap or 0,
            "NanoCpus": int(limits.cpu_quota * 1e9 / limits.cpu_period) if limits.cpu_quota else 0,
            "CpuShares": limits.cpu_shares or 0, "PidsLimit": limits.pids_limit}


def cgroup_limits(limits: LimitsSpec, privileged: bool):
    """The cgroups package's Limits for a container's LimitsSpec."""
    from pyctr.runtime.cgroups.limits import Limits

    cpus = limits.cpu_quota / limits.cpu_period if limits.cpu_quota and limits.cpu_period else None
    return Limits(memory=limits.memory, memory_swap=limits.memory_swap, cpus=cpus, cpu_shares=limits.cpu_shares,
                  pids_limit=limits.pids_limit, privileged=privileged)


def update(config: Config, ref: str, options: UpdateOptions) -> ContainerRecord:
    from dataclasses import asdict

    from pyctr.runtime.restart import parse_restart_policy
    from pyctr.runtime.spec import LimitsSpec
    from pyctr.runtime.state import ContainerStore

    store = ContainerStore(config.paths)
    record = store.get(ref)
    spec = record.config["Spec"]
    policy = parse_restart_policy(options.restart) if options.restart is not None else None
    if policy is not None and not policy.is_none and spec.get("auto_remove"):
        raise PyctrError("Cannot update container: Restart policy cannot be updated because AutoRemove is enabled "
                         "for the container")
    limits = updated_limits(LimitsSpec(**spec.get("limits") or {}), options)
    if record.state.running and record.state.pid:
        from pyctr.runtime.cgroups import open_cgroup

        try:
            open_cgroup(record.id).update_limits(cgroup_limits(limits, bool(spec.get("privileged"))))
        except (OSError, PyctrError) as e:
            message = e.message if isinstance(e, PyctrError) else str(e)
            raise PyctrError(f"Cannot update container {record.id}: {message}") from None

    def change(document: dict, spec_document: dict) -> tuple[dict, dict]:
        host_config = {**document.get("HostConfig", {}), **host_config_limits(limits)}
        if policy is not None:
            host_config["RestartPolicy"] = policy.to_dict()
        inner = {**spec_document.get("Spec", {}), "limits": asdict(limits)}
        return {**document, "HostConfig": host_config}, {**spec_document, "Spec": inner}

    store.rewrite_config(record.id, change)
    from pyctr import events

    events.record_container(config.root, record, "update")
    return record
