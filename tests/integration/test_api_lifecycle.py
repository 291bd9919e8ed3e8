"""The daemon's own life: socket activation as systemd does it, a restart that leaves running containers
running and their logs readable (live-restore), and clients that vanish mid-stream without leaking."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid

import pytest

from tests.integration.api_daemon import DOCKER, Daemon, start_daemon
from tests.integration.conftest import PYCTR_BIN, _env_for, make_root
from tests.integration.helpers import cgroup_dirs, veths_of


@pytest.fixture
def env(pyctr_config, tmp_path):
    (tmp_path / "docker-config").mkdir()
    environment = _env_for(make_root(tmp_path / "root"), pyctr_config)
    subprocess.run([str(PYCTR_BIN), "pull", "-q", "busybox"], env=environment, check=True, timeout=120,
                   capture_output=True)
    return environment


def stop(daemon: Daemon) -> None:
    daemon.proc.send_signal(signal.SIGTERM)
    daemon.proc.wait(timeout=30)


def test_socket_activation(env, tmp_path):
    sock = tmp_path / "activated.sock"
    activator = subprocess.Popen(
        ["systemd-socket-activate", "-l", str(sock), *[f"-E{k}={v}" for k, v in env.items() if k.startswith("PYCTR")],
         "-EPYCTR_SERVER=0", str(PYCTR_BIN), "system", "service", "--host", "unix:///nonexistent/never-bound.sock"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        daemon = Daemon(activator, sock, env, tmp_path)
        out = daemon.docker("run", "--rm", "busybox", "echo", "activated", timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout == "activated\n"
        assert not os.path.exists("/nonexistent/never-bound.sock")
    finally:
        activator.terminate()
        activator.wait(timeout=30)


def test_restart_leaves_containers_running_and_logs_readable(env, tmp_path):
    daemon = start_daemon(env, tmp_path)
    name = f"live-{uuid.uuid4().hex[:6]}"
    try:
        daemon.docker("run", "-d", "--name", name, "busybox", "sh", "-c",
                      "echo before; sleep 1.5; echo after; sleep 300", check=True)
        stop(daemon)
        assert not daemon.sock.exists()
        assert "Up" in daemon.pyctr("ps", "--format", "{{.Status}}", "--filter", f"name={name}").stdout
        time.sleep(2)
        daemon = start_daemon(env, tmp_path)
        assert daemon.docker("logs", name, check=True).stdout == "before\nafter\n"
        assert daemon.docker("exec", name, "echo", "still here", check=True).stdout == "still here\n"
        daemon.docker("rm", "-f", name, check=True)
    finally:
        daemon.pyctr("rm", "-f", name)
        if daemon.proc.poll() is None:
            stop(daemon)


def test_client_gone_mid_stream_leaves_the_container_running_then_nothing(env, tmp_path):
    daemon = start_daemon(env, tmp_path)
    name = f"gone-{uuid.uuid4().hex[:6]}"
    docker_env = {**env, "DOCKER_HOST": f"unix://{daemon.sock}", "DOCKER_CONFIG": str(tmp_path / "docker-config")}
    try:
        client = subprocess.Popen([DOCKER, "run", "--name", name, "busybox", "sh", "-c",
                                   "while true; do echo tick; sleep 0.1; done"],
                                  env=docker_env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert client.stdout.readline() == b"tick\n"
        client.kill()
        client.wait()
        follower = subprocess.Popen([DOCKER, "logs", "-f", name], env=docker_env, stdout=subprocess.PIPE)
        assert follower.stdout.readline() == b"tick\n"
        follower.kill()
        follower.wait()
        time.sleep(0.5)
        assert "Up" in daemon.pyctr("ps", "--format", "{{.Status}}", "--filter", f"name={name}").stdout
        container_id = daemon.pyctr("inspect", "-f", "{{.Id}}", name, check=True).stdout.strip()
        threads = len(os.listdir(f"/proc/{daemon.proc.pid}/task"))
        daemon.docker("rm", "-f", name, check=True)
        assert cgroup_dirs({container_id}) == [] and veths_of([container_id]) == []
        deadline = time.monotonic() + 5
        while len(os.listdir(f"/proc/{daemon.proc.pid}/task")) > threads and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(os.listdir(f"/proc/{daemon.proc.pid}/task")) <= max(threads, 8), "stream threads stayed behind"
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.connect(str(daemon.sock))
        probe.close()
    finally:
        daemon.pyctr("rm", "-f", name)
        stop(daemon)
