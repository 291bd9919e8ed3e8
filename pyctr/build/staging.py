"""Lay out a COPY/ADD layer in a staging directory, with Docker's placement rules.

Docker's rules: a directory source copies its contents (not itself); a file
goes to `dest/<name>` when the destination ends with `/`, is an existing
directory in the image, or there are several sources, else to `dest` itself;
missing parents are created (0755, root); files keep their mode and mtime
and belong to 0:0 unless `--chown`; `--chmod` sets the mode of everything
copied; ADD unpacks local tar archives (plain, gzip, bzip2, xz) and
downloads URLs (0600). Paths inside an image are resolved inside its root:
absolute symlinks point into the image, never at the host.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import shutil
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from pyctr.errors import BuildError, NotFoundError, UnsafeArchiveError

# ADD <url> streams the body to disk; past this it stops (Docker has no bound; a build must have one).
MAX_DOWNLOAD_BYTES = 8 << 30
_ARCHIVE_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")


def resolve_in_root(root: Path, path: str) -> Path:
    """The host path of `path` inside an image or stage `root`, following symlinks as if `root` were `/`.

    The kernel resolves it (runtime.rootfs.host_path_in_root, openat2 RESOLVE_IN_ROOT): absolute symlinks
    and `..` stay inside `root`. Only the build context refuses such links instead (context.py).
    """
    from pyctr.runtime.rootfs import host_path_in_root

    try:
        return host_path_in_root(root, path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise BuildError(f"too many levels of symbolic links: {path}") from None
        raise


def read_image_file(root: Path | None, path: str) -> str:
    """Text of a file inside an image root ("" when absent): e.g. /etc/passwd for --chown."""
    if root is None:
        return ""
    try:
        return resolve_in_root(root, path).read_text(errors="replace")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return ""


def walk_tree(top: Path) -> Iterator[tuple[str, Path, os.stat_result]]:
    """Entries below `top` (relative path, host path, lstat), sorted, parents first, links not followed."""
    stack = [("", top)]
    while stack:
        rel, host = stack.pop()
        for name in sorted(os.listdir(host), reverse=True):
            child_rel = f"{rel}/{name}" if rel else name
            child = host / name
            st = child.lstat()
            yield child_rel, child, st
            if stat.S_ISDIR(st.st_mode):
                stack.append((child_rel, child))


@dataclass
class SourceItem:
    """One resolved source: a file, a directory (with its entries), an archive, fetched or inline content."""

    name: str
    host: Path | None = None
    kind: str = "file"  # file | dir | content | download (a fetched body in a temp file, moved in)
    entries: list[tuple[str, Path, os.stat_result]] = field(default_factory=list)
    content: bytes | None = None
    mode: int = 0o644
    mtime: int | None = None


@dataclass(frozen=True)
class Placement:
    """Ownership and mode rules applied to everything copied."""

    uid: int = 0
    gid: int = 0
    chmod: int | None = None
    epoch: int = 0
    lower: Path | None = None
    as_root: bool = field(default_factory=lambda: os.geteuid() == 0)
    # COPY --from without --chown: files keep the owners they have in the source stage, as in Docker.
    keep_owners: bool = False

    def owner(self, st: os.stat_result) -> tuple[int, int]:
        """(uid, gid) for a copied entry whose source has stat `st`."""
        return (st.st_uid, st.st_gid) if self.keep_owners else (self.uid, self.gid)


def is_archive(path: Path) -> bool:
    """Whether ADD unpacks a local file: Docker's IsArchivePath (decompressed, the first tar header parses).

    A compressed file that is not a tar (`notes.txt.gz`) is copied as it is.
    """
    from pyctr.image.unpack import has_tar_header

    try:
        with open(path, "rb") as f:
            magic = f.read(6)
            if not magic.startswith(_ARCHIVE_MAGIC) and not has_tar_header(magic + f.read(506)):
                return False
            f.seek(0)
            return has_tar_header(_decompressed_head(f, magic))
    except (OSError, EOFError, ValueError, ImportError):
        return False


def _decompressed_head(f: BinaryIO, magic: bytes) -> bytes:
    import bz2
    import gzip
    import lzma

    if magic.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=f).read(512)
    if magic.startswith(b"BZh"):
        return bz2.BZ2File(f).read(512)
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(f).read(512)
    if magic.startswith(b"\x28\xb5\x2f\xfd"):
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(f).read(512)
    return f.read(512)


def stage_copy(items: list[SourceItem], dest: str, stage: Path, place: Placement, *, extract: bool = False) -> None:
    """Write the sources into `stage` (a future layer) at their Docker destinations."""
    dest_is_dir = dest.endswith("/") or len(items) > 1 or _lower_is_dir(place.lower, dest)
    base = dest.rstrip("/") or "/"
    created: list[tuple[Path, int]] = []
    for item in items:
        if item.kind == "dir":
            target = _ensure_parents(stage, base, place, created)
            _copy_entries(item.entries, target, place)
        elif extract and item.kind == "file" and item.host is not None and is_archive(item.host):
            target = _ensure_parents(stage, base, place, created)
            _extract(item.host, target)
        else:
            path = posixpath.join(base, item.name) if dest_is_dir else base
            parent = _ensure_parents(stage, posixpath.dirname(path), place, created)
            _write_item(item, parent / posixpath.basename(path), place)
    _restore_times(created)


def _restore_times(created: list[tuple[Path, int]]) -> None:
    """Directories made for the destination get their intended time back once filled (deepest first)."""
    for path, mtime_ns in reversed(created):
        os.utime(path, ns=(mtime_ns, mtime_ns))


def ensure_dir_in_stage(stage: Path, path: str, place: Placement) -> Path:
    """WORKDIR: the directory (and missing parents) as a layer would hold them."""
    created: list[tuple[Path, int]] = []
    target = _ensure_parents(stage, path, place, created)
    _restore_times(created)
    return target


def _lower_is_dir(lower: Path | None, path: str) -> bool:
    if lower is None:
        return False
    with contextlib.suppress(OSError, BuildError):
        return resolve_in_root(lower, path).is_dir()
    return False


def _ensure_parents(stage: Path, path: str, place: Placement, created: list[tuple[Path, int]]) -> Path:
    """Create `path` in the stage; dirs the image has keep its metadata, new ones are 0755 root."""
    current = stage
    image_path = ""
    for part in [p for p in path.split("/") if p]:
        image_path += "/" + part
        current = current / part
        if current.is_dir() and not current.is_symlink():
            continue
        if os.path.lexists(current):
            current.unlink()
        current.mkdir()
        lower_st = _lower_stat(place.lower, image_path)
        if lower_st is not None and stat.S_ISDIR(lower_st.st_mode):
            mtime = lower_st.st_mtime_ns
            _set_meta(current, stat.S_IMODE(lower_st.st_mode), lower_st.st_uid, lower_st.st_gid, mtime, place,
                      link=False)
        else:
            mtime = place.epoch * 10**9
            _set_meta(current, 0o755, place.uid, place.gid, mtime, place, link=False)
        created.append((current, mtime))
    return current


def _lower_stat(lower: Path | None, path: str) -> os.stat_result | None:
    if lower is None:
        return None
    try:
        return resolve_in_root(lower, path).stat()
    except (OSError, BuildError):
        return None


def _set_meta(path: Path, mode: int, uid: int, gid: int, mtime_ns: int, place: Placement, link: bool) -> None:
    if place.as_root:
        os.lchown(path, uid, gid)
    if not link:
        os.chmod(path, mode)
    os.utime(path, ns=(mtime_ns, mtime_ns), follow_symlinks=not link)


def _write_item(item: SourceItem, target: Path, place: Placement) -> None:
    if os.path.lexists(target) and (target.is_symlink() or not target.is_dir()):
        target.unlink()
    elif target.is_dir():
        shutil.rmtree(target)
    mode = place.chmod if place.chmod is not None else item.mode
    mtime_ns = (item.mtime if item.mtime is not None else place.epoch) * 10**9
    if item.kind == "content":
        target.write_bytes(item.content or b"")
    elif item.kind == "download":
        assert item.host is not None
        os.replace(item.host, target)
    else:
        assert item.host is not None
        st = item.host.lstat()
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(item.host), target)
            _set_meta(target, 0, *place.owner(st), st.st_mtime_ns, place, link=True)
            return
        if not stat.S_ISREG(st.st_mode):
            raise BuildError(f"cannot copy {item.name}: not a regular file or directory")
        shutil.copyfile(item.host, target, follow_symlinks=False)
        mode = place.chmod if place.chmod is not None else stat.S_IMODE(st.st_mode)
        _set_meta(target, mode, *place.owner(st), st.st_mtime_ns, place, link=False)
        return
    _set_meta(target, mode, place.uid, place.gid, mtime_ns, place, link=False)


def _copy_entries(entries: list[tuple[str, Path, os.stat_result]], target: Path, place: Placement) -> None:
    """A directory's contents, entry by entry; directory times are set last (writing children changes them)."""
    dir_times: list[tuple[Path, int]] = []
    for rel, host, st in sorted(entries, key=lambda e: e[0]):
        out = target / rel
        if not out.parent.is_dir():
            _make_missing_parents(out.parent, host.parent, place, dir_times)
        mode = place.chmod if place.chmod is not None else stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            if os.path.lexists(out) and not out.is_dir():
                out.unlink()
            out.mkdir(exist_ok=True)
            _set_meta(out, mode, *place.owner(st), st.st_mtime_ns, place, link=False)
            dir_times.append((out, st.st_mtime_ns))
        elif stat.S_ISLNK(st.st_mode) or stat.S_ISREG(st.st_mode):
            _write_item(SourceItem(name=rel, host=host), out, place)
    for path, mtime in reversed(dir_times):
        os.utime(path, ns=(mtime, mtime))


