"""Local volumes: the store under PYCTR_ROOT/volumes, and what containers do with it (create on first use,
copy-up, in-use references, removal). Deciding lives in mounts.py; this is the doing.

Layout (Docker's local driver): `volumes/<name>/_data` is the volume, `volumes/<name>/volume.json` its
metadata (Name, Driver, Labels, Options), written atomically and last; CreatedAt is `_data`'s change time, as
the local driver reports it. A volume directory without metadata (an older pyctr's `-v name:/x`) is still a
volume, without labels or options.
Every change holds `locks/volumes.lock`; a container's create holds it too while it writes its config, so
`volume rm` sees every container that refers to a volume (Docker's reference counts, read from the
containers' `MountPoints` instead of kept in memory). A name is checked against the local driver's pattern
before it touches the filesystem: no `/`, never `..`, so a name is one directory below volumes/.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pyctr.errors import ConflictError, NotFoundError, PyctrError
from pyctr.fsutil import atomic_write_json, ensure_dir, file_lock, read_json
from pyctr.runtime.mounts import VOLUME_NAME, MountError, MountPoint, check_volume_name

METADATA = "volume.json"
LOCAL_OPTIONS = ("type", "o", "device", "size")  # the local driver's keys (moby volume/local: validOpts)
# an option -> the options it needs (moby volume/local: mandatoryOpts)
REQUIRED_WITH = {"device": ("type",), "type": ("device",), "o": ("device", "type")}


@dataclass
class Volume:
    """One local volume, as `volume inspect` shows it."""

    name: str
    mountpoint: str
    created_at: str
    labels: dict[str, str] | None = None
    options: dict[str, str] | None = None
    driver: str = "local"

    def inspect(self) -> dict:
        return {"CreatedAt": self.created_at, "Driver": self.driver, "Labels": self.labels,
                "Mountpoint": self.mountpoint, "Name": self.name, "Options": self.options, "Scope": "local"}


def created_at(data_dir: Path) -> str:
    """The local driver's CreatedAt: the change time of `_data`, RFC 3339 in local time (seconds)."""
    when = data_dir.stat().st_ctime
    local = time.localtime(when)
    offset = local.tm_gmtoff or 0
    hours, minutes = divmod(abs(offset) // 60, 60)
    zone = "Z" if offset == 0 else f"{'+' if offset > 0 else '-'}{hours:02d}:{minutes:02d}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", local) + zone


def natural_key(name: str) -> list:
    """fvbommel/sortorder's NaturalLess as a sort key: runs of digits compare as numbers."""
    import re

    return [(0, int(part), len(part)) if part.isdigit() else (1, part, 0) for part in re.split(r"(\d+)", name) if part]


def no_such_volume(name: str) -> NotFoundError:
    return NotFoundError(f"Error: No such volume: {name}")


def check_local_options(name: str, options: dict[str, str]) -> None:
    """The local driver's checks of `-o` (moby volume/local validateOpts, setOpts): known keys, the keys each
    needs, and no `size` quota (no quota support here, as Docker without xfs project quotas)."""
    for key in options:
        if key not in LOCAL_OPTIONS:
            raise MountError(f'create {name}: invalid option: "{key}"')
    for key, needed in REQUIRED_WITH.items():
        for other in needed:
            if key in options and other not in options:
                raise MountError(f'create {name}: missing required option: "{other}"')
    if options.get("size"):
        from pyctr.units import ram_in_bytes

        try:
            size = ram_in_bytes(options["size"])
        except ValueError as e:
            raise MountError(f"create {name}: {e}") from None
        if size > 0:
            raise MountError(f"create {name}: quota size requested but no quota support")


def check_driver(name: str, driver: str) -> None:
    if driver not in ("", "local"):
        raise MountError(f'create {name}: error looking up volume plugin {driver}: plugin "{driver}" not found')


