"""Dockerfile parser: text in, a tree of stages and instructions out, nothing performed.

The text is split by dockerfile_ast.py, a port of buildkit's own parser (parser
directives only before anything else; comments; line continuations with the
escape character; heredocs for RUN/COPY/ADD). This module checks each
instruction as buildkit's instructions package does: known keywords and
`--flags`, exec (JSON) and shell forms, `ENV`/`LABEL` in both `k=v` and the
legacy `k v` form, `ARG` before `FROM`, stage names.
Arguments are kept raw (quotes and `$` intact): substitution needs the
environment of the step, so it happens in instructions.py.
Every error is one line naming the file and line, like Docker's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pyctr.build.dockerfile_ast import Node, name_values, parse_ast, parse_json_array, split_command
from pyctr.build.shell_words import split_words
from pyctr.errors import BuildError, DockerfileSyntaxError

_STAGE_NAME = re.compile(r"^[a-z][a-z0-9-_.]*$")

# Which leading --flags each instruction accepts (anything else: "Unknown flag").
ALLOWED_FLAGS: dict[str, frozenset[str]] = {
    "add": frozenset({"chown", "chmod", "link", "checksum", "keep-git-dir"}),
    "copy": frozenset({"from", "chown", "chmod", "link"}),
    "from": frozenset({"platform"}),
    "run": frozenset({"network", "mount"}),
    "healthcheck": frozenset({"interval", "timeout", "start-period", "start-interval", "retries"}),
}
INSTRUCTIONS = frozenset({
    "add", "arg", "cmd", "copy", "entrypoint", "env", "expose", "from", "healthcheck", "label",
    "maintainer", "onbuild", "run", "shell", "stopsignal", "user", "volume", "workdir",
})


@dataclass(frozen=True)
class Heredoc:
    """A `<<NAME` document: its body, whether the builder expands `$` in it, `<<-` tab stripping."""

    name: str
    content: str
    expand: bool = True
    chomp: bool = False


@dataclass(frozen=True)
class Instruction:
    """One instruction as written (raw arguments; substitution happens later).

    `args`: the JSON array for exec form, else one string for RUN/CMD/ENTRYPOINT/
    USER/WORKDIR/STOPSIGNAL/MAINTAINER and whitespace-split raw words for the rest.
    `pairs`: raw (key, value) for ENV/LABEL and (name, default or None) for ARG.
    """

    cmd: str
    args: tuple[str, ...] = ()
    json_form: bool = False
    flags: tuple[tuple[str, str | None], ...] = ()
    original: str = ""
    line: int = 0
    heredocs: tuple[Heredoc, ...] = ()
    pairs: tuple[tuple[str, str | None], ...] = ()
    sub: Instruction | None = None
    escape: str = "\\"
    filename: str = "Dockerfile"
    keyword: str = ""  # as written (Docker echoes the original line in `Step N/M : ...`)

    def flag_values(self, name: str) -> list[str]:
        """Every value of a repeatable flag (`RUN --mount=... --mount=...`), in order."""
        return [value or "" for key, value in self.flags if key == name]

    def flag(self, name: str) -> str | None:
        for key, value in self.flags:
            if key == name:
                return value if value is not None else "true"
        return None

    @property
    def text(self) -> str:
        """The instruction as Docker prints it in `Step N/M : ...`."""
        return f"{self.keyword or self.cmd.upper()} {self.original}".rstrip()

    def error(self, message: str) -> DockerfileSyntaxError:
        return DockerfileSyntaxError(f"{self.filename}:{self.line}: {message}")


@dataclass(frozen=True)
class Stage:
    """A `FROM` and the instructions up to the next one."""

    index: int
    name: str | None
    base: str
    platform: str | None
    from_instruction: Instruction
    instructions: tuple[Instruction, ...] = ()


@dataclass(frozen=True)
class Dockerfile:
    """The parsed file: global ARGs (before the first FROM) and the stages."""

    filename: str
    escape: str
    meta_args: tuple[Instruction, ...] = ()
    stages: tuple[Stage, ...] = ()
    directives: dict[str, str] = field(default_factory=dict)

    @property
    def step_count(self) -> int:
        return len(self.meta_args) + sum(1 + len(s.instructions) for s in self.stages)


def parse_dockerfile(text: str, filename: str = "Dockerfile") -> Dockerfile:
    """Parse a whole Dockerfile into global ARGs and stages.

    The text is split into instructions by buildkit's own parser (dockerfile_ast);
    this module checks and shapes each one as buildkit's instructions package does.
    """
    tree = parse_ast(text, filename)
    instructions = [_instruction(node, tree.escape, filename) for node in tree.children]
    return _group_stages(instructions, filename, tree.escape, tree.directives)


def _instruction(node: Node, escape: str, filename: str) -> Instruction:
    heredocs = tuple(Heredoc(name=h.name, content=h.chomped, expand=h.expand, chomp=h.chomp)
                     for h in node.heredocs)
    return _parse_line(node.original, node.start_line, escape, filename, heredocs)


def _parse_line(logical: str, number: int, escape: str, filename: str,
                heredocs: tuple[Heredoc, ...] = ()) -> Instruction:
    where = f"{filename}:{number}"
    try:
        keyword, raw_flags, rest = split_command(logical, escape)
    except BuildError as e:
        raise DockerfileSyntaxError(f"{where}: {e.message}") from None
    cmd = keyword.lower()
    if cmd not in INSTRUCTIONS:
        raise DockerfileSyntaxError(f"{where}: unknown instruction: {keyword.upper()}")
    flags = [_flag(raw) for raw in raw_flags]
    allowed = ALLOWED_FLAGS.get(cmd, frozenset())
    for name, _ in flags:
        if name not in allowed:
            raise DockerfileSyntaxError(f"{where}: {cmd.upper()}: unknown flag: --{name}")
    base = Instruction(cmd=cmd, flags=tuple(flags), original=logical.strip()[len(keyword):].strip(),
                       line=number, heredocs=heredocs, escape=escape, filename=filename, keyword=keyword)
    try:
        return _PARSERS[cmd](base, rest)
    except BuildError as e:
        if isinstance(e, DockerfileSyntaxError):
            raise
        raise DockerfileSyntaxError(f"{where}: {e.message}") from None


def _flag(raw: str) -> tuple[str, str | None]:
    """`--name=value` (quotes already removed by the flag splitter) or a bare `--name`."""
    name, eq, value = raw[2:].partition("=") if raw.startswith("--") else (raw, "", "")
    return name.lower(), (value if eq else None)


# --- per-instruction argument shapes -------------------------------------------------------


def _maybe_json(rest: str) -> list[str] | None:
    """buildkit's parseMaybeJSON: a JSON array of strings, else None (shell form).

    A JSON array with anything but strings in it (`CMD ["a", 42]`) is an error, as in buildkit.
    """
    return parse_json_array(rest)


def _with(base: Instruction, **changes) -> Instruction:
    from dataclasses import replace

    return replace(base, **changes)


def _parse_command(base: Instruction, rest: str) -> Instruction:
    """RUN / CMD / ENTRYPOINT: exec form (JSON) or one shell string."""
    array = _maybe_json(rest)
    if array is not None:
        return _with(base, args=tuple(array), json_form=True)
    if not rest and base.cmd == "run":
        raise BuildError("RUN requires at least one argument")
    return _with(base, args=(rest,) if rest else ())


def _parse_shell(base: Instruction, rest: str) -> Instruction:
    array = _maybe_json(rest)
    if array is None or not array:
        raise BuildError("SHELL requires the arguments to be in JSON form")
    return _with(base, args=tuple(array), json_form=True)


def _parse_string(base: Instruction, rest: str) -> Instruction:
    """USER / WORKDIR / STOPSIGNAL / MAINTAINER: one argument."""
    if not rest:
        raise BuildError(f"{base.cmd.upper()} requires exactly one argument")
    return _with(base, args=(rest,))


def _parse_words(base: Instruction, rest: str, minimum: int = 1) -> Instruction:
    words = split_words(rest, base.escape)
    if len(words) < minimum:
        what = "at least one argument" if minimum == 1 else f"at least {minimum} arguments"
        raise BuildError(f"{base.cmd.upper()} requires {what}")
    return _with(base, args=tuple(words))


def _parse_files(base: Instruction, rest: str) -> Instruction:
    """COPY / ADD / VOLUME: JSON array or words."""
    minimum = 1 if base.cmd == "volume" else 2
    array = _maybe_json(rest)
    if array is not None:
        if len(array) < minimum:
            raise BuildError(f"{base.cmd.upper()} requires at least {minimum} arguments")
        return _with(base, args=tuple(array), json_form=True)
    if base.heredocs and minimum == 2 and len(split_words(rest, base.escape)) < 2:
        raise BuildError(f"{base.cmd.upper()} requires at least two arguments")
    return _parse_words(base, rest, minimum)


def _parse_name_values(base: Instruction, rest: str) -> Instruction:
    """ENV / LABEL: `k=v k2="v 2"` or the legacy `k the value`."""
    name = base.cmd.upper()
    triples = name_values(rest, name, base.escape)
    if not triples:
        raise BuildError(f"{name} requires at least one argument")
    for key, _, _ in triples:
        if not key:
            raise BuildError(f"{name} names can not be blank")
    return _with(base, pairs=tuple((key, value) for key, value, _ in triples))


def _parse_arg(base: Instruction, rest: str) -> Instruction:
    words = split_words(rest, base.escape)
    if not words:
        raise BuildError("ARG requires at least one argument")
    pairs = []
    for word in words:
        key, eq, value = word.partition("=")
        if not key:
            raise BuildError("ARG names can not be blank")
        pairs.append((key, value if eq else None))
    return _with(base, pairs=tuple(pairs))


def _parse_from(base: Instruction, rest: str) -> Instruction:
    words = split_words(rest, base.escape)
    if len(words) == 3 and words[1].lower() == "as":
        if not _STAGE_NAME.match(words[2].lower()):
            raise BuildError(f"invalid name for build stage: \"{words[2]}\", name can't start with a number "
                             "or contain symbols")
        return _with(base, args=(words[0], words[2].lower()))
    if len(words) != 1:
        raise BuildError("FROM requires either one or three arguments")
    return _with(base, args=(words[0],))


def _parse_healthcheck(base: Instruction, rest: str) -> Instruction:
    words = rest.split(None, 1)
    if not words:
        raise BuildError("HEALTHCHECK requires an argument")
    kind = words[0].upper()
    if kind == "NONE":
        if len(words) > 1:
            raise BuildError("HEALTHCHECK NONE takes no arguments")
        return _with(base, args=("NONE",))
    if kind != "CMD" or len(words) < 2:
        raise BuildError(f"Unknown type \"{words[0]}\" in HEALTHCHECK (try CMD)")
    command = _parse_command(_with(base, cmd="cmd"), words[1].strip())
    return _with(base, args=("CMD", *command.args), json_form=command.json_form)


def _parse_onbuild(base: Instruction, rest: str) -> Instruction:
    if not rest:
        raise BuildError("ONBUILD requires at least one argument")
    keyword = rest.split(None, 1)[0].upper()
    if keyword == "ONBUILD":
        raise BuildError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if keyword in ("FROM", "MAINTAINER"):
        raise BuildError(f"{keyword} isn't allowed as an ONBUILD trigger")
    sub = _parse_line(rest, base.line, base.escape, base.filename)
    return _with(base, sub=sub, args=(rest,))


_PARSERS = {
    "run": _parse_command, "cmd": _parse_command, "entrypoint": _parse_command,
    "shell": _parse_shell,
    "user": _parse_string, "workdir": _parse_string, "stopsignal": _parse_string, "maintainer": _parse_string,
    "expose": _parse_words,
    "copy": _parse_files, "add": _parse_files, "volume": _parse_files,
    "env": _parse_name_values, "label": _parse_name_values,
    "arg": _parse_arg, "from": _parse_from, "healthcheck": _parse_healthcheck, "onbuild": _parse_onbuild,
}


def parse_trigger(text: str, escape: str = "\\", filename: str = "Dockerfile") -> Instruction:
    """Parse one stored ONBUILD trigger (it runs when the image is used as a base)."""
    return _parse_line(text, 0, escape, filename)


def _group_stages(instructions: list[Instruction], filename: str, escape: str,
                  directives: dict[str, str]) -> Dockerfile:
    meta: list[Instruction] = []
    stages: list[Stage] = []
    current: list[Instruction] | None = None
    names: set[str] = set()
    for inst in instructions:
        if inst.cmd == "from":
            name = inst.args[1] if len(inst.args) > 1 else None
            if name and name in names:
                raise inst.error(f"duplicate name {name}")
            if name:
                names.add(name)
            if current is not None:
                stages[-1] = _with_instructions(stages[-1], current)
            stages.append(Stage(index=len(stages), name=name, base=inst.args[0],
                                platform=inst.flag("platform"), from_instruction=inst))
            current = []
        elif current is None:
            if inst.cmd != "arg":
                raise inst.error(f"{inst.cmd.upper()} instruction before FROM: no build stage in current context")
            meta.append(inst)
        else:
            current.append(inst)
    if not stages:
        raise DockerfileSyntaxError(f"{filename}: file with no instructions" if not instructions
                                    else f"{filename}: no FROM instruction")
    if current is not None:
        stages[-1] = _with_instructions(stages[-1], current)
    return Dockerfile(filename=filename, escape=escape, meta_args=tuple(meta), stages=tuple(stages),
                      directives=directives)


def _with_instructions(stage: Stage, instructions: list[Instruction]) -> Stage:
    from dataclasses import replace

    return replace(stage, instructions=tuple(instructions))
