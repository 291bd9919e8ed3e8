"""A decompressing, hashing, forward-only byte source for layer tars.

Unpacking a layer is bound by decompression (zlib inflates ~200 MB/s on one
core), so the inflating runs in a pump thread (zlib, ISA-L and zstd release
the GIL) while the caller parses tar headers and writes files. The pump also
hashes every uncompressed byte, because the diff_id is the sha256 of the whole
uncompressed stream (end-of-archive padding included), not of what the tar
parser happens to look at.

The source looks like a file to `tarfile` (read/tell/seek forward) so tarfile
can parse headers, and it hands file contents out as memoryviews of its chunks
so big files are written without extra copies.
"""

from __future__ import annotations

import hashlib
import queue
import struct
import tarfile
import threading
from collections.abc import Callable, Iterator
from typing import BinaryIO

from pyctr.errors import UnsafeArchiveError

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
READ_SIZE = 1 << 20  # compressed bytes per read from the blob stream
OUT_MAX = 4 << 20  # cap on one inflate call's output: bounds memory against zip bombs
QUEUE_DEPTH = 8  # chunks in flight between pump and parser (<= 32 MiB)

# Media type -> compression it declares. The blob's magic decides (as Docker's
# and containerd's DecompressStream do: real registries hold mislabelled
# layers); the type only has to be a layer type we can apply.
LAYER_MEDIA_TYPES = {
    "application/vnd.oci.image.layer.v1.tar": "tar",
    "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar": "tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": "zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.diff.tar": "tar",
}


def detect_compression(media_type: str | None, head: bytes) -> str:
    """Return "gzip", "zstd" or "tar" for a blob starting with `head`.

    Refuses media types that are not (Linux) layers, e.g. Windows foreign
    layers or a config blob passed by mistake.
    """
    if media_type is not None and media_type not in LAYER_MEDIA_TYPES:
        raise UnsafeArchiveError(f"unsupported layer media type {media_type!r}")
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return "tar"


def read_up_to(stream: BinaryIO, n: int) -> bytes:
    """Read up to `n` bytes even from a stream that returns short reads."""
    parts: list[bytes] = []
    got = 0
    while got < n:
        data = stream.read(n - got)
        if not data:
            break
        parts.append(data)
        got += len(data)
    return b"".join(parts)


def _zlib_module():
    """ISA-L's inflate is ~2x zlib's and releases the GIL; zlib is the fallback."""
    try:
        from isal import isal_zlib

        return isal_zlib
    except ImportError:  # pragma: no cover - isal is a declared dependency
        import zlib

        return zlib


def _gunzip_chunks(stream: BinaryIO, head: bytes) -> Iterator[bytes]:
    """Inflate a (possibly multi-member) gzip stream, at most OUT_MAX bytes at a time."""
    zmod = _zlib_module()
    inflater = None
    pending = head
    while True:
        if not pending:
            pending = stream.read(READ_SIZE)
            if not pending:
                break
        if inflater is None:
            if not pending.startswith(GZIP_MAGIC[: len(pending)]):
                raise UnsafeArchiveError("layer blob has trailing data after its gzip stream")
            inflater = zmod.decompressobj(31)
        out = inflater.decompress(pending, OUT_MAX)
        if out:
            yield out
        pending = inflater.unconsumed_tail
        while len(out) == OUT_MAX and not pending and not inflater.eof:
            # Output was capped with all input taken in: drain what is pending.
            out = inflater.decompress(b"", OUT_MAX)
            if out:
                yield out
            pending = inflater.unconsumed_tail
        if inflater.eof:
            pending = inflater.unused_data + pending
            inflater = None
    if inflater is not None and not inflater.eof:
        raise UnsafeArchiveError("layer blob is a truncated gzip stream")