def _make_missing_parents(out_dir: Path, host_dir: Path, place: Placement, dir_times: list[tuple[Path, int]]) -> None:
    """A directory .dockerignore excluded but an exception (`!dir/keep`) reaches into: made with its own metadata."""
    missing = []
    while not out_dir.is_dir():
        missing.append((out_dir, host_dir))
        out_dir, host_dir = out_dir.parent, host_dir.parent
    for out, host in reversed(missing):
        st = host.lstat()
        out.mkdir()
        mode = place.chmod if place.chmod is not None else stat.S_IMODE(st.st_mode)
        _set_meta(out, mode, *place.owner(st), st.st_mtime_ns, place, link=False)
        dir_times.append((out, st.st_mtime_ns))


def _extract(archive: Path, target: Path) -> None:
    """ADD of a local archive: the project's fd-based extractor, never tarfile's (its filters were bypassed:
    CVE-2025-4517). Owners come from the archive, as in Docker's legacy builder (--chown does not apply)."""
    from pyctr.image.unpack import unpack_archive

    try:
        with open(archive, "rb") as stream:
            unpack_archive(stream, target)
    except (UnsafeArchiveError, OSError) as e:
        raise BuildError(f"failed to extract {archive.name}: {e}") from None


def _http_only_opener() -> Any:
    """An opener following redirects to http(s) only: urllib would also follow ftp://, and a file://
    target must be a one-line refusal (Docker's http client refuses other schemes too). Imported lazily:
    urllib costs ~20 ms of every in-process build that fetches nothing."""
    import urllib.parse
    import urllib.request

    class HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
        def http_error_302(self, req, fp, code, msg, headers):  # type: ignore[no-untyped-def]
            target = urllib.parse.urljoin(req.full_url, headers.get("location") or headers.get("uri") or "")
            scheme = urllib.parse.urlsplit(target).scheme.lower()
            if scheme not in ("http", "https"):
                raise BuildError(f"failed to fetch {req.full_url}: redirect to a {scheme}:// URL refused "
                                 f"(only http and https are followed)")
            return super().http_error_302(req, fp, code, msg, headers)

        http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302

    return urllib.request.build_opener(HttpOnlyRedirects)


