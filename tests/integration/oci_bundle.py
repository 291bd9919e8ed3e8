"""pyctr-runtime as the tests drive it (one home: test_oci_runtime.py and test_attack_review.py use it):
`pyctr-runtime --root <tmp> ...` with the container's stdio in files, and a bundle from runc's starter spec."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.integration.conftest import REPO_ROOT

RUNTIME = REPO_ROOT / ".venv" / "bin" / "pyctr-runtime"


class Runtime:
    """`pyctr-runtime --root <tmp> ...`, the container's stdio in files (never the test's pipes)."""

    def __init__(self, base: Path) -> None:
        self.root = base / "state"
        self.out = base / "out.txt"
        self.err = base / "err.txt"

    def __call__(self, *args: str, check: bool = True, timeout: float = 30,
                 **kwargs) -> subprocess.CompletedProcess:
        with open(self.out, "ab") as out, open(self.err, "ab") as err:
            done = subprocess.run([str(RUNTIME), "--root", str(self.root), *args], stdin=subprocess.DEVNULL,
                                  stdout=out, stderr=err, timeout=timeout, **kwargs)
        if check:
            assert done.returncode == 0, f"{args}: exit {done.returncode}: {self.err.read_text()}"
        return done

    def query(self, *args: str) -> subprocess.CompletedProcess:
        """A verb whose own output we read (state, list, ps): nothing of the container is attached to it."""
        return subprocess.run([str(RUNTIME), "--root", str(self.root), *args], capture_output=True, text=True,
                              timeout=30)

    def state(self, container_id: str) -> dict:
        done = self.query("state", container_id)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


def make_bundle(base: Path, rootfs: Path, args: list[str], **changes) -> Path:
    """A bundle whose config is runc's starter spec, not a terminal, running `args`, then `changes` applied
    (dotted keys: "process.terminal")."""
    bundle = base / "bundle"
    bundle.mkdir(exist_ok=True)
    (bundle / "rootfs").symlink_to(rootfs)
    done = subprocess.run([str(RUNTIME), "spec", "--bundle", str(bundle)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["terminal"] = False
    config["process"]["args"] = args
    config["root"]["readonly"] = False
    for dotted, value in changes.items():
        target = config
        *path, last = dotted.split(".")
        for key in path:
            target = target.setdefault(key, {})
        target[last] = value
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle
