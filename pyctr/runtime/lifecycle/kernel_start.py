"""At each start, in M (p15-ns): what the kernel flags need from the host before C is forked.

The namespaces of a `container:X` donor (looked up now: Docker joins the donor as it is at start), the host
devices of `--device` (stat'ed now, as dockerd does when it writes the OCI spec), the shareable /dev/shm
(a tmpfs on the host under the container's directory, as dockerd's `mounts/shm`, so another container can bind
it), and runc's sysctl check. The decisions are kernel_flags' pure functions; this only looks things up.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from pyctr.errors import NotFoundError, PyctrError
from pyctr.runtime import kernel_flags

if TYPE_CHECKING:
    from pyctr.config import Config
    from pyctr.runtime.spec import ContainerSpec

SHM_DIR = "shm"  # containers/<id>/shm: a shareable container's /dev/shm, mounted on the host while it runs


def shm_dir(bundle: Path) -> Path:
    return Path(bundle) / SHM_DIR


def prepare(config: Config, spec: ContainerSpec) -> ContainerSpec:
    """The spec C starts from: `join`, `device_nodes` and `shm_source` filled in. Raises Docker's errors."""
    kernel_flags.check_sysctls(spec.sysctls, spec.namespaces)
    join: dict[str, str] = {}
    shm_source = ""
    pid_donor = kernel_flags.container_of(spec.pid_mode)
    if pid_donor:
        pid = _running_pid(config, pid_donor, "cannot join PID of a non running container: ", False)
        join["pid"] = f"/proc/{pid}/ns/pid"
    ipc_donor = kernel_flags.container_of(spec.ipc_mode)
    if ipc_donor:
        pid, shm_source = _ipc_donor(config, ipc_donor)
        join["ipc"] = f"/proc/{pid}/ns/ipc"
    elif spec.ipc_mode == "host":
        shm_source = "/dev/shm"
    elif spec.ipc_mode == "shareable":
        shm_source = str(mount_shareable_shm(spec.bundle, spec.shm_size))
    mappings = [kernel_flags.DeviceMapping.from_docker(d) for d in spec.devices]
    nodes = [n.to_dict() for n in kernel_flags.resolve_devices(mappings)] if mappings else []
    return replace(spec, join=join, device_nodes=nodes, shm_source=shm_source)


def _running_pid(config: Config, ref: str, prefix: str, wrap_not_running: bool) -> int:
    """The donor's pid, or dockerd's words: `<prefix>X: No such container: X`, `Container <id> is not running`
    (wrapped in the prefix for IPC, as getIpcContainer wraps it; bare for PID, as getPidContainer returns it)."""
    from pyctr.runtime.state import ContainerStore

    try:
        record = ContainerStore(config.paths).get(ref)
    except NotFoundError as e:
        raise PyctrError(f"{prefix}{ref}: {e.message}") from None
    if record.state.status not in ("running", "paused") or not record.state.pid:
        wrapped = f"{prefix}{ref}: " if wrap_not_running else ""
        raise PyctrError(f"{wrapped}Container {record.id} is not running")
    return record.state.pid


def _ipc_donor(config: Config, ref: str) -> tuple[int, str]:
    """dockerd's getIpcContainer: the donor must run and have a shareable /dev/shm (shareable or host)."""
    from pyctr.runtime.state import ContainerStore

    pid = _running_pid(config, ref, "can't join IPC of container ", True)
    record = ContainerStore(config.paths).get(ref)
    donor_mode = (record.config.get("HostConfig") or {}).get("IpcMode", "private")
    if donor_mode == "host":
        return pid, "/dev/shm"
    shm = shm_dir(record.directory)
    if donor_mode != "shareable" or not os.path.ismount(shm):
        raise PyctrError(f"can't join IPC of container {ref}: non-shareable IPC (hint: use IpcMode:shareable "
                         "for the donor container)")
    return pid, str(shm)


def mount_shareable_shm(bundle: Path, size: int) -> Path:
    """dockerd's setupIpcDirs for `shareable`: a tmpfs on the host that C and its joiners bind on /dev/shm."""
    from pyctr.runtime import syscalls

    target = shm_dir(bundle)
    target.mkdir(mode=0o700, exist_ok=True)
    if not os.path.ismount(target):
        options = ",".join(o for o in kernel_flags.shm_mount_options(size) if "=" in o)
        flags = syscalls.MS_NOSUID | syscalls.MS_NODEV | syscalls.MS_NOEXEC
        syscalls.mount("shm", str(target), "tmpfs", flags, options)
    return target


def unmount_shm(bundle: Path) -> None:
    """Teardown: the shareable /dev/shm goes with the container's stop (its joiners keep their own binds)."""
    target = shm_dir(bundle)
    if os.path.ismount(target):
        from pyctr.runtime.syscalls import umount2

        with contextlib.suppress(OSError):
            umount2(str(target), 2)  # MNT_DETACH
