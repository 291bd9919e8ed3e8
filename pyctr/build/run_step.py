"""RUN: execute a command in a container of the image so far; its upper dir becomes the layer.

The container is the runtime package's (same namespaces, mounts, capabilities
and seccomp as `pyctr run`). Its overlay lower dirs are the image's layers
plus a small "init" layer on top holding the mount points the runtime needs
(/proc, /dev, /sys, /etc/hosts...), as Docker's `-init` layer does, so the
upper dir holds only what the command changed. File times in the upper dir
are clamped to SOURCE_DATE_EPOCH (or the epoch) so the same commands give the
same layer.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pyctr.build.instructions import RunStep
from pyctr.config import Config
from pyctr.errors import BuildError, CommandCannotRun, CommandNotFound, PyctrError
from pyctr.runtime.spec import Mount

INIT_DIRS = ("proc", "sys", "dev", "dev/pts", "dev/shm", "dev/mqueue", "etc")
INIT_FILES = ("etc/hosts", "etc/hostname", "etc/resolv.conf")


def clamp_times(root: Path, epoch: int) -> None:
    """Set every mtime/atime under `root` newer than `epoch` to `epoch` (links not followed)."""
    ns = epoch * 10**9
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames + dirnames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if st.st_mtime_ns > ns or st.st_atime_ns > ns:
                os.utime(path, ns=(ns, ns), follow_symlinks=False)
    os.utime(root, ns=(ns, ns))


def make_init_layer(path: Path, lower_has_etc: bool = True) -> Path:
    """The mount points the runtime needs, so creating them never lands in the captured upper dir."""
    path.mkdir(mode=0o755, exist_ok=True)
    for name in INIT_DIRS:
        (path / name).mkdir(mode=0o755, exist_ok=True)
    for name in INIT_FILES:
        (path / name).touch(mode=0o644, exist_ok=True)
    return path


def _parents_kind(base: Path, rel: str) -> str:
    """dir when every parent of `rel` under `base` is a real directory, absent when one is missing, else link.

    A layer is a host directory: a path string through a symlink in it resolves on the host, not in the image."""
    parts = rel.split("/")[:-1]
    for depth in range(1, len(parts) + 1):
        try:
            st = os.lstat(base.joinpath(*parts[:depth]))
        except (FileNotFoundError, NotADirectoryError):
            return "absent"
        if not stat.S_ISDIR(st.st_mode):
            return "link"
    return "dir"


def _lower_kind(lowerdirs: list[Path], rel: str) -> str:
    """What the image's layers (topmost first) hold at `rel`: dir, file, link, other or absent (whiteouts too)."""
    for layer in reversed(lowerdirs):
        parents = _parents_kind(Path(layer), rel)
        if parents != "dir":
            if parents == "link":
                return "link"
            continue
        try:
            st = os.lstat(Path(layer) / rel)
        except (FileNotFoundError, NotADirectoryError):
            continue
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            return "absent"
        if stat.S_ISDIR(st.st_mode):
            return "dir"
        return "link" if stat.S_ISLNK(st.st_mode) else "file" if stat.S_ISREG(st.st_mode) else "other"
    return "absent"


def _lower_stat(lowerdirs: list[Path], rel: str) -> os.stat_result | None:
    for layer in reversed(lowerdirs):
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            return os.lstat(Path(layer) / rel)
    return None


def stub_mount_points(init: Path, lowerdirs: list[Path], mounts: Sequence[Mount]) -> list[Mount]:
    """Create each RUN --mount target in the init layer, so the mount point never lands in the captured layer.

    Parent directories copy the image's own mode and owner (the init layer is on top: a /tmp made 0755 here
    would hide the image's 1777). A path through a symlink is left to the runtime (which resolves it inside the
    root); those mounts are returned so their stubs can be removed from the layer afterwards.
    """
    left: list[Mount] = []
    for mount in mounts:
        parts = Path(os.path.normpath(mount.destination)).relative_to("/").parts
        kinds = [_lower_kind(lowerdirs, "/".join(parts[: i + 1])) for i in range(len(parts))]
        if "link" in kinds or any(k in ("file", "other") for k in kinds[:-1]):
            left.append(mount)
            continue
        for i, kind in enumerate(kinds[:-1]):
            _init_dir(init, lowerdirs, "/".join(parts[: i + 1]), kind)
        if kinds[-1] == "absent":
            leaf = init.joinpath(*parts)
            if mount.type == "bind" and not os.path.isdir(mount.source):
                leaf.touch(mode=0o644, exist_ok=True)
            else:
                leaf.mkdir(mode=0o755, exist_ok=True)
    return left


