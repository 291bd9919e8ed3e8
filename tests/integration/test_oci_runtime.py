"""pyctr-runtime driven as containerd and podman drive runc: a busybox bundle (Debian's busybox-static in
bundle/rootfs, config.json from `pyctr-runtime spec`), its own --root per test, the container's standard streams
in files (the container inherits them, as a shim's pipes), and everything checked on the host: states, the
init's process, pid file, cgroup files, the console socket's pty, hook order.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.integration.conftest import REPO_ROOT
from tests.integration.container_rootfs import build_busybox_rootfs
from tests.integration.helpers import proc_gone, program_under_a_pty, remove_parent_cgroups, wait_for
from tests.integration.oci_bundle import RUNTIME, Runtime, make_bundle


@pytest.fixture(scope="module", autouse=True)
def _launcher() -> None:
    """`make install` writes the launcher; a checkout where it has not run yet gets it here (same script)."""
    if not RUNTIME.exists():
        subprocess.run([str(REPO_ROOT / ".venv" / "bin" / "python"), str(REPO_ROOT / "scripts" / "write_launcher.py"),
                        str(RUNTIME)], check=True)


@pytest.fixture
def runtime(tmp_path: Path):
    rt = Runtime(tmp_path)
    yield rt
    for container_id in (os.listdir(rt.root) if rt.root.exists() else []):
        rt.query("delete", "--force", container_id)
    remove_parent_cgroups("pyctr-oci-test")


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory) -> Path:
    return build_busybox_rootfs(tmp_path_factory.mktemp("oci-rootfs") / "rootfs")


def command_of(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()


def test_lifecycle_states_pid_file_and_cleanup(tmp_path, runtime, rootfs):
    bundle = make_bundle(tmp_path, rootfs, ["sleep", "1000"], **{"linux.cgroupsPath": "/pyctr-oci-test/life"})
    runtime("create", "--bundle", str(bundle), "--pid-file", str(tmp_path / "pid"), "life")
    state = runtime.state("life")
    pid = int((tmp_path / "pid").read_text())
    assert (state["status"], state["pid"], state["id"], state["bundle"]) == ("created", pid, "life", str(bundle))
    assert "sleep" not in command_of(pid)  # init waits on exec.fifo: the command has not started
    assert pid in [int(p) for p in Path("/sys/fs/cgroup/pids/pyctr-oci-test/life/cgroup.procs").read_text().split()]
    runtime("start", "life")
    assert runtime.state("life")["status"] == "running"
    assert command_of(pid) == "sleep 1000"
    second = runtime("start", "life", check=False)
    assert second.returncode == 1 and "cannot start an already running container" in runtime.err.read_text()
    refused = runtime("delete", "life", check=False)
    assert refused.returncode == 1 and "not stopped: running" in runtime.err.read_text()
    runtime("kill", "life", "KILL")
    wait_for(lambda: runtime.state("life")["status"] == "stopped", what="stopped")
    assert runtime.state("life")["pid"] == 0
    assert runtime("kill", "life", "9", check=False).returncode == 1
    assert "container not running" in runtime.err.read_text()
    runtime("delete", "life")
    assert runtime.query("state", "life").returncode == 1
    assert not Path("/sys/fs/cgroup/pids/pyctr-oci-test/life").exists()
    assert not (runtime.root / "life").exists()


def test_create_returns_and_init_is_left_to_the_callers_reaper(tmp_path, runtime, rootfs):
    """runc's model: `create` exits, init stays (re-parented to the caller's subreaper, here: init of the
    machine or the nearest subreaper); the container's output goes to the streams create was given."""
    bundle = make_bundle(tmp_path, rootfs, ["sh", "-c", "echo out-line; echo err-line >&2; exit 0"])
    runtime("create", "--bundle", str(bundle), "c")
    pid = runtime.state("c")["pid"]
    assert os.getppid() != pid and Path(f"/proc/{pid}").exists()
    runtime("start", "c")
    assert proc_gone(pid)
    wait_for(lambda: "out-line" in runtime.out.read_text(), what="output")
    assert "err-line" in runtime.err.read_text()
    assert runtime.state("c")["status"] == "stopped"
    runtime("delete", "c")


def test_run_returns_the_exit_code_and_deletes(tmp_path, runtime, rootfs):
    bundle = make_bundle(tmp_path, rootfs, ["sh", "-c", "hostname; cat /proc/self/status | grep CapEff; exit 3"],
                         hostname="oci-host")
    done = runtime("run", "--bundle", str(bundle), "r", check=False)
    assert done.returncode == 3
    lines = runtime.out.read_text().split("\n")
    assert lines[0] == "oci-host"
    assert lines[1].split() == ["CapEff:", "0000000020000420"]  # runc's spec: AUDIT_WRITE, KILL, NET_BIND_SERVICE
    assert not (runtime.root / "r").exists()


