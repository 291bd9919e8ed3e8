"""The container lifecycle: create, start (detached or foreground), stop, kill, remove, wait, cleanup.

This module sequences the other runtime parts; the decisions live elsewhere
(spec.make_spec, state.reconcile, names) and the kernel work in process.py,
cgroups/ and network/.

Process model (docs/ARCHITECTURE.md). Detached: the CLI forks, the child
calls setsid and forks M, which launches the container C (M stays C's parent),
reports "started <pid>" or the start error to the CLI over a pipe, then execs
the stdlib-only monitor (monitor.py), which logs C's output, reaps it and runs
`pyctr _cleanup`. Foreground: the CLI itself is M and does the same work
in-process. Either way `finish()` records the exit and tears everything down.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyctr.errors import ConflictError, NotFoundError, PyctrError, RuntimeFailure, UsageError
from pyctr.runtime import state as st
from pyctr.runtime.state import ContainerRecord, ContainerStore

if TYPE_CHECKING:
    from pyctr.config import Config
    from pyctr.runtime.spec import ContainerSpec, RunOptions

MONITOR_SCRIPT = Path(__file__).with_name("monitor.py")
STATE_SETTLE_TIMEOUT = 10.0  # how long stop/kill/rm wait for the monitor to record an exit


# -- create -------------------------------------------------------------------------------------------

def resolve_image(config: Config, name: str, pull_missing: bool = True, out=None):
    """The image record for `name`, pulling it first when it is not stored (as `docker run` does)."""
    from pyctr.image.store import ImageStore

    store = ImageStore(config.paths)
    try:
        return store.resolve(name)
    except NotFoundError:
        if not pull_missing:
            raise
    from pyctr.image.pull import pull
    from pyctr.image.reference import parse_reference

    out = out or sys.stderr
    print(f"Unable to find image '{parse_reference(name).familiar}' locally", file=out, flush=True)
    return pull(config, name, out=out)


def create(config: Config, options: RunOptions, out=None) -> ContainerRecord:
    """Store a new container (state "created") for `options`: its spec, Docker config and host files."""
    from pyctr.runtime.spec import make_spec, parse_limits

    ports = _port_mappings(options)
    parse_limits(options)  # Docker's CLI refuses `-m 12q` / `--cpus -1` before any pull: check them first
    if options.stop_signal:
        parse_signal(options.stop_signal)  # refused now, not when `stop` needs it
    if options.stop_signal:
        parse_signal(options.stop_signal)  # Docker: "Invalid signal: X" at create, not at the first stop
    image = resolve_image(config, options.image, out=out)
    store = ContainerStore(config.paths)

    def build(container_id: str, name: str) -> dict:
        bundle = store.directory(container_id)
        spec = make_spec(image.config, options, container_id, name, bundle, image.layer_dirs,
                         image_id=image.id, volumes_root=config.paths.volumes)
        _write_host_files(bundle, spec)
        return config_document(spec, options, image.id, image.config, ports)

    return store.create(build, options.name)


def _port_mappings(options: RunOptions) -> list:
    """-p and -P, parsed before anything is created so a bad spec costs nothing."""
    if not options.publish and not options.publish_all:
        return []
    from pyctr.runtime.network.publish import parse_publish

    mappings = []
    for spec in options.publish:
        mappings += parse_publish(spec)  # parsed whatever the network: Docker's CLI refuses `-p abc` first
    if options.network in ("none", "host"):
        return []  # Docker: published ports are discarded with these network modes
    return mappings


def config_document(spec: ContainerSpec, options: RunOptions, image_id: str, image_config: dict,
                    ports: list) -> dict:
    """What config.json holds: Docker's Config/HostConfig views, the runtime spec and the options."""
    inner = image_config.get("config") if isinstance(image_config.get("config"), dict) else image_config
    exposed = dict((inner or {}).get("ExposedPorts") or {})
    for p in ports:
        exposed.setdefault(f"{p.container_port}/{p.proto}", {})
    if options.publish_all:
        from pyctr.runtime.network.publish import publish_all

        ports = list(ports) + publish_all(exposed)
    args = spec.process.args
    return {
        "Id": spec.id,
        "Name": spec.name,
        "Created": st.now_rfc3339(),
        "Path": args[0],
        "Args": args[1:],
        "Image": image_id,
        "LowerDirs": list(reversed(spec.rootfs.lowerdirs)),
        "Ports": [_port_dict(p) for p in ports],
        "PortMappings": [p.to_dict() for p in ports],
        "Config": _docker_config(spec, options, exposed, inner or {}),
        "HostConfig": _host_config(spec, options, ports),
        "MountPoints": mount_points(spec, options),
        "Spec": spec.to_dict(),
        "Options": asdict(options),
    }


