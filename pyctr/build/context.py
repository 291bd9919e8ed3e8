"""The build context: the directory a build may read, filtered by .dockerignore.

Nothing outside the context directory is ever read: a source like `../x` is
refused, and symlinks are resolved inside the context (a link pointing out of
it is refused rather than followed). Symlinks found inside a copied
directory are copied as links, as Docker does, never followed.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pyctr.build.dockerignore import Matcher, Pattern, parse_dockerignore
from pyctr.errors import BuildError, NotFoundError

_WILDCARD = set("*?[")
_MAX_LINKS = 40


def has_wildcard(path: str) -> bool:
    return any(c in _WILDCARD for c in path)


@dataclass
class BuildContext:
    """A context directory plus its .dockerignore matcher."""

    root: Path
    matcher: Matcher

    @classmethod
    def open(cls, directory: Path, dockerfile_rel: str | None = "Dockerfile") -> BuildContext:
        root = Path(directory).resolve()
        if not root.is_dir():
            raise NotFoundError(f"unable to prepare context: path \"{directory}\" not found")
        ignore = root / ".dockerignore"
        patterns = parse_dockerignore(ignore.read_text(errors="replace")) if ignore.is_file() else []
        keep = (".dockerignore",) + ((dockerfile_rel,) if dockerfile_rel else ())
        return cls(root, Matcher(patterns, always_include=keep))

    def included(self, rel: str) -> bool:
        rel = posixpath.normpath(rel)
        return rel in (".", "") or not self.matcher.excluded(rel)

    def clean(self, source: str) -> str:
        """A source path as a context-relative path; `..` escaping the context is refused."""
        rel = posixpath.normpath(source.lstrip("/") or ".")
        if rel == ".." or rel.startswith("../"):
            raise BuildError(f"forbidden path outside the build context: {source}")
        return rel

    def resolve(self, source: str) -> tuple[str, Path]:
        """(context-relative path, host path) with symlinks followed inside the context only."""
        rel = self.clean(source)
        parts = [] if rel == "." else rel.split("/")
        resolved: list[str] = []
        links = 0
        while parts:
            part = parts.pop(0)
            if part in (".", ""):
                continue
            if part == "..":
                if not resolved:
                    raise BuildError(f"forbidden path outside the build context: {source}")
                resolved.pop()
                continue
            host = self.root.joinpath(*resolved, part)
            if host.is_symlink():
                links += 1
                if links > _MAX_LINKS:
                    raise BuildError(f"too many levels of symbolic links: {source}")
                target = os.readlink(host)
                if target.startswith("/"):
                    raise BuildError(f"forbidden path outside the build context: {source} (symlink to {target})")
                parts = target.split("/") + parts
                continue
            resolved.append(part)
        rel_out = "/".join(resolved) or "."
        return rel_out, self.root.joinpath(*resolved)

    def source(self, source: str) -> tuple[str, Path]:
        """Resolve one non-wildcard source that must exist and not be excluded."""
        rel, host = self.resolve(source)
        if not os.path.lexists(host) or not self.included(rel):
            raise NotFoundError(f"file not found in build context or excluded by .dockerignore: "
                                f"stat {source}: file does not exist")
        return rel, host

    def glob(self, pattern: str) -> list[tuple[str, Path]]:
        """Context paths matching a wildcard source (Go filepath.Match per path); a matched dir stops the walk."""
        rel_pattern = self.clean(pattern)
        matcher = Pattern(rel_pattern)
        depth = rel_pattern.count("/")
        found = []
        for rel, host, _st in self.walk("."):
            if rel.count("/") != depth:
                continue
            if matcher.matches(rel):
                found.append((rel, host))
        return sorted(found)

    def walk(self, rel_dir: str) -> Iterator[tuple[str, Path, os.stat_result]]:
        """Every included entry below `rel_dir` (not itself), parents before children, sorted, no link following."""
        base = self.root if rel_dir in (".", "") else self.root / rel_dir
        stack = [(rel_dir if rel_dir not in ("", ".") else "", base)]
        while stack:
            rel, host = stack.pop()
            try:
                names = sorted(os.listdir(host), reverse=True)
            except OSError as e:
                raise BuildError(f"cannot read {host}: {e.strerror}") from None
            for name in names:
                child_rel = f"{rel}/{name}" if rel else name
                child = host / name
                st = child.lstat()
                excluded = not self.included(child_rel)
                if stat.S_ISDIR(st.st_mode) and (not excluded or self.matcher.has_exceptions):
                    stack.append((child_rel, child))
                if not excluded:
                    yield child_rel, child, st
        # Sorting: callers that need strict order sort the result; stack order is reverse-sorted DFS.

    def files_under(self, rel_dir: str) -> list[tuple[str, Path, os.stat_result]]:
        """The included entries of a directory, sorted by path (parents first)."""
        return sorted(self.walk(rel_dir), key=lambda item: item[0])
