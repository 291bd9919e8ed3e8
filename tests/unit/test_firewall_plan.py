"""The nft rule set pyctr would apply for a given network state (pure; the integration tests apply it for real)."""

from __future__ import annotations

import pytest

from pyctr.errors import RuntimeFailure
from pyctr.runtime.network.firewall import (
    Forward,
    backend,
    forwards_from_records,
    iptables_jumps,
    iptables_plan,
    ruleset_plan,
    table_name,
)
from pyctr.runtime.network.ipam import ContainerRecord

EXPECTED = """\
table ip pyctr_pyctrn0
delete table ip pyctr_pyctrn0
table ip pyctr_pyctrn0 {
\tchain prerouting {
\t\ttype nat hook prerouting priority -100; policy accept;
\t\tfib daddr type local jump publish
\t}
\tchain output {
\t\ttype nat hook output priority -100; policy accept;
\t\tfib daddr type local jump publish
\t}
\tchain publish {
\t\ttcp dport 8000 dnat to 10.79.0.2:80
\t\tip daddr 127.0.0.1 udp dport 8053 dnat to 10.79.0.3:53
\t}
\tchain postrouting {
\t\ttype nat hook postrouting priority 100; policy accept;
\t\tip saddr 10.79.0.0/24 oifname != "pyctrn0" masquerade
\t\toifname "pyctrn0" ip saddr 127.0.0.0/8 masquerade
\t\toifname "pyctrn0" ip saddr 10.79.0.0/24 ct status dnat masquerade
\t}
}
"""


def _records() -> list[ContainerRecord]:
    return [
        ContainerRecord("b" * 64, "10.79.0.3", "02:42:0a:4f:00:03", "vethbbbbbbb",
                        [{"host_ip": "127.0.0.1", "host_port": 8053, "container_port": 53, "proto": "udp"}]),
        ContainerRecord("a" * 64, "10.79.0.2", "02:42:0a:4f:00:02", "vethaaaaaaa",
                        [{"host_ip": "0.0.0.0", "host_port": 8000, "container_port": 80, "proto": "tcp"}]),
        ContainerRecord("c" * 64, "10.79.0.4", "02:42:0a:4f:00:04", "vethccccccc", []),
    ]


def test_forwards_are_sorted_by_host_port() -> None:
    assert forwards_from_records(_records()) == [
        Forward("0.0.0.0", 8000, "tcp", "10.79.0.2", 80),
        Forward("127.0.0.1", 8053, "udp", "10.79.0.3", 53),
    ]


def test_ruleset_plan_text() -> None:
    assert ruleset_plan("pyctrn0", "10.79.0.0/24", forwards_from_records(_records())) == EXPECTED


def test_plan_without_published_ports_still_masquerades() -> None:
    text = ruleset_plan("pyctrn0", "10.79.0.0/24", [])
    assert "dnat to" not in text
    assert 'ip saddr 10.79.0.0/24 oifname != "pyctrn0" masquerade' in text


def test_table_name_is_a_valid_nft_identifier() -> None:
    assert table_name("pyctr0") == "pyctr_pyctr0"
    assert table_name("br-test.1") == "pyctr_br_test_1"


def _decoded_batch(batch: bytes) -> list:
    """The batch read back by pyroute2's nfnetlink classes (an independent decoder: not firewall.py's structs).

    Messages of the nftables subsystem (type NFNL_SUBSYS_NFTABLES << 8 | command) are table messages here; the
    rest are the batch delimiters, plain nfgen messages."""
    from pyroute2.netlink.nfnetlink import NFNL_SUBSYS_NFTABLES, nfgen_msg
    from pyroute2.netlink.nfnetlink.nftsocket import nft_table_msg

    messages, offset = [], 0
    while offset < len(batch):
        header = nfgen_msg(batch[offset:])
        header.decode()
        length = header["header"]["length"]
        assert length >= 20 and length % 4 == 0 and offset + length <= len(batch), (offset, length)
        is_table = header["header"]["type"] >> 8 == NFNL_SUBSYS_NFTABLES
        message = (nft_table_msg if is_table else nfgen_msg)(batch[offset:offset + length])
        message.decode()
        messages.append(message)
        offset += length
    return messages


