"""Which [::] bindings a publish gets (Docker 20.10's rules), how they are listed, and the proxy's own parts."""

from __future__ import annotations

import pytest

from pyctr.errors import ConflictError
from pyctr.runtime.network import proxy, userland_proxy
from pyctr.runtime.network.manager import listed_ports
from pyctr.runtime.network.ports import ipv6_available, ipv6_bindings, resolve_host_ports
from pyctr.runtime.network.publish import PortMapping, parse_publish, publish_all

LOOPBACK6 = "00000000000000000000000000000001 01 80 10 80       lo\n"
ETH6 = "fe80000000000000020000fffe000001 02 40 20 80     eth0\n"


@pytest.mark.parametrize(("spec", "dual"), [
    ("8000:80", True), ("80", True), (":8000:80", True), ("8000-8001:80-81/udp", True),
    # libnetwork's validatePortBindingIPv6: an IPv4 host address given (0.0.0.0 too) means IPv4 only
    ("0.0.0.0:8000:80", False), ("127.0.0.1:8000:80", False), ("127.0.0.1::80", False),
])
def test_only_publishes_without_a_host_address_are_dual_stack(spec: str, dual: bool) -> None:
    assert {m.dual_stack for m in parse_publish(spec)} == {dual}


def test_publish_all_is_dual_stack_and_the_flag_survives_the_record() -> None:
    assert all(m.dual_stack for m in publish_all({"80/tcp": {}, "53/udp": {}}))
    mapping = parse_publish("8000:80")[0]
    assert PortMapping.from_dict(mapping.to_dict()).dual_stack
    assert not PortMapping.from_dict({"host_ip": "0.0.0.0", "host_port": 1, "container_port": 1}).dual_stack


@pytest.mark.parametrize(("disable", "if_inet6", "expected"), [
    ("0\n", LOOPBACK6 + ETH6, True),
    ("1\n", LOOPBACK6 + ETH6, False),  # net.ipv6.conf.all.disable_ipv6=1
    ("0\n", ETH6, False),  # no ::1 on lo: Docker's proxy could not be reached on it either
    ("0\n", "", False),
])
def test_ipv6_available(disable: str, if_inet6: str, expected: bool) -> None:
    assert ipv6_available(disable, if_inet6) is expected


def test_ipv6_twins_only_for_dual_stack_mappings_on_an_ipv6_host() -> None:
    mappings = parse_publish("8000:80") + parse_publish("127.0.0.1:9000:90") + parse_publish("53:53/udp")
    assert ipv6_bindings(mappings, ipv6=False) == []
    twins = ipv6_bindings(mappings, ipv6=True)
    assert twins == [PortMapping("::", 8000, 80, "tcp"), PortMapping("::", 53, 53, "udp")]
    assert not any(t.dual_stack for t in twins)


def test_port_taken_on_ipv6_only_is_dockers_error() -> None:
    def free_on_ipv4_only(ip: str, port: int, proto: str) -> bool:
        return ip != "::"

    mappings = parse_publish("8000:80")
    with pytest.raises(ConflictError, match=r"^Bind for :::8000 failed: port is already allocated$"):
        resolve_host_ports(mappings, [], free_on_ipv4_only, ipv6=True)
    assert resolve_host_ports(mappings, [], free_on_ipv4_only, ipv6=False)[0].host_port == 8000
    explicit = parse_publish("0.0.0.0:8000:80")
    assert resolve_host_ports(explicit, [], free_on_ipv4_only, ipv6=True)[0].host_port == 8000


def test_random_port_is_free_on_both_families() -> None:
    taken_on_ipv6 = {50000, 50001}

    def is_free(ip: str, port: int, proto: str) -> bool:
        return not (ip == "::" and port in taken_on_ipv6)

    for _ in range(20):
        port = resolve_host_ports(parse_publish("80"), [], is_free, (50000, 50003), ipv6=True)[0].host_port
        assert port in (50002, 50003)


def test_listed_ports_put_each_ipv6_twin_after_its_ipv4_binding() -> None:
    ipv4 = [PortMapping("0.0.0.0", 8000, 80), PortMapping("127.0.0.1", 9000, 90), PortMapping("0.0.0.0", 53, 53, "udp")]
    ipv6 = [PortMapping("::", 53, 53, "udp"), PortMapping("::", 8000, 80)]
    assert listed_ports(ipv4, ipv6) == [ipv4[0], ipv6[1], ipv4[1], ipv4[2], ipv6[0]]
    assert listed_ports(ipv4, []) == ipv4


def test_proxy_argv_and_its_parsing_agree() -> None:
    argv = proxy.proxy_argv("c0ffee", "10.78.0.2", [(5, PortMapping("::", 8000, 80)),
                                                    (6, PortMapping("::", 53, 5353, "udp"))])
    assert argv[1:3] == ["-I", "-S"] and argv[3].endswith("userland_proxy.py") and argv[4] == "c0ffee"
    assert [userland_proxy.parse_forward(a) for a in argv[5:]] == [
        (5, "tcp", ("10.78.0.2", 80)), (6, "udp", ("10.78.0.2", 5353))]


def test_a_pid_is_only_the_proxy_of_its_own_container() -> None:
    cmdline = b"\0".join([b"/usr/bin/python3", b"-I", b"-S", str(proxy.PROXY_SCRIPT).encode(), b"abc",
                          b"5/tcp/10.78.0.2/80"]) + b"\0"
    assert proxy.is_proxy_of(cmdline, "abc")
    assert not proxy.is_proxy_of(cmdline, "abd")
    assert not proxy.is_proxy_of(b"sleep\0abc\0", "abc")  # a reused pid
    assert not proxy.is_proxy_of(b"", "abc")  # gone, or a zombie
