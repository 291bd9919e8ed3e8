"""The Dockerfile syntax tree exactly as buildkit's parser builds it (frontend/dockerfile/parser).

This layer only splits the text into instructions: parser directives, comments,
line continuations (the escape character, not a doubled one, at the end of a
line), heredoc bodies, leading `--flags` and each instruction's argument shape
(JSON array, whitespace words, name/value pairs). It does not know which
instructions or flags exist; parser.py turns these nodes into checked
Instructions. Keeping it a port of buildkit's own parser lets buildkit's test
files (Dockerfile + `result` dump) prove the two agree.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from pyctr.build.shell_words import Lexer, split_words
from pyctr.errors import BuildError, DockerfileSyntaxError

_WHITESPACE = re.compile(r"[\t\v\f\r ]+")
_HEREDOC = re.compile(r"^(\d*)<<(-?)[\t\n\f\r ]*([^<]*)$")
_LEADING_TABS = re.compile(r"^\t+", re.MULTILINE)
_DIRECTIVE = re.compile(r"^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_VALID_DIRECTIVES = frozenset({"syntax", "escape", "check"})
_HEREDOC_COMMANDS = frozenset({"add", "copy", "run"})
NOT_STRING_ARRAY = "when using JSON array syntax, arrays must be comprised of strings only"


@dataclass
class AstHeredoc:
    """A heredoc as the parser reads it: the raw body (tabs kept even for `<<-`)."""

    name: str
    expand: bool = True
    chomp: bool = False
    fd: int = 0
    content: str = ""

    @property
    def chomped(self) -> str:
        """The body as the builder uses it: leading tabs removed for `<<-`."""
        return _LEADING_TABS.sub("", self.content) if self.chomp else self.content


@dataclass
class Node:
    """buildkit's Node: `value`, then the `next` values of the same expression, or `children`."""

    value: str = ""
    next: list[Node] = field(default_factory=list)
    children: list[Node] = field(default_factory=list)
    heredocs: list[AstHeredoc] = field(default_factory=list)
    json: bool = False
    original: str = ""
    flags: list[str] = field(default_factory=list)
    start_line: int = 0
    end_line: int = 0

    def dump(self) -> str:
        """buildkit's Node.Dump: the s-expression its `result` test files hold."""
        out = [self.value.lower()]
        if self.flags:
            out.append(" [" + " ".join(go_quote(f) for f in self.flags) + "]")
        for child in self.children:
            out.append("(" + child.dump() + ")\n")
        for item in self.next:
            out.append(" " + (item.dump() if item.children else go_quote(item.value)))
        return "".join(out).strip()


@dataclass
class AstResult:
    """The parsed file: instructions in order, the escape character and the directives."""

    children: list[Node]
    escape: str = "\\"
    directives: dict[str, str] = field(default_factory=dict)

    def dump(self) -> str:
        return "".join("(" + child.dump() + ")\n" for child in self.children).strip()


def go_quote(text: str) -> str:
    """Go's strconv.Quote: printable characters as they are, the rest escaped Go's way."""
    out = ['"']
    named = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
             '"': '\\"', "\\": "\\\\"}
    for ch in text:
        if ch in named:
            out.append(named[ch])
        elif ch.isprintable() or ch == " ":
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


class _Directives:
    """Parser directives (`# escape=`, `# syntax=`, `# check=`) before anything else; one each."""

    def __init__(self) -> None:
        self.escape = "\\"
        self.found: dict[str, str] = {}
        self.done = False
        self.continuation = _continuation_regex(self.escape)

    def feed(self, line: str) -> bool:
        """Look at one line; True when it was a directive."""
        if self.done:
            return False
        if not line.startswith("#"):
            self.done = True
            return False
        match = _DIRECTIVE.match(line[1:].lstrip())
        if not match or match.group(1).lower() not in _VALID_DIRECTIVES:
            self.done = True
            return False
        name, value = match.group(1).lower(), match.group(2)
        if name in self.found:
            raise BuildError(f"only one {name} parser directive can be used")
        if name == "escape":
            if value not in ("`", "\\"):
                raise BuildError(f"invalid escape token '{value}' does not match ` or \\")
            self.escape = value
            self.continuation = _continuation_regex(value)
        self.found[name] = value
        return True