class _Prefixed:
    """A read-only stream with `head` put back in front of `stream`."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head = head
        self._stream = stream

    def read(self, n: int = -1) -> bytes:
        if self._head:
            data, self._head = (self._head, b"") if n < 0 or n >= len(self._head) else (
                self._head[:n], self._head[n:])
            return data
        return self._stream.read(n)


def _unzstd_chunks(stream: BinaryIO, head: bytes) -> Iterator[bytes]:
    import zstandard  # lazy: only zstd layers need it

    reader = zstandard.ZstdDecompressor().stream_reader(
        _Prefixed(head, stream), read_size=READ_SIZE, read_across_frames=True)
    while True:
        out = reader.read(OUT_MAX)
        if not out:
            return
        yield out


def _plain_chunks(stream: BinaryIO, head: bytes) -> Iterator[bytes]:
    if head:
        yield head
    while True:
        data = stream.read(READ_SIZE)
        if not data:
            return
        yield data


_DECODERS: dict[str, Callable[[BinaryIO, bytes], Iterator[bytes]]] = {
    "gzip": _gunzip_chunks,
    "zstd": _unzstd_chunks,
    "tar": _plain_chunks,
}

_EOF = object()


class SourceError(Exception):
    """The blob stream itself failed (e.g. a dropped download): not the archive's fault.

    Wrapped so it is not mistaken for a filesystem OSError while a file is
    being written; unpack_layer re-raises `original` unchanged.
    """

    def __init__(self, original: BaseException) -> None:
        super().__init__(str(original))
        self.original = original


def _is_codec_error(exc: BaseException) -> bool:
    """True for a decompressor's complaint about corrupt input (zlib, ISA-L, zstd)."""
    name = type(exc).__name__
    return name in ("error", "IsalError", "ZstdError") or type(exc).__module__ in ("zlib", "zstandard")


