"""The `pyctr` command's client half (pyctr/client.py) and the server's request decoding: pure parts."""

from __future__ import annotations

import os
import socket
import subprocess
import time

import pytest

from pyctr import client, server


@pytest.mark.parametrize(("argv", "command"), [
    (["run", "busybox"], "run"),
    (["--root", "/x", "ps"], "ps"),
    (["--config", "c.toml", "-D", "exec", "box", "sh"], "exec"),
    (["--debug", "login"], "login"),
    (["--help"], None),
    ([], None),
])
def test_command_of_skips_global_options_and_their_values(argv: list[str], command: str | None) -> None:
    assert client.command_of(argv) == command


def test_only_root_commands_go_to_the_server_and_never_password_prompts() -> None:
    assert client.wants_server(["run", "busybox"], {}, euid=0)
    assert not client.wants_server(["run", "busybox"], {}, euid=1000)
    assert not client.wants_server(["login", "reg"], {}, euid=0)
    assert not client.wants_server(["logout"], {}, euid=0)
    for off in ("0", "off", "no", "false", " OFF "):
        assert not client.wants_server(["ps"], {"PYCTR_SERVER": off}, euid=0)
    assert client.wants_server(["ps"], {"PYCTR_SERVER": "1"}, euid=0)


def test_wait_status_becomes_what_a_shell_sees() -> None:
    assert client.exit_for(0) == (0, 0)
    assert client.exit_for(3 << 8) == (3, 0)
    assert client.exit_for(137 << 8) == (137, 0)
    assert client.exit_for(9) == (137, 9)  # killed by SIGKILL: the client dies of the same signal
    assert client.exit_for(15) == (143, 15)


def test_one_server_per_installation() -> None:
    a = client.socket_path("/venv-a/bin", "/src/a/pyctr")
    assert a == client.socket_path("/venv-a/bin", "/src/a/pyctr")
    assert a != client.socket_path("/venv-b/bin", "/src/a/pyctr")
    assert a != client.socket_path("/venv-a/bin", "/src/b/pyctr")
    assert a.startswith(client.SOCKET_DIR + "/") and len(a) < 100  # sun_path holds 108 bytes


def test_a_request_carries_argv_environment_umask_limits_and_five_descriptors() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        env = {"PYCTR_ROOT": "/tmp/r", "ODD": "caf\udce9"}  # undecodable bytes survive (surrogateescape)
        request = client.encode_request(["run", "--rm", "busybox"], env, 0o027, [(1, 2), (3, 4)])
        client._send_request(ours, request)
        received, fds = server._receive(theirs)
    try:
        assert received == (client.PROTOCOL, client.BIN_DIR, client.PACKAGE_DIR, ["run", "--rm", "busybox"], env,
                            0o027, [(1, 2), (3, 4)], [])
        assert len(fds) == server.MAX_FDS
        assert os.path.samestat(os.fstat(fds[3]), os.stat("."))  # the working directory, as a descriptor
    finally:
        for fd in fds:
            os.close(fd)


def test_a_large_environment_arrives_whole() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        env = {f"VAR{i}": "x" * 1000 for i in range(300)}  # ~300 KB: more than one socket buffer
        request = client.encode_request(["ps"], env, 0o022, [])
        import threading

        sender = threading.Thread(target=client._send_request, args=(ours, request))
        sender.start()
        received, fds = server._receive(theirs)
        sender.join()
    for fd in fds:
        os.close(fd)
    assert received[4] == env


def test_relay_holds_signals_until_the_worker_is_known(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: sent.append((pid, sig)))
    relay = client._Relay()
    relay(2, None)
    assert sent == [] and relay.pending == [2]
    relay.start(4242)
    relay(15, None)
    assert sent == [(4242, 2), (4242, 15)] and relay.pending == []


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_a_request_over_the_bound_is_refused_before_its_body_is_read() -> None:
    ours, theirs = socket.socketpair()
    read_end, write_end = os.pipe()
    with ours, theirs:
        before = _open_fds()
        announced = (client.MAX_REQUEST + 1).to_bytes(4, "little")  # a body the worker would have to hold
        socket.send_fds(ours, [announced + b"x" * 100], [read_end])
        with pytest.raises(ValueError, match="too large"):
            server._receive(theirs)
        assert _open_fds() == before  # the descriptors that came with it are closed too
    os.close(read_end)
    os.close(write_end)


def test_a_request_that_does_not_arrive_in_time_is_refused() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.send((100).to_bytes(4, "little") + b"x" * 10)  # and the other 90 bytes never come
        started = time.monotonic()
        with pytest.raises(OSError):
            server._receive(theirs, seconds=0.3)
        assert time.monotonic() - started < 2


def _with_field(context: tuple, field: str, value: bytes) -> tuple:
    privileges = list(context[0])
    privileges[server.PRIVILEGE_FIELDS.index(field)] = value
    return (tuple(privileges), *context[1:])


def test_only_a_client_in_exactly_the_servers_context_is_served() -> None:
    own = server.own_context()
    assert server.may_serve(own, own)
    assert not server.may_serve((own[0], own[1], b"0::/elsewhere\n", *own[3:]), own)  # another cgroup
    assert not server.may_serve((own[0], (b"other-label",) * len(own[1]), *own[2:]), own)  # another LSM label
    assert not server.may_serve(_with_field(own, "Seccomp_filters", b"1"), own)


def test_a_server_under_a_seccomp_filter_serves_nobody() -> None:
    """Two filters cannot be compared: the same count may be different filters."""
    filtered = _with_field(_with_field(server.own_context(), "Seccomp", b"2"), "Seccomp_filters", b"1")
    assert not server.may_serve(filtered, filtered)


def test_a_pidfd_of_a_reaped_process_opens_no_proc_directory() -> None:
    """Its number may already name another process: the directory it names is not the peer's."""
    live = subprocess.Popen(["sleep", "30"])
    pidfd = os.pidfd_open(live.pid)
    try:
        proc = client.proc_dir_of(pidfd)
        assert proc is not None
        assert os.read(fd := os.open("stat", os.O_RDONLY, dir_fd=proc), 100).startswith(f"{live.pid} ".encode())
        os.close(fd)
        os.close(proc)
        live.kill()
        live.wait()
        assert client.proc_dir_of(pidfd) is None
    finally:
        os.close(pidfd)
        live.kill()
        live.wait()
