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
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, cast

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
    _walked: tuple[list[tuple[str, Path, os.stat_result]], set[str]] | None = field(default=None, repr=False,
                                                                                     compare=False)

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
        """Every included entry below `rel_dir` (not itself), parents before children, sorted, no link following.

        The whole context is walked once per build and remembered: the sent size, the newest input time, globs
        and `COPY .` all read it (three walks of a 20k-file context were most of a cached build)."""
        rel_dir = "" if rel_dir in (".", "") else rel_dir
        everything, walked_dirs = self._whole()
        if not rel_dir:
            return iter(everything)
        if rel_dir not in walked_dirs:  # not entered by the whole walk (excluded): walk it on its own
            return self._walk(rel_dir)
        prefix = rel_dir + "/"
        return (entry for entry in everything if entry[0].startswith(prefix))

    def _whole(self) -> tuple[list[tuple[str, Path, os.stat_result]], set[str]]:
        if self._walked is None:
            walked_dirs: set[str] = set()
            self._walked = (list(self._walk("", walked_dirs)), walked_dirs)
        return self._walked

    def _walk(self, rel_dir: str, walked_dirs: set[str] | None = None) -> Iterator[tuple[str, Path, os.stat_result]]:
        base = self.root / rel_dir if rel_dir else self.root
        stack = [(rel_dir, base)]
        while stack:
            rel, host = stack.pop()
            if walked_dirs is not None:
                walked_dirs.add(rel)
            try:
                names = sorted(os.listdir(host), reverse=True)
            except OSError as e:
                raise BuildError(f"cannot read {host}: {e.strerror}") from None
            for name in names:
                child_rel = f"{rel}/{name}" if rel else name
                child = host / name
                st = os.lstat(child)
                excluded = not self.included(child_rel)
                if stat.S_ISDIR(st.st_mode) and (not excluded or self.matcher.has_exceptions):
                    stack.append((child_rel, child))
                if not excluded:
                    yield child_rel, child, st
        # Sorting: callers that need strict order sort the result; stack order is reverse-sorted DFS.

    def tar_size(self) -> int:
        """The size of the context tar Docker's CLI would send ("Sending build context to Docker daemon  X")."""
        return _tar_size(self.walk("."))

    def files_under(self, rel_dir: str) -> list[tuple[str, Path, os.stat_result]]:
        """The included entries of a directory, sorted by path (parents first)."""
        return sorted(self.walk(rel_dir), key=lambda item: item[0])


# --- what Docker's CLI sends: the context as a tar (its size), or a context read from stdin -----------

_BLOCK = 512
_TAR_FOOTER = 2 * _BLOCK  # Go's tar.Writer.Close: two zero blocks, no padding to a record


def _fits_ustar(name: str) -> bool:
    """Go's tar writer keeps a USTAR header when the name fits 100 bytes or splits at a `/` into 155 + 100."""
    raw = name.encode()
    if len(raw) <= 100:
        return True
    for i in range(len(raw) - 1, 0, -1):
        if raw[i:i + 1] == b"/" and i <= 155 and len(raw) - i - 1 <= 100:
            return len(raw) - i - 1 > 0
    return False


def _pax_header_size(records: dict[str, str]) -> int:
    """A PAX extended header (its own header block plus the records, padded)."""
    length = 0
    for key, value in records.items():
        body = len(key.encode()) + len(value.encode()) + 3
        digits = len(str(body))
        while len(str(body + digits)) != digits:
            digits += 1
        length += body + digits
    return _BLOCK + -(-length // _BLOCK) * _BLOCK


def context_tar_entry_size(data_size: int, name: str = "Dockerfile", linkname: str = "") -> int:
    """Bytes one entry takes in the CLI's context tar (Go's archive/tar, as moby's TarWithOptions writes it)."""
    records = {}
    if not _fits_ustar(name):
        records["path"] = name
    if len(linkname.encode()) > 100:
        records["linkpath"] = linkname
    if data_size >= 8 << 30:
        records["size"] = str(data_size)
    return (_pax_header_size(records) if records else 0) + _BLOCK + -(-data_size // _BLOCK) * _BLOCK


def _tar_size(entries: Iterator[tuple[str, Path, os.stat_result]]) -> int:
    total = _TAR_FOOTER
    seen_inodes: set[tuple[int, int]] = set()
    for rel, host, st in entries:
        if stat.S_ISSOCK(st.st_mode):
            continue  # Go's tar cannot hold sockets; moby skips them
        if stat.S_ISDIR(st.st_mode):
            total += context_tar_entry_size(0, rel + "/")
        elif stat.S_ISLNK(st.st_mode):
            total += context_tar_entry_size(0, rel, os.readlink(host))
        elif stat.S_ISREG(st.st_mode) and st.st_nlink > 1 and (st.st_dev, st.st_ino) in seen_inodes:
            total += context_tar_entry_size(0, rel)  # a hardlink to a file already in the tar
        else:
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                seen_inodes.add((st.st_dev, st.st_ino))
            total += context_tar_entry_size(st.st_size if stat.S_ISREG(st.st_mode) else 0, rel)
    return total


@dataclass(frozen=True)
class StdinContext:
    """`build -`: either the Dockerfile's text (an empty context) or None (a tar context was unpacked)."""

    dockerfile_text: str | None
    sent_size: int  # what Docker's CLI would report as sent


class _Counting:
    """Counts the bytes read through it: Docker reports the raw (compressed) bytes of a stdin context."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self.stream.read(n)
        self.count += len(data)
        return data


def read_stdin_context(stream: BinaryIO, directory: Path) -> StdinContext:
    """Docker's GetContextFromReader: an archive (maybe compressed) is the context, anything else the Dockerfile.

    The archive goes through the same fd-based extractor as layers and ADD, into `directory`, so a hostile
    context (`..`, symlink chains, hardlinks out) is refused, never written outside.
    """
    from pyctr.errors import UnsafeArchiveError
    from pyctr.image.tarstream import read_up_to
    from pyctr.image.unpack import PrefixedStream, looks_like_archive, unpack_archive

    counted = _Counting(stream)
    head = read_up_to(counted, _BLOCK)
    if not looks_like_archive(head):
        data = head + counted.read()
        return StdinContext(data.decode(errors="replace"), _TAR_FOOTER + context_tar_entry_size(len(data)))
    try:
        unpack_archive(cast(BinaryIO, PrefixedStream(head, counted)), directory)
        while counted.read(1 << 20):
            pass
    except UnsafeArchiveError as e:
        raise BuildError(f"failed to read the build context from stdin: {e}") from None
    except OSError as e:
        raise BuildError(f"failed to read the build context from stdin: {e.strerror or e}") from None
    return StdinContext(None, counted.count)
