"""The Engine API test harness (one home, so no test file imports another): `pyctr system service` on a temporary
socket with a root of its own, the real docker CLI pointed at it, raw HTTP requests, and the module fixture that
starts one, pulls busybox, and afterwards removes every container and stops it."""

from __future__ import annotations

import io
import shutil
import socket
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import PYCTR_BIN, PyctrRunner, _env_for, make_root

DOCKER = shutil.which("docker") or "/usr/local/bin/docker"


class Daemon:
    def __init__(self, proc: subprocess.Popen, sock: Path, env: dict[str, str], base: Path) -> None:
        self.proc, self.sock, self.env, self.base = proc, sock, env, base
        self.pyctr = PyctrRunner(env)

    def docker(self, *args: str, input: str | None = None, timeout: float = 60, check: bool = False):
        env = {**self.env, "DOCKER_HOST": f"unix://{self.sock}", "DOCKER_BUILDKIT": "0",
               "DOCKER_CONFIG": str(self.base / "docker-config")}
        proc = subprocess.run([DOCKER, *args], input=input, capture_output=True, text=True, timeout=timeout, env=env,
                              stdin=None if input is not None else subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                timeout: float = 30) -> tuple[int, dict, bytes]:
        """A raw HTTP/1.1 request on its own connection (Connection: close)."""
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(timeout)
        conn.connect(str(self.sock))
        head = [f"{method} {path} HTTP/1.1", "Host: docker", "Connection: close"]
        for name, value in (headers or {}).items():
            head.append(f"{name}: {value}")
        if body is not None:
            head.append(f"Content-Length: {len(body)}")
        try:
            conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + (body or b""))
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before all of it was read: the answer is still there to read
        data = b""
        try:
            while chunk := conn.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
        conn.close()
        return parse_response(data)

    def alive(self) -> bool:
        return self.proc.poll() is None and self.request("GET", "/_ping")[2] == b"OK"


def parse_response(data: bytes) -> tuple[int, dict, bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if headers.get("transfer-encoding") == "chunked":
        out, rest = b"", body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line, 16)
            if size == 0:
                break
            out, rest = out + rest[:size], rest[size + 2:]
        body = out
    return status, headers, body


def start_daemon(env: dict[str, str], base: Path) -> Daemon:
    sock = base / "docker.sock"
    log = open(base / "daemon.log", "ab")  # noqa: SIM115 - the daemon's, closed by the fixture
    proc = subprocess.Popen([str(PYCTR_BIN), "system", "service", "--host", f"unix://{sock}"],
                            env={**env, "PYCTR_SERVER": "0"}, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    log.close()
    deadline = time.monotonic() + 60
    while not sock.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"the daemon did not start:\n{(base / 'daemon.log').read_text()}")
        time.sleep(0.05)
    return Daemon(proc, sock, env, base)


def served_daemon(pyctr_config, tmp_path_factory, name: str, extra_env: dict[str, str] | None = None,
                  fail_on_logged_errors: bool = False, plugins: dict[str, Path] | None = None) -> Iterator[Daemon]:
    """A module's daemon: started, busybox pulled, yielded; then its containers removed, the daemon stopped, its
    socket gone, and (if asked) no failed request in its log. `plugins`: docker CLI plugins by name."""
    base = tmp_path_factory.mktemp(name)
    (base / "docker-config" / "cli-plugins").mkdir(parents=True, exist_ok=True)
    for plugin, binary in (plugins or {}).items():
        (base / "docker-config" / "cli-plugins" / plugin).symlink_to(binary)
    env = {**_env_for(make_root(base / "root"), pyctr_config), **(extra_env or {})}
    d = start_daemon(env, base)
    d.pyctr("pull", "-q", "busybox", check=True, timeout=120)
    yield d
    ids = d.pyctr("ps", "-aq", "--no-trunc").stdout.split()
    if ids:
        d.pyctr("rm", "-f", *ids)
    d.proc.terminate()
    d.proc.wait(timeout=30)
    assert not d.sock.exists(), "the daemon left its socket behind"
    if fail_on_logged_errors:
        errors = [line for line in (base / "daemon.log").read_text().splitlines() if line.startswith("level=error")]
        assert errors == [], "the daemon failed requests:\n" + "\n".join(errors)


def docker_py_session(pyctr_config, tmp_path_factory, name: str) -> Iterator[tuple[object, Daemon]]:
    """(docker-py client, daemon) for a module: busybox pulled through the API; afterwards every container
    removed through it and the daemon stopped."""
    import docker

    base = tmp_path_factory.mktemp(name)
    (base / "docker-config").mkdir()
    daemon = start_daemon(_env_for(make_root(base / "root"), pyctr_config), base)
    client = docker.DockerClient(base_url=f"unix://{daemon.sock}", version="auto", timeout=120)
    client.images.pull("busybox", tag="latest")
    yield client, daemon
    for c in client.containers.list(all=True):
        c.remove(force=True)
    client.close()
    daemon.proc.terminate()
    daemon.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def daemon(pyctr_config, tmp_path_factory):
    yield from served_daemon(pyctr_config, tmp_path_factory, "api")


def hostile_tar(*members: tuple[str, bytes, bytes, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, kind, data, link in members:
            info = tarfile.TarInfo(name)
            info.type, info.size, info.linkname = kind, len(data), link
            tar.addfile(info, io.BytesIO(data) if data else None)
    return buf.getvalue()
