"""`.dockerignore`: which context paths the build may see.

A port of Docker's own rules (moby/patternmatcher and its ignorefile reader) so
that their test tables hold: one pattern a line; lines starting with `#` are
comments; whitespace trimmed; `!` marks an exception; patterns are cleaned like
Go's filepath.Clean and a leading `/` dropped; matching is Go's filepath.Match
syntax (`*`, `?`, `[...]`, `\\` escapes) plus `**` for any number of
directories; a pattern that matches a parent directory excludes everything under
it; the last matching pattern wins. A malformed pattern (`[`, `[^bc`, `\\` at
the end, `[-]`, `[a-b-c]`, a lone `!`) is refused with Docker's error, as Docker
refuses the build. The Dockerfile and .dockerignore are always sent (the CLI
appends `!` exceptions for them).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from enum import Enum

from pyctr.errors import BuildError

BAD_PATTERN = "syntax error in pattern"
_ESCAPED = frozenset(".+()|{}$")


class _Kind(Enum):
    EXACT = "exact"
    PREFIX = "prefix"
    SUFFIX = "suffix"
    REGEX = "regex"


def go_clean(path: str) -> str:
    """Go's filepath.Clean (posixpath.normpath keeps a leading `//`, Go does not)."""
    if not path:
        return "."
    cleaned = posixpath.normpath(path)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned


@dataclass(frozen=True)
class Pattern:
    """One cleaned pattern; `exclusion` is True for `!` lines. Malformed patterns raise BuildError."""

    text: str
    exclusion: bool = False
    _compiled: tuple[_Kind, re.Pattern[str] | None] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        validate_pattern(self.text)
        object.__setattr__(self, "_compiled", _compile(self.text))

    @property
    def dirs(self) -> list[str]:
        return self.text.split("/")

    def matches(self, path: str) -> bool:
        kind, regex = self._compiled
        if kind is _Kind.EXACT:
            return path == self.text
        if kind is _Kind.PREFIX:
            return path.startswith(self.text[:-2])
        if kind is _Kind.SUFFIX:
            suffix = self.text[2:]
            return path.endswith(suffix) or (suffix.startswith("/") and path == suffix[1:])
        assert regex is not None
        return regex.match(path) is not None


def validate_pattern(pattern: str) -> None:
    """Go's filepath.Match syntax check: the errors Docker reports for a .dockerignore line."""
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            if i + 1 >= len(pattern):
                raise BuildError(BAD_PATTERN)
            i += 2
        elif ch == "[":
            i = _validate_class(pattern, i + 1)
        else:
            i += 1


def _validate_class(pattern: str, i: int) -> int:
    """Check one `[...]` body starting after the `[`; return the index after its `]`."""
    if i < len(pattern) and pattern[i] == "^":
        i += 1
    ranges = 0
    while True:
        if i < len(pattern) and pattern[i] == "]" and ranges > 0:
            return i + 1
        i = _class_char(pattern, i)
        if pattern[i] == "-":
            i = _class_char(pattern, i + 1)
        ranges += 1


def _class_char(pattern: str, i: int) -> int:
    """Go's getEsc: one (possibly escaped) character of a class; something must follow it."""
    if i >= len(pattern) or pattern[i] in "-]":
        raise BuildError(BAD_PATTERN)
    if pattern[i] == "\\":
        i += 1
        if i >= len(pattern):
            raise BuildError(BAD_PATTERN)
    if i + 1 >= len(pattern):
        raise BuildError(BAD_PATTERN)
    return i + 1


