#!/usr/bin/env python3
"""Start a local registry holding the seed images, for the demo and benchmarks.

    seed_registry.py                      build/load the cache, serve on 127.0.0.1:5000 in the foreground
    seed_registry.py --port 0 --background --pid-file /run/x.pid   detach; prints the address
    seed_registry.py --stop --pid-file /run/x.pid
    seed_registry.py --build-only         just warm the image cache (/var/cache/pyctr-test)

It reuses tests/fixtures (the same images and registry config the tests use), so the demo runs what is tested.
Pull with a pyctr config containing registry_mirrors = ["http://ADDRESS"] and insecure_registries = ["ADDRESS"].
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.fixtures import seed  # noqa: E402  (needs the repo root on sys.path first)
from tests.fixtures.registry import RegistryStartError, start_registry  # noqa: E402


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=5000, help="port on 127.0.0.1 (0 = any free port)")
    parser.add_argument("--workdir", type=Path, help="registry storage and log dir (default: a new temp dir)")
    parser.add_argument("--background", action="store_true", help="leave the registry running and exit")
    parser.add_argument("--pid-file", type=Path, help="write the registry's pid here (with --background)")
    parser.add_argument("--stop", action="store_true", help="stop the registry named by --pid-file")
    parser.add_argument("--build-only", action="store_true", help="only build missing cached layouts")
    parser.add_argument("--images", help="comma-separated seed image names to push (default: all)")
    return parser.parse_args(argv)


def stop(pid_file: Path) -> int:
    """Stop the registry a previous --background run started, if it is still that registry."""
    pid = int(pid_file.read_text().split()[0])
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        print(f"registry pid {pid} is not running")
        pid_file.unlink(missing_ok=True)
        return 0
    if b"docker-registry" not in cmdline:
        print(f"pid {pid} is not a docker-registry; not stopping it", file=sys.stderr)
        return 1
    os.kill(pid, signal.SIGTERM)
    pid_file.unlink(missing_ok=True)
    print(f"stopped registry pid {pid}")
    return 0


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.stop:
        if not args.pid_file:
            print("--stop needs --pid-file", file=sys.stderr)
            return 2
        return stop(args.pid_file)
    names = tuple(args.images.split(",")) if args.images else None
    layouts = tuple({seed._seed(n).layout for n in names}) if names else None
    try:
        seed.ensure_layouts(layouts, log=lambda msg: print(msg, file=sys.stderr))
        if args.build_only:
            print(f"seed image layouts ready in {seed.CACHE_ROOT}")
            return 0
        workdir = args.workdir or Path(tempfile.mkdtemp(prefix="pyctr-seed-registry-"))
        registry = start_registry(workdir, port=args.port or None)
    except (seed.SeedBuildError, RegistryStartError) as e:
        print(f"seed_registry: {e}", file=sys.stderr)
        return 1
    try:
        images = seed.push_images(registry.host, names)
    except seed.SeedBuildError as e:
        registry.stop()
        print(f"seed_registry: {e}", file=sys.stderr)
        return 1
    for name, ref in images.items():
        print(f"# {name}: {ref}", file=sys.stderr)
    print(registry.host, flush=True)
    if args.background:
        if args.pid_file:
            args.pid_file.write_text(f"{registry.pid}\n")
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the registry on SIGTERM too, not only Ctrl-C
    try:
        registry.proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        registry.stop()
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
