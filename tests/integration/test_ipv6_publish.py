"""`-p HOSTPORT:PORT` on an IPv6 host: also served on [::] by a userland proxy and listed as Docker 20.10 lists it.

Docker 20.10.24 (userland-proxy on, the default; IPv6 enabled on the host), recorded:
    $ docker run -d --name web -p 8000:80 busybox httpd -f -p 80
    $ docker ps --format '{{.Ports}}'            -> 0.0.0.0:8000->80/tcp, :::8000->80/tcp
    $ docker port web                            -> 80/tcp -> 0.0.0.0:8000 / 80/tcp -> :::8000
    $ docker port web 80                         -> 0.0.0.0:8000 / :::8000
    $ docker inspect -f '{{json .NetworkSettings.Ports}}' web
      {"80/tcp":[{"HostIp":"0.0.0.0","HostPort":"8000"},{"HostIp":"::","HostPort":"8000"}]}
    $ docker run -p 127.0.0.1:8000:80 ...        -> no [::] binding
    [::]:8000 taken by a host process            -> Bind for :::8000 failed: port is already allocated (125)
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
import urllib.request
from pathlib import Path

import pytest

from pyctr.runtime.network.ports import host_has_ipv6
from tests.integration.helpers import lifecycle_runner, proc_gone, removed_after

PAGE = "hello over ipv6"
HTTPD = ("sh", "-c", f"mkdir -p /www && echo '{PAGE}' > /www/index.html && exec httpd -f -p 80 -h /www")


@pytest.fixture(scope="module")
def lc(pyctr_config, tmp_path_factory):
    assert host_has_ipv6(), "these tests need IPv6 on the host (net.ipv6.conf.all.disable_ipv6=0, ::1 on lo)"
    yield from lifecycle_runner(pyctr_config, tmp_path_factory, "ipv6publish")


@pytest.fixture
def cleanup(lc):
    yield from removed_after(lc)


def free_port() -> int:
    """A port free on both 0.0.0.0 and [::]."""
    while True:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as six:
            six.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            six.bind(("::", 0))
            port = six.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as four:
                try:
                    four.bind(("0.0.0.0", port))
                except OSError:
                    continue
        return port


def listening_on_ipv6(port: int) -> bool:
    """True if something listens on [::]:port (TCP), from /proc/net/tcp6."""
    for line in Path("/proc/net/tcp6").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
            return True
    return False


def proxies_of(container_id: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(a.endswith(b"userland_proxy.py") for a in args) and container_id.encode() in args:
            found.append(int(entry.name))
    return found


def get(url: str, seconds: float = 20) -> str:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def container_id(lc, name: str) -> str:
    return lc("inspect", "-f", "{{.Id}}", name, check=True).stdout.strip()


def assert_all_gone(cid: str, port: int) -> None:
    deadline = time.monotonic() + 10
    while (proxies_of(cid) or listening_on_ipv6(port)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proxies_of(cid) == []
    assert not listening_on_ipv6(port)


def test_ipv6_get_listing_and_removal(lc, cleanup):
    cleanup.append("web6")
    port = free_port()
    lc("run", "-d", "--name", "web6", "-p", f"{port}:80", "busybox", *HTTPD, check=True)
    cid = container_id(lc, "web6")
    assert get(f"http://[::1]:{port}/").strip() == PAGE
    assert get(f"http://127.0.0.1:{port}/").strip() == PAGE  # IPv4 is still the kernel's DNAT
    assert lc("ps", "--filter", "name=web6", "--format", "{{.Ports}}").stdout == \
        f"0.0.0.0:{port}->80/tcp, :::{port}->80/tcp\n"
    assert lc("port", "web6").stdout == f"80/tcp -> 0.0.0.0:{port}\n80/tcp -> :::{port}\n"
    assert lc("port", "web6", "80").stdout == f"0.0.0.0:{port}\n:::{port}\n"
    ports = json.loads(lc("inspect", "-f", "{{json .NetworkSettings.Ports}}", "web6").stdout)
    assert ports == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(port)}, {"HostIp": "::", "HostPort": str(port)}]}
    bindings = json.loads(lc("inspect", "-f", "{{json .HostConfig.PortBindings}}", "web6").stdout)
    assert bindings == {"80/tcp": [{"HostIp": "", "HostPort": str(port)}]}
    first = proxies_of(cid)
    assert len(first) == 1
    lc("restart", "-t", "1", "web6", check=True)  # stop stops the proxy, start starts a new one
    assert get(f"http://[::1]:{port}/").strip() == PAGE
    assert len(proxies_of(cid)) == 1 and proxies_of(cid) != first
    lc("rm", "-f", "web6", check=True)
    assert_all_gone(cid, port)


def test_explicit_ipv4_host_address_gets_no_ipv6_binding(lc, cleanup):
    cleanup.append("web4")
    port = free_port()
    lc("run", "-d", "--name", "web4", "-p", f"127.0.0.1:{port}:80", "busybox", *HTTPD, check=True)
    cid = container_id(lc, "web4")
    assert get(f"http://127.0.0.1:{port}/").strip() == PAGE
    assert lc("port", "web4").stdout == f"80/tcp -> 127.0.0.1:{port}\n"
    assert proxies_of(cid) == [] and not listening_on_ipv6(port)


def test_port_taken_on_ipv6_is_refused_before_start(lc, cleanup):
    cleanup.append("taken6")
    port = free_port()
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as holder:
        holder.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        holder.bind(("::", port))
        holder.listen()
        result = lc("run", "-d", "--name", "taken6", "-p", f"{port}:80", "busybox", "sleep", "60")
    assert result.returncode == 125
    assert f"Bind for :::{port} failed: port is already allocated" in result.stderr
    assert "taken6" not in lc("ps").stdout


def test_rm_exit_and_killed_monitor_leave_no_proxy(lc, cleanup):
    """`--rm` exit: the monitor's cleanup stops it. Monitor and container SIGKILLed: `system check` does."""
    port = free_port()
    cid = lc("run", "-d", "--rm", "-p", f"{port}:80", "busybox", "sleep", "1", check=True).stdout.strip()
    deadline = time.monotonic() + 30
    while lc("ps", "-aq", "--no-trunc").stdout.count(cid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert_all_gone(cid, port)

    cleanup.append("orphan6")
    port = free_port()
    lc("run", "-d", "--name", "orphan6", "-p", f"{port}:80", "busybox", "sleep", "60", check=True)
    cid = container_id(lc, "orphan6")
    assert len(proxies_of(cid)) == 1 and listening_on_ipv6(port)
    stored = json.loads(next(p for p in (lc.root / "containers").iterdir() if p.name.startswith(cid))
                        .joinpath("state.json").read_text())
    os.kill(stored["MonitorPid"], signal.SIGKILL)
    os.kill(stored["Pid"], signal.SIGKILL)
    assert proc_gone(stored["Pid"]) and proc_gone(stored["MonitorPid"])
    lc("system", "check", check=True, timeout=120)
    assert_all_gone(cid, port)
