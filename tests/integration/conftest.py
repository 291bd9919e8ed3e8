"""Integration fixtures: run the real `pyctr` CLI against a temporary root and the session registry.

`pyctr_env` points PYCTR_ROOT at a session temp dir and PYCTR_CONFIG at a config whose registry mirror is the
session registry, so `pyctr pull busybox` is served locally (no traffic leaves the machine). `pyctr` shares that
root across a session (pull once, reuse); `fresh_pyctr` gets an empty root per test for store-sensitive tests.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PYCTR_BIN = REPO_ROOT / ".venv" / "bin" / "pyctr"
TEST_BRIDGE = "pyctrt0"
TEST_SUBNET = "10.78.0.0/24"


@pytest.fixture(autouse=True)
def _require_root() -> None:
    """Integration tests exercise namespaces, mounts and cgroups for real: without root they would prove nothing."""
    if os.geteuid() != 0:
        pytest.fail("integration tests must run as root (namespaces, mounts, cgroups, networking): "
                    "run `sudo make integration` or `sudo .venv/bin/pytest tests/integration`", pytrace=False)


def write_config(path: Path, registry_url: str, registry_host: str, bridge: str = TEST_BRIDGE,
                 subnet: str = TEST_SUBNET) -> Path:
    """A pyctr config that pulls through the test registry and uses a test-only bridge and subnet."""
    path.write_text(
        f'registry_mirrors = ["{registry_url}"]\n'
        f'insecure_registries = ["{registry_host}"]\n'
        "\n[network]\n"
        f'bridge = "{bridge}"\n'
        f'subnet = "{subnet}"\n'
    )
    return path


_fresh_networks = itertools.count(1)


def wait_for_killed_workers(timeout: float = 10.0) -> None:
    """After SIGKILLing a `pyctr` process: wait until the server's worker that ran its command is gone too.

    The server kills a worker when its client dies, within a millisecond or so; a test that inspects the
    state right after the kill must not race that (in-process, the command died with the client). Between
    commands the server has one child: its spare."""
    import time

    from pyctr.client import socket_path

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = [pid for pid in _server_children() if _is_worker(pid)]
        if not busy:
            return
        time.sleep(0.01)
    raise AssertionError(f"pyctr server workers still alive {timeout} s after their client was killed "
                         f"({socket_path()})")


def _server_children() -> list[int]:
    """Children of this checkout's pyctr servers (the current one and any still finishing after retiring)."""
    python = str(REPO_ROOT / ".venv" / "bin" / "python").encode()
    parents = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if cmdline.startswith(python) and b"pyctr.server" in cmdline:
            parents[int(entry)] = ppid
    return [child for pid, ppid in parents.items() if ppid not in parents for child in children_of(pid)]


def children_of(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _is_worker(pid: int) -> bool:
    """A spare waits in accept() with no connection yet; a worker has taken one (it holds its client's cwd)."""
    try:
        return os.readlink(f"/proc/{pid}/cwd") != "/"
    except OSError:
        return False


def remove_idle_bridge(name: str) -> None:
    """pyctr keeps a bridge once created (as Docker keeps docker0); tests remove their own when idle."""
    attached = subprocess.run(["ip", "-o", "link", "show", "master", name], capture_output=True, text=True)
    if attached.returncode == 0 and not attached.stdout.strip():
        subprocess.run(["ip", "link", "del", name], capture_output=True)


@pytest.fixture(scope="session", autouse=True)
def _remove_test_bridges(tmp_path_factory) -> Iterator[None]:
    """At the end of the session: every idle bridge pyctr made for one of this session's roots."""
    yield
    base = str(tmp_path_factory.getbasetemp())
    for alias in Path("/sys/class/net").glob("*/ifalias"):
        try:
            label = alias.read_text().strip()
        except OSError:
            continue
        if label.startswith("pyctr:") and label[len("pyctr:"):].startswith(base):
            remove_idle_bridge(alias.parent.name)


def make_root(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


class PyctrRunner:
    """Calls the installed CLI: `runner(*args, input=None, timeout=60, check=False, env_extra=None)`.

    Returns subprocess.CompletedProcess (text). With check=True a non-zero exit fails the test showing both streams.
    `.env` and `.root` let tests inspect the environment and the store.
    """

    def __init__(self, env: Mapping[str, str]):
        self.env = dict(env)
        self.root = Path(self.env["PYCTR_ROOT"])

    def __call__(self, *args: object, input: str | None = None, timeout: float = 60, check: bool = False,
                 env_extra: Mapping[str, str] | None = None) -> subprocess.CompletedProcess:
        argv = [str(PYCTR_BIN), *map(str, args)]
        env = {**self.env, **(env_extra or {})}
        proc = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout, env=env,
                              stdin=None if input is not None else subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv[1:])} exited {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
        return proc


def _env_for(root: Path, config: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYCTR_")}
    for proxy in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        env.pop(proxy, None)
    env.update(PYCTR_ROOT=str(root), PYCTR_CONFIG=str(config))
    return env


@pytest.fixture(scope="session")
def pyctr_config(registry, tmp_path_factory) -> Path:
    """The session's config.toml (registry mirror + insecure registry = the session registry)."""
    return write_config(tmp_path_factory.mktemp("pyctr-config") / "config.toml", registry.url, registry.host)


@pytest.fixture(scope="session")
def pyctr_env(registry, pyctr_config, tmp_path_factory) -> dict[str, str]:
    """Environment for running pyctr: PYCTR_ROOT=<session tmp>/root (0700), PYCTR_CONFIG=<session tmp>/config.toml."""
    base = tmp_path_factory.mktemp("pyctr")
    return _env_for(make_root(base / "root"), pyctr_config)


@pytest.fixture
def pyctr(pyctr_env) -> PyctrRunner:
    """Run the CLI with the session root (images pulled once are reused across tests)."""
    if not PYCTR_BIN.exists():
        pytest.fail(f"{PYCTR_BIN} is missing: run `make install`", pytrace=False)
    return PyctrRunner(pyctr_env)


@pytest.fixture
def fresh_pyctr(registry, tmp_path) -> Iterator[PyctrRunner]:
    """Run the CLI with an empty root of its own, for tests that need a clean store.

    Each fresh root also gets its own bridge and subnet: a bridge belongs to one root (networking refuses to share
    a bridge with another root's live containers), so session and fresh containers may run side by side.
    """
    if not PYCTR_BIN.exists():
        pytest.fail(f"{PYCTR_BIN} is missing: run `make install`", pytrace=False)
    n = next(_fresh_networks) % 250 + 1
    config = write_config(tmp_path / "config.toml", registry.url, registry.host, f"pyctrt{n}", f"10.78.{n}.0/24")
    yield PyctrRunner(_env_for(make_root(tmp_path / "root"), config))
    remove_idle_bridge(f"pyctrt{n}")


@pytest.fixture
def warm(pyctr):
    """The session runner with a server up (the first command of a session may have started it)."""
    from pyctr import client
    from tests.integration.helpers import server_pids, wait_for  # helpers import this module: import late

    def up() -> bool:  # a command that finds no server (or a stale one) starts one
        pyctr("version", check=True)
        return os.path.exists(client.socket_path()) and len(server_pids()) == 1

    try:
        wait_for(up, timeout=30, what="the pyctr server")
    except AssertionError as e:
        from tests.integration.helpers import machine_snapshot

        raise AssertionError(f"{e}\n{machine_snapshot()}") from None
    pyctr("pull", "-q", "busybox", check=True, timeout=120)
    return pyctr
