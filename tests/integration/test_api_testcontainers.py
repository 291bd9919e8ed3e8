"""testcontainers-python (PyPI `testcontainers`, pinned in the test extras) against `pyctr system service` on a
temporary socket: a DockerContainer("busybox") with a log wait strategy and a mapped port.

Ryuk (testcontainers' reaper, `testcontainers/ryuk`) is a Go program published only as an image on Docker Hub:
no Debian, PyPI or npm package ships it and the Go module proxy refuses its module, so it cannot reach the
tests' registry without the internet. testcontainers runs here with Ryuk disabled, and what Ryuk asks of the
daemon is tested on its own: a container created exactly as testcontainers creates Ryuk (privileged, the
daemon's socket bind-mounted at /var/run/docker.sock, AutoRemove, port 8080 published) speaks Ryuk's protocol
(`label=K=V` lines, `ACK`) and, once its client hangs up, reaps through the bind-mounted socket what carries the
session's label (containers force-removed with their volumes, networks and volumes pruned by label), then exits
and is removed by the daemon.
"""

from __future__ import annotations

import socket
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

import docker
import pytest
from testcontainers.core.config import testcontainers_config
from testcontainers.core.container import DockerContainer
from testcontainers.core.wait_strategies import LogMessageWaitStrategy

from tests.integration.api_daemon import Daemon, served_daemon
from tests.integration.helpers import cgroup_dirs, veths_of

SESSION_LABEL = "org.testcontainers.session-id"

# What Ryuk does, in the python seed image's python3 (stdlib only): listen on 8080, ACK each `label=K=V` line,
# and once the client is gone, remove everything carrying those labels through the bind-mounted socket.
REAPER = r"""
import http.client, json, socket, sys, urllib.parse

class Engine(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect("/var/run/docker.sock")

def call(method, path):
    conn = Engine("docker")
    conn.request(method, "/v1.41" + path)
    answer = conn.getresponse()
    body = answer.read()
    conn.close()
    if answer.status >= 300:
        sys.exit(f"{method} {path}: {answer.status} {body!r}")
    return json.loads(body) if body else None

listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("0.0.0.0", 8080))
listener.listen(1)
print("Started!", flush=True)
client, _ = listener.accept()
labels, pending = [], b""
while chunk := client.recv(4096):
    pending += chunk
    while b"\n" in pending:
        line, pending = pending.split(b"\n", 1)
        kind, _, value = line.strip().decode().partition("=")
        if kind == "label":
            labels.append(value)
        client.sendall(b"ACK\n")
filters = urllib.parse.quote(json.dumps({"label": labels}))
reaped = [c["Id"] for c in call("GET", f"/containers/json?all=1&filters={filters}")]
for container_id in reaped:
    call("DELETE", f"/containers/{container_id}?force=1&v=1")
networks = call("POST", f"/networks/prune?filters={filters}")["NetworksDeleted"] or []
volumes = call("POST", f"/volumes/prune?filters={filters}")["VolumesDeleted"] or []
print(f"Removed {len(reaped)} container(s), {len(networks)} network(s), {len(volumes)} volume(s)", flush=True)
"""


@pytest.fixture(scope="module")
def daemon(pyctr_config, tmp_path_factory):
    # PYCTR_DEBUG: every failed request is logged, and the fixture fails if any was
    yield from served_daemon(pyctr_config, tmp_path_factory, "api-testcontainers", {"PYCTR_DEBUG": "1"},
                             fail_on_logged_errors=True)


