"""Each runc verb: read the state, call launch (the doing), write the state, print what runc prints.

What callers run for every container (create, start, state, kill, delete, run) imports only built-in modules at
the top of this file: paths are strings, JSON is jsonlite's, `signal` and `contextlib` are left out (each a
module import of its own, with enum behind signal), and everything else is imported where a verb needs it.
"""

from __future__ import annotations

import os
import sys
import time

from pyctr.oci import jsonlite
from pyctr.oci import state as st
from pyctr.oci.cli import SIGNALS, CliError, Invocation, parse_signal
from pyctr.oci.errors import LaunchError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from pyctr.oci.bundle import Plan


def _now_rfc3339() -> str:
    """Go's time.RFC3339Nano in UTC (trailing zeros of the fraction trimmed)."""
    ns = time.time_ns()
    seconds, fraction = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    digits = f"{fraction:09d}".rstrip("0")
    return f"{base}.{digits}Z" if digits else f"{base}Z"


def read_config(bundle: str) -> dict:
    from pyctr.oci.errors import ConfigError
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            return jsonlite.loads(f.read())
    except FileNotFoundError:
        raise ConfigError("JSON specification file config.json not found") from None
    except OSError as e:
        raise ConfigError(f"open {path}: {e.strerror}") from None
    except ValueError as e:
        raise ConfigError(f"config.json: {e}") from None


def _known_caps() -> frozenset[str]:
    from pyctr.oci import launch

    return frozenset(launch.capability_names())


def _apparmor_enabled() -> bool:
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read().strip() == "Y"
    except OSError:
        return False


def load_plan(bundle: str) -> tuple[dict, Plan]:
    from pyctr.oci.bundle import plan_from_config

    config = read_config(bundle)
    plan = plan_from_config(config, bundle, known_caps=_known_caps(), apparmor_enabled=_apparmor_enabled())
    refuse_host_network_sysctls(plan)
    return config, plan


def refuse_host_network_sysctls(plan: Plan) -> None:
    """runc's validator: a net.* sysctl in a network namespace joined by path that is the caller's own (say
    /proc/PID/ns/net of a host process) would be written on the host; refused with runc's words. (The pure
    plan only knows a path; whether it is ours needs a stat of both.)"""
    path = plan.namespaces.get("network")
    if not path or not any(key.startswith("net.") for key in plan.sysctl):
        return
    try:
        joined, own = os.stat(path), os.stat("/proc/self/ns/net")
    except OSError:
        return  # joining it fails later with its own error
    if (joined.st_dev, joined.st_ino) == (own.st_dev, own.st_ino):
        from pyctr.oci.errors import ConfigError

        key = next(key for key in plan.sysctl if key.startswith("net."))
        raise ConfigError(f'sysctl "{key}" not allowed in host network namespace')


def write_pid_file(path: str, pid: int) -> None:
    """runc's createPidFile: write a temporary file beside it, then rename (readers never see it half-written)."""
    path = os.path.abspath(path)
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".{name}")
    with open(tmp, "w") as f:
        f.write(str(pid))
    os.rename(tmp, path)


def create(inv: Invocation, root: str, console_fd: int = -1) -> tuple[str, st.Record]:
    from pyctr.oci import launch

    container_id = st.check_id(inv.args[0])
    bundle = os.path.abspath(str(inv.options.get("bundle") or "."))
    config, plan = load_plan(bundle)
    for warning in plan.warnings:
        log_warning(warning)
    try:
        preserve = int(str(inv.options.get("preserve_fds") or "0"))
    except ValueError:
        raise CliError(f"invalid value \"{inv.options.get('preserve_fds')}\" for flag -preserve-fds") from None
    directory = st.make_dir(root, container_id)
    try:
        with st.locked(directory):
            request = launch.CreateRequest(container_id, directory, str(inv.options.get("console_socket") or ""),
                                           bool(inv.options.get("no_pivot")), preserve, console_fd)
            pid, dirs = launch.create(plan, request)
            record = st.Record(container_id, pid, st.process_start_time(pid)[0], bundle, plan.root,
                               _now_rfc3339(), plan.annotations, dirs, config.get("hooks") or {},
                               config=os.path.join(bundle, "config.json"))
            st.write(directory, record)
            if inv.options.get("pid_file"):
                write_pid_file(str(inv.options["pid_file"]), pid)
    except BaseException:
        _remove_dir(directory)
        raise
    return directory, record


