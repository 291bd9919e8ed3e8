"""`stats` arithmetic and /proc parsing (pyctr.runtime.stats) and `system df` accounting (pyctr.image.usage),
pinned on plain values: no container, no cgroup, no store on disk."""

from __future__ import annotations

import os
from types import SimpleNamespace

from pyctr.commands.image import df_row
from pyctr.image.store import InUse
from pyctr.image.usage import Usage, du, image_usage
from pyctr.runtime.ps import stats_row
from pyctr.runtime.stats import parse_net_dev, usage_sample

NET_DEV = """Inter-|   Receive                                    |  Transmit
 face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop fifo colls carrier compressed
    lo: 5000 50 0 0 0 0 0 0 5000 50 0 0 0 0 0 0
  eth0: 1200 10 0 0 0 0 0 0 800 8 0 0 0 0 0 0
  eth1:   30  1 0 0 0 0 0 0  70 1 0 0 0 0 0 0
"""


def never_asked() -> int:
    raise AssertionError("the host's memory is asked only when the cgroup has no limit")


def test_net_dev_sums_every_interface_but_lo():
    assert parse_net_dev(NET_DEV) == (1230, 870)
    assert parse_net_dev(NET_DEV.splitlines()[0] + "\n") == (0, 0)


def test_cpu_percent_is_cpu_time_over_wall_time_between_the_two_readings():
    before = {"cpu": {"usage_ns": 1_000_000_000}}
    now = {"cpu": {"usage_ns": 1_250_000_000}, "memory": {"usage": 300, "limit": 1000}}
    sample = usage_sample("c" * 64, "web", before, now, 0.5, (0, 0), never_asked)
    assert sample.cpu_ns_delta == 250_000_000
    assert stats_row(sample)["CPUPerc"] == "50.00%"
    two_cpus = usage_sample("c" * 64, "web", before, {"cpu": {"usage_ns": 2_000_000_000}, "memory": {"limit": 1}},
                            0.5, (0, 0), never_asked)
    assert stats_row(two_cpus)["CPUPerc"] == "200.00%"  # Docker's: 100% per CPU kept busy


def test_a_counter_that_went_backwards_is_no_negative_cpu():
    sample = usage_sample("c" * 64, "web", {"cpu": {"usage_ns": 10}}, {"cpu": {"usage_ns": 5}, "memory": {"limit": 1}},
                          0.5, (0, 0), never_asked)
    assert sample.cpu_ns_delta == 0


def test_memory_leaves_out_the_inactive_file_cache_and_falls_back_to_the_host_limit():
    now = {"memory": {"usage": 5000, "inactive_file": 1000}, "blkio": {"read_bytes": 7, "write_bytes": 9},
           "pids": {"current": 3}}
    sample = usage_sample("c" * 64, "web", {}, now, 0.5, (11, 22), lambda: 8000)
    assert (sample.mem_usage, sample.mem_limit) == (4000, 8000)
    assert stats_row(sample)["MemPerc"] == "50.00%"
    assert (sample.net_rx, sample.net_tx, sample.block_read, sample.block_write, sample.pids) == (11, 22, 7, 9, 3)
    cache_above_usage = usage_sample("c" * 64, "web", {}, {"memory": {"usage": 1, "inactive_file": 9, "limit": 5}},
                                     0.5, (0, 0), never_asked)
    assert cache_above_usage.mem_usage == 0


def image(image_id: str, tags: list[str], layers: dict[str, int], parent: str = "") -> SimpleNamespace:
    return SimpleNamespace(id=image_id, repo_tags=tags, repo_digests=[], parent=parent,
                           layers=[SimpleNamespace(chain_id=c, diff_size=s) for c, s in layers.items()])


def test_image_usage_counts_shared_layers_once_and_no_intermediate_image():
    base = image("base", ["base:1"], {"L1": 100})
    step = image("step", [], {"L1": 100, "L2": 20}, parent="base")  # intermediate: it has a child
    app = image("app", ["app:1"], {"L1": 100, "L2": 20, "L3": 5}, parent="step")
    store = SimpleNamespace(children=lambda: {"base": ["step"], "step": ["app"]},
                            list_images=lambda: [base, step, app])
    assert image_usage(store, InUse({"base": ["c1"]})) == Usage("Images", total=2, active=1, size=125, reclaimable=25)


def test_df_row_shows_the_reclaimable_percent_for_images_only():
    assert df_row(Usage("Images", 2, 1, 200, 50))["Reclaimable"] == "50B (25%)"
    assert df_row(Usage("Images", 0, 0, 0, 0))["Reclaimable"] == "0B (0%)"
    assert df_row(Usage("Local Volumes", 1, 0, 50, 50)) == {
        "Type": "Local Volumes", "TotalCount": "1", "Active": "0", "Size": "50B", "Reclaimable": "50B"}


def test_du_counts_a_hard_linked_file_once(tmp_path):
    (tmp_path / "sub").mkdir()
    data = tmp_path / "sub" / "data"
    data.write_bytes(b"x" * 100_000)
    alone = du(tmp_path)
    os.link(data, tmp_path / "again")
    assert du(tmp_path) == alone >= 100_000
    assert du(tmp_path / "missing") == 0
