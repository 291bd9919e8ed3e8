"""The Engine API daemon under concurrent load (issue 16: it must survive anything): many clients at once
create and start containers with a healthcheck and a tmpfs mount, exec into them, read their logs and remove
them, through one `pyctr system service`. The daemon serves each connection in a thread and forks for every
start and exec: a descriptor that one thread's objects still claim must never be closed under another's feet
in a forked child (it was answered once as 500 "OSError: [Errno 9] Bad file descriptor")."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import docker
import pytest

from tests.integration.api_daemon import start_daemon
from tests.integration.conftest import _env_for, make_root

WORKERS = 6
ROUNDS = 3


@pytest.fixture(scope="module")
def api(pyctr_config, registry, tmp_path_factory):
    base = tmp_path_factory.mktemp("api-race")
    env = _env_for(make_root(base / "root"), pyctr_config)
    daemon = start_daemon(env, base)
    client = docker.DockerClient(base_url=f"unix://{daemon.sock}", version="auto", timeout=120)
    client.images.pull("busybox", tag="latest")
    # A pull over TCP from the test registry: the daemon's HTTP client leaves its connection to the collector,
    # an open socket in the daemon's garbage that every forked start and exec inherits.
    client.images.pull(f"{registry.host}/library/busybox", tag="latest")
    yield client, daemon
    for c in client.containers.list(all=True):
        c.remove(force=True)
    client.close()
    daemon.proc.terminate()
    daemon.proc.wait(timeout=30)


def _one_round(client: docker.DockerClient, tag: str) -> None:
    """What a compose service's life does through the API: create+start with healthcheck and tmpfs, execs,
    logs (one-shot and followed), remove."""
    container = client.containers.run(
        "busybox", ["sh", "-c", "echo up; while :; do sleep 1; done"], detach=True, name=tag,
        healthcheck={"test": ["CMD", "test", "-d", "/scratch"], "interval": 200_000_000, "retries": 2},
        mounts=[docker.types.Mount("/scratch", None, type="tmpfs", tmpfs_size=1 << 20)])
    try:
        for n in range(3):
            result = container.exec_run(["sh", "-c", f"echo {tag}-{n}; echo err >&2; exit {n}"], demux=True)
            assert (result.exit_code, result.output) == (n, (f"{tag}-{n}\n".encode(), b"err\n"))
        assert container.logs() == b"up\n"
        followed = container.logs(stream=True, follow=True)
        assert next(followed) == b"up\n"
        followed.close()
    finally:
        container.remove(force=True)


def test_concurrent_starts_execs_and_logs_never_fail(api, registry):
    client, daemon = api
    failures: list[str] = []
    lock = threading.Lock()
    done = threading.Event()

    def puller() -> None:
        """Pulls all along: fresh garbage sockets in the daemon while it forks for starts and execs."""
        while not done.is_set():
            client.images.pull(f"{registry.host}/library/busybox", tag="latest")

    def worker(index: int) -> None:
        for round_ in range(ROUNDS):
            try:
                _one_round(client, f"race-{uuid.uuid4().hex[:6]}-{index}-{round_}")
            except Exception as e:  # noqa: BLE001 - collected, the other workers go on
                with lock:
                    failures.append(f"{type(e).__name__}: {e}")

    started = time.monotonic()
    pulling = threading.Thread(target=puller, daemon=True)
    pulling.start()
    try:
        with ThreadPoolExecutor(WORKERS) as pool:
            list(pool.map(worker, range(WORKERS)))
    finally:
        done.set()
        pulling.join(60)
    assert failures == [], "\n".join(failures)
    assert daemon.proc.poll() is None, "the daemon died"
    assert client.ping()
    assert client.containers.list(all=True) == []
    assert time.monotonic() - started < 60
