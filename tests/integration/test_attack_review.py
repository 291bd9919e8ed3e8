"""Attack review of issue 13's fixes (and of issues 15 and 17's kernel flags and pyctr-runtime): each test is a
real attack, run as root; it passes when the defence holds."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import REPO_ROOT
from tests.integration.container_rootfs import build_busybox_rootfs
from tests.integration.helpers import assert_check_clean, remove_parent_cgroups
from tests.integration.oci_bundle import RUNTIME, Runtime, make_bundle

pytestmark = pytest.mark.integration


@pytest.fixture
def host_block_device(tmp_path: Path) -> Iterator[tuple[int, int, bytes]]:
    """A loop device over a host file holding a known secret: (major, minor, secret)."""
    secret = b"HOST-DISK-SECRET-" + os.urandom(8).hex().encode()
    backing = tmp_path / "disk.img"
    backing.write_bytes(secret + b"\0" * (1024 * 1024 - len(secret)))
    dev = subprocess.run(["losetup", "--find", "--show", str(backing)], capture_output=True, text=True,
                         check=True).stdout.strip()
    try:
        st = os.stat(dev)
        yield os.major(st.st_rdev), os.minor(st.st_rdev), secret
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True)


def _build(pyctr, context: Path, dockerfile: str, *extra: str) -> subprocess.CompletedProcess:
    (context / "Dockerfile").write_text(dockerfile)
    return pyctr("build", "--no-cache", *extra, "-t", "attack-review", str(context),
                 timeout=120)


def test_run_mount_from_a_stage_never_reads_a_host_device(pyctr, tmp_path, host_block_device):
    """A stage makes a block device node for a host disk (its RUN has CAP_MKNOD); `RUN --mount=from=stage`
    (bind or cache seed) must not copy the disk's bytes on the host into the mount (it did: shutil.copytree)."""
    major, minor, secret = host_block_device
    context = tmp_path / "ctx"
    context.mkdir()
    stage = f"FROM busybox AS s\nRUN mkdir /d && mknod /d/blk b {major} {minor} && mknod /blk b {major} {minor}\n"
    proc = _build(pyctr, context,
                  stage + "FROM busybox\n"
                  "RUN --mount=from=s,source=/d,target=/x head -c 64 /x/blk || true\n"
                  "RUN --mount=type=cache,id=atk-dev,from=s,source=/d,target=/x head -c 64 /x/blk || true\n")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert secret.decode() not in proc.stdout + proc.stderr
    single = _build(pyctr, context, stage + "FROM busybox\nRUN --mount=from=s,source=/blk,target=/x head -c 64 /x\n")
    assert single.returncode != 0 and secret.decode() not in single.stdout + single.stderr
    assert "not a regular file or directory" in single.stderr.strip().splitlines()[-1]




def test_a_device_node_made_in_a_container_cannot_be_opened(pyctr, tmp_path, host_block_device):
    """CAP_MKNOD makes the node; the device cgroup (Docker's default allow list) must refuse to open it, in a
    build's RUN as in `run`."""
    major, minor, secret = host_block_device
    attack = f"mknod /blk b {major} {minor} && head -c 64 /blk"
    ran = pyctr("run", "--rm", "busybox", "sh", "-c", attack)
    assert ran.returncode != 0 and secret.decode() not in ran.stdout + ran.stderr
    context = tmp_path / "ctx"
    context.mkdir()
    built = _build(pyctr, context, f"FROM busybox\nRUN {attack}\n")
    assert built.returncode != 0 and secret.decode() not in built.stdout + built.stderr



@pytest.mark.parametrize("link", ["/etc/shadow", "../../../../../../../etc/shadow"])
@pytest.mark.parametrize("run", ["--mount=source=s,target=/x cat /x", "--mount=source=d,target=/x cat /x/s",
                                 "--mount=source=d/s,target=/x cat /x", "--mount=source=d/s/..,target=/x ls /x"])
