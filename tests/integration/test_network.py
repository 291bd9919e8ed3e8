"""Bridge networking for real: veths, addresses, NAT and published ports, on plain processes in new netns.

Each "container" is `unshare --net sleep` (a process in a fresh network namespace) that setup_network connects
to a test-only bridge (pyctrn0, 10.79.0.0/24, never pyctr0 or Docker's/podman's ranges). Traffic only flows
on loopback, the test bridge and the test namespaces. Fixtures remove every veth, rule, bridge and process
even when a test fails.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pyctr.config import Config, NetworkConfig
from pyctr.errors import ConflictError, RuntimeFailure, UsageError
from pyctr.runtime import network
from pyctr.runtime.network import firewall, ipam
from pyctr.runtime.network.ports import host_has_ipv6
from pyctr.runtime.network.publish import PortMapping

TEST_BRIDGE = "pyctrn0"
TEST_SUBNET = "10.79.0.0/24"
TEST_GATEWAY = "10.79.0.1"
TEST_TABLE = firewall.table_name(TEST_BRIDGE)
pytestmark = pytest.mark.integration

ID_A = "a1" * 32
ID_B = "b2" * 32
ID_C = "c3" * 32

# A TCP+UDP echo server: answers "<proto> <peer address> <tag>" so tests see who reached whom and from where.
ECHO_SERVER = r"""
import socket, sys, threading
port, tag = int(sys.argv[1]), sys.argv[2]
tcp = socket.socket(); tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(("0.0.0.0", port)); tcp.listen(64)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp.bind(("0.0.0.0", port))
def serve_udp():
    while True:
        data, peer = udp.recvfrom(100)
        udp.sendto(f"udp {peer[0]} {tag}".encode(), peer)
threading.Thread(target=serve_udp, daemon=True).start()
print("ready", flush=True)
while True:
    conn, peer = tcp.accept()
    conn.sendall(f"tcp {peer[0]} {tag}".encode()); conn.close()
"""

CLIENT = r"""
import socket, sys
proto, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
try:
    if proto == "tcp":
        s = socket.create_connection((host, port), timeout=3); print(s.recv(100).decode())
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)
        s.sendto(b"ping", (host, port)); print(s.recv(100).decode())
except OSError as e:
    print(f"error {e}")
"""


def _run(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=False)


class Namespace:
    """A process in its own network namespace, standing in for a container's PID 1."""

    def __init__(self) -> None:
        own = os.readlink("/proc/self/ns/net")
        self.proc = subprocess.Popen(["unshare", "--net", "sleep", "300"])
        self.pid = self.proc.pid
        self.servers: list[subprocess.Popen] = []
        deadline = time.monotonic() + 5
        while os.readlink(f"/proc/{self.pid}/ns/net") == own:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError("unshare --net did not create a network namespace")
            time.sleep(0.005)

    def run(self, *cmd: str) -> subprocess.CompletedProcess:
        return _run("nsenter", "-t", str(self.pid), "-n", *cmd)

    def request(self, proto: str, host: str, port: int) -> str:
        return self.run(sys.executable, "-c", CLIENT, proto, host, str(port)).stdout.strip()

    def serve(self, port: int, tag: str) -> None:
        server = subprocess.Popen(
            ["nsenter", "-t", str(self.pid), "-n", sys.executable, "-c", ECHO_SERVER, str(port), tag],
            stdout=subprocess.PIPE, text=True,
        )
        self.servers.append(server)
        assert server.stdout.readline().strip() == "ready", "echo server did not start in the namespace"

    def kill(self) -> None:
        for proc in [*self.servers, self.proc]:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)


def host_request(proto: str, host: str, port: int) -> str:
    return _run(sys.executable, "-c", CLIENT, proto, host, str(port)).stdout.strip()


def link_names() -> set[str]:
    out = _run("ip", "-o", "link").stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line}


def nft_has_table() -> bool:
    return _run("nft", "list", "table", "ip", TEST_TABLE).returncode == 0


def _force_clean() -> None:
    """Remove whatever a crashed earlier run (or this one) left on the test bridge."""
    out = _run("ip", "-o", "link", "show", "master", TEST_BRIDGE).stdout
    for line in out.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        _run("ip", "link", "del", name)
    _run("ip", "link", "del", TEST_BRIDGE)
    _run("nft", "delete", "table", "ip", TEST_TABLE)