def _remove_dir(directory: str) -> None:
    for name in (st.STATE_FILE, st.FIFO, st.LOCK):
        try:
            os.unlink(os.path.join(directory, name))
        except FileNotFoundError:
            pass
    try:
        os.rmdir(directory)
    except OSError:
        pass


def start(inv: Invocation, root: str) -> int:
    directory, record = st.load(root, inv.args[0])
    with st.locked(directory):
        current = st.status(directory, record)
        if current == "stopped":
            raise st.StateError("cannot start a container that has stopped")
        if current != "created":
            raise st.StateError("cannot start an already running container")
        _release(directory, record)
    _poststart(directory, record)
    return 0


def _release(directory: str, record: st.Record) -> None:
    """Open exec.fifo for reading: init, blocked opening it for writing, writes one byte and goes on to exec."""
    fifo = os.path.join(directory, st.FIFO)
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        while True:
            try:
                data = os.read(fd, 1)
            except BlockingIOError:
                data = None
            if data:
                break
            if not st.alive(record):
                raise st.StateError("container init exited before it was started")
            import select

            select.select([fd], [], [], 0.01)
    finally:
        os.close(fd)
    try:
        os.unlink(fifo)
    except FileNotFoundError:
        pass


def _poststart(directory: str, record: st.Record) -> None:
    if not record.hooks.get("poststart"):
        return
    from pyctr.oci import launch
    from pyctr.oci.bundle import plan_hooks

    hooks = plan_hooks(record.hooks).get("poststart", [])
    if hooks:
        try:
            launch.run_hooks(hooks, st.hook_state(directory, record, "running"), "poststart")
        except LaunchError as e:
            log_warning(str(e))


def state(inv: Invocation, root: str) -> int:
    directory, record = st.load(root, inv.args[0])
    print(jsonlite.dumps(st.oci_state(directory, record, _owner(directory)), indent=2))
    return 0


def _owner(directory: str) -> str:
    import pwd

    try:
        uid = os.stat(directory).st_uid
        return pwd.getpwuid(uid).pw_name
    except (OSError, KeyError):
        return ""


def kill(inv: Invocation, root: str) -> int:
    directory, record = st.load(root, inv.args[0])
    signum = parse_signal(inv.args[1] if len(inv.args) > 1 else "SIGTERM")
    if inv.options.get("all"):
        from pyctr.oci import launch

        launch.signal_all(record.cgroup, signum)
        return 0
    if st.status(directory, record) == "stopped":
        raise st.StateError("container not running")
    os.kill(record.pid, signum)
    return 0


def delete(inv: Invocation, root: str) -> int:
    container_id = st.check_id(inv.args[0])
    force = bool(inv.options.get("force"))
    try:
        directory, record = st.load(root, container_id)
    except st.StateError:
        if force and not os.path.exists(os.path.join(root, container_id, st.STATE_FILE)):
            _remove_dir(os.path.join(root, container_id))
            return 0
        raise
    with st.locked(directory):
        current = st.status(directory, record)
        if current in ("running", "paused") and not force:
            raise st.StateError(f"cannot delete container {container_id} that is not stopped: {current}")
        destroy(directory, record)
    return 0


def destroy(directory: str, record: st.Record) -> None:
    """Kill what runs, remove the cgroup, run poststop hooks (warnings only), remove the state directory.
    On `delete`'s path: cgroupfs, not launch (which imports the container launch's modules)."""
    from pyctr.oci import cgroupfs

    if st.alive(record):
        if record.paused:  # a frozen init does not die of SIGKILL until thawed
            from pyctr.oci import launch

            launch.freeze(record.cgroup, False)
        try:
            os.kill(record.pid, SIGNALS["KILL"])
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 5
        while st.alive(record) and time.monotonic() < deadline:
            try:
                os.waitpid(record.pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.001)
    cgroupfs.remove(record.cgroup)
    if record.hooks.get("poststop"):
        from pyctr.oci import launch
        from pyctr.oci.bundle import plan_hooks

        hooks = plan_hooks(record.hooks).get("poststop", [])
        try:
            launch.run_hooks(hooks, st.hook_state(directory, record, "stopped"), "poststop")
        except LaunchError as e:
            log_warning(str(e))
    _remove_dir(directory)


