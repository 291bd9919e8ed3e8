"""`pyctr build` must never write outside the image (ADD of hostile archives) nor hold an ADD <url> in memory.

Issue 13 items 1 and 4. The archives are real attack tars, built for real as root:
the CVE-2025-4517 shape (a symlink chain whose expansion overflows PATH_MAX, so
`os.path.realpath` - and with it tarfile's `data` filter on Python 3.11.7 - thinks
a link pointing out is inside), `../` names, absolute names, a symlink then a file
written through it, a hardlink to a host file. Docker keeps all of them inside the
image or fails the build; so must pyctr, with a one-line error.
"""

from __future__ import annotations

import email.utils
import http.server
import io
import os
import subprocess
import tarfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pyctr.config import Paths
from pyctr.image.store import ImageStore
from tests.integration.helpers import cve_2025_4517_members, host_files, tar_member

pytestmark = pytest.mark.integration

PYCTR_BIN = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "pyctr"


def hostile_archives(outside: Path) -> dict[str, list[tuple]]:
    up = "../" * 30
    return {
        "cve-2025-4517": cve_2025_4517_members(outside),
        "dotdot": [tar_member(f"{up}{str(outside).lstrip('/')}/dotdot", data=b"x\n")],
        "symlink-then-file": [tar_member("link", tarfile.SYMTYPE, linkname=str(outside)),
                              tar_member("link/through", data=b"x\n")],
        "relative-symlink-then-file": [tar_member("link", tarfile.SYMTYPE, linkname=up + str(outside).lstrip("/")),
                                       tar_member("link/through", data=b"x\n")],
        "hardlink-out": [tar_member("hard", tarfile.LNKTYPE, linkname=str(outside / "victim")),
                         tar_member("hard", data=b"overwritten\n")],
        "hardlink-dotdot": [tar_member("hard", tarfile.LNKTYPE, linkname=up + str(outside / "victim").lstrip("/"))],
    }


def write_tar(path: Path, members: list[tuple], mode: str = "w") -> None:
    with tarfile.open(path, mode, format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, data)


@pytest.mark.parametrize("attack", ["cve-2025-4517", "dotdot", "symlink-then-file", "relative-symlink-then-file",
                                    "hardlink-out", "hardlink-dotdot"])
def test_add_of_a_hostile_archive_never_writes_on_the_host(pyctr, tmp_path, attack):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_bytes(b"host file\n")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    write_tar(ctx / "evil.tar", hostile_archives(outside)[attack])
    (ctx / "Dockerfile").write_text("FROM busybox\nADD evil.tar /x/\n")
    result = pyctr("build", "-t", f"escape-{attack}", str(ctx), timeout=240)
    assert host_files(outside) == {"victim": b"host file\n"}, result.stdout + result.stderr
    # Docker fails these builds (breakout / link not found) or keeps the entry inside; pyctr refuses them.
    assert result.returncode == 1  # docker build's failures exit 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "failed to extract evil.tar" in result.stderr