def test_table_deletion_is_one_batch_create_then_delete_of_that_table() -> None:
    from pyroute2.netlink import NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST
    from pyroute2.netlink.nfnetlink import NFNL_SUBSYS_NFTABLES
    from pyroute2.netlink.nfnetlink.nftsocket import NFT_MSG_DELTABLE, NFT_MSG_NEWTABLE

    from pyctr.runtime.network.firewall import table_deletion_batch

    batch_begin, batch_end = 0x10, 0x11  # linux/netfilter/nfnetlink.h NFNL_MSG_BATCH_BEGIN/END (pyroute2 inlines them)
    nfproto_ipv4 = 2
    messages = _decoded_batch(table_deletion_batch("pyctr_pyctrn0"))
    kinds = [m["header"]["type"] for m in messages]
    assert kinds == [batch_begin, NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWTABLE,
                     NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_DELTABLE, batch_end]
    assert [m["header"]["sequence_number"] for m in messages] == [1, 2, 3, 4]  # acks are matched by these
    assert all(m["header"]["flags"] & NLM_F_REQUEST for m in messages)
    begin, create, delete, end = messages
    for delimiter in (begin, end):  # the batch is for nftables (res_id, network order) and asks for nothing
        assert (delimiter["res_id"], delimiter["header"]["flags"]) == (NFNL_SUBSYS_NFTABLES, NLM_F_REQUEST)
    assert create["header"]["flags"] & NLM_F_ACK and delete["header"]["flags"] & NLM_F_ACK
    assert create["header"]["flags"] & NLM_F_CREATE and not create["header"]["flags"] & NLM_F_EXCL  # absent: fine
    for change in (create, delete):
        assert change["nfgen_family"] == nfproto_ipv4
        assert change["attrs"] and [name for name, _ in change["attrs"]] == ["NFTA_TABLE_NAME"]
        assert change.get_attr("NFTA_TABLE_NAME") == "pyctr_pyctrn0"
    assert "NFTA_TABLE_NAME" not in {name for m in (begin, end) for name, _ in m.get("attrs", [])}


def test_iptables_fallback_plan_mirrors_the_nft_rules() -> None:
    assert iptables_plan("pyctrn0", "10.79.0.0/24", forwards_from_records(_records())) == (
        "*nat\n"
        ":PYCTR-pyctrn0-PUB - [0:0]\n"
        ":PYCTR-pyctrn0-POST - [0:0]\n"
        "-A PYCTR-pyctrn0-PUB -p tcp -m tcp --dport 8000 -j DNAT --to-destination 10.79.0.2:80\n"
        "-A PYCTR-pyctrn0-PUB -d 127.0.0.1/32 -p udp -m udp --dport 8053 -j DNAT --to-destination 10.79.0.3:53\n"
        "-A PYCTR-pyctrn0-POST -s 10.79.0.0/24 ! -o pyctrn0 -j MASQUERADE\n"
        "-A PYCTR-pyctrn0-POST -s 127.0.0.0/8 -o pyctrn0 -j MASQUERADE\n"
        "-A PYCTR-pyctrn0-POST -s 10.79.0.0/24 -o pyctrn0 -m conntrack --ctstate DNAT -j MASQUERADE\n"
        "COMMIT\n"
    )
    assert iptables_jumps("pyctrn0")[0] == [
        "PREROUTING", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "PYCTR-pyctrn0-PUB"
    ]


def test_backend_choice_can_be_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYCTR_FIREWALL_BACKEND", "iptables")
    assert backend() == "iptables"
    monkeypatch.setenv("PYCTR_FIREWALL_BACKEND", "pf")
    with pytest.raises(RuntimeFailure, match="expected 'nft' or 'iptables'"):
        backend()