class VolumeStore:
    """Volumes under `<root>/volumes`, changed under one lock."""

    def __init__(self, paths) -> None:
        self.paths = paths
        self.root: Path = paths.volumes

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        with file_lock(self.paths.locks / "volumes.lock"):
            yield

    def directory(self, name: str) -> Path:
        check_volume_name(name)
        return self.root / name

    # reading
    def get(self, name: str) -> Volume:
        if not VOLUME_NAME.match(name):
            raise no_such_volume(name)
        directory = self.root / name
        data_dir = directory / "_data"
        try:
            if not stat.S_ISDIR(os.lstat(data_dir).st_mode):
                raise no_such_volume(name)
        except OSError:  # missing, or a name longer than a file name can be: no such volume either way
            raise no_such_volume(name) from None
        try:
            meta = read_json(directory / METADATA)
        except (OSError, ValueError):
            meta = {}
        return Volume(name, str(data_dir), created_at(data_dir), meta.get("Labels"), meta.get("Options"),
                      meta.get("Driver", "local"))

    def names(self) -> list[str]:
        """Volume names in docker-cli's order (sortorder.NaturalLess: `v2` before `v10`)."""
        if not self.root.is_dir():
            return []
        found = [p.name for p in self.root.iterdir() if VOLUME_NAME.match(p.name) and (p / "_data").is_dir()]
        return sorted(found, key=natural_key)

    def list(self) -> list[Volume]:
        found = []
        for name in self.names():
            with contextlib.suppress(NotFoundError):
                found.append(self.get(name))
        return found

    def refs(self) -> dict[str, list[str]]:
        """Volume name -> ids of the containers whose mounts name it (running or not: Docker's references)."""
        refs: dict[str, list[str]] = {}
        containers = self.paths.containers
        if not containers.is_dir():
            return refs
        for directory in sorted(containers.iterdir()):
            if directory.name.startswith("."):
                continue
            try:
                config = read_json(directory / "config.json")
            except (OSError, ValueError):
                continue
            for point in config.get("MountPoints") or []:
                if point.get("Type") == "volume" and point.get("Name"):
                    refs.setdefault(point["Name"], [])
                    if directory.name not in refs[point["Name"]]:
                        refs[point["Name"]].append(directory.name)
        return refs

    # changing (callers hold `locked()`)
    def create_locked(self, name: str | None, driver: str = "local", labels: dict[str, str] | None = None,
                      options: dict[str, str] | None = None) -> Volume:
        """Create `name` (a random 64-hex name when None); an existing volume is returned as it is (Docker)."""
        name = name or secrets.token_hex(32)
        check_volume_name(name)
        check_driver(name, driver)
        check_local_options(name, options or {})
        with contextlib.suppress(NotFoundError):
            return self.get(name)
        directory = self.root / name
        ensure_dir(self.root)
        try:
            directory.mkdir(mode=0o700, exist_ok=True)
        except OSError as e:  # a valid name longer than the filesystem allows: dockerd's mkdir error
            raise MountError(f"create {name}: mkdir {directory}: {e.strerror.lower()}") from None
        (directory / "_data").mkdir(mode=0o755, exist_ok=True)
        meta = {"Name": name, "Driver": "local", "Labels": labels, "Options": options}
        atomic_write_json(directory / METADATA, meta, mode=0o600, durable=False)
        self._record(name, "create")
        return self.get(name)

    def create(self, name: str | None, driver: str = "local", labels: dict[str, str] | None = None,
               options: dict[str, str] | None = None) -> Volume:
        with self.locked():
            return self.create_locked(name, driver, labels, options)

    def remove_locked(self, name: str, force: bool = False, refs: dict[str, list[str]] | None = None) -> bool:
        """Delete a volume no container refers to; False when it was missing and `force` forgives that."""
        try:
            self.get(name)
        except NotFoundError:
            if force:
                return False
            raise
        users = (self.refs() if refs is None else refs).get(name)
        if users:
            raise ConflictError(f"remove {name}: volume is in use - [{', '.join(users)}]")
        self._delete(self.root / name)
        self._record(name, "destroy")
        return True

    def _record(self, name: str, action: str) -> None:
        """dockerd's volume events: the name as the actor, its driver as an attribute."""
        from pyctr import events

        events.record(self.paths.root, "volume", action, name, {"driver": "local"})

    def remove(self, name: str, force: bool = False) -> bool:
        with self.locked():
            return self.remove_locked(name, force)

    def prune(self, label_filters: list[str] | None = None, without_labels: list[str] | None = None
              ) -> tuple[list[str], int]:
        """Docker 20.10's `volume prune`: every local volume no container refers to (named ones too), but not one
        created with `-o` (moby: "there would be no space reclaimed"); `label=` filters must all match, and a
        volume all `label!=` filters match is kept."""
        from pyctr.image.usage import du

        removed, reclaimed = [], 0
        with self.locked():
            self.sweep_leftovers()
            refs = self.refs()
            for volume in self.list():
                if refs.get(volume.name) or volume.options or not labels_match(volume.labels, label_filters or []):
                    continue
                if without_labels and labels_match(volume.labels, without_labels):
                    continue
                reclaimed += du(volume.mountpoint)
                self._delete(self.root / volume.name)
                removed.append(volume.name)
        return removed, reclaimed

    def sweep_leftovers(self) -> None:
        """`.removing-*` directories a killed `volume rm` left behind (no longer volumes: nothing refers to them)."""
        if self.root.is_dir():
            for path in self.root.iterdir():
                if path.name.startswith(".removing-") and path.is_dir() and not path.is_symlink():
                    _unmount_below(path)
                    shutil.rmtree(path, ignore_errors=True)

    def _delete(self, directory: Path) -> None:
        """Renamed away first (a name that is never a volume), then deleted: a crash leaves no half volume."""
        doomed = directory.with_name(f".removing-{directory.name}-{secrets.token_hex(4)}")
        try:
            os.rename(directory, doomed)
        except FileNotFoundError:
            return
        _unmount_below(doomed)
        shutil.rmtree(doomed, ignore_errors=True)