def test_run_mount_of_a_context_symlink_stays_in_the_context(pyctr, tmp_path, link, run):
    """A context symlink pointing at a host file: the bind mount must not carry the host file's bytes."""
    marker = Path("/etc/shadow").read_text().split(":", 1)[0]  # the first user name: never in the context
    context = tmp_path / "ctx"
    (context / "d").mkdir(parents=True)
    (context / "s").symlink_to(link)
    (context / "d" / "s").symlink_to(link)
    proc = _build(pyctr, context, f"FROM busybox\nRUN {run}\n")
    assert f"{marker}:" not in proc.stdout + proc.stderr and "shadow" not in proc.stdout, proc.stdout


# --- seccomp: syscalls Docker 20.10.24's default profile refuses (EPERM) must be refused for real --------------

SECCOMP_PROBE = """
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
def call(name, nr, *args):
    ctypes.set_errno(0)
    ret = libc.syscall(nr, *args)
    if ret == 0 and name.startswith("clone"):
        os._exit(0)
    print(name, "ok" if ret >= 0 else errno.errorcode[ctypes.get_errno()])
call("add_key", 248, b"user", b"k", b"v", 1, -2)
call("request_key", 249, b"user", b"k", None, 0)
call("keyctl", 250, 0, -2, 0)
call("userfaultfd", 323, 0)
call("perf_event_open", 298, None, 0, -1, -1, 0)
call("kexec_load", 246, 0, 0, None, 0)
call("open_by_handle_at", 304, -100, None, 0)
call("unshare_newuser", 272, 0x10000000)
call("unshare_newns", 272, 0x20000)
call("clone_newns", 56, 0x20000 | 17, 0, 0, 0, 0)
call("clone_newuser", 56, 0x10000000 | 17, 0, 0, 0, 0)
call("clone3", 435, None, 0)
call("bpf", 321, 0, None, 0)
call("mount", 165, b"none", b"/mnt", b"tmpfs", 0, None)
call("setns", 308, 0, 0)
call("fsopen", 430, b"tmpfs", 0)
call("open_tree", 428, -100, b"/", 0)
call("syslog", 103, 3, None, 0)
call("personality_bad", 135, 0x0040000)
call("iopl", 172, 3)
call("pidfd_getfd", 438, 0, 0, 0)
call("acct", 163, None)
call("quotactl", 179, 0, None, 0, None)
call("move_pages", 279, 0, 0, None, None, None, 0)
call("mbind", 237, 0, 0, 0, None, 0, 0)
call("lookup_dcookie", 212, 0, None, 0)
"""


def test_seccomp_refuses_what_docker_refuses(pyctr):
    """Each call is made for real in a default container; Docker 20.10.24 answers EPERM to all of them
    (clone3: ENOSYS, runc's answer so glibc falls back to clone)."""
    pyctr("pull", "python:3-slim", check=True, timeout=300)
    out = pyctr("run", "--rm", "--network", "none", "python:3-slim", "python3", "-c", SECCOMP_PROBE,
                check=True).stdout
    got = dict(line.split() for line in out.splitlines())
    expected = {name: "EPERM" for name in got} | {"clone3": "ENOSYS"}
    assert got == expected



# --- fds and executables: nothing of the host reaches a container process (run, exec, -t, -d) ------------------

FD_PROBE = (
    'echo "self $(readlink /proc/$$/exe)"; (ls /proc/$$/fd) >/tmp/fds; sed "s/^/selffd /" /tmp/fds; '
    'for p in /proc/[0-9]*; do q=${p#/proc/}; [ "$q" = "$$" ] && continue; '
    'echo "pid$q $(readlink $p/exe)"; for f in $(ls $p/fd); do echo "pid$q.fd$f $(readlink $p/fd/$f)"; done; done')
PYCTR = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "pyctr")


def _under_a_terminal(env: dict, *args: str) -> str:
    """`pyctr ARGS` with a pty as its terminal (script(1)), as a user's -t would."""
    import shlex

    command = shlex.join([PYCTR, *args])
    return subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True, text=True, env=env,
                          timeout=60, stdin=subprocess.DEVNULL).stdout.replace("\r", "")


