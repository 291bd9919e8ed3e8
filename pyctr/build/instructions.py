"""One pure function per Dockerfile instruction: (BuildState, Instruction) -> (BuildState, step).

Deciding is kept apart from doing: these functions only compute the next image
configuration and history, and describe any filesystem work as a step
(RunStep, CopyStep, MkdirStep) for the executor to perform. That keeps every
Docker rule here testable without root, a kernel or an image store.
Metadata instructions append a history entry with `empty_layer: true` and
Docker's legacy `created_by` text (`/bin/sh -c #(nop)  CMD ["sh"]`).
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from pyctr.build.dockerfile_ast import AstHeredoc, parse_heredoc
from pyctr.build.parser import Instruction
from pyctr.build.run_mounts import RunMount, parse_mount, resolve_mount
from pyctr.build.shell_words import process_word, process_words
from pyctr.errors import BuildError

DEFAULT_SHELL = ("/bin/sh", "-c")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PROXY_ARGS = frozenset({
    "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
    "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy",
})


@dataclass(frozen=True)
class RunStep:
    """Run `argv` in a container of the image so far; its changes become the layer."""

    argv: tuple[str, ...]
    env: tuple[str, ...]
    user: str
    workdir: str
    network: str | None
    created_by: str
    mounts: tuple[RunMount, ...] = ()  # RUN --mount: provided for the command, never part of the layer


@dataclass(frozen=True)
class CopyStep:
    """Copy context (or stage/image) files into the image; one layer."""

    sources: tuple[str, ...]
    dest: str
    is_add: bool = False
    from_: str | None = None
    chown: str | None = None
    chmod: int | None = None
    heredocs: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        return "ADD" if self.is_add else "COPY"


@dataclass(frozen=True)
class MkdirStep:
    """WORKDIR: create the directory if the image lacks it (no layer when it exists)."""

    path: str
    created_by: str


@dataclass(frozen=True)
class FromStep:
    """Where a stage starts: `scratch`, a previous stage (by index) or an image reference."""

    base: str
    stage: int | None = None
    platform: str | None = None


Step = RunStep | CopyStep | MkdirStep


@dataclass(frozen=True)
class BuildState:
    """The image as a stage has built it so far, plus what the builder tracks beside it.

    `config` is the OCI image config's `config` section; `args` are the ARGs in
    scope (name -> value, None when declared without one); `build_args` are
    `--build-arg` values; `meta_args` the global ARGs declared before FROM.
    """

    config: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    history: tuple[Mapping[str, Any], ...] = ()
    args: Mapping[str, str | None] = field(default_factory=lambda: MappingProxyType({}))
    build_args: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    meta_args: Mapping[str, str | None] = field(default_factory=lambda: MappingProxyType({}))
    stage_index: int = 0
    stage_name: str | None = None
    created: str = "1970-01-01T00:00:00Z"
    cmd_set: bool = False
    author: str | None = None
    used_args: frozenset[str] = frozenset()

    @property
    def env(self) -> dict[str, str]:
        """The config's Env as a dict (later entries win)."""
        out: dict[str, str] = {}
        for item in self.config.get("Env") or ():
            key, _, value = item.partition("=")
            out[key] = value
        return out

    @property
    def expansion_env(self) -> dict[str, str]:
        """What `$VAR` means in builder-expanded instructions: ARG values, overridden by ENV."""
        values = {k: v for k, v in self.args.items() if v is not None}
        values.update(self.env)
        return values

    @property
    def shell(self) -> tuple[str, ...]:
        return tuple(self.config.get("Shell") or DEFAULT_SHELL)

    @property
    def workdir(self) -> str:
        return self.config.get("WorkingDir") or "/"

    def with_config(self, **changes: Any) -> BuildState:
        config = dict(self.config)
        for key, value in changes.items():
            if value is None:
                config.pop(key, None)
            else:
                config[key] = value
        return replace(self, config=MappingProxyType(config))

    def with_history(self, created_by: str, empty_layer: bool = True) -> BuildState:
        entry: dict[str, Any] = {"created": self.created, "created_by": created_by}
        if empty_layer:
            entry["empty_layer"] = True
        return replace(self, history=(*self.history, MappingProxyType(entry)))


