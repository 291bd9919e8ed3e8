"""bench/report.py: the ratio is the median of pair ratios (not the ratio of medians), the table and the verdicts."""

import pytest

from bench import report


def test_pair_ratios_pair_round_by_round_and_drop_zero_peer_runs():
    assert report.pair_ratios([1.0, 2.0, 3.0], [2.0, 0.0, 1.0]) == [0.5, 3.0]
    # a tool with a failed round has fewer values: only rounds both completed are paired
    assert report.pair_ratios([1.0, 2.0], [4.0]) == [0.25]


def test_median_of_pair_ratios_differs_from_ratio_of_medians():
    # drift: both tools slow down together in the last rounds; pairing cancels it
    mine = [1.0, 1.0, 10.0, 10.0, 10.0]
    theirs = [2.0, 2.0, 20.0, 20.0, 20.0]
    assert report.median_pair_ratio(mine, theirs) == pytest.approx(0.5)
    mine = [1.0, 4.0, 2.0]
    theirs = [4.0, 2.0, 1.0]  # pairs: 0.25, 2.0, 2.0 -> 2.0, while the medians' ratio is 2/2 = 1.0
    assert report.median_pair_ratio(mine, theirs) == pytest.approx(2.0)
    assert report.median_pair_ratio([1.0], []) is None


def test_rows_put_the_baseline_first_with_the_target_and_peers_with_their_ratio():
    rows = report.rows("b", {"docker": [4.0, 4.0, 6.0], "pyctr": [1.0, 2.0, 3.0]}, "pyctr", "<= 0.5")
    assert [r.tool for r in rows] == ["pyctr", "docker"]
    mine, peer = rows
    assert (mine.median, mine.low, mine.high, mine.count, mine.ratio, mine.target) == (2.0, 1.0, 3.0, 3, None, "<= 0.5")
    assert peer.ratio == pytest.approx(0.5) and peer.target == ""
    assert report.rows("b", {"pyctr": []}, "pyctr", "x") == []


@pytest.mark.parametrize("target,ratio,median,unit,met", [
    ("<= 0.5", 0.4, None, "s", True),
    ("<= 0.5", 0.6, None, "s", False),
    (">= 1.0", 1.57, None, "req/s", True),
    ("< 1 ms", None, 0.0004, "s", True),
    ("< 1 ms", None, 0.002, "s", False),
    ("<= 0.5", None, 0.1, "s", None),  # no peer: nothing to judge
    ("reported", None, 42.0, "MiB", None),
    ("floor: python -I -c pass", 2.0, None, "s", None),
])
def test_goal_met(target, ratio, median, unit, met):
    assert report.goal_met(target, ratio, median, unit) is met


def test_markdown_shows_ms_sub_ms_and_verdicts():
    rows = [*report.rows("run", {"pyctr": [0.1, 0.12], "docker": [0.5, 0.4]}, "pyctr", "<= 0.3"),
            *report.rows("dns", {"pyctr": [0.00005, 0.00007]}, "pyctr", "< 1 ms")]
    text = report.markdown(rows, {"run": "s", "dns": "s"})
    lines = text.splitlines()
    assert lines[2] == "| run | pyctr | 110 ms | 100 ms | 120 ms | 2 |  | <= 0.3 |  |"
    assert lines[3] == "| run | docker | 450 ms | 400 ms | 500 ms | 2 | 0.25 |  | yes |"
    assert lines[4] == "| dns | pyctr | 0.06 ms | 0.05 ms | 0.07 ms | 2 |  | < 1 ms | yes |"
    assert report.fmt(12.34, "s") == "12.3 s" and report.fmt(2.25, "MiB") == "2.2 MiB"
