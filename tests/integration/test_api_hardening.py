"""The Engine API daemon under the attack review's second round, for real on a temporary socket (each test
reproduces its attack and fails without the fix), and the endpoints added with it: stats, images get/load/
prune, commit, container/exec resize and push, driven by docker-py and the docker CLI."""

from __future__ import annotations

import io
import json
import os
import socket
import tarfile
import threading
import time
import urllib.request
import uuid

import docker
import pytest

from pyctr.api.execs import MAX_EXEC_BODY, MAX_PENDING
from pyctr.api.http import HEADER_SECONDS, MAX_PER_PROCESS
from tests.integration.api_daemon import DOCKER, Daemon, docker_py_session, hostile_tar, parse_response
from tests.integration.helpers import program_under_a_pty


@pytest.fixture(scope="module")
def api(pyctr_config, tmp_path_factory):
    yield from docker_py_session(pyctr_config, tmp_path_factory, "api-hard")


@pytest.fixture
def sleeper(api):
    client, _ = api
    c = client.containers.run("busybox", ["sleep", "300"], detach=True, network_mode="none",
                              name=f"hard-{uuid.uuid4().hex[:6]}")
    yield c
    c.remove(force=True)


def connect(daemon: Daemon) -> socket.socket:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(str(daemon.sock))
    return conn


def daemon_log(daemon: Daemon) -> str:
    return (daemon.base / "daemon.log").read_text(errors="replace")


def threads_of(daemon: Daemon) -> int:
    return len(os.listdir(f"/proc/{daemon.proc.pid}/task"))


