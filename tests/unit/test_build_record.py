"""The context record (build/cache.py): a COPY from the context is decided cached or not from the sources
themselves, reusing content hashes while a file's identity (size, mtime, inode, ctime) is unchanged."""

import os
import time

import pytest

from pyctr.build import cache
from pyctr.build.context import BuildContext
from pyctr.build.staging import SourceItem


@pytest.fixture
def context(tmp_path):
    root = tmp_path / "ctx"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("alpha\n")
    (root / "sub" / "b.txt").write_text("beta\n")
    os.symlink("a.txt", root / "link")
    return root


def record(root, hashes_dir):
    ctx = BuildContext.open(root, None)
    entries = ctx.files_under(".")
    items = [SourceItem(name="ctx", host=root, kind="dir", entries=entries),
             SourceItem(name="inline", kind="content", content=b"heredoc")]
    hashes = cache.ContentHashes(hashes_dir, root)
    digest = cache.sources_digest(items, hashes, {"epoch": 0})
    hashes.save()
    return digest


def test_record_follows_content_mode_and_link_targets_not_mtimes(context, tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "RACY_SECONDS", -1.0)  # remembered at once: the identity check is what is tested
    hashes = tmp_path / "bc"
    first = record(context, hashes)
    assert record(context, hashes) == first
    os.utime(context / "a.txt", (1, 1))
    assert record(context, hashes) == first  # mtimes are not part of the record, as in Docker's cache
    st = os.stat(context / "a.txt")
    (context / "a.txt").write_text("ALPHA\n")  # same size, and the old mtime put back
    os.utime(context / "a.txt", ns=(st.st_atime_ns, st.st_mtime_ns))
    changed = record(context, hashes)
    assert changed != first
    os.chmod(context / "sub" / "b.txt", 0o600)
    assert record(context, hashes) != changed
    os.unlink(context / "link")
    os.symlink("sub/b.txt", context / "link")
    assert record(context, hashes) not in (first, changed)


def test_hashes_are_reused_while_the_identity_holds(context, tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "RACY_SECONDS", -1.0)
    calls = []
    real = cache.file_digest
    monkeypatch.setattr(cache, "file_digest", lambda p: calls.append(p) or real(p))
    record(context, tmp_path / "bc")
    assert len(calls) == 2
    calls.clear()
    record(context, tmp_path / "bc")  # a fresh ContentHashes: read back from disk
    assert calls == []
    (context / "sub" / "b.txt").write_text("changed\n")
    record(context, tmp_path / "bc")
    assert [p.name for p in calls] == ["b.txt"]


def test_files_changed_just_now_are_not_remembered(context, tmp_path, monkeypatch):
    """A file written in the same clock tick as its hash could change again unseen (git's "racy" files)."""
    calls = []
    real = cache.file_digest
    monkeypatch.setattr(cache, "file_digest", lambda p: calls.append(p) or real(p))
    record(context, tmp_path / "bc")
    record(context, tmp_path / "bc")
    assert len(calls) == 4


def test_a_damaged_hash_file_only_costs_rehashing(context, tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "RACY_SECONDS", -1.0)
    first = record(context, tmp_path / "bc")
    [saved] = (tmp_path / "bc" / "content").iterdir()
    saved.write_text('{"v": 1, "files": {"' + str(context / "a.txt") + '": [[0, 0, 0, 0, 0], "bogus"]}}')
    assert record(context, tmp_path / "bc") == first
    saved.write_text("{torn")
    assert record(context, tmp_path / "bc") == first


def test_identity_covers_replacement_by_another_file(context):
    before = cache.file_identity(os.stat(context / "a.txt"))
    time.sleep(0.01)
    os.rename(context / "sub" / "b.txt", context / "a.txt")
    assert cache.file_identity(os.stat(context / "a.txt")) != before
