"""The pure parts of user-defined networks: subnet choice against routes, names, the DNS table and packets,
the inspect document, ls filters, the firewall policy and the container's resolv.conf."""

from __future__ import annotations

import ipaddress
import struct

import pytest

from pyctr.errors import ClientError, ConflictError, PyctrError, UsageError
from pyctr.runtime.network import dns_server, firewall, usernet
from pyctr.runtime.network.hostfiles import embedded_resolv_conf

N = ipaddress.IPv4Network

# /proc/net/route of a host with a default route, its LAN and Docker's docker0 (172.17.0.0/16)
PROC_NET_ROUTE = """Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
"""


def test_host_routes_are_read_without_the_default_route() -> None:
    assert usernet.parse_host_routes(PROC_NET_ROUTE) == [N("192.0.2.0/24"), N("172.17.0.0/16")]


def test_subnets_come_from_dockers_pools_skipping_what_is_taken_or_routed() -> None:
    routes = usernet.parse_host_routes(PROC_NET_ROUTE)
    assert usernet.allocate_subnet(routes) == N("172.18.0.0/16")
    assert usernet.allocate_subnet(routes + [N("172.18.5.0/24")]) == N("172.19.0.0/16")
    every_172 = [N(f"172.{i}.0.0/16") for i in range(17, 32)]
    assert usernet.allocate_subnet(every_172) == N("192.168.0.0/20")
    assert usernet.allocate_subnet(every_172 + [N("192.168.0.0/24")]) == N("192.168.16.0/20")
    with pytest.raises(PyctrError, match="non-overlapping"):
        usernet.allocate_subnet([N("0.0.0.0/1"), N("128.0.0.0/1")])


def test_user_subnets_never_overlap_networks_or_host_routes() -> None:
    routes = usernet.parse_host_routes(PROC_NET_ROUTE)
    plan = usernet.plan_addresses(["10.1.0.0/16"], [], ["10.1.2.0/24"], [N("10.2.0.0/16")], routes)
    assert (plan.subnet, plan.gateway, plan.ip_range, plan.user_subnet) == ("10.1.0.0/16", "10.1.0.1",
                                                                          "10.1.2.0/24", True)
    with pytest.raises(ConflictError, match="^Pool overlaps with other one on this address space$"):
        usernet.plan_addresses(["10.2.3.0/24"], [], [], [N("10.2.0.0/16")], routes)
    with pytest.raises(ConflictError, match="host's route to 192.0.2.0/24"):
        usernet.plan_addresses(["192.0.0.0/16"], [], [], [], routes)
    with pytest.raises(ClientError, match="no matching subnet for gateway 10.9.0.1"):
        usernet.plan_addresses(["10.1.0.0/16"], ["10.9.0.1"], [], [], [])
    with pytest.raises(ClientError, match="no matching subnet for range"):
        usernet.plan_addresses(["10.1.0.0/16"], [], ["10.9.0.0/24"], [], [])
    with pytest.raises(ClientError, match="every ip-range or gateway must have a corresponding subnet"):
        usernet.plan_addresses([], ["10.1.0.1"], [], [], [])
    with pytest.raises(ClientError, match="invalid CIDR address: nonsense"):
        usernet.plan_addresses(["nonsense"], [], [], [], [])


def _net(name: str = "appnet", **kw) -> usernet.NetworkRecord:
    defaults = {"id": "f" * 64, "name": name, "created": "2026-01-01T00:00:00Z", "subnet": "10.1.0.0/24",
                "gateway": "10.1.0.1", "bridge": "br-ffffffffffff"}
    return usernet.NetworkRecord(**{**defaults, **kw})


def test_names_refused_as_docker_refuses_them_and_unsafe_ones_too() -> None:
    existing = [_net("taken")]
    with pytest.raises(ConflictError, match="^network with name taken already exists$"):
        usernet.check_name("taken", existing)
    with pytest.raises(ConflictError, match="pre-defined network"):
        usernet.check_name("bridge", existing)
    for bad in ("../x", "a/b", "..", ".hidden", "", "x" * 129):
        with pytest.raises(UsageError):
            usernet.check_name(bad, existing)
    usernet.check_name("my-net_1.0", existing)


