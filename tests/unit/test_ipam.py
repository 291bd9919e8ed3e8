"""IPAM: round-robin allocation, release, exhaustion, persistence, and no duplicates across processes."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from pyctr.errors import ConflictError, RuntimeFailure
from pyctr.runtime.network import ipam
from pyctr.runtime.network.ports import conflicts, resolve_host_ports
from pyctr.runtime.network.publish import PortMapping

SUBNET = "10.79.0.0/24"


def test_gateway_is_first_host_and_mac_follows_docker() -> None:
    assert ipam.gateway_address("10.77.0.0/16") == "10.77.0.1"
    assert ipam.mac_for("172.17.0.2") == "02:42:ac:11:00:02"


def test_allocate_skips_network_gateway_and_used_then_wraps() -> None:
    assert ipam.allocate_address(SUBNET, set()) == "10.79.0.2"
    assert ipam.allocate_address(SUBNET, {"10.79.0.2"}) == "10.79.0.3"
    assert ipam.allocate_address(SUBNET, set(), last="10.79.0.7") == "10.79.0.8"
    assert ipam.allocate_address(SUBNET, set(), last="10.79.0.254") == "10.79.0.2"


def test_small_subnet_exhaustion_is_a_clear_error() -> None:
    subnet = "10.79.0.0/29"  # .1 gateway, .2-.6 containers, .7 broadcast
    used: set[str] = set()
    for _ in range(5):
        used.add(ipam.allocate_address(subnet, used))
    assert used == {f"10.79.0.{i}" for i in range(2, 7)}
    with pytest.raises(RuntimeFailure, match="no available IPv4 addresses on network 10.79.0.0/29"):
        ipam.allocate_address(subnet, used)


def test_state_allocates_releases_and_persists(tmp_path: Path) -> None:
    first = ipam.allocate(tmp_path, "pyctrn0", SUBNET, "a" * 64, "vethaaaaaaa")
    second = ipam.allocate(tmp_path, "pyctrn0", SUBNET, "b" * 64, "vethbbbbbbb")
    assert (first.ip, second.ip) == ("10.79.0.2", "10.79.0.3")
    assert ipam.allocate(tmp_path, "pyctrn0", SUBNET, "a" * 64).ip == "10.79.0.2"  # idempotent
    assert ipam.release(tmp_path, "a" * 64).ip == "10.79.0.2"
    assert ipam.release(tmp_path, "a" * 64) is None
    third = ipam.allocate(tmp_path, "pyctrn0", SUBNET, "c" * 64)
    assert third.ip == "10.79.0.4"  # round robin: a just-released address is not reused at once
    state = ipam.load_state(tmp_path)
    assert sorted(state.bridges["pyctrn0"].containers) == ["b" * 64, "c" * 64]
    assert state.find("b" * 64)[1].veth == "vethbbbbbbb"


def test_corrupt_state_is_reported_not_overwritten(tmp_path: Path) -> None:
    ipam.state_file(tmp_path).write_text("{not json")
    with pytest.raises(RuntimeFailure, match="unreadable"):
        ipam.allocate(tmp_path, "pyctrn0", SUBNET, "a" * 64)
    assert ipam.state_file(tmp_path).read_text() == "{not json"


def _allocate_in_child(args: tuple[str, str]) -> str:
    network_dir, container_id = args
    return ipam.allocate(Path(network_dir), "pyctrn0", SUBNET, container_id).ip


def test_parallel_processes_never_share_an_address(tmp_path: Path) -> None:
    ids = [f"{i:064x}" for i in range(20)]
    context = multiprocessing.get_context("fork")
    with context.Pool(20) as pool:
        addresses = pool.map(_allocate_in_child, [(str(tmp_path), cid) for cid in ids])
    assert len(set(addresses)) == 20
    recorded = ipam.load_state(tmp_path).bridges["pyctrn0"].containers
    assert {cid: rec.ip for cid, rec in recorded.items()} == dict(zip(ids, addresses, strict=True))


def _always_free(host_ip: str, port: int, proto: str) -> bool:
    return True


def test_host_port_conflicts_follow_address_and_protocol() -> None:
    taken = [("0.0.0.0", 8000, "tcp")]
    assert conflicts(("127.0.0.1", 8000, "tcp"), taken)
    assert not conflicts(("0.0.0.0", 8000, "udp"), taken)
    assert not conflicts(("127.0.0.1", 8001, "tcp"), taken)
    assert conflicts(("0.0.0.0", 9000, "tcp"), [("10.0.0.1", 9000, "tcp")])
    assert not conflicts(("10.0.0.2", 9000, "tcp"), [("10.0.0.1", 9000, "tcp")])


def test_resolve_refuses_a_port_another_container_publishes() -> None:
    with pytest.raises(ConflictError, match=r"^Bind for 0.0.0.0:8000 failed: port is already allocated$"):
        resolve_host_ports([PortMapping("0.0.0.0", 8000, 80)], [("0.0.0.0", 8000, "tcp")], _always_free)


def test_resolve_refuses_a_port_a_host_process_holds() -> None:
    def busy(host_ip: str, port: int, proto: str) -> bool:
        return port != 8000

    with pytest.raises(ConflictError, match="Bind for 127.0.0.1:8000 failed: port is already allocated"):
        resolve_host_ports([PortMapping("127.0.0.1", 8000, 80)], [], busy)


def test_resolve_picks_random_ports_in_range_without_duplicates() -> None:
    mappings = [PortMapping("0.0.0.0", 0, p) for p in range(80, 85)]
    resolved = resolve_host_ports(mappings, [("0.0.0.0", 50000, "tcp")], _always_free, port_range=(50000, 50005))
    ports = [m.host_port for m in resolved]
    assert len(set(ports)) == 5 and all(50001 <= p <= 50005 for p in ports)
    with pytest.raises(ConflictError):
        resolve_host_ports(mappings + [PortMapping("0.0.0.0", 0, 90)], [("0.0.0.0", 50000, "tcp")], _always_free,
                           port_range=(50000, 50005))


def test_resolve_host_range_takes_first_free_port() -> None:
    resolved = resolve_host_ports(
        [PortMapping("0.0.0.0", 8000, 80, host_port_end=8002)], [("0.0.0.0", 8000, "tcp")], _always_free
    )
    assert resolved == [PortMapping("0.0.0.0", 8001, 80)]
    with pytest.raises(ConflictError, match="Bind for 0.0.0.0:8000-8001 failed"):
        resolve_host_ports([PortMapping("0.0.0.0", 8000, 80, host_port_end=8001)],
                           [("0.0.0.0", 8000, "tcp"), ("0.0.0.0", 8001, "tcp")], _always_free)


def test_same_request_cannot_publish_one_port_twice() -> None:
    with pytest.raises(ConflictError, match="Bind for 0.0.0.0:8000 failed"):
        resolve_host_ports([PortMapping("0.0.0.0", 8000, 80), PortMapping("0.0.0.0", 8000, 81)], [], _always_free)


def test_veth_names_never_collide_with_another_containers() -> None:
    from pyctr.runtime.network.veth import host_veth_name

    cid = "0123456789abcdef" * 4
    assert host_veth_name(cid) == "veth0123456"
    assert host_veth_name(cid, {"veth0123456"}) == "veth789abcd"
    assert host_veth_name(cid, {"veth0123456", "veth789abcd"}) == "vethef01234"