def test_kill_by_name_and_signal_state_of_a_handled_signal(tmp_path, runtime, rootfs):
    bundle = make_bundle(tmp_path, rootfs, ["sh", "-c", "trap 'echo got-usr1' USR1; while true; do sleep 0.1; done"])
    runtime("run", "-d", "--bundle", str(bundle), "k")
    time.sleep(0.3)  # the trap is set
    runtime("kill", "k", "SIGUSR1")
    wait_for(lambda: "got-usr1" in runtime.out.read_text(), what="the trap")
    runtime("kill", "--all", "k", "KILL")
    wait_for(lambda: runtime.state("k")["status"] == "stopped", what="stopped")
    bad = runtime("kill", "k", "SIGNOPE", check=False)
    assert bad.returncode == 1 and "unknown signal" in runtime.err.read_text()


def receive_console(listener: socket.socket, got: dict) -> None:
    connection, _ = listener.accept()
    with connection:
        message, fds, _, _ = socket.recv_fds(connection, 1024, 1)
        got["name"], got["fd"] = message, fds[0]


def test_console_socket_receives_the_pty_master(tmp_path, runtime, rootfs):
    bundle = make_bundle(tmp_path, rootfs, ["sh", "-c", "tty; ls -l /dev/console | cut -c1; echo console-ok"],
                         **{"process.terminal": True})
    path = tmp_path / "console.sock"
    got: dict = {}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        listener.listen(1)
        thread = threading.Thread(target=receive_console, args=(listener, got))
        thread.start()
        runtime("create", "--bundle", str(bundle), "--console-socket", str(path), "tty")
        thread.join(10)
    master = got["fd"]
    runtime("start", "tty")
    output = b""
    deadline = time.monotonic() + 10
    while b"console-ok" not in output and time.monotonic() < deadline:
        try:
            output += os.read(master, 4096)
        except OSError:
            break
    os.close(master)
    assert got["name"] == b"/dev/ptmx"
    assert output.decode().replace("\r", "").split("\n")[:3] == ["/dev/pts/0", "c", "console-ok"]


def test_terminal_without_console_socket_is_refused_on_create(tmp_path, runtime, rootfs):
    bundle = make_bundle(tmp_path, rootfs, ["true"], **{"process.terminal": True})
    done = runtime("create", "--bundle", str(bundle), "t", check=False)
    assert done.returncode == 1
    assert "cannot allocate tty" in runtime.err.read_text()
    assert not (runtime.root / "t").exists()


def hook(log: Path, name: str, timeout: int | None = None) -> dict:
    script = f"read state; echo \"{name} $state\" >> {log}"
    entry = {"path": "/bin/sh", "args": ["sh", "-c", script]}
    if timeout:
        entry["timeout"] = timeout
    return entry


def test_hooks_run_in_order_with_the_state_on_stdin(tmp_path, runtime, rootfs):
    log = tmp_path / "hooks.log"
    hooks = {kind: [hook(log, kind)] for kind in ("prestart", "createRuntime", "createContainer", "poststart",
                                                    "poststop")}
    namespaces = tmp_path / "hook-mnt-ns"
    for kind in ("createRuntime", "createContainer"):
        hooks[kind].append({"path": "/bin/sh", "args": ["sh", "-c", f"readlink /proc/self/ns/mnt >> {namespaces}"]})
    # startContainer runs inside the container: its /bin/sh and a path of the container's root
    hooks["startContainer"] = [{"path": "/bin/sh", "args": ["sh", "-c", "read state; echo \"startContainer $state\" "
                                                                         ">> /start-hook.log"]}]
    bundle = make_bundle(tmp_path, rootfs, ["true"], hooks=hooks, annotations={"org.example": "yes"})
    container_root = bundle / "rootfs"
    (container_root / "start-hook.log").unlink(missing_ok=True)
    runtime("create", "--bundle", str(bundle), "h")
    pid = runtime.state("h")["pid"]
    runtime("start", "h")
    wait_for(lambda: runtime.state("h")["status"] == "stopped", what="stopped")
    runtime("delete", "h")
    entries = [line.split(" ", 1) for line in log.read_text().splitlines()]
    assert [name for name, _ in entries] == ["prestart", "createRuntime", "createContainer", "poststart",
                                             "poststop"]
    states = {name: json.loads(text) for name, text in entries}
    assert states["prestart"]["status"] == "creating" and states["prestart"]["pid"] == pid
    assert states["createContainer"]["pid"] == pid
    assert states["poststart"]["status"] == "running"
    assert states["poststop"]["status"] == "stopped"
    assert states["createRuntime"]["annotations"] == {"org.example": "yes"}
    assert all(s["id"] == "h" and s["bundle"] == str(bundle) for s in states.values())
    runtime_ns, container_ns = namespaces.read_text().split()
    assert runtime_ns == os.readlink("/proc/self/ns/mnt")  # createRuntime: the runtime's namespace
    assert container_ns != runtime_ns  # createContainer: the container's, with the host's paths (before pivot)
    start_entry = (container_root / "start-hook.log").read_text().split(" ", 1)
    (container_root / "start-hook.log").unlink()
    assert start_entry[0] == "startContainer" and json.loads(start_entry[1])["pid"] == 1


