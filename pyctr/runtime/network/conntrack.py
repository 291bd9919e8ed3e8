"""Forgetting NAT'd flows of a removed container, so a published UDP port works for its successor.

Connection tracking keeps a UDP "flow" alive as long as the client keeps
sending, and its NAT binding points at the old container's address even after
the DNAT rule is gone: a DNS client re-sending from the same port would never
reach the new container publishing the same port. Docker flushes these
entries; pyctr deletes the entries whose reply comes from the departed
container's address. Best effort: without nf_conntrack_netlink there is
nothing to flush.
"""

from __future__ import annotations

import contextlib

from pyctr.runtime.network._rtnl import register_bare_package


def forget_flows_to(addresses: list[str]) -> int:
    """Delete conntrack entries whose reply source is one of `addresses`; return how many."""
    if not addresses:
        return 0
    register_bare_package()
    from pyroute2.conntrack import Conntrack
    from pyroute2.netlink.nfnetlink.nfctsocket import NFCTAttrTuple

    deleted = 0
    with contextlib.suppress(Exception), Conntrack() as ct:  # best effort, never fails a teardown
        for address in addresses:
            for entry in list(ct.dump_entries(tuple_reply=NFCTAttrTuple(saddr=address))):
                with contextlib.suppress(Exception):
                    ct.delete(entry)
                    deleted += 1
    return deleted


def has_udp_ports(record: object) -> bool:
    """Only UDP needs this: a new TCP connection gets a new tuple and the DNAT rule of the day."""
    return any(port.get("proto") == "udp" for port in getattr(record, "ports", []))
