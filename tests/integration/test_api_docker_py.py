"""docker-py (PyPI `docker`, pinned in the test extras) against `pyctr system service` on a temporary socket:
containers.run/create/start/wait/logs/exec_run/put_archive/get_archive, images.pull/build, attach sockets."""

from __future__ import annotations

import io
import tarfile
import uuid

import docker
import pytest

from tests.integration.api_daemon import docker_py_session


@pytest.fixture(scope="module")
def api(pyctr_config, tmp_path_factory):
    yield from docker_py_session(pyctr_config, tmp_path_factory, "api-py")


def test_run_returns_output_and_removes(api):
    client, daemon = api
    assert client.containers.run("busybox", ["echo", "hello"], remove=True) == b"hello\n"
    assert daemon.pyctr("ps", "-aq").stdout.strip() == ""
    with pytest.raises(docker.errors.ContainerError) as failed:
        client.containers.run("busybox", ["sh", "-c", "echo oops >&2; exit 4"], remove=True)
    assert failed.value.exit_status == 4


def test_create_start_wait_logs_stream(api):
    client, _ = api
    c = client.containers.create("busybox", ["sh", "-c", "echo one; sleep 0.5; echo two"],
                                 name=f"py-{uuid.uuid4().hex[:6]}", labels={"k": "v"})
    assert c.status == "created"
    assert client.containers.list(all=True, filters={"label": "k=v"})[0].id == c.id
    c.start()
    lines = list(c.logs(stream=True, follow=True))
    assert b"".join(lines) == b"one\ntwo\n"
    assert c.wait(timeout=30)["StatusCode"] == 0
    c.reload()
    assert c.status == "exited"
    c.remove()


def test_exec_and_archives(api):
    client, _ = api
    c = client.containers.run("busybox", ["sleep", "300"], detach=True, network_mode="none")
    try:
        result = c.exec_run(["sh", "-c", "echo out; echo err >&2; exit 2"], demux=True)
        assert result.exit_code == 2 and result.output == (b"out\n", b"err\n")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo("note.txt")
            info.size = 5
            tar.addfile(info, io.BytesIO(b"note\n"))
        assert c.put_archive("/tmp", buf.getvalue())
        assert c.exec_run(["cat", "/tmp/note.txt"]).output == b"note\n"
        chunks, stat = c.get_archive("/tmp/note.txt")
        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
            assert tar.extractfile("note.txt").read() == b"note\n"
        assert stat["name"] == "note.txt" and stat["size"] == 5
        assert c.top()["Processes"]
    finally:
        c.remove(force=True)


def test_build_and_pull(api, registry, tmp_path):
    client, _ = api
    image = client.images.pull(f"{registry.host}/library/busybox", tag="latest")
    assert f"{registry.host}/library/busybox:latest" in image.tags
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN echo built > /built\nCMD cat /built\n")
    built, log = client.images.build(path=str(tmp_path), tag="pybuilt:1", rm=True)
    assert "pybuilt:1" in built.tags
    assert any("Successfully built" in entry.get("stream", "") for entry in log)
    assert client.containers.run("pybuilt:1", remove=True) == b"built\n"
    with pytest.raises(docker.errors.BuildError):
        client.images.build(fileobj=io.BytesIO(b"FROM busybox\nRUN exit 3\n"), tag="pybroken")
    client.images.remove("pybuilt:1")


def test_attach_socket_with_stdin(api):
    client, _ = api
    created = client.api.create_container("busybox", ["sh", "-c", "read line; echo got:$line"], stdin_open=True)
    c = client.containers.get(created["Id"])
    sock = c.attach_socket(params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
    c.start()
    raw = sock._sock
    raw.sendall(b"ping\n")
    raw.shutdown(1)  # half-close: stdin's EOF, the output still comes
    data = b""
    while chunk := raw.recv(4096):
        data += chunk
    assert data[8:] == b"got:ping\n" and data[0] == 1
    assert c.wait(timeout=30)["StatusCode"] == 0
    c.remove()


def test_networks_and_volumes_as_compose_drives_them(api):
    """docker-compose 1.29's order: network and volume created, the container created on the network with its
    service alias, disconnected and connected again before its start; a second service reaches it by alias."""
    client, _ = api
    project = f"proj{uuid.uuid4().hex[:6]}"
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet="10.81.3.0/24")])
    network = client.networks.create(f"{project}_default", driver="bridge", ipam=ipam, check_duplicate=True,
                                      labels={"com.docker.compose.project": project})
    volume = client.volumes.create(f"{project}_data", labels={"com.docker.compose.project": project})
    try:
        assert client.networks.get(network.name).attrs["IPAM"]["Config"][0]["Subnet"] == "10.81.3.0/24"
        assert [n.name for n in client.networks.list(filters={"label": f"com.docker.compose.project={project}"})] \
            == [network.name]
        assert [v.name for v in client.volumes.list(filters={"label": f"com.docker.compose.project={project}"})] \
            == [volume.name]
        low = client.api
        created = low.create_container(
            "busybox", ["sh", "-c", "echo from-web > /data/index.html && exec httpd -f -p 80 -h /data"],
            name=f"{project}_web_1", host_config=low.create_host_config(
                network_mode=network.name, binds={volume.name: {"bind": "/data", "mode": "rw"}},
                restart_policy={"Name": "on-failure", "MaximumRetryCount": 2}),
            networking_config=low.create_networking_config({network.name: low.create_endpoint_config(
                aliases=["web"])}))
        low.disconnect_container_from_network(created["Id"], network.name)
        low.connect_container_to_network(created["Id"], network.name, aliases=["web"])
        low.start(created["Id"])
        fetched = client.containers.run("busybox", ["wget", "-qO-", "http://web/"], network=network.name,
                                        remove=True)
        assert fetched == b"from-web\n"
        web = client.containers.get(created["Id"])
        assert "web" in web.attrs["NetworkSettings"]["Networks"][network.name]["Aliases"]
        assert web.attrs["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
        with pytest.raises(docker.errors.APIError) as busy:
            volume.remove()
        assert busy.value.status_code == 409
        web.remove(force=True)
    finally:
        for container in client.containers.list(all=True, filters={"name": project}):
            container.remove(force=True)
        network.remove()
        volume.remove()
    with pytest.raises(docker.errors.NotFound):
        client.networks.get(network.name)
    with pytest.raises(docker.errors.NotFound):
        client.volumes.get(volume.name)


def test_exec_form_healthcheck_tmpfs_mount_and_ulimits_from_the_api(api):
    """What a compose file's healthcheck (exec form), tmpfs mount and ulimits become through docker-py."""
    import time

    client, _ = api
    container = client.containers.run(
        "busybox", ["sleep", "300"], detach=True,
        healthcheck={"test": ["CMD", "test", "-d", "/scratch"], "interval": 300_000_000, "retries": 2},
        mounts=[docker.types.Mount("/scratch", None, type="tmpfs", tmpfs_size=1 << 20)],
        ulimits=[docker.types.Ulimit(name="nofile", soft=512, hard=1024)])
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            container.reload()
            if container.attrs["State"].get("Health", {}).get("Status") == "healthy":
                break
            time.sleep(0.2)
        assert container.attrs["State"]["Health"]["Status"] == "healthy"
        assert container.attrs["Config"]["Healthcheck"]["Test"] == ["CMD", "test", "-d", "/scratch"]
        assert container.exec_run(["sh", "-c", "ulimit -n"]).output == b"512\n"
        assert b" /scratch tmpfs " in container.exec_run(["cat", "/proc/mounts"]).output
    finally:
        container.remove(force=True)
