"""A container's filesystem as a whole: `diff`, `export`, `commit` and `import`.

The container's writable layer is its overlay upper dir (spec.rootfs.upperdir); what it changed is read from
there, as Docker's overlay2 driver does (a 0:0 character device is a deleted file, everything else added or
changed depending on whether a lower layer has it). `export` and `commit` never touch the container's own
mount: `export` mounts a read-only overlay of the upper dir over the image's layers in a child's private mount
namespace and tars it; `commit` packs the upper dir into a layer through image/pack.py (whiteouts become
`.wh.` entries) on top of the image's layers. `import` unpacks a tar with the project's fd-based extractor and
stores it as a one-layer image.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from pyctr.errors import PyctrError, RuntimeFailure

if TYPE_CHECKING:
    from pyctr.config import Config
    from pyctr.image.store import ImageRecord
    from pyctr.runtime.state import ContainerRecord

OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")


# ------------------------------------------------------------------------------------------ diff

def is_whiteout(st: os.stat_result) -> bool:
    """overlayfs marks a deleted file with a 0:0 character device in the upper dir."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


# What Docker keeps in a container's init layer, below its writable layer: never listed by diff.
INIT_LAYER_PATHS = frozenset({"/dev", "/dev/pts", "/dev/shm", "/dev/console", "/proc", "/sys", "/etc/hosts",
                              "/etc/hostname", "/etc/resolv.conf", "/etc/mtab", "/.dockerenv"})


def diff_changes(upper: Path, lowers: list[Path], hidden: frozenset[str] = INIT_LAYER_PATHS) -> list[tuple[str, str]]:
    """(kind, path) for every entry of the upper dir, sorted by path: D for a whiteout, C when a lower layer
    has the path (a directory copied up, a file changed), A otherwise (Docker's overlay ChangesDirs).

    `hidden` are the mount points the runtime itself made (Docker's init layer): left out, and so is a copied-up
    directory whose only changes they were."""
    changes = [c for c in _upper_changes(upper, lowers) if c[1] not in hidden]
    paths = [path for _, path in changes]
    return [(kind, path) for kind, path in changes
            if not (os.path.isdir(upper / path.lstrip("/")) and path + "/" not in _prefixes(paths)
                    and path in _parents_of(hidden))]


def _prefixes(paths: list[str]) -> set[str]:
    """Every ancestor directory of `paths`, each with a trailing slash."""
    out = set()
    for path in paths:
        parts = path.split("/")
        for i in range(2, len(parts)):
            out.add("/".join(parts[:i]) + "/")
    return out


def _parents_of(paths: frozenset[str]) -> set[str]:
    return {os.path.dirname(path) for path in paths}


def _upper_changes(upper: Path, lowers: list[Path]) -> list[tuple[str, str]]:
    changes: list[tuple[str, str]] = []
    for directory, dirnames, filenames in os.walk(upper):
        relative_dir = os.path.relpath(directory, upper)
        for name in sorted(dirnames + filenames):
            relative = os.path.normpath(os.path.join(relative_dir, name))
            path = "/" + relative
            try:
                st = os.lstat(os.path.join(directory, name))
            except FileNotFoundError:
                continue
            if is_whiteout(st):
                changes.append(("D", path))
            elif any(os.path.lexists(lower / relative) for lower in lowers):
                changes.append(("C", path))
            else:
                changes.append(("A", path))
    changes.sort(key=lambda change: change[1])
    return changes


def init_layer_stubs(upper: Path, lowers: list[Path]) -> frozenset[str]:
    """What commit leaves out of the new layer: the mount points the runtime made in the upper dir (/etc/hosts,
    /etc/hostname, /etc/resolv.conf, /dev, /proc, /sys... when the image lacked them), which Docker keeps in the
    container's init layer, never committed. Only added ones: a path an image layer has is the image's."""
    def added(relative: str) -> bool:
        return os.path.lexists(upper / relative) and not any(os.path.lexists(lower / relative) for lower in lowers)

    stubs = {path.lstrip("/") for path in INIT_LAYER_PATHS if added(path.lstrip("/"))}
    for parent in {os.path.dirname(stub) for stub in stubs} - {""}:  # /etc made only to hold /etc/hosts...
        if added(parent) and all(f"{parent}/{name}" in stubs for name in os.listdir(upper / parent)):
            stubs.add(parent)
    return frozenset(stubs)


def container_diff(record: ContainerRecord) -> list[tuple[str, str]]:
    spec = record.config["Spec"]
    rootfs = spec["rootfs"]
    mount_points = frozenset(os.path.normpath(m["destination"]) for m in spec.get("mounts") or [])
    return diff_changes(Path(rootfs["upperdir"]), [Path(d) for d in rootfs["lowerdirs"]],
                        INIT_LAYER_PATHS | mount_points)


# ------------------------------------------------------------------------------------------ export

def export_container(config: Config, record: ContainerRecord, out: BinaryIO) -> None:
    """Write the container's filesystem (image layers + its changes, without its volumes and /proc-like
    mounts) to `out` as an uncompressed tar, as `docker export` does."""
    rootfs = record.config["Spec"]["rootfs"]
    config.paths.tmp.mkdir(mode=0o700, parents=True, exist_ok=True)
    view = config.paths.tmp / f"export-{record.id[:12]}-{os.getpid()}-{time.monotonic_ns()}"
    view.mkdir(mode=0o700)
    empty_top = view.with_name(view.name + "-empty")
    empty_top.mkdir(mode=0o700)
    lowers = export_layers(rootfs["lowerdirs"], rootfs["upperdir"], str(empty_top))
    try:
        from pyctr.runtime.process.child import run_in_child

        run_in_child(lambda: _mount_and_pack(lowers, str(view), out.fileno()))
    finally:
        for directory in (view, empty_top):
            with contextlib.suppress(OSError):
                directory.rmdir()