def test_a_hook_past_its_timeout_fails_create_cleanly(tmp_path, runtime, rootfs):
    bundle = make_bundle(tmp_path, rootfs, ["true"],
                         hooks={"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "10"], "timeout": 1}]})
    started = time.monotonic()
    done = runtime("create", "--bundle", str(bundle), "slow", check=False)
    assert done.returncode == 1 and time.monotonic() - started < 8
    assert "error running createRuntime hook #0: timeout after 1 seconds" in runtime.err.read_text()
    assert not (runtime.root / "slow").exists()
    assert not Path("/sys/fs/cgroup/pids/slow").exists()


def test_exec_args_and_process_file(tmp_path, runtime, rootfs):
    bundle = make_bundle(tmp_path, rootfs, ["sleep", "1000"])
    runtime("run", "-d", "--bundle", str(bundle), "e")
    done = runtime.query("exec", "--env", "GREETING=hi", "--user", "1000:1000", "e", "sh", "-c",
                         "echo $GREETING; id -u; exit 5")
    assert (done.returncode, done.stdout.split()) == (5, ["hi", "1000"])
    process = {"args": ["sh", "-c", "pwd; echo $$"], "cwd": "/tmp", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}}
    (tmp_path / "process.json").write_text(json.dumps(process))
    done = runtime.query("exec", "--process", str(tmp_path / "process.json"), "e")
    pwd, pid_in_container = done.stdout.split()
    assert done.returncode == 0 and pwd == "/tmp" and int(pid_in_container) > 1
    missing = runtime.query("exec", "e", "no-such-command")
    assert missing.returncode == 1 and "executable file not found" in missing.stderr


def test_resources_on_this_machines_cgroups(tmp_path, runtime, rootfs):
    resources = {"memory": {"limit": 64 * 1024 * 1024}, "pids": {"limit": 42}, "cpu": {"shares": 512}}
    bundle = make_bundle(tmp_path, rootfs, ["sleep", "1000"],
                         **{"linux.resources": resources, "linux.cgroupsPath": "/pyctr-oci-test/res"})
    runtime("create", "--bundle", str(bundle), "res")
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():
        base = Path("/sys/fs/cgroup/pyctr-oci-test/res")
        assert (base / "memory.max").read_text().strip() == str(64 * 1024 * 1024)
        assert (base / "pids.max").read_text().strip() == "42"
    else:
        assert Path("/sys/fs/cgroup/memory/pyctr-oci-test/res/memory.limit_in_bytes").read_text().strip() == \
            str(64 * 1024 * 1024)
        assert Path("/sys/fs/cgroup/pids/pyctr-oci-test/res/pids.max").read_text().strip() == "42"
        assert Path("/sys/fs/cgroup/cpu/pyctr-oci-test/res/cpu.shares").read_text().strip() == "512"
        runtime("update", "--pids-limit", "50", "res")
        assert Path("/sys/fs/cgroup/pids/pyctr-oci-test/res/pids.max").read_text().strip() == "50"
    runtime("start", "res")
    runtime("pause", "res")
    assert runtime.state("res")["status"] == "paused"
    runtime("resume", "res")
    assert runtime.state("res")["status"] == "running"
    runtime("delete", "--force", "res")
    assert not Path("/sys/fs/cgroup/pids/pyctr-oci-test/res").exists()


def test_seccomp_masked_and_readonly_paths_rlimits(tmp_path, runtime, rootfs):
    seccomp = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}
    script = ("mkdir /tmp/x 2>&1; wc -c < /proc/timer_list; (echo 1 > /proc/sys/kernel/ostype) 2>&1; "
              "ulimit -n; ulimit -Hn")
    assert os.path.getsize("/proc/timer_list") or Path("/proc/timer_list").read_bytes()  # the host shows it
    bundle = make_bundle(tmp_path, rootfs, ["sh", "-c", script], **{"linux.seccomp": seccomp})
    done = runtime("run", "--bundle", str(bundle), "sec", check=False)
    lines = runtime.out.read_text().splitlines()
    assert done.returncode == 0, runtime.err.read_text()
    assert "Permission denied" in lines[0]  # errnoRet 13 = EACCES, not the default EPERM
    assert lines[1].strip() == "0"  # /proc/timer_list masked by /dev/null
    assert "Read-only file system" in lines[2]
    assert lines[3:5] == ["1024", "1024"]  # the spec's RLIMIT_NOFILE


