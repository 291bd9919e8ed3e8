"""Launching in the process that will be the container's parent (M): cgroup, network and state around
process.launch, undone if the start fails. Used by the detached and the foreground start."""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any

from pyctr.errors import ConflictError, PyctrError
from pyctr.runtime import state as st
from pyctr.runtime.lifecycle.concurrently import Concurrently
from pyctr.runtime.lifecycle.config_document import load_spec
from pyctr.runtime.lifecycle.teardown import (
    anonymous_volumes,
    record_network_events,
    record_volume_events,
    remove_anonymous_volumes,
    teardown,
)
from pyctr.runtime.state import ContainerRecord, ContainerStore

if TYPE_CHECKING:
    from pyctr.config import Config
    from pyctr.runtime.spec import ContainerSpec


def _cgroup_limits(spec: ContainerSpec):
    from pyctr.runtime.cgroups.limits import DEFAULT_DEVICE_RULES, DeviceRule, Limits

    lim = spec.limits
    cpus = lim.cpu_quota / lim.cpu_period if lim.cpu_quota and lim.cpu_period else None
    devices = DEFAULT_DEVICE_RULES + tuple(  # --device (p15-ns): each node's rule after Docker's defaults
        DeviceRule(True, n["type"], n["major"], n["minor"], n["permissions"]) for n in spec.device_nodes)
    return Limits(memory=lim.memory, memory_swap=lim.memory_swap, cpus=cpus, cpu_shares=lim.cpu_shares,
                  pids_limit=lim.pids_limit, devices=devices, privileged=spec.privileged,
                  memory_reservation=lim.memory_reservation, oom_kill_disable=bool(lim.oom_kill_disable),
                  cpuset_cpus=lim.cpuset_cpus, blkio_weight=lim.blkio_weight)