def _compile(pattern: str) -> tuple[_Kind, re.Pattern[str] | None]:
    """patternmatcher's compile: plain strings and `**` prefixes/suffixes need no regex."""
    out = ["^"]
    kind = _Kind.EXACT
    i = 0
    first = True
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            if i < len(pattern) and pattern[i] == "*":
                i += 1
                if i < len(pattern) and pattern[i] == "/":
                    i += 1
                if i >= len(pattern):
                    if kind is _Kind.EXACT:
                        kind = _Kind.PREFIX
                    else:
                        out.append(".*")
                        kind = _Kind.REGEX
                else:
                    out.append("(.*/)?")
                    kind = _Kind.REGEX
                if first:
                    kind = _Kind.SUFFIX
            else:
                out.append("[^/]*")
                kind = _Kind.REGEX
        elif ch == "?":
            out.append("[^/]")
            kind = _Kind.REGEX
        elif ch in _ESCAPED:
            out.append("\\" + ch)
        elif ch == "\\":
            if i < len(pattern):
                out.append("\\" + pattern[i])
                i += 1
                kind = _Kind.REGEX
            else:
                out.append("\\")
        elif ch in "[]":
            out.append(ch)
            kind = _Kind.REGEX
        else:
            out.append(ch)
        first = False
    if kind is not _Kind.REGEX:
        return kind, None
    try:
        return kind, re.compile("".join(out) + r"\Z")
    except re.error:
        raise BuildError(BAD_PATTERN) from None


def read_ignore_lines(text: str) -> list[str]:
    """moby's ignorefile.ReadAll: the cleaned patterns of a .dockerignore file, `!` kept in front."""
    patterns = []
    for number, line in enumerate(text.split("\n")):
        line = line.removesuffix("\r")
        if number == 0:
            line = line.removeprefix("\ufeff")
        if line.startswith("#"):
            continue
        line = line.strip()
        if not line:
            continue
        invert = line.startswith("!")
        if invert:
            line = line[1:].strip()
        if line:
            line = go_clean(line)
            if len(line) > 1 and line.startswith("/"):
                line = line[1:]
        patterns.append("!" + line if invert else line)
    return patterns


def compile_patterns(lines: list[str]) -> list[Pattern]:
    """patternmatcher.New: each line trimmed and cleaned; a lone `!` is an error."""
    patterns = []
    for line in lines:
        line = line.strip()
        if not line:
            continue
        line = go_clean(line)
        exclusion = line.startswith("!")
        if exclusion:
            if len(line) == 1:
                raise BuildError('illegal exclusion pattern: "!"')
            line = line[1:]
        patterns.append(Pattern(line, exclusion))
    return patterns


def clean_pattern(raw: str) -> Pattern | None:
    """Turn one line into a Pattern (None for comments and blanks)."""
    lines = read_ignore_lines(raw)
    patterns = compile_patterns(lines)
    return patterns[0] if patterns else None


def parse_dockerignore(text: str) -> list[Pattern]:
    """All patterns of a .dockerignore file, in order; BuildError for a malformed one."""
    try:
        return compile_patterns(read_ignore_lines(text))
    except BuildError as e:
        raise BuildError(f"error checking context: {e.message} in .dockerignore") from None


class Matcher:
    """Decides whether a context-relative path (forward slashes) is excluded."""

    def __init__(self, patterns: list[Pattern], always_include: tuple[str, ...] = ()) -> None:
        self.patterns = list(patterns)
        for name in always_include:
            if name and self.excluded(name):
                self.patterns.append(Pattern(go_clean(name), exclusion=True))

    @property
    def has_exceptions(self) -> bool:
        return any(p.exclusion for p in self.patterns)

    def excluded(self, path: str) -> bool:
        """moby's MatchesOrParentMatches: a pattern matching the path or one of its parents."""
        path = go_clean(path)
        parent = posixpath.dirname(path) or "."
        parents = parent.split("/")
        matched = False
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue
            hit = pattern.matches(path) or (parent != "." and any(
                pattern.matches("/".join(parents[: i + 1])) for i in range(len(parents))))
            if hit:
                matched = not pattern.exclusion
        return matched

    def excluded_legacy(self, path: str) -> bool:
        """moby's older Matches: parents are tried only at the pattern's own depth."""
        path = go_clean(path)
        if path == ".":
            return False
        parent = posixpath.dirname(path) or "."
        parents = parent.split("/")
        matched = False
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue
            hit = pattern.matches(path)
            if not hit and parent != "." and len(pattern.dirs) <= len(parents):
                hit = pattern.matches("/".join(parents[: len(pattern.dirs)]))
            if hit:
                matched = not pattern.exclusion
        return matched

    def may_contain_included(self, directory: str) -> bool:
        """Whether an excluded directory must still be walked (an exception could apply below it)."""
        return self.has_exceptions