def _port_dict(p) -> dict:
    return {"HostIp": p.host_ip or "0.0.0.0", "HostPort": p.host_port, "ContainerPort": p.container_port,
            "Protocol": p.proto}


def _docker_config(spec: ContainerSpec, options: RunOptions, exposed: dict, image_config: dict) -> dict:
    entrypoint = ([options.entrypoint] if options.entrypoint else []) if options.entrypoint is not None \
        else image_config.get("Entrypoint")
    cmd = list(options.command) or (None if options.entrypoint is not None else image_config.get("Cmd"))
    from pyctr.runtime.inspect import config_object

    volumes = dict(image_config.get("Volumes") or {})
    volumes.update({v: {} for v in options.volumes if ":" not in v})  # `-v /dst`: Docker's CLI puts it here
    return config_object({
        "Hostname": spec.hostname, "Domainname": "", "User": spec.process.user,
        "AttachStdin": options.interactive and not options.detach, "AttachStdout": not options.detach,
        "AttachStderr": not options.detach, "ExposedPorts": exposed or None, "Tty": options.tty,
        "OpenStdin": options.interactive, "StdinOnce": options.interactive and not options.detach,
        "Env": spec.config_env or None, "Cmd": cmd, "Image": options.image, "Volumes": volumes or None,
        "WorkingDir": spec.process.cwd if spec.process.cwd != "/" or options.workdir else "",
        "Entrypoint": entrypoint or None, "OnBuild": image_config.get("OnBuild"), "Labels": spec.labels,
        "StopSignal": options.stop_signal or image_config.get("StopSignal"), "StopTimeout": options.stop_timeout,
    })


def mount_points(spec: ContainerSpec, options: RunOptions) -> list[dict]:
    """Docker's `Mounts` of inspect, one per `-v` (the spec's mounts are sorted by depth: match by target)."""
    from pyctr.runtime.inspect import mount_point

    sources = {m.destination: m.source for m in spec.mounts}
    points = []
    for volume in options.volumes:
        parts = volume.split(":")
        destination = os.path.normpath(parts[0] if len(parts) == 1 else parts[1])
        points.append(mount_point(volume, sources.get(destination, "")))
    return points


def _host_config(spec: ContainerSpec, options: RunOptions, ports: list) -> dict:
    bindings: dict[str, list] = {}
    for p in ports:
        bindings.setdefault(f"{p.container_port}/{p.proto}", []).append(
            {"HostIp": p.host_ip if p.host_ip != "0.0.0.0" else "", "HostPort": str(p.host_port or "")})
    limits = spec.limits
    from pyctr.runtime.inspect import host_config_object

    cgroup_v2 = _cgroup_version() == 2
    return host_config_object({
        "Binds": [v for v in options.volumes if ":" in v] or None,  # `-v /dst` is a volume of Config.Volumes
        "NetworkMode": options.network, "PortBindings": bindings, "AutoRemove": options.rm,
        "CapAdd": list(options.cap_add) or None, "CapDrop": list(options.cap_drop) or None,
        "CgroupnsMode": "private" if "cgroup" in spec.namespaces else "host",
        "Dns": list(options.dns), "ExtraHosts": list(options.add_host) or None,
        "GroupAdd": list(options.group_add) or None, "Privileged": options.privileged,
        "PublishAllPorts": options.publish_all, "ReadonlyRootfs": options.read_only,
        "SecurityOpt": list(options.security_opt) or None, "Init": options.init or None,
        "Memory": limits.memory or 0, "MemorySwap": limits.memory_swap or 0,
        "NanoCpus": int(limits.cpu_quota * 1e9 / limits.cpu_period) if limits.cpu_quota else 0,
        "CpuShares": limits.cpu_shares or 0, "PidsLimit": limits.pids_limit,
        "OomKillDisable": None if cgroup_v2 else False,  # dockerd drops it where the kernel cannot (v2)
        "MaskedPaths": list(spec.masked_paths) or None, "ReadonlyPaths": list(spec.readonly_paths) or None,
    })


def _cgroup_version() -> int:
    """1 or 2 (2 when it cannot be told: what current distributions run)."""
    try:
        from pyctr.runtime.cgroups import current_mode

        return current_mode().version
    except (OSError, PyctrError):
        return 2


