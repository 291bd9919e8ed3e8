"""Sizes too big for int64, as Docker 20.10 ends up with them: go-units parseSize converts its float64 with
int64(), which on amd64 gives math.MinInt64 for any value out of range, and a float that does not fit a float64
is strconv.ParseFloat's "value out of range". dockerd then refuses the negative size where it checks one
(--shm-size: "SHM size can not be less than 0", --memory: the 6MB minimum), instead of pyctr mounting a huge
tmpfs."""

from __future__ import annotations

import pytest

from pyctr.errors import PyctrError, UsageError
from pyctr.runtime import kernel_flags as kf
from pyctr.runtime.mounts import MountRequest, tmpfs_options
from pyctr.runtime.spec import RunOptions, parse_limits
from pyctr.units import INT64_MIN, from_human_size, ram_in_bytes

ALL = kf.HostSupport(cpus="0-3")


@pytest.mark.parametrize("text", ["1e30", "99999999999999999999", "9223372036854775807", "8192p", "1e19b"])
def test_a_size_int64_cannot_hold_becomes_min_int64(text):
    assert ram_in_bytes(text) == INT64_MIN


def test_sizes_int64_holds_are_exact():
    assert ram_in_bytes("4096p") == 4096 << 50
    assert ram_in_bytes("9223372036854774784") == 9223372036854774784  # the largest float64 below 2**63
    assert from_human_size("9e18") == 9 * 10**18


def test_a_float_beyond_float64_is_parse_floats_range_error():
    with pytest.raises(ValueError, match=r'^strconv.ParseFloat: parsing "1e400": value out of range$'):
        ram_in_bytes("1e400")


@pytest.mark.parametrize("text", ["1e30", "99999999999999999999"])
def test_shm_size_overflow_refused_as_dockerd(text):
    options = RunOptions(image="busybox", command=["true"], shm_size=text)
    with pytest.raises(PyctrError) as e:
        kf.decide(options, "bridge", 2, None, ALL)
    assert e.value.message == "SHM size can not be less than 0" and not isinstance(e.value, UsageError)


def test_shm_size_is_checked_after_the_resources_as_dockerd_does():
    options = RunOptions(image="busybox", command=["true"], shm_size="1e30", memory_reservation="1m")
    with pytest.raises(PyctrError, match="Minimum memory reservation allowed is 6MB"):
        kf.decide(options, "bridge", 2, None, ALL)


def test_memory_overflow_is_below_the_minimum():
    with pytest.raises(UsageError, match="^Minimum memory limit allowed is 6MB$"):
        parse_limits(RunOptions(image="busybox", command=["true"], memory="1e30"))


def test_tmpfs_size_overflow_is_the_negative_size_moby_writes():
    """moby's ConvertTmpfsOptions divides MinInt64 by 1g exactly: the kernel refuses `size=-8589934592g`."""
    request = MountRequest("tmpfs", "/t", tmpfs_size=ram_in_bytes("1e30"))
    assert tmpfs_options(request) == "size=-8589934592g"
