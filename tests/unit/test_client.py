"""The `pyctr` command's client half (pyctr/client.py) and the server's request decoding: pure parts."""

from __future__ import annotations

import ast
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from pyctr import client, protocol, server


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
        assert received == {"protocol": protocol.VERSION, "bin_dir": client.BIN_DIR, "package_dir": client.PACKAGE_DIR,
                            "argv": ["run", "--rm", "busybox"], "environ": env, "umask": 0o027,
                            "limits": [(1, 2), (3, 4)], "extra_fds": []}
        assert protocol.is_request(received)
        assert len(fds) == protocol.FIXED_FDS
        assert os.path.samestat(os.fstat(fds[protocol.CWD_INDEX]), os.stat("."))  # the cwd, as a descriptor
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
    assert received[protocol.ENVIRON] == env


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
        announced = (protocol.MAX_REQUEST + 1).to_bytes(4, "little")  # a body the worker would have to hold
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


def test_only_a_request_of_this_version_with_exactly_its_named_fields_is_one() -> None:
    good = protocol.request("/venv/bin", "/src/pyctr", ["ps"], {}, 0o022, [], [5])
    assert protocol.is_request(good)
    assert not protocol.is_request(tuple(good.values()))  # version 3's positional tuple
    assert not protocol.is_request({**good, protocol.PROTOCOL: 3})
    assert not protocol.is_request({k: v for k, v in good.items() if k != protocol.UMASK})
    assert not protocol.is_request({**good, "extra": 1})
    assert not protocol.is_request({**good, protocol.EXTRA_FDS: 5})


def test_a_reply_decodes_to_its_kind_and_signed_value() -> None:
    for kind, value in ((protocol.ACCEPTED, 4242), (protocol.STATUS, 9), (protocol.STATUS, -1), (protocol.DECLINED, 0)):
        data = protocol.encode_reply(kind, value)
        assert len(data) == protocol.REPLY_SIZE
        assert protocol.decode_reply(data) == (kind, value)


def _imports_inside_functions(tree: ast.AST) -> set[str]:
    """The referee: every module imported inside a function body, read off the syntax tree."""
    found: set[str] = set()
    for function in ast.walk(tree):
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(function):
                if isinstance(node, ast.Import):
                    found.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module)
    return found


def test_the_preload_covers_every_import_inside_a_function_of_a_preloaded_module() -> None:
    """The server's preload list is read off the source; a lazy import it missed would be paid by every
    command that reaches it (an ast walk is the independent referee of the line scan)."""
    root = Path(server.PACKAGE_DIR)
    expected: set[str] = set()
    for path in root.rglob("*.py"):
        dotted = ".".join(path.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__")
        if dotted not in server.NOT_PRELOADED:
            expected |= _imports_inside_functions(ast.parse(path.read_bytes()))
    scanned = {module for module, _ in server.lazy_imports()}
    assert expected and not expected - scanned
    assert {"requests", "pyroute2.conntrack", "pyctr.runtime.exec"} <= expected  # the referee sees real ones


def test_the_line_scan_reads_every_form_of_import() -> None:
    source = (b"import os\n"
              b"def f():\n"
              b"    import json, re as regex\n"
              b"    import urllib.parse as up\n"
              b"    from pyroute2.conntrack import Conntrack\n"
              b"    from isal import (isal_zlib,\n"
              b"                      igzip)\n"
              b'    """\n'
              b"    from the start\n")
    assert server.lazy_imports_in(source) == [("json", ()), ("re", ()), ("urllib.parse", ()),
                                              ("pyroute2.conntrack", ("Conntrack",)), ("isal", ("isal_zlib",))]