def test_refusals_are_one_line_and_leave_nothing(tmp_path, runtime, rootfs):
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    too_high = [{"type": "RLIMIT_NOFILE", "soft": hard + 1, "hard": hard + 1}]
    cases = [
        ({"process.rlimits": too_high}, [], f"error setting rlimit RLIMIT_NOFILE to soft {hard + 1}"),
        ({"linux.seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/x.sock"}}, [],
         "listenerPath is not supported"),
        ({}, ["--systemd-cgroup"], "systemd cgroup manager is not supported"),
        ({"process.args": ["no-such-command"]}, [], 'exec: "no-such-command": executable file not found in $PATH'),
    ]
    for number, (changes, flags, message) in enumerate(cases):
        base = tmp_path / str(number)
        base.mkdir()
        bundle = make_bundle(base, rootfs, ["true"], **changes)
        log = base / "log.json"
        done = runtime.query("--log", str(log), "--log-format", "json", *flags, "create", "--bundle", str(bundle),
                             f"bad{number}")
        assert done.returncode == 1, message
        assert message in done.stderr and "Traceback" not in done.stderr, done.stderr
        entry = json.loads(log.read_text().splitlines()[-1])
        assert entry["level"] == "error" and message in entry["msg"] and entry["time"].endswith("Z")
        assert not (runtime.root / f"bad{number}").exists()
    assert runtime.query("state", "nope").stderr.count("\n") == 1


def test_list_table_and_json(tmp_path, runtime, rootfs):
    bundle = make_bundle(tmp_path, rootfs, ["sleep", "1000"])
    runtime("create", "--bundle", str(bundle), "one")
    table = runtime.query("list").stdout.splitlines()
    assert table[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert table[1].split()[:4] == ["one", str(runtime.state("one")["pid"]), "created", str(bundle)]
    assert [c["id"] for c in json.loads(runtime.query("list", "--format", "json").stdout)] == ["one"]
    assert runtime.query("list", "-q").stdout == "one\n"
    os.kill(runtime.state("one")["pid"], signal.SIGKILL)
    wait_for(lambda: runtime.state("one")["status"] == "stopped", what="stopped")
    runtime("delete", "one")
    assert runtime.query("list", "--format", "json").stdout.strip() == "null"


def test_preserve_fds_and_no_pivot(tmp_path, runtime, rootfs):
    bundle = make_bundle(tmp_path, rootfs, ["sh", "-c", "echo via-fd3 >&3; cat /proc/self/mountinfo | wc -l"])
    target = tmp_path / "fd3.txt"
    done = subprocess.run(["sh", "-c", f'exec "$0" "$@" 3>{target}', str(RUNTIME), "--root", str(runtime.root),
                           "run", "--preserve-fds", "1", "--no-pivot", "--bundle", str(bundle), "pf"],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert target.read_text() == "via-fd3\n"
    assert int(done.stdout.split()[0]) > 0


def test_run_with_a_terminal_relays_it_without_a_console_socket(tmp_path, runtime, rootfs):
    bundle = make_bundle(tmp_path, rootfs, ["sh", "-c", "tty; echo term-ok; exit 2"], **{"process.terminal": True})
    code, shown = program_under_a_pty(
        [str(RUNTIME), "--root", str(runtime.root), "run", "--bundle", str(bundle), "tty"], dict(os.environ))
    assert code == 2
    assert shown.replace(b"\r", b"").split(b"\n")[:2] == [b"/dev/pts/0", b"term-ok"]


USERNS_CHANGES = {
    "linux.namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "user")],
    "linux.uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
    "linux.gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
}


@pytest.fixture(scope="module")
def userns_base():
    """A directory the container's root (host uid 100000) can traverse, with a rootfs of its own: as with
    runc, the bundle must be reachable by the mapped root, and pytest's temporary directories are 0700."""
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="pyctr-oci-userns-", dir="/tmp"))
    base.chmod(0o711)
    build_busybox_rootfs(base / "rootfs")
    yield base
    shutil.rmtree(base, ignore_errors=True)


