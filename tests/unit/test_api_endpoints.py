"""The pure parts of the Engine API's stats, image prune/commit and save endpoints: dockerd's JSON shapes and
the numbers the docker CLI computes its `stats` columns from."""

from __future__ import annotations

import pytest

from pyctr.api.http import HttpError
from pyctr.api.images import commit_config, prune_all_unused, prune_answer
from pyctr.api.stats import ZERO_TIME, stats_document
from pyctr.runtime.stats import UsageReading, parse_net_dev_interfaces, parse_system_cpu_ns

NET_DEV = """Inter-|   Receive                                    |  Transmit
 face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop fifo colls carrier compressed
    lo: 5000 50 0 0 0 0 0 0 5000 50 0 0 0 0 0 0
  eth0: 1200 10 1 2 0 0 0 0 800 8 3 4 0 0 0 0
"""


def reading(at_s: float, cpu_ns: int, system_ns: int, **cgroup) -> UsageReading:
    return UsageReading(int(at_s * 1e9), {"cpu": {"usage_ns": cpu_ns, "user_ns": cpu_ns // 2,
                                                  "system_ns": cpu_ns // 2}, **cgroup},
                        system_ns, 2, parse_net_dev_interfaces(NET_DEV))


def cli_cpu_percent(doc: dict) -> float:
    """docker-cli's calculateCPUPercentUnix, on the document as the CLI receives it."""
    cpu, pre = doc["cpu_stats"], doc["precpu_stats"]
    cpu_delta = cpu["cpu_usage"]["total_usage"] - pre["cpu_usage"]["total_usage"]
    system_delta = cpu["system_cpu_usage"] - pre.get("system_cpu_usage", 0)
    return cpu_delta / system_delta * cpu["online_cpus"] * 100 if system_delta > 0 and cpu_delta > 0 else 0.0


def test_stats_document_gives_the_cli_its_cpu_memory_io_network_and_pids():
    before = reading(100, 1_000_000_000, 50_000_000_000)
    now = reading(101, 1_500_000_000, 52_000_000_000,  # half a CPU busy over 1 s of 2 CPUs' host time
                  memory={"usage": 5000, "inactive_file": 1000, "limit": None},
                  blkio={"read_bytes": 7, "write_bytes": 9}, pids={"current": 3, "limit": 100})
    doc = stats_document("c" * 64, "web", now, before, host_memory=8000)
    assert doc["name"] == "/web" and doc["id"] == "c" * 64
    assert doc["read"].startswith("1970-01-01T00:01:41") and doc["preread"].startswith("1970-01-01T00:01:40")
    assert cli_cpu_percent(doc) == pytest.approx(50.0)
    memory = doc["memory_stats"]
    assert memory["usage"] - memory["stats"]["inactive_file"] == 4000 and memory["limit"] == 8000
    ops = {e["op"]: e["value"] for e in doc["blkio_stats"]["io_service_bytes_recursive"]}
    assert ops == {"read": 7, "write": 9}
    assert doc["networks"] == {"eth0": {"rx_bytes": 1200, "rx_packets": 10, "rx_errors": 1, "rx_dropped": 2,
                                        "tx_bytes": 800, "tx_packets": 8, "tx_errors": 3, "tx_dropped": 4}}
    assert doc["pids_stats"] == {"current": 3, "limit": 100}


def test_a_first_or_stopped_reading_has_go_zero_times_and_zero_counters():
    first = stats_document("c" * 64, "web", reading(1, 5, 10), None, host_memory=1)
    assert first["preread"] == ZERO_TIME and first["precpu_stats"]["cpu_usage"]["total_usage"] == 0
    assert "system_cpu_usage" not in first["precpu_stats"]
    stopped = stats_document("c" * 64, "web", None, None, host_memory=1)
    assert stopped["read"] == ZERO_TIME and stopped["memory_stats"] == {} and "networks" not in stopped
    assert stopped["blkio_stats"]["io_service_bytes_recursive"] is None


def test_host_cpu_time_is_the_cpu_lines_first_seven_fields_in_nanoseconds():
    assert parse_system_cpu_ns("cpu  100 0 50 800 50 0 0 7 0 0", 100) == 10_000_000_000
    assert parse_system_cpu_ns("intr 1 2", 100) == 0


def test_image_prune_filters_and_report():
    assert prune_all_unused({}) is False
    assert prune_all_unused({"dangling": ["false"]}) is True
    assert prune_all_unused({"dangling": ["true"]}) is False
    for bad in ({"until": ["24h"]}, {"dangling": ["maybe"]}):
        with pytest.raises(HttpError) as refused:
            prune_all_unused(bad)
        assert refused.value.status == 400
    assert prune_answer(["untagged: a:1", "deleted: sha256:ab"], 10) == {
        "ImagesDeleted": [{"Untagged": "a:1"}, {"Deleted": "sha256:ab"}], "SpaceReclaimed": 10}
    assert prune_answer([], 0) == {"ImagesDeleted": None, "SpaceReclaimed": 0}


def test_commit_config_overlays_what_the_body_sets():
    container = {"Cmd": ["sh"], "Env": ["A=1"], "WorkingDir": "/w"}
    assert commit_config(container, None) == container
    assert commit_config(container, {"Cmd": ["echo", "hi"], "Env": [], "User": ""}) == {
        "Cmd": ["echo", "hi"], "Env": ["A=1"], "WorkingDir": "/w"}
    with pytest.raises(HttpError):
        commit_config(container, ["not", "an", "object"])