def _unmount_below(directory: Path) -> None:
    """Nothing is normally mounted in a volume on the host; a leftover must not be deleted through."""
    from pyctr.image.check import mount_points, mounts_under
    from pyctr.runtime.check import unmount_all

    unmount_all(mounts_under(directory, mount_points()))


def labels_match(labels: dict[str, str] | None, filters: list[str]) -> bool:
    """`label=KEY` or `label=KEY=VALUE` filters, all of which must match (filters.Args.MatchKVList)."""
    if not filters:
        return True
    labels = labels or {}
    for item in filters:
        key, sep, value = item.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


# ---------------------------------------------------------------- containers and their volumes

def volume_matches(volume: Volume, users: int, parsed: dict[str, list[str]]) -> bool:
    """moby volume/service filters (`volume ls` and GET /volumes): name is a regular expression search, label
    all of KEY[=VALUE], dangling = no container refers to it."""
    if "dangling" in parsed and (users == 0) != any(v in ("true", "1") for v in parsed["dangling"]):
        return False
    if "name" in parsed and not any(_search(v, volume.name) for v in parsed["name"]):
        return False
    if "driver" in parsed and volume.driver not in parsed["driver"]:
        return False
    return labels_match(volume.labels, parsed.get("label", []))


def _search(pattern: str, text: str) -> bool:
    import re

    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False


def state_root(paths) -> str:
    return os.path.realpath(paths.root)


