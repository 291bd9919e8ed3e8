"""Attack review of issue 13's fixes: each test is a real attack, run as root; it passes when the defence holds."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


@pytest.fixture
def host_block_device(tmp_path: Path) -> Iterator[tuple[int, int, bytes]]:
    """A loop device over a host file holding a known secret: (major, minor, secret)."""
    secret = b"HOST-DISK-SECRET-" + os.urandom(8).hex().encode()
    backing = tmp_path / "disk.img"
    backing.write_bytes(secret + b"\0" * (1024 * 1024 - len(secret)))
    dev = subprocess.run(["losetup", "--find", "--show", str(backing)], capture_output=True, text=True,
                         check=True).stdout.strip()
    try:
        st = os.stat(dev)
        yield os.major(st.st_rdev), os.minor(st.st_rdev), secret
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True)


def _build(pyctr, context: Path, dockerfile: str, *extra: str) -> subprocess.CompletedProcess:
    (context / "Dockerfile").write_text(dockerfile)
    return pyctr("build", "--no-cache", *extra, "-t", "attack-review", str(context),
                 timeout=120)


def test_run_mount_from_a_stage_never_reads_a_host_device(pyctr, tmp_path, host_block_device):
    """A stage makes a block device node for a host disk (its RUN has CAP_MKNOD); `RUN --mount=from=stage`
    (bind or cache seed) must not copy the disk's bytes on the host into the mount (it did: shutil.copytree)."""
    major, minor, secret = host_block_device
    context = tmp_path / "ctx"
    context.mkdir()
    stage = f"FROM busybox AS s\nRUN mkdir /d && mknod /d/blk b {major} {minor} && mknod /blk b {major} {minor}\n"
    proc = _build(pyctr, context,
                  stage + "FROM busybox\n"
                  "RUN --mount=from=s,source=/d,target=/x head -c 64 /x/blk || true\n"
                  "RUN --mount=type=cache,id=atk-dev,from=s,source=/d,target=/x head -c 64 /x/blk || true\n")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert secret.decode() not in proc.stdout + proc.stderr
    single = _build(pyctr, context, stage + "FROM busybox\nRUN --mount=from=s,source=/blk,target=/x head -c 64 /x\n")
    assert single.returncode != 0 and secret.decode() not in single.stdout + single.stderr
    assert "not a regular file or directory" in single.stderr.strip().splitlines()[-1]