def userns_bundle(base: Path, rootfs: Path, args: list[str], shared: Path) -> Path:
    """runc's starter spec in a user namespace mapping 0 -> 100000 (65536 ids), `shared` bind-mounted on /mnt.
    Without the /sys/fs/cgroup mount: a cgroup v1 hierarchy cannot be mounted from a user namespace."""
    base.mkdir(mode=0o711)
    bundle = make_bundle(base, rootfs, args, **USERNS_CHANGES)
    bundle.chmod(0o711)
    config = json.loads((bundle / "config.json").read_text())
    config["mounts"] = [m for m in config["mounts"] if m["type"] != "cgroup"]
    config["mounts"].append({"destination": "/mnt", "type": "bind", "source": str(shared), "options": ["rbind"]})
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle


def test_user_namespace_maps_ids_and_files_made_inside_belong_to_the_mapped_owner(runtime, userns_base):
    shared = userns_base / "shared-made"
    shared.mkdir()
    shared.chmod(0o777)
    script = "id; cat /proc/self/uid_map /proc/self/gid_map; echo made > /mnt/made; ls -ln /dev/null"
    bundle = userns_bundle(userns_base / "maps", userns_base / "rootfs", ["sh", "-c", script], shared)
    runtime("run", "--bundle", str(bundle), "userns")
    out = runtime.out.read_text().splitlines()
    assert out[0].startswith("uid=0(root) gid=0(root)"), out
    assert [line.split() for line in out[1:3]] == [["0", "100000", "65536"]] * 2
    made = (shared / "made").stat()
    assert (made.st_uid, made.st_gid) == (100000, 100000)  # root inside is 100000 on the host
    assert out[3].startswith("crw-rw-rw-") and "1,   3" in out[3]  # /dev/null: the host's node, bind-mounted
    assert not (runtime.root / "userns").exists()


def test_user_namespace_lifecycle_exec_joins_it_and_init_is_the_mapped_root(tmp_path, runtime, userns_base):
    shared = userns_base / "shared-life"
    shared.mkdir()
    bundle = userns_bundle(userns_base / "life", userns_base / "rootfs", ["sleep", "1000"], shared)
    runtime("create", "--bundle", str(bundle), "--pid-file", str(tmp_path / "pid"), "uns")
    pid = int((tmp_path / "pid").read_text())
    state = runtime.state("uns")
    assert (state["status"], state["pid"]) == ("created", pid)
    assert Path(f"/proc/{pid}/uid_map").read_text().split() == ["0", "100000", "65536"]
    assert os.stat(f"/proc/{pid}").st_uid == 100000  # the init's host uid is the mapped root's
    runtime("start", "uns")
    assert runtime.state("uns")["status"] == "running" and command_of(pid) == "sleep 1000"
    done = runtime.query("exec", "uns", "sh", "-c", "id -u; cat /proc/self/uid_map; readlink /proc/1/exe")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "0" and lines[1].split() == ["0", "100000", "65536"] and lines[2] == "/bin/busybox"
    joiner = userns_bundle(userns_base / "joiner", userns_base / "rootfs", ["cat", "/proc/self/uid_map"], shared)
    config = json.loads((joiner / "config.json").read_text())  # the running container's user namespace, by path
    config["linux"]["namespaces"][-1] = {"type": "user", "path": f"/proc/{pid}/ns/user"}
    del config["linux"]["uidMappings"], config["linux"]["gidMappings"]
    (joiner / "config.json").write_text(json.dumps(config))
    runtime.out.write_text("")
    runtime("run", "--bundle", str(joiner), "joiner")
    assert runtime.out.read_text().split() == ["0", "100000", "65536"]
    runtime("delete", "--force", "uns")
    assert proc_gone(pid) and not (runtime.root / "uns").exists()


def test_user_namespace_without_maps_is_refused_as_runc_refuses_it(tmp_path, runtime, rootfs):
    bundle = make_bundle(tmp_path, rootfs, ["true"], **{**USERNS_CHANGES, "linux.gidMappings": []})
    assert runtime("create", "--bundle", str(bundle), "nomap", check=False).returncode == 1
    assert "user namespaces enabled, but no gid mappings found" in runtime.err.read_text()
    assert not (runtime.root / "nomap").exists()
