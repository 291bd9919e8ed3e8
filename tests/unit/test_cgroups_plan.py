"""Pure planning of cgroup writes: Docker's semantics turned into file values (v1 and v2)."""

import pytest

from pyctr.errors import UsageError
from pyctr.runtime.cgroups import (
    DEFAULT_DEVICE_RULES,
    DeviceRule,
    Limits,
    cpu,
    devices,
    memory,
    parse_bytes,
    pids,
    plan_v1,
    plan_v2,
    validate_limits,
)
from pyctr.runtime.cgroups.layout import check_container_id, v2_subtree_plan

MiB = 1024 * 1024


def test_no_limits_writes_only_the_default_device_rules():
    plan = plan_v1(Limits())
    assert set(plan) == {"devices"}
    assert plan_v2(Limits()) == {}


def test_memory_swap_defaults_to_twice_memory_like_docker():
    limits = Limits(memory=32 * MiB)
    assert memory.plan_v1(limits) == {"memory.limit_in_bytes": str(32 * MiB),
                                      "memory.memsw.limit_in_bytes": str(64 * MiB)}
    # v2 takes swap alone: (memory + swap) - memory
    assert memory.plan_v2(limits) == {"memory.max": str(32 * MiB), "memory.swap.max": str(32 * MiB)}


def test_memory_swap_unlimited_and_equal_to_memory():
    assert memory.plan_v1(Limits(memory=32 * MiB, memory_swap=-1))["memory.memsw.limit_in_bytes"] == "-1"
    assert memory.plan_v2(Limits(memory=32 * MiB, memory_swap=-1))["memory.swap.max"] == "max"
    assert memory.plan_v2(Limits(memory=32 * MiB, memory_swap=32 * MiB))["memory.swap.max"] == "0"
    assert memory.plan_v2(Limits(memory=32 * MiB, memory_swap=100 * MiB))["memory.swap.max"] == str(68 * MiB)


def test_memory_without_swap_accounting_skips_swap_files():
    assert memory.plan_v1(Limits(memory=32 * MiB), swap_accounting=False) == {"memory.limit_in_bytes": str(32 * MiB)}
    assert memory.plan_v2(Limits(memory=32 * MiB), swap_accounting=False) == {"memory.max": str(32 * MiB)}


def test_memory_limit_is_written_before_memsw():
    assert list(memory.plan_v1(Limits(memory=32 * MiB))) == ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]