def _assert_nothing_of_the_host(out: str) -> None:
    lines = [line.split(" ", 1) for line in out.splitlines() if line.strip()]
    assert any(k == "self" for k, _ in lines), out
    for key, value in lines:
        if key == "selffd":
            assert value in ("0", "1", "2"), out  # the command's own fds: its stdio only
        elif ".fd" in key:
            assert value.startswith(("/dev/", "pipe:")) and "/dev/pts/ptmx" not in value, out
        else:
            assert value.startswith("/bin/"), out  # the executable is the image's, never memfd or host


def test_no_host_fd_or_executable_in_run(pyctr):
    pyctr("pull", "busybox", check=True)
    _assert_nothing_of_the_host(pyctr("run", "--rm", "busybox", "sh", "-c", FD_PROBE, check=True).stdout)
    _assert_nothing_of_the_host(_under_a_terminal(pyctr.env, "run", "--rm", "-t", "busybox", "sh", "-c", FD_PROBE))


def test_no_host_fd_or_executable_in_exec(pyctr):
    pyctr("pull", "busybox", check=True)
    cid = pyctr("run", "-d", "busybox", "sleep", "30", check=True).stdout.strip()
    try:
        _assert_nothing_of_the_host(pyctr("exec", cid, "sh", "-c", FD_PROBE, check=True).stdout)
        _assert_nothing_of_the_host(_under_a_terminal(pyctr.env, "exec", "-t", cid, "sh", "-c", FD_PROBE))
    finally:
        pyctr("rm", "-f", cid)



def test_a_build_step_is_confined_as_run_is(pyctr, tmp_path):
    """The build's RUN: the same seccomp answers, never the host interpreter behind /proc/self/exe."""
    pyctr("pull", "python:3-slim", check=True, timeout=300)
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "probe.py").write_text(SECCOMP_PROBE)
    proc = _build(pyctr, context, "FROM python:3-slim\nCOPY probe.py /\nRUN python3 /probe.py | sed 's/^/SC /'\n"
                  "RUN ln -s /proc/self/exe /bin/hostexe && (/bin/hostexe -c 'print(\"HOSTPY\")' || true)\n"
                  "RUN [\"/proc/self/exe\", \"-c\", \"print('HOSTPY')\"]\n")
    got = dict(line.split()[1:] for line in proc.stdout.splitlines() if line.startswith("SC "))
    assert got and got == {name: "EPERM" for name in got} | {"clone3": "ENOSYS"}, proc.stdout
    assert "HOSTPY" not in proc.stdout.replace("print('HOSTPY')", "").replace("print(\"HOSTPY\")", ""), proc.stdout
    assert proc.returncode != 0  # the last RUN cannot start


def _pids_running(marker: str) -> list[int]:
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                found.append(int(entry))
        except OSError:
            pass
    return found