def _continuation_regex(escape: str) -> re.Pattern[str]:
    e = re.escape(escape)
    return re.compile(rf"([^{e}]){e}[ \t]*\Z|^{e}[ \t]*\Z")


def parse_directives(text: str) -> dict[str, str]:
    """The parser directives at the top of a Dockerfile (buildkit's DirectiveParser.ParseAll)."""
    directives = _Directives()
    for line in text.split("\n"):
        if directives.done:
            break
        directives.feed(line.rstrip("\r"))
    return directives.found


def _split_lines(text: str) -> list[str]:
    """Lines with their newline kept, as buildkit's scanner yields them."""
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


class _Reader:
    """The physical lines, a cursor and the 1-based number of the last line taken."""

    def __init__(self, text: str) -> None:
        self.lines = _split_lines(text.removeprefix("\ufeff"))
        self.number = 0
        self.instruction_start = 0

    @property
    def error_line(self) -> int:
        """Where an error is reported: the instruction's first line (buildkit's StartLine)."""
        return self.instruction_start or self.number

    def take(self) -> str | None:
        if self.number >= len(self.lines):
            return None
        self.number += 1
        return self.lines[self.number - 1]


def parse_ast(text: str, filename: str = "Dockerfile") -> AstResult:
    """buildkit's parser.Parse; errors are DockerfileSyntaxError `file:line: message`."""
    reader = _Reader(text)
    directives = _Directives()
    children: list[Node] = []
    try:
        while True:
            node = _next_node(reader, directives)
            if node is None:
                break
            if node.value:
                children.append(node)
    except BuildError as e:
        if isinstance(e, DockerfileSyntaxError):
            raise
        raise DockerfileSyntaxError(f"{filename}:{max(reader.error_line, 1)}: {e.message}") from None
    if not children:
        raise DockerfileSyntaxError(f"{filename}: file with no instructions")
    return AstResult(children, directives.escape, directives.found)


def _process(directives: _Directives, raw: str, strip_left: bool) -> tuple[str, bool]:
    line = raw.rstrip("\r\n")
    if strip_left:
        line = line.lstrip()
    was_directive = directives.feed(line)
    return ("" if _is_comment(line) else line), was_directive


def _trim_continuation(line: str, directives: _Directives) -> tuple[str, bool]:
    """(the line without its continuation character, whether the instruction ends here)."""
    if directives.continuation.search(line):
        return directives.continuation.sub(lambda m: m.group(1) or "", line), False
    return line, True


def _next_node(reader: _Reader, directives: _Directives) -> Node | None:
    """The next instruction, a blank Node for lines that hold none, None at the end."""
    raw = reader.take()
    if raw is None:
        return None
    line, _ = _process(directives, raw, True)
    start = reader.number
    line, ended = _trim_continuation(line, directives)
    if ended and not line:
        return Node()
    reader.instruction_start = start
    parts = [line]
    while not ended:
        raw = reader.take()
        if raw is None:
            break
        line, _ = _process(directives, raw, False)
        if _is_comment(raw) or not line.strip():
            continue
        line, ended = _trim_continuation(line, directives)
        parts.append(line)
    logical = "".join(parts)
    node = node_from_line(logical, directives.escape)
    if _can_contain_heredoc(node) and "<<" in logical:
        for doc in heredocs_from_line(logical):
            _read_heredoc_body(reader, doc)
            node.heredocs.append(doc)
    node.start_line, node.end_line = start, reader.number
    reader.instruction_start = 0
    return node