def test_cpus_become_a_quota_over_100ms():
    assert cpu.plan_v1(Limits(cpus=0.5)) == {"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "50000"}
    assert cpu.plan_v2(Limits(cpus=1.5)) == {"cpu.max": "150000 100000"}
    assert cpu.plan_v2(Limits(cpus=0.001)) == {"cpu.max": "1000 100000"}  # the kernel's minimum quota


@pytest.mark.parametrize(("shares", "weight"), [(2, 1), (1024, 39), (262144, 10000), (1, 1), (10**6, 10000)])
def test_shares_to_weight_is_the_runc_mapping(shares, weight):
    assert cpu.shares_to_weight(shares) == weight


def test_cpu_shares_v1_and_v2():
    assert cpu.plan_v1(Limits(cpu_shares=512)) == {"cpu.shares": "512"}
    assert cpu.plan_v2(Limits(cpu_shares=512)) == {"cpu.weight": str(cpu.shares_to_weight(512))}
    assert cpu.plan_v1(Limits(cpu_shares=0)) == {}  # Docker: 0 means "default"


@pytest.mark.parametrize(("limit", "expected"), [(None, {}), (0, {}), (-1, {}), (20, {"pids.max": "20"})])
def test_pids_limit_zero_or_negative_is_unlimited(limit, expected):
    assert pids.plan_v1(Limits(pids_limit=limit)) == expected
    assert pids.plan_v2(Limits(pids_limit=limit)) == expected


def test_default_devices_are_dockers_allow_list():
    plan = devices.plan_v1(Limits())
    assert list(plan) == ["devices.deny", "devices.allow"]
    assert plan["devices.deny"] == ["a"]
    assert plan["devices.allow"] == ["c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm",
                                     "c 1:9 rwm", "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm"]


def test_privileged_allows_every_device():
    assert devices.plan_v1(Limits(privileged=True)) == {"devices.allow": ["a"]}


def test_allow_all_with_exceptions_writes_allow_first():
    rules = (DeviceRule(True, "a"), DeviceRule(False, "b", 8, None, "rwm"))
    assert devices.plan_lines(rules) == {"devices.allow": ["a"], "devices.deny": ["b 8:* rwm"]}
    assert list(devices.plan_lines(rules)) == ["devices.allow", "devices.deny"]


def test_v2_has_no_device_files():
    assert devices.plan_v2(Limits()) == {}
    assert devices.V2_ENFORCED is False
    assert DEFAULT_DEVICE_RULES[0] == DeviceRule(False, "a")


def test_full_plans_group_by_controller():
    limits = Limits(memory=64 * MiB, cpus=2, cpu_shares=1024, pids_limit=100)
    v1 = plan_v1(limits)
    assert set(v1) == {"memory", "cpu", "pids", "devices"}
    v2 = plan_v2(limits)
    assert v2 == {"memory.max": str(64 * MiB), "memory.swap.max": str(64 * MiB), "cpu.weight": "39",
                  "cpu.max": "200000 100000", "pids.max": "100"}


@pytest.mark.parametrize(("limits", "message"), [
    (Limits(memory=1024), "Minimum memory limit allowed is 6MB"),
    (Limits(memory_swap=64 * MiB), "You should always set the Memory limit when using Memoryswap limit"),
    (Limits(memory=64 * MiB, memory_swap=32 * MiB), "Minimum memoryswap limit should be larger than memory limit"),
    (Limits(cpus=3), "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"),
    (Limits(cpus=0.001), "Range of CPUs is from 0.01 to 2.00"),
])
def test_validate_refuses_like_docker(limits, message):
    with pytest.raises(UsageError, match=message):
        validate_limits(limits, ncpus=2)


def test_validate_accepts_docker_values():
    validate_limits(Limits(memory=32 * MiB, memory_swap=-1, cpus=1.5, cpu_shares=512, pids_limit=-1), ncpus=2)
    validate_limits(Limits(memory=32 * MiB, memory_swap=32 * MiB, cpus=0), ncpus=2)


def test_v2_subtree_plan_enables_only_missing_available_controllers():
    assert v2_subtree_plan(["cpu", "memory", "pids", "hugetlb"], ["cpu"]) == "+memory +pids"
    assert v2_subtree_plan(["cpu"], ["cpu"]) is None


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "../x", "x y", "-x"])
def test_container_ids_that_could_escape_are_refused(bad):
    from pyctr.errors import RuntimeFailure

    with pytest.raises(RuntimeFailure):
        check_container_id(bad)


@pytest.mark.parametrize(("text", "expected"), [("32m", 32 * MiB), ("1.5g", 1536 * MiB), ("512k", 512 * 1024),
                                                ("100", 100), ("32MB", 32 * MiB), ("1GiB", 1024 * MiB)])
def test_parse_bytes_like_docker(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("", "invalid size: ''"), ("m", "invalid size: 'm'"), ("32x", "invalid suffix: 'x'"), ("-1", "invalid size"),
    ("1.2.3m", 'parsing "1.2.3": invalid syntax'), (" 32 ", "invalid syntax")])
def test_parse_bytes_refuses_garbage(text, message):
    """go-units' own wording; blanks around the number are refused as Docker refuses `-m " 32 "`."""
    with pytest.raises(UsageError, match=message):
        parse_bytes(text)


def test_limits_round_trip_through_json():
    import json

    limits = Limits(memory=32 * MiB, memory_swap=-1, cpus=0.5, cpu_shares=512, pids_limit=20, privileged=True)
    assert Limits.from_dict(json.loads(json.dumps(limits.to_dict()))) == limits
    assert Limits.from_dict({"memory": 1, "some_future_key": 2}) == Limits(memory=1)
