"""`-p`/`-P` parsing and the `ps` PORTS column, against Docker's behaviour."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pyctr.errors import UsageError
from pyctr.runtime.network.publish import PortMapping, format_ports, parse_publish, publish_all


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("8000:80", [PortMapping("0.0.0.0", 8000, 80, "tcp")]),
        ("8000:80/tcp", [PortMapping("0.0.0.0", 8000, 80, "tcp")]),
        ("8000:80/udp", [PortMapping("0.0.0.0", 8000, 80, "udp")]),
        ("8000:80/UDP", [PortMapping("0.0.0.0", 8000, 80, "udp")]),
        ("80", [PortMapping("0.0.0.0", 0, 80, "tcp")]),
        ("80/udp", [PortMapping("0.0.0.0", 0, 80, "udp")]),
        ("127.0.0.1:8000:80", [PortMapping("127.0.0.1", 8000, 80, "tcp")]),
        ("127.0.0.1::80", [PortMapping("127.0.0.1", 0, 80, "tcp")]),
        ("127.0.0.1::80/udp", [PortMapping("127.0.0.1", 0, 80, "udp")]),
        (":8000:80", [PortMapping("0.0.0.0", 8000, 80, "tcp")]),
        ("80/", [PortMapping("0.0.0.0", 0, 80, "tcp")]),
        (
            "8000-8001:8000-8001",
            [PortMapping("0.0.0.0", 8000, 8000, "tcp"), PortMapping("0.0.0.0", 8001, 8001, "tcp")],
        ),
        (
            "9000-9002:80-82/udp",
            [
                PortMapping("0.0.0.0", 9000, 80, "udp"),
                PortMapping("0.0.0.0", 9001, 81, "udp"),
                PortMapping("0.0.0.0", 9002, 82, "udp"),
            ],
        ),
        ("80-81", [PortMapping("0.0.0.0", 0, 80, "tcp"), PortMapping("0.0.0.0", 0, 81, "tcp")]),
        ("8000-8010:80", [PortMapping("0.0.0.0", 8000, 80, "tcp", host_port_end=8010)]),
        ("[127.0.0.1]:8000:80", [PortMapping("127.0.0.1", 8000, 80, "tcp")]),
        ("65535:65535", [PortMapping("0.0.0.0", 65535, 65535, "tcp")]),
    ],
)
def test_parse_publish_accepts_docker_forms(spec: str, expected: list[PortMapping]) -> None:
    assert parse_publish(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("abc", "Invalid containerPort: abc"),
        ("8000:abc", "Invalid containerPort: abc"),
        ("abc:80", "Invalid hostPort: abc"),
        ("70000:80", "Invalid hostPort: 70000"),
        ("8000:70000", "Invalid containerPort: 70000"),
        ("0", "Invalid containerPort: 0"),
        ("82-80", "Invalid containerPort: 82-80"),
        ("1.2.3:8000:80", "Invalid ip address: 1.2.3"),
        ("8000:", "No port specified: 8000:<empty>"),
        ("", "No port specified: <empty>"),
        ("8000-8001:80-82", "Invalid ranges specified for container and host Ports: 80-82 and 8000-8001"),
        ("8000:80/foo", "Invalid proto: foo"),
        ("8000:80/sctp", "Invalid proto: sctp"),
        ("::1:8000:80", "IPv4 addresses only"),
        ("[::1]:8000:80", "IPv4 addresses only"),
    ],
)
def test_parse_publish_refuses_with_docker_wording(spec: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_publish(spec)
    assert message in str(info.value)
    assert info.value.exit_code == 125


def test_publish_all_uses_exposed_ports_on_random_host_ports() -> None:
    exposed = {"8000/tcp": {}, "53/udp": {}, "443": {}, "7000-7001/tcp": {}, "99/sctp": {}}
    assert publish_all(exposed) == [
        PortMapping("0.0.0.0", 0, 53, "udp"),
        PortMapping("0.0.0.0", 0, 443, "tcp"),
        PortMapping("0.0.0.0", 0, 7000, "tcp"),
        PortMapping("0.0.0.0", 0, 7001, "tcp"),
        PortMapping("0.0.0.0", 0, 8000, "tcp"),
    ]
    assert publish_all(None) == []
    assert publish_all({}) == []


def test_port_mapping_round_trips_through_dict() -> None:
    mapping = PortMapping("127.0.0.1", 8000, 80, "udp", host_port_end=8010)
    assert PortMapping.from_dict(mapping.to_dict()) == mapping


@pytest.mark.parametrize(
    ("mappings", "expected"),
    [
        ([], ""),
        ([PortMapping("0.0.0.0", 8000, 8000, "tcp")], "0.0.0.0:8000->8000/tcp"),
        ([PortMapping("0.0.0.0", 8080, 80, "tcp")], "0.0.0.0:8080->80/tcp"),
        ([PortMapping("127.0.0.1", 49153, 80, "udp")], "127.0.0.1:49153->80/udp"),
        (
            [PortMapping("0.0.0.0", 8001, 8001, "tcp"), PortMapping("0.0.0.0", 8000, 8000, "tcp")],
            "0.0.0.0:8000-8001->8000-8001/tcp",
        ),
        (
            [
                PortMapping("0.0.0.0", 8000, 8000, "tcp"),
                PortMapping("0.0.0.0", 8000, 8000, "udp"),
                PortMapping("0.0.0.0", 9090, 90, "tcp"),
            ],
            "0.0.0.0:8000->8000/tcp, 0.0.0.0:8000->8000/udp, 0.0.0.0:9090->90/tcp",
        ),
        (
            [PortMapping("0.0.0.0", 8000, 8000, "tcp"), PortMapping("0.0.0.0", 8002, 8002, "tcp")],
            "0.0.0.0:8000->8000/tcp, 0.0.0.0:8002->8002/tcp",
        ),
    ],
)
def test_format_ports_matches_docker_ps(mappings: list[PortMapping], expected: str) -> None:
    assert format_ports(mappings) == expected


def test_format_ports_shows_exposed_unpublished_ports() -> None:
    assert format_ports([], exposed=[(80, "tcp"), (81, "tcp"), (53, "udp")]) == "53/udp, 80-81/tcp"
    published = [PortMapping("0.0.0.0", 8080, 80, "tcp")]
    assert format_ports(published, exposed=[(443, "tcp")]) == "443/tcp, 0.0.0.0:8080->80/tcp"


def test_network_package_import_does_not_load_pyroute2() -> None:
    """`--network none|host` and all pure helpers must not pay pyroute2's 300-450 ms import."""
    code = (
        "import sys; import pyctr.runtime.network as n; from pyctr.runtime.network import NetworkInfo, setup_network; "
        "n.parse_publish('8000:80'); n.format_ports([]); n.hosts_file('h', '10.0.0.2'); n.resolv_conf(''); "
        "from pyctr.runtime.network import firewall, ipam, ports, veth, bridge; "
        "print(sorted(m for m in sys.modules if m.startswith('pyroute2')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60)
    assert result.stdout.strip() == "[]", result.stderr