def inside(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def check_bind_source(point: MountPoint, forbidden_root: str) -> None:
    """A bind source must exist (`--mount`; `-v` creates it) and must not be pyctr's own state.

    Docker follows host symlinks in a bind source, and so does pyctr: `-v /srv/link:/x` mounts what the link
    names. But a source that resolves into PYCTR_ROOT (the store, other containers' layers and volumes, the
    locks) would hand one container every other container's data and pyctr's own bookkeeping, which Docker's
    daemon keeps from its users too (its root is 0701/0700). Docker 20.10 itself would mount it (its
    validateBindDaemonRoot only forces rslave propagation there, so that its own unmounts reach the
    container); pyctr refuses it instead, whatever path or symlink leads there, because nothing a container
    legitimately needs lives there: a volume is reached by its name, never by its path. Binding an ancestor
    (`-v /:/host`) stays possible, as with Docker: that is a user asking for the whole host, not a path that
    happens to lead into the store. `rootfs.apply_mount` checks again on the opened source at start, so a
    symlink swapped in between gains nothing."""
    if _source_leads_into(point.source, forbidden_root):
        raise MountError(f'invalid mount config for type "bind": bind source path {point.source} resolves '
                         f"into pyctr's state directory {forbidden_root}: refused")
    if not point.create_source and not os.path.lexists(point.source):
        raise MountError(f'invalid mount config for type "bind": bind source path does not exist: {point.source}')


def _source_leads_into(source: str, forbidden_root: str) -> bool:
    """`rootfs.leads_into` for a path that may not exist yet (`-v` creates it): its nearest existing ancestor."""
    from pyctr.runtime.rootfs import leads_into, opened

    if inside(os.path.realpath(source), forbidden_root):
        return True
    path = source
    while True:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            break
        except OSError:
            if path == os.path.dirname(path):
                return False
            path = os.path.dirname(path)
    with opened(fd):
        return leads_into(fd, forbidden_root)


def inherited_mounts(container_store, values: list[str]) -> list[MountPoint]:
    """The mount points `--volumes-from C[:ro|rw]` takes (Docker: a missing C is `No such container: C`)."""
    from pyctr.runtime.mounts import inherit, parse_volumes_from

    points: list[MountPoint] = []
    for value in values:
        ref, mode = parse_volumes_from(value)
        record = container_store.get(ref)
        own = record.config.get("Spec", {}).get("mount_points") or legacy_points(record.config)
        points += inherit([MountPoint.from_dict(p) for p in own], mode)
    return points


def legacy_points(config: dict) -> list[dict]:
    """A container created before mount points were stored: its `.Mounts` entries are enough to inherit."""
    points = []
    for doc in config.get("MountPoints") or []:
        points.append(MountPoint(doc.get("Type", "bind"), doc.get("Destination", ""), doc.get("Source", ""),
                                 name=doc.get("Name", ""), rw=doc.get("RW", True), mode=doc.get("Mode", ""),
                                 propagation=doc.get("Propagation", "")).to_dict())
    return points


def existing_options(store: VolumeStore, points: list[MountPoint]) -> dict[str, dict]:
    """`-o` options ({} for none) of the existing volumes these points name: they decide how the volume is
    mounted, whatever a `--mount volume-opt=` says (Docker creates a volume once; an existing one is used as
    it is)."""
    found: dict[str, dict] = {}
    for point in points:
        if point.type == "volume" and point.name:
            with contextlib.suppress(NotFoundError):
                found[point.name] = store.get(point.name).options or {}
    return found


@dataclass
class Prepared:
    """What `prepare_volumes` made for a container, to undo if the container is not created after all."""

    created: list[str] = field(default_factory=list)


def prepare_volumes(store: VolumeStore, points: list[MountPoint], forbidden_root: str) -> Prepared:
    """Under the volumes lock: check bind sources, create missing volumes (on first use, as Docker)."""
    prepared = Prepared()
    for point in points:
        if point.type == "bind":
            check_bind_source(point, forbidden_root)
        elif point.type == "volume":
            _check_device(store, point, forbidden_root)
    for point in points:
        if point.type != "volume":
            continue
        try:
            store.get(point.name)
        except NotFoundError:
            store.create_locked(point.name, labels=point.volume_labels or None,
                                options=point.volume_options or None)
            prepared.created.append(point.name)
    return prepared


def _check_device(store: VolumeStore, point: MountPoint, forbidden_root: str) -> None:
    """A volume bound to a host path (`-o type=none,o=bind,device=PATH`) is a bind source like any other, and
    so is every host path another filesystem type is given (an overlay's lowerdir/upperdir/workdir in `o=`:
    the attack review listed the state directory through `-o type=overlay,o=lowerdir=$PYCTR_ROOT`)."""
    try:
        options = store.get(point.name).options or {}
    except NotFoundError:
        options = point.volume_options
    for path in host_paths_of(options):
        check_bind_source(MountPoint("bind", point.destination, path, create_source=True), forbidden_root)


OVERLAY_PATH_OPTIONS = ("lowerdir", "upperdir", "workdir")


def host_paths_of(options: dict[str, str]) -> list[str]:
    """The host paths a local volume's `-o` options name: an absolute `device`, and each directory of an
    overlay's lowerdir (colon-separated), upperdir and workdir."""
    paths = [options["device"]] if options.get("device", "").startswith("/") else []
    for option in options.get("o", "").split(","):
        key, _, value = option.partition("=")
        if key in OVERLAY_PATH_OPTIONS:
            paths += [p for p in value.split(":") if p]
    return paths


def copy_candidates(store: VolumeStore, points: list[MountPoint]) -> list[MountPoint]:
    """Volumes that get the image's content: copy wanted, a plain local volume (no `-o`), still empty."""
    chosen = []
    for point in points:
        if point.type != "volume" or not point.copy_data:
            continue
        volume = store.get(point.name)
        if volume.options or any(os.scandir(volume.mountpoint)):
            continue
        chosen.append(point)
    return chosen


def copy_up(spec, points: list[MountPoint]) -> None:
    """Docker's copy-up (container.CopyImagePathToVolume): the container's filesystem at each destination is
    copied, owners, modes, times and links as they are, into its empty volume, whose own directory then takes
    the owner and mode of the image's directory. Done at create, in a forked child's private mount namespace
    with the container's overlay mounted, the source resolved inside that root (a symlinked path in the image
    cannot read the host) and walked without following links."""
    if not points:
        return
    import pyctr.runtime.copy  # noqa: F401 - imported before fork: the child needs them
    import pyctr.runtime.rootfs  # noqa: F401
    from pyctr.runtime.process.child import run_in_child

    run_in_child(lambda: _copy_reporting(spec, points))  # the daemon's refusal of the create (125)


def _copy_reporting(spec, points: list[MountPoint]) -> None:  # pragma: no cover - in the forked child
    """The copy, any failure of it worded as the refusal of the create."""
    try:
        _copy_in_child(spec, points)
    except PyctrError:
        raise
    except Exception as e:  # noqa: BLE001 - reported to the parent as one line
        raise PyctrError(f"copying the image's content into a volume: {type(e).__name__}: {e}") from None


def _copy_in_child(spec, points: list[MountPoint]) -> None:  # pragma: no cover - in the forked child
    from pyctr.runtime import rootfs
    from pyctr.runtime import syscalls as s

    s.unshare(s.CLONE_NEWNS)
    s.mount(None, "/", None, s.MS_SLAVE | s.MS_REC)
    for directory in (spec.rootfs.upperdir, spec.rootfs.workdir, spec.rootfs.merged):
        os.makedirs(directory, mode=0o755, exist_ok=True)
    rootfs.mount_overlay(spec.rootfs.lowerdirs, spec.rootfs.upperdir, spec.rootfs.workdir, spec.rootfs.merged)
    with rootfs.opened(os.open(os.path.realpath(spec.rootfs.merged), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)) \
            as root_fd:
        for point in points:
            _copy_one(root_fd, point, spec.rootfs.merged)


def _copy_one(root_fd: int, point: MountPoint, merged: str) -> None:  # pragma: no cover - in the forked child
    from pyctr.runtime.copy import CopyOptions, copy_tree
    from pyctr.runtime.rootfs import resolve_in_root

    try:
        source = resolve_in_root(root_fd, point.destination)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            return  # nothing in the image there
        raise
    info = os.fstat(source)
    if not stat.S_ISDIR(info.st_mode):
        os.close(source)
        if point.anonymous:  # moby create_unix.go: an image VOLUME (or `-v /path`) over a file
            raise MountError("cannot mount volume over existing file, file exists "
                             f"{os.path.join(merged, point.destination.lstrip('/'))}")
        return
    target = os.open(point.source, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        copy_tree(source, target, None, True, CopyOptions(archive=True))
        os.fchown(target, info.st_uid, info.st_gid)
        os.fchmod(target, stat.S_IMODE(info.st_mode))
    finally:
        os.close(target)


def record_anonymous(points: list[MountPoint]) -> list[str]:
    return [p.name for p in points if p.type == "volume" and p.anonymous]


def remove_unused(store: VolumeStore, names: list[str]) -> None:
    """`rm -v` / `--rm`: the container's anonymous volumes, unless another container still uses one
    (`--volumes-from`): Docker ignores that conflict and keeps the volume."""
    if not names:
        return
    with store.locked():
        refs = store.refs()
        for name in names:
            with contextlib.suppress(NotFoundError, ConflictError, MountError):
                store.remove_locked(name, refs=refs)


def volume_usage(paths) -> tuple[int, int, int, int]:
    """`system df`'s Local Volumes row: (volumes, in use by a container, bytes, bytes of the unused ones)."""
    from pyctr.image.usage import du

    store = VolumeStore(paths)
    refs = store.refs()  # a volume with `-o` options is skipped, as moby's LocalVolumesSize does
    sizes = [(du(v.mountpoint), bool(refs.get(v.name))) for v in store.list() if not v.options]
    return (len(sizes), sum(used for _, used in sizes), sum(size for size, _ in sizes),
            sum(size for size, used in sizes if not used))


class ContainerVolumes:
    """The volume side of one `create`: resolve `--volumes-from`, plan, create volumes on first use, copy up,
    and undo all of it when the container is not created after all. `create` holds the volumes lock from
    planning until the container's config is written, so `volume rm` never misses a new reference."""

    def __init__(self, paths, container_store, options) -> None:
        self.paths = paths
        self.store = VolumeStore(paths)
        self.forbidden_root = state_root(paths)
        self.container_store = container_store
        self.inherited = inherited_mounts(container_store, options.volumes_from) if options.volumes_from else None
        self.created: list[str] = []
        self.spec = None

    def create(self, create_container):
        """Run `create_container()` (the store's create, whose build calls `prepare`) under the volumes lock,
        then copy up; a failure anywhere removes the container and the volumes made for it."""
        with self.store.locked():
            try:
                record = create_container()
            except BaseException:
                self.undo()
                raise
            try:
                if self.spec is not None:
                    self.copy_up(self.spec)
            except BaseException:
                self.container_store.remove_directory(record.id)
                self.undo()
                raise
        return record

    def spec_arguments(self, image_config: dict, options, container_id: str) -> dict:
        """make_spec's volume arguments: inherited mounts and the options of the existing volumes used."""
        from pyctr.runtime.spec import plan_volumes

        inner = image_config.get("config")
        config = (inner if isinstance(inner, dict) else image_config) or {}
        points = plan_volumes(config, options, container_id, self.paths.volumes, self.inherited)
        return {"inherited_mounts": self.inherited, "volume_options": existing_options(self.store, points)}

    def prepare(self, spec) -> None:
        self.spec = spec
        points = [MountPoint.from_dict(p) for p in spec.mount_points]
        self.created += prepare_volumes(self.store, points, self.forbidden_root).created

    def copy_up(self, spec) -> None:
        copy_up(spec, copy_candidates(self.store, [MountPoint.from_dict(p) for p in spec.mount_points]))

    def undo(self) -> None:
        for name in self.created:
            with contextlib.suppress(NotFoundError, ConflictError, MountError):
                self.store.remove_locked(name)
