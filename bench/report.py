"""The arithmetic and the table of `make bench`: pure functions, unit-tested (tests/unit/test_bench_report.py).

The ratio of pyctr to a peer is the median of the ratios of PAIRS of runs taken back to back (A B A B ...), not
the ratio of the two medians: a pair shares the machine's state of the moment (load from other jobs, page cache,
CPU frequency), so pairing cancels most of the drift that would otherwise land on one tool only.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    """One tool's figures for one benchmark, as the table shows them."""

    bench: str
    tool: str
    median: float
    low: float
    high: float
    count: int
    ratio: float | None  # the baseline's figure over this tool's, median of pairs; None for the baseline itself
    target: str


def pair_ratios(mine: list[float], theirs: list[float]) -> list[float]:
    """mine[i] / theirs[i] for every round both tools completed (a failed run on either side drops its pair)."""
    return [m / t for m, t in zip(mine, theirs, strict=False) if t]


def median_pair_ratio(mine: list[float], theirs: list[float]) -> float | None:
    ratios = pair_ratios(mine, theirs)
    return statistics.median(ratios) if ratios else None


def rows(name: str, results: dict[str, list[float]], baseline: str, target: str) -> list[Row]:
    """The baseline first, then each peer with its ratio against the baseline."""
    mine = results.get(baseline, [])
    ordered = sorted(results, key=lambda tool: tool != baseline)
    out = []
    for tool in ordered:
        values = results[tool]
        if not values:
            continue
        ratio = None if tool == baseline or not mine else median_pair_ratio(mine, values)
        out.append(Row(name, tool, statistics.median(values), min(values), max(values), len(values), ratio,
                       target if tool == baseline else ""))
    return out


def fmt(value: float, unit: str) -> str:
    """Seconds as ms below 10 s (sub-millisecond figures keep two decimals: the DNS answer), else as s."""
    if unit == "s":
        if value < 0.01:
            return f"{value * 1000:.2f} ms"
        return f"{value * 1000:.0f} ms" if value < 10 else f"{value:.1f} s"
    return f"{value:.1f} {unit}"


def markdown(table_rows: list[Row], units: dict[str, str]) -> str:
    """The results table: one line per tool per benchmark; `units` maps a benchmark to its unit. "met" judges a
    ratio target on the peer's line and an absolute target (such as "< 1 ms") on the baseline's."""
    lines = ["| benchmark | tool | median | min | max | N | ratio (median of pairs) | target | met |",
             "|---|---|---|---|---|---|---|---|---|"]
    targets = {r.bench: r.target for r in table_rows if r.target}
    for r in table_rows:
        unit = units.get(r.bench, "s")
        ratio = "" if r.ratio is None else f"{r.ratio:.2f}"
        met = goal_met(targets.get(r.bench, ""), r.ratio, r.median if r.ratio is None else None, unit)
        verdict = "" if met is None else ("yes" if met else "no")
        lines.append(f"| {r.bench} | {r.tool} | {fmt(r.median, unit)} | {fmt(r.low, unit)} | {fmt(r.high, unit)}"
                     f" | {r.count} | {ratio} | {r.target} | {verdict} |")
    return "\n".join(lines)


def goal_met(target: str, ratio: float | None, median: float | None = None, unit: str = "s") -> bool | None:
    """Whether a target such as "<= 0.5", ">= 1.0" (ratios) or "< 1 ms" (an absolute median) is met; None when
    there is nothing to judge (no peer figure, or a target that is not a comparison)."""
    parts = target.split()
    if len(parts) < 2 or parts[0] not in ("<=", "<", ">=", ">"):
        return None
    try:
        bound = float(parts[1])
    except ValueError:
        return None
    if len(parts) == 3:  # an absolute bound with its unit
        if median is None or unit != "s" or parts[2] != "ms":
            return None
        value = median * 1000
    else:
        if ratio is None:
            return None
        value = ratio
    return {"<=": value <= bound, "<": value < bound, ">=": value >= bound, ">": value > bound}[parts[0]]
