"""What the warm server and its clients trust (pyctr/server.py, pyctr/client.py), tried as an attacker would.

- PID reuse: a restricted client that connects and exits, its number then taken by a fully privileged
  process, is not served (the server names the peer by a pidfd taken at accept).
- Confinement /proc does not show: a client in a Landlock domain runs its command itself.
- Impersonation: a listener bound on the socket path from another mount or PID namespace, or by another
  user, receives nothing (no argv, environment, streams or working directory).
- Amplification: connections the server would not serve make no process and read nothing; served ones are
  bounded in number and size.
- Inherited descriptors: the server started by a command keeps none of that command's descriptors.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from pyctr import client, protocol, server
from tests.integration.conftest import PYCTR_BIN, REPO_ROOT, children_of
from tests.integration.helpers import PYTHON, server_pids, wait_for

# ------------------------------------------------------------------ helpers

RESTRICTED_CONNECT = """
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
socket.send_fds(socket.socket(fileno=int(sys.argv[2])), [b"c"], [s.fileno()])
"""


def connect_restricted_and_exit(path: str) -> tuple[socket.socket, int]:
    """A connection made by a process without CAP_SYS_ADMIN in its bounding set, which then exits (reaped):
    returns the connection (handed over to us) and the number the dead process had."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        proc = subprocess.Popen(["setpriv", "--bounding-set", "-sys_admin", PYTHON, "-c", RESTRICTED_CONNECT, path,
                                 str(theirs.fileno())], pass_fds=[theirs.fileno()])
        _, fds, _, _ = socket.recv_fds(ours, 1, 1)
        proc.wait()
    return socket.socket(fileno=fds[0]), proc.pid


def take_pid(pid: int) -> subprocess.Popen | None:
    """A fully privileged process under `pid`, if the kernel hands that number out next (others fork too)."""
    Path("/proc/sys/kernel/ns_last_pid").write_text(str(pid - 1))
    heir = subprocess.Popen(["sleep", "30"])
    if heir.pid == pid:
        return heir
    heir.kill()
    heir.wait()
    return None


def restricted_peer_with_privileged_heir(path: str) -> tuple[socket.socket, subprocess.Popen]:
    for _ in range(100):
        conn, pid = connect_restricted_and_exit(path)
        heir = take_pid(pid)
        if heir is not None:
            return conn, heir
        conn.close()
    pytest.fail("no process could take the restricted client's pid")


def stop_server() -> None:
    for pid in server_pids():
        os.kill(pid, signal.SIGTERM)  # retires: the socket goes, the server leaves
    wait_for(lambda: not server_pids() and not os.path.exists(client.socket_path()), what="the server to leave")


