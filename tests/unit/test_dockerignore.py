""".dockerignore patterns (moby/patternmatcher semantics) and the context walk."""

from __future__ import annotations

import os

import pytest

from pyctr.build.context import BuildContext
from pyctr.build.dockerignore import Matcher, clean_pattern, parse_dockerignore
from pyctr.errors import BuildError, NotFoundError


def excluded(patterns: str, path: str, keep: tuple[str, ...] = ()) -> bool:
    return Matcher(parse_dockerignore(patterns), always_include=keep).excluded(path)


@pytest.mark.parametrize("patterns, path, expected", [
    ("*.go", "main.go", True),
    ("*.go", "sub/main.go", False),  # `*` never crosses `/` (unlike .gitignore)
    ("**/*.go", "sub/main.go", True),
    ("**/*.go", "main.go", True),
    ("**/*.go", "a/b/c/main.go", True),
    ("**", "anything/at/all", True),
    ("docs", "docs", True),
    ("docs", "docs/a/b.md", True),  # a parent match excludes everything below
    ("docs", "docsx", False),
    ("docs/", "docs/a.md", True),
    ("dir/**", "dir/x", True),
    ("dir/**", "dir", False),
    ("/foo", "foo", True),
    ("./foo", "foo", True),
    ("foo/../bar", "bar", True),
    ("foo//bar", "foo/bar", True),
    ("a?c", "abc", True),
    ("a?c", "a/c", False),
    ("[a-c].txt", "b.txt", True),
    ("[a-c].txt", "d.txt", False),
    ("[^a].txt", "a.txt", False),
    ("[^a].txt", "b.txt", True),
    ("\\*.txt", "*.txt", True),
    ("\\*.txt", "a.txt", False),
    ("file.txt", "file-txt", False),  # `.` is literal
    ("a+b", "a+b", True),
    ("(x)", "(x)", True),
    ("# comment", "# comment", False),
    ("\\#file", "#file", True),
    ("  spaced  ", "spaced", True),
    ("*\n!keep.txt", "keep.txt", False),
    ("*\n!keep.txt", "other.txt", True),
    ("*.md\n!README.md\nREADME-secret.md", "README.md", False),
    ("*.md\n!README.md\nREADME-secret.md", "README-secret.md", True),
    ("*.md\n!README*.md\nREADME-secret.md", "README-secret.md", True),
    ("docs\n!docs/keep.md", "docs/keep.md", False),
    ("docs\n!docs/keep.md", "docs/other.md", True),
    ("!x\nx", "x", True),
    ("x\n!x", "x", False),
    ("**/node_modules", "a/node_modules/b/c.js", True),
    ("*/temp*", "somedir/temporary.txt", True),
    ("*/*/temp*", "somedir/subdir/temporary.txt", True),
    ("temp?", "tempa", True),
    ("", "x", False),
])
def test_pattern_table(patterns, path, expected):
    assert excluded(patterns, path) is expected


def test_dockerfile_and_dockerignore_are_always_sent():
    assert not excluded("*", "Dockerfile", keep=(".dockerignore", "Dockerfile"))
    assert not excluded("*", ".dockerignore", keep=(".dockerignore", "Dockerfile"))
    assert excluded("*", "other", keep=(".dockerignore", "Dockerfile"))
    assert not excluded("build/*", "build/my.df", keep=(".dockerignore", "build/my.df"))


@pytest.mark.parametrize("line, text, exclusion", [
    ("/abs/path", "abs/path", False),
    ("!/abs", "abs", True),
    ("! spaced", "spaced", True),
    ("a/./b/", "a/b", False),
    ("/", "/", False),
])
def test_clean_pattern(line, text, exclusion):
    pattern = clean_pattern(line)
    assert pattern is not None and pattern.text == text and pattern.exclusion is exclusion


@pytest.fixture
def context_dir(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "main.py").write_text("print()\n")
    (tmp_path / "app" / "secret.key").write_text("k\n")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "keep.log").write_text("x\n")
    (tmp_path / "logs" / "drop.log").write_text("x\n")
    (tmp_path / "a.txt").write_text("a\n")
    (tmp_path / "b.txt").write_text("b\n")
    (tmp_path / ".dockerignore").write_text("**/*.key\nlogs\n!logs/keep.log\nDockerfile\n")
    os.symlink("app/main.py", tmp_path / "inside-link")
    os.symlink("../outside", tmp_path / "escape-link")
    os.symlink("/etc/passwd", tmp_path / "abs-link")
    return tmp_path


def test_context_walk_applies_dockerignore(context_dir):
    ctx = BuildContext.open(context_dir, "Dockerfile")
    names = [rel for rel, _, _ in ctx.files_under(".")]
    assert "app/secret.key" not in names and "logs/drop.log" not in names
    assert {"app/main.py", "logs/keep.log", "Dockerfile", ".dockerignore", "a.txt"} <= set(names)


def test_context_glob(context_dir):
    ctx = BuildContext.open(context_dir, "Dockerfile")
    assert [rel for rel, _ in ctx.glob("*.txt")] == ["a.txt", "b.txt"]
    assert [rel for rel, _ in ctx.glob("app/*.py")] == ["app/main.py"]
    assert ctx.glob("app/*.key") == []


@pytest.mark.parametrize("source", ["../x", "a/../../x", "escape-link", "abs-link"])
def test_context_never_escapes(context_dir, source):
    ctx = BuildContext.open(context_dir, "Dockerfile")
    with pytest.raises(BuildError, match="outside the build context"):
        ctx.source(source)


def test_context_follows_links_inside(context_dir):
    ctx = BuildContext.open(context_dir, "Dockerfile")
    rel, host = ctx.source("inside-link")
    assert rel == "app/main.py" and host == context_dir / "app" / "main.py"
    assert ctx.source("/a.txt")[0] == "a.txt"  # a leading / is the context root


def test_excluded_source_is_not_found(context_dir):
    ctx = BuildContext.open(context_dir, "Dockerfile")
    with pytest.raises(NotFoundError):
        ctx.source("app/secret.key")
    with pytest.raises(NotFoundError):
        ctx.source("missing")


@pytest.mark.parametrize("line", ["[", "[^bc", "a[", "\\", "[-]", "[a-b-c]", "[Local-Only]/", "!"])
def test_malformed_patterns_refuse_the_context(tmp_path, line):
    """Docker refuses the build with an error (never a raw re.error, never a silent match)."""
    (tmp_path / ".dockerignore").write_text(f"ok\n{line}\n")
    with pytest.raises(BuildError, match=r"error checking context: (syntax error in pattern|illegal exclusion)"):
        BuildContext.open(tmp_path)


@pytest.mark.parametrize("pattern, path, expected", [
    ("[\\-x]", "-", True), ("[\\-x]", "x", True), ("[\\-x]", "a", False), ("[\\]a]", "]", True),
    ("[\\]a]", "\\", False),
])
def test_escapes_inside_character_classes(pattern, path, expected):
    assert excluded(pattern, path) is expected
