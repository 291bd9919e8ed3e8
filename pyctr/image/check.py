"""`pyctr system check`, image half: verify the content store and repair what is safe to repair.

The store is crash-safe by ordering (store.py): a SIGKILL leaves at worst a layer
directory without layer.json, a temp file in tmp/, or a mount of a build that
died. Disk corruption or a hand edit can leave worse: a blob whose bytes do not
match its name, an image record naming content that is gone, a tag naming an
image that is gone. Everything here is repaired by *removing* the damaged thing
(and whatever depends on it): a later pull or build recreates content, while
guessing at a fix could hand a container a wrong root filesystem.

Deciding is pure (`decide(snapshot) -> [Finding]`) so it is unit tested with
made-up snapshots; `snapshot_store` reads the disk and `apply` acts. `check_store`
runs the three while holding the store's GC lock exclusively: pulls, builds and
loads hold it shared, so nothing being written right now can look "partial".
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyctr.config import Paths
from pyctr.errors import InvalidReference
from pyctr.fsutil import atomic_write_json, fsync_dir, read_json, remove_tree
from pyctr.image.layout import (
    HEX64,
    LAYER_DIFF,
    LAYER_RECORD,
    PARTIAL_BLOB,
    PID_NAMED,
    PID_SUFFIXED,
    REPOSITORIES,
    StoreLayout,
    pid_alive,
)

_MONITOR_PYC = re.compile(r"^monitor-.+\.pyc$")


# ------------------------------------------------------------------ findings (shared with runtime/check.py)

@dataclass(frozen=True)
class Finding:
    """One problem: what is wrong with which thing, and the repair that fixes it (None: cannot be repaired).

    `repair` names an action the applier knows ("remove_blob", "remove_image"...); `target` is what it acts on.
    """

    subject: str
    problem: str
    repair: str | None
    target: str = ""
    detail: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Outcome:
    """A finding after the repair was tried: `repaired` False means the problem remains."""

    finding: Finding
    repaired: bool
    note: str = ""

    def line(self) -> str:
        """The one line `system check` prints for this problem."""
        f = self.finding
        if self.repaired:
            status = f"repaired: {self.note}" if self.note else "repaired"
        elif f.repair is None:
            status = f"not repaired: {self.note}" if self.note else "not repaired"
        else:
            status = f"not repaired: {self.note}" if self.note else "not repaired (dry run)"
        return f"{f.subject}: {f.problem}: {status}"


def apply_findings(findings: Iterable[Finding], actions: dict[str, Callable[[Finding], str]],
                   repair: bool) -> list[Outcome]:
    """Run each finding's repair action (unless `repair` is False); an action returns what it did."""
    outcomes = []
    for finding in findings:
        action = actions.get(finding.repair) if finding.repair else None
        if not repair or action is None:
            note = "" if repair or finding.repair is None else f"would {finding.repair.replace('_', ' ')}"
            outcomes.append(Outcome(finding, False, finding.detail.get("why", "") if finding.repair is None
                                    else note))
            continue
        try:
            outcomes.append(Outcome(finding, True, action(finding)))
        except Exception as e:  # noqa: BLE001 - one failed repair must not stop the others; it is reported
            outcomes.append(Outcome(finding, False, f"{type(e).__name__}: {e}"))
    return outcomes


# ------------------------------------------------------------------ the store as read from disk

@dataclass(frozen=True)
class BlobFacts:
    """A file in blobs/sha256: its size and the sha256 of its bytes (None: not a regular file)."""

    name: str
    size: int
    actual_hex: str | None


@dataclass(frozen=True)
class LayerFacts:
    """A directory in layers/: its parsed layer.json (None when missing/unreadable) and what else is there."""

    name: str
    record: dict | None
    record_error: str = ""  # "" | "missing" | "unreadable: ..."
    has_diff: bool = True
    stray_files: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImageFacts:
    """An image record in images/, with the config's diff_ids when the config blob is readable."""

    name: str  # file stem (config hex)
    doc: dict | None
    error: str = ""
    config_diff_ids: tuple[str, ...] | None = None


@dataclass(frozen=True)
class TmpEntry:
    """An entry of tmp/: its name, whether a file system is mounted on or under it, who made it."""

    name: str
    is_dir: bool
    mounts: tuple[str, ...] = ()
    pid: int | None = None
    pid_alive: bool = False


@dataclass(frozen=True)
class StoreSnapshot:
    blobs: dict[str, BlobFacts] = field(default_factory=dict)
    layers: dict[str, LayerFacts] = field(default_factory=dict)
    images: dict[str, ImageFacts] = field(default_factory=dict)
    repositories: dict | None = field(default_factory=lambda: {"tags": {}, "digests": {}})
    repositories_error: str = ""
    tmp: tuple[TmpEntry, ...] = ()


