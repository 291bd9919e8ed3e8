"""Archives a build unpacks (ADD, a context on stdin) and ADD <url> bodies, without root or an image store."""

from __future__ import annotations

import bz2
import http.server
import io
import lzma
import os
import tarfile
import threading
from pathlib import Path

import pytest

from pyctr.build.staging import fetch_url, is_archive
from pyctr.errors import BuildError, UnsafeArchiveError
from pyctr.image.unpack import unpack_archive


def tar_bytes(*members: tuple[str, bytes | None, str]) -> bytes:
    """(name, data or None for a dir/symlink, symlink target or "")."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, link in members:
            info = tarfile.TarInfo(name)
            if link:
                info.type, info.linkname = tarfile.SYMTYPE, link
            elif data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o700
            else:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


@pytest.mark.parametrize("compress", [lambda b: b, bz2.compress, lzma.compress], ids=["plain", "bzip2", "xz"])
def test_unpack_archive_merges_with_docker_untar_rules(tmp_path, compress):
    dest = tmp_path / "dest"
    dest.mkdir(mode=0o755)
    (dest / "old").write_text("kept\n")
    unpack_archive(io.BytesIO(compress(tar_bytes(("./", None, ""), (".wh.old", b"plain\n", ""),
                                                 ("d/f", b"f\n", "")))), dest)
    assert (dest / "old").read_text() == "kept\n"  # merged into, not replaced; `.wh.` is no whiteout here
    assert (dest / ".wh.old").read_text() == "plain\n"
    assert (dest / "d" / "f").read_text() == "f\n"
    assert dest.stat().st_mode & 0o777 == 0o755  # the archive's `./` leaves the destination alone


def test_unpack_archive_refuses_writing_through_a_symlink(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UnsafeArchiveError, match="is a symlink"):
        unpack_archive(io.BytesIO(tar_bytes(("l", None, "../outside"), ("l/x", b"x", ""))), dest)
    assert list(outside.iterdir()) == []


def test_unpack_archive_truncated_compression_is_one_error(tmp_path):
    with pytest.raises(UnsafeArchiveError, match="cannot read the archive"):
        unpack_archive(io.BytesIO(bz2.compress(tar_bytes(("f", b"x" * 5000, "")))[:40]), tmp_path)


def test_is_archive_is_dockers_is_archive_path(tmp_path):
    """Docker's IsArchivePath: decompress, then the first tar header must parse."""
    import gzip

    cases = {
        "a.tar": tar_bytes(("f", b"x", "")),
        "a.tar.gz": gzip.compress(tar_bytes(("f", b"x", ""))),
        "a.tar.xz": lzma.compress(tar_bytes(("f", b"x", ""))),
        "notes.gz": gzip.compress(b"just text\n" * 100),
        "text": b"hello\n" * 200,
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    assert {n for n in cases if is_archive(tmp_path / n)} == {"a.tar", "a.tar.gz", "a.tar.xz"}


class _Chunked(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for _ in range(64):
            self.wfile.write(b"1000\r\n" + b"z" * 4096 + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def chunked_url():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Chunked)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/file.bin"
    server.shutdown()
    server.server_close()


def test_fetch_url_streams_to_a_file_in_the_given_dir(tmp_path: Path, chunked_url):
    item = fetch_url(chunked_url, tmp_path)
    assert item.kind == "download" and item.host is not None and item.host.parent == tmp_path
    assert item.host.stat().st_size == 64 * 4096 and item.name == "file.bin" and item.mode == 0o600


def test_fetch_url_stops_a_body_beyond_the_bound_without_a_length(tmp_path: Path, chunked_url):
    with pytest.raises(BuildError, match="more than ADD takes"):
        fetch_url(chunked_url, tmp_path, max_bytes=10_000)
    assert all(p.stat().st_size <= 10_000 for p in tmp_path.iterdir())
    assert os.path.isdir(tmp_path)