def _write_host_files(bundle: Path, spec: ContainerSpec) -> None:
    """hostname, hosts and resolv.conf in the container dir; the runtime bind-mounts them over /etc."""
    from pyctr.runtime.network.hostfiles import hosts_file, read_host_resolv_conf, resolv_conf

    _write_text(bundle / "hostname", spec.hostname + "\n")
    if spec.network.mode == "host":
        _write_text(bundle / "hosts", _read_or("/etc/hosts", hosts_file(spec.hostname, None)))
        _write_text(bundle / "resolv.conf", _read_or("/etc/resolv.conf", ""))
        return
    _write_text(bundle / "hosts", hosts_file(spec.hostname, None, spec.network.extra_hosts))
    host_text, upstream = read_host_resolv_conf()
    _write_text(bundle / "resolv.conf", resolv_conf(host_text, spec.network.dns, upstream))


def _read_or(path: str, default: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def _write_text(path: Path, text: str) -> None:
    from pyctr.fsutil import atomic_write_bytes

    atomic_write_bytes(path, text.encode(), mode=0o644, durable=False)


# -- launching, in the process that will be the container's parent (M) -------------------------------------

def load_spec(record: ContainerRecord) -> ContainerSpec:
    from pyctr.runtime.spec import ContainerSpec

    return ContainerSpec.from_dict(record.config["Spec"])


def _cgroup_limits(spec: ContainerSpec):
    from pyctr.runtime.cgroups.limits import Limits

    lim = spec.limits
    cpus = lim.cpu_quota / lim.cpu_period if lim.cpu_quota and lim.cpu_period else None
    return Limits(memory=lim.memory, memory_swap=lim.memory_swap, cpus=cpus, cpu_shares=lim.cpu_shares,
                  pids_limit=lim.pids_limit, privileged=spec.privileged)


class _Launch:
    """Everything M does around `process.launch`: cgroup, network, state; undone if the start fails."""

    def __init__(self, config: Config, record: ContainerRecord) -> None:
        self.config = config
        self.record = record
        self.spec = load_spec(record)
        self.store = ContainerStore(config.paths)
        self.cgroup = None
        self.network: dict = {}
        self._connecting: Concurrently | None = None

    def join_cgroup(self, pid: int) -> None:
        """In M, while C waits: join the cgroup and, at the same time, start plugging C into the bridge.

        Both are mostly system calls that wait (cgroup v1 moves a process hierarchy by hierarchy, netlink and
        nft answer in their own time); the network goes on while C builds its rootfs (before_exec joins it)."""
        if self.spec.network.mode == "bridge":
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

        ports = [PortMapping.from_dict(p) for p in self.record.config.get("PortMappings", [])]
        info = setup_network(self.config, self.spec.id, pid, ports)
        # In place: C may have bind-mounted this very file already (a rename would leave it the old one).
        with open(self.spec.bundle / "hosts", "w") as f:
            f.write(hosts_file(self.spec.hostname, info.ip, self.spec.network.extra_hosts))
        self.network = {
            "IPAddress": info.ip, "IPPrefixLen": info.prefixlen, "Gateway": info.gateway, "MacAddress": info.mac,
            "Bridge": info.bridge,
            "Ports": [{"HostIp": p.host_ip or "0.0.0.0", "HostPort": p.host_port, "ContainerPort": p.container_port,
                       "Protocol": p.proto} for p in info.ports],
        }

    def launch(self, stdio: Any) -> tuple[int, int]:
        """Start C; on failure record the error as Docker does (State.Error, exit code) and undo everything."""
        from pyctr.runtime.cgroups import create_cgroup
        from pyctr.runtime.process import LaunchHooks, launch

        with self._start_lock():
            try:
                self.cgroup = create_cgroup(self.spec.id, _cgroup_limits(self.spec))
                hooks = LaunchHooks(join_cgroup=self.join_cgroup, before_exec=self.before_exec)
                launched = launch(self.spec, hooks, stdio)
            except BaseException as e:
                self._failed(e)
                raise
            pid, start_time = launched.pid, launched.start_time
            me = os.getpid()
            self.store.update_state(self.spec.id, lambda s: _with_network(
                st.started(s, pid, start_time, me, st.proc_start_time(me) or 0, st.boot_id()), self.network))
        return pid, start_time

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
            if self.store.get(self.spec.id).state.running:
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
        if self.spec.auto_remove:  # Docker removes a --rm container whose start failed too
            with contextlib.suppress(PyctrError, OSError):
                self.store.remove_directory(self.spec.id)


def _with_network(state: st.ContainerState, network: dict) -> st.ContainerState:
    from dataclasses import replace

    return replace(state, network=dict(network))


def _stdio(stdin: int, stdout: int, stderr: int) -> Any:
    from pyctr.runtime.process import Stdio

    return Stdio(stdin=stdin, stdout=stdout, stderr=stderr)


def _terminal_stdio(slave: int, master: int) -> Any:
    from pyctr.runtime.process import Stdio

    return Stdio.terminal(slave, master)


# -- detached ------------------------------------------------------------------------------------------------

def start_detached(config: Config, record: ContainerRecord, wait_for_attach: bool = False) -> int:
    """Start the container in the background and return C's pid once it runs (or raise its start error).

    `wait_for_attach` (an attach made before start, as `docker run` does): the monitor relays C's output
    only once a client is on its attach socket, so the first output is not missed."""
    _check_startable(record)
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the forked child
        _detach_and_launch(config, record, read_end, write_end, wait_for_attach)
    os.close(write_end)
    with open(read_end, "rb") as f:
        report = f.read().decode(errors="replace")
    _reap_quietly(child)
    return _parse_report(report)


def _detach_and_launch(config: Config, record: ContainerRecord, read_end: int, report: int,
                       wait_for_attach: bool = False) -> None:
    """In the child: become M (new session, grandchild of the CLI) and never return."""
    code = 0
    try:
        os.close(read_end)
        os.setsid()
        if os.fork() != 0:
            os._exit(0)
        _sanitise_fds(keep=report)
        _become_monitor(config, record, report, wait_for_attach)
    except PyctrError as e:
        _send(report, f"error {e.exit_code} {e.message}")
        code = e.exit_code
    except BaseException as e:  # noqa: BLE001 - must never unwind into the CLI's stack
        _send(report, f"error 125 {type(e).__name__}: {e}")
        code = 125
    os._exit(code)


def _sanitise_fds(keep: int) -> None:
    """Stdio to /dev/null, every other fd closed: nothing of the CLI's (its pipes, a tty) stays held."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    if devnull > 2:
        os.close(devnull)
    os.closerange(3, keep)
    os.closerange(keep + 1, 65536)
    os.chdir("/")
    os.umask(0o022)


def _become_monitor(config: Config, record: ContainerRecord, report: int, wait_for_attach: bool = False) -> None:
    launcher = _Launch(config, record)
    tty = launcher.spec.process.terminal
    stdin_writer = -1  # what the monitor writes an attached client's input to
    if tty:
        from pyctr.runtime.tty import open_pty

        master, slave = open_pty(size_from=None)
        out_r, stdio, close_after = master, _terminal_stdio(slave, master), [slave]
        err_r = -1
        if launcher.spec.process.open_stdin:
            stdin_writer = master
    else:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        stdin, stdin_writer = _stdin_for_detached(launcher.spec)
        stdio, close_after = _stdio(stdin, out_w, err_w), [stdin, out_w, err_w]
    pid, _ = launcher.launch(stdio)
    for fd in close_after:
        os.close(fd)
    _send(report, f"started {pid}")
    os.close(report)
    interpreter, program = monitor_program(config)
    stdin_once = bool((record.config.get("Config") or {}).get("StdinOnce"))
    flags = ("w" if wait_for_attach else "") + ("o" if stdin_once else "") or "-"
    argv = [interpreter, "-I", "-S", program, str(launcher.spec.bundle), str(pid), str(out_r),
            str(err_r), "1", str(stdin_writer), flags, *cleanup_command(config, record.id)]
    for fd in (out_r, err_r):
        if fd >= 0:
            os.set_inheritable(fd, True)
    os.execv(interpreter, argv)


def _stdin_for_detached(spec: ContainerSpec) -> tuple[int, int]:
    """(C's stdin, its writer or -1): /dev/null, or with -i a pipe whose write end the monitor holds for the
    container's lifetime (Docker keeps stdin open for an attach; the monitor's attach socket feeds it)."""
    if spec.process.open_stdin:
        read_end, write_end = os.pipe()
        os.set_inheritable(write_end, True)
        return read_end, write_end
    return os.open(os.devnull, os.O_RDONLY), -1


def monitor_program(config: Config) -> tuple[str, str]:
    """(interpreter, program): the monitor compiled to a .pyc under the root's tmp/ (running the .py would
    compile it: +0.4 MiB each), for the lightest interpreter of this Python version that can run it.

    Named after the source's size and mtime and the interpreter, so an updated pyctr never runs a stale
    monitor; falls back to the source if compiling fails.
    """
    light = lighter_interpreter()
    for interpreter in ([light] if light else []) + [sys.executable]:
        try:
            return interpreter, _compiled_monitor(config, interpreter)
        except Exception:  # noqa: BLE001 - whatever went wrong, the next choice (last: the source) works too
            continue
    return sys.executable, str(MONITOR_SCRIPT)


def lighter_interpreter() -> str | None:
    """The distribution's own python3.X when pyctr runs on another build of the same version.

    The monitor is stdlib-only and idles for the container's lifetime, so what counts is the interpreter's
    own private memory: Debian's python3.11 (libpython linked in) idles at ~2.2 MiB private, a shared-libpython
    build such as pyenv's at ~2.5 MiB (its relocated data pages are private to each process)."""
    candidate = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    if not os.access(candidate, os.X_OK) or os.path.realpath(candidate) == os.path.realpath(sys.executable):
        return None
    return candidate