Result = tuple[BuildState, Step | None]


def nop(state: BuildState) -> str:
    """History prefix of a step that runs nothing: Docker's legacy builder writes the SHELL in force
    (`getShell(runConfig) + "#(nop) "`), so after `SHELL ["/bin/bash", "-c"]` it is `/bin/bash -c #(nop) `."""
    return " ".join(state.shell) + " #(nop) "


def go_quote_list(items: list[str] | tuple[str, ...]) -> str:
    """Go's fmt `%q` of a []string: `["a" "b"]` (legacy builder history text)."""
    return "[" + " ".join(json.dumps(s, ensure_ascii=False) for s in items) + "]"


def _expand(state: BuildState, inst: Instruction, word: str, env: Mapping[str, str] | None = None) -> str:
    try:
        return process_word(word, state.expansion_env if env is None else env, inst.escape)
    except BuildError as e:
        raise inst.error(e.message) from None


def _metadata(state: BuildState, text: str, **config: Any) -> Result:
    new = state.with_config(**config)  # SHELL's own entry already shows the new shell, as in Docker
    return new.with_history(nop(new) + " " + text), None


# --- FROM ---------------------------------------------------------------------------------


def plan_from(inst: Instruction, meta_env: Mapping[str, str], stage_names: Mapping[str, int]) -> FromStep:
    """Resolve a FROM line: global ARGs substituted, previous stage names recognised."""
    base = _expand(BuildState(), inst, inst.args[0], meta_env)
    if not base:
        raise inst.error(f"base name ({inst.args[0]}) should not be blank")
    platform = inst.flag("platform")
    if platform:
        platform = _expand(BuildState(), inst, platform, meta_env)
    if base.lower() in stage_names:
        return FromStep(base=base, stage=stage_names[base.lower()], platform=platform)
    return FromStep(base=base, platform=platform)


def start_stage(base_config: Mapping[str, Any] | None, base_history: tuple[Mapping, ...], *, stage_index: int,
                stage_name: str | None, build_args: Mapping[str, str], meta_args: Mapping[str, str | None],
                created: str) -> BuildState:
    """The state right after FROM: the base image's config (none for scratch); OnBuild cleared."""
    config = dict(base_config or {})
    config.pop("OnBuild", None)
    return BuildState(config=MappingProxyType(config), history=tuple(base_history),
                      build_args=MappingProxyType(dict(build_args)), meta_args=MappingProxyType(dict(meta_args)),
                      stage_index=stage_index, stage_name=stage_name, created=created)


def meta_arg_values(instructions: tuple[Instruction, ...], build_args: Mapping[str, str]) -> dict[str, str | None]:
    """Global ARGs (before the first FROM): defaults expanded in order, --build-arg wins."""
    values: dict[str, str | None] = {}
    for inst in instructions:
        for name, default in inst.pairs:
            env = {k: v for k, v in values.items() if v is not None}
            value = _expand(BuildState(), inst, default, env) if default is not None else None
            values[name] = build_args.get(name, value)
    return values


# --- metadata instructions ---------------------------------------------------------------


def apply_env(state: BuildState, inst: Instruction) -> Result:
    """ENV k=v ...: every value expanded with the environment from before this line."""
    env_before = state.expansion_env
    pairs = [(_expand(state, inst, k, env_before), _expand(state, inst, v or "", env_before)) for k, v in inst.pairs]
    env = list(state.config.get("Env") or [])
    for key, value in pairs:
        for i, item in enumerate(env):
            if item.partition("=")[0] == key:
                env[i] = f"{key}={value}"
                break
        else:
            env.append(f"{key}={value}")
    text = "ENV " + " ".join(f"{k}={v}" for k, v in pairs)
    return _metadata(state, text, Env=env)


