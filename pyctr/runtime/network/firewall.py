"""NAT for the bridge: masquerade outbound, DNAT published ports. Plan (pure) then apply (nft).

Each bridge gets its own nftables table (`ip pyctr_<bridge>`), rebuilt whole
from the network state on every change and replaced in one nft transaction
(`table; delete table; table {...}`). Rebuilding instead of patching means
there is never a rule to find by handle, a crash can never leave half a rule
set, and recovery is "apply the plan for the containers that still exist".
Nothing outside that table is touched, so Docker's, podman's or the admin's
rules are never disturbed.

Port publishing is kernel DNAT, like Docker with `userland-proxy: false`:
- prerouting: traffic from outside and from other containers (hairpin: a
  container reaching gateway:hostPort);
- output: traffic the host itself sends to one of its addresses, including
  127.0.0.1 (with route_localnet on the bridge and masquerading the 127/8
  source, because a container cannot answer 127.0.0.1);
- postrouting: masquerade the subnet going elsewhere, and DNAT'd traffic from
  the subnet back into the bridge so replies come back through the host.

Hosts without the `nft` command fall back to iptables (iptables-restore
--noflush on pyctr's own PYCTR-<bridge>-* chains, jumped to from the nat
built-ins); PYCTR_FIREWALL_BACKEND=nft|iptables forces a choice.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass

from pyctr.errors import RuntimeFailure
from pyctr.runtime.network.publish import ANY_IPV4

COMMAND_TIMEOUT = 30


@dataclass(frozen=True)
class Forward:
    """One published port: (host_ip, host_port, proto) -> container_ip:container_port."""

    host_ip: str
    host_port: int
    proto: str
    container_ip: str
    container_port: int


def table_name(bridge: str) -> str:
    """nft identifiers allow [A-Za-z0-9_]; bridge names may also hold '.' and '-'."""
    return "pyctr_" + re.sub(r"[^A-Za-z0-9_]", "_", bridge)


def forwards_from_records(records: Iterable) -> list[Forward]:
    """Forward entries for every published port of the given ContainerRecords."""
    forwards = []
    for record in records:
        for port in record.ports:
            forwards.append(
                Forward(port["host_ip"], int(port["host_port"]), port["proto"], record.ip, int(port["container_port"]))
            )
    return sorted(forwards, key=lambda f: (f.host_port, f.proto, f.host_ip, f.container_ip))


def ruleset_plan(bridge: str, subnet: str, forwards: Iterable[Forward], policy: dict | None = None) -> str:
    """The nft script that makes table pyctr_<bridge> exactly what the state says.

    `policy` is a user-defined network's (usermanager.py): isolated from every other bridge (Docker's
    DOCKER-ISOLATION chains), and with `internal` neither masqueraded nor forwarded out."""
    policy = policy or {}
    table = table_name(bridge)
    dnat_rules = [_dnat_rule(f) for f in forwards]
    masquerade = [] if policy.get("internal") else [f'\t\tip saddr {subnet} oifname != "{bridge}" masquerade']
    lines = [
        f"table ip {table}",
        f"delete table ip {table}",
        f"table ip {table} {{",
        "\tchain prerouting {",
        "\t\ttype nat hook prerouting priority -100; policy accept;",
        "\t\tfib daddr type local jump publish",
        "\t}",
        "\tchain output {",
        "\t\ttype nat hook output priority -100; policy accept;",
        "\t\tfib daddr type local jump publish",
        "\t}",
        "\tchain publish {",
        *[f"\t\t{rule}" for rule in dnat_rules],
        "\t}",
        "\tchain postrouting {",
        "\t\ttype nat hook postrouting priority 100; policy accept;",
        *masquerade,
        f'\t\toifname "{bridge}" ip saddr 127.0.0.0/8 masquerade',
        f'\t\toifname "{bridge}" ip saddr {subnet} ct status dnat masquerade',
        "\t}",
        *isolation_chain(bridge, policy),
        "}",
    ]
    return "\n".join(lines) + "\n"


def isolation_chain(bridge: str, policy: dict) -> list[str]:
    """A user network's forward filter: nothing from another bridge (or from outside) comes in unless it
    answers the network's own traffic or is a published port; nothing goes to the default bridge; an
    internal network forwards nothing across its border at all. Empty for the default bridge."""
    if not policy.get("user"):
        return []
    inbound = f'oifname "{bridge}" iifname != "{bridge}"'
    rules = [f"{inbound} ct state established,related accept"]
    if policy.get("internal"):
        rules += [f"{inbound} drop", f'iifname "{bridge}" oifname != "{bridge}" drop']
    else:
        rules += [f"{inbound} ct status dnat accept", f"{inbound} drop"]
        rules += [f'iifname "{bridge}" oifname "{other}" drop' for other in policy.get("isolate_from", [])]
    return ["\tchain forward {", "\t\ttype filter hook forward priority 0; policy accept;",
            *[f"\t\t{rule}" for rule in rules], "\t}"]


def _dnat_rule(forward: Forward) -> str:
    match = "" if forward.host_ip in ("", ANY_IPV4) else f"ip daddr {forward.host_ip} "
    return (
        f"{match}{forward.proto} dport {forward.host_port} "
        f"dnat to {forward.container_ip}:{forward.container_port}"
    )


def backend() -> str:
    """"nft" when the nft command exists, else "iptables"; PYCTR_FIREWALL_BACKEND overrides."""
    forced = os.environ.get("PYCTR_FIREWALL_BACKEND", "")
    if forced in ("nft", "iptables"):
        return forced
    if forced:
        raise RuntimeFailure(f"PYCTR_FIREWALL_BACKEND={forced!r}: expected 'nft' or 'iptables'")
    if shutil.which("nft"):
        return "nft"
    if shutil.which("iptables-restore"):
        return "iptables"
    raise RuntimeFailure("neither nft nor iptables is installed: install the nftables package")


class Pending:
    """A rule change under way: nft runs on its own while the caller sets up links; wait() finishes it.

    nft takes ~20 ms, about as long as creating and configuring a veth pair: overlapping the two takes
    that much off every `run` and `rm` on a bridge. The iptables fallback runs to completion at once."""

    def __init__(self, process: subprocess.Popen | None = None) -> None:
        self.process = process

    def wait(self) -> None:
        if self.process is None:
            return
        process, self.process = self.process, None
        try:
            _, stderr = process.communicate(timeout=COMMAND_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise RuntimeFailure(f"nft did not answer within {COMMAND_TIMEOUT} s") from None
        if process.returncode != 0:
            detail = " ".join(stderr.split())[:400] or f"exit status {process.returncode}"
            raise RuntimeFailure(f"nft failed to apply pyctr's NAT rules: {detail}")


def start_apply(bridge: str, subnet: str, forwards: list[Forward], policy: dict | None = None) -> Pending:
    """Make the kernel's NAT for `bridge` exactly the plan, with the available backend; returns while nft
    still works: call wait() on the result before relying on the rules."""
    if backend() == "nft":
        return _start_nft(ruleset_plan(bridge, subnet, forwards, policy))
    if policy and policy.get("user"):
        raise RuntimeFailure("user-defined networks need nftables: install the nftables package (nft)")
    _apply_iptables(bridge, subnet, forwards)
    return Pending()


def remove(bridge: str) -> None:
    """Remove all of pyctr's NAT for `bridge` (no-op if there is none); with nftables, one netlink
    transaction (see delete_table)."""
    if backend() == "nft":
        delete_table(table_name(bridge))
    else:
        _remove_iptables(bridge)


# nfnetlink, for the one transaction pyctr sends itself (linux/netfilter/nfnetlink.h, nf_tables.h).
NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END = 0x10, 0x11
NFT_MSG_NEWTABLE, NFT_MSG_DELTABLE = 0, 2
NFTA_TABLE_NAME = 1
NLM_F_REQUEST, NLM_F_ACK, NLM_F_CREATE = 0x1, 0x4, 0x400
NLMSG_ERROR = 2
NFPROTO_IPV4 = 2
_closing: list[object] = []


def table_deletion_batch(name: str) -> bytes:
    """The nfnetlink batch "table ip <name>; delete table ip <name>" (create if missing, then delete: removes
    the table whether it exists or not, atomically). Messages 2 and 3 ask for an acknowledgement."""
    import socket
    import struct

    def message(kind: int, flags: int, seq: int, family: int, payload: bytes = b"") -> bytes:
        body = struct.pack("=BBH", family, 0, socket.htons(NFNL_SUBSYS_NFTABLES)) + payload
        return struct.pack("=IHHII", 16 + len(body), kind, flags, seq, 0) + body

    raw = name.encode() + b"\0"
    attribute = struct.pack("=HH", 4 + len(raw), NFTA_TABLE_NAME) + raw + b"\0" * (-len(raw) % 4)
    table_kind = NFNL_SUBSYS_NFTABLES << 8
    return b"".join([
        message(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, 1, 0),
        message(table_kind | NFT_MSG_NEWTABLE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE, 2, NFPROTO_IPV4, attribute),
        message(table_kind | NFT_MSG_DELTABLE, NLM_F_REQUEST | NLM_F_ACK, 3, NFPROTO_IPV4, attribute),
        message(NFNL_MSG_BATCH_END, NLM_F_REQUEST, 4, 0),
    ])


def delete_table(name: str) -> None:
    """Delete nftables table `ip name` if it exists, sending table_deletion_batch ourselves.

    nft would do the same transaction, but the commit takes ~0.1 ms while closing a netlink socket that
    deleted a table waits 10-20 ms in the kernel, and nft exits only after that. Our socket is closed by a
    thread of its own, so the container's teardown does not wait for it."""
    import socket

    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    try:
        sock.settimeout(COMMAND_TIMEOUT)
        sock.bind((0, 0))
        sock.send(table_deletion_batch(name))
        _await_acks(sock, {2, 3})
    except OSError as e:
        sock.close()
        raise RuntimeFailure(f"cannot remove pyctr's NAT table {name}: {e.strerror or e}") from None
    _close_in_background(sock)


