"""The pull's fast path: fewer syscalls per entry, layers staged whole and synced once, spread block groups.

Each shortcut must give the same tree as the long way: these tests unpack for real and compare modes and
owners, and check the order of sync and publish that crash safety rests on.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import io
import os
import stat
import struct
import subprocess
import sys
import tarfile

import pytest

from pyctr.config import Paths
from pyctr.errors import DigestMismatch
from pyctr.image import layers as layers_module
from pyctr.image.layout import FS_IOC_GETFLAGS, FS_TOPDIR_FL, UNPACK_STAGING, spread_subdirectories
from pyctr.image.store import ImageStore
from pyctr.image.unpack import creation_mode, needs_owner_change, process_umask, unpack_layer

GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def tar_of(entries: list[tuple[str, int, int, int]]) -> bytes:
    """A tar of regular files (name, mode, uid, gid), each holding its own name."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, mode, uid, gid in entries:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid, info.mtime = len(name), mode, uid, gid, 1_600_000_000
            tar.addfile(info, io.BytesIO(name.encode()))
    return raw.getvalue()


# ---------------------------------------------------------------- deciding


@pytest.mark.parametrize(("mode", "umask", "expected"), [
    (0o644, 0o022, 0o644),
    (0o755, 0o022, 0o755),
    (0o000, 0o022, 0o000),
    (0o666, 0o022, None),  # the umask would take group/other write away: fchmod after
    (0o644, 0o077, None),
    (0o4755, 0o000, None),  # setuid is set after the owner (chown clears it)
    (0o2755, 0o000, None),
    (0o1777, 0o000, None),
    (0o644, None, None),  # umask unknown: the long way
])
def test_creation_mode_only_when_open_gives_the_exact_mode(mode, umask, expected):
    assert creation_mode(mode, umask) == expected


def test_owner_change_skipped_only_when_the_creator_is_known_and_equal():
    assert not needs_owner_change(0, 0, (0, 0))
    assert needs_owner_change(0, 1, (0, 0))
    assert needs_owner_change(1000, 0, (0, 0))
    assert needs_owner_change(0, 0, None)


def test_process_umask_reads_the_umask_without_changing_it():
    code = ("import os; os.umask(0o027); from pyctr.image.unpack import process_umask; "
            "u = process_umask(); print(oct(u), oct(os.umask(0o027)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["0o27", "0o27"]
    current = os.umask(0o022)
    os.umask(current)
    assert process_umask() == current


# ---------------------------------------------------------------- doing


def test_modes_and_owners_come_out_exact_under_any_umask(tmp_path):
    owner = os.getuid(), os.getgid()
    other = (1000, 1001) if os.geteuid() == 0 else owner
    entries = [("plain", 0o644, *owner), ("exec", 0o755, *owner), ("grouped", 0o664, *owner),
               ("none", 0o000, *owner), ("setuid", 0o4755, *other), ("sticky", 0o1644, *owner),
               ("given", 0o640, *other)]
    data = tar_of(entries)
    for umask in (0o022, 0o077, 0o000):
        dest = tmp_path / f"u{umask:o}"
        dest.mkdir()
        old = os.umask(umask)
        try:
            unpack_layer(io.BytesIO(data), None, dest)
        finally:
            os.umask(old)
        for name, mode, uid, gid in entries:
            st = os.lstat(dest / name)
            assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (mode, uid, gid), (name, oct(umask))
            assert st.st_mtime == 1_600_000_000


@pytest.mark.skipif(os.geteuid() != 0, reason="only root creates files owned by someone else")
def test_a_setgid_layer_root_is_not_trusted_for_owners(tmp_path):
    """New files inherit a setgid directory's group: then every file is chowned to the header's owner."""
    dest = tmp_path / "sgid"
    dest.mkdir()
    os.chown(dest, 0, 4242)
    os.chmod(dest, 0o2755)
    unpack_layer(io.BytesIO(tar_of([("f", 0o644, 0, 0)])), None, dest)
    assert os.lstat(dest / "f").st_gid == 0


def test_spread_subdirectories_sets_the_topdir_flag_or_says_it_cannot(tmp_path):
    marked = spread_subdirectories(tmp_path)
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        flags = struct.unpack("i", fcntl.ioctl(fd, FS_IOC_GETFLAGS, bytes(8))[:4])[0]
    except OSError:
        flags = 0
    finally:
        os.close(fd)
    assert bool(flags & FS_TOPDIR_FL) == marked
    assert spread_subdirectories(tmp_path) == marked  # idempotent
    assert not spread_subdirectories(tmp_path / "missing")


@pytest.fixture
def store(tmp_path):
    s = ImageStore(Paths(tmp_path / "root"))
    s.ensure()
    return s


def stored_layer(store, files: dict[str, bytes]) -> tuple[dict, str]:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid = len(data), 0o644, os.getuid(), os.getgid()
            tar.addfile(info, io.BytesIO(data))
    blob = gzip.compress(raw.getvalue(), mtime=0)
    digest = store.put_blob_bytes(blob)
    return ({"mediaType": GZIP_LAYER, "digest": digest, "size": len(blob)},
            "sha256:" + hashlib.sha256(raw.getvalue()).hexdigest())


def staging_dirs(store) -> list[str]:
    return sorted(p.name for p in store.paths.tmp.iterdir() if p.name.startswith(UNPACK_STAGING + "-"))


def test_layer_is_synced_whole_before_it_is_published(store, monkeypatch):
    """At the one sync, the staged layer has its files and layer.json and layers/ does not have it yet."""
    desc, diff_id = stored_layer(store, {"etc/hello": b"hi"})
    seen = []

    def watching_sync() -> None:
        (staged,) = staging_dirs(store)
        base = store.paths.tmp / staged
        seen.append(((base / "diff" / "etc" / "hello").read_bytes(), (base / "layer.json").is_file(),
                     store.layer_path(diff_id).exists()))

    monkeypatch.setattr(layers_module, "sync_layer", watching_sync)
    layer = store.unpack_blob_layer(desc, diff_id, diff_id, None)
    assert seen == [(b"hi", True, False)]
    assert (layer.diff_dir / "etc" / "hello").read_bytes() == b"hi"
    assert store.get_layer(diff_id) is not None
    assert staging_dirs(store) == []


def test_a_refused_layer_leaves_no_staging_and_no_layer(store):
    desc, _ = stored_layer(store, {"f": b"1"})
    bogus = "sha256:" + "0" * 64
    with pytest.raises(DigestMismatch):
        store.unpack_blob_layer(desc, bogus, bogus, None)
    assert staging_dirs(store) == []
    assert not store.layer_path(bogus).exists()


def test_staging_of_a_dead_process_is_garbage(store):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    leftover = store.paths.tmp / f"{UNPACK_STAGING}-{dead.pid}-1"
    (leftover / "diff" / "usr").mkdir(parents=True)
    os.chmod(leftover / "diff" / "usr", 0o555)
    mine = store.layout.unpack_staging()
    store.clean_tmp()
    assert not leftover.exists()
    assert mine.is_dir()  # this process is alive: its staging stays