def apply_label(state: BuildState, inst: Instruction) -> Result:
    labels = dict(state.config.get("Labels") or {})
    pairs = [(_expand(state, inst, k), _expand(state, inst, v or "")) for k, v in inst.pairs]
    labels.update(pairs)
    text = "LABEL " + " ".join(f"{k}={v}" for k, v in pairs)
    return _metadata(state, text, Labels=labels)


def apply_arg(state: BuildState, inst: Instruction) -> Result:
    """ARG name[=default]: --build-arg wins, then the default, then a global ARG of that name."""
    args = dict(state.args)
    texts = []
    for name, default in inst.pairs:
        if name in state.build_args:
            value: str | None = state.build_args[name]
        elif default is not None:
            value = _expand(state, inst, default)
        else:
            value = state.meta_args.get(name)
        args[name] = value
        texts.append(name if default is None else f"{name}={default}")
    new = replace(state, args=MappingProxyType(args), used_args=state.used_args | {n for n, _ in inst.pairs})
    return new.with_history(nop(new) + " ARG " + " ".join(texts)), None


def apply_workdir(state: BuildState, inst: Instruction) -> Result:
    path = _expand(state, inst, inst.args[0])
    if not path:
        raise inst.error("WORKDIR requires exactly one argument")
    path = posixpath.normpath(posixpath.join(state.workdir, path))
    path = "/" + path.lstrip("/")
    new = state.with_config(WorkingDir=path)
    return new, MkdirStep(path=path, created_by=nop(new) + "WORKDIR " + path)


def apply_user(state: BuildState, inst: Instruction) -> Result:
    user = _expand(state, inst, inst.args[0])
    return _metadata(state, "USER " + user, User=user)


_PORT = re.compile(r"^(\d+)(?:-(\d+))?(?:/(tcp|udp|sctp))?$", re.IGNORECASE)


def parse_ports(words: list[str]) -> list[str]:
    """EXPOSE words -> `8000/tcp` keys; ranges expanded like Docker's nat.ParsePortSpecs."""
    ports = []
    for word in words:
        match = _PORT.match(word)
        if not match:
            raise BuildError(f"invalid containerPort: {word}")
        start = int(match.group(1))
        end = int(match.group(2) or start)
        proto = (match.group(3) or "tcp").lower()
        if end < start or end > 65535:
            raise BuildError(f"invalid range specified for container port: {word}")
        ports.extend(f"{p}/{proto}" for p in range(start, end + 1))
    return ports


def apply_expose(state: BuildState, inst: Instruction) -> Result:
    try:
        words = [w for arg in inst.args for w in process_words(arg, state.expansion_env, inst.escape)]
        ports = parse_ports(words)
    except BuildError as e:
        raise inst.error(e.message) from None
    exposed = dict(state.config.get("ExposedPorts") or {})
    exposed.update({p: {} for p in ports})
    # Docker: the parsed port keys, deduplicated and string-sorted ("EXPOSE 443/tcp 80/tcp"), so the
    # history (and the cache) does not depend on how the line was written.
    return _metadata(state, "EXPOSE " + " ".join(sorted(set(ports))), ExposedPorts=dict(sorted(exposed.items())))


def command_argv(state: BuildState, inst: Instruction) -> list[str]:
    """Exec form as written; shell form wrapped in SHELL (default /bin/sh -c)."""
    if inst.json_form:
        return list(inst.args)
    if not inst.args:
        return []
    return [*state.shell, inst.args[0]]


def apply_cmd(state: BuildState, inst: Instruction) -> Result:
    cmd = command_argv(state, inst)
    # ArgsEscaped is Windows-only: Docker's resolveCmdLine returns false on Linux (omitted from the JSON).
    new, _ = _metadata(state, "CMD " + go_quote_list(cmd), Cmd=cmd, ArgsEscaped=None)
    return replace(new, cmd_set=True), None


