"""Real callers of pyctr-runtime: Debian's containerd 1.6 (started here on a temporary root and socket, its CRI
plugin off) runs, execs into, pauses, kills and deletes containers of an image pulled from the test registry
with `ctr run --runc-binary pyctr-runtime`, which goes through containerd-shim-runc-v2 exactly as a Kubernetes
node's RuntimeClass does (README: plugging pyctr-runtime into containerd); Debian's podman 4.3 runs, execs
into (with and without a terminal), logs, stops and removes containers with `--runtime pyctr-runtime`."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import REPO_ROOT
from tests.integration.helpers import remove_parent_cgroups, wait_for

RUNTIME = REPO_ROOT / ".venv" / "bin" / "pyctr-runtime"
NAMESPACE = f"pyctr-oci-{os.getpid()}"


class Containerd:
    def __init__(self, base: Path, proc: subprocess.Popen) -> None:
        self.base, self.proc = base, proc
        self.socket = base / "containerd.sock"

    def ctr(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(["ctr", "--address", str(self.socket), "--namespace", NAMESPACE, *args],
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def log(self) -> str:
        return (self.base / "containerd.log").read_text(errors="replace")[-3000:]


@pytest.fixture(scope="module")
def containerd(tmp_path_factory) -> Iterator[Containerd]:
    if shutil.which("containerd") is None or shutil.which("ctr") is None:
        pytest.fail("containerd is missing: `make install` installs Debian's containerd", pytrace=False)
    if not RUNTIME.exists():
        subprocess.run([str(REPO_ROOT / ".venv" / "bin" / "python"), str(REPO_ROOT / "scripts" / "write_launcher.py"),
                        str(RUNTIME)], check=True)
    base = tmp_path_factory.mktemp("containerd")
    (base / "config.toml").write_text(
        "version = 2\n"
        f'root = "{base}/root"\nstate = "{base}/state"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        f'[grpc]\n  address = "{base}/containerd.sock"\n'
        f'[ttrpc]\n  address = "{base}/containerd.sock.ttrpc"\n')
    with open(base / "containerd.log", "wb") as log:
        proc = subprocess.Popen(["containerd", "--config", str(base / "config.toml")], stdout=log, stderr=log,
                                stdin=subprocess.DEVNULL)
    daemon = Containerd(base, proc)
    try:
        wait_for(lambda: daemon.ctr("version", timeout=5).returncode == 0, timeout=30, what="containerd")
        yield daemon
    finally:
        for task in daemon.ctr("task", "ls", "-q").stdout.split():
            daemon.ctr("task", "kill", "-s", "KILL", task)
            daemon.ctr("task", "rm", "-f", task)
        for container in daemon.ctr("containers", "ls", "-q").stdout.split():
            daemon.ctr("containers", "rm", container)
        proc.terminate()
        proc.wait(30)
        subprocess.run(["umount", "-R", str(base / "root")], capture_output=True)
        remove_parent_cgroups(NAMESPACE)  # containerd's cgroupsPath is /<namespace>/<id>
        shutil.rmtree(f"/run/containerd/runc/{NAMESPACE}", ignore_errors=True)


@pytest.fixture(scope="module")
def image(containerd, registry) -> str:
    reference = f"{registry.host}/library/busybox:latest"
    pulled = containerd.ctr("images", "pull", "--plain-http", reference)
    assert pulled.returncode == 0, pulled.stderr
    return reference


def test_ctr_run_in_the_foreground(containerd, image):
    done = containerd.ctr("run", "--rm", "--runc-binary", str(RUNTIME), image, "fg",
                          "sh", "-c", "echo from-pyctr-runtime; cat /proc/1/cmdline; exit 4")
    assert done.returncode == 4, (done.stderr, containerd.log())
    assert done.stdout.split("\n")[0] == "from-pyctr-runtime"
    assert done.stdout.split("\n")[1].startswith("sh")  # the command is the container's PID 1
    assert not Path(f"/run/containerd/runc/{NAMESPACE}/fg").exists()  # deleted through pyctr-runtime


def test_ctr_detached_exec_pause_kill_delete(containerd, image):
    started = containerd.ctr("run", "-d", "--runc-binary", str(RUNTIME), image, "bg", "sleep", "1000")
    assert started.returncode == 0, (started.stderr, containerd.log())
    state_dir = Path(f"/run/containerd/runc/{NAMESPACE}/bg")
    assert (state_dir / "state.json").exists()  # pyctr-runtime's own state: containerd called it, not runc
    tasks = containerd.ctr("task", "ls").stdout
    assert "RUNNING" in tasks
    executed = containerd.ctr("task", "exec", "--exec-id", "e1", "bg", "sh", "-c", "echo exec-ok; exit 6")
    assert (executed.returncode, executed.stdout.strip()) == (6, "exec-ok"), executed.stderr
    assert containerd.ctr("task", "pause", "bg").returncode == 0
    assert "PAUSED" in containerd.ctr("task", "ls").stdout
    assert containerd.ctr("task", "resume", "bg").returncode == 0
    killed = containerd.ctr("task", "kill", "-s", "KILL", "bg")
    assert killed.returncode == 0, killed.stderr
    wait_for(lambda: "STOPPED" in containerd.ctr("task", "ls").stdout, what="stopped")
    assert containerd.ctr("task", "rm", "bg").returncode == 0
    assert containerd.ctr("containers", "rm", "bg").returncode == 0
    deadline = time.monotonic() + 10
    while state_dir.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not state_dir.exists()


def test_containerd_shows_pyctr_runtimes_error(containerd, image):
    done = containerd.ctr("run", "--rm", "--runc-binary", str(RUNTIME), image, "bad", "no-such-command")
    assert done.returncode != 0
    assert 'exec: "no-such-command": executable file not found in $PATH' in done.stderr
    containerd.ctr("containers", "rm", "bad")


# --------------------------------------------------------------------------------------------------- podman

class Podman:
    """Debian's podman 4.3 on a root of its own, `--runtime pyctr-runtime`. Its containers.conf sets default
    ulimits below this machine's hard limits: podman asks for 1048576 open files otherwise, which no runtime can
    grant here (no CAP_SYS_RESOURCE)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        conf = base / "containers.conf"
        conf.write_text(
            '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\nnetns = "none"\n'
            f'[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
            f'events_logfile_path = "{base}/events.log"\n')
        self.env = {**os.environ, "CONTAINERS_CONF": str(conf)}

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(["podman", "--root", str(self.base / "root"), "--runroot", str(self.base / "run"),
                               "--storage-driver", "overlay", "--runtime", str(RUNTIME), *args],
                              capture_output=True, text=True, timeout=timeout, env=self.env, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def podman(tmp_path_factory, registry) -> Iterator[tuple[Podman, str]]:
    if shutil.which("podman") is None:
        pytest.fail("podman is missing: `make install` installs Debian's podman", pytrace=False)
    base = tmp_path_factory.mktemp("podman")
    tool = Podman(base)
    reference = f"{registry.host}/library/busybox:latest"
    pulled = tool("pull", "--tls-verify=false", reference)
    assert pulled.returncode == 0, pulled.stderr
    try:
        yield tool, reference
    finally:
        tool("rm", "--all", "--force")
        tool("system", "reset", "--force")
        subprocess.run(["umount", "-R", str(base / "root")], capture_output=True)
        remove_parent_cgroups("libpod_parent")  # podman's cgroupfs parent


def test_podman_run_exit_code_and_output(podman):
    tool, image = podman
    done = tool("run", "--rm", image, "sh", "-c", "echo from-podman; ulimit -n; exit 5")
    assert done.returncode == 5, done.stderr
    assert done.stdout.split() == ["from-podman", "1024"]


def test_podman_detached_exec_logs_stop_rm(podman):
    tool, image = podman
    started = tool("run", "-d", "--name", "pd", image, "sh", "-c",
                   'echo started; trap "echo bye; exit 0" TERM; while true; do sleep 0.1; done')
    assert started.returncode == 0, started.stderr
    wait_for(lambda: "started" in tool("logs", "pd").stdout, what="the container's first line")
    executed = tool("exec", "pd", "sh", "-c", "echo exec-ok; exit 3")
    assert (executed.returncode, executed.stdout.strip()) == (3, "exec-ok"), executed.stderr
    with_tty = tool("exec", "-t", "pd", "tty")  # the pty master comes back through conmon's console socket
    assert with_tty.returncode == 0 and with_tty.stdout.strip() == "/dev/pts/0", with_tty.stderr
    stopped = tool("stop", "pd")
    assert stopped.returncode == 0, stopped.stderr
    assert tool("logs", "pd").stdout.split() == ["started", "bye"]
    assert "Exited (0)" in tool("ps", "-a").stdout
    removed = tool("rm", "pd")
    assert removed.returncode == 0, removed.stderr
    assert "pd" not in tool("ps", "-a", "--format", "{{.Names}}").stdout.split()
