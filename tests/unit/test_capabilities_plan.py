"""Capability sets: Docker's defaults and --cap-add/--cap-drop/--privileged (no root needed)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pyctr.errors import UsageError
from pyctr.runtime.capabilities import (
    ALL_CAPABILITIES,
    DEFAULT_CAPABILITIES,
    capability_mask,
    normalize_capabilities,
    tweak_capabilities,
)


def test_default_mask_is_dockers():
    assert len(DEFAULT_CAPABILITIES) == 14
    assert capability_mask(list(DEFAULT_CAPABILITIES)) == 0xA80425FB


def test_all_capabilities_numbered_like_the_kernel():
    """Bit n is the kernel's capability n: libcap's capsh names each bit of this kernel independently."""
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    for bit in range(last + 1):
        decoded = subprocess.run(["capsh", f"--decode={1 << bit:#x}"], capture_output=True, text=True,
                                 check=True).stdout.strip().split("=", 1)[1]
        assert ALL_CAPABILITIES[bit] == decoded.upper(), bit


@pytest.mark.parametrize(("add", "drop", "expected_mask"), [
    ([], [], 0xA80425FB),
    (["NET_ADMIN"], [], 0xA80425FB | 1 << 12),
    (["cap_sys_admin"], [], 0xA80425FB | 1 << 21),
    ([], ["NET_RAW"], 0xA80425FB & ~(1 << 13)),
    ([], ["chown", "CAP_KILL"], 0xA80425FB & ~1 & ~(1 << 5)),
    ([], ["ALL"], 0),
    (["CHOWN"], ["all"], 1),
    (["ALL"], ["SYS_ADMIN"], (1 << 41) - 1 & ~(1 << 21)),
])
def test_tweak(add, drop, expected_mask):
    assert capability_mask(tweak_capabilities(add, drop)) == expected_mask


def test_privileged_gets_everything():
    assert tweak_capabilities([], ["ALL"], privileged=True) == list(ALL_CAPABILITIES)


def test_unknown_capability_is_docker_error():
    with pytest.raises(UsageError, match='unknown capability: "CAP_BOGUS"'):
        normalize_capabilities(["bogus"])


def test_no_duplicates():
    assert tweak_capabilities(["CHOWN"], []).count("CAP_CHOWN") == 1
