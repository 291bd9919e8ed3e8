"""`pyctr cp` decisions: argument splitting, Docker's copy table, ownership, tar member paths.

Plus the fd-based copy engine against temp dirs (no root, no container): a host
directory stands in for a container root, with hostile symlinks planted in it.
"""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from pyctr.errors import UnsafeArchiveError, UsageError
from pyctr.runtime.copy import (
    ContainerFilesystem,
    CopyOptions,
    CopyRequest,
    CopyTarget,
    Entry,
    Filesystem,
    copy_between,
    extract_tar,
    harden_for_host,
    owner_for,
    parse_cp_args,
    plan_copy,
    split_cp_arg,
    stream_out,
    tar_member_parts,
)


@pytest.mark.parametrize(("arg", "expected"), [
    ("c1:/etc/passwd", ("c1", "/etc/passwd")),
    ("c1:etc", ("c1", "etc")),
    ("/abs:path", (None, "/abs:path")),
    ("./file:name.txt", (None, "./file:name.txt")),
    ("plain", (None, "plain")),
    ("c1:", ("c1", "")),
])
def test_split_cp_arg_is_dockers(arg, expected):
    assert split_cp_arg(arg) == expected


def test_parse_cp_args_sides_and_errors():
    assert parse_cp_args("c:etc/hosts", "/tmp/x") == CopyRequest("c", False, "/etc/hosts", "/tmp/x")
    assert parse_cp_args("f.txt", "c:/tmp/") == CopyRequest("c", True, "f.txt", "/tmp/")
    assert parse_cp_args("-", "c:/tmp") == CopyRequest("c", True, "-", "/tmp")
    assert parse_cp_args("c:/etc", "-") == CopyRequest("c", False, "/etc", "-")
    with pytest.raises(UsageError, match="copying between containers is not supported"):
        parse_cp_args("a:/x", "b:/y")
    with pytest.raises(UsageError, match="must specify at least one container source"):
        parse_cp_args("/x", "/y")


@pytest.mark.parametrize(("src", "src_dir", "dst", "exists", "dst_dir", "expected"), [
    # SRC is a file
    ("/a/f", False, "/d/new", False, False, CopyTarget("/d", "new")),
    ("/a/f", False, "/d/file", True, False, CopyTarget("/d", "file")),
    ("/a/f", False, "/d/dir", True, True, CopyTarget("/d/dir", "f")),
    ("/a/f", False, "/d/dir/", True, True, CopyTarget("/d/dir", "f")),
    ("f", False, "out", False, False, CopyTarget(".", "out")),
    # SRC is a directory
    ("/a/dir", True, "/d/new", False, False, CopyTarget("/d", "new")),
    ("/a/dir", True, "/d/new/", False, False, CopyTarget("/d", "new")),
    ("/a/dir", True, "/d/dir", True, True, CopyTarget("/d/dir", "dir")),
    ("/a/dir/", True, "/d/dir", True, True, CopyTarget("/d/dir", "dir")),
    ("/a/dir/.", True, "/d/dir", True, True, CopyTarget("/d/dir", None)),
    ("/a/dir/.", True, "/d/new", False, False, CopyTarget("/d", "new")),
    ("/", True, "/d/dir", True, True, CopyTarget("/d/dir", None)),
])
def test_plan_copy_follows_dockers_table(src, src_dir, dst, exists, dst_dir, expected):
    assert plan_copy(src, src_dir, dst, exists, dst_dir) == expected


@pytest.mark.parametrize(("src", "src_dir", "dst", "exists", "dst_dir", "message"), [
    ("/a/f", False, "/d/missing/", False, False, "must be a directory"),
    ("/a/f", False, "/d/file/", True, False, "not a directory"),
    ("/a/f/", False, "/d/x", False, False, "not a directory"),
    ("/a/f/.", False, "/d/x", False, False, "not a directory"),
    ("/a/dir", True, "/d/file", True, False, "cannot copy directory"),
])
def test_plan_copy_error_cases(src, src_dir, dst, exists, dst_dir, message):
    with pytest.raises(UsageError, match=message):
        plan_copy(src, src_dir, dst, exists, dst_dir)


def test_owner_rules():
    assert owner_for(True, False, (1000, 1000), (500, 500)) == (0, 0)
    assert owner_for(False, False, (1000, 1000), (500, 500)) == (500, 500)
    assert owner_for(True, True, (1000, 1001), (500, 500)) == (1000, 1001)
    assert owner_for(False, True, (1000, 1001), (500, 500)) == (1000, 1001)


def test_container_content_is_defused_on_the_host():
    device = Entry(("sda",), "blk", 0o666, 1000, 1000, 0, device=os.makedev(8, 0))
    assert harden_for_host(device, archive=True) is None
    setuid = Entry(("su",), "file", 0o4755, 0, 0, 0)
    assert harden_for_host(setuid, archive=False).mode == 0o755
    assert harden_for_host(Entry(("su",), "file", 0o6755, 0, 0, 0), archive=True).mode == 0o6755


def test_tar_member_parts():
    assert tar_member_parts("./a/b/") == ("a", "b")
    assert tar_member_parts("/abs/x") == ("abs", "x")
    assert tar_member_parts(".") == ()
    for bad in ("../x", "a/../../x", "a/.."):
        with pytest.raises(UnsafeArchiveError):
            tar_member_parts(bad)


# -------------------------------------------------------------- the engine on plain directories

# Copies into the "container" keep the source's owner (ours), so these tests also pass without root.
KEEP_IDS = CopyOptions(archive=True)