def wait_until(condition, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


# -- (a) idle connections: a deadline for the request head, a cap per client process ---------------------------

def test_trickled_headers_are_cut_and_one_process_cannot_take_every_slot(api):
    _, daemon = api
    cut_after: list[float] = []

    def trickle() -> None:
        conn = connect(daemon)
        started = time.monotonic()
        try:
            conn.sendall(b"GET /_ping HTTP/1.1\r\nHost: d\r\n")
            conn.settimeout(2)
            while time.monotonic() - started < HEADER_SECONDS + 10:
                conn.sendall(b"X-Slow: 1\r\n")  # a header line a second: no single read ever waits long
                try:
                    if conn.recv(1) == b"":
                        break
                except TimeoutError:
                    continue
        except OSError:
            pass
        cut_after.append(time.monotonic() - started)
        conn.close()

    trickler = threading.Thread(target=trickle)
    trickler.start()
    held = [connect(daemon) for _ in range(MAX_PER_PROCESS - 1)]  # the trickler holds one more slot
    try:
        time.sleep(0.5)
        extra = connect(daemon)
        extra.settimeout(5)
        status, _, body = parse_response(extra.recv(4096))  # refused at once, with a reason, no thread
        extra.close()
        assert status == 503 and f"process {os.getpid()}" in json.loads(body)["message"]
        assert daemon.docker("ps", check=True).returncode == 0  # another client process still gets in
    finally:
        for conn in held:
            conn.close()
    trickler.join(timeout=HEADER_SECONDS + 15)
    assert cut_after and HEADER_SECONDS - 1 < cut_after[0] < HEADER_SECONDS + 3, cut_after
    assert wait_until(lambda: threads_of(daemon) <= 20, 10), "closed connections left threads behind"
    assert daemon.alive()


# -- (b) exec: a client that goes away, records that are never started ------------------------------------------

def hijacked_exec(daemon: Daemon, exec_id: str, tty: bool) -> socket.socket:
    conn = connect(daemon)
    body = json.dumps({"Detach": False, "Tty": tty}).encode()
    conn.sendall(f"POST /v1.41/exec/{exec_id}/start HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
                 f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    head = b""
    while b"\r\n\r\n" not in head:
        head += conn.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return conn


@pytest.mark.parametrize("tty", [False, True])
def test_an_exec_whose_client_goes_away_is_ended_and_holds_nothing(api, sleeper, tty):
    client, daemon = api
    client.api.close()
    time.sleep(0.3)  # the daemon's threads for those connections end
    baseline = threads_of(daemon)
    exec_id = client.api.exec_create(sleeper.id, ["sleep", "1000"], tty=tty)["Id"]
    conn = hijacked_exec(daemon, exec_id, tty)
    assert wait_until(lambda: client.api.exec_inspect(exec_id)["Running"], 10)
    conn.close()  # the client dies mid-exec
    assert wait_until(lambda: not client.api.exec_inspect(exec_id)["Running"], 5), "the exec outlived its client"
    assert "sleep 1000" not in sleeper.exec_run(["ps", "-o", "args"]).output.decode()
    client.api.close()  # its pooled keep-alive connections are threads of the daemon too
    assert wait_until(lambda: threads_of(daemon) <= baseline, 15), "the exec's thread stayed"


def test_unstarted_execs_are_bounded_and_expire_when_their_container_stops(api, sleeper):
    client, daemon = api
    ids = [client.api.exec_create(sleeper.id, ["true"])["Id"] for _ in range(MAX_PENDING + 5)]
    with pytest.raises(docker.errors.NotFound):
        client.api.exec_inspect(ids[0])  # the oldest were forgotten
    assert client.api.exec_inspect(ids[-1])["Running"] is False
    big = json.dumps({"Cmd": ["echo", "x" * MAX_EXEC_BODY], "AttachStdout": True}).encode()
    status, _, _ = daemon.request("POST", f"/v1.41/containers/{sleeper.id}/exec", big,
                                  {"Content-Type": "application/json"})
    assert status == 413
    sleeper.kill()

    def forgotten() -> bool:
        try:
            client.api.exec_inspect(ids[-1])
            return False
        except docker.errors.NotFound:
            return True

    assert wait_until(forgotten, 10)  # dockerd drops a container's execs when it stops


# -- (c)(d) archive paths and errors the kernel gives: Docker's status before any body --------------------------

def test_archive_paths_that_do_not_resolve_get_dockers_status_before_any_body(api):
    client, daemon = api
    c = client.containers.run("busybox", ["sh", "-c", "ln -s /nope /link; ln -s loop /loop; exec sleep 300"],
                              detach=True, network_mode="none")
    try:
        assert wait_until(lambda: c.exec_run(["test", "-L", "/loop"]).exit_code == 0, 10)
        for running in (True, False):
            for method in ("GET", "HEAD"):
                status, headers, body = daemon.request(method, f"/v1.41/containers/{c.id}/archive?path=/link/")
                assert status == 404 and "transfer-encoding" not in headers, (running, method, status)
                if method == "GET":
                    assert json.loads(body)["message"].startswith("Could not find the file /link/")
            status, _, body = daemon.request("GET", f"/v1.41/containers/{c.id}/archive?path=/loop/")
            assert status == 400 and "too many levels of symbolic links" in json.loads(body)["message"], body
            status, _, body = daemon.request("GET", f"/v1.41/containers/{c.id}/archive?path=/{'a' * 5000}")
            assert status == 400 and "name too long" in json.loads(body)["message"], body
            if running:
                c.kill()  # the same answers for a stopped container (its filesystem is read in a forked child)
                c.wait()
    finally:
        c.remove(force=True)
    status, _, body = daemon.request("POST", "/v1.41/containers/create", b"[" * 100_000,
                                     {"Content-Type": "application/json"})
    assert status == 400, body
    status, _, body = daemon.request("POST", "/v1.41/containers/create", json.dumps(
        {"Image": "busybox", "HostConfig": {"Binds": ["relative:/x:zz"]}}).encode(),
        {"Content-Type": "application/json"})
    assert status == 400 and "invalid" in json.loads(body)["message"], body
    assert "Traceback" not in daemon_log(daemon)
    assert daemon.alive()


# -- (e)(f) the log and the headers ---------------------------------------------------------------------------

def test_a_client_reset_is_one_log_line_and_there_is_one_server_header(api):
    _, daemon = api
    conn = connect(daemon)
    conn.sendall(b"GET /_ping HTTP/1.1\r\nHost: d\r\n\r\nGET /_ping HTTP/1.1\r\nHost: d\r\n\r\n")
    time.sleep(0.5)  # both answered, unread: closing now resets the daemon's next read
    conn.close()
    assert wait_until(lambda: "ended: Connection reset" in daemon_log(daemon), 5), daemon_log(daemon)
    log = daemon_log(daemon)
    assert "Traceback" not in log and log.count("ended: Connection reset") == 1
    conn = connect(daemon)
    conn.sendall(b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
    head = b""
    while chunk := conn.recv(4096):
        head += chunk
    conn.close()
    servers = [line for line in head.split(b"\r\n\r\n")[0].split(b"\r\n") if line.lower().startswith(b"server:")]
    assert servers == [b"Server: Docker/pyctr (linux)"]


# -- stats ----------------------------------------------------------------------------------------------------

def test_stats_one_shot_streamed_and_the_cli_row(api):
    client, daemon = api
    name = f"busy-{uuid.uuid4().hex[:6]}"
    c = client.containers.run("busybox", ["sh", "-c", "while :; do :; done"], detach=True, name=name,
                              network_mode="none", mem_limit="64m")
    try:
        doc = c.stats(stream=False)
        assert doc["name"] == f"/{name}" and doc["id"] == c.id
        cpu, pre = doc["cpu_stats"], doc["precpu_stats"]
        busy = (cpu["cpu_usage"]["total_usage"] - pre["cpu_usage"]["total_usage"]) / (
            cpu["system_cpu_usage"] - pre["system_cpu_usage"]) * cpu["online_cpus"] * 100
        assert busy > 20, doc  # a shell spinning: most of a CPU
        assert doc["memory_stats"]["limit"] == 64 << 20 and doc["pids_stats"]["current"] >= 1
        one = client.api.stats(c.id, stream=False, one_shot=True)
        assert one["preread"] == "0001-01-01T00:00:00Z" and one["cpu_stats"]["cpu_usage"]["total_usage"] > 0
        streamed = client.api.stats(c.id, stream=True, decode=True)
        first, second = next(streamed), next(streamed)
        assert second["precpu_stats"]["cpu_usage"]["total_usage"] == first["cpu_stats"]["cpu_usage"]["total_usage"]
        row = daemon.docker("stats", "--no-stream", "--format",
                            "{{.Name}}|{{.CPUPerc}}|{{.MemUsage}}|{{.PIDs}}", name, check=True).stdout.strip()
        shown_name, cpu_text, mem_text, pids = row.split("|")
        assert shown_name == name and float(cpu_text.rstrip("%")) > 20, row
        assert mem_text.endswith("/ 64MiB") and not mem_text.startswith("0B") and int(pids) >= 1, row
    finally:
        c.remove(force=True)


# -- images: get, load, prune; commit; push -------------------------------------------------------------------

def test_save_load_prune_and_a_hostile_archive(api, tmp_path):
    client, daemon = api
    archive = b"".join(client.images.get("busybox").save(named=True))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    assert manifest[0]["RepoTags"] == ["busybox:latest"]
    daemon.docker("save", "-o", str(tmp_path / "bb.tar"), "busybox", check=True)
    client.images.get("busybox").tag("saved/box", "1")
    client.images.remove("saved/box:1")
    status, _, _ = daemon.request("GET", "/v1.41/images/no-such-image/get")
    assert status == 404
    tagged = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(archive)) as src, tarfile.open(fileobj=tagged, mode="w") as out:
        for member in src:
            data = src.extractfile(member).read() if member.isfile() else None
            if member.name == "manifest.json":
                data = json.dumps([{**manifest[0], "RepoTags": ["loaded/box:2"]}]).encode()
                member.size = len(data)
            out.addfile(member, io.BytesIO(data) if data is not None else None)
    loaded = client.images.load(tagged.getvalue())
    assert len(loaded) == 1 and "loaded/box:2" in loaded[0].tags
    cli = daemon.docker("load", "-i", str(tmp_path / "bb.tar"), check=True)
    assert cli.stdout.strip() == "Loaded image: busybox:latest"
    evil = hostile_tar(("manifest.json", tarfile.REGTYPE, b'[{"Config": "../../etc/x", "Layers": []}]', ""))
    with pytest.raises(docker.errors.ImageLoadError):
        client.images.load(evil)
    c = client.containers.run("busybox", ["sh", "-c", "echo x > /made"], detach=True, network_mode="none")
    c.wait()
    dangling = c.commit()  # no repository: a dangling image
    c.remove()
    report = client.images.prune(filters={"dangling": True})
    assert {"Deleted": dangling.id} in report["ImagesDeleted"] and report["SpaceReclaimed"] > 0
    assert client.images.get("loaded/box:2")  # tagged: not dangling, kept
    stopped = client.containers.create("busybox", ["true"], labels={"prune-me": "1"})
    kept = client.containers.create("busybox", ["true"])
    report = client.containers.prune(filters={"label": "prune-me"})
    assert report["ContainersDeleted"] == [stopped.id]
    kept.remove()
    assert daemon.alive()


def test_commit_with_changes_through_the_cli_and_docker_py(api):
    client, daemon = api
    name = f"commit-{uuid.uuid4().hex[:6]}"
    daemon.docker("run", "--name", name, "--network", "none", "busybox", "sh", "-c", "echo committed > /hello",
                  check=True)
    tag = f"committed/{name}:1"
    image_id = daemon.docker("commit", "-c", 'CMD ["cat", "/hello"]', "-m", "a message", name, tag,
                             check=True).stdout.strip()
    assert image_id.startswith("sha256:")
    assert daemon.docker("run", "--rm", "--network", "none", tag, check=True).stdout == "committed\n"
    conf = {"Env": ["MADE_BY=docker-py"], "Cmd": ["sh", "-c", "echo $MADE_BY"]}
    image = client.containers.get(name).commit(repository=f"committed/{name}", tag="2", author="me", conf=conf)
    assert image.attrs["Author"] == "me"
    assert client.containers.run(image.id, remove=True, network_mode="none") == b"docker-py\n"
    status, _, _ = daemon.request("POST", "/v1.41/commit?container=no-such-container")
    assert status == 404


def test_push_with_docker_py(api, registry):
    client, _ = api
    repository = f"{registry.host}/api-push/box-{uuid.uuid4().hex[:6]}"
    client.images.get("busybox").tag(repository, "v1")
    messages = list(client.images.push(repository, tag="v1", stream=True, decode=True))
    assert not any("error" in m for m in messages), messages
    digest = [m["aux"]["Digest"] for m in messages if "aux" in m][0]
    request = urllib.request.Request(f"{registry.url}/v2/{repository.split('/', 1)[1]}/manifests/v1", method="HEAD",
                                     headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json, "
                                                        "application/vnd.oci.image.manifest.v1+json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.headers["Docker-Content-Digest"] == digest


# -- resize: the pty of an exec and of a container -------------------------------------------------------------

def test_exec_it_shows_the_clients_terminal_size_and_a_container_resize_reaches_its_pty(api, sleeper):
    client, daemon = api
    env = {**daemon.env, "DOCKER_HOST": f"unix://{daemon.sock}", "DOCKER_CONFIG": str(daemon.base / "docker-config")}
    # API 1.41 has no ConsoleSize: the CLI resizes right after the start, so the command looks a moment later
    code, shown = program_under_a_pty(["/bin/sh", "-c", f"stty rows 33 cols 77; exec {DOCKER} exec -it "
                                                         f"{sleeper.name} sh -c 'sleep 0.5; stty size'"],
                                      env, timeout=30)
    assert code == 0 and b"33 77" in shown, shown
    c = client.containers.run("busybox", ["sh", "-c", "while sleep 0.1; do stty size; done"], detach=True, tty=True,
                              network_mode="none")
    try:
        c.resize(height=41, width=101)
        assert wait_until(lambda: b"41 101" in c.logs(tail=3), 5), c.logs(tail=3)
    finally:
        c.remove(force=True)
    stopped = client.containers.create("busybox", ["true"], tty=True)
    try:
        with pytest.raises(docker.errors.APIError) as refused:
            stopped.resize(height=10, width=10)
        assert refused.value.status_code == 409
    finally:
        stopped.remove()