# ------------------------------------------------------------------ deciding (pure)

def _short(digest_or_hex: str) -> str:
    hex_part = digest_or_hex[7:] if digest_or_hex.startswith("sha256:") else digest_or_hex
    return "sha256:" + hex_part[:12]


def _hex_of(digest: Any) -> str | None:
    if isinstance(digest, str) and digest.startswith("sha256:") and HEX64.match(digest[7:]):
        return digest[7:]
    return None


def expected_chain_id(diff_id: str, parent: str | None) -> str:
    """OCI ChainID of a layer from its diff id and its parent's chain id."""
    if not parent:
        return diff_id
    return "sha256:" + hashlib.sha256(f"{parent} {diff_id}".encode()).hexdigest()


def decide_blobs(blobs: dict[str, BlobFacts]) -> tuple[list[Finding], set[str]]:
    """Blobs whose bytes do not match their name (or that are not blobs at all) are removed."""
    findings, good = [], set()
    for name, facts in sorted(blobs.items()):
        if not HEX64.match(name):
            findings.append(Finding(f"blob file {name}", "not a blob (stray file in blobs/sha256)",
                                    "remove_blob", name))
        elif facts.actual_hex is None:
            findings.append(Finding(f"blob {_short(name)}", "not a regular file", "remove_blob", name))
        elif facts.actual_hex != name:
            findings.append(Finding(f"blob {_short(name)}", f"content does not match its digest "
                                    f"(sha256:{facts.actual_hex[:12]}, {facts.size} bytes)", "remove_blob", name))
        else:
            good.add(name)
    return findings, good


def layer_problem(facts: LayerFacts) -> str:
    """Why a layer directory is not a complete layer ("" if it is)."""
    if not HEX64.match(facts.name):
        return "not a layer directory (stray entry in layers/)"
    if facts.record is None:
        return "incomplete (no layer.json: an unpack was interrupted)" if facts.record_error == "missing" \
            else f"layer.json is {facts.record_error or 'unreadable'}"
    rec = facts.record
    if rec.get("chain_id") != "sha256:" + facts.name:
        return f"layer.json names chain id {rec.get('chain_id')!r}, not its directory's"
    if not _hex_of(rec.get("diff_id")):
        return f"layer.json has an invalid diff_id {rec.get('diff_id')!r}"
    if expected_chain_id(rec["diff_id"], rec.get("parent")) != rec["chain_id"]:
        return "layer.json chain id does not follow from its parent and diff id"
    if not facts.has_diff:
        return "its diff/ directory is missing"
    return ""


def decide_layers(layers: dict[str, LayerFacts]) -> tuple[list[Finding], set[str]]:
    findings, good = [], set()
    for name, facts in sorted(layers.items()):
        problem = layer_problem(facts)
        if problem:
            findings.append(Finding(f"layer {_short(name)}", problem, "remove_layer", name))
            continue
        good.add(name)
        for stray in facts.stray_files:
            findings.append(Finding(f"layer {_short(name)}", f"leftover temp file {stray}", "remove_layer_file",
                                    f"{name}/{stray}"))
    return findings, good


def image_problem(facts: ImageFacts, good_blobs: set[str], good_layers: set[str],
                  blob_sizes: dict[str, int]) -> str:
    """Why an image record cannot be used ("" if everything it names is present and consistent)."""
    if not HEX64.match(facts.name) or (facts.doc is None and facts.error.startswith(("a leftover", "not an"))):
        return facts.error or "not an image record (stray file in images/)"
    doc = facts.doc
    if doc is None:
        return f"record is {facts.error or 'unreadable'}"
    if doc.get("id") != "sha256:" + facts.name:
        return f"record names image {doc.get('id')!r}, not its file's"
    if facts.name not in good_blobs:
        return "its config blob is missing"
    layers = doc.get("layers")
    if not isinstance(layers, list):
        return "record has no layer list"
    for chain in layers:
        hex_part = _hex_of(chain)
        if hex_part is None or hex_part not in good_layers:
            return f"its layer {_short(str(chain))} is missing"
    if facts.config_diff_ids is not None:
        chains, parent = [], None
        for diff_id in facts.config_diff_ids:
            parent = expected_chain_id(diff_id, parent)
            chains.append(parent)
        if chains != layers:
            return "its layers do not match the config's rootfs.diff_ids"
    manifest = doc.get("manifest_digest")
    if manifest and _hex_of(manifest) not in good_blobs:
        return f"its manifest blob {_short(str(manifest))} is missing"
    for blob in doc.get("layer_blobs") or []:
        if not blob:
            continue
        hex_part = _hex_of(blob.get("digest"))
        if hex_part is None or hex_part not in good_blobs:
            return f"its layer blob {_short(str(blob.get('digest')))} is missing"
        size = blob.get("size")
        if isinstance(size, int) and size != blob_sizes.get(hex_part, size):
            return f"its layer blob {_short(hex_part)} has {blob_sizes[hex_part]} bytes, not {size}"
    return ""


