"""The doing side of pyctr-runtime, and its only door into `pyctr.runtime` (so the process core can be
re-pointed in one place): fork the container's init as a child of the calling process, run it up to its wait
on exec.fifo, make and fill its cgroup, run hooks.

Process model (runc's): `create` is M. M opens the namespaces to join, unshares or joins the PID namespace and
forks C, then returns to its own PID namespace. C joins/unshares the other namespaces and says READY; M puts
it in its cgroup, sets oom_score_adj, runs the prestart/createRuntime hooks and says GO (with C's host PID); C
builds its root (mounts, devices, console, pivot_root, masked/read-only paths), sets hostname, sysctls,
rlimits, user, capabilities and seccomp, says WAITING on the report pipe and blocks opening exec.fifo for
writing. M writes state.json and exits: C is re-parented to the caller's subreaper (containerd's shim, conmon),
as runc's init is. `start` opens the fifo for reading, which lets C run the startContainer hooks and exec the
command through pyctr's sealed exec shim (runtime/execshim.py).
"""

from __future__ import annotations

import os
import stat

from pyctr.oci import cgroupfs, jsonlite
from pyctr.oci.errors import LaunchError
from pyctr.oci.state import FIFO

SIGKILL = 9


class _ignoring:
    """contextlib.suppress, without importing contextlib (collections and functools behind it) on create."""

    __slots__ = ("errors",)

    def __init__(self, *errors: type[BaseException]) -> None:
        self.errors = errors

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_rest: object) -> bool:
        return kind is not None and issubclass(kind, self.errors)


TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (create is a cold start)
if TYPE_CHECKING:
    from pyctr.oci.bundle import Device, Hook, Plan

READY, GO, WAITING = b"R", b"G", b"W"
# With a user namespace: C says USERNS once it made one, M answers MAPPED once it wrote the maps; C forks the
# init inside it and says INIT_PID + the init's host PID (4 bytes) before it exits.
USERNS, MAPPED, INIT_PID = b"U", b"M", b"P"
SECCOMP_CACHE = "seccomp:cache"  # under --root: compiled filters (":" is never in a container id)
# C's own namespace kinds in the order runc joins them; pid is M's business (before fork), or, with a user
# namespace, C's (the init must be forked inside the user namespace that owns its PID namespace).
_JOIN_ORDER = ("ipc", "uts", "network", "cgroup", "mount")
_CLONE_FLAG = {"ipc": "CLONE_NEWIPC", "uts": "CLONE_NEWUTS", "network": "CLONE_NEWNET", "cgroup": "CLONE_NEWCGROUP",
               "mount": "CLONE_NEWNS", "pid": "CLONE_NEWPID"}
DEFAULT_DEVICES = (("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/full", 1, 7), ("/dev/random", 1, 8),
                   ("/dev/urandom", 1, 9), ("/dev/tty", 5, 0))
DEV_LINKS = (("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"), ("/proc/self/fd/1", "/dev/stdout"),
             ("/proc/self/fd/2", "/dev/stderr"), ("pts/ptmx", "/dev/ptmx"))


class CreateRequest:
    """How `create` was asked to start the container (its flags), besides config.json.

    console_fd: `run -t` without --console-socket passes its end of a socketpair instead of a socket path."""

    def __init__(self, container_id: str, state_dir: str, console_socket: str = "", no_pivot: bool = False,
                 preserve_fds: int = 0, console_fd: int = -1) -> None:
        self.container_id, self.state_dir, self.console_socket = container_id, state_dir, console_socket
        self.no_pivot, self.preserve_fds, self.console_fd = no_pivot, preserve_fds, console_fd


# ------------------------------------------------------------------------------------------------ M's side


def runtime_error_line(error: BaseException) -> str | None:
    """The one-line message of a pyctr.runtime error, or None when it is not one of them."""
    from pyctr.errors import PyctrError

    return str(error) if isinstance(error, PyctrError) else None


def capability_names(this_kernel: bool = False) -> list[str]:
    """Every capability name pyctr knows (config.json may name them), or only those this kernel has."""
    from pyctr.runtime.capabilities import CAPABILITY_BITS, read_last_cap

    last = read_last_cap() if this_kernel else max(CAPABILITY_BITS.values())
    return [name for name, bit in CAPABILITY_BITS.items() if bit <= last]


def cgroup_v2() -> bool:
    return cgroupfs.is_v2()


def seccomp_program(plan: Plan, cache_dir: str | None = None) -> bytes | None:
    """The config's seccomp profile compiled by runtime/seccomp.py (the OCI format is Docker's profile format);
    kept under `cache_dir` (--root/seccomp:cache) by profile, capabilities and kernel: podman's default profile takes
    libseccomp tens of milliseconds to compile, every create and exec otherwise."""
    if plan.seccomp is None:
        return None
    caps = frozenset(plan.process.capabilities.get("effective") or [])
    if cache_dir is not None:
        cached = _cached_seccomp(cache_dir, plan.seccomp, caps)
        if cached is not None:
            return cached
    from pyctr.runtime import seccomp

    try:
        if cache_dir is not None:
            from pathlib import Path

            return seccomp.cached_bpf(Path(cache_dir), plan.seccomp, caps)
        return seccomp.compile_bpf(plan.seccomp, caps)
    except Exception as e:  # libseccomp's and the profile's errors alike
        raise LaunchError(f"cannot build the seccomp filter: {e}") from None