def _read_heredoc_body(reader: _Reader, doc: AstHeredoc) -> None:
    body = []
    while True:
        raw = reader.take()
        if raw is None:
            raise BuildError("unterminated heredoc")
        candidate = raw.rstrip("\r\n")
        if doc.chomp:
            candidate = candidate.lstrip("\t")
        if candidate == doc.name:
            break
        body.append(raw)
    doc.content = "".join(body)


def _can_contain_heredoc(node: Node) -> bool:
    if node.value.lower() == "onbuild" and node.next and node.next[0].children:
        node = node.next[0].children[0]
    return node.value.lower() in _HEREDOC_COMMANDS and not node.json


def heredocs_from_line(line: str) -> list[AstHeredoc]:
    """Every `<<NAME` word of an instruction line, in order (buildkit's heredocsFromLine)."""
    lexer = Lexer("\\", raw_quotes=True, raw_escapes=True, skip_unset=True)
    try:
        words = lexer.process(line, {}).words
    except BuildError:
        return []
    docs = []
    for word in words:
        doc = parse_heredoc(word)
        if doc is not None:
            docs.append(doc)
    return docs


def parse_heredoc(word: str) -> AstHeredoc | None:
    """One `[n]<<[-]NAME` word; a quoted NAME (any part) means the body is not expanded."""
    match = _HEREDOC.match(word)
    if not match or not match.group(3):
        return None
    rest = match.group(3)
    words = Lexer("\\", skip_unset=True).process(rest, {}).words
    if len(words) != 1:
        return None
    raw_words = Lexer("\\", raw_quotes=True, skip_unset=True).process(rest, {}).words
    name, raw_name = words[0], raw_words[0]
    quotes = name.count("'") + name.count('"')
    raw_quotes = raw_name.count("'") + raw_name.count('"')
    return AstHeredoc(name=name, expand=quotes == raw_quotes, chomp=match.group(2) == "-",
                      fd=int(match.group(1) or 0))


# --- one instruction line ---------------------------------------------------------------


def node_from_line(line: str, escape: str = "\\") -> Node:
    """buildkit's newNodeFromLine: keyword, leading --flags, and the argument shape by keyword."""
    command, flags, rest = split_command(line, escape)
    shape = _SHAPES.get(command.lower(), _ignore)
    nodes, is_json = shape(rest, escape)
    return Node(value=command, next=nodes, json=is_json, original=line, flags=flags)


def split_command(line: str, escape: str = "\\") -> tuple[str, list[str], str]:
    parts = _WHITESPACE.split(line.strip(), maxsplit=1)
    if len(parts) < 2:
        return parts[0], [], ""
    rest, flags = extract_builder_flags(parts[1], escape)
    return parts[0], flags, rest.strip()


def extract_builder_flags(line: str, escape: str = "\\") -> tuple[str, list[str]]:
    """Leading `--name[=value]` words (quotes and escapes removed); a lone `--` ends them."""
    words: list[str] = []
    word: list[str] = []
    quote = ""
    in_word = blank_ok = False
    pos = 0
    while pos <= len(line):
        ch = line[pos] if pos < len(line) else ""
        if not in_word and not quote:
            if not ch:
                break
            if ch.isspace():
                pos += 1
                continue
            if not line.startswith("--", pos):
                return line[pos:], words
            in_word = True
        if not ch:
            text = "".join(word)
            if text != "--" and (blank_ok or text):
                words.append(text)
            break
        if quote:
            pos = _flag_quoted(line, pos, quote, escape, word)
            if pos < 0:
                quote, pos = "", -pos
            continue
        if ch.isspace():
            text = "".join(word)
            if text == "--":
                return line[pos:], words
            if blank_ok or text:
                words.append(text)
            word, in_word, blank_ok = [], False, False
            pos += 1
            continue
        if ch in "'\"":
            quote, blank_ok = ch, True
            pos += 1
            continue
        if ch == escape:
            if pos + 1 == len(line):
                pos += 1
                continue
            pos += 1
            ch = line[pos]
        word.append(ch)
        pos += 1
    return "", words


