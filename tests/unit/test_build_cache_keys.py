"""Build cache keys, COPY staging placement and the executor's pure helpers."""

from __future__ import annotations

import os

import pytest

from pyctr.build import instructions as ins
from pyctr.build.cache import BuildCache, is_empty_dir, step_key, tree_digest
from pyctr.build.executor import config_digest, created_time, image_config_document, needed_stages
from pyctr.build.parser import parse_dockerfile
from pyctr.build.run_step import clamp_times
from pyctr.build.staging import Placement, SourceItem, is_archive, read_image_file, resolve_in_root, stage_copy


def test_step_key_depends_on_parent_instruction_and_sources():
    base = step_key("sha256:p", {"run": ["echo"]})
    assert base == step_key("sha256:p", {"run": ["echo"]})
    assert base != step_key("sha256:q", {"run": ["echo"]})
    assert base != step_key("sha256:p", {"run": ["echo", "x"]})
    assert step_key("p", {"copy": 1}, "a") != step_key("p", {"copy": 1}, "b")
    assert len(base) == 64


def make_tree(root):
    (root / "d").mkdir(parents=True)
    (root / "d" / "f").write_text("content")
    os.symlink("f", root / "d" / "link")
    return root


def test_tree_digest_ignores_mtime_but_not_content_mode_or_links(tmp_path):
    tree = make_tree(tmp_path / "t")
    first = tree_digest(tree)
    os.utime(tree / "d" / "f", (1, 1))
    assert tree_digest(tree) == first
    os.chmod(tree / "d" / "f", 0o600)
    assert tree_digest(tree) != first
    second = tree_digest(tree)
    (tree / "d" / "f").write_text("other!!")
    assert tree_digest(tree) != second
    third = tree_digest(tree)
    os.unlink(tree / "d" / "link")
    os.symlink("g", tree / "d" / "link")
    assert tree_digest(tree) != third


def test_cache_round_trip(tmp_path):
    cache = BuildCache(tmp_path / "buildcache")
    assert cache.get("k") is None
    cache.put("k", {"chain_id": "sha256:x"})
    assert cache.get("k") == {"chain_id": "sha256:x"}
    (tmp_path / "buildcache" / "bad.json").write_text("{")
    assert cache.get("bad") is None


def test_is_empty_dir(tmp_path):
    assert is_empty_dir(tmp_path)
    (tmp_path / "x").write_text("")
    assert not is_empty_dir(tmp_path)


# --- COPY placement ------------------------------------------------------------------------

PLACE = Placement(as_root=False, epoch=0)


@pytest.fixture
def src(tmp_path):
    root = tmp_path / "src"
    (root / "dir" / "sub").mkdir(parents=True)
    (root / "dir" / "sub" / "x.txt").write_text("x")
    (root / "dir" / "top.txt").write_text("t")
    (root / "file.txt").write_text("f")
    os.chmod(root / "file.txt", 0o640)
    return root


def file_item(path):
    return SourceItem(name=path.name, host=path)


def dir_item(path):
    from pyctr.build.staging import walk_tree

    return SourceItem(name=path.name, host=path, kind="dir", entries=list(walk_tree(path)))


def listing(stage):
    return sorted(str(p.relative_to(stage)) for p in stage.rglob("*"))


def test_file_to_file_path(tmp_path, src):
    stage = tmp_path / "stage"
    stage.mkdir()
    stage_copy([file_item(src / "file.txt")], "/app/renamed", stage, PLACE)
    assert listing(stage) == ["app", "app/renamed"]
    assert (stage / "app" / "renamed").stat().st_mode & 0o777 == 0o640


def test_file_into_directory_with_trailing_slash(tmp_path, src):
    stage = tmp_path / "stage"
    stage.mkdir()
    stage_copy([file_item(src / "file.txt")], "/app/", stage, PLACE)
    assert listing(stage) == ["app", "app/file.txt"]
    assert (stage / "app").stat().st_mode & 0o777 == 0o755


def test_directory_copies_its_contents(tmp_path, src):
    stage = tmp_path / "stage"
    stage.mkdir()
    stage_copy([dir_item(src / "dir")], "/dst", stage, PLACE)
    assert listing(stage) == ["dst", "dst/sub", "dst/sub/x.txt", "dst/top.txt"]


def test_several_sources_and_chmod(tmp_path, src):
    stage = tmp_path / "stage"
    stage.mkdir()
    place = Placement(as_root=False, chmod=0o700)
    stage_copy([file_item(src / "file.txt"), dir_item(src / "dir")], "/d/", stage, place)
    assert listing(stage) == ["d", "d/file.txt", "d/sub", "d/sub/x.txt", "d/top.txt"]
    assert (stage / "d" / "file.txt").stat().st_mode & 0o777 == 0o700


