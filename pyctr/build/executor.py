"""Run a build: parse, walk the needed stages, perform each step, store and tag the image.

The decisions are made by parser.py and instructions.py; this module does
the I/O they ask for (COPY staging, RUN containers, layers in the image
store, the build cache) and prints Docker's legacy-builder output.
Reproducible by default: layers are packed normalised with their times clamped to
SOURCE_DATE_EPOCH (else the epoch); the image's `created` time is SOURCE_DATE_EPOCH
when set, else derived from the inputs (the newest of the Dockerfile, the context
files and the base image's `created`), so the same inputs give the same image and
`images` shows when its inputs last changed.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import posixpath
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

from pyctr.build import instructions as ins
from pyctr.build.cache import BuildCache, ContentHashes, is_empty_dir, sources_digest, step_key, tree_digest
from pyctr.build.context import BuildContext, context_tar_entry_size, has_wildcard, read_stdin_context
from pyctr.build.parser import Dockerfile, Instruction, Stage, parse_dockerfile, parse_trigger
from pyctr.build.run_mounts import RunMount, SecretSource, mount_from_refs
from pyctr.build.staging import (
    Placement,
    SourceItem,
    ensure_dir_in_stage,
    fetch_url,
    read_image_file,
    resolve_in_root,
    stage_copy,
    walk_tree,
)
from pyctr.config import Config
from pyctr.errors import BuildError, NotFoundError, PyctrError
from pyctr.fsutil import remove_tree
from pyctr.runtime.spec import Mount

Printer = Callable[[str], None]


@dataclass
class BuildOptions:
    """What `pyctr build` was asked to do."""

    context_dir: Path
    dockerfile: Path | None = None
    tags: tuple[str, ...] = ()
    build_args: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    quiet: bool = False
    network: str = "default"
    source_date_epoch: int | None = None
    dockerfile_text: str | None = None  # `-f -`: the Dockerfile came on stdin
    labels: dict[str, str] = field(default_factory=dict)  # `--label k=v`: LABEL steps at the end of the target
    context_stream: BinaryIO | None = None  # `build -`: a Dockerfile, or a (compressed) tar context, on stdin
    secrets: tuple[SecretSource, ...] = ()  # `--secret id=x,src=path`: for RUN --mount=type=secret only


@dataclass
class StageResult:
    """A stage's image so far: the builder state, its layers (store records), its platform."""

    state: ins.BuildState
    layers: list[Any] = field(default_factory=list)
    platform: dict[str, str] = field(default_factory=dict)
    unchanged_base: str | None = None  # a stage that is only `FROM image` *is* that image (same id, as Docker)

    def image_config(self) -> dict[str, Any]:
        return image_config_document(self.state, [layer.diff_id for layer in self.layers], self.platform)

    @property
    def image_id(self) -> str:
        return config_digest(self.image_config())

    @property
    def chain_id(self) -> str | None:
        return self.layers[-1].chain_id if self.layers else None


def image_config_document(state: ins.BuildState, diff_ids: list[str], platform: dict[str, str]) -> dict[str, Any]:
    """The OCI image config JSON of a build state (pure)."""
    doc: dict[str, Any] = {
        "architecture": platform.get("architecture", "amd64"),
        "os": platform.get("os", "linux"),
        "created": state.created,
        "config": dict(state.config),
        "history": [dict(h) for h in state.history],
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
    }
    if platform.get("variant"):
        doc["variant"] = platform["variant"]
    if state.author:
        doc["author"] = state.author
    return doc


def config_digest(doc: dict[str, Any]) -> str:
    from pyctr.image.store import canonical_json

    return "sha256:" + hashlib.sha256(canonical_json(doc)).hexdigest()