_COMPILE = "import py_compile, sys; py_compile.compile(sys.argv[1], cfile=sys.argv[2], doraise=True)"


def _compiled_monitor(config: Config, interpreter: str) -> str:
    """The monitor's .pyc for `interpreter`, compiled by that interpreter itself (so it surely runs it)."""
    import zlib

    src = MONITOR_SCRIPT.stat()
    key = zlib.crc32(os.path.realpath(interpreter).encode())
    target = config.paths.tmp / f"monitor-{sys.implementation.cache_tag}-{key:08x}-{src.st_size}-{src.st_mtime_ns}.pyc"
    if not target.exists():
        config.paths.tmp.mkdir(mode=0o700, parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}")
        if interpreter == sys.executable:
            import py_compile

            py_compile.compile(str(MONITOR_SCRIPT), cfile=str(partial), doraise=True)
        else:
            import subprocess

            subprocess.run([interpreter, "-I", "-S", "-c", _COMPILE, str(MONITOR_SCRIPT), str(partial)],
                           check=True, timeout=30, stdin=subprocess.DEVNULL, capture_output=True)
        os.rename(partial, target)
    return str(target)


def cleanup_command(config: Config, container_id: str) -> list[str]:
    """How the monitor calls back into pyctr when the container exits: through the `pyctr` client, so that the
    warm server records the exit in a few ms (in-process, imports alone take ~150 ms), else in-process."""
    argv = [sys.executable, "-m", "pyctr.client", "--root", str(config.root)]
    if config.config_file is not None and Path(config.config_file).exists():
        argv += ["--config", str(config.config_file)]
    return argv + ["_cleanup", container_id]