def decide_images(images: dict[str, ImageFacts], good_blobs: set[str], good_layers: set[str],
                  blob_sizes: dict[str, int]) -> tuple[list[Finding], set[str]]:
    findings, good = [], set()
    for name, facts in sorted(images.items()):
        problem = image_problem(facts, good_blobs, good_layers, blob_sizes)
        if problem:
            subject = f"image {_short(name)}" if HEX64.match(name) else f"images/{name}"
            findings.append(Finding(subject, problem, "remove_image", name))
        else:
            good.add(name)
    return findings, good


def _parses(name: str) -> bool:
    from pyctr.image.reference import parse_reference

    try:
        parse_reference(name)
    except (InvalidReference, ValueError):
        return False
    return True


def decide_repositories(repositories: dict | None, error: str, good_images: set[str],
                        removed_images: frozenset[str] = frozenset()) -> list[Finding]:
    """Names pointing at images that are gone (or that no longer parse) are removed.

    Names of an image being removed go with it (remove_image), so they are not listed twice.
    """
    if repositories is None:
        return [Finding(f"images/{REPOSITORIES}", error or "unreadable", "reset_repositories", REPOSITORIES)]
    findings = []
    for key in ("tags", "digests"):
        entries = repositories.get(key) or {}
        if not isinstance(entries, dict):
            findings.append(Finding(f"images/{REPOSITORIES}", f"'{key}' is not a mapping", "reset_repositories",
                                    REPOSITORIES))
            continue
        for name, image_id in sorted(entries.items()):
            hex_part = _hex_of(image_id)
            if hex_part in removed_images:
                continue
            if hex_part is None or hex_part not in good_images:
                findings.append(Finding(f"name {name}", f"points to missing image {_short(str(image_id))}",
                                        "untag", name, {"key": key}))
            elif not _parses(name):
                findings.append(Finding(f"name {name}", "is not a valid reference", "untag", name, {"key": key}))
    return findings


def decide_tmp(entries: Iterable[TmpEntry], stored_blobs: set[str]) -> list[Finding]:
    """Leftovers of processes that died; resumable downloads and the compiled monitor stay.

    Called with the GC lock held exclusively, so no pull, build or load is running:
    their unnamed scratch directories are orphans too. Pid-named files of a live
    process (a `save` in progress) are kept.
    """
    findings = []
    for entry in sorted(entries, key=lambda e: e.name):
        subject = f"tmp/{entry.name}"
        if entry.mounts:
            findings.append(Finding(subject, f"a file system is still mounted there ({len(entry.mounts)})",
                                    "remove_tmp", entry.name))
            continue
        if _MONITOR_PYC.match(entry.name):
            continue
        partial = PARTIAL_BLOB.match(entry.name)
        if partial:
            if partial.group(1) in stored_blobs:
                findings.append(Finding(subject, "partial download of a blob already stored", "remove_tmp",
                                        entry.name))
            continue  # resumable: the next pull continues from it
        if entry.pid is not None and entry.pid_alive:
            continue
        what = "left by a process that died" if entry.pid is not None else "orphan scratch entry"
        findings.append(Finding(subject, what, "remove_tmp", entry.name))
    return findings


def decide(snapshot: StoreSnapshot) -> list[Finding]:
    """Every problem of the store, in the order they must be repaired (content first, then names)."""
    blob_findings, good_blobs = decide_blobs(snapshot.blobs)
    layer_findings, good_layers = decide_layers(snapshot.layers)
    sizes = {name: facts.size for name, facts in snapshot.blobs.items()}
    image_findings, good_images = decide_images(snapshot.images, good_blobs, good_layers, sizes)
    removed = frozenset(f.target for f in image_findings)
    repo_findings = decide_repositories(snapshot.repositories, snapshot.repositories_error, good_images, removed)
    tmp_findings = decide_tmp(snapshot.tmp, good_blobs)
    return blob_findings + layer_findings + image_findings + repo_findings + tmp_findings


# ------------------------------------------------------------------ reading the disk