def test_lookup_by_id_name_and_unique_prefix() -> None:
    a, b = _net("one", id="ab" + "0" * 62), _net("two", id="ac" + "0" * 62)
    assert usernet.find_network([a, b], "two") is b
    assert usernet.find_network([a, b], "ab") is a
    with pytest.raises(ConflictError, match="ambiguous"):
        usernet.find_network([a, b], "a")
    with pytest.raises(usernet.NetworkNotFound, match="^Error: No such network: zz$"):
        usernet.find_network([a, b], "zz")


def test_requested_ip_rules() -> None:
    auto = _net(user_subnet=False)
    with pytest.raises(PyctrError, match="user configured subnets"):
        usernet.check_requested_ip(auto, "10.1.0.5", set())
    own = _net(user_subnet=True)
    assert usernet.check_requested_ip(own, "10.1.0.5", set()) == "10.1.0.5"
    for bad in ("10.1.0.1", "10.1.0.0", "10.1.0.255", "10.2.0.5"):
        with pytest.raises(PyctrError, match="does not belong"):
            usernet.check_requested_ip(own, bad, set())
    with pytest.raises(ConflictError, match="Address already in use"):
        usernet.check_requested_ip(own, "10.1.0.5", {"10.1.0.5"})


def test_dns_table_holds_names_aliases_and_short_ids_per_network() -> None:
    net = _net()
    internal = _net("sealed", id="e" * 64, internal=True)
    table = usernet.dns_table({net.id: net, internal.id: internal}, {
        net.id: [{"id": "1" * 64, "name": "/Web", "aliases": ["service"], "ip": "10.1.0.2"},
                 {"id": "2" * 64, "name": "db", "aliases": ["service"], "ip": "10.1.0.3"}],
        internal.id: [{"id": "2" * 64, "name": "db", "aliases": [], "ip": "10.3.0.2"}],
    })
    names = table["networks"][net.id]
    assert names["web"] == ["10.1.0.2"] and names["web.appnet"] == ["10.1.0.2"]
    assert names["service"] == ["10.1.0.2", "10.1.0.3"]  # one alias on two containers: both answer
    assert names["1" * 12] == ["10.1.0.2"] and "1" * 13 not in names
    assert table["containers"]["2" * 64] == {"networks": [internal.id, net.id], "internal": False}
    assert table["containers"]["1" * 64] == {"networks": [net.id], "internal": False}


def test_dns_packets_round_trip_and_answers_follow_dockers_resolver() -> None:
    query = dns_server.parse_query(dns_server.build_query(0x1234, "Web.AppNet"))
    assert query is not None and query.name == "web.appnet" and query.qtype == dns_server.TYPE_A
    reply = dns_server.build_response(query, ["10.1.0.2", "10.1.0.3"])
    assert struct.unpack_from("!H", reply)[0] == 0x1234
    assert dns_server.parse_answer(reply) == (0, ["10.1.0.2", "10.1.0.3"])
    assert b"\x03Web\x06AppNet" in reply  # the question is echoed as asked (0x20 case randomisation)
    names = {"web.appnet": ["10.1.0.2"]}
    assert dns_server.decide(query, names, True) == ("answer", ["10.1.0.2"], 0)
    aaaa = dns_server.parse_query(dns_server.build_query(1, "web.appnet", dns_server.TYPE_AAAA))
    assert dns_server.decide(aaaa, names, True) == ("answer", [], 0)  # known, no IPv6: empty NOERROR
    other = dns_server.parse_query(dns_server.build_query(2, "example.org"))
    assert dns_server.decide(other, names, True)[0] == "forward"
    assert dns_server.decide(other, names, False) == ("answer", [], dns_server.RCODE_SERVFAIL)


