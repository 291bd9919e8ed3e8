"""User-defined networks for real: `pyctr network ...`, name resolution through the embedded DNS server at
127.0.0.11, isolation between networks, --internal, live connect/disconnect, and no leaks.

Each test uses its own root (fresh_pyctr: own default bridge and subnet) and removes its networks even when it
fails. Explicit subnets are in 10.81.0.0/16 (no other test's range); the one auto-allocated network takes the
first of Docker's default pools the host's routes leave free.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.integration.helpers import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def net(fresh_pyctr):
    """The runner, with every network and container of the test removed at the end."""
    fresh_pyctr("pull", "busybox", check=True, timeout=120)
    yield fresh_pyctr
    ids = fresh_pyctr("ps", "-aq").stdout.split()
    if ids:
        fresh_pyctr("rm", "-f", *ids, timeout=60)
    names = fresh_pyctr("network", "ls", "--filter", "type=custom", "-q").stdout.split()
    if names:
        fresh_pyctr("network", "rm", *names)


def _ok(runner, *args, timeout: float = 60):
    result = runner(*args, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(map(str, args))}: {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _bridge_of(runner, name: str) -> str:
    doc = json.loads(_ok(runner, "network", "inspect", name))[0]
    return doc["Options"].get("com.docker.network.bridge.name") or f"br-{doc['Id'][:12]}"


def _links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def _nft_tables() -> str:
    return subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout


def _dns_pids(root: Path) -> list[int]:
    pids = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if b"dns_server.py" in cmdline and str(root).encode() in cmdline:
            pids.append(int(entry))
    return pids


# ------------------------------------------------------------------------------------------ name resolution

def test_two_containers_resolve_each_other_by_name_alias_and_id_and_talk_http(net) -> None:
    _ok(net, "network", "create", "--subnet", "10.81.1.0/24", "appnet")
    web = _ok(net, "run", "-d", "--name", "web", "--network", "appnet", "--network-alias", "service",
              "busybox", "sh", "-c", "mkdir /www && echo hello-from-web > /www/index.html && httpd -f -p 80 -h /www"
              ).strip()
    client = (f"nslookup web 127.0.0.11; nslookup service; nslookup {web[:12]}; ping -c1 -W2 web; "
              "wget -qO- http://service/index.html; cat /etc/resolv.conf")
    out = _ok(net, "run", "--rm", "--network", "appnet", "busybox", "sh", "-c", client)
    web_ip = json.loads(_ok(net, "inspect", "web"))[0]["NetworkSettings"]["Networks"]["appnet"]["IPAddress"]
    assert web_ip.startswith("10.81.1.")
    assert out.count(f"Address: {web_ip}") >= 3 or out.count(web_ip) >= 4, out
    assert "1 packets received" in out, out
    assert "hello-from-web" in out
    assert "nameserver 127.0.0.11" in out and "options ndots:0" in out


def test_default_bridge_has_no_name_resolution(net) -> None:
    _ok(net, "run", "-d", "--name", "plain", "busybox", "sleep", "60")
    out = net("run", "--rm", "busybox", "sh", "-c", "cat /etc/resolv.conf; ping -c1 -W1 plain", timeout=60)
    assert "127.0.0.11" not in out.stdout
    assert out.returncode != 0


def test_dns_answers_fast_and_unknown_names_are_not_invented(net) -> None:
    """Median answer inside a container < 1 ms (a small client in the container's namespace)."""
    _ok(net, "network", "create", "--subnet", "10.81.2.0/24", "fastnet")
    _ok(net, "run", "-d", "--name", "target", "--network", "fastnet", "busybox", "sleep", "120")
    probe = _ok(net, "run", "-d", "--name", "probe", "--network", "fastnet", "busybox", "sleep", "120").strip()
    pid = json.loads(_ok(net, "inspect", probe))[0]["State"]["Pid"]
    latencies, answers = _query_in_netns(pid, ["target"] * 200 + ["nosuchname-xyz.invalid"])
    latencies.sort()
    median = latencies[len(latencies) // 2]
    assert answers[0][0] == 0 and answers[0][1], answers[0]
    assert answers[-1][1] == [], answers[-1]  # not invented (forwarded or refused)
    assert median < 0.001, f"median DNS answer {median * 1e3:.3f} ms"
    assert _tcp_query_in_netns(pid, "TARGET")[0] == 0 and answers[0][1] == _tcp_query_in_netns(pid, "target")[1]


def _tcp_query_in_netns(pid: int, name: str) -> tuple[int, list[str]]:
    """The same question over TCP (what a client does after a truncated UDP answer)."""
    from pyctr.runtime.network import dns_server
    from pyctr.runtime.network.veth import call_in_netns

    found: list[tuple[int, list[str]]] = []

    def ask() -> None:
        with socket.create_connection(("127.0.0.11", 53), timeout=5) as conn:
            query = dns_server.build_query(9, name)
            conn.sendall(len(query).to_bytes(2, "big") + query)
            found.append(dns_server.parse_answer(dns_server.read_tcp_message(conn)))

    call_in_netns(pid, ask)
    return found[0]


def _query_in_netns(pid: int, names: list[str]) -> tuple[list[float], list[tuple[int, list[str]]]]:
    from pyctr.runtime.network import dns_server
    from pyctr.runtime.network.veth import call_in_netns

    latencies: list[float] = []
    answers: list[tuple[int, list[str]]] = []

    def ask() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(5)
            sock.connect(("127.0.0.11", 53))
            for i, name in enumerate(names):
                query = dns_server.build_query(i, name)
                start = time.perf_counter()
                sock.send(query)
                reply = sock.recv(4096)
                latencies.append(time.perf_counter() - start)
                answers.append(dns_server.parse_answer(reply))

    call_in_netns(pid, ask)
    return latencies[:-1], answers


def test_unknown_names_are_forwarded_to_the_upstream_resolver(net) -> None:
    """--dns names the upstream; the embedded server asks it from the host (here a fake on loopback)."""
    upstream = "127.0.0.153"
    with _fake_upstream(upstream, "10.99.99.99"):
        _ok(net, "network", "create", "--subnet", "10.81.3.0/24", "fwdnet")
        out = _ok(net, "run", "--rm", "--network", "fwdnet", "--dns", upstream, "busybox",
                  "nslookup", "outside.example")
        assert "10.99.99.99" in out, out


@contextlib.contextmanager
def _fake_upstream(address: str, answer: str):
    """A UDP resolver on host loopback answering every query with `answer` (the embedded server's upstream)."""
    from pyctr.runtime.network import dns_server

    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        server.bind((address, 53))
    except OSError as e:
        server.close()
        pytest.fail(f"cannot bind the fake upstream resolver {address}:53: {e}")
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                packet, peer = server.recvfrom(4096)
            except OSError:
                continue
            query = dns_server.parse_query(packet)
            if query is not None:
                server.sendto(dns_server.build_response(query, [answer]), peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        server.close()


class SlowTcpFlood:
    """`count` TCP connections to 127.0.0.11:53 from inside container `pid`'s namespace, each announcing a
    65535-byte query and then dripping it a byte at a time (well within any per-recv timeout), from a
    thread of the test, until stop()."""

    def __init__(self, pid: int, count: int) -> None:
        from pyctr.runtime.network.veth import call_in_netns

        self.conns: list[socket.socket] = []
        self.announced: set[int] = set()  # the length sent: the server is waiting for the rest
        self.refused: set[int] = set()  # closed by the server
        self.stopping = threading.Event()
        call_in_netns(pid, lambda: self._connect(count))  # sockets of that namespace, usable from any thread
        self.dripper = threading.Thread(target=self._drip, daemon=True)
        self.dripper.start()

    def _connect(self, count: int) -> None:
        for _ in range(count):  # non-blocking: a full accept queue delays no other connection
            conn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            conn.setblocking(False)
            conn.connect_ex(("127.0.0.11", 53))
            self.conns.append(conn)

    def _drip(self) -> None:
        while not self.stopping.wait(0.2):
            for conn in self.conns:
                if conn.fileno() in self.refused:
                    continue
                try:
                    conn.send(b"x" if conn.fileno() in self.announced else b"\xff\xff")
                    self.announced.add(conn.fileno())
                except BlockingIOError:
                    continue  # still connecting
                except OSError:
                    self.refused.add(conn.fileno())

    def settled(self) -> bool:
        """Every connection is either waited on by the server or refused by it."""
        return len(self.announced | self.refused) == len(self.conns)

    def stop(self) -> None:
        self.stopping.set()
        self.dripper.join()
        for conn in self.conns:
            conn.close()


def _dns_held_tcp(pid: int, server_pids: list[int]) -> int:
    """How many established TCP connections to 127.0.0.11:53 in process `pid`'s namespace the DNS server
    holds (its own view: the client's cannot tell a queued handshake from a served one)."""
    inodes = set()
    for server in server_pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{server}/fd"):
                with contextlib.suppress(OSError):
                    inodes.add(os.readlink(f"/proc/{server}/fd/{fd}"))
    held = 0
    with open(f"/proc/{pid}/net/tcp") as f:
        for line in f.read().splitlines()[1:]:
            fields = line.split()
            if fields[1] == "0B00007F:0035" and fields[3] == "01" and f"socket:[{fields[9]}]" in inodes:
                held += 1
    return held


def test_a_container_flooding_slow_tcp_queries_does_not_starve_the_others(net) -> None:
    """One container holds as many slow TCP queries as it can: it gets a quarter of the server's forwarding
    slots, each only until its whole-message deadline, and another container still resolves names upstream."""
    from pyctr.runtime.network import dns_server

    upstream = "127.0.0.154"
    with _fake_upstream(upstream, "10.99.99.98"):
        _ok(net, "network", "create", "--subnet", "10.81.16.0/24", "floodnet")
        flooder = _ok(net, "run", "-d", "--network", "floodnet", "busybox", "sleep", "120").strip()
        pid = json.loads(_ok(net, "inspect", flooder))[0]["State"]["Pid"]
        flood = SlowTcpFlood(pid, dns_server.MAX_FORWARDS + 6)
        try:
            wait_for(flood.settled, timeout=10, what="the flood's connections")
            out = _ok(net, "run", "--rm", "--network", "floodnet", "--dns", upstream, "busybox",
                      "nslookup", "outside.example")
            assert "10.99.99.98" in out, out
            held = []
            for _ in range(10):
                held.append(_dns_held_tcp(pid, _dns_pids(net.root)))
                time.sleep(0.05)
            assert 0 < max(held) <= dns_server.MAX_FORWARDS_PER_CONTAINER, held
            # Dripped into forever, each still ends at its deadline (late handshakes are served after).
            wait_for(lambda: _dns_held_tcp(pid, _dns_pids(net.root)) == 0, timeout=20,
                     what="the server to drop every dripping query")
        finally:
            flood.stop()


def test_published_port_on_a_user_network(net) -> None:
    _ok(net, "network", "create", "--subnet", "10.81.14.0/24", "pubnet")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _ok(net, "run", "-d", "--name", "pub", "--network", "pubnet", "-p", f"127.0.0.1:{port}:80", "busybox", "sh", "-c",
        "mkdir /www && echo published > /www/index.html && exec httpd -f -p 80 -h /www")
    assert _ok(net, "port", "pub").strip() == f"80/tcp -> 127.0.0.1:{port}"
    body = b""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and b"published" not in body:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
            conn.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
            body = conn.recv(4096)
        time.sleep(0.05)
    assert b"published" in body


# ------------------------------------------------------------------------------------------ isolation

def test_containers_on_different_networks_cannot_reach_each_other(net) -> None:
    _ok(net, "network", "create", "--subnet", "10.81.4.0/24", "left")
    _ok(net, "network", "create", "--subnet", "10.81.5.0/24", "right")
    _ok(net, "run", "-d", "--name", "l1", "--network", "left", "busybox", "sleep", "120")
    _ok(net, "run", "-d", "--name", "r1", "--network", "right", "busybox", "sleep", "120")
    r1_ip = json.loads(_ok(net, "inspect", "r1"))[0]["NetworkSettings"]["Networks"]["right"]["IPAddress"]
    same = net("exec", "l1", "ping", "-c1", "-W1", "l1")
    assert same.returncode == 0, same.stdout + same.stderr
    across = net("exec", "l1", "ping", "-c1", "-W1", r1_ip)
    assert across.returncode != 0, across.stdout
    unresolved = net("exec", "l1", "ping", "-c1", "-W1", "r1")
    assert unresolved.returncode != 0
    _ok(net, "run", "-d", "--name", "d1", "busybox", "sleep", "120")  # the default bridge
    d1_ip = json.loads(_ok(net, "inspect", "d1"))[0]["NetworkSettings"]["IPAddress"]
    assert net("exec", "l1", "ping", "-c1", "-W1", d1_ip).returncode != 0
    l1_ip = json.loads(_ok(net, "inspect", "l1"))[0]["NetworkSettings"]["Networks"]["left"]["IPAddress"]
    assert net("exec", "d1", "ping", "-c1", "-W1", l1_ip).returncode != 0


def test_parallel_creates_get_distinct_subnets(net) -> None:
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda i: net("network", "create", f"par{i}"), range(4)))
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    subnets = [json.loads(_ok(net, "network", "inspect", f"par{i}"))[0]["IPAM"]["Config"][0]["Subnet"]
               for i in range(4)]
    networks = [ipaddress.ip_network(s) for s in subnets]
    assert not any(a.overlaps(b) for i, a in enumerate(networks) for b in networks[i + 1:]), subnets


def test_internal_network_has_no_route_out(net) -> None:
    _ok(net, "network", "create", "--internal", "--subnet", "10.81.6.0/24", "sealed")
    out = net("run", "--rm", "--network", "sealed", "busybox", "sh", "-c", "ip route; ping -c1 -W1 192.0.2.1")
    assert "default" not in out.stdout
    assert out.returncode != 0
    doc = json.loads(_ok(net, "network", "inspect", "sealed"))[0]
    assert doc["Internal"] is True


# ------------------------------------------------------------------------------------------ connect / disconnect

def test_connect_and_disconnect_a_running_container(net) -> None:
    _ok(net, "network", "create", "--subnet", "10.81.7.0/24", "first")
    _ok(net, "network", "create", "--subnet", "10.81.8.0/24", "second")
    _ok(net, "run", "-d", "--name", "mover", "--network", "first", "busybox", "sleep", "120")
    _ok(net, "run", "-d", "--name", "peer", "--network", "second", "busybox", "sleep", "120")
    assert net("exec", "peer", "ping", "-c1", "-W1", "mover").returncode != 0
    _ok(net, "network", "connect", "--alias", "moved", "--ip", "10.81.8.50", "second", "mover")
    links = _ok(net, "exec", "mover", "ip", "-o", "addr")
    assert "eth1" in links and "10.81.8.50" in links
    assert "10.81.8.50" in _ok(net, "exec", "peer", "ping", "-c1", "-W2", "moved")
    settings = json.loads(_ok(net, "inspect", "mover"))[0]["NetworkSettings"]["Networks"]["second"]
    assert settings["IPAMConfig"] == {"IPv4Address": "10.81.8.50"} and settings["Aliases"][0] == "moved"
    doc = json.loads(_ok(net, "network", "inspect", "second"))[0]
    assert any(c["Name"] == "mover" and c["IPv4Address"] == "10.81.8.50/24" for c in doc["Containers"].values())
    _ok(net, "network", "disconnect", "second", "mover")
    remaining = _ok(net, "exec", "mover", "ip", "-o", "addr")
    assert "eth1" not in remaining and "10.81.8.50" not in remaining and "eth0" in remaining
    assert net("exec", "peer", "ping", "-c1", "-W1", "moved").returncode != 0
    again = net("network", "disconnect", "second", "mover")
    assert again.returncode == 1 and "is not connected to network second" in again.stderr


def test_connect_while_stopped_applies_at_start_and_restart_keeps_resolution(net) -> None:
    _ok(net, "network", "create", "--subnet", "10.81.13.0/24", "later")
    _ok(net, "run", "-d", "--name", "server", "--network", "later", "busybox", "sleep", "120")
    _ok(net, "create", "--name", "plainbox", "busybox", "sleep", "120")  # on the default bridge
    _ok(net, "network", "connect", "--alias", "late", "later", "plainbox")
    assert json.loads(_ok(net, "network", "inspect", "later"))[0]["Containers"].keys() == {
        json.loads(_ok(net, "inspect", "server"))[0]["Id"]}  # a stopped container has no endpoint yet
    _ok(net, "start", "plainbox")
    settings = json.loads(_ok(net, "inspect", "plainbox"))[0]["NetworkSettings"]["Networks"]
    assert set(settings) == {"bridge", "later"} and settings["later"]["Aliases"][0] == "late"
    assert "1 packets received" in _ok(net, "exec", "server", "ping", "-c1", "-W2", "late")
    _ok(net, "restart", "-t", "1", "server")
    assert "1 packets received" in _ok(net, "run", "--rm", "--network", "later", "busybox", "ping", "-c1", "-W2",
                                       "server")
    names = {c["Name"] for c in json.loads(_ok(net, "network", "inspect", "bridge"))[0]["Containers"].values()}
    assert names == {"plainbox"}


def test_network_rm_in_use_refused_with_dockers_error(net) -> None:
    network_id = _ok(net, "network", "create", "--subnet", "10.81.9.0/24", "busy").strip()
    _ok(net, "run", "-d", "--name", "user", "--network", "busy", "busybox", "sleep", "120")
    result = net("network", "rm", "busy")
    assert result.returncode == 1
    assert result.stderr.strip() == (f"Error response from daemon: error while removing network: network busy id "
                                     f"{network_id} has active endpoints")
    _ok(net, "rm", "-f", "user")
    assert _ok(net, "network", "rm", "busy").strip() == "busy"
    missing = net("network", "rm", "busy")
    assert missing.returncode == 1 and missing.stderr.strip() == "Error: No such network: busy"


# ------------------------------------------------------------------------------------------ ls / inspect / prune

def test_ls_inspect_prune(net) -> None:
    _ok(net, "network", "create", "--label", "tier=db", "-o", "com.docker.network.bridge.name=pyctrlbl0",
        "--subnet", "10.81.10.0/24", "--gateway", "10.81.10.254", "--ip-range", "10.81.10.128/25", "labelled")
    auto = json.loads(_ok(net, "network", "inspect", _ok(net, "network", "create", "auto").strip()))[0]
    table = _ok(net, "network", "ls").splitlines()
    assert table[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    assert [line.split()[1] for line in table[1:]] == ["auto", "bridge", "host", "labelled", "none"]
    assert _ok(net, "network", "ls", "--filter", "label=tier=db", "--format", "{{.Name}}") == "labelled\n"
    assert _ok(net, "network", "ls", "--filter", "driver=null", "--format", "{{.Name}}") == "none\n"
    doc = json.loads(_ok(net, "network", "inspect", "labelled"))[0]
    assert doc["IPAM"]["Config"] == [{"Subnet": "10.81.10.0/24", "Gateway": "10.81.10.254",
                                      "IPRange": "10.81.10.128/25"}]
    assert doc["Labels"] == {"tier": "db"} and doc["Driver"] == "bridge" and doc["Scope"] == "local"
    assert "pyctrlbl0" in _links()
    ip = _ok(net, "run", "--rm", "--network", "labelled", "busybox", "sh", "-c",
             "ip -o -4 addr show eth0 | awk '{print $4}'").strip()
    assert ip.startswith("10.81.10.") and int(ip.split(".")[3].split("/")[0]) >= 128
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout
    assert auto["IPAM"]["Config"][0]["Subnet"] in routes  # the auto pool is one the host did not route before
    assert _ok(net, "network", "prune", "-f") == "Deleted Networks:\nauto\nlabelled\n\n"
    assert "pyctrlbl0" not in _links()


# ------------------------------------------------------------------------------------------ hostile

def test_hostile_names_and_subnets(net) -> None:
    _ok(net, "network", "create", "--subnet", "10.81.11.0/24", "taken")
    clash = net("network", "create", "taken")
    assert clash.returncode == 1
    assert clash.stderr.strip() == "Error response from daemon: network with name taken already exists"
    overlap = net("network", "create", "--subnet", "10.81.11.128/25", "other")
    assert overlap.returncode == 1 and "Pool overlaps with other one on this address space" in overlap.stderr
    host_route = subprocess.run(["ip", "-4", "route", "show", "scope", "link"], capture_output=True,
                                text=True).stdout.split()
    if host_route:
        bad = net("network", "create", "--subnet", host_route[0], "onhost")
        assert bad.returncode == 1 and "overlaps" in bad.stderr, bad.stderr
    for name in ("../escape", "a/b", "..", "bridge"):
        result = net("network", "create", name)
        assert result.returncode == 1, name
        assert "Traceback" not in result.stderr
    assert not (net.root / "escape").exists()
    assert _ok(net, "network", "ls", "--filter", "type=custom", "--format", "{{.Name}}") == "taken\n"
    for flag in (["--network-alias", "x"], ["--ip", "10.77.0.9"]):
        refused = net("run", "--rm", *flag, "busybox", "true")
        assert refused.returncode == 125 and "user defined networks" in refused.stderr, refused.stderr


# ------------------------------------------------------------------------------------------ leaks

def test_system_check_removes_the_bridge_of_a_network_lost_in_a_crash(net) -> None:
    _ok(net, "network", "create", "--subnet", "10.81.15.0/24", "-o", "com.docker.network.bridge.name=pyctrlost0",
        "lost")
    store = net.root / "network" / "networks.json"
    doc = json.loads(store.read_text())
    doc["networks"] = {}  # as if `network rm` died between the record and the bridge
    store.write_text(json.dumps(doc))
    report = net("system", "check", "--dry-run")
    assert report.returncode == 1 and "network bridge pyctrlost0" in report.stdout, report.stdout + report.stderr
    assert "pyctrlost0" in _links()
    repaired = net("system", "check")
    assert "pyctrlost0" not in _links(), repaired.stdout + repaired.stderr
    assert net("system", "check", "--dry-run").returncode == 0


def test_no_leak_after_cycles_of_network_create_run_rm(net) -> None:
    before_links, before_tables = _links(), _nft_tables()
    for i in range(int(os.environ.get("PYCTR_NET_CYCLES", "200"))):  # the 200 cycles
        _ok(net, "network", "create", "--subnet", "10.81.12.0/24", "cycle")
        _ok(net, "run", "-d", "--name", f"srv{i}", "--network", "cycle", "busybox", "sleep", "60")
        _ok(net, "run", "--rm", "--network", "cycle", "busybox", "ping", "-c1", "-W2", f"srv{i}")
        _ok(net, "rm", "-f", f"srv{i}")
        _ok(net, "network", "rm", "cycle")
    wait_for(lambda: not _dns_pids(net.root), timeout=10, what="the DNS server to leave")
    assert _links() == before_links
    assert _nft_tables() == before_tables
    state = json.loads((net.root / "network" / "ipam.json").read_text())
    assert all(not b["containers"] for b in state["networks"].values())
    addresses = subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True).stdout
    assert "10.81.12." not in addresses
    check = net("system", "check", "--dry-run")
    assert check.returncode == 0, check.stdout + check.stderr
    with contextlib.suppress(FileNotFoundError):
        assert not (net.root / "network" / "dns.sock").exists()
