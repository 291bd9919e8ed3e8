"""`pyctr top` through the real CLI: the container's processes with host PIDs, Docker's columns."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from tests.integration.conftest import PYCTR_BIN, PyctrRunner, _env_for, make_root


@pytest.fixture(scope="module")
def tp(pyctr_config, tmp_path_factory):
    if not PYCTR_BIN.exists():
        pytest.fail(f"{PYCTR_BIN} is missing: run `make install`", pytrace=False)
    runner = PyctrRunner(_env_for(make_root(tmp_path_factory.mktemp("top") / "root"), pyctr_config))
    runner("pull", "busybox", check=True, timeout=120)
    yield runner
    ids = runner("ps", "-aq", "--no-trunc").stdout.split()
    if ids:
        runner("rm", "-f", *ids)


def pid_of(runner: PyctrRunner, cid: str) -> int:
    return json.loads((runner.root / "containers" / cid / "state.json").read_text())["Pid"]


def test_top_lists_the_containers_processes_with_host_pids(tp):
    name = f"top-{uuid.uuid4().hex[:8]}"
    cid = tp("run", "-d", "--name", name, "--network", "none", "busybox", "sleep", "1000", check=True).stdout.strip()
    try:
        tp("exec", "-d", name, "sleep", "777", check=True)
        deadline = time.monotonic() + 5
        while True:
            r = tp("top", name, check=True)
            if "sleep 777" in r.stdout or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        lines = r.stdout.splitlines()
        assert lines[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
        assert lines[0].startswith("UID" + " " * 17 + "PID")
        rows = {line.split()[1]: line for line in lines[1:]}
        init = pid_of(tp, cid)
        assert str(init) in rows and rows[str(init)].endswith("sleep 1000")
        assert any(line.endswith("sleep 777") for line in lines[1:])
        assert len(lines) == 3  # nothing of the host
        r = tp("top", name, "-o", "pid,comm", check=True)
        assert r.stdout.split()[:2] == ["PID", "COMMAND"] and str(init) in r.stdout.split()
    finally:
        tp("rm", "-f", name)


def test_top_of_a_stopped_or_unknown_container_fails(tp):
    name = f"top-stopped-{uuid.uuid4().hex[:6]}"
    cid = tp("create", "--name", name, "busybox", "true", check=True).stdout.strip()
    try:
        r = tp("top", name)
        assert r.returncode == 1 and f"Container {cid} is not running" in r.stderr
    finally:
        tp("rm", "-f", name)
    r = tp("top", "no-such-container")
    assert r.returncode == 1 and "No such container" in r.stderr