def fetch_url(url: str, into: Path, timeout: float = 60.0, max_bytes: int = MAX_DOWNLOAD_BYTES) -> SourceItem:
    """ADD <url>: the body, streamed to a file in `into` (never held in memory), becomes a 0600 file named
    after the URL's last path component; Last-Modified is its mtime, as in Docker. Bounded by `max_bytes`."""
    import http.client
    import urllib.error
    import urllib.parse

    name = posixpath.basename(urllib.parse.urlparse(url).path) or "index.html"
    opener = _http_only_opener()
    fd, tmp = tempfile.mkstemp(prefix="add-url-", dir=into)
    try:
        with os.fdopen(fd, "wb") as out, opener.open(url, timeout=timeout) as response:
            _check_declared_length(url, response.headers.get("Content-Length"), max_bytes)
            received = _copy_bounded(url, response, out, max_bytes)
            _check_complete(url, response.headers.get("Content-Length"), received)
            modified = response.headers.get("Last-Modified")
    except urllib.error.HTTPError as e:
        reason = str(e.reason).splitlines()[0] if str(e.reason) else ""  # a redirect loop's runs on 3 lines
        raise BuildError(f"failed to fetch {url}: HTTP {e.code} {reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as e:
        raise NotFoundError(f"failed to fetch {url}: {getattr(e, 'reason', None) or e}") from None
    return SourceItem(name=name, host=Path(tmp), kind="download", mode=0o600, mtime=_http_time(modified))


def _check_declared_length(url: str, declared: str | None, max_bytes: int) -> None:
    if declared and declared.strip().isdigit() and int(declared) > max_bytes:
        raise BuildError(f"failed to fetch {url}: {declared} bytes is more than ADD takes "
                         f"({max_bytes} bytes)")


def _check_complete(url: str, declared: str | None, received: int) -> None:
    """A body cut short of its Content-Length fails the build (Go: unexpected EOF); http.client's read(n)
    just returns what came, so without this a truncated file went into the image."""
    if declared and declared.strip().isdigit() and int(declared) != received:
        raise BuildError(f"failed to fetch {url}: unexpected EOF ({received} of {int(declared)} bytes)")


def _copy_bounded(url: str, response: BinaryIO, out: BinaryIO, max_bytes: int) -> int:
    """Copy in 1 MiB chunks; a body longer than `max_bytes` (whatever it declared) stops the build."""
    total = 0
    while chunk := response.read(1 << 20):
        total += len(chunk)
        if total > max_bytes:
            raise BuildError(f"failed to fetch {url}: the body is more than ADD takes ({max_bytes} bytes)")
        out.write(chunk)
    return total


def _http_time(value: str | None) -> int | None:
    if not value:
        return None
    import email.utils

    with contextlib.suppress(TypeError, ValueError):
        return int(email.utils.parsedate_to_datetime(value).timestamp())
    return None