def _send(fd: int, message: str) -> None:
    with contextlib.suppress(OSError):
        os.write(fd, (message.replace("\n", " ") + "\n").encode())


def _parse_report(report: str) -> int:
    """The CLI's side of the start handshake: C's pid, or M's error re-raised with its exit code."""
    line = report.strip().splitlines()[0] if report.strip() else ""
    word, _, rest = line.partition(" ")
    if word == "started":
        return int(rest)
    if word == "error":
        code, _, message = rest.partition(" ")
        raise PyctrError(message or "container failed to start", exit_code=int(code))
    raise RuntimeFailure("the container's monitor exited before reporting the start")


def _reap_quietly(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _check_startable(record: ContainerRecord) -> None:
    if record.state.running:
        raise ConflictError(f"container {record.short_id} is already running")


# -- foreground ------------------------------------------------------------------------------------------------

FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
                     signal.SIGUSR2, signal.SIGWINCH)


def run_foreground(config: Config, record: ContainerRecord, interactive: bool, keep_log: bool = True) -> int:
    """Run C with this process as its parent; stream its output; return its exit code (Docker's `run`)."""
    _check_startable(record)
    launcher = _Launch(config, record)
    if launcher.spec.process.terminal:
        return _run_foreground_tty(config, launcher, interactive, keep_log)
    stdin = 0 if interactive else os.open(os.devnull, os.O_RDONLY)
    try:
        if not keep_log:  # --rm: the log would be deleted at exit, so give C our stdout/stderr directly
            pid, _ = launcher.launch(_stdio(stdin, 1, 2))
            return _supervise(config, record.id, pid, lambda: _wait_forwarding_signals(pid))
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        pid, _ = launcher.launch(_stdio(stdin, out_w, err_w))
        os.close(out_w)
        os.close(err_w)
        return _supervise(config, record.id, pid, lambda: _relay_then_wait(launcher.spec, pid, out_r, err_r))
    finally:
        if stdin != 0:
            os.close(stdin)