def seccomp_cache_name(profile: dict, caps: frozenset[str], machine: str, release: str) -> str:
    """The file runtime/seccomp.cached_bpf keeps this program in: sha256 of its JSON key (jsonlite writes the
    key as json.dumps(..., sort_keys=True) does, so both name the same file). Pure."""
    try:
        from _sha256 import sha256
    except ImportError:
        from hashlib import sha256
    key = jsonlite.dumps([profile, sorted(caps), machine, release], sort_keys=True)
    return sha256(key.encode()).hexdigest() + ".bpf"


def _cached_seccomp(cache_dir: str, profile: dict, caps: frozenset[str]) -> bytes | None:
    """The compiled program from the cache, without importing runtime/seccomp.py (json, dataclasses, pathlib)
    nor libseccomp; None when it has not been compiled yet."""
    uname = os.uname()
    try:
        with open(os.path.join(cache_dir, seccomp_cache_name(profile, caps, uname.machine, uname.release)), "rb") as f:
            return f.read()
    except (FileNotFoundError, TypeError):
        return None


def create(plan: Plan, request: CreateRequest) -> tuple[int, dict[str, str]]:
    """Fork C and bring it to its wait on exec.fifo; return its host PID and its cgroup directories
    (controller -> dir, "" for v2). Raises LaunchError after reaping C."""
    from pyctr.runtime import capabilities, execshim, syscalls

    program = seccomp_program(plan, os.path.join(os.path.dirname(request.state_dir), SECCOMP_CACHE))
    shim = execshim.sealed_shim()
    capabilities.preload()
    preload_child_modules(plan)
    fifo_path = os.path.join(request.state_dir, FIFO)
    _make_exec_fifo(plan, fifo_path)
    fifo = os.open(fifo_path, syscalls.O_PATH | os.O_CLOEXEC)
    join_fds = {kind: _open_namespace(kind, path) for kind, path in plan.namespaces.items() if path}
    console = -1
    if plan.process.terminal:
        console = os.dup(request.console_fd) if request.console_fd >= 0 else _connect_console(request.console_socket)
    floor = 3 + request.preserve_fds  # C's own fds go above the preserved ones
    report_r, report_w = os.pipe2(os.O_CLOEXEC)
    go_r, go_w = os.pipe2(os.O_CLOEXEC)
    child_fds = [_above(fd, floor) for fd in (report_w, go_r, shim, fifo)]
    child_fds.append(_above(console, floor) if console >= 0 else -1)
    try:
        pid = _fork(plan, request, join_fds, child_fds, program)
    finally:
        for fd in [report_w, go_r, fifo, console, *join_fds.values(), *child_fds]:
            if fd >= 0:
                os.close(fd)
    dirs = cgroup_dirs(plan, request.container_id)
    try:
        # Without a user namespace C is the init from the start: its cgroup is made and joined while C unshares
        # (both are kernel work of milliseconds: a network namespace, a v1 cgroup migration), as runc applies
        # cgroups while its init starts. With one, the init is forked later, inside it.
        placed_early = not plan.has_user_namespace()
        if placed_early:
            _place_in_cgroup(plan, dirs, pid)
        pid = _through_user_namespace(plan, pid, report_r, go_w)
        _expect(report_r, READY)
        if not placed_early:
            _place_in_cgroup(plan, dirs, pid)
        _oom_score_adj(plan, pid)
        creating = _hook_state(plan, request.container_id, pid, "creating")
        for kind in ("prestart", "createRuntime"):
            run_hooks(plan.hooks.get(kind, []), creating, kind)
        os.write(go_w, GO + pid.to_bytes(4, "little"))
        _expect(report_r, WAITING)
    except BaseException as e:
        with _ignoring(OSError):
            os.close(go_w)
        reason = _reported(report_r)
        kill_and_reap(pid)
        remove_cgroup(dirs)
        if reason:
            raise LaunchError(reason) from None
        if isinstance(e, LaunchError):
            raise
        line = runtime_error_line(e) if isinstance(e, Exception) else None
        if line is not None:
            raise LaunchError(line) from None
        raise
    finally:
        os.close(report_r)
    os.close(go_w)
    return pid, dirs


def _make_exec_fifo(plan: Plan, path: str) -> None:
    """exec.fifo, which init opens for writing: 0622 whatever the umask, and, as runc does, owned by the
    container's root (with a user namespace, init's uid on the host is its mapped one)."""
    from pyctr.oci.bundle import host_id

    os.mkfifo(path, 0o622)
    os.chmod(path, 0o622)
    if plan.new_namespace("user"):
        uid, gid = host_id(plan.uid_mappings, 0), host_id(plan.gid_mappings, 0)
        os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid)


def _connect_console(path: str) -> int:
    """runc connects to --console-socket in the runtime (the path is the caller's, not the container's)."""
    import socket

    if not path:
        raise LaunchError("cannot allocate tty if pyctr-runtime will detach without setting console socket")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        raise LaunchError(f"cannot connect to the console socket {path}: {e.strerror}") from None
    return sock.detach()


def _above(fd: int, floor: int) -> int:
    import fcntl

    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor)