def _sha256_file(path: Path) -> str | None:
    h = hashlib.sha256()
    try:
        with open(path, "rb", buffering=0) as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    except (IsADirectoryError, PermissionError, OSError):
        return None
    return h.hexdigest()


def _read_blobs(directory: Path) -> dict[str, BlobFacts]:
    out = {}
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(directory):
            regular = entry.is_file(follow_symlinks=False)
            size = entry.stat(follow_symlinks=False).st_size if regular else 0
            out[entry.name] = BlobFacts(entry.name, size, _sha256_file(Path(entry.path)) if regular else None)
    return out


def _read_layer(path: Path) -> LayerFacts:
    if not path.is_dir() or path.is_symlink():
        return LayerFacts(path.name, None, "not a directory", False)
    record, error = None, ""
    try:
        record = read_json(path / LAYER_RECORD)
        if not isinstance(record, dict):
            record, error = None, "unreadable: not a JSON object"
    except FileNotFoundError:
        error = "missing"
    except (OSError, ValueError) as e:
        error = f"unreadable: {e}"
    strays = tuple(sorted(n for n in os.listdir(path) if n.startswith(f".{LAYER_RECORD}.tmp.")))
    return LayerFacts(path.name, record, error, (path / LAYER_DIFF).is_dir(), strays)


def _read_layers(directory: Path) -> dict[str, LayerFacts]:
    with contextlib.suppress(FileNotFoundError):
        return {p.name: _read_layer(p) for p in directory.iterdir()}
    return {}


def _read_image(path: Path, blobs_dir: Path) -> ImageFacts:
    try:
        doc = read_json(path)
    except (OSError, ValueError) as e:
        return ImageFacts(path.stem, None, f"unreadable: {e}")
    if not isinstance(doc, dict):
        return ImageFacts(path.stem, None, "unreadable: not a JSON object")
    diff_ids = None
    with contextlib.suppress(OSError, ValueError, AttributeError, TypeError):
        config = json.loads((blobs_dir / path.stem).read_bytes()) if HEX64.match(path.stem) else {}
        ids = (config.get("rootfs") or {}).get("diff_ids")
        diff_ids = tuple(ids) if isinstance(ids, list) else None
    return ImageFacts(path.stem, doc, "", diff_ids)


def _read_images(directory: Path, blobs_dir: Path) -> dict[str, ImageFacts]:
    out = {}
    with contextlib.suppress(FileNotFoundError):
        for path in directory.iterdir():
            if path.name.startswith(REPOSITORIES):
                continue  # the tags file and its backups
            temp = PID_SUFFIXED.match(path.name)
            if temp:  # an atomic write's temp file: in progress if its writer lives
                if not pid_alive(int(temp.group(1))):
                    out[path.name] = ImageFacts(path.name, None, "a leftover temp file of a process that died")
                continue
            if path.suffix == ".json":
                out[path.stem] = _read_image(path, blobs_dir)
            else:
                out[path.name] = ImageFacts(path.name, None, "not an image record (stray file in images/)")
    return out


def _read_repositories(directory: Path) -> tuple[dict | None, str]:
    try:
        doc = read_json(directory / REPOSITORIES)
    except FileNotFoundError:
        return {"tags": {}, "digests": {}}, ""
    except (OSError, ValueError) as e:
        return None, f"unreadable: {e}"
    if not isinstance(doc, dict):
        return None, "unreadable: not a JSON object"
    return doc, ""


def mount_points() -> list[str]:
    """Every mount point of this mount namespace (mountinfo field 5, octal escapes decoded)."""
    points = []
    with contextlib.suppress(OSError), open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 4:
                points.append(_unescape(fields[4].decode(errors="surrogateescape")))
    return points