class _Pump(threading.Thread):
    """Runs a decoder, hashes its output and queues it for the parser."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        super().__init__(name="layer-inflate", daemon=True)
        self._chunks = chunks
        self.queue: queue.Queue[object] = queue.Queue(QUEUE_DEPTH)
        self.cancelled = threading.Event()
        self.hasher = hashlib.sha256()
        self.size = 0

    def _put(self, item: object) -> bool:
        while not self.cancelled.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run(self) -> None:
        try:
            for chunk in self._chunks:
                self.hasher.update(chunk)
                self.size += len(chunk)
                if not self._put(chunk):
                    return
            self._put(_EOF)
        except BaseException as exc:  # handed to the parser thread, which raises it
            self._put(exc)


class LayerSource:
    """Uncompressed bytes of a layer blob, read forward once.

    Use as a context manager; `diff_id` and `size` are valid after `drain()`.
    """

    def __init__(self, stream: BinaryIO, media_type: str | None = None, *, threaded: bool = True) -> None:
        head = read_up_to(stream, 4)
        self.compression = detect_compression(media_type, head)
        chunks = _DECODERS[self.compression](stream, head)
        self._pump: _Pump | None = None
        self._inline: Iterator[bytes] | None = None
        self._hasher = hashlib.sha256()
        self._size = 0
        if threaded:
            self._pump = _Pump(chunks)
            self._pump.start()
        else:
            self._inline = chunks
        self._buf = b""
        self._off = 0
        self._pos = 0
        self._eof = False

    # -- chunk supply -----------------------------------------------------
    def _next_chunk(self) -> bool:
        """Load the next chunk into the buffer; False at the end of the stream."""
        if self._eof:
            return False
        if self._pump is not None:
            item = self._pump.queue.get()
        else:
            assert self._inline is not None
            try:
                item = next(self._inline)
            except StopIteration:
                item = _EOF
            except BaseException as exc:
                item = exc
            if isinstance(item, bytes):
                self._hasher.update(item)
                self._size += len(item)
        if item is _EOF:
            self._eof = True
            return False
        if isinstance(item, BaseException):
            self._eof = True
            if _is_codec_error(item):
                raise UnsafeArchiveError(f"layer blob is not valid {self.compression}: {item}") from None
            if isinstance(item, UnsafeArchiveError):
                raise item
            raise SourceError(item)
        assert isinstance(item, bytes)
        self._buf = item
        self._off = 0
        return True

    def _available(self) -> int:
        return len(self._buf) - self._off

    # -- file-like interface for tarfile -----------------------------------
    def tell(self) -> int:
        return self._pos

    def read(self, n: int = -1) -> bytes:
        """Read up to `n` bytes (fewer only at the end of the stream)."""
        if n < 0:
            n = 1 << 62
        if self._available() >= n:
            data = self._buf[self._off:self._off + n]
            self._off += n
            self._pos += n
            return data
        parts: list[bytes | memoryview] = []
        for view in self.views(n, exact=False):
            parts.append(bytes(view))
        return b"".join(parts)

    def seek(self, pos: int, whence: int = 0) -> int:
        """Move forward to `pos` (tarfile skips data it does not need)."""
        if whence != 0 or pos < self._pos:
            raise UnsafeArchiveError("layer tar needs a backward seek (malformed archive)")
        self.skip(pos - self._pos)
        return self._pos

    # -- fast paths --------------------------------------------------------
    def views(self, n: int, *, exact: bool = True) -> Iterator[memoryview]:
        """Yield the next `n` bytes as memoryviews of the underlying chunks."""
        while n > 0:
            if not self._available() and not self._next_chunk():
                if exact:
                    raise UnsafeArchiveError("layer tar is truncated")
                return
            take = min(n, self._available())
            view = memoryview(self._buf)[self._off:self._off + take]
            self._off += take
            self._pos += take
            n -= take
            yield view

    def skip(self, n: int) -> None:
        for _ in self.views(n, exact=False):
            pass

    def drain(self) -> None:
        """Consume the rest of the stream so the hash covers every byte."""
        self._off = len(self._buf)
        while self._next_chunk():
            self._pos += len(self._buf)
            self._off = len(self._buf)
        if self._pump is not None:
            self._pump.join()

    @property
    def diff_id(self) -> str:
        hasher = self._pump.hasher if self._pump is not None else self._hasher
        return "sha256:" + hasher.hexdigest()

    @property
    def size(self) -> int:
        return self._pump.size if self._pump is not None else self._size

    def close(self) -> None:
        """Stop the pump (after an error the rest of the blob is not read)."""
        if self._pump is not None and self._pump.is_alive():
            self._pump.cancelled.set()
            while True:
                try:
                    self._pump.queue.get_nowait()
                except queue.Empty:
                    break
            self._pump.join()

    def __enter__(self) -> LayerSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- faster header decoding --------------------------------------------------------------------------

# Plain POSIX ustar headers of ordinary types are most of a layer; tarfile's
# generic decoder spends ~100 us on each. Anything else (GNU headers, PAX
# records, sparse, base-256 numbers, bad checksums) goes to tarfile's own.
_USTAR_MAGIC = b"ustar\x0000"
_FAST_TYPES = frozenset((b"0", b"\x00", b"1", b"2", b"3", b"4", b"5", b"6", b"7"))


_HEADER = struct.Struct("100s8s8s8s12s12s8sc100s8s32s32s8s8s155s")


def _octal(field: bytes) -> int:
    """An octal header number; ValueError for base-256 or junk (the caller falls back)."""
    if field[0] >= 0x80:
        raise ValueError("base-256 number")
    digits = field.split(b"\x00", 1)[0].strip()
    return int(digits, 8) if digits else 0


def _text(field: bytes, encoding: str, errors: str) -> str:
    return field.split(b"\x00", 1)[0].decode(encoding, errors)


class FastTarInfo(tarfile.TarInfo):
    """tarfile.TarInfo with a fast path for plain ustar headers; same results (unit-tested)."""

    @classmethod
    def frombuf(cls, buf: bytes, encoding: str, errors: str) -> tarfile.TarInfo:
        if len(buf) == tarfile.BLOCKSIZE and buf[0] and buf[257:265] == _USTAR_MAGIC and buf[156:157] in _FAST_TYPES:
            try:
                info = cls._fast(buf, encoding, errors)
            except (ValueError, UnicodeError):
                info = None
            if info is not None:
                return info
        return super().frombuf(buf, encoding, errors)

    @classmethod
    def _fast(cls, buf: bytes, encoding: str, errors: str) -> tarfile.TarInfo | None:
        (name, mode, uid, gid, size, mtime, chksum_field, kind, linkname, _magic, uname, gname, devmajor, devminor,
         prefix) = _HEADER.unpack_from(buf)
        chksum = _octal(chksum_field)
        if chksum != sum(buf) - sum(chksum_field) + 256:
            return None
        obj = cls()
        obj.name = _text(name, encoding, errors)
        obj.mode = _octal(mode)
        obj.uid = _octal(uid)
        obj.gid = _octal(gid)
        obj.size = _octal(size)
        obj.mtime = _octal(mtime)
        obj.chksum = chksum
        obj.type = kind
        obj.linkname = _text(linkname, encoding, errors)
        obj.uname = _text(uname, encoding, errors)
        obj.gname = _text(gname, encoding, errors)
        obj.devmajor = _octal(devmajor)
        obj.devminor = _octal(devminor)
        if kind == tarfile.AREGTYPE and obj.name.endswith("/"):
            obj.type = tarfile.DIRTYPE  # old V7 directories
        if obj.type == tarfile.DIRTYPE:
            obj.name = obj.name.rstrip("/")
        if prefix[0]:
            obj.name = _text(prefix, encoding, errors) + "/" + obj.name
        return obj