def export_layers(lowerdirs: list[str], upperdir: str, empty_dir: str) -> list[str]:
    """The read-only overlay's layers for export, base first: the image's layers with the container's upper dir
    on top. A container that was created but never started has no upper dir yet (the launcher makes it at
    start), and Docker exports the image's filesystem for it: an empty directory stands in for the upper dir,
    which also keeps the two layers a read-only overlay needs when the image has a single layer."""
    return [*lowerdirs, upperdir if os.path.isdir(upperdir) else empty_dir]


def _mount_and_pack(lowers: list[str], view: str, out_fd: int) -> None:  # pragma: no cover - in the child
    from pyctr.image.pack import pack_layer_uncompressed
    from pyctr.runtime import rootfs
    from pyctr.runtime import syscalls as s

    s.unshare(s.CLONE_NEWNS)
    s.mount(None, "/", None, s.MS_SLAVE | s.MS_REC)  # nothing mounted here propagates to the host
    try:
        rootfs.mount_overlay(lowers, None, None, view)
    except OSError as e:
        raise RuntimeFailure(f"cannot mount the container's filesystem: {e.strerror}") from None
    with os.fdopen(os.dup(out_fd), "wb") as out:
        pack_layer_uncompressed(view, out)


# ------------------------------------------------------------------------------------------ commit / import

@dataclass(frozen=True)
class CommitOptions:
    reference: str | None = None
    author: str = ""
    message: str = ""
    pause: bool = True


def image_document(base: dict | None, config_section: dict, *, created: str, created_by: str, author: str,
                   comment: str, container: dict | None = None) -> dict:
    """The new image's config: the base image's history plus one entry for the new layer (pure)."""
    from pyctr.platform_info import host_platform

    os_name, arch, variant = host_platform()
    entry = {"created": created, "created_by": created_by}
    if author:
        entry["author"] = author
    if comment:
        entry["comment"] = comment
    document = {"architecture": arch, "os": os_name, "config": config_section, "created": created,
                "docker_version": "20.10.0-pyctr", "history": [*((base or {}).get("history") or []), entry]}
    if variant:
        document["variant"] = variant
    if author:
        document["author"] = author
    if comment and container is None:
        document["comment"] = comment
    if container is not None:
        document["container"] = container["Id"]
        document["container_config"] = container["Config"]
        if comment:
            document["comment"] = comment
    return document


def commit(config: Config, record: ContainerRecord, config_section: dict, options: CommitOptions) -> ImageRecord:
    """A new image: the container's image layers plus its upper dir packed as one more layer."""
    from pyctr.image.store import ImageStore
    from pyctr.runtime import pause as pausing
    from pyctr.runtime.state import now_rfc3339

    store = ImageStore(config.paths)
    base = store.get_image(record.config["Image"])
    paused_here = False
    if options.pause and record.state.status == "running":
        pausing.pause(config, record.id)
        paused_here = True
    try:
        parent_chain = base.layers[-1].chain_id if base.layers else None
        upper = Path(record.config["Spec"]["rootfs"]["upperdir"])
        layer = store.add_layer_from_dir(upper, parent_chain, exclude=init_layer_stubs(upper, base.layer_dirs))
    finally:
        if paused_here:
            with contextlib.suppress(PyctrError):
                pausing.unpause(config, record.id)
    created = now_rfc3339()
    argv = [record.config.get("Path", ""), *record.config.get("Args", [])]
    document = image_document(base.config, config_section, created=created, created_by=" ".join(argv),
                              author=options.author, comment=options.message,
                              container={"Id": record.id, "Config": record.config.get("Config") or {}})
    image = store.put_image(document, [*base.layers, layer])
    if options.reference:
        store.tag(options.reference, image.id)
    from pyctr import events

    events.record_container(config.root, record, "commit", comment=options.message, imageID=image.id,
                            imageRef=options.reference or "")
    return image


def import_tarball(config: Config, stream: BinaryIO, source: str, config_section: dict, message: str,
                   reference: str | None) -> ImageRecord:
    """`docker import`: the tar (any compression) unpacked by the fd-based extractor, stored as one layer."""
    import shutil

    from pyctr.image.store import ImageStore
    from pyctr.image.unpack import unpack_archive
    from pyctr.runtime.state import now_rfc3339

    store = ImageStore(config.paths)
    config.paths.tmp.mkdir(mode=0o700, parents=True, exist_ok=True)
    staging = config.paths.tmp / f"import-{os.getpid()}-{time.monotonic_ns()}"
    staging.mkdir(mode=0o755)
    try:
        unpack_archive(stream, staging)
        layer = store.add_layer_from_dir(staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    created = now_rfc3339()
    document = image_document(None, config_section, created=created, created_by="",
                              author="", comment=message or f"Imported from {source}")
    image = store.put_image(document, [layer])
    if reference:
        store.tag(reference, image.id)
    store.record_event("import", image.id, image.id)
    return image