def _init_dir(init: Path, lowerdirs: list[Path], rel: str, kind: str) -> None:
    path = init / rel
    if path.is_dir():
        return
    path.mkdir(mode=0o755)
    st = _lower_stat(lowerdirs, rel) if kind == "dir" else None
    if st is not None:
        os.chown(path, st.st_uid, st.st_gid)
        os.chmod(path, stat.S_IMODE(st.st_mode))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def remove_mount_stubs(upper: Path, lowerdirs: list[Path], mounts: Sequence[Mount]) -> None:
    """Remove mount points the runtime had to create in the layer (empty, and absent from the image)."""
    for mount in mounts:
        parts = Path(os.path.normpath(mount.destination)).relative_to("/").parts
        for depth in range(len(parts), 0, -1):
            rel = "/".join(parts[:depth])
            path = upper / rel
            # The step may have made a parent a symlink to a host path: never remove anything through it.
            if _parents_kind(upper, rel) != "dir" or _lower_kind(lowerdirs, rel) != "absent" \
                    or not os.path.lexists(path):
                break
            st = os.lstat(path)
            if stat.S_ISDIR(st.st_mode) and not os.listdir(path):
                os.rmdir(path)
            elif stat.S_ISREG(st.st_mode) and st.st_size == 0:
                os.unlink(path)
            else:
                break


def failure_message(argv: tuple[str, ...], code: int) -> str:
    """Docker's legacy-builder wording for a failed RUN."""
    return f"The command '{' '.join(argv)}' returned a non-zero code: {code}"


def _wait_or_kill(pid: int, wait: Callable[[int], int]) -> int:
    """Wait for the RUN container; if the build is interrupted, kill it first so nothing outlives the build."""
    import signal

    try:
        return wait(pid)
    except BaseException:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(OSError, PyctrError):
            wait(pid)
        raise


def _network_mode(network: str) -> str:
    return "bridge" if network in ("default", "bridge") else network


def run_in_container(config: Config, image_config: dict, lowerdirs: list[Path], step: RunStep, network: str,
                     bundle: Path, out: Callable[[str], None], epoch: int | None,
                     quiet: bool = False, mounts: Sequence[Mount] = ()) -> tuple[Path, str]:
    """Run the step; return (the upper dir holding its changes, the container id). BuildError (exit 1) on failure.

    `mounts` are RUN --mount's (prepared by the executor): mounted for the command only, their mount points
    stubbed in the init layer, so nothing of them is in the returned upper dir.
    """
    from pyctr.runtime.cgroups import Limits, create_cgroup
    from pyctr.runtime.process import LaunchHooks, Stdio, launch, wait_container
    from pyctr.runtime.spec import RunOptions, make_spec

    container_id = secrets.token_hex(32)
    out(f" ---> Running in {container_id[:12]}")
    init = make_init_layer(bundle / "init")
    run_config = dict(image_config.get("config") or {})
    run_config.update(Env=list(step.env), WorkingDir=step.workdir, User=step.user, Entrypoint=None, Cmd=None)
    mode = _network_mode(network)
    options = RunOptions(image="build", command=list(step.argv), entrypoint="", network=mode)
    left_in_layer = stub_mount_points(init, lowerdirs, mounts)
    spec = make_spec({"config": run_config}, options, container_id, f"build-{container_id[:12]}", bundle,
                     [*lowerdirs, init], host_env={})
    spec.mounts.extend(mounts)
    spec.dies_with_launcher = True  # Docker cancels a step whose build is gone; a killed build is gone
    devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    connected = False

    def before_exec(pid: int) -> None:
        nonlocal connected
        if mode == "bridge":
            from pyctr.runtime.network import hosts_file, setup_network

            info = setup_network(config, container_id, pid, [])
            connected = True
            (bundle / "hosts").write_text(hosts_file(spec.hostname, info.ip, []))

    sys.stdout.flush()
    sys.stderr.flush()
    # Docker's legacy builder streams both of a RUN's outputs into the build output (the CLI's stdout).
    stdio = Stdio(devnull, devnull, devnull) if quiet else Stdio(devnull, 1, 1)
    # A cgroup as `run` has: above all its device rules (the step has CAP_MKNOD; without them a node it makes
    # for a host disk opens, and the build reads or writes that disk).
    # The step's id is recorded first: a killed build leaves its cgroup, which `system check` then removes.
    config.paths.build_steps.mkdir(mode=0o700, exist_ok=True)
    step_record = config.paths.build_steps / container_id
    step_record.touch()
    cgroup = create_cgroup(container_id, Limits())
    try:
        launched = launch(spec, LaunchHooks(join_cgroup=cgroup.add_process, before_exec=before_exec), stdio)
        code = _wait_or_kill(launched.pid, wait_container)
    except CommandNotFound:
        code = 127
    except CommandCannotRun:
        code = 126
    except PyctrError as e:
        raise BuildError(f"RUN failed to start: {e.message}", exit_code=1) from None
    finally:
        os.close(devnull)
        with contextlib.suppress(PyctrError, OSError):
            cgroup.destroy()
            step_record.unlink()
        if connected:
            from pyctr.runtime.network import teardown_network

            with contextlib.suppress(PyctrError, OSError):
                teardown_network(config, container_id)
    if code != 0:
        raise BuildError(failure_message(step.argv, code), exit_code=1)
    upper = Path(spec.rootfs.upperdir)
    remove_mount_stubs(upper, lowerdirs, left_in_layer)
    clamp_times(upper, epoch or 0)
    return upper, container_id
