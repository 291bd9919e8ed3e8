"""The embedded DNS server's limits: forwarding slots per container, whole-message deadlines on TCP."""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest

from pyctr.runtime.network import dns_server
from pyctr.runtime.network.dns_server import ForwardSlots, read_tcp_message


def test_one_container_cannot_take_every_slot() -> None:
    slots = ForwardSlots(total=8, per_container=2)
    assert [slots.acquire("flooder") for _ in range(5)] == [True, True, False, False, False]
    assert slots.in_use("flooder") == 2
    assert slots.acquire("victim")
    assert slots.in_use() == 3


def test_the_total_still_bounds_the_server() -> None:
    slots = ForwardSlots(total=3, per_container=2)
    assert slots.acquire("a") and slots.acquire("a") and slots.acquire("b")
    assert not slots.acquire("c")
    slots.release("a")
    assert slots.acquire("c")


def test_released_slots_come_back_and_idle_containers_leave_no_entry() -> None:
    slots = ForwardSlots(total=4, per_container=2)
    for _ in range(2):
        assert slots.acquire("a")
    assert not slots.acquire("a")
    slots.release("a")
    assert slots.acquire("a")
    slots.release("a")
    slots.release("a")
    assert slots.in_use() == 0 and slots.held == {}
    slots.release("never-held")  # a stray release neither raises nor goes negative
    assert slots.held == {}


def test_the_default_cap_is_a_quarter_of_the_total() -> None:
    slots = ForwardSlots()
    taken = sum(slots.acquire("flooder") for _ in range(dns_server.MAX_FORWARDS))
    assert taken == dns_server.MAX_FORWARDS // 4
    assert sum(slots.acquire(f"c{i}") for i in range(dns_server.MAX_FORWARDS)) == dns_server.MAX_FORWARDS - taken


def test_slots_are_counted_right_under_threads() -> None:
    slots = ForwardSlots(total=1000, per_container=1000)

    def churn() -> None:
        for _ in range(500):
            if slots.acquire("a"):
                slots.release("a")

    workers = [threading.Thread(target=churn) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert slots.held == {}


def test_a_whole_tcp_message_arrives_within_its_deadline() -> None:
    query = dns_server.build_query(7, "web")
    left, right = socket.socketpair()
    with left, right:
        left.sendall(struct.pack("!H", len(query)) + query)
        assert read_tcp_message(right, time.monotonic() + 1.0) == query


def test_a_message_dripped_a_byte_at_a_time_misses_its_deadline() -> None:
    """Each byte comes well within any per-recv timeout, the message as a whole does not."""
    left, right = socket.socketpair()
    stop = threading.Event()

    def drip() -> None:
        left.sendall(b"\xff\xff")  # a 65535-byte message announced...
        while not stop.wait(0.05):  # ...and never finished
            try:
                left.sendall(b"x")
            except OSError:
                return

    dripper = threading.Thread(target=drip)
    dripper.start()
    started = time.monotonic()
    try:
        with pytest.raises(TimeoutError):
            read_tcp_message(right, time.monotonic() + 0.4)
        assert time.monotonic() - started < 2.0
    finally:
        stop.set()
        dripper.join()
        left.close()
        right.close()


def test_a_closed_stream_is_the_end_not_an_error() -> None:
    left, right = socket.socketpair()
    left.close()
    with right:
        assert read_tcp_message(right, time.monotonic() + 1.0) is None
