"""`.dockerignore`: which context paths the build may see.

Docker's rules (moby/patternmatcher): one pattern a line; `#` lines are
comments; whitespace trimmed; `!` marks an exception; patterns are cleaned
like Go's filepath.Clean and a leading `/` dropped; matching is Go's
filepath.Match (`*`, `?`, `[...]`, `\\` escapes) plus `**` for any number of
directories; a pattern that matches a parent directory excludes everything
under it; the last matching pattern wins. The Dockerfile and .dockerignore
are always sent (the CLI appends `!` exceptions for them).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from functools import cached_property

_REGEX_SPECIAL = set(".+()|{}$^")


@dataclass(frozen=True)
class Pattern:
    """One cleaned pattern; `exclusion` is True for `!` lines."""

    text: str
    exclusion: bool = False

    @cached_property
    def regex(self) -> re.Pattern[str]:
        return re.compile(_to_regex(self.text))

    def matches(self, path: str) -> bool:
        return self.regex.match(path) is not None


def _to_regex(pattern: str) -> str:
    out = ["^"]
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            if i < len(pattern) and pattern[i] == "*":
                i += 1
                if i < len(pattern) and pattern[i] == "/":
                    i += 1
                out.append(".*" if i >= len(pattern) else "(.*/)?")
            else:
                out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            close = pattern.find("]", i + 1 if i < len(pattern) and pattern[i] == "^" else i)
            if close == -1:
                out.append(r"\[")
                continue
            body = pattern[i:close]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = close + 1
        elif ch == "\\":
            if i < len(pattern):
                out.append(re.escape(pattern[i]))
                i += 1
            else:
                out.append(r"\\")
        elif ch in _REGEX_SPECIAL:
            out.append("\\" + ch)
        else:
            out.append(re.escape(ch) if not ch.isalnum() and ch not in "/-_ " else ch)
    out.append("$")
    return "".join(out)


def clean_pattern(raw: str) -> Pattern | None:
    """Turn one line into a Pattern (None for comments and blanks)."""
    line = raw.strip()
    if not line or line.startswith("#"):
        return None
    exclusion = line.startswith("!")
    if exclusion:
        line = line[1:].strip()
    if line:
        line = posixpath.normpath(line)
        if line.startswith("//"):
            line = "/" + line.lstrip("/")
        if len(line) > 1 and line.startswith("/"):
            line = line[1:]
    return Pattern(line, exclusion)


def parse_dockerignore(text: str) -> list[Pattern]:
    """All patterns of a .dockerignore file, in order."""
    return [p for p in (clean_pattern(line) for line in text.splitlines()) if p is not None]


class Matcher:
    """Decides whether a context-relative path (forward slashes) is excluded."""

    def __init__(self, patterns: list[Pattern], always_include: tuple[str, ...] = ()) -> None:
        self.patterns = list(patterns)
        for name in always_include:
            if name and self.excluded(name):
                self.patterns.append(Pattern(posixpath.normpath(name), exclusion=True))

    @property
    def has_exceptions(self) -> bool:
        return any(p.exclusion for p in self.patterns)

    def excluded(self, path: str) -> bool:
        """moby's MatchesOrParentMatches: a pattern matching the path or one of its parents."""
        path = posixpath.normpath(path)
        parent = posixpath.dirname(path)
        parents = parent.split("/") if parent not in ("", ".") else []
        matched = False
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue
            hit = pattern.matches(path) or any(
                pattern.matches("/".join(parents[: i + 1])) for i in range(len(parents)))
            if hit:
                matched = not pattern.exclusion
        return matched

    def may_contain_included(self, directory: str) -> bool:
        """Whether an excluded directory must still be walked (an exception could apply below it)."""
        return self.has_exceptions