@pytest.fixture
def engine(daemon: Daemon, monkeypatch):
    """testcontainers and docker-py pointed at the daemon (DOCKER_HOST), Ryuk disabled (see the docstring)."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{daemon.sock}")
    monkeypatch.setattr(testcontainers_config, "ryuk_disabled", True)
    client = docker.DockerClient(base_url=f"unix://{daemon.sock}", version="auto", timeout=60)
    yield client
    client.close()


def test_docker_container_with_log_wait_and_mapped_port(engine, daemon: Daemon):
    command = ["sh", "-c", "echo hello-from-tc > /tmp/index.html; sleep 0.5; echo serving; "
                           "exec httpd -f -p 8080 -h /tmp"]
    container = (DockerContainer("busybox").with_command(command).with_exposed_ports(8080)
                 .waiting_for(LogMessageWaitStrategy("serving").with_startup_timeout(20)))
    with container:
        host, port = container.get_container_host_ip(), container.get_exposed_port(8080)
        body = urllib.request.urlopen(f"http://{host}:{port}/index.html", timeout=10).read()
        assert body == b"hello-from-tc\n"
        started = container.get_wrapped_container()
        assert started.labels[SESSION_LABEL] and started.labels["org.testcontainers.lang"] == "python"
        container_id = started.id
        assert daemon.pyctr("ps", "-q", "--no-trunc").stdout.split() == [container_id]
    assert daemon.pyctr("ps", "-aq").stdout.strip() == ""
    assert cgroup_dirs({container_id}) == [] and veths_of([container_id]) == []


def test_log_wait_times_out_with_the_logs(engine):
    container = (DockerContainer("busybox").with_command(["sh", "-c", "echo not-it; sleep 30"])
                 .waiting_for(LogMessageWaitStrategy("never-said").with_startup_timeout(2)))
    with pytest.raises(TimeoutError):
        container.start()
    assert container.get_wrapped_container().logs() == b"not-it\n"
    container.stop()


def ryuk_handshake(host_port: int, session: str, timeout: float = 20) -> socket.socket:
    """testcontainers' side of Ryuk's protocol: connect (retrying until it listens), send the filter, read ACK."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = socket.create_connection(("127.0.0.1", host_port), timeout=5)
            conn.sendall(f"label={SESSION_LABEL}={session}\r\n".encode())
            if conn.recv(16) == b"ACK\n":
                return conn
            conn.close()
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError("the reaper never acknowledged its filter")
        time.sleep(0.2)


def test_ryuk_shaped_reaper_removes_the_session(engine, daemon: Daemon):
    session = str(uuid.uuid4())
    labels = {SESSION_LABEL: session}
    daemon.pyctr("pull", "-q", "python:3-slim", check=True, timeout=300)
    victim = engine.containers.run("busybox", ["sleep", "300"], detach=True, labels=labels)
    bystander = engine.containers.run("busybox", ["sleep", "300"], detach=True)
    network = engine.networks.create(f"tc-{session[:8]}", labels=labels)
    volume = engine.volumes.create(f"tc-{session[:8]}", labels=labels)
    reaper = engine.containers.create(  # as testcontainers' Reaper._create_instance asks for Ryuk
        "python:3-slim", ["python3", "-c", REAPER], name=f"testcontainers-ryuk-{session}", ports={"8080/tcp": None},
        volumes={str(daemon.sock): {"bind": "/var/run/docker.sock", "mode": "rw"}}, privileged=True,
        auto_remove=True, environment={"RYUK_RECONNECTION_TIMEOUT": "10s"},
        labels={"org.testcontainers": "true", "org.testcontainers.lang": "python"})
    try:
        reaper.start()
        reaper.reload()
        assert reaper.attrs["HostConfig"]["Privileged"] is True and reaper.attrs["HostConfig"]["AutoRemove"] is True
        host_port = int(reaper.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"])
        conn = ryuk_handshake(host_port, session)
        assert victim.id in {c.id for c in engine.containers.list(filters={"label": f"{SESSION_LABEL}={session}"})}
        with ThreadPoolExecutor(1) as pool:  # waiting as `docker run --rm` does, from before the exit
            removed = pool.submit(engine.api.wait, reaper.id, timeout=60, condition="removed")
            time.sleep(0.2)
            conn.close()  # the test session ends: Ryuk reaps, exits, and the daemon removes it
            assert removed.result()["StatusCode"] == 0
        with pytest.raises(docker.errors.NotFound):
            engine.containers.get(reaper.id)  # AutoRemove done by the daemon
        with pytest.raises(docker.errors.NotFound):
            engine.containers.get(victim.id)
        with pytest.raises(docker.errors.NotFound):
            engine.networks.get(network.id)
        with pytest.raises(docker.errors.NotFound):
            engine.volumes.get(volume.name)
        bystander.reload()
        assert bystander.status == "running"
        assert cgroup_dirs({victim.id, reaper.id}) == [] and veths_of([victim.id, reaper.id]) == []
    finally:
        for leftover in (reaper, victim, bystander):
            try:
                leftover.remove(force=True)
            except docker.errors.NotFound:
                pass
        for cleanup in (network.remove, volume.remove):
            try:
                cleanup()
            except docker.errors.NotFound:
                pass