def _unescape(text: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def mounts_under(prefix: Path, points: list[str]) -> list[str]:
    """Mount points at or below `prefix`, deepest first (the order to unmount them)."""
    base = str(prefix).rstrip("/")
    found = [p for p in points if p == base or p.startswith(base + "/")]
    return sorted(set(found), key=lambda p: (-p.count("/"), p))


def _read_tmp(directory: Path, points: list[str]) -> tuple[TmpEntry, ...]:
    entries = []
    with contextlib.suppress(FileNotFoundError):
        for path in directory.iterdir():
            m = PID_NAMED.match(path.name) or PID_SUFFIXED.match(path.name)
            pid = int(m.group(1)) if m and not PARTIAL_BLOB.match(path.name) else None
            entries.append(TmpEntry(path.name, path.is_dir() and not path.is_symlink(),
                                    tuple(mounts_under(path, points)), pid, pid is not None and pid_alive(pid)))
    return tuple(entries)


def snapshot_store(paths: Paths) -> StoreSnapshot:
    """Read everything `decide` needs (hashes every blob: the one slow part, ~1 s per 500 MB)."""
    repositories, repo_error = _read_repositories(paths.images)
    return StoreSnapshot(
        blobs=_read_blobs(paths.blobs),
        layers=_read_layers(paths.layers),
        images=_read_images(paths.images, paths.blobs),
        repositories=repositories,
        repositories_error=repo_error,
        tmp=_read_tmp(paths.tmp, mount_points()),
    )


# ------------------------------------------------------------------ repairing

Unmount = Callable[[list[str]], None]


def cannot_unmount(points: list[str]) -> None:
    """The unmounter of a check that was given none: a mounted tmp/ entry stays (reported, not repaired)."""
    if points:
        raise OSError(f"{len(points)} mount(s) to detach and no unmounter given")


class StoreRepairer:
    """The actions `decide`'s findings name, applied to one root.

    Unmounting is a kernel primitive of the runtime (its syscalls module), which the image package does not
    import: the caller hands it in (`pyctr.runtime.check.unmount_all`)."""

    def __init__(self, paths: Paths, unmount: Unmount = cannot_unmount) -> None:
        self.paths = paths
        self.layout = StoreLayout(paths)
        self.unmount = unmount

    def actions(self) -> dict[str, Callable[[Finding], str]]:
        return {"remove_blob": self.remove_blob, "remove_layer": self.remove_layer,
                "remove_layer_file": self.remove_layer_file, "remove_image": self.remove_image,
                "untag": self.untag, "reset_repositories": self.reset_repositories, "remove_tmp": self.remove_tmp}

    def _records_lock(self) -> contextlib.AbstractContextManager[int]:
        return self.layout.records_lock()

    def remove_blob(self, finding: Finding) -> str:
        remove_tree(self.paths.blobs / finding.target)
        return "removed"

    def remove_layer(self, finding: Finding) -> str:
        remove_tree(self.paths.layers / finding.target)
        return "removed"

    def remove_layer_file(self, finding: Finding) -> str:
        (self.paths.layers / finding.target).unlink(missing_ok=True)
        return "removed"

    def remove_image(self, finding: Finding) -> str:
        image_id = "sha256:" + finding.target
        with self._records_lock():
            repos, _ = _read_repositories(self.paths.images)
            removed = 0
            if repos is not None:
                for key in ("tags", "digests"):
                    entries = repos.get(key) if isinstance(repos.get(key), dict) else {}
                    for name in [n for n, i in entries.items() if i == image_id]:
                        del entries[name]
                        removed += 1
                if removed:
                    atomic_write_json(self.paths.images / REPOSITORIES, repos)
            for path in (self.paths.images / f"{finding.target}.json", self.paths.images / finding.target):
                path.unlink(missing_ok=True)
            fsync_dir(self.paths.images)
        return f"record removed with {removed} name(s); pull or build it again"

    def untag(self, finding: Finding) -> str:
        with self._records_lock():
            repos, _ = _read_repositories(self.paths.images)
            entries = (repos or {}).get(finding.detail.get("key", "tags"))
            if isinstance(entries, dict) and entries.pop(finding.target, None) is not None:
                atomic_write_json(self.paths.images / REPOSITORIES, repos)
        return "name removed"

    def reset_repositories(self, finding: Finding) -> str:
        path = self.paths.images / REPOSITORIES
        with self._records_lock():
            backup = path.with_name(f"{REPOSITORIES}.corrupt-{int(time.time())}")
            with contextlib.suppress(FileNotFoundError):
                os.replace(path, backup)
            atomic_write_json(path, {"tags": {}, "digests": {}})
        return f"images kept without names (old file saved as {backup.name})"

    def remove_tmp(self, finding: Finding) -> str:
        path = self.paths.tmp / finding.target
        points = mounts_under(path, mount_points())
        self.unmount(points)
        remove_tree(path)
        return f"unmounted {len(points)} and removed" if points else "removed"


def check_store(paths: Paths, repair: bool = True, unmount: Unmount = cannot_unmount) -> list[Outcome]:
    """Verify the image store under the exclusive GC lock; repair (by removal) unless `repair` is False.

    `unmount` detaches mount points (deepest first) left in tmp/ by a build that died."""
    if not paths.root.is_dir():
        return []
    with StoreLayout(paths).gc_lock(shared=False):
        findings = decide(snapshot_store(paths))
        if not repair:
            return apply_findings(findings, {}, repair=False)
        return apply_findings(findings, StoreRepairer(paths, unmount).actions(), repair=True)
