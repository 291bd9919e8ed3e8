"""The warm server behind the `pyctr` command (pyctr/server.py): commands served by a forked worker behave as
they do in-process (streams, exit codes, signals, the client's death), only clients with the server's exact
privileges are served, and a server leaves when its code changes or it is idle.

Every other integration test runs the CLI through the same client, so the whole suite exercises this path too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pyctr import client, server
from tests.integration.conftest import PYCTR_BIN, REPO_ROOT, _is_worker, children_of
from tests.integration.helpers import server_pids, wait_for


def running_containers(runner) -> list[str]:
    return runner("ps", "-q").stdout.split()


def test_a_served_command_keeps_streams_apart_and_returns_the_exit_code(warm) -> None:
    r = warm("run", "--rm", "--network", "none", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")
    r = warm("run", "--rm", "-i", "--network", "none", "busybox", "cat", input="piped\n")
    assert (r.returncode, r.stdout) == (0, "piped\n")
    r = warm("run", "--rm", "Not:A:Reference")
    assert r.returncode == 125 and r.stderr.startswith("pyctr: invalid reference format")


def test_the_command_runs_in_a_worker_not_in_the_client(warm) -> None:
    proc = subprocess.Popen([str(PYCTR_BIN), "run", "--rm", "--network", "none", "busybox", "sleep", "30"],
                            env=warm.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: running_containers(warm), what="the container")
        assert children_of(proc.pid) == []  # in-process, the container's first process would be its child
    finally:
        proc.kill()
        proc.wait()
        for cid in running_containers(warm):
            warm("rm", "-f", cid)


def test_signals_to_the_client_reach_the_command(warm) -> None:
    script = 'trap "exit 7" TERM; sleep 30 & wait'
    proc = subprocess.Popen([str(PYCTR_BIN), "run", "--rm", "--network", "none", "busybox", "sh", "-c", script],
                            env=warm.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: running_containers(warm), what="the container")
    time.sleep(0.2)  # the trap is set once sh runs
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 7, (out, err)


def test_killing_the_client_kills_its_worker(warm) -> None:
    [srv] = server_pids()
    proc = subprocess.Popen([str(PYCTR_BIN), "run", "--rm", "--network", "none", "busybox", "sleep", "30"],
                            env=warm.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: running_containers(warm), what="the container")
        workers = [pid for pid in children_of(srv) if _is_worker(pid)]  # not the spare waiting for the next one
        assert len(workers) == 1
        proc.kill()
        proc.wait()
        wait_for(lambda: not os.path.exists(f"/proc/{workers[0]}"), timeout=5, what="the worker to die")
    finally:
        for cid in running_containers(warm):
            warm("rm", "-f", cid)


@pytest.mark.parametrize("wrapper", [
    ["setpriv", "--bounding-set", "-sys_admin"],  # fewer capabilities
    ["setpriv", "--no-new-privs"],
    ["unshare", "--mount"],  # another mount namespace
    ["unshare", "--net"],
])
def test_a_client_in_another_security_context_is_not_served(wrapper: list[str]) -> None:
    other = subprocess.Popen([*wrapper, "sleep", "30"])
    same = subprocess.Popen(["sleep", "30"])
    try:
        wait_for(lambda: Path(f"/proc/{other.pid}/comm").read_text().strip() == "sleep", what="the wrapper's exec")
        assert not server.same_context(os.pidfd_open(other.pid))
        assert server.same_context(os.pidfd_open(same.pid))
    finally:
        other.kill()
        same.kill()
        other.wait()
        same.wait()


def test_such_a_client_runs_its_command_itself_with_its_own_privileges(warm) -> None:
    """Without CAP_SYS_ADMIN a `run` cannot make its namespaces and mounts: it must fail, as it does without a
    server. Served by a worker (which has all of the server's capabilities) it would succeed."""
    argv = ["setpriv", "--bounding-set", "-sys_admin", str(PYCTR_BIN), "run", "--rm", "--network", "none",
            "busybox", "true"]
    restricted = subprocess.run(argv, env=warm.env, capture_output=True, text=True, timeout=60)
    alone = subprocess.run(argv, env={**warm.env, "PYCTR_SERVER": "0"}, capture_output=True, text=True, timeout=60)
    assert restricted.returncode == alone.returncode == 125, (restricted.stderr, alone.stderr)
    assert "Traceback" not in restricted.stderr
    listed = subprocess.run(argv[:3] + [str(PYCTR_BIN), "images", "-q"], env=warm.env, capture_output=True,
                            text=True, timeout=60)
    assert listed.returncode == 0 and listed.stdout.strip(), listed.stderr  # what it may do still works


def test_a_stale_server_hands_over_to_a_fresh_one(warm) -> None:
    [old] = server_pids()
    module = Path(client.PACKAGE_DIR) / "units.py"
    st = module.stat()
    os.utime(module, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    try:
        assert warm("version").returncode == 0  # declined by the stale server: runs in the client itself
    finally:
        os.utime(module, ns=(st.st_atime_ns, st.st_mtime_ns))
    wait_for(lambda: not os.path.exists(f"/proc/{old}") or Path(f"/proc/{old}/stat").read_text().split()[2] == "Z",
             what="the stale server to leave")
    def fresh() -> bool:
        warm("version", check=True)  # finds no server: starts one
        return bool(server_pids()) and server_pids() != [old]

    wait_for(fresh, timeout=30, what="a fresh server")


def test_a_retired_server_still_relaying_a_long_command_lets_a_fresh_server_start(warm) -> None:
    """A retired server keeps relaying its workers' exit status, which may take hours (a foreground `run`);
    meanwhile the next command must find a fresh server, not run in-process for as long."""
    [old] = server_pids()
    long = subprocess.Popen([str(PYCTR_BIN), "run", "--rm", "--network", "none", "busybox", "sleep", "6"],
                            env=warm.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: len(children_of(old)) >= 2, what="the long command's worker")  # worker + new spare
        os.kill(old, signal.SIGTERM)  # retire: as when the code on disk changes
        def fresh() -> bool:
            warm("version", check=True)
            return bool(server_pids()) and server_pids() != [old]

        wait_for(fresh, timeout=5, what="a fresh server while the retired one relays")
        assert os.path.exists(f"/proc/{old}"), "the retired server left before its worker finished"
    finally:
        out, err = long.communicate(timeout=60)
    assert (long.returncode, err) == (0, ""), "the retired server did not relay the exit status"


def test_an_idle_server_leaves_and_removes_its_socket(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    code = (
        "import sys; from pyctr import server\n"
        "server.make_proof()\n"
        f"s = server.Server(server._bind({str(path)!r}), {str(path)!r}, idle=1.0)\n"
        "s.serve()\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO_ROOT)
    try:
        wait_for(path.exists, what="the socket")
        served = subprocess.run(
            [sys.executable, "-c", f"import sys; from pyctr import client; sys.exit(client.serve_remotely(['version'], "
                                   f"{str(path)!r}))"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30)
        assert served.returncode == 0 and served.stdout.startswith("pyctr version"), served.stderr
        assert proc.wait(timeout=10) == 0
        assert not path.exists()
    finally:
        proc.kill()


def test_a_killed_server_takes_its_spare_along_and_the_next_command_starts_another(warm) -> None:
    [srv] = server_pids()
    wait_for(lambda: children_of(srv), what="the spare")
    spares = children_of(srv)
    os.kill(srv, signal.SIGKILL)
    wait_for(lambda: not any(os.path.exists(f"/proc/{pid}") for pid in spares), timeout=5,
             what="the spare to follow its server")
    assert warm("version").returncode == 0  # no listener: runs in-process and starts a server

    def fresh() -> bool:
        warm("version", check=True)
        return bool(server_pids()) and server_pids() != [srv]

    wait_for(fresh, timeout=30, what="a new server")


def test_the_clients_other_descriptors_reach_the_command_and_never_the_container(warm) -> None:
    """`--env-file <(...)`: the shell hands pyctr /dev/fd/63; the worker has it under the same number."""
    read_end, write_end = os.pipe()
    os.write(write_end, b"FROM_PIPE=yes\n")
    os.close(write_end)
    high = os.dup2(read_end, 63)
    os.close(read_end)
    try:
        r = subprocess.run([str(PYCTR_BIN), "run", "--rm", "--network", "none", "--env-file", "/dev/fd/63", "busybox",
                            "sh", "-c", "echo $FROM_PIPE; ls /proc/self/fd | tr '\\n' ' '"],
                           env=warm.env, capture_output=True, text=True, timeout=60, pass_fds=[high])
    finally:
        os.close(high)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["yes", "0 1 2 3 "]  # 3: ls's own directory; 63 stayed outside


def test_the_clients_resource_limits_apply_as_in_process(warm) -> None:
    argv = ["prlimit", "--nofile=512:512", str(PYCTR_BIN), "run", "--rm", "--network", "none", "busybox", "sh", "-c",
            "ulimit -n"]
    served = subprocess.run(argv, env=warm.env, capture_output=True, text=True, timeout=60)
    alone = subprocess.run(argv, env={**warm.env, "PYCTR_SERVER": "0"}, capture_output=True, text=True, timeout=60)
    assert served.returncode == alone.returncode == 0, (served.stderr, alone.stderr)
    assert served.stdout == alone.stdout