def _open_namespace(kind: str, path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise LaunchError(f"cannot open {kind} namespace {path}: {e.strerror}") from None


def preload_child_modules(plan: Plan) -> None:
    """What C imports after seal_imports (pivot_root makes the import path the container's), loaded now; only
    what this plan needs: subprocess and socket alone cost a create more than its mounts."""
    import fcntl  # noqa: F401
    import resource  # noqa: F401

    import pyctr.runtime.mountinfo  # noqa: F401  (rootfs reads the cgroup mounts)
    import pyctr.runtime.process.sequence  # noqa: F401  (find_executable, seal_imports)
    import pyctr.runtime.rootfs  # noqa: F401

    if plan.process.terminal:
        import socket  # noqa: F401
        import termios  # noqa: F401

        import pyctr.runtime.process.console  # noqa: F401  (open_container_pty)
    if plan.hooks.get("startContainer") or plan.hooks.get("createContainer"):
        import subprocess  # noqa: F401


def _fork(plan: Plan, request: CreateRequest, join_fds: dict[str, int], child_fds: list[int],
          program: bytes | None) -> int:
    from pyctr.runtime import syscalls

    if plan.has_user_namespace():
        # C forks the init inside the user namespace and exits: as a child subreaper, M (run's wait, create's
        # failure path) gets the init as its own child; once M exits, the caller's subreaper does.
        syscalls.prctl(syscalls.PR_SET_CHILD_SUBREAPER, 1)
        pid = os.fork()
        if pid == 0:
            _child(plan, request, join_fds, child_fds, program)
        return pid
    own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if "pid" in join_fds:
            syscalls.setns(join_fds["pid"], syscalls.CLONE_NEWPID)
        elif plan.new_namespace("pid"):
            syscalls.unshare(syscalls.CLONE_NEWPID)
        pid = os.fork()
        if pid == 0:
            _child(plan, request, join_fds, child_fds, program)
        syscalls.setns(own, syscalls.CLONE_NEWPID)
    finally:
        os.close(own)
    return pid


def _through_user_namespace(plan: Plan, first: int, report_r: int, go_w: int) -> int:
    """With a user namespace: write the maps of the one C made (runc writes them from the parent, after
    clone), then learn the host PID of the init C forked inside it and reap C. Returns the init's PID."""
    if not plan.has_user_namespace():
        return first
    from pyctr.oci.bundle import id_map_text

    if plan.new_namespace("user"):
        _expect(report_r, USERNS)
        # M is root in the parent namespace: no "deny" in setgroups is needed (runc writes it for rootless only).
        _write_proc(f"/proc/{first}/uid_map", id_map_text(plan.uid_mappings))
        _write_proc(f"/proc/{first}/gid_map", id_map_text(plan.gid_mappings))
        os.write(go_w, MAPPED)
    message = os.read(report_r, 5)
    if message[:1] != INIT_PID or len(message) != 5:
        raise LaunchError(_decode_report(message + _read_all(report_r)))
    with _ignoring(ChildProcessError):
        os.waitpid(first, 0)
    return int.from_bytes(message[1:], "little")


def _expect(report_r: int, want: bytes) -> None:
    got = os.read(report_r, 1)
    if got != want:
        raise LaunchError(_decode_report(got + _read_all(report_r)))


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _reported(report_r: int) -> str:
    """What C reported before it died (after M's own step failed and closed the go pipe), if anything."""
    import select

    if not select.select([report_r], [], [], 2.0)[0]:
        return ""
    data = _read_all(report_r)
    return _decode_report(data) if data.startswith(b"E") else ""


def _decode_report(data: bytes) -> str:
    if data.startswith(b"E"):
        with _ignoring(ValueError):
            report = jsonlite.loads(data[1:])
            if isinstance(report, dict):
                return str(report.get("message") or "container init failed")
    return "container init exited before it was ready, without saying why"


def kill_and_reap(pid: int) -> None:
    with _ignoring(ProcessLookupError):
        os.kill(pid, SIGKILL)
    with _ignoring(ChildProcessError):
        os.waitpid(pid, 0)


def _hook_state(plan: Plan, container_id: str, pid: int, status: str) -> dict:
    from pyctr.oci import SUPPORTED_OCI

    return {"ociVersion": SUPPORTED_OCI, "id": container_id, "status": status, "pid": pid, "bundle": plan.bundle,
            "annotations": plan.annotations}


def run_hooks(hooks: list[Hook], state: dict, kind: str) -> None:
    """Run each hook with the state on stdin; raises LaunchError naming the hook (runc's message)."""
    if not hooks:
        return
    import subprocess

    payload = jsonlite.dumps(state).encode()
    for number, hook in enumerate(hooks):
        env = dict(item.split("=", 1) for item in hook.env if "=" in item)
        try:
            done = subprocess.run(list(hook.args) or [hook.path], executable=hook.path, input=payload, env=env,
                                  capture_output=True, timeout=hook.timeout, close_fds=True)
        except subprocess.TimeoutExpired:
            raise LaunchError(f"error running {kind} hook #{number}: timeout after {hook.timeout} seconds") from None
        except OSError as e:
            raise LaunchError(f"error running {kind} hook #{number}: {hook.path}: {e.strerror}") from None
        if done.returncode != 0:
            raise LaunchError(f"error running {kind} hook #{number}: exit status {done.returncode}, stdout: "
                              f"{done.stdout.decode(errors='replace')}, stderr: {done.stderr.decode(errors='replace')}")


def _oom_score_adj(plan: Plan, pid: int) -> None:
    value = plan.process.oom_score_adj
    if value is None:
        return
    try:
        with open(f"/proc/{pid}/oom_score_adj", "w") as f:
            f.write(str(value))
    except OSError as e:
        raise LaunchError(f"cannot set oomScoreAdj {value}: {e.strerror} (lowering it needs CAP_SYS_RESOURCE)") \
            from None


# ----------------------------------------------------------------------------------------------- cgroups


def cgroup_dirs(plan: Plan, container_id: str) -> dict[str, str]:
    """controller -> the container's directory (v1: every mounted controller; v2: {"": dir})."""
    from pyctr.oci.resources import cgroup_relative_path

    v1, _unified = cgroupfs.mounts()
    controllers = list(v1) or [""]
    return cgroupfs.container_dirs({c: cgroup_relative_path(plan.cgroups_path, container_id, cgroupfs.caller_cgroup(c))
                                    for c in controllers})


def _place_in_cgroup(plan: Plan, dirs: dict[str, str], pid: int) -> None:
    """Make the cgroup directories, join C, then write linux.resources (runc: Apply, then Set)."""
    from pyctr.oci import resources

    cgroupfs.make_and_join(dirs, pid)
    writes = resources.plan_v2(plan.resources) if cgroupfs.is_v2() else resources.plan_v1(plan.resources, plan.devices)
    for controller, name, value in writes:
        directory = dirs.get(controller)
        if directory is None:
            raise LaunchError(f"linux.resources needs the {controller} cgroup controller, which is not mounted")
        cgroupfs.write_value(directory, name, value)


def update_resources(dirs: dict[str, str], resources_doc: dict) -> None:
    """`update`: write the given linux.resources to a running container's cgroup."""
    from pyctr.oci import resources

    # Device rules stay as created: rewriting them (deny all, then allow) on a running container would refuse
    # its devices for a moment; callers (containerd's update) resend the whole document, devices included.
    wanted = {key: value for key, value in resources_doc.items() if key != "devices"}
    writes = resources.plan_v2(wanted) if "" in dirs else resources.plan_v1(wanted)
    for controller, name, value in writes:
        if controller in dirs:
            cgroupfs.write_value(dirs[controller], name, value)


def cgroup_pids(dirs: dict[str, str]) -> list[int]:
    return cgroupfs.pids(dirs)


def signal_all(dirs: dict[str, str], signum: int) -> None:
    """kill --all: every process of the cgroup, frozen meanwhile so that none forks away."""
    freeze(dirs, True)
    try:
        for pid in cgroup_pids(dirs):
            with _ignoring(ProcessLookupError):
                os.kill(pid, signum)
    finally:
        freeze(dirs, False)


def freeze(dirs: dict[str, str], frozen: bool) -> bool:
    """pause/resume through the freezer (v1) or cgroup.freeze (v2)."""
    from pathlib import Path

    from pyctr.runtime.cgroups import freezer

    if "" in dirs:
        directory, on, off = Path(dirs[""]), freezer.freeze_v2, freezer.thaw_v2
    elif "freezer" in dirs:
        directory, on, off = Path(dirs["freezer"]), freezer.freeze_v1, freezer.thaw_v1
    else:
        return False
    if not directory.is_dir():
        return False
    if frozen:
        return on(directory)
    off(directory)
    return True


def remove_cgroup(dirs: dict[str, str]) -> None:
    """Kill what is left and remove the directories (never their parents: those are the caller's)."""
    cgroupfs.remove(dirs)


# ------------------------------------------------------------------------------------------------ C's side


def _child(plan: Plan, request: CreateRequest, join_fds: dict[str, int], child_fds: list[int],
           program: bytes | None) -> None:
    report = child_fds[0]
    code = 1
    try:
        _init(plan, request, join_fds, child_fds, program)
    except BaseException as e:  # never unwind into M's code
        message = runtime_error_line(e) if isinstance(e, Exception) else None
        if message is None:
            message = f"{e.strerror}" + (f": {e.filename}" if e.filename else "") if isinstance(e, OSError) \
                and e.strerror else str(e) or type(e).__name__
        _say(report, b"E" + jsonlite.dumps({"message": message}).encode())
        with _ignoring(OSError):
            os.write(2, f"pyctr-runtime init: {message}\n".encode())
    finally:
        os._exit(code)


def close_inherited(keep: set[int]) -> None:
    """Close what C inherited from `create` besides `keep`: above all the state directory's lock, which
    `start` must be able to take while C waits on exec.fifo (flock belongs to the open file)."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            with _ignoring(OSError):
                os.close(fd)


def _say(fd: int, data: bytes) -> None:
    with _ignoring(OSError):
        os.write(fd, data)


def _init(plan: Plan, request: CreateRequest, join_fds: dict[str, int], child_fds: list[int],
          program: bytes | None) -> None:
    from pyctr.runtime import capabilities, syscalls
    from pyctr.runtime.process.sequence import find_executable, seal_imports

    report, go, shim, fifo, console_channel = child_fds
    syscalls.set_parent_death_signal(SIGKILL)
    close_inherited({*range(3 + request.preserve_fds), *child_fds, *join_fds.values()})
    capabilities.set_dumpable(False)
    os.setsid()
    _enter_namespaces(plan, join_fds, report, go)
    os.write(report, READY)
    go_message = os.read(go, 5)
    if go_message[:1] != GO or len(go_message) != 5:
        os._exit(1)  # M gave up and says why
    host_pid = int.from_bytes(go_message[1:], "little")
    os.close(go)
    if plan.new_namespace("cgroup"):
        syscalls.unshare(syscalls.CLONE_NEWCGROUP)
    if plan.new_namespace("network"):
        syscalls.bring_loopback_up()
    seal_imports()
    console = _build_root(plan, request, console_channel, host_pid)
    if plan.new_namespace("uts") or plan.joins_namespace("uts"):
        if plan.hostname is not None:
            syscalls.sethostname(plan.hostname)
        if plan.domainname is not None:
            _write_proc("/proc/sys/kernel/domainname", plan.domainname)
    for key, value in plan.sysctl.items():
        _write_proc("/proc/sys/" + key.replace(".", "/"), value)
    _restrict_paths(plan)
    _apply_rlimits(plan)
    if plan.process.umask is not None:
        os.umask(plan.process.umask)
    else:
        os.umask(0o022)
    _enter_cwd(plan.process.cwd)
    if plan.root_readonly:
        from pyctr.runtime.rootfs import remount_root_readonly

        remount_root_readonly()
    if console is not None:
        import fcntl
        import termios

        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    env = list(plan.process.env)
    executable = find_executable(plan.process.args[0], _path_of(env))
    if program and not plan.process.no_new_privileges:
        syscalls.seccomp_set_filter(program)  # while C still has CAP_SYS_ADMIN (runc's order)
    _set_user_and_capabilities(plan)
    if program and plan.process.no_new_privileges:
        syscalls.seccomp_set_filter(program)
    syscalls.set_parent_death_signal(0)  # C outlives `create` (the caller's subreaper adopts it)
    os.write(report, WAITING)
    _wait_for_start(fifo)
    _run_start_hooks(plan, request.container_id)
    _reset_signals()
    _exec(executable, plan, env, report, shim, request.preserve_fds)


def _enter_namespaces(plan: Plan, join_fds: dict[str, int], report: int, go: int) -> None:
    """Join the namespaces given by path, unshare the new ones (cgroup comes later, once in the cgroup).

    With a user namespace, runc's order: a joined one first; or, for a new one, the joins (with the host's
    privileges), then the user namespace, which M maps, then the other new namespaces, owned by it. The init
    is then forked here, inside it (a PID namespace belongs to the user namespace it is made in), and this
    process exits."""
    from pyctr.runtime import syscalls

    if plan.joins_namespace("user"):
        syscalls.setns(join_fds["user"], syscalls.CLONE_NEWUSER)
        _become_namespace_root()
    for kind in _JOIN_ORDER:
        if kind in join_fds:
            syscalls.setns(join_fds[kind], getattr(syscalls, _CLONE_FLAG[kind]))
    if plan.new_namespace("user"):
        syscalls.unshare(syscalls.CLONE_NEWUSER)
        os.write(report, USERNS)
        if os.read(go, 1) != MAPPED:
            os._exit(1)  # M gave up and says why
        _become_namespace_root()
    flags = 0
    for kind in _JOIN_ORDER:
        if plan.new_namespace(kind) and kind != "cgroup":
            flags |= getattr(syscalls, _CLONE_FLAG[kind])
    if plan.has_user_namespace() and plan.new_namespace("pid"):
        flags |= syscalls.CLONE_NEWPID
    syscalls.unshare(flags)
    if plan.has_user_namespace():
        if "pid" in join_fds:
            syscalls.setns(join_fds["pid"], syscalls.CLONE_NEWPID)
        _fork_init(report)


def _become_namespace_root() -> None:
    """uid and gid 0 of the user namespace just entered (its root keeps every capability in it); files C
    creates before the process's own user is set (in /dev, mount points) then belong to a mapped owner."""
    try:
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    except OSError as e:
        raise LaunchError(f"cannot become root of the user namespace (is 0 mapped?): {e.strerror}") from None
    with _ignoring(OSError):
        os.setgroups([])  # the host's groups are unmapped inside