def run(inv: Invocation, root: str) -> int:
    """create + start; in the foreground, wait for init (our child), relay signals, delete unless --keep."""
    detach = bool(inv.options.get("detach"))
    console_pair = None
    if not detach and not inv.options.get("console_socket"):
        bundle = os.path.abspath(str(inv.options.get("bundle") or "."))
        if read_config(bundle).get("process", {}).get("terminal"):
            import socket

            console_pair = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    directory, record = create(inv, root, console_pair[1].fileno() if console_pair else -1)
    if console_pair:
        console_pair[1].close()
    if detach:
        _release_or_destroy(directory, record)
        _poststart(directory, record)
        return 0
    forwarded = _forward_signals(record.pid)
    try:
        _release_or_destroy(directory, record)
        _poststart(directory, record)
        code = _relay_terminal(console_pair[0], record.pid) if console_pair else _wait(record.pid)
    finally:
        _restore_signals(forwarded)
    if not inv.options.get("keep"):
        with st.locked(directory):
            destroy(directory, record)
    return code


def _release_or_destroy(directory: str, record: st.Record) -> None:
    """`run`'s start: an init that died before it (a startContainer hook failed) leaves no state behind."""
    try:
        _release(directory, record)
    except BaseException:
        with st.locked(directory):
            destroy(directory, record)
        raise


def _forward_signals(pid: int) -> dict:
    import _signal as signal  # `signal` without its enum classes (see launch._reset_signals)

    previous = {}

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
                   signal.SIGWINCH):
        previous[signum] = signal.signal(signum, forward)
    return previous


def _restore_signals(previous: dict) -> None:
    import _signal as signal

    for signum, handler in previous.items():
        signal.signal(signum, handler)


def _wait(pid: int) -> int:
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _relay_terminal(channel, pid: int) -> int:
    """run -t without --console-socket: runc relays the container's pty on its own terminal."""
    import socket

    from pyctr.oci import launch

    _, fds, _, _ = socket.recv_fds(channel, 64, 1)
    channel.close()
    if not fds:
        raise st.StateError("container init did not send its console")
    return launch.relay_terminal(fds[0], pid)


def list_(inv: Invocation, root: str) -> int:
    rows = []
    for container_id in st.list_ids(root):
        try:
            directory, record = st.load(root, container_id)
        except st.StateError:
            continue
        rows.append(st.oci_state(directory, record, _owner(directory)))
    fmt = str(inv.options.get("format") or "table")
    if inv.options.get("quiet"):
        print("\n".join(row["id"] for row in rows) + ("\n" if rows else ""), end="")
    elif fmt == "json":
        print(jsonlite.dumps(rows or None))
    elif fmt == "table":
        table = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
        table += [[r["id"], str(r["pid"]), r["status"], r["bundle"], r["created"], r["owner"]] for r in rows]
        print(align_columns(table), end="")
    else:
        raise CliError("invalid format option")
    return 0


def align_columns(rows: list[list[str]], minwidth: int = 12, padding: int = 3) -> str:
    """runc list's tabwriter.NewWriter(os.Stdout, 12, 1, 3, ' ', 0): every column but the last is padded to
    max(minwidth, widest cell + padding). Pure (pyctr's output package would cost `list` its template engine)."""
    widths = [max(minwidth, max(len(row[i]) for row in rows) + padding) for i in range(len(rows[0]) - 1)]
    lines = ["".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)) + row[-1] for row in rows]
    return "".join(line + "\n" for line in lines)


