"""Property-based tests of layer unpacking: random and mutated tars unpack or are refused, and never escape dest.

Layers come from registries we do not control. Whatever the bytes, `unpack_layer` must either succeed or raise a
PyctrError (UnsafeArchiveError for a hostile or broken archive, StoreError for a full disk), and nothing may be
created or changed outside `dest`: entries aim at a sibling `outside/` dir through `..`, absolute paths, symlinks
and hardlinks, and random byte flips corrupt headers, sizes and checksums.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pyctr.errors import PyctrError
from pyctr.image.unpack import unpack_layer

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TAR = "application/vnd.oci.image.layer.v1.tar"
TAR_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
SECRET = b"host secret\n"

# Names and link targets that try every way out of dest towards the sibling `outside/` dir ({out} = its path).
NAMES = ["a", "d/", "d/f", "link", "link/f", "link/../f", "../outside/f", "../outside", "/abs", "{out}/f", "./.",
         "..", "d/../../outside/g", ".wh.a", "d/.wh..wh..opq", ".wh..wh.plnk", "hl", "x" * 120, "é/ü", "a\\b"]
TARGETS = ["{out}", "{out}/secret", "../outside", "../outside/secret", "/", "..", "a", "d", "link", "link/f",
           "/etc/passwd", "", "d/f"]
KINDS = [tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE, tarfile.CHRTYPE,
         tarfile.BLKTYPE, b"x", b"g", b"L", b"Z"]


@st.composite
def hostile_entries(draw) -> list[tuple[str, bytes, str, int, bytes]]:
    """(name, type, linkname, mode, data) lists built from escape-prone names and targets."""
    return draw(st.lists(st.tuples(
        st.sampled_from(NAMES) | st.text(max_size=12),
        st.sampled_from(KINDS),
        st.sampled_from(TARGETS),
        st.sampled_from([0o644, 0o755, 0o4755, 0o000, 0o7777]),
        st.binary(max_size=40),
    ), min_size=1, max_size=8))


def build_tar(entries: list[tuple[str, bytes, str, int, bytes]], outside: Path, fmt: int) -> bytes:
    """A tar of the entries, `{out}` replaced by the real outside dir (so absolute escapes would really land)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for name, kind, target, mode, data in entries:
            info = tarfile.TarInfo(name.replace("{out}", str(outside)))
            info.type = kind
            info.mode = mode
            info.linkname = target.replace("{out}", str(outside))
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            try:
                tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
            except (ValueError, UnicodeError):
                continue  # a name this format cannot encode: tarfile refuses to write it, nothing to test
    return buf.getvalue()