def _fork_init(report: int) -> None:
    """Fork the container's init (PID 1 of a new PID namespace); say its host PID to M, and exit. Returns in
    the init only."""
    pid = os.fork()
    if pid:
        os.write(report, INIT_PID + pid.to_bytes(4, "little"))
        os._exit(0)
    os.setsid()  # the init leads its own session (a console becomes its controlling terminal)


def _path_of(env: list[str]) -> str:
    for item in env:
        if item.startswith("PATH="):
            return item[5:]
    return ""


def _write_proc(path: str, value: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as e:
        raise LaunchError(f"cannot write {value!r} to {path}: {e.strerror}") from None


def _apply_rlimits(plan: Plan) -> None:
    """setrlimit each limit; above this process's hard limit it needs CAP_SYS_RESOURCE: say which limit."""
    import resource

    for limit in plan.process.rlimits:
        number = getattr(resource, limit.type, None)
        if number is None:
            raise LaunchError(f"rlimit {limit.type} is unknown to this system")
        try:
            resource.setrlimit(number, (limit.soft, limit.hard))
        except (ValueError, OSError) as e:
            current = resource.getrlimit(number)[1]
            raise LaunchError(f"error setting rlimit {limit.type} to soft {limit.soft}, hard {limit.hard}: {e} "
                              f"(the hard limit here is {current}; raising it needs CAP_SYS_RESOURCE)") from None


def _enter_cwd(cwd: str) -> None:
    try:
        os.makedirs(cwd, mode=0o755, exist_ok=True)
        os.chdir(cwd)
    except OSError as e:
        raise LaunchError(f"chdir to cwd (\"{cwd}\") set in config.json failed: {e.strerror}") from None


def _set_user_and_capabilities(plan: Plan) -> None:
    from pyctr.runtime import capabilities

    process = plan.process
    caps = process.capabilities
    capabilities.drop_bounding_set(caps.get("bounding") or [])
    capabilities.keep_capabilities_across_setuid(True)
    try:
        os.setgroups(process.additional_gids)
    except OSError as e:
        raise LaunchError(f"setgroups {process.additional_gids}: {e.strerror}") from None
    os.setgid(process.gid)
    os.setuid(process.uid)
    capabilities.keep_capabilities_across_setuid(False)
    capabilities.set_capability_sets(caps.get("effective") or [], caps.get("permitted") or [],
                                     caps.get("inheritable") or [], caps.get("ambient") or [])
    if process.no_new_privileges:
        capabilities.set_no_new_privileges()


def _wait_for_start(fifo: int) -> None:
    """Block until `start` opens exec.fifo for reading, then tell it we are through (runc's handshake)."""
    fd = os.open(f"/proc/self/fd/{fifo}", os.O_WRONLY | os.O_CLOEXEC)
    os.write(fd, b"0")
    os.close(fd)
    os.close(fifo)


def _run_start_hooks(plan: Plan, container_id: str) -> None:
    hooks = plan.hooks.get("startContainer", [])
    if hooks:
        run_hooks(hooks, _hook_state(plan, container_id, os.getpid(), "created"), "startContainer")


def _reset_signals() -> None:
    # _signal, the built-in module under `signal`: importable after seal_imports, and without the enum
    # classes `signal` builds at import (enum, functools, collections: ~2 ms of each create).
    import _signal

    for number in (_signal.SIGPIPE, _signal.SIGINT, _signal.SIGXFSZ, _signal.SIGTERM, _signal.SIGHUP,
                   _signal.SIGCHLD):
        with _ignoring(OSError, ValueError):
            _signal.signal(number, _signal.SIG_DFL)
    _signal.pthread_sigmask(_signal.SIG_SETMASK, [])


def _exec(executable: str, plan: Plan, env: list[str], report: int, shim: int, preserve: int) -> None:
    """Close every fd but 0-2, the preserved ones, the report pipe and the shim; exec through the shim."""
    import fcntl

    from pyctr.runtime import execshim, syscalls

    first_free = 3 + preserve
    report_at = fcntl.fcntl(report, fcntl.F_DUPFD_CLOEXEC, first_free + 2)
    shim_at = fcntl.fcntl(shim, fcntl.F_DUPFD_CLOEXEC, first_free + 2)
    os.dup2(report_at, first_free, inheritable=False)
    os.dup2(shim_at, first_free + 1, inheritable=False)
    syscalls.close_range(first_free + 2)
    for fd in range(3, first_free):
        with _ignoring(OSError):
            os.set_inheritable(fd, True)
    environment = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    execshim.exec_command(first_free + 1, first_free, executable, plan.process.args, environment)


# ------------------------------------------------------------------------- C's root (before and after pivot)


class RootfsMount:
    """One mount as runtime/rootfs.apply_mount takes it (runtime/spec's Mount has these fields; importing that
    module would cost every create its dataclasses)."""

    __slots__ = ("destination", "type", "source", "options", "user_source")

    def __init__(self, destination: str, type: str, source: str, options: list[str]) -> None:  # noqa: A002
        self.destination, self.type, self.source, self.options = destination, type, source, options
        self.user_source = False  # config.json's sources are the caller's to choose (no pyctr state to guard)


def _build_root(plan: Plan, request: CreateRequest, console_channel: int, host_pid: int) -> int | None:
    """Mounts, devices and pivot_root; the console (after pivot: from the container's devpts, as runc).
    Returns the console slave fd when a terminal was made (masked and read-only paths: _restrict_paths)."""
    from pyctr.runtime import rootfs, syscalls

    propagation = {"": "MS_SLAVE", "slave": "MS_SLAVE", "rslave": "MS_SLAVE", "private": "MS_PRIVATE",
                   "rprivate": "MS_PRIVATE", "shared": "MS_SHARED", "rshared": "MS_SHARED",
                   "unbindable": "MS_UNBINDABLE", "runbindable": "MS_UNBINDABLE"}[plan.rootfs_propagation]
    syscalls.mount(None, "/", None, getattr(syscalls, propagation) | syscalls.MS_REC)
    root = os.path.realpath(plan.root)
    if not os.path.isdir(root):
        raise LaunchError(f"rootfs ({plan.root}) does not exist")
    syscalls.mount(root, root, None, syscalls.MS_BIND | syscalls.MS_REC)
    dev_is_tmpfs = False
    with rootfs.opened(os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)) as root_fd:
        for mount in plan.mounts:
            options = [o for o in mount.options if o != "tmpcopyup"]
            kind = "bind" if mount.is_bind else mount.type
            try:
                rootfs.apply_mount(root_fd, root, RootfsMount(mount.destination, kind, mount.source, options))
            except OSError as e:
                raise LaunchError(f"error mounting {mount.source!r} to rootfs at {mount.destination!r}: "
                                  f"{e.strerror or e}") from None
            if mount.destination == "/dev" and not mount.is_bind:
                dev_is_tmpfs = True
        bind = plan.has_user_namespace()
        if dev_is_tmpfs:
            _make_devices(root_fd, plan.devices, bind=bind)
        elif plan.devices:
            _make_devices(root_fd, plan.devices, defaults=False, bind=bind)
    if plan.rootfs_propagation in ("shared", "rshared", "slave", "rslave", "private", "rprivate"):
        syscalls.mount(None, root, None, getattr(syscalls, propagation)
                       | (syscalls.MS_REC if plan.rootfs_propagation.startswith("r") else 0))
    hooks = plan.hooks.get("createContainer", [])
    if hooks:  # in the container's namespaces, mounts made, before pivot_root: the host's paths (runtime-spec)
        run_hooks(hooks, _hook_state(plan, request.container_id, host_pid, "creating"), "createContainer")
    if request.no_pivot:
        os.chdir(root)
        syscalls.mount(root, "/", None, syscalls.MS_MOVE)
        os.chroot(".")
        os.chdir("/")
    else:
        rootfs.pivot_into(root)
    return _console(console_channel) if console_channel >= 0 else None


