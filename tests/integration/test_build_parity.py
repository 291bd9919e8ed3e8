"""`pyctr build` side by side with Docker 20.10's legacy builder (issue 19 items 7 and 11), for real as root.

Docker's values are recorded in each test: `--label`, `build -` (a Dockerfile or a tar context on stdin),
COPY --from keeping the source stage's owners and modes, the "Sending build context" line, history after
SHELL, EXPOSE sorted, ArgsEscaped.
"""

from __future__ import annotations

import gzip
import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from pyctr.config import Paths
from pyctr.image.store import ImageStore
from tests.integration.helpers import cve_2025_4517_members, host_files

pytestmark = pytest.mark.integration

PYCTR_BIN = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "pyctr"


def image(pyctr, name: str):
    return ImageStore(Paths(pyctr.root)).resolve(name)


def build_stdin(pyctr, data: bytes, *args: str) -> subprocess.CompletedProcess:
    """`pyctr build ... -` with binary stdin (the runner fixture only takes text)."""
    return subprocess.run([str(PYCTR_BIN), "build", *args, "-"], input=data, capture_output=True,
                          env=pyctr.env, timeout=240)


def tar_of(files: dict[str, bytes], compress: bool = False) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue()) if compress else buf.getvalue()


def test_label_flag_sending_line_shell_history_expose(pyctr, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    dockerfile = 'FROM busybox\nSHELL ["/bin/sh", "-ec"]\nEXPOSE 8080 443\nCMD run\n'
    (ctx / "Dockerfile").write_text(dockerfile)
    result = pyctr("build", "--label", "b=$HOME", "--label", "a=1", "-t", "parity-label", str(ctx), check=True,
                   timeout=240)
    lines = result.stdout.splitlines()
    # Docker 20.10 (legacy builder), the same context and flags:
    #   Sending build context to Docker daemon  2.048kB
    #   Step 1/6 : FROM busybox ... Step 5/6 : LABEL a=1 ... Step 6/6 : LABEL b=$HOME
    assert lines[0] == "Sending build context to Docker daemon  2.048kB"
    assert "Step 5/6 : LABEL a=1" in lines and "Step 6/6 : LABEL b=$HOME" in lines
    config = image(pyctr, "parity-label").config
    assert config["config"]["Labels"] == {"a": "1", "b": "$HOME"}
    assert list(config["config"]["ExposedPorts"]) == ["443/tcp", "8080/tcp"]
    assert "ArgsEscaped" not in config["config"]
    history = [h["created_by"] for h in config["history"][-5:]]
    assert history == ["/bin/sh -ec #(nop)  SHELL [/bin/sh -ec]",
                       "/bin/sh -ec #(nop)  EXPOSE 443/tcp 8080/tcp",
                       '/bin/sh -ec #(nop)  CMD ["/bin/sh" "-ec" "run"]',
                       "/bin/sh -ec #(nop)  LABEL a=1",
                       "/bin/sh -ec #(nop)  LABEL b=$HOME"]


def test_dockerfile_on_stdin_has_an_empty_context(pyctr):
    result = build_stdin(pyctr, b"FROM busybox\nENV FROM_STDIN=1\n", "-t", "parity-stdin")
    assert result.returncode == 0, result.stderr
    # Docker: the CLI puts the Dockerfile in a context of its own: 512 + 512 + 1024 bytes.
    assert result.stdout.decode().splitlines()[0] == "Sending build context to Docker daemon  2.048kB"
    assert "FROM_STDIN=1" in image(pyctr, "parity-stdin").config["config"]["Env"]
    failed = build_stdin(pyctr, b"FROM busybox\nCOPY anything /\n")
    assert failed.returncode != 0 and b"anything" in failed.stderr


def test_tar_context_on_stdin_compressed_with_a_dockerfile_inside(pyctr):
    data = tar_of({"sub/Dockerfile": b"FROM busybox\nCOPY app.txt /app.txt\n", "app.txt": b"from the tar\n"},
                  compress=True)
    result = build_stdin(pyctr, data, "-f", "sub/Dockerfile", "-t", "parity-tarctx")
    assert result.returncode == 0, result.stderr
    first = result.stdout.decode().splitlines()[0]
    # Docker counts the bytes it sends: the compressed stream as read from stdin.
    assert first == f"Sending build context to Docker daemon  {_human(len(data))}"
    assert (image(pyctr, "parity-tarctx").layer_dirs[-1] / "app.txt").read_bytes() == b"from the tar\n"


def _human(size: int) -> str:
    """go-units HumanSize, written out for the sizes these tests produce (< 1 MB)."""
    return f"{size}B" if size < 1000 else f"{size / 1000:.4g}kB"


def test_hostile_tar_context_on_stdin_is_refused(pyctr, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in cve_2025_4517_members(outside):
            tar.addfile(info, data)
        info = tarfile.TarInfo("Dockerfile")
        info.size = 13
        tar.addfile(info, io.BytesIO(b"FROM busybox\n"))
    result = build_stdin(pyctr, buf.getvalue())
    assert host_files(outside) == {}
    err = result.stderr.decode()
    assert result.returncode == 1  # docker build's failures exit 1 and len(err.strip().splitlines()) == 1, err
    assert "build context from stdin" in err


def test_copy_from_keeps_the_source_stages_owners_and_modes(pyctr, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM busybox AS builder\n"
        "RUN mkdir -p /out/d && echo x > /out/d/f && chown -R 65534:65534 /out/d && chmod 4750 /out/d/f\n"
        "FROM busybox\nCOPY --from=builder /out/d /copied/\nCOPY --from=builder --chown=7:8 /out/d /chowned/\n")
    pyctr("build", "-t", "parity-copyfrom", str(ctx), check=True, timeout=240)
    layers = image(pyctr, "parity-copyfrom").layer_dirs
    # Docker 20.10: `stat -c %u:%g:%a /copied/f` -> 65534:65534:4750; with --chown=7:8 -> 7:8:4750.
    st = (layers[-2] / "copied" / "f").stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (65534, 65534, 0o4750)
    st = (layers[-1] / "chowned" / "f").stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (7, 8, 0o4750)