def server_tree_rss_kib(srv: int) -> int:
    total = 0
    for pid in [srv, *children_of(srv)]:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:  # a worker that finished between the listing and this read holds nothing
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def client_children_while_running(env: dict[str, str], wrapper: tuple[str, ...] = ()) -> list[int]:
    """The client's children while its `run` goes on: none when a worker runs the command, the container's
    first process when the client runs it itself."""
    proc = subprocess.Popen([*wrapper, str(PYCTR_BIN), "run", "--rm", "--network", "none", "busybox", "sleep", "30"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: running_containers_in(env), timeout=30, what="the container")
        return children_of(proc.pid)
    finally:
        proc.kill()
        proc.wait()
        for cid in running_containers_in(env):
            subprocess.run([str(PYCTR_BIN), "rm", "-f", cid], env=env, capture_output=True, timeout=60)


def running_containers_in(env: dict[str, str]) -> list[str]:
    return subprocess.run([str(PYCTR_BIN), "ps", "-q"], env=env, capture_output=True, text=True,
                          timeout=60).stdout.split()


# ------------------------------------------------------------------ PID reuse


def test_the_peer_check_names_the_process_that_connected_not_its_number(tmp_path: Path) -> None:
    """Deterministic: a restricted process connects and exits, a privileged one takes its number; the check
    made on the accepted connection (as the server's spare does) refuses it."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp_path / "s.sock"))
    listener.listen(8)
    conn, heir = restricted_peer_with_privileged_heir(str(tmp_path / "s.sock"))
    try:
        accepted, _ = listener.accept()
        assert server.same_context(os.pidfd_open(heir.pid))  # the number now names a process we would serve
        assert not server.may_serve_peer(accepted)
    finally:
        heir.kill()
        heir.wait()
        conn.close()
    alive = subprocess.Popen([PYTHON, "-c", "import socket, sys, time; s = socket.socket(socket.AF_UNIX); "
                              f"s.connect({str(tmp_path / 's.sock')!r}); time.sleep(30)"])
    try:
        accepted, _ = listener.accept()
        assert server.may_serve_peer(accepted)  # the same check serves a privileged client
    finally:
        alive.kill()
        alive.wait()
        listener.close()


def test_a_restricted_client_whose_pid_passes_to_a_privileged_process_is_not_served(warm) -> None:
    conn, heir = restricted_peer_with_privileged_heir(client.socket_path())
    [srv] = server_pids()
    proof = os.open(f"/proc/{srv}/fd/{client.PROOF_FD}", os.O_RDONLY | os.O_CLOEXEC)  # we may: we are the heir's
    try:
        request = client.encode_request(["version"], dict(warm.env), 0o022, client._limits())
        try:
            client._send_request(conn, request, [], proof)
            reply = client._read_message(conn)
        except OSError:  # declined and closed before the request was sent
            reply = None
        assert reply is None or reply[0] != client.ACCEPTED
    finally:
        os.close(proof)
        conn.close()
        heir.kill()
        heir.wait()


# ------------------------------------------------------------------ Landlock

LANDLOCK = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
abi = libc.syscall(444, None, 0, 1)  # landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)
assert abi >= 1, "no Landlock"
rights = (1 << (13 if abi == 1 else 14 if abi == 2 else 15 if abi < 5 else 16)) - 1  # every filesystem right
attr = ctypes.c_uint64(rights)  # struct landlock_ruleset_attr's first field: handled_access_fs
ruleset = libc.syscall(444, ctypes.byref(attr), 8, 0)
assert ruleset >= 0, ctypes.get_errno()

class PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]

rule = PathBeneath(rights, os.open("/", os.O_PATH | os.O_CLOEXEC))  # everything allowed beneath /
assert libc.syscall(445, ruleset, 1, ctypes.byref(rule), 0) == 0, ctypes.get_errno()  # LANDLOCK_RULE_PATH_BENEATH
assert libc.syscall(446, ruleset, 0) == 0, ctypes.get_errno()  # restrict_self; root: no no_new_privs needed
os.execv(sys.argv[1], sys.argv[1:])
"""


def landlocked(*argv: str) -> list[str]:
    """argv run in a Landlock domain that allows every file access under / (it still forbids mounting and
    ptracing anything outside it), with nothing else changed: no_new_privs stays off, /proc shows no trace."""
    return [PYTHON, "-c", LANDLOCK, *argv]


def test_a_landlocked_client_runs_its_command_itself(warm) -> None:
    probe = subprocess.run(landlocked("/bin/cat", "/proc/self/status"), capture_output=True, text=True, timeout=30)
    assert probe.returncode == 0, probe.stderr
    assert "NoNewPrivs:\t0" in probe.stdout  # nothing but the Landlock domain differs from the server
    argv = [str(PYCTR_BIN), "run", "--rm", "--network", "none", "busybox", "true"]
    confined = subprocess.run(landlocked(*argv), env=warm.env, capture_output=True, text=True, timeout=60)
    alone = subprocess.run(landlocked(*argv), env={**warm.env, "PYCTR_SERVER": "0"}, capture_output=True, text=True,
                           timeout=60)
    # In the domain a container cannot be made (mount is denied): a worker outside it would have made one.
    assert confined.returncode == alone.returncode == 125, (confined.stderr, alone.stderr)
    assert "Traceback" not in confined.stderr
    listed = subprocess.run(landlocked(str(PYCTR_BIN), "images", "-q"), env=warm.env, capture_output=True, text=True,
                            timeout=60)
    assert listed.returncode == 0 and listed.stdout.strip(), listed.stderr  # what it may do still works


def test_a_server_started_in_a_landlock_domain_serves_no_client_outside_it(warm) -> None:
    """The converse: a worker in the domain would make an unconfined client's command fail (no mounts). The
    server, reading the client's /proc, may not ptrace it either: it declines, the client runs it itself."""
    stop_server()
    try:
        started = subprocess.run(landlocked(str(PYCTR_BIN), "version"), env=warm.env, capture_output=True,
                                 text=True, timeout=60)
        assert started.returncode == 0, started.stderr
        wait_for(lambda: len(server_pids()) == 1, timeout=30, what="the server started in the domain")
        ran = warm("run", "--rm", "--network", "none", "busybox", "true")
        assert ran.returncode == 0, ran.stderr
    finally:
        stop_server()  # the next tests get a server outside the domain


def test_a_proof_the_client_did_not_open_through_the_servers_proc_is_refused() -> None:
    request = protocol.request(client.BIN_DIR, client.PACKAGE_DIR, ["ps"], {}, 0o022, [], [])
    forged = os.memfd_create("pyctr-proof")  # same name, another file
    fds = [0, 1, 2, forged, forged]
    try:
        assert not server._acceptable(request, fds)
    finally:
        os.close(forged)


# ------------------------------------------------------------------ impersonation

IMPOSTOR = r"""
import os, socket, sys
os.dup2(os.memfd_create("pyctr-proof"), 3)  # as well equipped as the server: only who it is gives it away
path, report = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(1)
open(report + ".ready", "w").close()
s.settimeout(30)
conn, _ = s.accept()
conn.settimeout(2)
got = fds = 0
try:
    while True:
        data, anc, _, _ = conn.recvmsg(1 << 20, socket.CMSG_SPACE(128 * 4))
        fds += sum(len(payload) // 4 for _, _, payload in anc)
        if not data:
            break
        got += len(data)
except OSError:
    pass
open(report, "w").write(f"{got} {fds}")
"""


@pytest.mark.parametrize(("wrapper", "trusted"), [
    ((), True),  # control: root in our namespaces running our interpreter would be trusted
    (("unshare", "--mount"), False),  # a container's mount namespace, the host's /run bound into it
    (("unshare", "--pid", "--fork"), False),
    (("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"), False),
    (("setpriv", "--bounding-set", "-sys_admin"), False),  # a confined root process of the host's namespaces
    (("setpriv", "--no-new-privs"), False),
])
def test_a_listener_the_client_cannot_trust_receives_nothing(wrapper: tuple[str, ...], trusted: bool) -> None:
    shared = Path(tempfile.mkdtemp(dir="/tmp", prefix="pyctr-impostor-"))  # /tmp: reachable by nobody too
    shared.chmod(0o777)
    path, report = shared / "s.sock", shared / "report"
    impostor = subprocess.Popen([*wrapper, PYTHON, "-c", IMPOSTOR, str(path), str(report)])
    try:
        wait_for(Path(f"{report}.ready").exists, what="the impostor's socket")
        code = f"from pyctr import client; print(client.serve_remotely(['ps'], {str(path)!r}))"
        ran = subprocess.run([PYTHON, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30,
                             env={"PATH": os.environ["PATH"], "SECRET": "s3cret"})
        assert ran.returncode == 0 and ran.stdout.strip() == "None", ran.stderr  # it runs the command itself
        assert impostor.wait(timeout=30) == 0
        got, fds = map(int, report.read_text().split())
        if trusted:
            assert got > 0 and fds == protocol.FIXED_FDS  # what an impostor would get, were it trusted
        else:
            assert (got, fds) == (0, 0)
    finally:
        impostor.kill()
        impostor.wait()
        for entry in shared.iterdir():
            entry.unlink()
        shared.rmdir()


# ------------------------------------------------------------------ amplification

FLOOD = r"""
import socket, sys, time
path, count, body = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
held, connected = [], 0
for _ in range(count):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        connected += 1
        if body:
            s.setblocking(False)
            s.send((1 << 30).to_bytes(4, "little") + b"x" * body)  # announces 1 GiB
    except OSError:
        pass
    held.append(s)
print("flooding", connected, flush=True)
time.sleep(30)
"""


def flood(wrapper: tuple[str, ...], count: int, body: int) -> subprocess.Popen:
    proc = subprocess.Popen([*wrapper, PYTHON, "-c", FLOOD, client.socket_path(), str(count), str(body)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == f"flooding {count}\n"  # every connection was made
    return proc


def test_connections_from_another_namespace_make_no_process_and_are_not_read(warm) -> None:
    [srv] = server_pids()
    before = server_tree_rss_kib(srv)
    attacker = flood(("unshare", "--mount"), 40, 200_000)
    try:
        # The spare alone, while every connection is held open (a worker waits 10 s for its request, and a
        # previous command's worker is gone in well under 5 s): the spare declined each one itself.
        wait_for(lambda: len(children_of(srv)) <= 1, timeout=5, what="no process but the spare")
        assert server_tree_rss_kib(srv) < before + 20_000
        assert client_children_while_running(warm.env) == []  # a legitimate client is still served
    finally:
        attacker.kill()
        attacker.wait()


def test_a_container_given_the_socket_makes_no_worker(warm) -> None:
    """The issue's case: a container (8 PIDs, 32 MB) with the socket directory mounted floods the server with
    connections announcing 1 GiB each. It runs the host's interpreter through the host's loader, mounted
    read-only: busybox has no unix-socket client."""
    [srv] = server_pids()
    before = server_tree_rss_kib(srv)
    prefix = Path(os.path.realpath(PYTHON)).parent.parent  # the interpreter's installation: bin/, lib/
    name = f"flood-{os.getpid()}"
    socket_name = os.path.basename(client.socket_path())
    argv = ["run", "-d", "--name", name, "--network", "none", "--pids-limit", "8", "--memory", "32m",
            "-v", f"{client.SOCKET_DIR}:/hostrun", "-v", "/usr:/hostusr:ro", "-v", f"{prefix}:/py:ro",
            "-e", "PYTHONHOME=/py", "busybox", "/hostusr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "--library-path",
            "/hostusr/lib/x86_64-linux-gnu:/py/lib", f"/py/bin/{os.path.basename(os.path.realpath(PYTHON))}",
            "-S", "-c", FLOOD, f"/hostrun/{socket_name}", "40", "200000"]
    started = warm(*argv)
    assert started.returncode == 0, started.stderr
    try:
        wait_for(lambda: "flooding" in warm("logs", name).stdout, timeout=30, what="the container's flood")
        assert warm("logs", name).stdout.split() == ["flooding", "40"]  # every connection was made
        wait_for(lambda: len(children_of(srv)) <= 1, timeout=5, what="no process but the spare")  # as above
        assert server_tree_rss_kib(srv) < before + 20_000
        assert client_children_while_running(warm.env) == []  # a legitimate client is still served
    finally:
        warm("rm", "-f", name)


def test_served_clients_are_bounded_in_number(warm) -> None:
    [srv] = server_pids()
    attacker = flood((), server.MAX_WORKERS + 20, 0)  # same context, then silent: each holds a worker a while
    try:
        most, deadline = 0, time.monotonic() + 6  # less than a worker waits for its request
        while time.monotonic() < deadline:
            most = max(most, len(children_of(srv)))
            time.sleep(0.05)
        assert most <= server.MAX_WORKERS + 1
        assert warm("images", "-q").returncode == 0  # declined by the server itself: runs in-process
    finally:
        attacker.kill()
        attacker.wait()


def test_a_request_over_the_bound_is_declined_and_the_command_runs_in_the_client(warm) -> None:
    """A worker declines after reading the announced size (a late decline): the command runs in-process."""
    # ~4.8 MB of environment: execve allows it under a 64 MiB stack limit (ARG_MAX is a quarter of it)
    enlarge = ('x=$(head -c 120000 /dev/zero | tr "\\0" x); for i in $(seq 40); do export "LARGE$i=$x"; done; '
               'exec "$@"')
    big = ("prlimit", "--stack=67108864:67108864", "sh", "-c", enlarge, "sh")
    assert client_children_while_running(warm.env, big) != []  # the container is the client's child: ran here
    same = ("prlimit", "--stack=67108864:67108864", "sh", "-c", 'exec "$@"', "sh")
    assert client_children_while_running(warm.env, same) == []  # control: served when it fits


# ------------------------------------------------------------------ inherited descriptors


def test_a_server_started_by_a_command_keeps_none_of_its_descriptors(warm, tmp_path: Path) -> None:
    stop_server()
    read_end, write_end = os.pipe()
    lock = os.open(tmp_path / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        ran = subprocess.run([str(PYCTR_BIN), "ps"], env=warm.env, capture_output=True, text=True, timeout=60,
                             pass_fds=[write_end, lock])
        assert ran.returncode == 0, ran.stderr
    finally:
        os.close(write_end)
        os.close(lock)
    try:
        wait_for(lambda: len(server_pids()) == 1, timeout=30, what="the server that command started")
        assert select.select([read_end], [], [], 5)[0] and os.read(read_end, 1) == b""  # EOF: no writer left
        again = os.open(tmp_path / "lock", os.O_RDWR)
        try:
            fcntl.flock(again, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released: nobody holds the caller's lock
        finally:
            os.close(again)
    finally:
        os.close(read_end)