def _restrict_paths(plan: Plan) -> None:
    """Read-only and masked paths, after the hostname and sysctls are written (runc's order: a config's
    readonlyPaths usually holds /proc/sys, which would refuse every sysctl)."""
    from pyctr.runtime import rootfs

    with rootfs.opened(os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)) as new_root:
        if plan.readonly_paths:
            rootfs.readonly_paths(new_root, plan.readonly_paths)
        if plan.masked_paths:
            rootfs.mask_paths(new_root, plan.masked_paths)


def _make_devices(root_fd: int, devices: list[Device], defaults: bool = True, bind: bool = False) -> None:
    """The config's device nodes, runc's defaults that it does not name, and /dev's links. In a user namespace
    (`bind`) mknod is refused: each node is the host's, bind-mounted on an empty file (runc's way)."""
    from pyctr.oci.bundle import Device
    from pyctr.runtime import rootfs

    wanted = list(devices)
    named = {d.path for d in devices}
    if defaults:
        wanted += [Device(path, "c", major, minor, 0o666, 0, 0) for path, major, minor in DEFAULT_DEVICES
                   if path not in named]
    kinds = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}
    for device in wanted:
        parent, name = os.path.split(device.path)
        with rootfs.opened(rootfs.ensure_in_root(root_fd, parent, "dir", follow=False)) as directory:
            with _ignoring(FileNotFoundError):
                os.unlink(name, dir_fd=directory)
            if bind:
                _bind_host_device(directory, name, device.path)
                continue
            os.mknod(name, kinds[device.kind] | (device.mode & 0o7777), os.makedev(device.major, device.minor),
                     dir_fd=directory)
            os.chmod(name, device.mode & 0o7777, dir_fd=directory, follow_symlinks=False)
            os.chown(name, device.uid, device.gid, dir_fd=directory, follow_symlinks=False)
    if not defaults:
        return
    with rootfs.opened(rootfs.resolve_in_root(root_fd, "/dev", follow=False)) as dev:
        for target, link in DEV_LINKS:
            name = os.path.basename(link)
            if name == "ptmx":
                with _ignoring(FileNotFoundError):
                    os.unlink(name, dir_fd=dev)
            with _ignoring(FileExistsError):
                os.symlink(target, name, dir_fd=dev)