def test_add_keeps_absolute_names_inside_with_their_owners(pyctr, tmp_path):
    """Docker's untar: `/abs` lands under the destination, owners are kept, a .gz that is no tar is a file."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    owned, _ = tar_member("owned", data=b"n\n")
    owned.uid = owned.gid = 65534
    write_tar(ctx / "ok.tar.xz", [tar_member("/abs/file", data=b"abs\n"),
                                  (owned, io.BytesIO(b"n\n"))], mode="w:xz")
    (ctx / "notes.txt.gz").write_bytes(b"\x1f\x8b" + b"not a tar really")
    (ctx / "Dockerfile").write_text("FROM busybox\nADD ok.tar.xz notes.txt.gz /x/\n")
    pyctr("build", "-t", "escape-ok", str(ctx), check=True, timeout=240)
    layer = ImageStore(Paths(pyctr.root)).resolve("escape-ok").layer_dirs[-1]
    assert (layer / "x" / "abs" / "file").read_bytes() == b"abs\n"
    st = (layer / "x" / "owned").stat()
    assert (st.st_uid, st.st_gid) == (65534, 65534)
    assert (layer / "x" / "notes.txt.gz").read_bytes().startswith(b"\x1f\x8b")  # not a tar: copied as is


# --- ADD <url> ------------------------------------------------------------------------------------

BIG = 300 << 20
LAST_MODIFIED = 1_600_000_000


def _serve(handle: Callable[[http.server.BaseHTTPRequestHandler], None]) -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            handle(self)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _big_body(req: http.server.BaseHTTPRequestHandler) -> None:
    """300 MiB generated on the fly (nothing stored), or redirects and lies about the length."""
    if req.path.startswith("/redirect-"):
        req.send_response(302)
        req.send_header("Location", {"/redirect-file": "file:///etc/passwd",
                                     "/redirect-ftp": "ftp://127.0.0.1:1/x"}[req.path])
        req.send_header("Content-Length", "0")
        req.end_headers()
        return
    if req.path == "/huge":
        req.send_response(200)
        req.send_header("Content-Length", str(64 << 30))
        req.end_headers()
        req.wfile.write(b"x" * 4096)
        return
    chunk = bytes(range(256)) * 4096
    req.send_response(200)
    req.send_header("Content-Length", str(BIG))
    req.send_header("Last-Modified", email.utils.formatdate(LAST_MODIFIED, usegmt=True))
    req.end_headers()
    for _ in range(BIG // len(chunk)):
        req.wfile.write(chunk)


@pytest.fixture
def big_server() -> Iterator[str]:
    yield from _serve(_big_body)


def _peak_rss_kib(argv: list[str], env: dict[str, str]) -> tuple[int, int, str]:
    """Run a command and return (exit code, peak RSS of it and its waited children in KiB, stderr)."""
    with open(os.devnull, "wb") as devnull, subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                                             stdout=devnull, stderr=subprocess.PIPE) as proc:
        assert proc.stderr is not None
        err = proc.stderr.read().decode()
        _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        return proc.returncode, usage.ru_maxrss, err


def test_add_url_streams_a_large_body_to_disk(pyctr, tmp_path, big_server):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM busybox\nADD {big_server}/big.bin /dl/\n")
    # In-process (no warm server) so the peak RSS measured is the build's own.
    env = {**pyctr.env, "PYCTR_SERVER": "0"}
    code, peak_kib, err = _peak_rss_kib([str(PYCTR_BIN), "build", "-t", "escape-big", str(ctx)], env)
    assert code == 0, err
    print(f"peak RSS of `pyctr build` with a {BIG >> 20} MiB ADD <url>: {peak_kib >> 10} MiB")
    assert peak_kib < 160 << 10  # main held the body: > 300 MiB
    layer = ImageStore(Paths(pyctr.root)).resolve("escape-big").layer_dirs[-1]
    fetched = layer / "dl" / "big.bin"
    st = fetched.stat()
    assert st.st_size == BIG and st.st_mode & 0o777 == 0o600
    assert int(st.st_mtime) == LAST_MODIFIED  # Docker: Last-Modified becomes the mtime
    with open(fetched, "rb") as f:
        assert f.read(512) == bytes(range(256)) * 2


@pytest.mark.parametrize(("path", "says"), [
    ("/huge", "more than ADD takes"),
    ("/redirect-file", "redirect to a file:// URL refused"),
    ("/redirect-ftp", "redirect to a ftp:// URL refused"),
])
def test_add_url_refusals_are_one_line(pyctr, tmp_path, big_server, path, says):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM busybox\nADD {big_server}{path} /dl/x\n")
    result = pyctr("build", str(ctx), timeout=120)
    assert result.returncode == 1  # docker build's failures exit 1, result.stdout + result.stderr
    assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "internal error" not in result.stderr