def ps(inv: Invocation, root: str) -> int:
    import subprocess

    from pyctr.oci import launch

    directory, record = st.load(root, inv.args[0])
    pids = launch.cgroup_pids(record.cgroup)
    fmt = str(inv.options.get("format") or "table")
    if fmt == "json":
        print(jsonlite.dumps(pids))
        return 0
    if fmt != "table":
        raise CliError("invalid format option")
    output = subprocess.run(["ps", *(inv.args[1:] or ["-ef"])], capture_output=True, text=True)
    if output.returncode != 0:
        raise st.StateError(f"ps: {output.stderr.strip()}")
    lines = output.stdout.splitlines()
    if not lines:
        return 0
    header = lines[0]
    columns = header.split()
    if "PID" not in columns:
        raise st.StateError("couldn't find PID field in ps output")
    index = columns.index("PID")
    print(header)
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > index and fields[index].isdigit() and int(fields[index]) in pids:
            print(line)
    return 0


def pause(inv: Invocation, root: str) -> int:
    return _set_paused(inv, root, True)


def resume(inv: Invocation, root: str) -> int:
    return _set_paused(inv, root, False)


def _set_paused(inv: Invocation, root: str, paused: bool) -> int:
    from pyctr.oci import launch

    directory, record = st.load(root, inv.args[0])
    with st.locked(directory):
        current = st.status(directory, record)
        if paused and current != "running":
            raise st.StateError("container not running")
        if not paused and current != "paused":
            raise st.StateError("container not paused")
        if not launch.freeze(record.cgroup, paused) and paused:
            raise st.StateError("cannot pause: the freezer controller is not available")
        record.paused = paused
        st.write(directory, record)
    return 0


_UPDATE_FLAGS = {
    "blkio_weight": ("blockIO", "weight"), "cpu_period": ("cpu", "period"), "cpu_quota": ("cpu", "quota"),
    "cpu_share": ("cpu", "shares"), "cpu_rt_period": ("cpu", "realtimePeriod"),
    "cpu_rt_runtime": ("cpu", "realtimeRuntime"), "cpuset_cpus": ("cpu", "cpus"), "cpuset_mems": ("cpu", "mems"),
    "memory": ("memory", "limit"), "memory_reservation": ("memory", "reservation"), "memory_swap": ("memory", "swap"),
    "pids_limit": ("pids", "limit"),
}


def update_document(options: dict, stdin_text: str | None = None) -> dict:
    """`update`'s linux.resources: the --resources file ("-" = stdin) or the flags. Pure but for the file."""
    source = options.get("resources")
    if source:
        if source == "-":
            text = stdin_text
        else:
            with open(str(source)) as f:
                text = f.read()
        try:
            doc = jsonlite.loads(text or "")
        except ValueError as e:
            raise CliError(f"decoding resources: {e}") from None
        if not isinstance(doc, dict):
            raise CliError("decoding resources: not an object")
        return doc
    doc: dict = {}
    for key, (section, name) in _UPDATE_FLAGS.items():
        value = options.get(key)
        if value is None:
            continue
        if name in ("cpus", "mems"):
            doc.setdefault(section, {})[name] = str(value)
            continue
        doc.setdefault(section, {})[name] = _size_or_int(str(value), key)
    return doc


def _size_or_int(text: str, flag: str) -> int:
    if text == "-1":
        return -1
    try:
        return int(text)
    except ValueError:
        pass
    from pyctr.units import ram_in_bytes

    try:
        return ram_in_bytes(text)
    except ValueError:
        raise CliError(f"invalid value for {flag.replace('_', '-')}: {text}") from None


def update(inv: Invocation, root: str) -> int:
    from pyctr.oci import launch

    directory, record = st.load(root, inv.args[0])
    doc = update_document(inv.options, sys.stdin.read() if inv.options.get("resources") == "-" else None)
    if st.status(directory, record) == "stopped":
        raise st.StateError("container not running")
    launch.update_resources(record.cgroup, doc)
    return 0