def _supervise(config: Config, container_id: str, pid: int, wait: Callable[[], int]) -> int:
    """Wait for C, then record its exit and clean up (--rm). If the CLI itself fails while C runs, C is killed
    and the container is still recorded and cleaned up before the error propagates: never a half-removed --rm."""
    try:
        code = wait()
    except BaseException:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
        _reap_quietly(pid)
        _finish_reporting(config, container_id, 128 + signal.SIGKILL)
        raise
    _finish_reporting(config, container_id, code)
    return code


def _relay_then_wait(spec: ContainerSpec, pid: int, out_r: int, err_r: int) -> int:
    from pyctr.runtime.monitor import relay

    log = _open_log(spec)
    previous = _forward_signals(pid)
    try:
        relay([(out_r, "stdout", 1), (err_r, "stderr", 2)], log)
        return _reap(pid)
    finally:
        os.close(log)
        _restore_signals(previous)


def _open_log(spec: ContainerSpec) -> int:
    """The container's json-file log, appended to (a restarted container keeps its earlier output, as Docker)."""
    return os.open(spec.bundle / f"{spec.id}-json.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)


def _wait_forwarding_signals(pid: int) -> int:
    previous = _forward_signals(pid)
    try:
        return _reap(pid)
    finally:
        _restore_signals(previous)


def _run_foreground_tty(config: Config, launcher: _Launch, interactive: bool, keep_log: bool = True) -> int:
    """-t: C gets a pty; the runtime core's tty relay copies between it and our terminal, and into the log as
    Docker keeps an attached tty's output (not with --rm, whose log goes at exit)."""
    from pyctr.runtime.tty import open_pty, run_terminal_session

    master, slave = open_pty()
    try:
        pid, _ = launcher.launch(_terminal_stdio(slave, master))
    finally:
        os.close(slave)
    log = _open_log(launcher.spec) if keep_log else -1
    try:
        return _supervise(config, launcher.spec.id, pid,
                          lambda: run_terminal_session(master, pid, forward_stdin=interactive, log_fd=log))
    finally:
        if log >= 0:
            os.close(log)


def _forward_signals(pid: int) -> dict:
    """Docker's sig-proxy: what the CLI receives, the container receives."""
    def forward(signum, _frame):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    previous = {}
    for sig in FORWARDED_SIGNALS:
        with contextlib.suppress(OSError, ValueError):
            previous[sig] = signal.signal(sig, forward)
    return previous


def _restore_signals(previous: dict) -> None:
    for sig, handler in previous.items():
        with contextlib.suppress(OSError, ValueError, TypeError):
            signal.signal(sig, handler)


def _reap(pid: int) -> int:
    from pyctr.runtime.monitor import exit_code_of

    while True:
        try:
            _, status = os.waitpid(pid, 0)
            return exit_code_of(status)
        except InterruptedError:
            continue
        except ChildProcessError:
            return st.EXIT_UNKNOWN


# -- exit and teardown -------------------------------------------------------------------------------------------

def finish(config: Config, container_id: str, exit_code: int, finished_at: str | None = None) -> None:
    """Record the exit of C and tear everything down (the monitor's `_cleanup`, or the foreground CLI)."""
    store = ContainerStore(config.paths)
    try:
        record = store.get(container_id, reconcile_state=False)
    except NotFoundError:
        return  # removed meanwhile (rm -f): nothing left to record
    spec = load_spec(record)
    oom = _oom_killed(container_id)
    with contextlib.suppress(NotFoundError):
        store.update_state(container_id, lambda s: st.exited(s, exit_code, oom_killed=oom, at=finished_at)
                           if s.running else None)
    teardown(config, record, spec)  # raises if something stayed: the directory is then kept for `rm -f`
    if spec.auto_remove:
        volumes = anonymous_volumes(record)
        store.remove_directory(container_id)
        remove_anonymous_volumes(config, volumes)


def _finish_reporting(config: Config, container_id: str, exit_code: int) -> None:
    """finish() for the foreground CLI: a cleanup problem is a warning; the exit code stays the container's."""
    try:
        finish(config, container_id, exit_code, st.now_rfc3339())
    except PyctrError as e:
        print(f"Warning: {e.message}", file=sys.stderr)


def anonymous_volumes(record: ContainerRecord) -> list[str]:
    """Names of the container's `-v /path` volumes (spec.anonymous_volume_name); read them before the
    container's directory (where its options are) goes."""
    from pyctr.runtime.spec import anonymous_volume_name

    volumes = (record.config.get("Options") or {}).get("volumes") or []
    return [anonymous_volume_name(record.id, index) for index, volume in enumerate(volumes) if ":" not in volume]


def remove_anonymous_volumes(config: Config, names: list[str]) -> None:
    """Anonymous volumes go with the container on `rm -v` and --rm; named volumes and binds stay."""
    import shutil

    for name in names:
        shutil.rmtree(config.paths.volumes / name, ignore_errors=True)


def _oom_killed(container_id: str) -> bool:
    from pyctr.runtime.cgroups import open_cgroup

    try:
        return open_cgroup(container_id).oom_killed()
    except (OSError, PyctrError):
        return False


def teardown(config: Config, record: ContainerRecord, spec: ContainerSpec | None = None) -> None:
    """Undo what a start set up: network, cgroup, a rootfs mount left on the host. Idempotent."""
    if spec is None:
        try:
            spec = load_spec(record)
        except (PyctrError, KeyError, TypeError, ValueError):
            spec = None  # damaged spec.json: still remove what is named after the id
    mode = spec.network.mode if spec is not None else "bridge"
    merged = Path(spec.rootfs.merged) if spec is not None else record.directory / "rootfs" / "merged"
    errors = []
    never_started = record.state.started_at == st.ZERO_TIME and not record.state.network
    network = None
    if mode == "bridge" and not never_started:  # a never-started container has no veth to remove
        from pyctr.runtime.network import teardown_network

        network = Concurrently(teardown_network, config, record.id)  # alongside the cgroup and the mount
    try:
        from pyctr.runtime.cgroups import open_cgroup

        open_cgroup(record.id).destroy()
    except (OSError, PyctrError) as e:
        errors.append(f"cgroup: {e}")
    _unmount_rootfs(merged)
    if network is not None:
        try:
            network.join()
        except (OSError, PyctrError) as e:
            errors.insert(0, f"network: {e}")
    if errors:
        raise RuntimeFailure(f"cleanup of container {record.short_id} incomplete: {'; '.join(errors)}")


class Concurrently:
    """Run a function in a thread now; join() waits for it and raises what it raised."""

    def __init__(self, function: Callable[..., object], *args: object) -> None:
        import threading

        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(function, *args), daemon=True)
        self._thread.start()

    def _run(self, function: Callable[..., object], *args: object) -> None:
        try:
            function(*args)
        except BaseException as e:  # noqa: BLE001 - handed to join()
            self._error = e

    def join(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error


def _unmount_rootfs(merged: Path) -> None:
    """The overlay is normally mounted inside C's own mount namespace; a host mount is cleaned up too."""
    if not os.path.ismount(merged):
        return
    from pyctr.runtime.syscalls import umount2

    MNT_DETACH = 2
    with contextlib.suppress(OSError):
        umount2(str(merged), MNT_DETACH)


# -- stop, kill, wait, remove ------------------------------------------------------------------------------------

def parse_signal(value: str | int) -> signal.Signals:
    """KILL, SIGKILL, kill, 9 -> SIGKILL (Docker's signal.ParseSignal)."""
    text = str(value).strip().upper()
    try:
        return signal.Signals(int(text)) if text.isdigit() else signal.Signals[
            text if text.startswith("SIG") else "SIG" + text]
    except (KeyError, ValueError):
        raise UsageError(f"Invalid signal: {value}") from None


def kill(config: Config, ref: str, sig: str | int = "KILL") -> ContainerRecord:
    signum = parse_signal(sig)
    store = ContainerStore(config.paths)
    record = store.get(ref)
    if not record.state.running:
        raise ConflictError(f"Cannot kill container: {ref}: Container {record.id} is not running")
    _signal(record, signum)
    return record


def _signal(record: ContainerRecord, signum: int) -> None:
    """Signal C through a pidfd opened and checked first: a reused pid can never get the signal."""
    state = record.state
    try:
        pidfd = os.pidfd_open(state.pid)
    except (ProcessLookupError, ValueError):
        return
    try:
        if st.proc_start_time(state.pid) == state.pid_start_time:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(pidfd, signum)
    finally:
        os.close(pidfd)


def stop(config: Config, ref: str, timeout: int | None = None, sig: str | None = None) -> ContainerRecord:
    """Docker's stop: the stop signal, then SIGKILL after `timeout` seconds; returns once the exit is recorded."""
    store = ContainerStore(config.paths)
    record = store.get(ref)
    if not record.state.running:
        return record
    spec = record.config.get("Spec", {})
    signum = parse_signal(sig or spec.get("stop_signal") or "SIGTERM")
    timeout = spec.get("stop_timeout", 10) if timeout is None else timeout
    _signal(record, signum)
    if not wait_for_exit(record.state.pid, record.state.pid_start_time, max(timeout, 0)):
        _signal(record, signal.SIGKILL)
        wait_for_exit(record.state.pid, record.state.pid_start_time, STATE_SETTLE_TIMEOUT)
    return wait_recorded(store, record.id)


POLL_SLICE_MS = 3_600_000


def wait_for_exit(pid: int, start_time: int, timeout: float) -> bool:
    """Block until process (pid, start_time) is gone, at most `timeout` s; True if it is gone."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    except OSError as e:
        if e.errno != errno.ENOSYS:
            raise
        return _poll_for_exit(pid, start_time, timeout)
    try:
        if st.proc_start_time(pid) != start_time:  # a different process now owns the pid
            return True
        import select

        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            # poll() takes an int of milliseconds: wait in slices of at most an hour (wait uses a year)
            if poller.poll(max(0, min(int(remaining * 1000), POLL_SLICE_MS))):
                return True
            if remaining <= 0:
                return not st.process_alive(pid, start_time)
    finally:
        os.close(pidfd)


def _poll_for_exit(pid: int, start_time: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while st.process_alive(pid, start_time):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def wait_recorded(store: ContainerStore, container_id: str, timeout: float = STATE_SETTLE_TIMEOUT) -> ContainerRecord:
    """After C died: wait for its monitor to record the exit (reconcile takes over if the monitor is gone)."""
    deadline = time.monotonic() + timeout
    while True:
        record = store.get(container_id)
        if not record.state.running or time.monotonic() > deadline:
            return record
        time.sleep(0.01)


def wait(config: Config, ref: str) -> int:
    """Docker's wait: block until the container stops, return its exit code."""
    store = ContainerStore(config.paths)
    record = store.get(ref)
    last_code = record.state.exit_code
    while record.state.running:  # Docker's default condition "not-running": a created container returns at once
        wait_for_exit(record.state.pid, record.state.pid_start_time, 3600 * 24 * 365)
        try:
            record = wait_recorded(store, record.id)
        except NotFoundError:
            code = store.read_exit_file(record.id)
            return code[0] if code else last_code
        last_code = record.state.exit_code
    return record.state.exit_code


def remove(config: Config, ref: str, force: bool = False, volumes: bool = False) -> ContainerRecord:
    """Docker's rm: refuse a running container unless forced; tear down and delete everything."""
    store = ContainerStore(config.paths)
    record = store.get(ref)
    if record.state.running:
        if not force:
            raise ConflictError(f"You cannot remove a running container {record.id}. Stop the container before "
                                "attempting removal or force remove")
        _signal(record, signal.SIGKILL)
        wait_for_exit(record.state.pid, record.state.pid_start_time, STATE_SETTLE_TIMEOUT)
        # Let the monitor finish (it keeps its pid through the exec of `_cleanup`): it writes into the
        # container's directory until then, which must not race with deleting it.
        if record.state.monitor_pid and record.state.monitor_pid != os.getpid():
            wait_for_exit(record.state.monitor_pid, record.state.monitor_start_time, STATE_SETTLE_TIMEOUT)
        with contextlib.suppress(NotFoundError):
            store.update_state(record.id, lambda s: st.exited(s, 137) if s.running else None)
    try:
        teardown(config, record)
    except RuntimeFailure:
        teardown(config, record)  # once more (e.g. a process was still leaving its cgroup); then report
    anonymous = anonymous_volumes(record) if volumes else []
    store.remove_directory(record.id)
    remove_anonymous_volumes(config, anonymous)
    return record


def restart(config: Config, ref: str, timeout: int | None = None) -> ContainerRecord:
    stop(config, ref, timeout)
    store = ContainerStore(config.paths)
    record = store.get(ref)
    start_detached(config, record)
    return record
