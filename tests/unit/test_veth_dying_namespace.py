"""veth.remove_veth_of_dying_namespace: the kernel's own removal is awaited, a link that stays is deleted."""

from __future__ import annotations

import time

import pytest

from pyctr.runtime.network import veth


class FakeLinks:
    """Links that vanish by themselves after `vanish_after` seconds (None: never), recording deletions."""

    def __init__(self, vanish_after: float | None) -> None:
        self.since = time.monotonic()
        self.vanish_after = vanish_after
        self.deleted: list[str] = []

    def exists(self, name: str) -> bool:
        if self.deleted:
            return False
        return self.vanish_after is None or time.monotonic() - self.since < self.vanish_after

    def remove(self, name: str) -> bool:
        self.deleted.append(name)
        return True


@pytest.fixture
def links(monkeypatch, request) -> FakeLinks:
    fake = FakeLinks(request.param)
    monkeypatch.setattr(veth, "link_exists", fake.exists)
    monkeypatch.setattr(veth, "remove_veth", fake.remove)
    return fake


@pytest.mark.parametrize("links", [0.005], indirect=True)
def test_a_link_the_kernel_removes_is_not_deleted_again(links: FakeLinks) -> None:
    assert veth.remove_veth_of_dying_namespace("veth1234567", grace=1.0) is True
    assert links.deleted == []


@pytest.mark.parametrize("links", [None], indirect=True)
def test_a_link_that_outlives_the_grace_is_deleted(links: FakeLinks) -> None:
    started = time.monotonic()
    assert veth.remove_veth_of_dying_namespace("veth1234567", grace=0.02) is True
    assert links.deleted == ["veth1234567"]
    assert time.monotonic() - started < 0.5


@pytest.mark.parametrize("links", [0.0], indirect=True)
def test_an_absent_link_costs_nothing(links: FakeLinks) -> None:
    assert veth.remove_veth_of_dying_namespace("veth1234567", grace=1.0) is False
    assert links.deleted == []