@pytest.fixture
def fake_root(tmp_path):
    """A directory standing in for a container root, with /etc/passwd and hostile links to the "host"."""
    root = tmp_path / "root"
    host = tmp_path / "host"
    (root / "etc").mkdir(parents=True)
    (root / "tmp").mkdir()
    (root / "etc" / "passwd").write_text("container passwd\n")
    host.mkdir()
    (host / "secret").write_text("host secret\n")
    os.symlink("/etc", root / "tmp" / "x")  # absolute: must mean the root's /etc
    os.symlink("/", root / "hostroot")
    os.symlink(str(host), root / "tmp" / "escape")  # an absolute host path: must not exist inside the root
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    yield root, host, ContainerFilesystem(fd, "c")
    os.close(fd)


def test_writes_through_symlinks_stay_inside_the_root(fake_root, tmp_path):
    root, host, fs = fake_root
    src = tmp_path / "new.txt"
    src.write_text("replaced\n")
    copy_between(Filesystem(), str(src), fs, "/tmp/x/passwd", True, KEEP_IDS)
    assert (root / "etc" / "passwd").read_text() == "replaced\n"
    copy_between(Filesystem(), str(src), fs, "/hostroot/etc/", True, KEEP_IDS)
    assert (root / "etc" / "new.txt").read_text() == "replaced\n"
    with pytest.raises(Exception, match="no such file"):
        copy_between(Filesystem(), str(src), fs, "/tmp/escape/secret", True, KEEP_IDS)
    assert (host / "secret").read_text() == "host secret\n"


def test_reads_through_symlinks_stay_inside_the_root(fake_root, tmp_path):
    root, host, fs = fake_root
    out = tmp_path / "out"
    copy_between(fs, "/tmp/x/passwd", Filesystem(), str(out), False, CopyOptions())
    assert out.read_text() == "container passwd\n"
    with pytest.raises(Exception, match="No such container:path"):
        copy_between(fs, "/tmp/escape/secret", Filesystem(), str(tmp_path / "leak"), False,
                     CopyOptions(follow_link=True))
    assert not (tmp_path / "leak").exists()


def test_symlink_source_is_copied_as_a_link_unless_L(fake_root, tmp_path):
    root, host, fs = fake_root
    copy_between(fs, "/tmp/x", Filesystem(), str(tmp_path / "link"), False, CopyOptions())
    assert os.readlink(tmp_path / "link") == "/etc"
    copy_between(fs, "/tmp/x", Filesystem(), str(tmp_path / "followed"), False, CopyOptions(follow_link=True))
    assert (tmp_path / "followed" / "passwd").read_text() == "container passwd\n"


def test_directory_round_trip_keeps_modes_and_times(tmp_path, fake_root):
    root, host, fs = fake_root
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(tree / "sub" / "run.sh", 0o755)
    os.symlink("run.sh", tree / "sub" / "link")
    os.utime(tree / "sub" / "run.sh", (1_000_000, 1_000_000))
    os.chmod(tree / "sub", 0o555)  # read-only source directory still copies
    copy_between(Filesystem(), str(tree), fs, "/tmp/", True, KEEP_IDS)
    copied = root / "tmp" / "tree" / "sub"
    assert (copied / "run.sh").read_text() == "#!/bin/sh\n"
    assert os.stat(copied / "run.sh").st_mode & 0o7777 == 0o755
    assert os.stat(copied / "run.sh").st_mtime == 1_000_000
    assert os.readlink(copied / "link") == "run.sh"
    assert os.stat(copied).st_mode & 0o7777 == 0o555
    back = tmp_path / "back"
    back.mkdir()
    copy_between(fs, "/tmp/tree/.", Filesystem(), str(back), False, CopyOptions())
    assert (back / "sub" / "run.sh").read_text() == "#!/bin/sh\n"
    os.chmod(tree / "sub", 0o755)
    os.chmod(copied, 0o755)
    os.chmod(back / "sub", 0o755)


def test_tar_stream_in_refuses_escaping_members(fake_root, tmp_path):
    root, host, fs = fake_root
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as archive:
        link = tarfile.TarInfo("esc")
        link.type, link.linkname = tarfile.SYMTYPE, str(host)
        archive.addfile(link)
        evil = tarfile.TarInfo("esc/secret")
        evil.size = 4
        archive.addfile(evil, io.BytesIO(b"pwnd"))
    data.seek(0)
    target = os.open(root / "tmp", os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(Exception, match="refusing to follow"):
            extract_tar(data, target, archive=True)
    finally:
        os.close(target)
    assert (host / "secret").read_text() == "host secret\n"


def test_tar_stream_round_trip(fake_root, tmp_path):
    root, host, fs = fake_root
    out = io.BytesIO()
    stream_out(fs, "/etc", out, CopyOptions())
    out.seek(0)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as archive:
        assert archive.getnames() == ["etc", "etc/passwd"]
    target = os.open(root / "tmp", os.O_RDONLY | os.O_DIRECTORY)
    try:
        extract_tar(out, target, archive=True)
    finally:
        os.close(target)
    assert (root / "tmp" / "etc" / "passwd").read_text() == "container passwd\n"


def test_deep_and_wide_trees_keep_fds_bounded(fake_root, tmp_path):
    """300 levels deep and 1500 directories wide: no recursion limit, no fd per directory kept open."""
    root, host, fs = fake_root
    tree = tmp_path / "big"
    os.makedirs(tree / os.path.join(*["d"] * 300))
    for i in range(1500):
        (tree / "wide" / str(i)).mkdir(parents=True)
    before = len(os.listdir("/proc/self/fd"))
    copy_between(Filesystem(), str(tree), fs, "/tmp/big", True, KEEP_IDS)
    assert len(os.listdir("/proc/self/fd")) == before
    assert (root / "tmp" / "big" / os.path.join(*["d"] * 300)).is_dir()
    assert len(os.listdir(root / "tmp" / "big" / "wide")) == 1500
