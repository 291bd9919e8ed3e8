"""`pull`: resolve a reference to a manifest, fetch config and layers, record the image.

Deciding (which endpoint, which manifest for this platform, which layers are
missing) is separated from doing (downloads into the store). Layers download
3 at a time, as Docker does, and each is unpacked while it arrives (GrowingBlob):
with overlay each layer is its own directory, so unpacking needs no ordering,
and a layer is published only once its blob was verified and stored.
The image record and tags are written last, so an interrupted pull lists
nothing and the next one resumes from what was already stored.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from pyctr.config import Config
from pyctr.errors import DigestMismatch, NotFoundError, PyctrError, RegistryError, StoreError
from pyctr.image.manifest import (
    Descriptor,
    ImageIndex,
    ImageManifest,
    Platform,
    layer_compression,
    parse_manifest,
    parse_platform,
    select_manifest,
)
from pyctr.image.reference import Reference, parse_reference
from pyctr.image.store import ImageRecord, ImageStore, LayerRecord, chain_ids

PARALLEL_DOWNLOADS = 3


@dataclass(frozen=True)
class ResolvedImage:
    """What the registry told us: the manifest to pull and the digest users pin."""

    repo_digest: str  # the digest of what the reference named (index or manifest)
    manifest: ImageManifest
    manifest_bytes: bytes


def sha256_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def resolve_manifest(client, ref: Reference, platform: Platform) -> ResolvedImage:
    """Fetch the reference's manifest, following an index to this platform's entry."""
    body, content_type, _ = client.get_manifest(ref.reference)
    repo_digest = sha256_of(body)
    if ref.digest and repo_digest != ref.digest:
        raise DigestMismatch(f"manifest for {ref.familiar} has digest {repo_digest}, not {ref.digest}")
    doc = parse_manifest(body, content_type)
    if isinstance(doc, ImageIndex):
        entry = select_manifest(doc, platform)
        body, content_type, _ = client.get_manifest(entry.digest)
        if sha256_of(body) != entry.digest:
            raise DigestMismatch(f"manifest {entry.digest} for {platform} does not match its digest")
        doc = parse_manifest(body, content_type or entry.media_type)
        if isinstance(doc, ImageIndex):
            raise RegistryError(f"manifest list entry {entry.digest} is itself a list: refusing nested indexes")
    return ResolvedImage(repo_digest, doc, body)


class Progress:
    """Docker-style per-layer progress: redrawn lines on a TTY, plain lines otherwise."""

    def __init__(self, out: TextIO | None, quiet: bool) -> None:
        self.out = out if out is not None else sys.stdout
        self.quiet = quiet
        self.tty = not quiet and hasattr(self.out, "isatty") and self.out.isatty()
        self._lock = threading.Lock()
        self._lines: list[str] = []
        self._status: dict[str, str] = {}

    def line(self, text: str) -> None:
        if self.quiet:
            return
        with self._lock:
            self.out.write(text + "\n")
            self.out.flush()
            if self.tty:
                self._lines = []

    def layer(self, short: str, status: str, transient: bool = False) -> None:
        if self.quiet:
            return
        with self._lock:
            if not self.tty:
                if not transient:
                    self.out.write(f"{short}: {status}\n")
                    self.out.flush()
                return
            if short not in self._status:
                self._lines.append(short)
                self._status[short] = status
                self.out.write(f"{short}: {status}\n")
            else:
                self._status[short] = status
                up = len(self._lines) - self._lines.index(short)
                self.out.write(f"\x1b[{up}A\r\x1b[2K{short}: {status}\x1b[{up}B\r")
            self.out.flush()


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.3g}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1000
    return f"{n}B"


def _bar(done: int, total: int) -> str:
    width = 50
    filled = int(width * done / total) if total else width
    arrow = ">" if filled < width else ""
    return f"[{'=' * max(filled - 1, 0)}{arrow}{' ' * (width - filled)}]  {_human(done)}/{_human(total)}"


def pull(config: Config, reference_str: str, platform: str | None = None, quiet: bool = False,
         out: TextIO | None = None, progress: Progress | None = None) -> ImageRecord:
    """Pull `reference_str` into the store and tag it; returns the image record."""
    from pyctr.image.auth import load_credentials
    from pyctr.image.registry import RegistryClient, endpoints_for
    from pyctr.platform_info import host_platform

    ref = parse_reference(reference_str)
    wanted = parse_platform(platform) if platform else Platform(*host_platform())
    progress = progress or Progress(out, quiet)
    store = ImageStore(config.paths)
    store.ensure()
    failures: list[PyctrError] = []
    for endpoint in endpoints_for(ref, config.registry_mirrors, config.insecure_registries):
        with RegistryClient(endpoint, ref.repository, load_credentials(endpoint.registry)) as client:
            try:
                resolved = resolve_manifest(client, ref, wanted)
            except (RegistryError, NotFoundError) as e:
                failures.append(e)
                if endpoint.mirror:
                    continue
                break
            return _pull_resolved(store, client, ref, resolved, progress)
    not_found = [e for e in failures if isinstance(e, NotFoundError)]
    if not_found:
        raise NotFoundError(f"manifest for {ref.familiar} not found: manifest unknown") from None
    raise failures[-1]


def _pull_resolved(store: ImageStore, client, ref: Reference, resolved: ResolvedImage,
                   progress: Progress) -> ImageRecord:
    manifest = resolved.manifest
    progress.line(f"{ref.tag or ref.digest}: Pulling from {ref.repository}")
    with store.gc_lock(shared=True):
        config_bytes = _fetch_config(store, client, manifest.config)
        config = _parse_config(config_bytes)
        layers = [d for d in manifest.layers if layer_compression(d.media_type) != "foreign"]
        diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
        if len(diff_ids) != len(layers):
            raise RegistryError(f"image config lists {len(diff_ids)} layers but the manifest has {len(layers)}")
        chains = chain_ids(diff_ids)
        up_to_date = store.lookup_name(ref) == manifest.config.digest
        records = _stored_image_layers(store, manifest.config.digest, chains) \
            or _fetch_layers(store, client, layers, diff_ids, chains, progress)
        image = store.put_image(config_bytes, records, resolved.manifest_bytes, manifest.media_type)
        # Named before the GC lock is released, so a concurrent prune never sees it dangling.
        if ref.tag and not ref.digest:
            store.tag(ref, image.id, announce=False)
        store.add_digest(ref, resolved.repo_digest, image.id)
    progress.line(f"Digest: {resolved.repo_digest}")
    status = "Image is up to date for" if up_to_date else "Downloaded newer image for"
    progress.line(f"Status: {status} {ref.familiar}")
    store.record_event("pull", ref.familiar, ref.familiar)
    return store.get_image(image.id)


def _stored_image_layers(store: ImageStore, image_id: str, chains: list[str]) -> list[LayerRecord] | None:
    """The layers of the image when it is stored already: dockerd then pulls nothing and prints no layer
    lines (no "Already exists"), only the digest and status."""
    try:
        image = store.get_image(image_id)
    except (NotFoundError, StoreError):
        return None
    return image.layers if [layer.chain_id for layer in image.layers] == chains else None


def _fetch_config(store: ImageStore, client, desc: Descriptor) -> bytes:
    if store.has_blob(desc.digest):
        return store.read_blob(desc.digest)
    data = client.get_blob_bytes(desc.digest)
    store.put_blob_bytes(data, desc.digest)
    return data


def _parse_config(data: bytes) -> dict:
    import json

    try:
        doc = json.loads(data)
    except ValueError:
        raise RegistryError("image config is not JSON") from None
    if not isinstance(doc, dict):
        raise RegistryError("image config is not a JSON object")
    return doc


def _fetch_layers(store: ImageStore, client, layers: list[Descriptor], diff_ids: list[str], chains: list[str],
                  progress: Progress) -> list[LayerRecord]:
    """Download and unpack the missing layers, PARALLEL_DOWNLOADS at a time."""
    results: list[LayerRecord | None] = [None] * len(layers)
    todo = []
    for i, desc in enumerate(layers):
        short = desc.digest[7:19]
        existing = store.get_layer(chains[i])
        if existing is not None:
            progress.layer(short, "Already exists")
            results[i] = existing
        else:
            progress.layer(short, "Pulling fs layer")
            todo.append(i)

    cancelled = threading.Event()

    def work(i: int) -> LayerRecord:
        desc = layers[i]
        blob = {"mediaType": desc.media_type, "digest": desc.digest, "size": desc.size}
        record = _download_and_unpack(store, client, desc, progress, cancelled,
                                      lambda stream: store.unpack_blob_layer(
                                          blob, diff_ids[i], chains[i], chains[i - 1] if i else None, stream=stream))
        progress.layer(desc.digest[7:19], "Pull complete")
        return record

    for i in todo[PARALLEL_DOWNLOADS:]:
        progress.layer(layers[i].digest[7:19], "Waiting")
    if todo:
        pool = ThreadPoolExecutor(max_workers=min(PARALLEL_DOWNLOADS, len(todo)))
        futures = {i: pool.submit(work, i) for i in todo}
        try:
            for i, future in futures.items():
                results[i] = future.result()
        except BaseException:
            # Ctrl-C or a failed layer: stop the other downloads at their next chunk instead of finishing them.
            cancelled.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
    return [r for r in results if r is not None]


class PullCancelled(PyctrError):
    """Another layer failed or the user interrupted: this download stops (its partial file stays for resume)."""


class NotStreamed(PyctrError):
    """The blob cannot be read as it arrives (it was stored already, or its download started over after bytes
    were read): unpack it from the store once the download is done."""


class GrowingBlob:
    """A blob read while its download writes it, so a layer unpacks as it arrives instead of after it is stored.

    The download says how far the file has grown; read() waits for bytes not written yet. It reports the end only
    after the download verified the blob's digest and stored it (`done`), so a layer unpacked from it is published
    from verified bytes only. A failed download ends it with that error; a download that starts the file over
    after bytes were read ends it with NotStreamed.
    """

    POLL_SECONDS = 0.1  # how often a waiting reader looks at the pull's cancel flag

    def __init__(self, cancelled: threading.Event) -> None:
        self._cond = threading.Condition()
        self._cancelled = cancelled
        self._fd = -1
        self._written = 0
        self._pos = 0
        self._done = False
        self._error: BaseException | None = None

    # -- the download's side ------------------------------------------------
    def opened(self, path: Path, offset: int) -> None:
        """The download writes `path`, which holds `offset` bytes already (a resumed partial download)."""
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        with self._cond:
            if self._fd >= 0:  # a second attempt, after a resumed partial failed verification
                os.close(self._fd)
                if self._pos:
                    self._fail(NotStreamed("the download started over"))
            self._fd, self._written = fd, offset
            self._cond.notify_all()

    def grew(self, offset: int) -> None:
        with self._cond:
            self._written = offset
            self._cond.notify_all()

    def restarted(self) -> None:
        """The download truncated the file to start from zero (the registry ignored a range request)."""
        with self._cond:
            if self._pos:
                self._fail(NotStreamed("the download started over"))
            self._written = 0

    def done(self) -> None:
        """Every byte is written, verified and stored."""
        with self._cond:
            self._done = True
            self._cond.notify_all()

    def failed(self, error: BaseException) -> None:
        with self._cond:
            self._fail(error)

    def _fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        self._cond.notify_all()

    # -- the unpacker's side ------------------------------------------------
    def read(self, n: int = -1) -> bytes:
        with self._cond:
            while True:
                if self._error is not None:
                    raise self._error
                if self._fd >= 0 and self._pos < self._written:
                    break
                if self._done:
                    if self._fd < 0:
                        raise NotStreamed("the blob was stored already")
                    return b""
                if self._cancelled.is_set():
                    raise PullCancelled("pull cancelled")
                self._cond.wait(self.POLL_SECONDS)
            want = self._written - self._pos if n < 0 else min(n, self._written - self._pos)
            data = os.pread(self._fd, want, self._pos)
            if not data:
                raise NotStreamed("the partial download shrank")
            self._pos += len(data)
            return data

    def close(self) -> None:
        with self._cond:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def _download_and_unpack(store: ImageStore, client, desc: Descriptor, progress: Progress,
                         cancelled: threading.Event, unpack: Callable[[GrowingBlob | None], LayerRecord]
                         ) -> LayerRecord:
    """Download a layer blob in a thread of its own while `unpack` reads it as it grows.

    When it cannot be read as it arrives (NotStreamed), the layer is unpacked from the stored blob once the
    download is done. A blob that fails verification is the error reported, even when its bad bytes made the
    unpack fail first.
    """
    growing = GrowingBlob(cancelled)
    failure: list[BaseException] = []

    def download() -> None:
        try:
            _download_blob(store, client, desc, progress, cancelled, growing)
            growing.done()
        except BaseException as exc:  # handed to the unpacking thread through `growing`, re-raised below
            failure.append(exc)
            growing.failed(exc)

    downloader = threading.Thread(target=download, name=f"download-{desc.digest[7:19]}", daemon=True)
    downloader.start()
    try:
        try:
            record = unpack(growing)
        except NotStreamed:
            record = None
        except (KeyboardInterrupt, PullCancelled):
            cancelled.set()
            raise
        except BaseException:
            # The archive looked bad (or the disk failed) before the download ended. If the blob fails
            # verification, that is the error to report, as Docker verifies before it extracts: let the download
            # finish and judge.
            downloader.join()
            if failure:
                raise failure[0] from None
            raise
        downloader.join()
        if failure:
            raise failure[0] from None
        return record if record is not None else unpack(None)
    finally:
        downloader.join()
        growing.close()


class _CancellableSink:
    """Passes chunks to the blob writer until the pull is cancelled, telling a reader of the growing blob."""

    def __init__(self, writer, cancelled: threading.Event, growing: GrowingBlob | None = None) -> None:
        self.writer = writer
        self.cancelled = cancelled
        self.growing = growing

    @property
    def offset(self) -> int:
        return self.writer.offset

    def write(self, data: bytes) -> None:
        if self.cancelled.is_set():
            raise PullCancelled("pull cancelled")
        self.writer.write(data)
        if self.growing is not None:
            self.growing.grew(self.writer.offset)

    def reset(self) -> None:
        self.writer.reset()
        if self.growing is not None:
            self.growing.restarted()


def _download_blob(store: ImageStore, client, desc: Descriptor, progress: Progress,
                   cancelled: threading.Event | None = None, growing: GrowingBlob | None = None) -> None:
    short = desc.digest[7:19]
    for attempt in (1, 2):
        with store.blob_writer(desc.digest, desc.size) as writer:
            if writer is None:
                progress.layer(short, "Download complete")
                return
            if growing is not None:
                growing.opened(writer.partial, writer.offset)
            if writer.offset:
                progress.layer(short, f"Resuming at {_human(writer.offset)}", transient=True)

            def on_progress(done: int) -> None:
                progress.layer(short, f"Downloading  {_bar(done, desc.size)}", transient=True)

            sink = _CancellableSink(writer, cancelled or threading.Event(), growing)
            try:
                client.fetch_blob(desc.digest, sink, desc.size, on_progress if progress.tty else None)
                progress.layer(short, "Verifying Checksum")
                writer.commit()
            except DigestMismatch:
                writer.discard()
                if attempt == 2 or not writer.resumed:
                    raise
                continue  # the partial we resumed was bad: it is gone now; download once more from zero
            progress.layer(short, "Download complete")
            return


def pull_all_tags(config: Config, reference_str: str, platform: str | None = None, quiet: bool = False,
                  out: TextIO | None = None) -> list[ImageRecord]:
    """`pull --all-tags`: every tag of the repository, one after the other."""
    from pyctr.errors import UsageError
    from pyctr.image.auth import load_credentials
    from pyctr.image.registry import RegistryClient, endpoints_for

    ref = parse_reference(reference_str, default_tag=False)
    if ref.tag or ref.digest:
        raise UsageError("tag can't be used with --all-tags/-a")
    failures: list[PyctrError] = []
    for endpoint in endpoints_for(ref, config.registry_mirrors, config.insecure_registries):
        with RegistryClient(endpoint, ref.repository, load_credentials(endpoint.registry)) as client:
            try:
                tags = client.list_tags()
                break
            except (RegistryError, NotFoundError) as e:
                failures.append(e)
    else:
        raise failures[-1]
    return [pull(config, str(ref.with_tag(tag)), platform, quiet, out) for tag in sorted(tags)]