def spec(inv: Invocation, root: str) -> int:
    from pyctr.oci.defaults import example_spec

    bundle = str(inv.options.get("bundle") or ".")
    path = os.path.join(bundle, "config.json")
    if os.path.exists(path):
        raise CliError("File config.json exists. Remove it first")
    doc = example_spec(_cgroup_v2())
    if inv.options.get("rootless"):
        raise CliError("spec --rootless: rootless containers are not supported by pyctr-runtime")
    with open(path, "w") as f:
        import json

        f.write(json.dumps(doc, indent="\t"))
    return 0


def _cgroup_v2() -> bool:
    from pyctr.oci import launch

    return launch.cgroup_v2()


def features(inv: Invocation, root: str) -> int:
    import platform

    from pyctr.oci import launch
    from pyctr.oci.defaults import features as document

    caps = launch.capability_names(this_kernel=True)
    arch = {"x86_64": ["SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_X86_64"],
            "aarch64": ["SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64"]}.get(platform.machine(), [])
    print(jsonlite.dumps(document(caps, _cgroup_v2(), arch), indent=4))
    return 0


def exec_(inv: Invocation, root: str) -> int:
    from pyctr.oci import launch
    from pyctr.oci.bundle import plan_process

    directory, record = st.load(root, inv.args[0])
    current = st.status(directory, record)
    if current not in ("created", "running"):
        raise st.StateError(f"cannot exec in a {current} container")
    config, plan = load_plan(record.bundle)
    process_doc = exec_process_document(inv.options, inv.args[1:], _read_process_file(inv.options),
                                        config.get("process"))
    process = plan_process(process_doc, _known_caps())
    detach = bool(inv.options.get("detach"))
    console = str(inv.options.get("console_socket") or "")
    if process.terminal and not console and detach:
        raise CliError("cannot allocate tty if pyctr-runtime will detach without setting console socket")
    pid = launch.exec_process(record.pid, record.cgroup, plan, process, console, root)
    if inv.options.get("pid_file"):
        write_pid_file(str(inv.options["pid_file"]), pid)
    if detach:
        return 0
    forwarded = _forward_signals(pid)
    try:
        return _wait(pid)
    finally:
        _restore_signals(forwarded)


def _read_process_file(options: dict) -> dict | None:
    path = options.get("process")
    if not path:
        return None
    try:
        with open(str(path), "rb") as f:
            doc = jsonlite.loads(f.read())
    except OSError as e:
        raise CliError(f"open {path}: {e.strerror}") from None
    except ValueError as e:
        raise CliError(f"process file {path}: {e}") from None
    if not isinstance(doc, dict):
        raise CliError(f"process file {path}: not an object")
    return doc


def exec_process_document(options: dict, command: list[str], from_file: dict | None,
                          container_process: dict | None = None) -> dict:
    """exec's process: the --process file as is, else the command with --cwd/--env/--user/--cap/--tty (runc
    fills the rest from the container's own process: env, user, capabilities). Pure."""
    if from_file is not None:
        return from_file
    base = dict(container_process or {})
    doc: dict = {"args": list(command), "env": list(base.get("env") or []) + list(options.get("env") or ()),
                 "cwd": options.get("cwd") or base.get("cwd") or "/", "terminal": bool(options.get("tty")),
                 "noNewPrivileges": bool(options.get("no_new_privs")) or bool(base.get("noNewPrivileges"))}
    user = dict(base.get("user") or {})
    if options.get("user"):
        uid, _, gid = str(options["user"]).partition(":")
        if not uid.isdigit() or (gid and not gid.isdigit()):
            raise CliError(f"parsing {options['user']} as uid:gid failed")
        user = {"uid": int(uid), "gid": int(gid or 0)}
    if options.get("additional_gids"):
        user["additionalGids"] = [int(g) for g in options["additional_gids"]]
    doc["user"] = user
    caps = {k: list(v) for k, v in (base.get("capabilities") or {}).items()}
    for cap in options.get("cap") or ():
        for name in ("bounding", "effective", "permitted", "ambient"):
            caps.setdefault(name, [])
            if cap not in caps[name]:
                caps[name].append(cap)
    doc["capabilities"] = caps
    return doc


def log_warning(message: str) -> None:
    from pyctr.oci.main import log

    log("warning", message)
