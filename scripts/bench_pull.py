#!/usr/bin/env python3
"""Cold pulls of a seed image from a loopback registry, next to GNU tar unpacking the same blobs.

    sudo .venv/bin/python scripts/bench_pull.py [--runs 5] [--image python] [--server] [--no-tar]
                                                [--pyctr "COMMAND"]

Each run: the pyctr root is removed, `sync`, then `pyctr --root R pull -q REF` is timed (in-process unless
--server); then `tar -xzf` of each layer blob of the same image (one after the other) is timed twice, each
after `sync`: into fresh directories beside the previous run's (deleted) ones, as a plain `tar` does, and into
uniquely named directories under a `chattr +T` directory, as pyctr places its layers (see
image/layout.py spread_subdirectories). Prints every run and the medians. --pyctr runs another build, e.g.
"env PYTHONPATH=/old/checkout:SITE_PACKAGES .venv/bin/python -S -m pyctr" for a before/after comparison.

Why a separate script from bench/run.py: it isolates the pull from the other cases and from the peers, to
measure one change at a time, and it times the filesystem's floor (tar) on the same blobs in the same state.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pyctr.image.layout import spread_subdirectories  # noqa: E402
from tests.fixtures import seed  # noqa: E402  (needs the repo root on sys.path first)
from tests.fixtures.registry import start_registry  # noqa: E402

PYCTR = str(REPO / ".venv" / "bin" / "pyctr")


def layer_blobs(layout: Path, tag: str) -> list[Path]:
    """The layer blob files of `tag` in an OCI layout (in manifest order)."""
    index = json.loads((layout / "index.json").read_text())
    desc = next(m for m in index["manifests"] if m.get("annotations", {}).get("org.opencontainers.image.ref.name")
                == tag)
    blobs = layout / "blobs" / "sha256"
    manifest = json.loads((blobs / desc["digest"][7:]).read_text())
    return [blobs / layer["digest"][7:] for layer in manifest["layers"]]


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, cwd="/")
    return time.perf_counter() - start


def time_pull(pyctr: list[str], ref: str, root: Path, env: dict[str, str]) -> float:
    shutil.rmtree(root, ignore_errors=True)
    os.sync()
    return timed([*pyctr, "--root", str(root), "pull", "-q", ref], env)


def time_tar(blobs: list[Path], dest: Path, spread: bool) -> float:
    """tar -xzf of each blob into its own new directory of `dest` (whose old content is deleted first)."""
    if dest.exists():
        for old in dest.iterdir():
            shutil.rmtree(old)
    dest.mkdir(parents=True, exist_ok=True)
    if spread:
        spread_subdirectories(dest)
    dirs = [dest / (f"{i}-{time.monotonic_ns()}" if spread else str(i)) for i in range(len(blobs))]
    for d in dirs:
        d.mkdir()
    os.sync()
    start = time.perf_counter()
    for blob, d in zip(blobs, dirs, strict=True):
        subprocess.run(["tar", "-xzf", str(blob), "-C", str(d)], check=True)
    return time.perf_counter() - start


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--image", default="python", help="seed image name (tests/fixtures/seed.py)")
    parser.add_argument("--server", action="store_true", help="pull through pyctr's warm server")
    parser.add_argument("--no-tar", action="store_true", help="skip the tar floor")
    parser.add_argument("--workdir", type=Path, help="where roots and tar dirs go (default: a temp dir)")
    parser.add_argument("--pyctr", default=PYCTR, help="the pyctr command to time (default: this checkout's)")
    parser.add_argument("--baseline", help="another pyctr command, timed in each run right after --pyctr's")
    opts = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_pull needs root", file=sys.stderr)
        return 1
    image = seed._seed(opts.image)
    seed.ensure_layouts((image.layout,))
    work = opts.workdir or Path(tempfile.mkdtemp(prefix="pyctr-bench-pull-"))
    registry = start_registry(work / "registry")
    try:
        ref = seed.push_images(registry.host, (image.name,))[image.name]
        cfg = work / "config.toml"
        cfg.write_text(f'insecure_registries = ["{registry.host}"]\n')
        env = dict(os.environ, PYCTR_CONFIG=str(cfg), PYCTR_SERVER="1" if opts.server else "0")
        blobs = layer_blobs(seed.layout_path(image.layout), image.layout_tag)
        pulls, baselines, tars, spread_tars = [], [], [], []
        for i in range(opts.runs):
            pulls.append(time_pull(shlex.split(opts.pyctr), ref, work / "root", env))
            line = f"run {i + 1}: pyctr pull {pulls[-1]:.2f} s"
            if opts.baseline:
                baselines.append(time_pull(shlex.split(opts.baseline), ref, work / "root", env))
                line += f"  baseline pull {baselines[-1]:.2f} s"
            if not opts.no_tar:
                tars.append(time_tar(blobs, work / "tar", spread=False))
                spread_tars.append(time_tar(blobs, work / "tar-spread", spread=True))
                line += f"  tar -xzf {tars[-1]:.2f} s  tar -xzf (+T dir) {spread_tars[-1]:.2f} s"
            print(line, flush=True)
        print(f"median pyctr pull {statistics.median(pulls):.2f} s (server {'on' if opts.server else 'off'})"
              + (f", baseline pull {statistics.median(baselines):.2f} s" if baselines else "")
              + (f", tar -xzf {statistics.median(tars):.2f} s, tar -xzf into a +T dir "
                 f"{statistics.median(spread_tars):.2f} s" if tars else "")
              + f", {len(blobs)} layers, {opts.runs} runs")
    finally:
        registry.stop()
        if not opts.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