def test_malformed_queries_are_refused_not_crashed_on() -> None:
    good = dns_server.build_query(7, "web")
    assert dns_server.parse_query(good[:11]) is None
    assert dns_server.parse_query(good[:-3]) is None
    pointer = good[:12] + b"\xc0\x0c" + good[-4:]
    assert dns_server.parse_query(pointer) is None
    response = bytearray(good)
    response[2] |= 0x80
    assert dns_server.parse_query(bytes(response)) is None
    assert dns_server.formerr(good)[3] & 0xF == dns_server.RCODE_FORMERR
    assert dns_server.formerr(b"\x00") is None


def test_no_answer_is_ever_given_to_a_response_so_two_servers_cannot_ping_pong() -> None:
    """The attack review's loop: a forged packet from 127.0.0.11:53 to itself that is no query was answered
    FORMERR, to itself, whose FORMERR was answered again, forever (a host core, outside the container's cgroup)."""
    malformed = bytearray(dns_server.build_query(9, "web"))
    malformed[5] = 2  # two questions: not a query the server takes
    reply = dns_server.formerr(bytes(malformed))
    assert reply is not None and reply[3] & 0xF == dns_server.RCODE_FORMERR
    assert dns_server.formerr(reply) is None  # the server's own FORMERR, arriving back, gets no answer
    response = bytearray(dns_server.build_query(9, "web"))
    response[2] |= 0x80
    assert dns_server.formerr(bytes(response)) is None


def test_inspect_document_is_dockers_shape() -> None:
    doc = usernet.inspect_document(_net(labels={"a": "b"}, ip_range="10.1.0.128/25"), {
        "1" * 64: {"name": "web", "ip": "10.1.0.130", "prefixlen": 24, "mac": "02:42:0a:01:00:82"}})
    assert list(doc) == ["Name", "Id", "Created", "Scope", "Driver", "EnableIPv6", "IPAM", "Internal", "Attachable",
                         "Ingress", "ConfigFrom", "ConfigOnly", "Containers", "Options", "Labels"]
    assert doc["IPAM"] == {"Driver": "default", "Options": {},
                           "Config": [{"Subnet": "10.1.0.0/24", "Gateway": "10.1.0.1", "IPRange": "10.1.0.128/25"}]}
    endpoint = doc["Containers"]["1" * 64]
    assert endpoint["IPv4Address"] == "10.1.0.130/24" and endpoint["Name"] == "web"
    assert len(endpoint["EndpointID"]) == 64
    builtin = usernet.predefined_document("none", "0" * 64, "", "10.77.0.0/16", {})
    assert builtin["Driver"] == "null" and builtin["IPAM"]["Config"] == []


def test_ls_filters() -> None:
    custom = usernet.inspect_document(_net("front", labels={"tier": "web"}), {})
    builtin = usernet.predefined_document("host", "1" * 64, "", "10.77.0.0/16", {})
    f = usernet.parse_filters
    assert usernet.matches(custom, f(["name=fro"]), False)
    assert not usernet.matches(custom, f(["name=back"]), False)
    assert usernet.matches(custom, f(["label=tier", "label=tier=web"]), False)
    assert not usernet.matches(custom, f(["label=tier=db"]), False)
    assert usernet.matches(builtin, f(["type=builtin", "driver=host"]), False)
    assert not usernet.matches(custom, f(["type=builtin"]), False)
    assert usernet.matches(custom, f(["dangling=true"]), False)
    assert not usernet.matches(custom, f(["dangling=true"]), True)
    with pytest.raises(PyctrError, match="Invalid filter 'colour'"):
        f(["colour=red"])


def test_firewall_policy_isolates_user_networks_and_internal_ones_go_nowhere() -> None:
    plain = firewall.ruleset_plan("pyctr0", "10.77.0.0/16", [])
    assert "forward" not in plain  # the default bridge keeps its rules
    user = firewall.ruleset_plan("br-1", "10.1.0.0/24", [], {"user": True, "isolate_from": ["pyctr0"]})
    assert 'oifname "br-1" iifname != "br-1" drop' in user
    assert 'iifname "br-1" oifname "pyctr0" drop' in user
    assert "ip saddr 10.1.0.0/24 oifname != \"br-1\" masquerade" in user
    internal = firewall.ruleset_plan("br-2", "10.2.0.0/24", [], {"user": True, "internal": True})
    assert 'iifname "br-2" oifname != "br-2" drop' in internal
    assert 'oifname != "br-2" masquerade' not in internal


