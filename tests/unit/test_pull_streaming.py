"""A layer unpacks while its blob downloads (pull.GrowingBlob), and is published only from verified bytes."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import threading
import time

import pytest

from pyctr.config import Paths
from pyctr.errors import DigestMismatch, RegistryError
from pyctr.image.layout import UNPACK_STAGING
from pyctr.image.manifest import Descriptor
from pyctr.image.pull import GrowingBlob, NotStreamed, Progress, PullCancelled, _download_and_unpack
from pyctr.image.store import ImageStore

GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def reader_result(blob: GrowingBlob, n: int = -1) -> dict:
    """Start a read in a thread; the dict gets `data` or `error` when it returns."""
    out: dict = {}

    def run() -> None:
        try:
            out["data"] = blob.read(n)
        except BaseException as exc:  # noqa: BLE001 - the test looks at it
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    out["thread"] = thread
    return out


@pytest.fixture
def partial(tmp_path):
    path = tmp_path / "blob.partial"
    path.write_bytes(b"")
    return path


def test_reads_wait_for_written_bytes_and_end_only_when_the_blob_is_done(partial):
    blob = GrowingBlob(threading.Event())
    blob.opened(partial, 0)
    waiting = reader_result(blob)
    time.sleep(0.2)
    assert waiting["thread"].is_alive()  # nothing written yet
    partial.write_bytes(b"abcdef")
    blob.grew(6)
    waiting["thread"].join(2)
    assert waiting["data"] == b"abcdef"
    at_end = reader_result(blob)
    time.sleep(0.2)
    assert at_end["thread"].is_alive()  # all written bytes read, but the download has not finished
    blob.done()
    at_end["thread"].join(2)
    assert at_end["data"] == b""
    blob.close()


def test_a_resumed_partial_is_read_from_its_start(partial):
    partial.write_bytes(b"0123456789")
    blob = GrowingBlob(threading.Event())
    blob.opened(partial, 10)
    assert blob.read(4) == b"0123"
    assert blob.read() == b"456789"
    blob.done()
    assert blob.read() == b""


def test_a_failed_download_fails_the_reader(partial):
    blob = GrowingBlob(threading.Event())
    blob.opened(partial, 0)
    waiting = reader_result(blob)
    blob.failed(RegistryError("connection reset"))
    waiting["thread"].join(2)
    assert isinstance(waiting["error"], RegistryError)


def test_starting_over_after_bytes_were_read_is_not_streamed(partial):
    partial.write_bytes(b"abc")
    blob = GrowingBlob(threading.Event())
    blob.opened(partial, 3)
    blob.restarted()  # nothing read yet: the reader just waits for the new bytes
    partial.write_bytes(b"xyz")
    blob.grew(3)
    assert blob.read() == b"xyz"
    blob.restarted()
    with pytest.raises(NotStreamed):
        blob.read()


def test_a_blob_stored_already_is_not_streamed():
    blob = GrowingBlob(threading.Event())
    blob.done()
    with pytest.raises(NotStreamed):
        blob.read()


def test_a_cancelled_pull_wakes_a_waiting_reader(partial):
    cancelled = threading.Event()
    blob = GrowingBlob(cancelled)
    blob.opened(partial, 0)
    waiting = reader_result(blob)
    cancelled.set()
    waiting["thread"].join(2)
    assert isinstance(waiting["error"], PullCancelled)


# ---------------------------------------------------------------- with a real store and a fake registry


def layer_blob(count: int = 300) -> tuple[bytes, str]:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for i in range(count):
            data = os.urandom(2000)
            info = tarfile.TarInfo(f"d/f{i}")
            info.size, info.mode, info.uid, info.gid = len(data), 0o644, os.getuid(), os.getgid()
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0), "sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()


class HalfThenRest:
    """A registry client that sends the first half of a blob, waits until someone read from it, then the rest."""

    def __init__(self, data: bytes, read_started: threading.Event, wait: float = 5.0, pause: float = 0.0) -> None:
        self.data = data
        self.read_started = read_started
        self.wait = wait
        self.pause = pause  # after the first read, before the rest: time for the unpack to get ahead
        self.overlapped = False

    def fetch_blob(self, digest, sink, size=None, on_progress=None) -> None:
        half = len(self.data) // 2
        sink.write(self.data[sink.offset:half])
        self.overlapped = self.read_started.wait(self.wait)
        time.sleep(self.pause)
        sink.write(self.data[half:])


class WatchedStream:
    def __init__(self, inner, read_started: threading.Event) -> None:
        self.inner = inner
        self.read_started = read_started

    def read(self, n: int = -1) -> bytes:
        data = self.inner.read(n)
        if data:
            self.read_started.set()
        return data


@pytest.fixture
def store(tmp_path):
    s = ImageStore(Paths(tmp_path / "root"))
    s.ensure()
    return s


def pull_layer(store, client, data: bytes, digest: str, diff_id: str, read_started: threading.Event):
    desc = Descriptor(GZIP_LAYER, digest, len(data))
    blob = {"mediaType": GZIP_LAYER, "digest": digest, "size": len(data)}

    def unpack(stream):
        watched = WatchedStream(stream, read_started) if stream is not None else None
        return store.unpack_blob_layer(blob, diff_id, diff_id, None, stream=watched)

    return _download_and_unpack(store, client, desc, Progress(io.StringIO(), quiet=True), threading.Event(), unpack)


def test_a_layer_unpacks_while_its_blob_downloads_and_is_published_after(store):
    data, diff_id = layer_blob()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    read_started = threading.Event()
    client = HalfThenRest(data, read_started)
    layer = pull_layer(store, client, data, digest, diff_id, read_started)
    assert client.overlapped, "the unpack did not read anything before the download ended"
    assert len(os.listdir(layer.diff_dir / "d")) == 300
    assert store.get_layer(diff_id) is not None
    assert store.has_blob(digest)


def test_a_blob_that_fails_verification_publishes_no_layer(store):
    data, diff_id = layer_blob()
    wrong = "sha256:" + hashlib.sha256(b"another blob").hexdigest()
    read_started = threading.Event()
    with pytest.raises(DigestMismatch):
        pull_layer(store, HalfThenRest(data, read_started), data, wrong, diff_id, read_started)
    assert store.get_layer(diff_id) is None
    assert not store.has_blob(wrong)
    assert [p.name for p in store.paths.tmp.iterdir() if p.name.startswith(UNPACK_STAGING)] == []


def test_a_stored_blob_is_unpacked_from_the_store(store):
    data, diff_id = layer_blob(20)
    digest = store.put_blob_bytes(data)
    read_started = threading.Event()
    client = HalfThenRest(data, read_started, wait=0)
    layer = pull_layer(store, client, data, digest, diff_id, read_started)
    assert len(os.listdir(layer.diff_dir / "d")) == 20


def test_corrupt_bytes_are_reported_as_a_failed_verification_not_a_bad_archive(store):
    """The unpack meets the corrupt bytes before the digest is known: the download's verdict still wins."""
    data, diff_id = layer_blob()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    corrupt = data[:100] + b"\xff" * 300 + data[400:]  # the first tar header: the unpack fails at once
    read_started = threading.Event()
    client = HalfThenRest(corrupt, read_started, pause=1.0)
    with pytest.raises(DigestMismatch):
        pull_layer(store, client, data, digest, diff_id, read_started)
    assert store.get_layer(diff_id) is None
    assert not store.has_blob(digest)