class Sandbox:
    """tmp/{dest, outside/secret}: unpack into dest, then prove outside and tmp are untouched."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.dest = base / "dest"
        self.outside = base / "outside"
        self.dest.mkdir()
        self.outside.mkdir()
        (self.outside / "secret").write_bytes(SECRET)
        os.chmod(self.outside / "secret", 0o600)

    def unpack(self, data: bytes, media_type: str | None) -> None:
        """Unpack; a refusal must be a one-line PyctrError (anything else propagates and fails the test)."""
        try:
            unpack_layer(io.BytesIO(data), media_type, self.dest, threaded=False)
        except PyctrError as e:
            assert e.message and "\n" not in e.message, repr(e.message)
        self.assert_nothing_escaped()

    def assert_nothing_escaped(self) -> None:
        assert sorted(p.name for p in self.base.iterdir()) == ["dest", "outside"]
        assert sorted(p.name for p in self.outside.iterdir()) == ["secret"]
        secret = self.outside / "secret"
        assert not secret.is_symlink() and secret.read_bytes() == SECRET
        assert (secret.stat().st_mode & 0o7777) == 0o600 and secret.stat().st_nlink == 1


def _in_sandbox(check) -> None:
    with tempfile.TemporaryDirectory(prefix="pyctr-fuzz-tar-") as tmp:
        check(Sandbox(Path(tmp)))


@FUZZ
@given(hostile_entries(), st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT]))
@example([("link", tarfile.SYMTYPE, "{out}", 0o777, b""), ("link/f", tarfile.REGTYPE, "", 0o644, b"pwned")],
         tarfile.PAX_FORMAT)
@example([("hl", tarfile.LNKTYPE, "{out}/secret", 0o644, b""), ("hl", tarfile.REGTYPE, "", 0o644, b"pwned")],
         tarfile.PAX_FORMAT)
@example([("hl", tarfile.LNKTYPE, "../outside/secret", 0o644, b"")], tarfile.GNU_FORMAT)
@example([("../outside/f", tarfile.REGTYPE, "", 0o644, b"pwned")], tarfile.USTAR_FORMAT)
@example([("d", tarfile.SYMTYPE, "../outside", 0o777, b""), ("d/.wh..wh..opq", tarfile.REGTYPE, "", 0, b"")],
         tarfile.PAX_FORMAT)
@example([("link", tarfile.SYMTYPE, "../outside", 0o777, b""), (".wh.link", tarfile.REGTYPE, "", 0, b""),
          ("link/secret", tarfile.REGTYPE, "", 0o644, b"pwned")], tarfile.PAX_FORMAT)
def test_hostile_entries_never_escape(entries, fmt) -> None:
    def check(box: Sandbox) -> None:
        box.unpack(build_tar(entries, box.outside, fmt), TAR)

    _in_sandbox(check)


@FUZZ
@given(hostile_entries(), st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), min_size=1, max_size=6),
       st.booleans())
def test_mutated_tar_bytes_never_escape(entries, flips, compress) -> None:
    """Flip bytes anywhere (headers, checksums, sizes, pax records) of a hostile tar, optionally gzipped."""
    def check(box: Sandbox) -> None:
        data = bytearray(build_tar(entries, box.outside, tarfile.PAX_FORMAT))
        for where, value in flips:
            data[where % len(data)] = value
        blob = gzip.compress(bytes(data), mtime=0) if compress else bytes(data)
        box.unpack(blob, TAR_GZIP if compress else TAR)

    _in_sandbox(check)


@FUZZ
@given(st.binary(max_size=2048), st.sampled_from([None, TAR, TAR_GZIP]))
@example(b"", TAR)
@example(b"\x1f\x8b", TAR_GZIP)
@example(b"\x1f\x8b\x08\x00" + b"\x00" * 20, None)
@example(b"\x28\xb5\x2f\xfd" + b"\x00" * 20, None)
@example(b"\x00" * 1024, TAR)
@example(gzip.compress(b"\x00" * 100)[:-4], TAR_GZIP)
def test_random_bytes_unpack_or_are_refused(data: bytes, media_type: str | None) -> None:
    _in_sandbox(lambda box: box.unpack(data, media_type))


@settings(FUZZ, max_examples=40)
@given(st.integers(513, 4096), st.integers(0, 10))
def test_truncated_gzip_layers_are_refused(cut: int, extra_entries: int) -> None:
    """A blob cut short (a truncated download) must be refused, not unpacked as a smaller layer."""
    def check(box: Sandbox) -> None:
        entries = [(f"f{i}", tarfile.REGTYPE, "", 0o644, os.urandom(300)) for i in range(extra_entries + 3)]
        blob = gzip.compress(build_tar(entries, box.outside, tarfile.PAX_FORMAT), mtime=0)
        truncated = blob[: min(cut, len(blob) - 1)]
        try:
            unpack_layer(io.BytesIO(truncated), TAR_GZIP, box.dest, threaded=False)
        except PyctrError as e:
            assert "\n" not in e.message
        else:
            raise AssertionError(f"a gzip layer cut at {len(truncated)} of {len(blob)} bytes was accepted")
        box.assert_nothing_escaped()

    _in_sandbox(check)
