"""Real callers of pyctr-runtime: Debian's containerd 1.6 (started here on a temporary root and socket, its CRI
plugin off) runs, execs into, pauses, kills and deletes containers of an image pulled from the test registry
with `ctr run --runc-binary pyctr-runtime`, which goes through containerd-shim-runc-v2 exactly as a Kubernetes
node's RuntimeClass does (README: plugging pyctr-runtime into containerd)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import REPO_ROOT
from tests.integration.helpers import wait_for

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