def _flag_quoted(line: str, pos: int, quote: str, escape: str, word: list[str]) -> int:
    """One character inside a quoted flag value; a negative position means the quote closed."""
    ch = line[pos]
    if ch == quote:
        return -(pos + 1)
    if ch == escape:
        if pos + 1 == len(line):
            return -(pos + 1)
        pos += 1
        ch = line[pos]
    word.append(ch)
    return pos + 1


def _chain(values: list[str]) -> list[Node]:
    return [Node(value=v) for v in values]


def _ignore(rest: str, escape: str) -> tuple[list[Node], bool]:
    return [Node()], False


def _sub_command(rest: str, escape: str) -> tuple[list[Node], bool]:
    if not rest:
        return [], False
    return [Node(children=[node_from_line(rest, escape)])], False


def parse_json_array(rest: str) -> list[str] | None:
    """A JSON array of strings; None when it is not a JSON array (then it is shell form).

    A JSON array holding anything but strings is an error, as in buildkit.
    """
    rest = rest.lstrip()
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest, parse_constant=_reject_constant)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(v, str) for v in value):
        raise BuildError(NOT_STRING_ARRAY)
    return value


def _reject_constant(name: str) -> None:
    raise ValueError(f"not JSON: {name}")


def _maybe_json(rest: str, escape: str) -> tuple[list[Node], bool]:
    if not rest:
        return [], False
    array = parse_json_array(rest)
    if array is not None:
        return _chain(array), True
    return [Node(value=rest)], False


def _maybe_json_to_list(rest: str, escape: str) -> tuple[list[Node], bool]:
    array = parse_json_array(rest)
    if array is not None:
        return _chain(array), True
    return _whitespace_words(rest, escape)


def _whitespace_words(rest: str, escape: str) -> tuple[list[Node], bool]:
    if not rest:
        return [], False
    return _chain(_WHITESPACE.split(rest)), False


def _string(rest: str, escape: str) -> tuple[list[Node], bool]:
    return ([Node(value=rest)] if rest else []), False


def name_values(rest: str, keyword: str, escape: str = "\\") -> list[tuple[str, str, str]]:
    """ENV/LABEL: (key, raw value, `=` or `` for the legacy `key value` form)."""
    words = split_words(rest, escape)
    if not words:
        return []
    if "=" not in words[0]:
        parts = _WHITESPACE.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise BuildError(f"{keyword} must have two arguments")
        return [(parts[0], parts[1], "")]
    triples = []
    for word in words:
        if "=" not in word:
            raise BuildError(f"Syntax error - can't find = in {go_quote(word)}. Must be of the form: name=value")
        key, _, value = word.partition("=")
        triples.append((key, value, "="))
    return triples


def _name_val(keyword: str):
    def shape(rest: str, escape: str) -> tuple[list[Node], bool]:
        return _chain([part for triple in name_values(rest, keyword, escape) for part in triple]), False
    return shape


def _name_or_name_val(rest: str, escape: str) -> tuple[list[Node], bool]:
    return _chain(split_words(rest, escape)), False


def _health(rest: str, escape: str) -> tuple[list[Node], bool]:
    sep = 0
    while sep < len(rest) and not rest[sep].isspace():
        sep += 1
    if sep == 0:
        return [], False
    nxt = sep
    while nxt < len(rest) and rest[nxt].isspace():
        nxt += 1
    nodes, is_json = _maybe_json(rest[nxt:], escape)
    return [Node(value=rest[:sep]), *nodes], is_json


_SHAPES = {
    "add": _maybe_json_to_list, "arg": _name_or_name_val, "cmd": _maybe_json, "copy": _maybe_json_to_list,
    "entrypoint": _maybe_json, "env": _name_val("ENV"), "expose": _whitespace_words, "from": _whitespace_words,
    "healthcheck": _health, "label": _name_val("LABEL"), "maintainer": _string, "onbuild": _sub_command,
    "run": _maybe_json, "shell": _maybe_json, "stopsignal": _string, "user": _string,
    "volume": _maybe_json_to_list, "workdir": _string,
}