def _bind_host_device(directory: int, name: str, host_path: str) -> None:
    from pyctr.runtime import rootfs, syscalls

    os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600, dir_fd=directory))
    with rootfs.opened(os.open(name, syscalls.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=directory)) as target:
        try:
            syscalls.mount(host_path, rootfs.fd_path(target), None, syscalls.MS_BIND)
        except OSError as e:
            raise LaunchError(f"cannot bind-mount device {host_path} (user namespace): {e.strerror or e}") from None


def _console(channel_fd: int) -> int:
    """runc's setupConsole: a pty from the container's /dev/pts/ptmx, its master sent to --console-socket
    with SCM_RIGHTS, its slave on /dev/console and on 0, 1 and 2."""
    import socket

    from pyctr.runtime.process.console import open_container_pty
    from pyctr.runtime.rootfs import bind_console

    master, slave = open_container_pty()
    try:
        bind_console(slave)
        with socket.socket(fileno=channel_fd) as channel:
            socket.send_fds(channel, [b"/dev/ptmx"], [master])
    finally:
        os.close(master)
    for target in (0, 1, 2):
        os.dup2(slave, target, inheritable=True)
    os.close(slave)
    return 0


def relay_terminal(master: int, pid: int) -> int:
    """`run -t` in the foreground: relay our terminal and the container's pty until init exits."""
    from pyctr.runtime.tty import run_terminal_session

    return run_terminal_session(master, pid)


