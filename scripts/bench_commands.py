"""Time `create`, `exec c true` and `run --rm` end to end, two pyctr installations alternating on one root.

Why: issue 18 asks for `create` and `exec` at half of Docker's time; a change is judged by the medians of many
alternated runs of the old and the new code (the load of this 2-core machine drifts, alternation cancels it).
Each command goes through its installation's warm server, as a user's would. Not part of `make bench`
(bench/run.py compares pyctr with Docker); this compares pyctr with itself.

    PYCTR_ROOT=... PYCTR_CONFIG=... python scripts/bench_commands.py OLD/.venv/bin/pyctr NEW/.venv/bin/pyctr
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time


def timed(argv: list[str]) -> tuple[float, str]:
    """Wall time of one command (ms) and its stdout; a failing command stops the measurement."""
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    elapsed = (time.perf_counter() - start) * 1000
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}")
    return elapsed, done.stdout.strip()


def create_case(binary: str, image: str) -> float:
    """`create --network none IMAGE true`, the container removed afterwards (untimed)."""
    elapsed, cid = timed([binary, "create", "--network", "none", image, "true"])
    subprocess.run([binary, "rm", "-f", cid], stdout=subprocess.DEVNULL, check=True)
    return elapsed


def run_case(binary: str, image: str) -> float:
    """`run --rm --network none IMAGE true`."""
    return timed([binary, "run", "--rm", "--network", "none", image, "true"])[0]


def exec_case(binary: str, container: str) -> float:
    """`exec CONTAINER true` into a running container."""
    return timed([binary, "exec", container, "true"])[0]


def compare(name: str, binaries: list[str], measure, runs: int) -> None:
    """Alternate the installations `runs` times (after one warm-up each); print medians and the median ratio."""
    for binary in binaries:
        measure(binary)
    samples: dict[str, list[float]] = {b: [] for b in binaries}
    for i in range(runs):
        order = binaries if i % 2 == 0 else binaries[::-1]
        for binary in order:
            samples[binary].append(measure(binary))
    medians = [statistics.median(samples[b]) for b in binaries]
    line = "  ".join(f"{b}: {m:.1f} ms" for b, m in zip(binaries, medians, strict=True))
    if len(binaries) == 2:
        ratios = [new / old for old, new in zip(samples[binaries[0]], samples[binaries[1]], strict=True)]
        line += f"  ratio(new/old) {statistics.median(ratios):.2f}"
    print(f"{name}: {line}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("binaries", nargs="+", help="pyctr commands to compare (old first)")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--image", default="busybox")
    parser.add_argument("--cases", default="create,exec")
    args = parser.parse_args()
    cases = args.cases.split(",")
    if "create" in cases:
        compare("create", args.binaries, lambda b: create_case(b, args.image), args.runs)
    if "run" in cases:
        compare("run --rm", args.binaries, lambda b: run_case(b, args.image), args.runs)
    if "exec" in cases:
        _, container = timed([args.binaries[0], "run", "-d", "--network", "none", args.image, "sleep", "3600"])
        try:
            compare("exec true", args.binaries, lambda b: exec_case(b, container), args.runs)
        finally:
            subprocess.run([args.binaries[0], "rm", "-f", container], stdout=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