def test_existing_directory_in_image_receives_the_file(tmp_path, src):
    lower = tmp_path / "lower"
    (lower / "etc").mkdir(parents=True)
    os.chmod(lower / "etc", 0o751)
    stage = tmp_path / "stage"
    stage.mkdir()
    stage_copy([file_item(src / "file.txt")], "/etc", stage, Placement(as_root=False, lower=lower))
    assert listing(stage) == ["etc", "etc/file.txt"]
    assert (stage / "etc").stat().st_mode & 0o777 == 0o751  # the image's directory keeps its mode


def test_content_items_and_mtime(tmp_path):
    stage = tmp_path / "stage"
    stage.mkdir()
    stage_copy([SourceItem(name="EOF", kind="content", content=b"hi\n")], "/greeting", stage,
               Placement(as_root=False, epoch=1234))
    assert (stage / "greeting").read_text() == "hi\n"
    assert (stage / "greeting").stat().st_mtime == 1234


def test_add_extracts_archives(tmp_path, src):
    import tarfile

    archive = tmp_path / "a.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / "dir", arcname="pkg")
    assert is_archive(archive) and not is_archive(src / "file.txt")
    stage = tmp_path / "stage"
    stage.mkdir()
    stage_copy([file_item(archive)], "/opt/", stage, PLACE, extract=True)
    assert "opt/pkg/sub/x.txt" in listing(stage)


def test_resolve_in_root_keeps_links_inside(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "real").write_text("user:x:1:1::/:/bin/sh\n")
    os.symlink("/etc/real", root / "etc" / "passwd")
    os.symlink("../../../../../etc/shadow", root / "etc" / "group")
    assert resolve_in_root(root, "/etc/passwd") == root / "etc" / "real"
    assert resolve_in_root(root, "/etc/group") == root / "etc" / "shadow"
    assert read_image_file(root, "/etc/passwd").startswith("user:")
    assert read_image_file(root, "/etc/group") == ""
    assert read_image_file(None, "/etc/passwd") == ""


def test_clamp_times(tmp_path):
    (tmp_path / "f").write_text("")
    os.symlink("f", tmp_path / "l")
    clamp_times(tmp_path, 100)
    assert os.lstat(tmp_path / "f").st_mtime == 100 and os.lstat(tmp_path / "l").st_mtime == 100


# --- executor's pure parts -----------------------------------------------------------------


def test_image_config_document_and_digest():
    state = ins.start_stage({"Cmd": ["sh"]}, ({"created_by": "base"},), stage_index=0, stage_name=None,
                            build_args={}, meta_args={}, created=created_time(None))
    doc = image_config_document(state, ["sha256:" + "a" * 64], {"architecture": "amd64", "os": "linux"})
    assert doc["created"] == "1970-01-01T00:00:00Z"
    assert doc["rootfs"] == {"type": "layers", "diff_ids": ["sha256:" + "a" * 64]}
    assert doc["config"] == {"Cmd": ["sh"]} and doc["history"] == [{"created_by": "base"}]
    assert config_digest(doc) == config_digest(dict(doc))
    assert created_time(1700000000) == "2023-11-14T22:13:20Z"


def test_needed_stages_only_what_the_target_uses():
    df = parse_dockerfile(
        "FROM scratch AS a\nFROM scratch AS unused\nFROM a AS b\nCOPY --from=0 / /\n"
        "FROM scratch AS c\nCOPY --from=b /x /x\nFROM scratch\n")
    assert needed_stages(df, 3, {}) == [0, 2, 3]
    assert needed_stages(df, 1, {}) == [1]
    assert needed_stages(df, 4, {}) == [4]


def test_init_layer_holds_the_mount_points(tmp_path):
    from pyctr.build.run_step import failure_message, make_init_layer

    init = make_init_layer(tmp_path / "init")
    assert (init / "proc").is_dir() and (init / "dev" / "pts").is_dir() and (init / "etc" / "hosts").is_file()
    message = failure_message(("/bin/sh", "-c", "false"), 1)
    assert message == "The command '/bin/sh -c false' returned a non-zero code: 1"


def test_entries_under_an_excluded_directory_get_their_parents(tmp_path, src):
    from pyctr.build.staging import walk_tree

    entries = [e for e in walk_tree(src / "dir") if e[0] == "sub/x.txt"]  # "sub" itself was excluded
    stage = tmp_path / "stage"
    stage.mkdir()
    stage_copy([SourceItem(name="dir", host=src / "dir", kind="dir", entries=entries)], "/d", stage, PLACE)
    assert listing(stage) == ["d", "d/sub", "d/sub/x.txt"]