def apply_entrypoint(state: BuildState, inst: Instruction) -> Result:
    """ENTRYPOINT; a CMD inherited from the base (not set in this stage) is reset, as Docker does."""
    entrypoint = command_argv(state, inst)
    changes: dict[str, Any] = {"Entrypoint": entrypoint, "ArgsEscaped": None}
    if not state.cmd_set:
        changes["Cmd"] = None
    return _metadata(state, "ENTRYPOINT " + go_quote_list(entrypoint), **changes)


def apply_volume(state: BuildState, inst: Instruction) -> Result:
    paths = [_expand(state, inst, a) for a in inst.args]
    if any(not p.strip() for p in paths):
        raise inst.error("VOLUME specified can not be an empty string")
    volumes = dict(state.config.get("Volumes") or {})
    volumes.update({p: {} for p in paths})
    return _metadata(state, "VOLUME [" + " ".join(paths) + "]", Volumes=volumes)


_SIGNAL = re.compile(r"^(SIG)?[A-Z][A-Z0-9+-]*$|^\d+$")


def apply_stopsignal(state: BuildState, inst: Instruction) -> Result:
    signal = _expand(state, inst, inst.args[0])
    if not _SIGNAL.match(signal):
        raise inst.error(f"Invalid signal: {signal}")
    return _metadata(state, "STOPSIGNAL " + signal, StopSignal=signal)


def apply_shell(state: BuildState, inst: Instruction) -> Result:
    shell = list(inst.args)
    return _metadata(state, "SHELL [" + " ".join(shell) + "]", Shell=shell)


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def parse_duration(text: str) -> int:
    """Go's time.ParseDuration, in nanoseconds (`30s`, `1m30s`, `500ms`)."""
    if text == "0":
        return 0
    pos, total = 0, 0.0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if not match:
            raise BuildError(f"time: invalid duration \"{text}\"")
        total += float(match.group(1)) * _UNIT_NS[match.group(2)]
        pos = match.end()
    if not text:
        raise BuildError("time: invalid duration \"\"")
    return int(total)


def apply_healthcheck(state: BuildState, inst: Instruction) -> Result:
    if inst.args[0] == "NONE":
        check: dict[str, Any] = {"Test": ["NONE"]}
    else:
        command = list(inst.args[1:])
        check = {"Test": ["CMD", *command] if inst.json_form else ["CMD-SHELL", command[0]]}
        try:
            for flag, key in (("interval", "Interval"), ("timeout", "Timeout"), ("start-period", "StartPeriod"),
                              ("start-interval", "StartInterval")):
                value = inst.flag(flag)
                if value:
                    check[key] = parse_duration(value)
            retries = inst.flag("retries")
            if retries:
                check["Retries"] = int(retries)
        except ValueError:
            raise inst.error(f"invalid --retries value: {inst.flag('retries')}") from None
        except BuildError as e:
            raise inst.error(e.message) from None
    return _metadata(state, "HEALTHCHECK " + json.dumps(check, separators=(",", ":")), Healthcheck=check)


def apply_onbuild(state: BuildState, inst: Instruction) -> Result:
    assert inst.sub is not None
    rest = inst.args[0].strip()
    keyword = rest.split(None, 1)[0]
    trigger = keyword.upper() + rest[len(keyword):]
    triggers = [*(state.config.get("OnBuild") or []), trigger]
    return _metadata(state, "ONBUILD " + trigger, OnBuild=triggers)


def apply_maintainer(state: BuildState, inst: Instruction) -> Result:
    new, _ = _metadata(state, "MAINTAINER " + inst.args[0])
    return replace(new, author=inst.args[0]), None


# --- filesystem instructions ---------------------------------------------------------------