def test_run_network_flags_checked_before_anything_is_made(tmp_path) -> None:
    from types import SimpleNamespace

    from pyctr.runtime.network import usermanager

    config = SimpleNamespace(paths=SimpleNamespace(network=tmp_path))
    with pytest.raises(PyctrError, match="^network foo not found$"):
        usermanager.resolve_for_create(config, "foo", [], None)
    with pytest.raises(PyctrError, match="^network-scoped alias is supported only for containers in user defined"):
        usermanager.resolve_for_create(config, "default", ["a"], None)
    with pytest.raises(PyctrError, match="^user specified IP address is supported on user defined networks only$"):
        usermanager.resolve_for_create(config, "bridge", [], "10.0.0.2")
    store = usernet.NetworkStore({"f" * 64: _net()})
    usernet.save_store(tmp_path, store)
    assert usermanager.resolve_for_create(config, "appnet", ["a"], None).id == "f" * 64
    with pytest.raises(PyctrError, match="user configured subnets"):
        usermanager.resolve_for_create(config, "appnet", [], "10.1.0.9")


def test_resolv_conf_points_at_the_embedded_server() -> None:
    host = "search corp.example\nnameserver 192.0.2.53\noptions edns0\n"
    assert embedded_resolv_conf(host) == "search corp.example\nnameserver 127.0.0.11\noptions edns0 ndots:0\n"
    assert embedded_resolv_conf("nameserver 1.1.1.1\noptions ndots:2\n") == "nameserver 127.0.0.11\noptions ndots:2\n"


def test_dns_server_answers_from_its_records_and_survives_bad_requests(tmp_path) -> None:
    """The server loop itself, on loopback: a registered socket is answered from dns.json, re-read when the
    runtime replaces it; a malformed control request is refused, not fatal."""
    import json
    import os
    import socket
    import threading

    network_dir = str(tmp_path)
    (tmp_path / "networks.json").write_text(json.dumps({"networks": {"n" * 64: {}}}))
    (tmp_path / "dns.json").write_text(json.dumps({
        "networks": {"n" * 64: {"web": ["10.1.0.2"]}},
        "containers": {"c" * 64: {"networks": ["n" * 64], "internal": True}}}))
    control = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    control.bind(dns_server.control_path(network_dir))
    control.listen(8)
    control.setblocking(False)
    server = dns_server.Server(network_dir)
    threading.Thread(target=server.serve, args=(control,), daemon=True).start()
    listening = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listening.bind(("127.0.0.1", 0))
    address = listening.getsockname()
    assert dns_server.send_command(network_dir, ["add", "x", "not-a-pid"], [listening.fileno()]).startswith("bad")
    assert dns_server.send_command(network_dir, ["add", "c" * 64, str(os.getpid()), "-"],
                                   [listening.fileno()]) == "ok"
    listening.close()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(5)
        client.connect(address)
        client.send(dns_server.build_query(1, "WEB"))
        assert dns_server.parse_answer(client.recv(512)) == (0, ["10.1.0.2"])
        client.send(dns_server.build_query(2, "elsewhere.example"))
        assert dns_server.parse_answer(client.recv(512))[0] == dns_server.RCODE_SERVFAIL  # internal: no forward
        (tmp_path / "dns.new").write_text(json.dumps({
            "networks": {"n" * 64: {"web": ["10.1.0.9"]}},
            "containers": {"c" * 64: {"networks": ["n" * 64], "internal": True}}}))
        os.replace(tmp_path / "dns.new", tmp_path / "dns.json")
        client.send(dns_server.build_query(3, "web"))
        assert dns_server.parse_answer(client.recv(512)) == (0, ["10.1.0.9"])
    assert dns_server.send_command(network_dir, ["del", "c" * 64]) == "ok"
    assert server.containers == {}
    (tmp_path / "networks.json").write_text(json.dumps({"networks": {}}))