def _await_acks(sock, pending: set[int]) -> None:
    import struct

    while pending:
        data = sock.recv(65536)
        offset = 0
        while offset + 16 <= len(data):
            length, kind, _, seq, _ = struct.unpack_from("=IHHII", data, offset)
            if kind == NLMSG_ERROR:
                error = struct.unpack_from("=i", data, offset + 16)[0]
                if error:
                    raise OSError(-error, os.strerror(-error))
                pending.discard(seq)
            offset += max(16, (length + 3) & ~3)


def _close_in_background(sock) -> None:
    import threading

    _closing.append(sock)  # no garbage collection closes it in the caller's thread meanwhile

    def close() -> None:
        sock.close()
        _closing.remove(sock)

    threading.Thread(target=close, daemon=True).start()


def _start_nft(script: str) -> Pending:
    try:
        process = subprocess.Popen(["nft", "-f", "-"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)
    except FileNotFoundError:
        raise RuntimeFailure("nft is not installed") from None
    stdin, process.stdin = process.stdin, None  # communicate() must not touch it again
    try:
        stdin.write(script)  # type: ignore[union-attr]  # a few hundred bytes: fits the pipe
        stdin.close()  # type: ignore[union-attr]
    except BrokenPipeError:
        pass  # nft died early: wait() reports its error
    return Pending(process)


def iptables_chains(bridge: str) -> dict[str, str]:
    """pyctr's chains for `bridge` (iptables names allow up to 28 characters: 6 + 15 + 5)."""
    return {"publish": f"PYCTR-{bridge}-PUB", "postrouting": f"PYCTR-{bridge}-POST"}


def iptables_jumps(bridge: str) -> list[list[str]]:
    """The jump rules from the nat built-ins, as `iptables -t nat` argument lists after -C/-I/-D."""
    chains = iptables_chains(bridge)
    local = ["-m", "addrtype", "--dst-type", "LOCAL"]
    return [
        ["PREROUTING", *local, "-j", chains["publish"]],
        ["OUTPUT", *local, "-j", chains["publish"]],
        ["POSTROUTING", "-j", chains["postrouting"]],
    ]


def iptables_plan(bridge: str, subnet: str, forwards: Iterable[Forward]) -> str:
    """iptables-restore --noflush input: declaring the chains flushes them, then the same rules as nft."""
    chains = iptables_chains(bridge)
    lines = ["*nat", f":{chains['publish']} - [0:0]", f":{chains['postrouting']} - [0:0]"]
    for f in forwards:
        match = "" if f.host_ip in ("", ANY_IPV4) else f"-d {f.host_ip}/32 "
        lines.append(
            f"-A {chains['publish']} {match}-p {f.proto} -m {f.proto} --dport {f.host_port} "
            f"-j DNAT --to-destination {f.container_ip}:{f.container_port}"
        )
    post = chains["postrouting"]
    lines += [
        f"-A {post} -s {subnet} ! -o {bridge} -j MASQUERADE",
        f"-A {post} -s 127.0.0.0/8 -o {bridge} -j MASQUERADE",
        f"-A {post} -s {subnet} -o {bridge} -m conntrack --ctstate DNAT -j MASQUERADE",
        "COMMIT",
    ]
    return "\n".join(lines) + "\n"


def _apply_iptables(bridge: str, subnet: str, forwards: list[Forward]) -> None:
    _run(["iptables-restore", "--noflush", "-w"], iptables_plan(bridge, subnet, forwards))
    for jump in iptables_jumps(bridge):
        if _run(["iptables", "-w", "-t", "nat", "-C", *jump], check=False).returncode != 0:
            _run(["iptables", "-w", "-t", "nat", "-I", *jump])


def _remove_iptables(bridge: str) -> None:
    for jump in iptables_jumps(bridge):
        while _run(["iptables", "-w", "-t", "nat", "-D", *jump], check=False).returncode == 0:
            pass
    for chain in iptables_chains(bridge).values():
        if _run(["iptables", "-w", "-t", "nat", "-F", chain], check=False).returncode == 0:
            _run(["iptables", "-w", "-t", "nat", "-X", chain])


def _run(argv: list[str], stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    try:
        result = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False
        )
    except FileNotFoundError:
        raise RuntimeFailure(f"{argv[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise RuntimeFailure(f"{argv[0]} did not answer within {COMMAND_TIMEOUT} s") from None
    if check and result.returncode != 0:
        detail = " ".join(result.stderr.split())[:400] or f"exit status {result.returncode}"
        raise RuntimeFailure(f"{argv[0]} failed to apply pyctr's NAT rules: {detail}")
    return result