class Launch:
    """Everything M does around `process.launch`: cgroup, network, state; undone if the start fails."""

    def __init__(self, config: Config, record: ContainerRecord) -> None:
        self.config = config
        self.record = record
        self.spec = load_spec(record)
        self.store = ContainerStore(config.paths)
        self.cgroup = None
        self.network: dict = {}
        self._connecting: Concurrently | None = None
        self.link_lines: list[str] = []  # h-misc: legacy --link entries of /etc/hosts

    def join_cgroup(self, pid: int) -> None:
        """In M, while C waits: join the cgroup and, at the same time, start plugging C into the bridge.

        Both are mostly system calls that wait (cgroup v1 moves a process hierarchy by hierarchy, netlink and
        nft answer in their own time); the network goes on while C builds its rootfs (before_exec joins it)."""
        if self.spec.network.mode not in ("host", "none"):
            self._connecting = Concurrently(self._connect, pid)
        try:
            self.cgroup.add_process(pid)
        except BaseException:
            if self._connecting is not None:
                with contextlib.suppress(Exception):
                    self._connecting.join()
            raise

    def before_exec(self, pid: int) -> None:
        """In M, while C builds its rootfs: wait for the network to be ready."""
        if self._connecting is not None:
            connecting, self._connecting = self._connecting, None
            connecting.join()

    def _connect(self, pid: int) -> None:
        """Plug C into the bridge and write its /etc/hosts with its address."""
        from pyctr.runtime.network import PortMapping, setup_network
        from pyctr.runtime.network.hostfiles import hosts_file

        if self.spec.network.mode != "bridge":  # a user-defined network
            from pyctr.runtime.network.usermanager import start_on_user_networks

            self.network = start_on_user_networks(self.config, self.spec, self.record.config, pid)
            return
        ports = [PortMapping.from_dict(p) for p in self.record.config.get("PortMappings", [])]
        info = setup_network(self.config, self.spec.id, pid, ports, mac=self.spec.network.mac_address)
        from pyctr.runtime.network.usermanager import connect_attached, endpoint_settings

        extra = connect_attached(self.config, self.spec.id, self.spec.name, pid)  # `network connect` while stopped
        # In place: C may have bind-mounted this very file already (a rename would leave it the old one).
        with open(self.spec.bundle / "hosts", "w") as f:
            f.write(hosts_file(self.spec.hostname, info.ip, self.spec.network.extra_hosts, self.link_lines))
        self.network = {
            "IPAddress": info.ip, "IPPrefixLen": info.prefixlen, "Gateway": info.gateway, "MacAddress": info.mac,
            "Bridge": info.bridge, **({"Networks": endpoint_settings(self.spec.id, extra)} if extra else {}),
            "Ports": [{"HostIp": p.host_ip or "0.0.0.0", "HostPort": p.host_port, "ContainerPort": p.container_port,
                       "Protocol": p.proto} for p in info.ports],
        }

    def launch(self, stdio: Any) -> tuple[int, int]:
        """Start C; on failure record the error as Docker does (State.Error, exit code) and undo everything."""
        from pyctr.runtime.cgroups import create_cgroup, warm_attach
        from pyctr.runtime.process import LaunchHooks, launch

        warm_attach()  # C's cgroup join then skips the kernel's grace-period wait (runtime/cgroups/manager.py)
        with self._start_lock():
            try:
                from pyctr.runtime.lifecycle.kernel_start import prepare

                self.spec = prepare(self.config, self.spec)  # --pid/--ipc container:X, --device, shareable shm
                self._resolve_links()
                self.cgroup = create_cgroup(self.spec.id, _cgroup_limits(self.spec))
                hooks = LaunchHooks(join_cgroup=self.join_cgroup, before_exec=self.before_exec)
                launched = launch(self.spec, hooks, stdio)
            except BaseException as e:
                self._failed(e)
                raise
            pid, start_time = launched.pid, launched.start_time
            me = os.getpid()
            from pyctr.runtime import health

            check = health.configured(self.record.config)
            self.store.update_state(self.spec.id, lambda s: _with_network(
                st.started(s, pid, start_time, me, st.proc_start_time(me) or 0, st.boot_id(),
                           healthcheck=check is not None), self.network))
        from pyctr import events

        record_network_events(self.config, self.record, self.spec.network.mode, self.network, "connect")
        record_volume_events(self.config, self.record, self.spec.mount_points, "mount")
        events.record_container(self.config.root, self.record, "start")
        from pyctr.runtime.lifecycle.run_flags import after_launch

        with contextlib.suppress(OSError):
            after_launch(self.record.config.get("Spec") or {}, self.record.config.get("HostConfig") or {}, pid)
        if check is not None:
            with contextlib.suppress(OSError):
                health.start_checker(self.config, self.spec.id, pid, start_time)
        return pid, start_time

    def _resolve_links(self) -> None:
        """Legacy --link: the targets' variables into C's environment, their /etc/hosts lines for _connect."""
        from pyctr.runtime.lifecycle.links import resolve_legacy_links, with_link_env

        targets = resolve_legacy_links(self.store, self.spec)
        self.spec = with_link_env(self.spec, targets)
        self.link_lines = [t.hosts_line for t in targets]

    @contextlib.contextmanager
    def _start_lock(self):
        """One start at a time per container: two `start`s racing must not launch it twice."""
        import fcntl

        fd = os.open(self.spec.bundle / "start.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ConflictError(f"container {self.spec.id[:12]} is already being started") from None
            if self.store.get(self.spec.id).state.status in ("running", "paused"):  # restarting: the policy's start
                raise ConflictError(f"container {self.spec.id[:12]} is already running")
            yield
        finally:
            os.close(fd)

    def _failed(self, e: BaseException) -> None:
        code = e.exit_code if isinstance(e, PyctrError) else 125
        message = e.message if isinstance(e, PyctrError) else f"{type(e).__name__}: {e}"
        self._record_failure(code, message)

    def _record_failure(self, code: int, message: str) -> None:
        with contextlib.suppress(PyctrError, OSError):
            self.store.update_state(self.spec.id, lambda s: st.start_failed(s, code, message))
        with contextlib.suppress(PyctrError, OSError):
            teardown(self.config, self.record, self.spec)
        if self.spec.auto_remove:  # Docker removes a --rm container whose start failed too, and its anonymous volumes
            with contextlib.suppress(PyctrError, OSError):
                self.store.remove_directory(self.spec.id)
                remove_anonymous_volumes(self.config, anonymous_volumes(self.record))
            from pyctr import events

            events.record_container(self.config.root, self.record, "destroy")


def _with_network(state: st.ContainerState, network: dict) -> st.ContainerState:
    from dataclasses import replace

    return replace(state, network=dict(network))


def pipe_stdio(stdin: int, stdout: int, stderr: int) -> Any:
    from pyctr.runtime.process import Stdio

    return Stdio(stdin=stdin, stdout=stdout, stderr=stderr)


def terminal_stdio(slave: int, master: int) -> Any:
    from pyctr.runtime.process import Stdio

    return Stdio.terminal(slave, master)


def check_startable(record: ContainerRecord) -> None:
    if record.state.status in ("running", "paused"):  # "restarting" is started again by its restart policy
        raise ConflictError(f"container {record.short_id} is already running")


def reap_quietly(pid: int) -> None:
    from pyctr.runtime.process.reap import reap

    reap(pid)