def run_env(state: BuildState) -> tuple[list[str], list[str]]:
    """(the RUN container's Env, the `K=V` ARG list recorded in history).

    ARGs in scope with a value are visible to RUN unless an ENV of the same
    name overrides them; proxy ARGs are passed but never recorded.
    """
    env = state.env
    visible = [(k, v) for k, v in state.args.items() if v is not None and k not in env]
    proxies = [(k, v) for k, v in state.build_args.items() if k in PROXY_ARGS and k not in state.args]
    full = [f"{k}={v}" for k, v in env.items()]
    if "PATH" not in env:
        full.insert(0, f"PATH={DEFAULT_PATH}")
    full += [f"{k}={v}" for k, v in visible + proxies]
    recorded = [f"{k}={v}" for k, v in visible if k not in PROXY_ARGS]
    return full, recorded


def apply_run(state: BuildState, inst: Instruction) -> Result:
    """RUN: the shell (SHELL, default /bin/sh -c) or exec form; heredoc bodies go to the shell."""
    if inst.json_form:
        argv = list(inst.args)
    else:
        script = inst.args[0]
        if inst.heredocs:
            only_heredoc = len(inst.heredocs) == 1 and _heredoc_word(script.strip()) is not None
            if only_heredoc:
                script = _heredoc_script(inst.heredocs[0].content)
            else:
                script += "\n" + "".join(f"{h.content}{h.name}\n" for h in inst.heredocs)
        argv = [*state.shell, script]
    env, recorded = run_env(state)
    created_by = " ".join(argv)
    if recorded:
        created_by = f"|{len(recorded)} {' '.join(recorded)} {created_by}"
    network = inst.flag("network")
    if network is not None and network not in ("default", "none", "host"):
        raise inst.error(f"unsupported network mode: {network}")
    step = RunStep(argv=tuple(argv), env=tuple(env), user=state.config.get("User") or "",
                   workdir=state.workdir, network=network, created_by=created_by, mounts=run_mounts(state, inst))
    return state, step


def run_mounts(state: BuildState, inst: Instruction) -> tuple[RunMount, ...]:
    """RUN --mount values: each field's value expanded with the step's ARG/ENV, BuildKit's defaults filled."""
    mounts = []
    for index, text in enumerate(inst.flag_values("mount")):
        try:
            mount = parse_mount(text, lambda value: process_word(value, state.expansion_env, inst.escape))
            mounts.append(resolve_mount(mount, state.workdir, index))
        except BuildError as e:
            raise inst.error(e.message) from None
    return tuple(mounts)


def _heredoc_word(word: str) -> AstHeredoc | None:
    """A `<<NAME` word as the parser reads it (quotes in any part of NAME, `<<-`, `3<<`), else None."""
    try:
        return parse_heredoc(word)
    except BuildError:
        return None


def _heredoc_script(content: str) -> str:
    """`RUN <<EOF` bodies run as a shell script, unless they start with `#!`: then that interpreter runs them.

    The file is handed over on fd 3 from a quoted here-document, so nothing is written into the image.
    """
    if not content.startswith("#!"):
        return content
    interpreter = content.splitlines()[0][2:].strip()
    marker = "PYCTR_HEREDOC_" + hashlib.sha256(content.encode()).hexdigest()[:16]
    body = content if content.endswith("\n") else content + "\n"
    return f"exec {interpreter} /dev/fd/3 3<<'{marker}'\n{body}{marker}\n"


def _parse_chmod(inst: Instruction, text: str | None) -> int | None:
    if text is None:
        return None
    if not re.fullmatch(r"[0-7]{1,4}", text):
        raise inst.error(f"invalid chmod parameter: {text} (only octal modes are supported)")
    return int(text, 8)