def test_a_killed_build_leaves_no_step_running(pyctr, tmp_path):
    """SIGKILL of `pyctr build` (a timeout, the OOM killer) must end its RUN step, as Docker cancels it:
    it lived on, orphaned to the host's init (and a stopped one forever)."""
    import signal
    import time

    cgroups_before = _pyctr_cgroups()
    context = tmp_path / "ctx"
    context.mkdir()
    seconds = str(300 + os.getpid() % 97)
    (context / "Dockerfile").write_text(f"FROM busybox\nRUN sleep {seconds}\n")
    build = subprocess.Popen([PYCTR, "build", "--no-cache", str(context)], env=pyctr.env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    marker = f"sleep\0{seconds}"
    deadline = time.monotonic() + 30
    while not _pids_running(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _pids_running(marker), "the step never started"
    build.send_signal(signal.SIGKILL)
    build.wait()
    deadline = time.monotonic() + 5
    while _pids_running(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = _pids_running(marker)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, "the build's RUN step outlived the build"
    # Its cgroup stays (the build died before it could remove it): `system check` removes a dead build's steps.
    assert_check_clean(pyctr, "after a killed build")
    assert _pyctr_cgroups() <= cgroups_before, "the killed build's step cgroup is still there after check"


def _pyctr_cgroups() -> set[str]:
    return {p.name for parent in Path("/sys/fs/cgroup").glob("*/pyctr") for p in parent.iterdir() if p.is_dir()}


@pytest.mark.parametrize("argv, code", [
    (["", "x"], 127),                        # empty argv[0]
    (["/etc"], 126),                         # a directory
    (["/tmp/fifo"], 126),                    # a fifo (made by the entrypoint below)
    (["/x" * 2100], 125),                    # longer than PATH_MAX: docker-cli maps only ENOENT/EACCES
])
def test_odd_commands_fail_as_docker_and_never_hang(pyctr, argv, code):
    """The command's own error (it was "cannot create veth" when C failed while M plugged it into the
    bridge), never a hang or a traceback."""
    pyctr("pull", "busybox", check=True)
    if argv == ["/tmp/fifo"]:
        proc = pyctr("run", "--rm", "--entrypoint", "sh", "busybox", "-c", "mkfifo -m 755 /tmp/fifo && exec /tmp/fifo",
                     timeout=20)
    else:
        proc = pyctr("run", "--rm", "busybox", *argv, timeout=20)
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) <= 1, proc.stderr


def test_non_utf8_arguments_pass_through(pyctr):
    proc = subprocess.run([PYCTR, "run", "--rm", "busybox", "echo", b"\xff\xfe-ok"], capture_output=True,
                          env=pyctr.env, timeout=20, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0 and proc.stdout == b"\xff\xfe-ok\n", proc


def _serve_loop_and_silence() -> Iterator[str]:
    """/loop redirects to itself forever; /silent sends headers and a promise of 1 MiB, then a few bytes."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path == "/loop":
                self.send_response(302)
                self.send_header("Location", "/loop")
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self.send_response(200)
                self.send_header("Content-Length", str(1 << 20))
                self.end_headers()
                self.wfile.write(b"x" * 10)
                self.wfile.flush()
                self.connection.shutdown(2)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def hostile_http() -> Iterator[str]:
    yield from _serve_loop_and_silence()


@pytest.mark.parametrize("path", ["/loop", "/short"])
def test_add_url_loops_and_short_bodies_fail_in_one_line(pyctr, tmp_path, hostile_http, path):
    """A redirect loop: one line (it was three); a body cut short of its Content-Length fails the build (a
    truncated file went into the image)."""

    context = tmp_path / "ctx"
    context.mkdir()
    proc = _build(pyctr, context, f"FROM busybox\nADD {hostile_http}{path} /x\n")
    assert proc.returncode == 1, proc.stdout + proc.stderr  # docker build's failures exit 1
    assert len(proc.stderr.strip().splitlines()) == 1 and "internal error" not in proc.stderr, proc.stderr


def test_run_mount_stub_cleanup_never_follows_a_symlink_onto_the_host(pyctr, tmp_path):
    """After a RUN whose mount target went through an image symlink, pyctr removes the mount point it left in
    the layer; the step re-points that symlink at a host directory: an empty host file there must survive."""
    victim = f"victim-{os.getpid()}"  # absent from the host's /tmp, where the image's /lnk points on the host
    host_dir = tmp_path / "host"
    host_dir.mkdir()
    (host_dir / victim).touch()
    context = tmp_path / "ctx"
    context.mkdir()
    proc = _build(pyctr, context,
                  "FROM busybox\nRUN ln -s /tmp /lnk\n"
                  f"RUN --mount=type=cache,target=/lnk/{victim} rm /lnk && ln -s {host_dir} /lnk\n")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (host_dir / victim).exists(), "pyctr build deleted a host file"


@pytest.mark.parametrize("kind, linkname", [("hard", "/etc/shadow"), ("hard", "../../../../../../etc/shadow"),
                                            ("sym", "/etc/shadow"), ("sym", "../../../../../../etc/shadow")])
def test_a_stdin_context_link_never_carries_a_host_file(pyctr, kind, linkname):
    """`build -` with a tar whose entry links to a host file: the image must never get the host file's bytes."""
    import io
    import tarfile

    marker = Path("/etc/shadow").read_text().split(":", 1)[0] + ":"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        dockerfile = b"FROM busybox\nCOPY h /h\nRUN cat /h || true\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
        link = tarfile.TarInfo("h")
        link.type = tarfile.LNKTYPE if kind == "hard" else tarfile.SYMTYPE
        link.linkname = linkname
        tar.addfile(link)
    proc = subprocess.run([PYCTR, "build", "--no-cache", "-"], input=buf.getvalue(), capture_output=True,
                          env=pyctr.env, timeout=60)
    assert marker.encode() not in proc.stdout + proc.stderr, proc
    assert b"Traceback" not in proc.stderr


def test_a_shm_size_under_a_kilobyte_is_still_a_limit(pyctr):
    """`--shm-size 1000` was mounted as `size=0k`: tmpfs reads 0 as no limit, so /dev/shm took any amount."""
    fill = "dd if=/dev/zero of=/dev/shm/fill bs=1k count=256 2>/dev/null; echo $?; du -k /dev/shm/fill"
    out = pyctr("run", "--rm", "--network", "none", "--shm-size", "1000", "busybox", "sh", "-c", fill,
                check=True).stdout.split()
    assert out[0] != "0" and int(out[1]) <= 4, out  # one page at most (the kernel rounds bytes up to pages)


KEEPALIVE = Path("/proc/sys/net/ipv4/tcp_keepalive_probes")  # per network namespace, harmless to change


@pytest.fixture(scope="module")
def oci_rootfs(tmp_path_factory) -> Path:
    return build_busybox_rootfs(tmp_path_factory.mktemp("attack-oci-rootfs") / "rootfs")


@pytest.fixture
def oci_runtime(tmp_path: Path) -> Iterator[Runtime]:
    """test_oci_runtime's `pyctr-runtime --root <tmp>`; what a test leaves is deleted."""
    if not RUNTIME.exists():  # as test_oci_runtime: `make install` writes it, a fresh checkout gets it here
        subprocess.run([str(REPO_ROOT / ".venv" / "bin" / "python"), str(REPO_ROOT / "scripts" / "write_launcher.py"),
                        str(RUNTIME)], check=True)
    rt = Runtime(tmp_path)
    yield rt
    for container_id in (os.listdir(rt.root) if rt.root.exists() else []):
        rt.query("delete", "--force", container_id)
    remove_parent_cgroups("pyctr-oci-test")


def _sysctl_bundle(base: Path, rootfs_dir: Path, network: dict) -> Path:
    """runc's starter spec (its readonlyPaths hold /proc/sys) with a net.* sysctl, in the network namespace
    `network` (a new one, or one joined by path)."""
    base.mkdir()
    bundle = make_bundle(base, rootfs_dir, ["cat", str(KEEPALIVE)])
    config = json.loads((bundle / "config.json").read_text())
    assert "/proc/sys" in config["linux"]["readonlyPaths"]
    config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"] if n["type"] != "network"] + [network]
    config["linux"]["sysctl"] = {"net.ipv4.tcp_keepalive_probes": str(int(KEEPALIVE.read_text()) + 3)}
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle


def test_pyctr_runtime_never_writes_a_net_sysctl_into_the_callers_network_namespace(tmp_path, oci_runtime,
                                                                                      oci_rootfs):
    """A config joining the caller's own network namespace by path (/proc/<pid>/ns/net) with a net.* sysctl: runc
    refuses it; pyctr-runtime wrote it on the host. A new namespace still gets it, though /proc/sys is read-only
    in the config (written before the read-only paths, as runc: it failed with EROFS)."""
    before = KEEPALIVE.read_text()
    wanted = str(int(before) + 3)
    own = _sysctl_bundle(tmp_path / "own", oci_rootfs, {"type": "network"})
    oci_runtime("run", "--bundle", str(own), "sysctl-own")
    assert oci_runtime.out.read_text().split() == [wanted]
    host = _sysctl_bundle(tmp_path / "host", oci_rootfs, {"type": "network", "path": f"/proc/{os.getpid()}/ns/net"})
    try:
        done = oci_runtime("run", "--bundle", str(host), "sysctl-host", check=False)
        assert KEEPALIVE.read_text() == before
    finally:
        KEEPALIVE.write_text(before)
    assert done.returncode == 1
    error = oci_runtime.err.read_text()  # runc's log line: msg="sysctl \"net...\" not allowed in host ..."
    assert "net.ipv4.tcp_keepalive_probes" in error and "not allowed in host network namespace" in error, error
    assert not (oci_runtime.root / "sysctl-host").exists()