@pytest.fixture
def net_config(tmp_path: Path) -> Iterator[Config]:
    for tool in ("nft", "unshare", "nsenter", "ip"):
        if _run("sh", "-c", f"command -v {tool}").returncode != 0:
            pytest.fail(f"{tool} is required for the network tests (apt-get install nftables util-linux iproute2)")
    _force_clean()
    config = Config(root=tmp_path / "root", network=NetworkConfig(bridge=TEST_BRIDGE, subnet=TEST_SUBNET))
    yield config
    try:
        network.reap_stale(config, [])
    finally:
        _force_clean()


@pytest.fixture
def make_namespace() -> Iterator[Callable[[], Namespace]]:
    created: list[Namespace] = []

    def factory() -> Namespace:
        ns = Namespace()
        created.append(ns)
        return ns

    yield factory
    for ns in created:
        ns.kill()


def free_host_port(proto: str = "tcp") -> int:
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("0.0.0.0", 0))
        return sock.getsockname()[1]


def assert_nothing_left(config: Config) -> None:
    names = link_names()
    assert _run("ip", "-o", "link", "show", "master", TEST_BRIDGE).stdout == ""  # the bridge may stay, idle
    assert not any(n.startswith("veth") and n[4:] in (ID_A[:7], ID_B[:7], ID_C[:7]) for n in names)
    assert not nft_has_table()
    state = ipam.load_state(config.paths.network)
    assert all(not b.containers for b in state.bridges.values())


def test_container_gets_address_route_mac_and_loopback(net_config: Config, make_namespace) -> None:
    ns = make_namespace()
    info = network.setup_network(net_config, ID_A, ns.pid, [])
    assert (info.ip, info.prefixlen, info.gateway, info.bridge) == ("10.79.0.2", 24, TEST_GATEWAY, TEST_BRIDGE)
    assert info.mac == "02:42:0a:4f:00:02"
    addr = ns.run("ip", "-o", "-4", "addr", "show", "eth0").stdout
    assert "inet 10.79.0.2/24" in addr
    assert info.mac in ns.run("ip", "-o", "link", "show", "eth0").stdout
    assert "default via 10.79.0.1 dev eth0" in ns.run("ip", "route").stdout
    assert "UP" in ns.run("ip", "-o", "link", "show", "lo").stdout.split(">")[0]
    assert f"veth{ID_A[:7]}" in _run("ip", "-o", "link", "show", "master", TEST_BRIDGE).stdout
    assert Path(f"/proc/sys/net/ipv4/conf/{TEST_BRIDGE}/route_localnet").read_text().strip() == "1"
    assert network.network_info(net_config, ID_A) == info
    recorded = json.loads((net_config.paths.network / "ipam.json").read_text())
    assert recorded["networks"][TEST_BRIDGE]["containers"][ID_A]["ip"] == "10.79.0.2"


def test_two_containers_reach_each_other_by_address(net_config: Config, make_namespace) -> None:
    a, b = make_namespace(), make_namespace()
    info_a = network.setup_network(net_config, ID_A, a.pid, [])
    info_b = network.setup_network(net_config, ID_B, b.pid, [])
    assert info_a.ip != info_b.ip
    a.serve(7000, "A")
    b.serve(7000, "B")
    assert b.request("tcp", info_a.ip, 7000) == f"tcp {info_b.ip} A"
    assert a.request("tcp", info_b.ip, 7000) == f"tcp {info_a.ip} B"
    assert a.request("udp", info_b.ip, 7000) == f"udp {info_a.ip} B"
    assert host_request("tcp", info_a.ip, 7000) == f"tcp {TEST_GATEWAY} A"  # the host reaches it via the bridge


def test_published_tcp_port_from_host_loopback_and_through_gateway(net_config: Config, make_namespace) -> None:
    server, client = make_namespace(), make_namespace()
    host_port = free_host_port()
    ports = network.check_ports_free(network.parse_publish(f"{host_port}:8080"), net_config)
    info = network.setup_network(net_config, ID_A, server.pid, ports)
    # On an IPv6 host the publish is also served on [::] (Docker's docker-proxy), listed after its IPv4 binding.
    ipv6_twin = [PortMapping("::", host_port, 8080, "tcp")] if host_has_ipv6() else []
    assert info.ports == [PortMapping("0.0.0.0", host_port, 8080, "tcp"), *ipv6_twin]
    network.setup_network(net_config, ID_B, client.pid, [])
    server.serve(8080, "srv")
    # From the host on 127.0.0.1 (route_localnet + masquerade: the container sees the gateway).
    assert host_request("tcp", "127.0.0.1", host_port) == f"tcp {TEST_GATEWAY} srv"
    if ipv6_twin:  # the userland proxy connects from the host, so the container sees the gateway too
        with socket.create_connection(("::1", host_port), timeout=5) as conn:
            assert conn.recv(100).decode() == f"tcp {TEST_GATEWAY} srv"
    # From another container through the gateway address (hairpin NAT).
    assert client.request("tcp", TEST_GATEWAY, host_port) == f"tcp {TEST_GATEWAY} srv"
    # The container reaching its own published port.
    assert server.request("tcp", TEST_GATEWAY, host_port) == f"tcp {TEST_GATEWAY} srv"


