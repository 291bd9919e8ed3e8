"""The real docker CLI (/usr/local/bin/docker, negotiating down to API 1.41) against `pyctr system service` on a
temporary socket: run, run -d -p, ps, images, pull, exec, logs -f, cp both ways, inspect, stop, rm, rmi, build.
dockerd is never started: every answer comes from pyctr's daemon."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tarfile
import threading
import time
import urllib.request
import uuid

import pytest

from tests.integration.api_daemon import DOCKER, Daemon, hostile_tar, served_daemon
from tests.integration.conftest import PYCTR_BIN
from tests.integration.helpers import program_under_a_pty


@pytest.fixture(scope="module")
def daemon(pyctr_config, tmp_path_factory):
    yield from served_daemon(pyctr_config, tmp_path_factory, "api")


def test_version_is_negotiated_down_and_too_new_is_refused(daemon):
    out = daemon.docker("version", "--format", "{{.Client.APIVersion}} {{.Server.APIVersion}}", check=True).stdout
    assert out.split() == ["1.41", "1.41"]
    status, headers, body = daemon.request("GET", "/_ping")
    assert (status, body) == (200, b"OK")
    assert headers["api-version"] == "1.41" and headers["ostype"] == "linux"
    status, headers, body = daemon.request("HEAD", "/_ping")
    assert status == 200 and body == b"" and headers["api-version"] == "1.41"
    status, _, body = daemon.request("GET", "/v1.99/version")
    assert status == 400
    assert json.loads(body) == {"message": "client version 1.99 is too new. Maximum supported API version is 1.41"}
    status, _, body = daemon.request("GET", "/v1.24/containers/json")
    assert status == 200 and isinstance(json.loads(body), list)


def test_run_rm_prints_and_leaves_nothing(daemon):
    proc = daemon.docker("run", "--rm", "busybox", "echo", "hi", check=True)
    assert proc.stdout == "hi\n"
    assert daemon.pyctr("ps", "-aq").stdout.strip() == ""
    assert daemon.docker("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3").returncode == 3


def test_run_with_stdin(daemon):
    proc = daemon.docker("run", "-i", "--rm", "busybox", "sh", "-c", "cat; echo done", input="hello\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "hello\ndone\n"


def test_detached_with_port_ps_exec_logs_inspect_stop_rm(daemon):
    name = f"web-{uuid.uuid4().hex[:6]}"
    daemon.docker("run", "-d", "--name", name, "-p", "127.0.0.1::8080", "busybox", "sh", "-c",
                  "echo hello-from-web > /tmp/index.html; echo started; httpd -f -p 8080 -h /tmp", check=True)
    try:
        ps = daemon.docker("ps", "--format", "{{.Names}} {{.Status}}", check=True).stdout
        assert any(line.startswith(f"{name} Up") for line in ps.splitlines()), ps
        assert name in daemon.pyctr("ps").stdout  # one state: the CLI sees what the API made
        port = daemon.docker("port", name, "8080", check=True).stdout.strip()
        host, _, number = port.rpartition(":")
        body = b""
        for _ in range(50):
            try:
                body = urllib.request.urlopen(f"http://{host}:{number}/index.html", timeout=2).read()
                break
            except OSError:
                time.sleep(0.1)
        assert body == b"hello-from-web\n"
        assert daemon.docker("exec", name, "cat", "/tmp/index.html", check=True).stdout == "hello-from-web\n"
        assert daemon.docker("exec", name, "sh", "-c", "exit 5").returncode == 5
        logs = daemon.docker("logs", name, check=True).stdout
        assert logs == "started\n"
        doc = json.loads(daemon.docker("inspect", name, check=True).stdout)[0]
        assert doc["State"]["Running"] is True and doc["Name"] == f"/{name}"
        daemon.docker("stop", "-t", "1", name, check=True)
        assert json.loads(daemon.docker("inspect", name, check=True).stdout)[0]["State"]["Running"] is False
    finally:
        daemon.docker("rm", "-f", name)
    assert daemon.docker("inspect", name).returncode == 1


def test_logs_follow_until_exit(daemon):
    name = f"logs-{uuid.uuid4().hex[:6]}"
    daemon.docker("run", "-d", "--name", name, "busybox", "sh", "-c",
                  "for i in 1 2 3; do echo line$i; sleep 0.3; done; echo bye >&2", check=True)
    try:
        proc = daemon.docker("logs", "-f", name, check=True, timeout=30)
        assert proc.stdout == "line1\nline2\nline3\n" and proc.stderr == "bye\n"
        tail = daemon.docker("logs", "--tail", "1", name, check=True)
        assert tail.stdout == "" and tail.stderr == "bye\n"
    finally:
        daemon.docker("rm", "-f", name)


def test_cp_both_ways(daemon, tmp_path):
    name = f"cp-{uuid.uuid4().hex[:6]}"
    daemon.docker("run", "-d", "--name", name, "--network", "none", "busybox", "sleep", "300", check=True)
    try:
        src = tmp_path / "in.txt"
        src.write_text("from the host\n")
        daemon.docker("cp", str(src), f"{name}:/tmp/", check=True)
        assert daemon.docker("exec", name, "cat", "/tmp/in.txt", check=True).stdout == "from the host\n"
        daemon.docker("exec", name, "sh", "-c", "mkdir -p /data/sub && echo deep > /data/sub/f", check=True)
        daemon.docker("cp", f"{name}:/data", str(tmp_path / "back"), check=True)
        assert (tmp_path / "back" / "sub" / "f").read_text() == "deep\n"
        missing = daemon.docker("cp", f"{name}:/nope", str(tmp_path / "x"))
        assert missing.returncode == 1 and "Could not find the file /nope" in missing.stderr
    finally:
        daemon.docker("rm", "-f", name)


def test_pull_tag_rmi_images(daemon, registry):
    daemon.docker("pull", f"{registry.host}/library/busybox", check=True, timeout=120)
    images = daemon.docker("images", "--format", "{{.Repository}}:{{.Tag}}", check=True).stdout.split()
    assert f"{registry.host}/library/busybox:latest" in images
    daemon.docker("tag", "busybox", "mine/box:1", check=True)
    assert "mine/box:1" in daemon.pyctr("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    rmi = daemon.docker("rmi", "mine/box:1", check=True)
    assert "Untagged: mine/box:1" in rmi.stdout
    missing = daemon.docker("pull", f"{registry.host}/library/no-such-image")
    assert missing.returncode == 1 and "not found" in missing.stderr


def test_build_tag_and_run(daemon, tmp_path):
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "Dockerfile").write_text("FROM busybox\nCOPY hello.txt /hello.txt\nRUN cat /hello.txt\n"
                                                   'CMD ["cat", "/hello.txt"]\n')
    (tmp_path / "ctx" / "hello.txt").write_text("built by pyctr\n")
    tag = f"apibuild-{uuid.uuid4().hex[:6]}"
    proc = daemon.docker("build", "-t", tag, str(tmp_path / "ctx"), check=True, timeout=120)
    assert "Successfully tagged" in proc.stdout
    assert daemon.docker("run", "--rm", tag, check=True).stdout == "built by pyctr\n"
    bad = daemon.docker("build", "-t", tag + "-bad", "-f", "-", str(tmp_path / "ctx"),
                        input="FROM busybox\nRUN exit 7\n")
    assert bad.returncode != 0
    daemon.docker("rmi", tag, check=True)


def test_hostile_requests_leave_the_daemon_up(daemon, tmp_path):
    status, _, body = daemon.request("POST", "/containers/create", b"{not json",
                                     {"Content-Type": "application/json"})
    assert status == 400 and "invalid JSON" in json.loads(body)["message"]
    status, _, body = daemon.request("POST", "/containers/create", b"x" * (8 << 20))
    assert status == 413
    status, _, body = daemon.request("GET", "/containers/nope/json")
    assert status == 404 and json.loads(body) == {"message": "No such container: nope"}
    status, _, _ = daemon.request("GET", "/no/such/path")
    assert status == 404
    outside = tmp_path / "outside"
    outside.mkdir()
    name = f"hostile-{uuid.uuid4().hex[:6]}"
    daemon.docker("run", "-d", "--name", name, "--network", "none", "busybox", "sleep", "300", check=True)
    try:
        evil = hostile_tar(("../../../../../../" + str(outside / "pwned")[1:], tarfile.REGTYPE, b"x", ""),
                           ("link", tarfile.SYMTYPE, b"", str(outside)), ("link/pwned2", tarfile.REGTYPE, b"y", ""))
        status, _, body = daemon.request("PUT", f"/containers/{name}/archive?path=/tmp", evil,
                                         {"Content-Type": "application/x-tar"})
        assert status >= 400, body
        assert list(outside.iterdir()) == []
    finally:
        daemon.docker("rm", "-f", name)
    context = hostile_tar(("Dockerfile", tarfile.REGTYPE, b"FROM busybox\n", ""),
                          ("../escape", tarfile.REGTYPE, b"x", ""))
    status, _, body = daemon.request("POST", "/build?t=evil", context, {"Content-Type": "application/x-tar"})
    messages = [json.loads(line) for line in body.splitlines() if line.strip()]
    assert status == 200 and "errorDetail" in messages[-1], messages
    assert daemon.alive()


def test_idle_and_slow_connections_do_not_block_others(daemon):
    from pyctr.api.http import MAX_PER_PROCESS

    idle = []
    for _ in range(MAX_PER_PROCESS - 1):  # all this process may hold, with the slow one below
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(str(daemon.sock))
        idle.append(conn)
    slow = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    slow.connect(str(daemon.sock))
    slow.sendall(b"POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Length: 100\r\n\r\n{")
    try:
        started = time.monotonic()
        assert daemon.docker("ps", check=True).returncode == 0  # another process: this one holds all it may
        assert daemon.docker("version", check=True).returncode == 0
        assert time.monotonic() - started < 10
        threads = len(os.listdir(f"/proc/{daemon.proc.pid}/task"))
        assert threads >= MAX_PER_PROCESS  # one parked thread each (test_api_hardening.py: what is beyond)
    finally:
        for conn in idle + [slow]:
            conn.close()
    deadline = time.monotonic() + 10
    while len(os.listdir(f"/proc/{daemon.proc.pid}/task")) > 20 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(os.listdir(f"/proc/{daemon.proc.pid}/task")) <= 20, "closed connections left threads behind"
    assert daemon.alive()


def test_second_daemon_on_the_same_socket_is_refused(daemon):
    proc = subprocess.run([str(PYCTR_BIN), "system", "service", "--host", f"unix://{daemon.sock}"],
                          env={**daemon.env, "PYCTR_SERVER": "0"}, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "already served" in proc.stderr
    assert daemon.alive()
    mode = os.stat(daemon.sock).st_mode & 0o777
    assert mode == 0o660


def test_events_follow_changes_made_through_the_api_and_the_cli(daemon):
    env = {**daemon.env, "DOCKER_HOST": f"unix://{daemon.sock}", "DOCKER_CONFIG": str(daemon.base / "docker-config")}
    name = f"ev-{uuid.uuid4().hex[:6]}"
    # --since now: the watcher misses nothing even if it connects after the run (the journal replays)
    watcher = subprocess.Popen([DOCKER, "events", "--since", f"{time.time():.9f}", "--filter", "type=container",
                                "--filter", f"container={name}", "--format", "{{.Action}} {{.Actor.Attributes.name}}"],
                               env=env, stdout=subprocess.PIPE, text=True)
    try:
        # created, run and removed at once: every event is in the journal, whoever recorded it
        daemon.docker("run", "--name", name, "busybox", "true", check=True)
        daemon.pyctr("rm", name, check=True)  # the CLI's change shows too
        # lines read by a thread: select() on the buffered pipe misses lines already in the reader's buffer
        seen: list[str] = []
        reader = threading.Thread(target=lambda: seen.extend(line.strip() for line in watcher.stdout), daemon=True)
        reader.start()
        deadline = time.monotonic() + 15
        while len(seen) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        watcher.kill()
        watcher.wait()
    assert seen == [f"create {name}", f"attach {name}", f"start {name}", f"die {name}", f"destroy {name}"]


def test_system_df(daemon):
    out = daemon.docker("system", "df", "--format", "{{.Type}} {{.TotalCount}}", check=True).stdout
    lines = dict(line.rsplit(" ", 1) for line in out.splitlines())
    assert int(lines["Images"]) >= 1 and "Containers" in lines


def docker_in_a_terminal(daemon: Daemon, args: list[str], typed: bytes, timeout: float = 30) -> tuple[int, bytes]:
    """`docker ARGS` with a real terminal (a pty), typing `typed` once the shell's prompt shows."""
    env = {**daemon.env, "DOCKER_HOST": f"unix://{daemon.sock}", "DOCKER_CONFIG": str(daemon.base / "docker-config")}
    return program_under_a_pty([DOCKER, *args], env, typed=typed, timeout=timeout)


def test_run_it_and_exec_it_in_a_terminal(daemon):
    code, shown = docker_in_a_terminal(daemon, ["run", "-it", "--rm", "busybox", "sh"],
                                       b"echo in-tty-$((6*7))\rexit 4\r")
    assert code == 4 and b"in-tty-42" in shown, shown
    name = f"tty-{uuid.uuid4().hex[:6]}"
    daemon.docker("run", "-d", "--name", name, "--network", "none", "busybox", "sleep", "300", check=True)
    try:
        code, shown = docker_in_a_terminal(daemon, ["exec", "-it", name, "sh"], b"echo exec-$((6*7))\rexit 5\r")
        assert code == 5 and b"exec-42" in shown, shown
    finally:
        daemon.docker("rm", "-f", name)
