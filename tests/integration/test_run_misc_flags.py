"""The h-misc run/create flags for real, inside containers: --dns-search/--dns-option (resolv.conf on the default
bridge and on a user network), --mac-address (eth0), --link (legacy /etc/hosts and variables; a DNS alias on a
user network), the embedded DNS's PTR answers, --log-driver/--log-opt (rotated files, `logs` across them, none,
local), -a, --sig-proxy, --detach-keys, -P publishing --expose'd ports and --platform.

One network per test module (10.81.201.0/24: no other test's range); every container the tests make is named
misc-* and removed at the end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from tests.integration.helpers import program_under_a_pty, wait_for

pytestmark = pytest.mark.integration

NETWORK = "miscnet"
SUBNET = "10.81.201.0/24"


@pytest.fixture
def box(pyctr):
    """The session runner with busybox pulled; every misc-* container and the test network removed after."""
    pyctr("pull", "busybox", check=True, timeout=120)
    yield pyctr
    names = [n for n in pyctr("ps", "-a", "--format", "{{.Names}}").stdout.split() if n.startswith("misc-")]
    if names:
        pyctr("rm", "-f", *names, timeout=60)
    if NETWORK in pyctr("network", "ls", "--format", "{{.Name}}").stdout.split():
        pyctr("network", "rm", NETWORK)


def _ok(runner, *args, timeout: float = 60) -> str:
    result = runner(*args, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(map(str, args))}: {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _inspect(runner, name: str) -> dict:
    return json.loads(_ok(runner, "inspect", name))[0]


def _network(runner) -> None:
    _ok(runner, "network", "create", "--subnet", SUBNET, NETWORK)


# ------------------------------------------------------------------------------------------ DNS options

def test_dns_search_and_options_land_in_resolv_conf_on_both_kinds_of_network(box) -> None:
    text = _ok(box, "run", "--rm", "--dns", "10.0.0.53", "--dns-search", "example.com", "--dns-search", "corp.lan",
               "--dns-option", "ndots:3", "--dns-opt", "timeout:2", "busybox", "cat", "/etc/resolv.conf")
    assert text == "search example.com corp.lan\nnameserver 10.0.0.53\noptions ndots:3 timeout:2\n"
    _network(box)
    text = _ok(box, "run", "--rm", "--network", NETWORK, "--dns-search", "example.com", "--dns-option", "ndots:2",
               "busybox", "cat", "/etc/resolv.conf")
    assert text == "search example.com\nnameserver 127.0.0.11\noptions ndots:2\n"  # the embedded DNS, ndots kept
    bad = box("run", "--rm", "--dns-search", "-x-", "busybox", "true")
    assert bad.returncode == 125 and 'for "--dns-search" flag: -x- is not a valid domain' in bad.stderr
    doc = _inspect(box, _ok(box, "create", "--name", "misc-dns", "--dns-search", "a.example", "--dns-option",
                            "rotate", "busybox").strip())
    assert doc["HostConfig"]["DnsSearch"] == ["a.example"] and doc["HostConfig"]["DnsOptions"] == ["rotate"]


# ------------------------------------------------------------------------------------------ MAC address

def test_mac_address_is_eth0s_on_the_default_bridge_and_a_user_network(box) -> None:
    mac = "92:d0:c6:0a:29:33"
    shown = _ok(box, "run", "--rm", "--mac-address", mac.upper(), "busybox", "cat", "/sys/class/net/eth0/address")
    assert shown.strip() == mac
    _network(box)
    _ok(box, "run", "-d", "--name", "misc-mac", "--network", NETWORK, "--mac-address", "92-d0-c6-0a-29-34",
        "busybox", "sleep", "30")
    assert "92:d0:c6:0a:29:34" in _ok(box, "exec", "misc-mac", "ip", "link", "show", "eth0")
    doc = _inspect(box, "misc-mac")
    assert doc["Config"]["MacAddress"] == "92-d0-c6-0a-29-34"
    assert doc["NetworkSettings"]["Networks"][NETWORK]["MacAddress"] == "92:d0:c6:0a:29:34"
    bad = box("run", "--rm", "--mac-address", "92:d0:c6:0a:29", "busybox", "true")
    assert bad.returncode == 125 and "92:d0:c6:0a:29 is not a valid mac address" in bad.stderr
    assert "Traceback" not in bad.stderr


# ------------------------------------------------------------------------------------------ links and PTR

def test_legacy_link_gives_hosts_entry_and_dockers_variables(box) -> None:
    _ok(box, "run", "-d", "--name", "misc-db", "-e", "SECRET=s3", "--expose", "6379", "busybox", "sleep", "30")
    db = _inspect(box, "misc-db")
    ip, hostname = db["NetworkSettings"]["IPAddress"], db["Config"]["Hostname"]
    out = _ok(box, "run", "--rm", "--name", "misc-web", "--link", "misc-db:database", "busybox", "sh", "-c",
              "cat /etc/hosts; env; ping -c1 -W2 database >/dev/null && echo PING-OK")
    assert f"{ip}\tdatabase {hostname} misc-db" in out.splitlines()
    env = {line.split("=", 1)[0]: line.split("=", 1)[1] for line in out.splitlines() if "=" in line}
    assert env["DATABASE_PORT"] == f"tcp://{ip}:6379" and env["DATABASE_PORT_6379_TCP_ADDR"] == ip
    assert env["DATABASE_NAME"] == "/misc-web/database" and env["DATABASE_ENV_SECRET"] == "s3"
    assert "PING-OK" in out
    missing = box("run", "--rm", "--link", "misc-nope:x", "busybox", "true")
    assert missing.returncode == 125 and "could not get container for misc-nope" in missing.stderr
    _ok(box, "stop", "-t", "0", "misc-db")
    stopped = box("run", "--rm", "--name", "misc-web2", "--link", "misc-db:database", "busybox", "true")
    assert stopped.returncode != 0 and "Cannot link to a non running container: /misc-db AS /misc-web2/database" \
        in stopped.stderr


def test_link_on_a_user_network_is_an_alias_and_addresses_answer_ptr(box) -> None:
    _network(box)
    _ok(box, "run", "-d", "--name", "misc-store", "--network", NETWORK, "busybox", "sleep", "30")
    ip = _inspect(box, "misc-store")["NetworkSettings"]["Networks"][NETWORK]["IPAddress"]
    linked = _ok(box, "run", "--rm", "--network", NETWORK, "--link", "misc-store:cache", "busybox",
                 "nslookup", "cache")
    assert ip in linked
    unlinked = box("run", "--rm", "--network", NETWORK, "busybox", "nslookup", "cache")
    assert ip not in unlinked.stdout  # the alias is the linking container's own
    reverse = _ok(box, "run", "--rm", "--network", NETWORK, "busybox", "nslookup", ip)
    assert f"misc-store.{NETWORK}" in reverse


# ------------------------------------------------------------------------------------------ logging

def _log_files(runner, name: str) -> list[str]:
    directory = runner.root / "containers" / _inspect(runner, name)["Id"]
    return sorted(p.name.split("-json.log", 1)[1] or "live" for p in directory.iterdir() if "-json.log" in p.name)


def _numbered_lines(text: str) -> list[int]:
    return [int(line.split("-")[1]) for line in text.splitlines()]


@pytest.mark.parametrize("detached", [True, False])
def test_json_log_rotates_and_logs_reads_across_the_files(box, detached) -> None:
    name = f"misc-rot-{int(detached)}"
    script = "i=0; while [ $i -lt 300 ]; do i=$((i+1)); echo line-$i; done"
    args = ["run", "--name", name, "--log-opt", "max-size=1k", "--log-opt", "max-file=3", "busybox", "sh", "-c",
            script]
    if detached:
        _ok(box, *args[:1], "-d", *args[1:])
        _ok(box, "wait", name)
    else:
        assert _numbered_lines(_ok(box, *args)) == list(range(1, 301))
    assert _log_files(box, name) == [".1", ".2", "live"]  # max-file 3: the live file and two rotated ones
    kept = _numbered_lines(_ok(box, "logs", name))
    assert kept[-1] == 300 and kept == list(range(kept[0], 301)) and 20 < len(kept) < 300  # in order, none lost
    assert _numbered_lines(_ok(box, "logs", "--tail", "20", name)) == list(range(281, 301))  # spans the files
    assert _inspect(box, name)["HostConfig"]["LogConfig"] == {"Type": "json-file",
                                                               "Config": {"max-size": "1k", "max-file": "3"}}


def test_follow_continues_across_a_rotation(box) -> None:
    _ok(box, "run", "-d", "--name", "misc-follow", "--log-opt", "max-size=500", "--log-opt", "max-file=2",
        "busybox", "sh", "-c", "sleep 0.5; i=0; while [ $i -lt 100 ]; do i=$((i+1)); echo line-$i; usleep 5000; done")
    followed = _ok(box, "logs", "-f", "misc-follow", timeout=30)
    assert _numbered_lines(followed) == list(range(1, 101))


def test_log_driver_none_and_local(box) -> None:
    assert _ok(box, "run", "--rm", "--log-driver", "none", "busybox", "echo", "shown") == "shown\n"
    _ok(box, "run", "-d", "--name", "misc-none", "--log-driver", "none", "busybox", "echo", "lost")
    _ok(box, "wait", "misc-none")
    refused = box("logs", "misc-none")
    assert refused.returncode == 1
    assert refused.stderr.strip() == "Error response from daemon: configured logging driver does not support reading"
    assert _log_files(box, "misc-none") == []
    _ok(box, "run", "-d", "--name", "misc-local", "--log-driver", "local", "busybox", "echo", "kept")
    _ok(box, "wait", "misc-local")
    assert _ok(box, "logs", "misc-local") == "kept\n"
    local = _inspect(box, "misc-local")
    assert local["HostConfig"]["LogConfig"] == {"Type": "local", "Config": {}} and local["LogPath"] == ""
    assert _inspect(box, "misc-none")["LogPath"] == ""
    bad = box("run", "--rm", "--log-opt", "max-bytes=1", "busybox", "true")
    assert bad.returncode == 125 and "unknown log opt 'max-bytes' for json-file log driver" in bad.stderr


# ------------------------------------------------------------------------------------------ attach, signals

def test_attach_only_the_named_streams(box) -> None:
    result = box("run", "--rm", "-a", "stderr", "busybox", "sh", "-c", "echo to-out; echo to-err >&2")
    assert result.returncode == 0 and result.stdout == "" and result.stderr == "to-err\n"
    result = box("run", "--name", "misc-attach", "-a", "STDOUT", "busybox", "sh", "-c", "echo o; echo e >&2")
    assert result.stdout == "o\n" and result.stderr == ""
    assert _ok(box, "logs", "misc-attach") == "o\n"  # the unattached stream is still logged
    conflict = box("run", "-d", "-a", "stdout", "busybox", "true")
    assert conflict.returncode == 125 and "Conflicting options: -a and -d" in conflict.stderr


@pytest.mark.parametrize("proxy", ["true", "false"])
def test_sig_proxy(box, proxy) -> None:
    """A SIGTERM to `run` reaches the container (its trap runs); with --sig-proxy=false it ends the command only:
    the container runs on to its end (Docker's)."""
    name = f"misc-sig-{proxy}"
    script = "trap 'echo trapped; exit 3' TERM; echo ready; i=0; while [ $i -lt 20 ]; do i=$((i+1)); sleep 0.1; done;" \
             " echo finished"
    proc = subprocess.Popen([str(_bin()), "run", "--name", name, f"--sig-proxy={proxy}", "busybox", "sh", "-c",
                             script], env=box.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        time.sleep(0.3)  # the command is past its start (a signal before that is the shell's business)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _ok(box, "wait", name).strip() == ("3" if proxy == "true" else "0")
    logged = _ok(box, "logs", name)
    assert ("trapped" in logged) == (proxy == "true") and ("finished" in logged) == (proxy == "false")


def _bin():
    from tests.integration.conftest import PYCTR_BIN

    return PYCTR_BIN


def test_detach_keys_leave_the_container_running(box) -> None:
    code, shown = program_under_a_pty([str(_bin()), "run", "-it", "--name", "misc-detach", "--detach-keys",
                                       "ctrl-x", "busybox", "sh"], box.env, typed=b"\x18", prompt=b"# ")
    assert code == 0, shown
    state = _inspect(box, "misc-detach")["State"]
    assert state["Running"] is True, (state, shown)
    assert box("run", "--rm", "--sig-proxy=false", "busybox", "sh", "-c", "exit 7").returncode == 7  # its code
    assert box("run", "--rm", "--detach-keys", "ctrl-q", "busybox", "sh", "-c", "echo hi; exit 4").returncode == 4
    _ok(box, "create", "-it", "--name", "misc-detach-start", "busybox", "sh")
    code, shown = program_under_a_pty([str(_bin()), "start", "-a", "-i", "--detach-keys", "ctrl-x",
                                       "misc-detach-start"], box.env, typed=b"echo typed-in\n\x18", prompt=b"# ")
    assert code == 0, shown
    assert _inspect(box, "misc-detach-start")["State"]["Running"] is True
    wait_for(lambda: "typed-in" in box("logs", "misc-detach-start").stdout, what="the typed line reached the shell")
    bad = box("run", "--rm", "--detach-keys", "ctrl-", "busybox", "true")
    assert bad.returncode == 125 and "Unknown character" in bad.stderr


# ------------------------------------------------------------------------------------------ -P, --platform

def test_publish_all_publishes_the_exposed_ports_too(box) -> None:
    _ok(box, "run", "-d", "--name", "misc-expose", "-P", "--expose", "7777", "--expose", "9000-9001/udp",
        "busybox", "sleep", "30")
    ports = _ok(box, "port", "misc-expose")
    for port in ("7777/tcp", "9000/udp", "9001/udp"):
        assert f"{port} -> 0.0.0.0:" in ports


def test_platform(box, registry) -> None:
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
    _ok(box, "create", "--name", "misc-plat", "--platform", f"linux/{arch}", "busybox")
    other = "arm64" if arch == "amd64" else "amd64"
    never = box("create", "--platform", f"linux/{other}", "--pull", "never", "busybox")
    assert never.returncode == 125 and "does not match the specified platform" in never.stderr
    bad = box("create", "--platform", "foo", "busybox")
    assert bad.returncode == 125 and '"foo": unknown operating system or architecture' in bad.stderr
    multi = registry.reference("multi")
    missing = box("create", "--platform", "linux/s390x", multi, "true", timeout=120)
    assert missing.returncode == 125 and "no matching manifest for linux/s390x" in missing.stderr
    foreign = box("create", "--platform", f"linux/{other}", multi, "true", timeout=120)
    assert foreign.returncode == 125 and "exec format error" in foreign.stderr and "Traceback" not in foreign.stderr


# ------------------------------------------------------------------------------------------ the Engine API

def test_docker_cli_through_the_api_sets_the_same_flags(pyctr_config, tmp_path) -> None:
    """The real docker CLI against `pyctr system service`: HostConfig.LogConfig/DnsSearch/DnsOptions/Links reach
    the container as the flags do, and /logs of a `none` container is Docker's 501."""
    from tests.integration.api_daemon import start_daemon
    from tests.integration.conftest import _env_for, make_root

    (tmp_path / "docker-config").mkdir()
    daemon = start_daemon(_env_for(make_root(tmp_path / "root"), pyctr_config), tmp_path)
    try:
        daemon.pyctr("pull", "-q", "busybox", check=True, timeout=120)
        # (this docker CLI sends --mac-address per network, API 1.44: Config.MacAddress is unit-tested)
        out = daemon.docker("run", "--rm", "--dns-search", "example.com", "--dns-option", "ndots:4", "busybox",
                            "cat", "/etc/resolv.conf", check=True).stdout
        assert "search example.com\n" in out and "options ndots:4\n" in out
        daemon.docker("run", "-d", "--name", "misc-api-db", "--expose", "5432", "busybox", "sleep", "30", check=True)
        linked = daemon.docker("run", "--rm", "--link", "misc-api-db:pg", "busybox", "sh", "-c",
                               "echo $PG_PORT; grep -c pg /etc/hosts", check=True).stdout.split()
        assert linked[0].startswith("tcp://") and linked[0].endswith(":5432") and linked[1] == "1"
        cid = daemon.docker("run", "-d", "--log-driver", "none", "busybox", "echo", "x", check=True).stdout.strip()
        daemon.docker("wait", cid, check=True)
        refused = daemon.docker("logs", cid)
        assert refused.returncode == 1
        assert "configured logging driver does not support reading" in refused.stderr
        made = daemon.docker("create", "--log-opt", "max-size=1k", "--log-opt", "max-file=2", "busybox",
                             check=True).stdout.strip()
        log_config = json.loads(daemon.docker("inspect", "-f", "{{json .HostConfig.LogConfig}}", made,
                                              check=True).stdout)
        assert log_config == {"Type": "json-file", "Config": {"max-size": "1k", "max-file": "2"}}
    finally:
        ids = daemon.pyctr("ps", "-aq", "--no-trunc").stdout.split()
        if ids:
            daemon.pyctr("rm", "-f", *ids)
        daemon.proc.terminate()
        daemon.proc.wait(timeout=30)