def test_published_udp_port_and_random_host_port(net_config: Config, make_namespace) -> None:
    ns = make_namespace()
    ports = network.check_ports_free(network.parse_publish("5353/udp") + network.parse_publish("127.0.0.1::5354"))
    low, high = (int(v) for v in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    assert all(low <= m.host_port <= high for m in ports)
    info = network.setup_network(net_config, ID_A, ns.pid, ports)
    ipv4 = [p for p in info.ports if p.host_ip != "::"]  # an IPv6 host also lists 5353/udp's [::] twin
    udp_port, tcp_port = ipv4[0].host_port, ipv4[1].host_port
    ns.serve(5353, "dns")
    ns.serve(5354, "web")
    assert host_request("udp", "127.0.0.1", udp_port) == f"udp {TEST_GATEWAY} dns"
    assert host_request("tcp", "127.0.0.1", tcp_port) == f"tcp {TEST_GATEWAY} web"
    assert network.format_ports(ipv4) == f"0.0.0.0:{udp_port}->5353/udp, 127.0.0.1:{tcp_port}->5354/tcp"
    if host_has_ipv6():  # the [::] twin forwards datagrams both ways
        assert [p.host_ip for p in info.ports] == ["0.0.0.0", "::", "127.0.0.1"]
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.settimeout(5)
            sock.sendto(b"ping", ("::1", udp_port))
            assert sock.recv(100).decode() == f"udp {TEST_GATEWAY} dns"


def test_udp_flow_follows_the_port_to_the_next_container(net_config: Config, make_namespace) -> None:
    """A client re-sending from the same UDP port must reach the new container, not the removed one's address."""
    old, new, bystander = make_namespace(), make_namespace(), make_namespace()
    network.setup_network(net_config, ID_C, bystander.pid, [])  # keeps the bridge (and its conntrack) alive
    ports = network.check_ports_free(network.parse_publish("5353/udp"), net_config)
    network.setup_network(net_config, ID_A, old.pid, ports)
    old.serve(5353, "old")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(3)
        client.sendto(b"ping", ("127.0.0.1", ports[0].host_port))
        assert client.recv(100).decode() == f"udp {TEST_GATEWAY} old"
        network.teardown_network(net_config, ID_A)
        network.setup_network(net_config, ID_B, new.pid, ports)
        new.serve(5353, "new")
        client.sendto(b"ping", ("127.0.0.1", ports[0].host_port))
        assert client.recv(100).decode() == f"udp {TEST_GATEWAY} new"


def test_port_bound_on_host_is_refused_before_start(net_config: Config, make_namespace) -> None:
    with socket.socket() as listener:
        listener.bind(("0.0.0.0", 0))
        listener.listen()
        port = listener.getsockname()[1]
        expected = f"Bind for 0.0.0.0:{port} failed: port is already allocated"
        with pytest.raises(ConflictError, match=expected):
            network.check_ports_free(network.parse_publish(f"{port}:80"), net_config)
        ns = make_namespace()
        with pytest.raises(ConflictError, match=expected):
            network.setup_network(net_config, ID_A, ns.pid, network.parse_publish(f"{port}:80"))
    assert_nothing_left(net_config)


def test_publishing_on_an_address_the_host_lacks_is_refused(net_config: Config) -> None:
    with pytest.raises(UsageError, match="cannot assign requested address"):
        network.check_ports_free(network.parse_publish("10.79.0.200:8000:80"), net_config)


def test_port_published_by_another_container_is_refused(net_config: Config, make_namespace) -> None:
    a, b = make_namespace(), make_namespace()
    port = free_host_port()
    network.setup_network(net_config, ID_A, a.pid, network.parse_publish(f"{port}:80"))
    with pytest.raises(ConflictError, match=f"Bind for 127.0.0.1:{port} failed: port is already allocated"):
        network.check_ports_free(network.parse_publish(f"127.0.0.1:{port}:80"), net_config)
    with pytest.raises(ConflictError, match=f"Bind for 0.0.0.0:{port} failed"):
        network.setup_network(net_config, ID_B, b.pid, network.parse_publish(f"{port}:81"))
    assert f"veth{ID_B[:7]}" not in link_names()
    assert network.network_info(net_config, ID_B) is None
    network.setup_network(net_config, ID_B, b.pid, network.parse_publish(f"{port}:81/udp"))  # other protocol: fine


def test_teardown_removes_everything_and_is_idempotent(net_config: Config, make_namespace) -> None:
    a, b = make_namespace(), make_namespace()
    port = free_host_port()
    network.setup_network(net_config, ID_A, a.pid, network.parse_publish(f"{port}:80"))
    network.setup_network(net_config, ID_B, b.pid, [])
    network.teardown_network(net_config, ID_A)
    assert f"veth{ID_A[:7]}" not in link_names()
    assert "dnat to" not in _run("nft", "list", "table", "ip", TEST_TABLE).stdout  # A's rule gone, table kept for B
    assert TEST_BRIDGE in link_names()
    network.teardown_network(net_config, ID_A)  # again: no-op
    network.teardown_network(net_config, ID_B)
    assert_nothing_left(net_config)
    network.teardown_network(net_config, ID_B)
    network.teardown_network(net_config, ID_C)  # never connected


@pytest.mark.slow
def test_fifty_setup_teardown_cycles_leave_nothing(net_config: Config, make_namespace) -> None:
    ns = make_namespace()
    for cycle in range(50):
        info = network.setup_network(net_config, ID_A, ns.pid, network.parse_publish("127.0.0.1::80"))
        assert info.ip.startswith("10.79.0."), cycle
        network.teardown_network(net_config, ID_A)
    # Other test sessions may add links meanwhile: only ours must be gone.
    assert f"veth{ID_A[:7]}" not in link_names()  # the bridge stays (like docker0), with nothing attached
    assert "pyctrnpeer" not in link_names()
    assert TEST_TABLE not in _run("nft", "list", "tables").stdout
    assert_nothing_left(net_config)


def _setup_in_child(args: tuple[Config, str, int]) -> str:
    config, container_id, pid = args
    return network.setup_network(config, container_id, pid, network.parse_publish("127.0.0.1::80")).ip


def _teardown_in_child(args: tuple[Config, str]) -> None:
    network.teardown_network(*args)


def test_parallel_setups_and_teardowns_from_separate_processes(net_config: Config, make_namespace) -> None:
    namespaces = [make_namespace() for _ in range(6)]
    ids = [f"{i:02x}" * 32 for i in range(6)]
    context = multiprocessing.get_context("fork")
    with context.Pool(6) as pool:
        addresses = pool.map(_setup_in_child, [(net_config, cid, ns.pid) for cid, ns in zip(ids, namespaces,
                                                                                            strict=True)])
        assert len(set(addresses)) == 6
        state = ipam.load_state(net_config.paths.network).bridges[TEST_BRIDGE]
        assert len({rec.ports[0]["host_port"] for rec in state.containers.values()}) == 6
        bridge_ports = _run("ip", "-o", "link", "show", "master", TEST_BRIDGE).stdout
        assert all(f"veth{cid[:7]}" in bridge_ports for cid in ids)
        pool.map(_teardown_in_child, [(net_config, cid) for cid in ids])
    assert_nothing_left(net_config)
    assert not any(f"veth{cid[:7]}" in name for cid in ids for name in link_names())


def test_restart_after_a_crash_replaces_the_stale_record(net_config: Config, make_namespace) -> None:
    first, second = make_namespace(), make_namespace()
    port = free_host_port()
    network.setup_network(net_config, ID_A, first.pid, network.parse_publish(f"{port}:80"))
    # No teardown (the monitor died): the same container starts again with a new PID 1.
    info = network.setup_network(net_config, ID_A, second.pid, network.parse_publish(f"{port}:80"))
    assert "inet " + info.ip in second.run("ip", "-o", "-4", "addr", "show", "eth0").stdout
    assert "eth0" not in first.run("ip", "-o", "link").stdout
    state = ipam.load_state(net_config.paths.network).bridges[TEST_BRIDGE]
    assert list(state.containers) == [ID_A]
    assert _run("nft", "list", "table", "ip", TEST_TABLE).stdout.count("dnat to") == 1


def test_dead_container_is_released_by_the_next_setup(net_config: Config, make_namespace) -> None:
    a, b = make_namespace(), make_namespace()
    port = free_host_port()
    network.setup_network(net_config, ID_A, a.pid, network.parse_publish(f"{port}:80"))
    a.kill()  # namespace destroyed -> the kernel removes both veth ends; no teardown ran
    deadline = time.monotonic() + 5
    while f"veth{ID_A[:7]}" in link_names() and time.monotonic() < deadline:
        time.sleep(0.02)
    info = network.setup_network(net_config, ID_B, b.pid, network.parse_publish(f"{port}:80"))  # port is free again
    assert info.ports[0].host_port == port
    assert network.network_info(net_config, ID_A) is None


def test_failed_setup_undoes_its_changes(net_config: Config, make_namespace) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    with pytest.raises(RuntimeFailure):
        network.setup_network(net_config, ID_A, dead.pid, network.parse_publish("127.0.0.1::80"))
    assert_nothing_left(net_config)
    with pytest.raises(RuntimeFailure, match="no network namespace of its own"):
        network.setup_network(net_config, ID_A, os.getpid(), [])
    # eth0 already taken inside the namespace: the veth creation fails after the bridge exists.
    ns = make_namespace()
    assert ns.run("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "x0").returncode == 0
    with pytest.raises(RuntimeFailure, match="veth"):
        network.setup_network(net_config, ID_A, ns.pid, network.parse_publish("127.0.0.1::80"))
    assert_nothing_left(net_config)


def test_reap_stale_removes_dead_containers(net_config: Config, make_namespace) -> None:
    a, b = make_namespace(), make_namespace()
    network.setup_network(net_config, ID_A, a.pid, network.parse_publish(f"{free_host_port()}:80"))
    network.setup_network(net_config, ID_B, b.pid, [])
    a.kill()  # the "container" died without teardown (crash)
    assert network.reap_stale(net_config, {ID_B}) == [ID_A]
    assert network.network_info(net_config, ID_A) is None
    assert "dnat to" not in _run("nft", "list", "table", "ip", TEST_TABLE).stdout
    # A crash between creating a veth and recording it: an unowned pyctr veth on the bridge.
    _run("ip", "link", "add", f"veth{ID_C[:7]}", "type", "veth", "peer", "name", "pyctrnpeer")
    _run("ip", "link", "set", f"veth{ID_C[:7]}", "master", TEST_BRIDGE)
    assert network.reap_stale(net_config, {ID_B}) == []
    assert f"veth{ID_C[:7]}" not in link_names()
    assert network.network_info(net_config, ID_B) is not None
    assert network.reap_stale(net_config, set()) == [ID_B]
    assert_nothing_left(net_config)


def test_second_root_on_the_same_bridge_is_refused_not_corrupting(net_config: Config, make_namespace,
                                                                   tmp_path: Path) -> None:
    other = Config(root=tmp_path / "other-root", network=net_config.network)
    a, b = make_namespace(), make_namespace()
    port = free_host_port()
    info_a = network.setup_network(net_config, ID_A, a.pid, network.parse_publish(f"{port}:7000"))
    assert Path(f"/sys/class/net/{TEST_BRIDGE}/ifalias").read_text().strip() == f"pyctr:{net_config.root}"
    with pytest.raises(ConflictError, match=f"bridge {TEST_BRIDGE} is in use by containers of another pyctr root"):
        network.setup_network(other, ID_B, b.pid, [])
    network.teardown_network(other, ID_B)
    network.reap_stale(other, [])  # the other root has nothing: it must not touch this root's bridge or rules
    a.serve(7000, "A")
    assert host_request("tcp", "127.0.0.1", port) == f"tcp {TEST_GATEWAY} A"
    assert host_request("tcp", info_a.ip, 7000) == f"tcp {TEST_GATEWAY} A"
    network.teardown_network(net_config, ID_A)
    # Idle now: the other root may take the bridge over.
    network.setup_network(other, ID_B, b.pid, [])
    assert Path(f"/sys/class/net/{TEST_BRIDGE}/ifalias").read_text().strip() == f"pyctr:{other.root}"
    network.teardown_network(other, ID_B)
    assert_nothing_left(other)
    assert_nothing_left(net_config)


def test_a_bridge_pyctr_did_not_create_is_used_but_kept(net_config: Config, make_namespace) -> None:
    assert _run("ip", "link", "add", TEST_BRIDGE, "type", "bridge").returncode == 0
    ns = make_namespace()
    network.setup_network(net_config, ID_A, ns.pid, [])
    network.teardown_network(net_config, ID_A)
    assert TEST_BRIDGE in link_names()  # the admin's bridge stays (the fixture removes it)
    assert not nft_has_table()


def test_ruleset_plan_is_accepted_by_nft() -> None:
    forwards = [firewall.Forward("0.0.0.0", 8000, "tcp", "10.79.0.2", 80),
                firewall.Forward("127.0.0.1", 8053, "udp", "10.79.0.3", 53)]
    result = subprocess.run(["nft", "-c", "-f", "-"], input=firewall.ruleset_plan(TEST_BRIDGE, TEST_SUBNET, forwards),
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_network_none_loopback_without_pyroute2(make_namespace) -> None:
    ns = make_namespace()
    assert "UP" not in ns.run("ip", "-o", "link", "show", "lo").stdout.split(">")[0]
    code = (
        "import sys; from pyctr.runtime import network as n; "
        f"n.setup_loopback({ns.pid}); n.hosts_file('h', None); n.resolv_conf(''); n.parse_publish('80'); "
        "print('pyroute2' in sys.modules)"
    )
    result = _run(sys.executable, "-c", code)
    assert result.stdout.strip() == "False", result.stderr
    assert "UP" in ns.run("ip", "-o", "link", "show", "lo").stdout.split(">")[0]
    ns.serve(7001, "lo")
    assert ns.request("tcp", "127.0.0.1", 7001) == "tcp 127.0.0.1 lo"


def test_loopback_up_in_current_netns_inside_a_new_namespace() -> None:
    code = (
        "from pyctr.runtime.network import loopback_up_in_current_netns as up; import socket; up(); up(); "
        "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); "
        "c = socket.create_connection(s.getsockname(), timeout=3); print('ok')"
    )
    result = _run("unshare", "--net", sys.executable, "-c", code)
    assert result.stdout.strip() == "ok", result.stderr


@pytest.fixture
def iptables_backend(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Force the iptables fallback; remove its chains, and the nat table if this test created it."""
    if _run("sh", "-c", "command -v iptables-restore").returncode != 0:
        pytest.fail("iptables-restore is required for the fallback test (apt-get install iptables)")
    nft_based = "nf_tables" in _run("iptables", "-V").stdout
    nat_existed = _run("nft", "list", "table", "ip", "nat").returncode == 0
    monkeypatch.setenv("PYCTR_FIREWALL_BACKEND", "iptables")
    yield
    firewall.remove(TEST_BRIDGE)
    if nft_based and not nat_existed:
        _run("nft", "delete", "table", "ip", "nat")


def test_iptables_fallback_publishes_and_cleans_up(net_config: Config, make_namespace, iptables_backend) -> None:
    server, client = make_namespace(), make_namespace()
    port = free_host_port()
    network.setup_network(net_config, ID_A, server.pid, network.parse_publish(f"{port}:8080"))
    network.setup_network(net_config, ID_B, client.pid, [])
    assert not nft_has_table()
    assert f"PYCTR-{TEST_BRIDGE}-PUB" in _run("iptables-save", "-t", "nat").stdout
    server.serve(8080, "ipt")
    assert host_request("tcp", "127.0.0.1", port) == f"tcp {TEST_GATEWAY} ipt"
    assert client.request("tcp", TEST_GATEWAY, port) == f"tcp {TEST_GATEWAY} ipt"
    network.teardown_network(net_config, ID_A)
    assert "-j DNAT" not in _run("iptables-save", "-t", "nat").stdout
    network.teardown_network(net_config, ID_B)
    assert "PYCTR" not in _run("iptables-save", "-t", "nat").stdout
    assert_nothing_left(net_config)


def test_nat_table_removal_is_one_netlink_transaction_and_idempotent() -> None:
    table = firewall.table_name(TEST_BRIDGE)
    assert _run("nft", "add", "table", "ip", table).returncode == 0
    assert _run("nft", "add", "chain", "ip", table, "post",
                "{ type nat hook postrouting priority 100; }").returncode == 0
    firewall.delete_table(table)
    assert not nft_has_table()
    firewall.delete_table(table)  # absent: still fine
    assert not nft_has_table()