def apply_copy(state: BuildState, inst: Instruction) -> Result:
    """COPY/ADD: sources and destination expanded; a relative destination is under WORKDIR."""
    words = [_expand(state, inst, w) for w in inst.args]
    *sources, dest = words
    heredocs = {h.name: h for h in inst.heredocs}
    docs = []
    plain = []
    for raw, expanded in zip(inst.args[:-1], sources, strict=True):
        word = _heredoc_word(raw)
        doc = heredocs.get(word.name) if word is not None else None
        if doc is not None:
            docs.append((doc.name, _expand_heredoc(state, inst, doc.content) if doc.expand else doc.content))
        else:
            plain.append(expanded)
    if not dest:
        raise inst.error(f"{inst.cmd.upper()} requires a destination")
    if len(sources) > 1 and not dest.endswith("/"):
        raise inst.error(f"When using {inst.cmd.upper()} with more than one source file, "
                         "the destination must be a directory and end with a /")
    if not dest.startswith("/"):
        trailing = "/" if dest.endswith("/") or dest in (".", "./") else ""
        dest = posixpath.normpath(posixpath.join(state.workdir, dest)) + trailing
        dest = dest.replace("//", "/")
    chown = inst.flag("chown")
    from_ = inst.flag("from") if inst.cmd == "copy" else None
    step = CopyStep(sources=tuple(plain), dest=dest, is_add=inst.cmd == "add",
                    from_=_expand(state, inst, from_) if from_ else None,
                    chown=_expand(state, inst, chown) if chown else None,
                    chmod=_parse_chmod(inst, inst.flag("chmod")), heredocs=tuple(docs))
    return state, step


def _expand_heredoc(state: BuildState, inst: Instruction, content: str) -> str:
    """Unquoted heredoc bodies get `$VAR` expansion only: quotes are kept and `\\$` is a literal `$`,
    like a shell's here-document."""
    env = state.expansion_env
    esc = inst.escape
    lone_escape = re.compile(re.escape(esc) + r"(?!\$)")
    out = []
    for line in content.splitlines(keepends=True):
        escaped = lone_escape.sub(lambda _m: esc + esc, line).replace("'", esc + "'").replace('"', esc + '"')
        out.append(process_word(escaped, env, esc))
    return "".join(out)


HANDLERS: dict[str, Callable[[BuildState, Instruction], Result]] = {
    "env": apply_env, "label": apply_label, "arg": apply_arg, "workdir": apply_workdir, "user": apply_user,
    "expose": apply_expose, "cmd": apply_cmd, "entrypoint": apply_entrypoint, "volume": apply_volume,
    "stopsignal": apply_stopsignal, "shell": apply_shell, "healthcheck": apply_healthcheck,
    "onbuild": apply_onbuild, "maintainer": apply_maintainer, "run": apply_run, "copy": apply_copy,
    "add": apply_copy,
}


def apply_instruction(state: BuildState, inst: Instruction) -> Result:
    """Dispatch one in-stage instruction (FROM is handled by plan_from/start_stage)."""
    handler = HANDLERS.get(inst.cmd)
    if handler is None:
        raise inst.error(f"{inst.cmd.upper()} is not allowed here")
    return handler(state, inst)


def resolve_chown(spec: str, passwd_text: str, group_text: str) -> tuple[int, int]:
    """`--chown=user[:group]` against the image's own /etc/passwd and /etc/group (never host NSS).

    Docker: without a group, the user part is looked up as the group too
    (`--chown=55` is 55:55, `--chown=bin` is bin:bin).
    """
    from pyctr.runtime.users import parse_group, parse_passwd

    parts = spec.split(":")
    if len(parts) > 2 or not parts[0]:
        raise BuildError(f"invalid chown string format: {spec}")
    user, group = parts[0], parts[1] if len(parts) == 2 else parts[0]
    uid = _lookup(user, {e.name: e.uid for e in parse_passwd(passwd_text)}, "uid", "user")
    gid = _lookup(group, {e.name: e.gid for e in parse_group(group_text)}, "gid", "group")
    return uid, gid


def _lookup(name: str, table: Mapping[str, int], what: str, kind: str) -> int:
    if name.isdigit():
        return int(name)
    if name not in table:
        raise BuildError(f"unable to convert uid/gid chown string to host mapping: can't find {what} for {kind} "
                         f"{name}: no such {kind}")
    return table[name]