# ------------------------------------------------------------------------------------------------- exec

_EXEC_JOIN = (("user", "CLONE_NEWUSER"), ("ipc", "CLONE_NEWIPC"), ("uts", "CLONE_NEWUTS"), ("net", "CLONE_NEWNET"),
              ("cgroup", "CLONE_NEWCGROUP"), ("mnt", "CLONE_NEWNS"))


def exec_process(init_pid: int, cgroup: dict[str, str], plan: Plan, process, console_socket: str,
                 root: str | None = None) -> int:
    """Start `process` (a ProcessPlan) in the namespaces and cgroup of the container whose init is `init_pid`;
    return its host PID once it exec'd (it is our child). Raises LaunchError with what went wrong."""
    from pyctr.oci.bundle import Plan
    from pyctr.runtime import capabilities, execshim, syscalls

    exec_plan = Plan(plan.oci_version, plan.bundle, plan.root, False, process, seccomp=plan.seccomp)
    program = seccomp_program(exec_plan, os.path.join(root, SECCOMP_CACHE) if root is not None else None)
    shim = execshim.sealed_shim()
    capabilities.preload()
    preload_child_modules(exec_plan)
    namespaces = {}
    try:
        for name, flag in (*_EXEC_JOIN, ("pid", "CLONE_NEWPID")):
            if os.readlink(f"/proc/{init_pid}/ns/{name}") != os.readlink(f"/proc/self/ns/{name}"):
                namespaces[name] = (os.open(f"/proc/{init_pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC),
                                    getattr(syscalls, flag))
    except OSError as e:
        for fd, _ in namespaces.values():
            os.close(fd)
        raise LaunchError(f"cannot join the namespaces of process {init_pid}: {e.strerror}") from None
    console = _connect_console(console_socket) if process.terminal else -1
    report_r, report_w = os.pipe2(os.O_CLOEXEC)
    own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if "pid" in namespaces:
            syscalls.setns(namespaces["pid"][0], syscalls.CLONE_NEWPID)
        pid = os.fork()
        if pid == 0:
            _exec_child(exec_plan, cgroup, namespaces, (report_w, shim, console), program)
        syscalls.setns(own, syscalls.CLONE_NEWPID)
    finally:
        for fd in [own, report_w, *(fd for fd, _ in namespaces.values())] + ([console] if console >= 0 else []):
            os.close(fd)
    try:
        message = _read_all(report_r)
    finally:
        os.close(report_r)
    if message:
        with _ignoring(ChildProcessError):
            os.waitpid(pid, 0)
        raise LaunchError(_exec_failure(message, process.args[0]))
    return pid


def _exec_failure(message: bytes, command: str) -> str:
    with _ignoring(ValueError):
        report = jsonlite.loads(message[1:])
        if isinstance(report, dict) and "errno" in report:
            return f"exec failed: exec: \"{command}\": {os.strerror(int(report['errno'])).lower()}"
    return _decode_report(message)


def _exec_child(plan: Plan, cgroup: dict[str, str], namespaces: dict, fds: tuple[int, int, int],
                program: bytes | None) -> None:
    report, shim, console = fds
    try:
        _exec_init(plan, cgroup, namespaces, report, shim, console, program)
    except BaseException as e:
        message = runtime_error_line(e) if isinstance(e, Exception) else None
        if message is None:
            message = (e.strerror or str(e)) if isinstance(e, OSError) else str(e) or type(e).__name__
        _say(report, b"E" + jsonlite.dumps({"message": message}).encode())
    finally:
        os._exit(1)


def _exec_init(plan: Plan, cgroup: dict[str, str], namespaces: dict, report: int, shim: int, console: int,
               program: bytes | None) -> None:
    from pyctr.runtime import capabilities, syscalls
    from pyctr.runtime.process.sequence import find_executable, seal_imports

    capabilities.set_dumpable(False)
    os.setsid()
    for directory in dict.fromkeys(cgroup.values()):
        if os.path.isdir(directory):
            cgroupfs.write_value(directory, "cgroup.procs", os.getpid())
    for name, _ in _EXEC_JOIN:
        if name in namespaces:
            fd, flag = namespaces[name]
            syscalls.setns(fd, flag)
            if name == "user":  # the user namespace first: the others belong to it
                _become_namespace_root()
    seal_imports()
    if console >= 0:
        _exec_console(console)
    _apply_rlimits(plan)
    os.umask(plan.process.umask if plan.process.umask is not None else 0o022)
    _enter_cwd(plan.process.cwd)
    if console >= 0:
        import fcntl
        import termios

        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    env = list(plan.process.env)
    executable = find_executable(plan.process.args[0], _path_of(env))
    if program and not plan.process.no_new_privileges:
        syscalls.seccomp_set_filter(program)
    _set_user_and_capabilities(plan)
    if program and plan.process.no_new_privileges:
        syscalls.seccomp_set_filter(program)
    _reset_signals()
    _exec(executable, plan, env, report, shim, 0)


def _exec_console(channel_fd: int) -> None:
    """exec -t: a pty from the container's devpts, master to --console-socket, slave on 0-2 (no /dev/console)."""
    import socket

    from pyctr.runtime.process.console import open_container_pty

    master, slave = open_container_pty()
    try:
        with socket.socket(fileno=channel_fd) as channel:
            socket.send_fds(channel, [b"/dev/ptmx"], [master])
    finally:
        os.close(master)
    for target in (0, 1, 2):
        os.dup2(slave, target, inheritable=True)
    os.close(slave)