def created_time(epoch: int | float | None) -> str:
    """RFC 3339 of a Unix time (whole seconds: the same inputs give the same digest)."""
    moment = datetime.datetime.fromtimestamp(int(epoch or 0), datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def stage_created(epoch: int | None, inputs_time: float | None, base_created: str | None) -> str:
    """A stage's `created`: SOURCE_DATE_EPOCH when given; else the newest of its inputs' times and its base
    image's `created` (pure). Never the epoch for a real build: with no dated input at all it is now."""
    if epoch is not None:
        return created_time(epoch)
    times = [t for t in (inputs_time, _parse_time(base_created)) if t]
    return created_time(max(times) if times else time.time())


def _parse_time(text: str | None) -> float | None:
    if not text:
        return None
    from pyctr.runtime.state import parse_rfc3339

    try:
        return parse_rfc3339(text) or None
    except ValueError:
        return None


def newest_input_time(context: BuildContext, dockerfile: Path | None) -> float | None:
    """The newest modification time among the Dockerfile and the context's files (.dockerignore applied)."""
    times = [entry.st_mtime for _rel, _path, entry in context.walk(".")]
    if dockerfile is not None:
        with contextlib.suppress(OSError):
            times.append(dockerfile.stat().st_mtime)
    return max(times) if times else None


def source_date_epoch(options: BuildOptions) -> int | None:
    """SOURCE_DATE_EPOCH: the option, else `--build-arg SOURCE_DATE_EPOCH=N` (as BuildKit), else the env."""
    if options.source_date_epoch is not None:
        return options.source_date_epoch
    value = options.build_args.get("SOURCE_DATE_EPOCH") or os.environ.get("SOURCE_DATE_EPOCH")
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise BuildError(f"invalid SOURCE_DATE_EPOCH: {value}") from None


def needed_stages(dockerfile: Dockerfile, target_index: int, meta_env: dict[str, str]) -> list[int]:
    """The stages the target depends on (FROM <stage>, COPY --from=<stage>), in file order (pure)."""
    names = {s.name: s.index for s in dockerfile.stages if s.name}
    needed: set[int] = set()
    todo = [target_index]
    while todo:
        index = todo.pop()
        if index in needed:
            continue
        needed.add(index)
        stage = dockerfile.stages[index]
        earlier = {n: i for n, i in names.items() if i < index}
        step = ins.plan_from(stage.from_instruction, meta_env, earlier)
        if step.stage is not None:
            todo.append(step.stage)
        for inst in stage.instructions:
            refs = [inst.flag("from")] if inst.cmd == "copy" else []
            if inst.cmd == "run":
                refs += mount_from_refs(inst.flag_values("mount"))  # RUN --mount=...,from=<stage>
            for ref in refs:
                if ref is None:
                    continue
                if ref.lower() in earlier:
                    todo.append(earlier[ref.lower()])
                elif ref.isdigit() and int(ref) < index:
                    todo.append(int(ref))
    return sorted(needed)


def with_cli_labels(dockerfile: Dockerfile, target_index: int, labels: dict[str, str]) -> Dockerfile:
    """`--label`s as Docker's legacy builder adds them: one `LABEL k=v` per key, sorted, at the end of the
    target stage, never expanded (each character is escaped so `$HOME` stays `$HOME`) (pure)."""
    if not labels:
        return dockerfile
    esc = dockerfile.escape

    def literal(text: str) -> str:
        return "".join(c if c.isalnum() else esc + c for c in text)

    extra = tuple(Instruction(cmd="label", pairs=((literal(k), literal(labels[k])),), original=f"{k}={labels[k]}",
                              keyword="LABEL", escape=esc, filename=dockerfile.filename) for k in sorted(labels))
    stages = list(dockerfile.stages)
    stages[target_index] = replace(stages[target_index], instructions=stages[target_index].instructions + extra)
    return replace(dockerfile, stages=tuple(stages))


class Builder:
    """One build; `run()` returns the final image id."""

    def __init__(self, config: Config, options: BuildOptions, out: Printer, err: Printer | None = None) -> None:
        from pyctr.image.store import ImageStore

        self.config = config
        self.options = options
        self.out = (lambda _line: None) if options.quiet else out
        self.err = err or out
        self.store = ImageStore(config.paths)
        self.cache = BuildCache(config.paths.build_cache)
        self.epoch = source_date_epoch(options)
        self.inputs_time: float | None = None  # newest input mtime, read by _load (without SOURCE_DATE_EPOCH)
        self.results: dict[int, StageResult] = {}
        self.step_number = 0
        # Keys include the parent's id, so a miss upstream already makes every later step miss.
        self.use_cache = not options.no_cache
        self.used_args: set[str] = set()
        self._base_config: Any = {}  # the config of the current stage's base (its ONBUILD triggers run)
        self._base_id: str | None = None  # the base image's id, shown after FROM as Docker does
        self.sent_size: int | None = None  # bytes of a context read from stdin (Docker counts what it sent)
        self.content_hashes: ContentHashes | None = None  # the context's file hashes, loaded by the first COPY

    # ------------------------------------------------------------------ top level

    def run(self) -> str:
        with contextlib.ExitStack() as cleanup:
            from_stdin = self.options.context_stream is not None
            if from_stdin:
                self.options = self._stdin_context(cleanup.enter_context(self._scratch_dir("context")))
            try:
                return self._build_all()
            finally:
                if self.content_hashes is not None and not from_stdin:  # a stdin context is gone after this
                    with contextlib.suppress(OSError):
                        self.content_hashes.save()

    def _stdin_context(self, directory: Path) -> BuildOptions:
        """`build -`: a tar context is unpacked (fd-based, hostile entries refused); else it is the Dockerfile."""
        assert self.options.context_stream is not None
        stdin = read_stdin_context(self.options.context_stream, directory)
        self.sent_size = stdin.sent_size
        if stdin.dockerfile_text is not None:
            return replace(self.options, context_dir=directory, dockerfile=None,
                           dockerfile_text=stdin.dockerfile_text, context_stream=None)
        rel = str(self.options.dockerfile) if self.options.dockerfile is not None else "Dockerfile"
        _rel, host = BuildContext.open(directory, None).resolve(rel)
        if not host.is_file():
            raise NotFoundError(f"Cannot locate specified Dockerfile: {rel}")
        return replace(self.options, context_dir=directory, dockerfile=host, context_stream=None)

    def _build_all(self) -> str:
        context, dockerfile = self._load()
        self.context = context
        meta = ins.meta_arg_values(dockerfile.meta_args, self.options.build_args)
        meta_env = {k: v for k, v in meta.items() if v is not None}
        target = self._target_index(dockerfile)
        dockerfile = with_cli_labels(dockerfile, target, self.options.labels)
        stages = needed_stages(dockerfile, target, meta_env)
        self.total = len(dockerfile.meta_args) + sum(1 + len(dockerfile.stages[i].instructions) for i in stages)
        for inst in dockerfile.meta_args:
            self._step_header(inst)
            self.used_args.update(name for name, _ in inst.pairs)
        if "SOURCE_DATE_EPOCH" in self.options.build_args:
            self.used_args.add("SOURCE_DATE_EPOCH")  # BuildKit's own build arg: consumed by the build itself
        self.store.ensure()
        with self.store.gc_lock(shared=True):
            for index in stages:
                self.results[index] = self._build_stage(dockerfile, dockerfile.stages[index], meta)
            final = self.results[target]
            if final.unchanged_base:
                image = self.store.get_image(final.unchanged_base)
            else:
                image = self.store.put_image(final.image_config(), list(final.layers))
        self._warn_unused_args()
        self.out(f"Successfully built {image.id[7:19]}")
        from pyctr.image.reference import parse_reference

        for tag in self.options.tags:
            self.store.tag(tag, image.id)
            self.out(f"Successfully tagged {parse_reference(tag).familiar}")
        return image.id

    def _load(self) -> tuple[BuildContext, Dockerfile]:
        directory = Path(self.options.context_dir)
        dockerfile_path = self.options.dockerfile or directory / "Dockerfile"
        if not dockerfile_path.is_absolute() and self.options.dockerfile is not None and not dockerfile_path.exists():
            dockerfile_path = directory / dockerfile_path
        if self.options.dockerfile_text is not None:
            context = BuildContext.open(directory, None)
            self._sending(context, self.options.dockerfile_text)
            self._note_inputs(context, None)
            return context, parse_dockerfile(self.options.dockerfile_text, "Dockerfile")
        try:
            text = Path(dockerfile_path).read_text()
        except FileNotFoundError:
            raise NotFoundError(f"unable to prepare context: unable to evaluate symlinks in Dockerfile path: "
                                f"lstat {Path(dockerfile_path).absolute()}: no such file or directory") from None
        except OSError as e:
            raise BuildError(f"cannot read {dockerfile_path}: {e.strerror}") from None
        rel = None
        with contextlib.suppress(ValueError):
            rel = str(Path(dockerfile_path).resolve().relative_to(Path(directory).resolve()))
        context = BuildContext.open(directory, rel)
        self._sending(context, None)
        self._note_inputs(context, Path(dockerfile_path))
        return context, parse_dockerfile(text, Path(dockerfile_path).name)

    def _sending(self, context: BuildContext, stdin_dockerfile: str | None) -> None:
        """Docker's CLI line before it uploads the context: the size of the tar it sends (go-units HumanSize)."""
        size = self.sent_size
        if size is None:
            size = context.tar_size()
            if stdin_dockerfile is not None:  # `-f -`: the CLI adds the Dockerfile to the context tar
                size += context_tar_entry_size(len(stdin_dockerfile.encode()))
        from pyctr.units import human_size

        self.out(f"Sending build context to Docker daemon  {human_size(size, 4)}")

    def _note_inputs(self, context: BuildContext, dockerfile: Path | None) -> None:
        if self.epoch is None:
            self.inputs_time = newest_input_time(context, dockerfile)

    def _target_index(self, dockerfile: Dockerfile) -> int:
        if self.options.target is None:
            return len(dockerfile.stages) - 1
        for stage in dockerfile.stages:
            if stage.name == self.options.target.lower():
                return stage.index
        raise BuildError(f"failed to reach build target {self.options.target} in Dockerfile")

    def _step_header(self, inst: Instruction) -> None:
        self.step_number += 1
        self.out(f"Step {self.step_number}/{self.total} : {inst.text}")

    def _warn_unused_args(self) -> None:
        unused = sorted(k for k in self.options.build_args if k not in self.used_args and k not in ins.PROXY_ARGS)
        if unused:
            self.err(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed")

    # ------------------------------------------------------------------ stages

    def _build_stage(self, dockerfile: Dockerfile, stage: Stage, meta: dict[str, str | None]) -> StageResult:
        self._step_header(stage.from_instruction)
        meta_env = {k: v for k, v in meta.items() if v is not None}
        earlier = {s.name: s.index for s in dockerfile.stages[: stage.index] if s.name}
        step = ins.plan_from(stage.from_instruction, meta_env, earlier)
        result = self._base(step, stage, meta)
        self.out(f" ---> {(self._base_id or result.image_id)[7:19]}")
        parent = self._base_id or self._stage_image_id(step.stage)
        triggers = list((self._base_config or {}).get("OnBuild") or [])
        if triggers:
            self.out(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}")
            for text in triggers:
                trigger = parse_trigger(text, dockerfile.escape, dockerfile.filename)
                result = self._apply(result, trigger, announce=False)
            parent = self._record_step(result, parent)
        for inst in stage.instructions:
            self._step_header(inst)
            result = self._apply(result, inst, announce=True)
            parent = self._record_step(result, parent)
            self.out(f" ---> {result.image_id[7:19]}")
        self.used_args |= set(result.state.used_args)
        if not stage.instructions and not triggers and self._base_id:
            result = replace(result, unchanged_base=self._base_id)
        return result

    def _stage_image_id(self, stage_index: int | None) -> str | None:
        """The image an earlier stage ended with (None for `FROM scratch`)."""
        if stage_index is None:
            return None
        earlier = self.results[stage_index]
        return earlier.unchanged_base or earlier.image_id

    def _record_step(self, result: StageResult, parent: str | None) -> str:
        """Store the image a step made, as the legacy builder does: an intermediate image whose Parent is the
        step before (hidden by `images`, listed by `images -a`, deleted with its untagged child by `rmi`)."""
        return self.store.put_image(result.image_config(), list(result.layers), parent=parent).id

    def _base(self, step: ins.FromStep, stage: Stage, meta: dict[str, str | None]) -> StageResult:
        kwargs = {"stage_index": stage.index, "stage_name": stage.name, "build_args": self.options.build_args,
                  "meta_args": meta}
        self._base_id = None
        if step.stage is not None:
            parent = self.results[step.stage]
            self._base_config = parent.state.config
            created = stage_created(self.epoch, self.inputs_time, parent.state.created)
            state = ins.start_stage(parent.state.config, parent.state.history, created=created, **kwargs)
            return StageResult(state, list(parent.layers), dict(parent.platform))
        if step.base.lower() == "scratch":
            self._base_config = {}
            created = stage_created(self.epoch, self.inputs_time, None)
            return StageResult(ins.start_stage(None, (), created=created, **kwargs), [], _host_platform())
        image = self._resolve_image(step.base, step.platform)
        self._base_id = image.id
        config = image.config
        self._base_config = config.get("config") or {}
        created = stage_created(self.epoch, self.inputs_time, config.get("created"))
        state = ins.start_stage(self._base_config, tuple(config.get("history") or ()), created=created, **kwargs)
        platform = {k: config[k] for k in ("architecture", "os", "variant") if config.get(k)}
        return StageResult(state, list(image.layers), platform)

    def _resolve_image(self, name: str, platform: str | None) -> Any:
        try:
            return self.store.resolve(name)
        except NotFoundError:
            pass
        from pyctr.image.pull import pull

        return pull(self.config, name, platform=platform, quiet=self.options.quiet, out=_StreamAdapter(self.out))

    # ------------------------------------------------------------------ one instruction

    def _apply(self, result: StageResult, inst: Instruction, announce: bool) -> StageResult:
        state, step = ins.apply_instruction(result.state, inst)
        if step is None:
            self._metadata_step(result, state, announce)
            return replace(result, state=state)
        if isinstance(step, ins.RunStep):
            return self._run(result, state, step)
        if isinstance(step, ins.CopyStep):
            return self._copy(result, state, step)
        return self._mkdir(result, state, step)

    def _metadata_step(self, result: StageResult, state: ins.BuildState, announce: bool) -> None:
        """Config-only steps are computed, not run; the cache only decides what Docker would print."""
        created_by = state.history[-1]["created_by"] if state.history else ""
        key = step_key(self._cache_parent(result), {"metadata": created_by, "args": dict(state.args)})
        hit = self.use_cache and self.cache.get(key) is not None
        if not hit:
            self.cache.put(key, {"empty": True})
        if not announce:
            return
        if hit:
            self.out(" ---> Using cache")
        else:
            self._announce_container()

    def _cache_parent(self, result: StageResult) -> str:
        """What a step's cache key names as its parent: the image so far, but without its `created` times
        unless they are SOURCE_DATE_EPOCH (an input of the layers): touching an unused file or the Dockerfile
        dates the image anew but must not cost the cache."""
        doc = result.image_config()
        if self.epoch is None:
            doc.pop("created", None)
            doc["history"] = [{k: v for k, v in h.items() if k != "created"} for h in doc.get("history", [])]
        return config_digest(doc)

    def _announce_container(self) -> None:
        container = secrets.token_hex(32)
        self.out(f" ---> Running in {container[:12]}")
        self.out(f"Removing intermediate container {container[:12]}")

    def _commit(self, result: StageResult, state: ins.BuildState, layer_dir: Path | None, created_by: str,
                key: str) -> StageResult:
        """Turn a finished upper/staging dir into a layer (or an empty_layer history entry) and cache it."""
        if layer_dir is None or is_empty_dir(layer_dir):
            self.cache.put(key, {"empty": True})
            return StageResult(state.with_history(created_by, empty_layer=True), result.layers, result.platform)
        epoch_ns = (self.epoch or 0) * 10**9
        os.utime(layer_dir, ns=(epoch_ns, epoch_ns))
        record = self.store.add_layer_from_dir(layer_dir, result.chain_id, source_date_epoch=self.epoch)
        self.cache.put(key, {"chain_id": record.chain_id, "diff_id": record.diff_id})
        return StageResult(state.with_history(created_by, empty_layer=False), [*result.layers, record],
                           result.platform)

    def _from_cache(self, result: StageResult, state: ins.BuildState, created_by: str,
                    key: str) -> StageResult | None:
        if not self.use_cache:
            return None
        entry = self.cache.get(key)
        if entry is None:
            return None
        if entry.get("empty"):
            new = StageResult(state.with_history(created_by, empty_layer=True), result.layers, result.platform)
        else:
            record = self.store.get_layer(entry.get("chain_id", ""))
            if record is None or record.diff_id != entry.get("diff_id"):
                return None
            new = StageResult(state.with_history(created_by, empty_layer=False), [*result.layers, record],
                              result.platform)
        self.out(" ---> Using cache")
        return new

    # ------------------------------------------------------------------ RUN

    def _run(self, result: StageResult, state: ins.BuildState, step: ins.RunStep) -> StageResult:
        network = step.network or self.options.network
        from pyctr.build.run_step import run_in_container

        with self._scratch_dir("run") as bundle, self._run_mounts(step, bundle) as prepared:
            key = step_key(self._cache_parent(result),
                           {"run": list(step.argv), "env": list(step.env), "user": step.user,
                            "workdir": step.workdir, "network": network,
                            **({"mounts": prepared.key} if step.mounts else {})})
            cached = self._from_cache(result, state, step.created_by, key)
            if cached is not None:
                return cached
            run = replace(step, env=step.env + prepared.env) if prepared.env else step
            upper, container_id = run_in_container(
                self.config, result.image_config(), [r.diff_dir for r in result.layers], run, network, bundle,
                self.out, self.epoch, quiet=self.options.quiet, mounts=prepared.mounts)
            self.out(f"Removing intermediate container {container_id[:12]}")
            return self._commit(result, state, upper, step.created_by, key)

    # ------------------------------------------------------------------ RUN --mount

    @contextlib.contextmanager
    def _run_mounts(self, step: ins.RunStep, bundle: Path) -> Iterator[PreparedMounts]:
        """Host side of RUN --mount: cache dirs, copies of bind sources, secret files; released afterwards."""
        prepared = PreparedMounts()
        with contextlib.ExitStack() as stack:
            for index, mount in enumerate(step.mounts):
                where = bundle / "mounts" / str(index)
                if mount.type == "cache":
                    prepared.add(mount, stack.enter_context(self._cache_dir(mount, where)), {"id": mount.id})
                elif mount.type == "bind":
                    source, digest = self._bind_source(mount, where)
                    prepared.add(mount, source, {"from": mount.from_, "source": mount.source, "digest": digest})
                elif mount.type == "tmpfs":
                    size = [f"size={mount.size}"] if mount.size else []
                    prepared.mounts.append(Mount(mount.target, "tmpfs", "tmpfs", ["nosuid", "nodev", *size]))
                    prepared.key.append({"tmpfs": mount.target, "size": mount.size})
                elif mount.type == "secret":
                    self._secret(mount, where, prepared)
                elif mount.required:
                    raise BuildError(f"RUN --mount=type=ssh,id={mount.id}: no SSH agent was forwarded "
                                     "(pyctr build has no --ssh)")
            yield prepared

    @contextlib.contextmanager
    def _cache_dir(self, mount: RunMount, scratch: Path) -> Iterator[Path]:
        """A persistent dir per cache id under PYCTR_ROOT (kept across builds); `locked` waits for others,
        `private` takes a fresh dir while another build holds it, `shared` (the default) just uses it."""
        import fcntl

        root = self.config.paths.root / "cache-mounts"
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        name = hashlib.sha256(mount.id.encode()).hexdigest()
        path = root / name
        if not path.exists():
            fresh = root / f".{name}.{secrets.token_hex(4)}"
            fresh.mkdir(mode=mount.mode if mount.mode is not None else 0o755)
            if mount.from_:  # BuildKit: a stage (or image) path seeds a new cache
                seed, _ = self._bind_source(mount, scratch / "seed")
                if seed.is_dir():
                    shutil.copytree(seed, fresh, symlinks=True, dirs_exist_ok=True)
                else:
                    shutil.copy2(seed, fresh / seed.name, follow_symlinks=False)
            os.chmod(fresh, mount.mode if mount.mode is not None else 0o755)
            os.chown(fresh, mount.uid or 0, mount.gid or 0)
            try:
                os.rename(fresh, path)
            except OSError:
                fresh.rmdir()  # another build created it first
        if mount.sharing not in ("locked", "private"):
            yield path
            return
        with open(root / f"{name}.lock", "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | (fcntl.LOCK_NB if mount.sharing == "private" else 0))
            except BlockingIOError:
                private = scratch / "private"
                private.mkdir(parents=True, mode=0o755)
                yield private
                return
            yield path

    def _bind_source(self, mount: RunMount, where: Path) -> tuple[Path, str]:
        """A private copy of the bind source (context, stage or image): writes to a `rw` bind are discarded,
        .dockerignore applies, and nothing outside the context or the stage's root can be reached."""
        where.mkdir(parents=True, mode=0o755)
        if not mount.from_:
            rel = self.context.clean(mount.source or ".")
            items = self._context_sources(rel)
            stage_copy(items, "/", where, Placement(epoch=self.epoch or 0))
            copied = where if items[0].kind == "dir" else where / items[0].name
            return copied, tree_digest(where)
        with self._source_root(mount.from_) as root:
            source = resolve_in_root(root, mount.source) if root is not None else None
            if source is None or not os.path.lexists(source):
                raise NotFoundError(f"RUN --mount from {mount.from_}: {mount.source or '/'}: not found")
            if source.is_dir():
                shutil.copytree(source, where, symlinks=True, dirs_exist_ok=True, copy_function=_copy_regular)
                return where, tree_digest(where)
            if not _copy_regular(source, where / source.name):
                raise BuildError(f"RUN --mount from {mount.from_}: {mount.source}: not a regular file or directory")
            return where / source.name, tree_digest(where)

    def _secret(self, mount: RunMount, where: Path, prepared: PreparedMounts) -> None:
        """`--mount=type=secret`: the file at its target (mode 0400 unless set), or an env var with `env=`.

        Neither reaches the layer, the history or the cache key; a missing optional secret is skipped."""
        given = {s.id: s for s in self.options.secrets}
        secret = given.get(mount.id)
        if secret is None:
            if mount.required:
                raise BuildError(f"secret {mount.id}: not found")
            return
        data = read_secret(secret)
        if mount.env:
            prepared.env += (f"{mount.env}={data.decode(errors='replace')}",)
        if not mount.target:
            return
        where.mkdir(parents=True, mode=0o700)
        path = where / "secret"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chown(path, mount.uid or 0, mount.gid or 0)
        os.chmod(path, mount.mode if mount.mode is not None else 0o400)
        where.chmod(0o755)
        prepared.mounts.append(Mount(mount.target, "bind", str(path), ["bind", "ro", "nosuid", "nodev", "noexec"]))
        prepared.key.append({"secret": mount.id, "target": mount.target})

    # ------------------------------------------------------------------ WORKDIR

    def _mkdir(self, result: StageResult, state: ins.BuildState, step: ins.MkdirStep) -> StageResult:
        key = step_key(self._cache_parent(result), {"workdir": step.path})
        cached = self._from_cache(result, state, step.created_by, key)
        if cached is not None:
            return cached
        self._announce_container()
        with self._merged(result.layers) as lower, self._scratch_dir("workdir") as stage:
            if lower is not None and _exists_in(lower, step.path):
                return self._commit(result, state, None, step.created_by, key)
            ensure_dir_in_stage(stage, step.path, Placement(epoch=self.epoch or 0, lower=lower))
            return self._commit(result, state, stage, step.created_by, key)

    # ------------------------------------------------------------------ COPY / ADD

    def _copy(self, result: StageResult, state: ins.BuildState, step: ins.CopyStep) -> StageResult:
        with self._merged(result.layers) as lower, self._scratch_dir("copy") as stage, \
                self._scratch_dir("fetch") as downloads:
            uid, gid = 0, 0
            if step.chown:
                try:
                    uid, gid = ins.resolve_chown(step.chown, read_image_file(lower, "/etc/passwd"),
                                                 read_image_file(lower, "/etc/group"))
                except BuildError as e:
                    raise BuildError(f"{step.name} failed: {e.message}") from None
            place = Placement(uid=uid, gid=gid, chmod=step.chmod, epoch=self.epoch or 0, lower=lower,
                              keep_owners=step.from_ is not None and not step.chown)
            instruction = {"copy": step.name, "dest": step.dest, "chmod": step.chmod, "owner": [uid, gid]}
            with self._source_root(step.from_) as source_root:
                items = self._checked_copy_items(step, source_root, downloads)
                if self._recordable(step):
                    # Decided from the context itself: a cached step copies nothing.
                    digest = sources_digest(items, self._content_hashes(), {"epoch": place.epoch})
                    created_by, key = self._copy_key(result, state, step, items, digest, instruction)
                    cached = self._from_cache(result, state, created_by, key)
                    if cached is not None:
                        return cached
                    stage_copy(items, step.dest, stage, place, extract=step.is_add)
                    return self._commit(result, state, stage, created_by, key)
                stage_copy(items, step.dest, stage, place, extract=step.is_add and step.from_ is None)
            created_by, key = self._copy_key(result, state, step, items, tree_digest(stage), instruction)
            cached = self._from_cache(result, state, created_by, key)
            if cached is not None:
                return cached
            return self._commit(result, state, stage, created_by, key)

    def _checked_copy_items(self, step: ins.CopyStep, source_root: Path | None, downloads: Path) -> list[SourceItem]:
        try:
            items = self._copy_items(step, source_root, downloads)
        except (BuildError, NotFoundError) as e:
            raise type(e)(f"{step.name} failed: {e.message}") from None
        if len(items) > 1 and not step.dest.endswith("/"):
            raise BuildError(f"When using {step.name} with more than one source file, "
                             "the destination must be a directory and end with a /")
        return items

    @staticmethod
    def _recordable(step: ins.CopyStep) -> bool:
        """Sources read straight from the build context (or inline): their record decides the cache. COPY --from
        and ADD of a URL are staged first and hashed as staged (their sources are not the context's)."""
        return step.from_ is None and not any(s.startswith(("http://", "https://")) for s in step.sources)

    def _content_hashes(self) -> ContentHashes:
        if self.content_hashes is None:
            self.content_hashes = ContentHashes(self.config.paths.build_cache, self.context.root)
        return self.content_hashes

    def _copy_key(self, result: StageResult, state: ins.BuildState, step: ins.CopyStep, items: list[SourceItem],
                  digest: str, instruction: dict) -> tuple[str, str]:
        kind = "dir" if len(items) == 1 and items[0].kind == "dir" else "file" if len(items) == 1 else "multi"
        created_by = f"{ins.nop(state)}{step.name} {kind}:{digest} in {step.dest} "
        return created_by, step_key(self._cache_parent(result), instruction, digest)

    def _copy_items(self, step: ins.CopyStep, source_root: Path | None, downloads: Path) -> list[SourceItem]:
        items: list[SourceItem] = [SourceItem(name=name, kind="content", content=content.encode(), mode=0o644)
                                   for name, content in step.heredocs]
        for source in step.sources:
            if step.is_add and source.startswith(("http://", "https://")):
                items.append(fetch_url(source, downloads))
            elif source_root is not None:
                items.extend(_image_sources(source_root, source))
            else:
                items.extend(self._context_sources(source))
        return items

    def _context_sources(self, source: str) -> list[SourceItem]:
        if has_wildcard(source):
            matches = self.context.glob(source)
            if not matches:
                raise NotFoundError("no source files were specified")
        else:
            matches = [self.context.source(source)]
        items = []
        for rel, host in matches:
            if host.is_dir() and not host.is_symlink():
                prefix = "" if rel == "." else rel + "/"
                entries = [(r[len(prefix):], h, st) for r, h, st in self.context.files_under(rel)]
                items.append(SourceItem(name=posixpath.basename(rel), host=host, kind="dir", entries=entries))
            else:
                items.append(SourceItem(name=posixpath.basename(rel), host=host))
        return items

    @contextlib.contextmanager
    def _source_root(self, from_: str | None) -> Iterator[Path | None]:
        """For COPY --from: a merged view of that stage or image; None means the build context."""
        if from_ is None:
            yield None
            return
        layers = None
        for index, done in self.results.items():
            stage_name = done.state.stage_name
            if from_.lower() == (stage_name or "") or (from_.isdigit() and int(from_) == index):
                layers = done.layers
        if layers is None:
            layers = list(self._resolve_image(from_, None).layers)
        with self._merged(layers) as root:
            yield root if root is not None else Path(tempfile.mkdtemp(dir=self.config.paths.tmp))

    @contextlib.contextmanager
    def _merged(self, layers: list[Any]) -> Iterator[Path | None]:
        """A read-only view of layers: the dir itself for one layer, an overlay mount for several."""
        if not layers:
            yield None
            return
        if len(layers) == 1:
            yield layers[0].diff_dir
            return
        from pyctr.runtime import syscalls
        from pyctr.runtime.rootfs import mount_overlay

        with self._scratch_dir("view") as target:
            try:
                mount_overlay([str(layer.diff_dir) for layer in layers], None, None, str(target))
            except OSError as e:
                raise BuildError(f"cannot mount the image's layers to read them: {e}") from None
            try:
                yield target
            finally:
                syscalls.umount2(str(target), 2)  # MNT_DETACH

    @contextlib.contextmanager
    def _scratch_dir(self, kind: str) -> Iterator[Path]:
        base = self.config.paths.tmp
        base.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = Path(tempfile.mkdtemp(prefix=f"build-{kind}-", dir=base))
        os.chmod(path, 0o755)
        try:
            yield path
        finally:
            with contextlib.suppress(OSError):  # a leftover in the scratch area must not fail the build
                remove_tree(path)


@dataclass
class PreparedMounts:
    """RUN --mount made real on the host: runtime mounts, extra env (secret env=), what the cache key sees."""

    mounts: list[Mount] = field(default_factory=list)
    env: tuple[str, ...] = ()
    key: list[Any] = field(default_factory=list)

    def add(self, mount: RunMount, source: Path, key: dict[str, Any]) -> None:
        options = ["rbind", "rprivate", "ro" if mount.readonly else "rw"]
        self.mounts.append(Mount(mount.target, "bind", str(source), options))
        self.key.append({"type": mount.type, "target": mount.target, "readonly": mount.readonly, **key})


def read_secret(secret: SecretSource) -> bytes:
    """The secret's bytes from its file or environment variable (`build --secret`)."""
    if secret.env is not None:
        value = os.environ.get(secret.env)
        if value is None:
            raise BuildError(f"secret {secret.id}: environment variable {secret.env} is not set")
        return value.encode()
    try:
        return Path(secret.path or "").read_bytes()
    except OSError as e:
        raise BuildError(f"secret {secret.id}: cannot read {secret.path}: {e.strerror}") from None


def _copy_regular(source: str | Path, target: str | Path) -> bool:
    """Copy a regular file (as COPY --from does); skip anything else. A stage may hold device nodes (its RUN
    has CAP_MKNOD): reading one on the host would copy a host disk or /dev/zero into the mount."""
    if not stat.S_ISREG(os.lstat(source).st_mode):
        return False
    shutil.copy2(source, target, follow_symlinks=False)
    return True


def _exists_in(root: Path, path: str) -> bool:
    with contextlib.suppress(OSError, BuildError):
        return resolve_in_root(root, path).is_dir()
    return False


def _image_sources(root: Path, source: str) -> list[SourceItem]:
    """COPY --from sources: paths inside another stage's (or image's) filesystem."""
    rel = posixpath.normpath("/" + source)
    if has_wildcard(rel):
        import fnmatch

        parent = resolve_in_root(root, posixpath.dirname(rel))
        names = sorted(n for n in os.listdir(parent) if fnmatch.fnmatchcase(n, posixpath.basename(rel)))
        paths = [parent / n for n in names]
    else:
        paths = [resolve_in_root(root, rel)]
    if not paths or not all(os.path.lexists(p) for p in paths):
        raise NotFoundError(f"stat {source}: file does not exist")
    items = []
    for host in paths:
        if host.is_dir() and not host.is_symlink():
            items.append(SourceItem(name=host.name, host=host, kind="dir", entries=list(walk_tree(host))))
        else:
            items.append(SourceItem(name=host.name or posixpath.basename(rel), host=host))
    return items


def _host_platform() -> dict[str, str]:
    from pyctr.platform_info import host_platform

    os_name, arch, variant = host_platform()
    out = {"architecture": arch, "os": os_name}
    if variant:
        out["variant"] = variant
    return out


class _StreamAdapter:
    """A file-like writer for pull progress that forwards whole lines to the build printer."""

    def __init__(self, printer: Printer) -> None:
        self.printer = printer
        self.buffer = ""

    def write(self, text: str) -> int:
        self.buffer += text
        while "\n" in self.buffer:
            line, self.buffer = self.buffer.split("\n", 1)
            line = line.split("\r")[-1]
            if line.strip():
                self.printer(line)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def build(config: Config, options: BuildOptions, out: Printer, err: Printer | None = None) -> str:
    """Build per `options`; returns the image id. Raises PyctrError subclasses only."""
    try:
        return Builder(config, options, out, err).run()
    except PyctrError:
        raise
    except OSError as e:
        raise BuildError(f"build failed: {e}") from None
