"""Go's text/template with docker-cli's functions: the `--format` language of every command that prints.

Scripts written for Docker pass templates such as `{{range $i, $e := .Config.Env}}{{println $e}}{{end}}` or
`{{if eq .State.Status "running"}}up{{end}}`, so this is a real parser and evaluator of Go's grammar (actions,
pipelines, variables, range/if/with/else, trimming markers, comments, literals) rather than a regex: a subset
that silently printed something else would be worse than an error.

Values follow Go's reflection model as docker-cli feeds it:
- a `dict` is a Go map (`inspect` documents: a missing key prints `<no value>`),
- a `GoStruct` is a Go struct such as docker-cli's `*formatter.containerContext` (a missing field is an error,
  methods may take arguments: `{{.Label "k"}}`),
- a `Stringer` prints as text but encodes as JSON differently (`{{.Platform}}` vs `{{json .Platform}}`),
- `None` is nil, lists are slices, str/int/float/bool as themselves.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyctr.output.functions import FUNCTIONS, HEADER_FUNCTIONS, ArgumentError, CallError, want_str
from pyctr.output.govalues import NO_VALUE, GoMap, GoStruct, Stringer, TemplateError, go_json, go_print, go_type, truth

__all__ = ["FUNCTIONS", "HEADER_FUNCTIONS", "NO_VALUE", "GoMap", "GoStruct", "Stringer", "Template", "TemplateError",
           "go_json", "go_print", "inspect_lines", "json_shorthand", "parse", "render"]

_NO_FINAL = object()  # "no value piped in" (Go's missingVal)


# ---------------------------------------------------------------------------------------------- lexing

_SPACE = " \t\r\n"


@dataclass
class _Tok:
    kind: str  # field var ident string rawstring char number ( ) | := = , dot
    text: str
    pos: int
    spaced: bool  # whitespace before it (a field right after a term continues a chain; after space it does not)


def _split(src: str) -> list[tuple[str, Any, int]]:
    """Split the source into ("text", str, pos) and ("action", [tokens], pos) pieces, trimming as `{{-`/`-}}` ask."""
    pieces: list[tuple[str, Any, int]] = []
    i = 0
    trim_next = False
    while True:
        start = src.find("{{", i)
        text = src[i:] if start < 0 else src[i:start]
        if trim_next:
            text = text.lstrip(_SPACE)
        if start < 0:
            if text:
                pieces.append(("text", text, i))
            return pieces
        j = start + 2
        trim_left = src.startswith("-", j) and j + 1 < len(src) and src[j + 1] in _SPACE
        if trim_left:
            text = text.rstrip(_SPACE)
            j += 2
        if text:
            pieces.append(("text", text, i))
        if src.startswith("/*", _skip_space(src, j) if trim_left else j):
            i, trim_next = _comment_end(src, _skip_space(src, j) if trim_left else j)
            continue
        tokens, i, trim_next = _lex_action(src, j)
        pieces.append(("action", tokens, start))


def _skip_space(src: str, j: int) -> int:
    while j < len(src) and src[j] in _SPACE:
        j += 1
    return j


def _comment_end(src: str, j: int) -> tuple[int, bool]:
    end = src.find("*/", j + 2)
    if end < 0:
        raise _parse_error(src, j, "unclosed comment")
    k = end + 2
    if src.startswith(" -}}", k):
        return k + 4, True
    if src.startswith("}}", k):
        return k + 2, False
    raise _parse_error(src, j, "comment ends before closing delimiter")


_NUMBER = re.compile(r"[+-]?(0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+|(\d[\d_]*)?\.?\d[\d_]*([eE][+-]?\d+)?)")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _lex_action(src: str, j: int) -> tuple[list[_Tok], int, bool]:
    """Tokens of one action starting at `j`; returns (tokens, index after `}}`, trim the following text)."""
    tokens: list[_Tok] = []
    spaced = True
    while True:
        if j >= len(src):
            raise _parse_error(src, j, "unclosed action")
        c = src[j]
        if src.startswith(" -}}", j) or src.startswith("\t-}}", j) or src.startswith("\n-}}", j):
            return tokens, j + 4, True
        if src.startswith("}}", j):
            return tokens, j + 2, False
        if c in _SPACE:
            j = _skip_space(src, j)
            spaced = True
            if j >= len(src):
                raise _parse_error(src, j, "unclosed action")
            continue
        tok, j = _lex_token(src, j, spaced)
        tokens.append(tok)
        spaced = False


def _lex_token(src: str, j: int, spaced: bool) -> tuple[_Tok, int]:
    c = src[j]
    if c == '"':
        k = j + 1
        while k < len(src) and src[k] != '"':
            if src[k] == "\n":
                raise _parse_error(src, j, "unterminated quoted string")
            k += 2 if src[k] == "\\" else 1
        if k >= len(src):
            raise _parse_error(src, j, "unterminated quoted string")
        return _Tok("string", src[j:k + 1], j, spaced), k + 1
    if c == "`":
        k = src.find("`", j + 1)
        if k < 0:
            raise _parse_error(src, j, "unterminated raw quoted string")
        return _Tok("rawstring", src[j + 1:k], j, spaced), k + 1
    if c == "'":
        m = re.match(r"'(\\.[^']*|[^'\\])'", src[j:])
        if not m:
            raise _parse_error(src, j, "unterminated character constant")
        return _Tok("char", m.group(0), j, spaced), j + len(m.group(0))
    if src.startswith(":=", j):
        return _Tok(":=", ":=", j, spaced), j + 2
    if c in "()|=,":
        return _Tok(c, c, j, spaced), j + 1
    if c == ".":
        m = _IDENT.match(src, j + 1)
        if m:
            return _Tok("field", m.group(0), j, spaced), m.end()
        if j + 1 < len(src) and src[j + 1].isdigit():
            m = _NUMBER.match(src, j)
            assert m is not None
            return _Tok("number", m.group(0), j, spaced), m.end()
        return _Tok("dot", ".", j, spaced), j + 1
    if c == "$":
        m = _IDENT.match(src, j + 1)
        name = "$" + (m.group(0) if m else "")
        return _Tok("var", name, j, spaced), j + len(name)
    if c.isdigit() or (c in "+-" and j + 1 < len(src) and (src[j + 1].isdigit() or src[j + 1] == ".")):
        m = _NUMBER.match(src, j)
        assert m is not None
        return _Tok("number", m.group(0), j, spaced), m.end()
    m = _IDENT.match(src, j)
    if m:
        return _Tok("ident", m.group(0), j, spaced), m.end()
    raise _parse_error(src, j, f"unexpected {_go_quote_char(c)} in command")


def _go_quote_char(c: str) -> str:
    return "'" + c + "'" if c != "'" else "'\\''"


def _parse_error(src: str, pos: int, message: str) -> TemplateError:
    line = src.count("\n", 0, pos) + 1
    return TemplateError(f"template: \0:{line}: {message}")  # \0: the template's name, filled in by Template


# ---------------------------------------------------------------------------------------------- nodes


@dataclass
class _Node:
    pos: int


@dataclass
class _Const(_Node):
    value: Any
    text: str


@dataclass
class _Dot(_Node):
    pass


@dataclass
class _Field(_Node):
    names: list[str]


@dataclass
class _Var(_Node):
    name: str
    names: list[str]


@dataclass
class _Ident(_Node):
    name: str


@dataclass
class _Chain(_Node):
    node: _Node
    names: list[str]


@dataclass
class _Command(_Node):
    args: list[_Node]


@dataclass
class _Pipe(_Node):
    decl: list[str]
    assign: bool
    cmds: list[_Command]


@dataclass
class _Action(_Node):
    pipe: _Pipe


@dataclass
class _Text(_Node):
    text: str


@dataclass
class _Branch(_Node):
    kind: str  # if range with
    pipe: _Pipe
    body: list[_Node]
    else_body: list[_Node] | None


@dataclass
class _Loop(_Node):
    kind: str  # break continue


def _node_text(node: _Node) -> str:
    """How Go prints a node in `executing "" at <...>`."""
    if isinstance(node, _Field):
        return "." + ".".join(node.names)
    if isinstance(node, _Var):
        return node.name + "".join("." + n for n in node.names)
    if isinstance(node, _Ident):
        return node.name
    if isinstance(node, _Dot):
        return "."
    if isinstance(node, _Const):
        return node.text
    if isinstance(node, _Chain):
        return _node_text(node.node) + "".join("." + n for n in node.names)
    if isinstance(node, _Command):
        return " ".join(_node_text(a) for a in node.args)
    if isinstance(node, _Pipe):
        decl = (", ".join(node.decl) + (" = " if node.assign else " := ")) if node.decl else ""
        return "(" + decl + " | ".join(_node_text(c) for c in node.cmds) + ")"
    if isinstance(node, _Branch):
        pipe = _node_text(node.pipe)[1:-1]
        text = f"{{{{{node.kind} {pipe}}}}}" + "".join(_node_text(n) for n in node.body)
        if node.else_body is not None:
            text += "{{else}}" + "".join(_node_text(n) for n in node.else_body)
        return text + "{{end}}"
    if isinstance(node, _Text):
        return node.text
    if isinstance(node, _Action):
        return "{{" + _node_text(node.pipe)[1:-1] + "}}"
    return ""


def _error_context(node: _Node) -> str:
    """Go's ErrorContext: the node's text, cut to 20 characters and "..."."""
    text = _node_text(node)
    return text[:20] + "..." if len(text) > 20 else text


# ---------------------------------------------------------------------------------------------- parsing


class _Parser:
    def __init__(self, src: str, funcs: dict[str, Callable]) -> None:
        self.src = src
        self.funcs = funcs
        self.pieces = _split(src)
        self.i = 0
        self.vars: list[str] = ["$"]
        self.range_depth = 0

    def error(self, pos: int, message: str) -> TemplateError:
        return _parse_error(self.src, pos, message)

    def parse(self) -> list[_Node]:
        body, end = self.list_until(())
        if end is not None:
            raise self.error(end[1], f"unexpected {{{{{end[0]}}}}}")
        return body

    def list_until(self, stops: tuple[str, ...]) -> tuple[list[_Node], tuple[str, int, list[_Tok]] | None]:
        """Nodes up to one of the `stops` keywords (`end`, `else`); returns the stop met (None at EOF)."""
        nodes: list[_Node] = []
        while self.i < len(self.pieces):
            kind, value, pos = self.pieces[self.i]
            self.i += 1
            if kind == "text":
                nodes.append(_Text(pos, value))
                continue
            tokens: list[_Tok] = value
            if not tokens:
                raise self.error(pos, "missing value for command")
            head = tokens[0]
            if head.kind == "ident" and head.text in ("end", "else"):
                if head.text not in stops:
                    raise self.error(pos, f"unexpected {{{{{head.text}}}}}")
                return nodes, (head.text, pos, tokens[1:])
            nodes.append(self.action(tokens, pos))
        if stops:
            raise self.error(len(self.src), "unexpected EOF")
        return nodes, None

    def action(self, tokens: list[_Tok], pos: int) -> _Node:
        head = tokens[0]
        if head.kind == "ident" and head.text in ("if", "range", "with"):
            return self.branch(head.text, tokens[1:], tokens[1].pos if len(tokens) > 1 else head.pos)
        if head.kind == "ident" and head.text in ("break", "continue"):
            if self.range_depth == 0:
                raise self.error(pos, f"{{{{{head.text}}}}} outside {{{{range}}}}")
            if len(tokens) > 1:
                raise self.error(pos, f"unexpected {tokens[1].text!r} in {{{{{head.text}}}}}")
            return _Loop(pos, head.text)
        if head.kind == "ident" and head.text in ("define", "template", "block"):
            raise self.error(pos, f"{{{{{head.text}}}}} is not supported in --format")
        return _Action(pos, self.pipeline(tokens, "command", pos))

    def branch(self, kind: str, tokens: list[_Tok], pos: int) -> _Branch:
        mark = len(self.vars)
        pipe = self.pipeline(tokens, kind, pos)
        if kind == "range":
            self.range_depth += 1
        body, stop = self.list_until(("end", "else"))
        if kind == "range":
            self.range_depth -= 1
        else_body = None
        if stop is not None and stop[0] == "else":
            rest = stop[2]
            if rest and rest[0].kind == "ident" and rest[0].text in ("if", "with") and kind != "range":
                # `{{else if ...}}` is `{{else}}{{if ...}}...{{end}}` sharing our {{end}}
                else_body = [self.branch(rest[0].text, rest[1:], stop[1])]
                stop = ("end", stop[1], [])
            elif rest:
                raise self.error(stop[1], f"unexpected {rest[0].text!r} in else")
            else:
                else_body, stop = self.list_until(("end",))
        if stop is not None and stop[2]:
            raise self.error(stop[1], f"unexpected {stop[2][0].text!r} in end")
        del self.vars[mark:]
        return _Branch(pos, kind, pipe, body, else_body)

    def pipeline(self, tokens: list[_Tok], context: str, pos: int) -> _Pipe:
        decl: list[str] = []
        assign = False
        rest = tokens
        if len(tokens) >= 2 and tokens[0].kind == "var" and tokens[1].kind in (":=", "=", ","):
            if tokens[1].kind == ",":
                if context != "range" or len(tokens) < 4 or tokens[2].kind != "var" or tokens[3].kind != ":=":
                    raise self.error(pos, f"too many declarations in {context}")
                decl = [tokens[0].text, tokens[2].text]
                rest = tokens[4:]
            else:
                decl = [tokens[0].text]
                assign = tokens[1].kind == "="
                rest = tokens[2:]
                if assign and tokens[0].text not in self.vars:
                    raise self.error(pos, f"undefined variable \"{tokens[0].text}\"")
        cmds = self.commands(rest, pos, context)
        if not assign:
            self.vars.extend(decl)
        return _Pipe(pos, decl, assign, cmds)

    def commands(self, tokens: list[_Tok], pos: int, context: str) -> list[_Command]:
        cmds: list[_Command] = []
        current: list[_Tok] = []
        depth = 0
        for tok in tokens + [_Tok("|", "|", len(self.src), True)]:
            if tok.kind == "(":
                depth += 1
            elif tok.kind == ")":
                depth -= 1
                if depth < 0:
                    raise self.error(tok.pos, "unexpected right paren")
            if tok.kind == "|" and depth == 0:
                if not current:
                    raise self.error(pos, f"missing value for {context}")
                cmds.append(self.command(current))
                current = []
            else:
                current.append(tok)
        if depth:
            raise self.error(pos, "unclosed left paren")
        for cmd in cmds[1:]:
            if isinstance(cmd.args[0], (_Const, _Dot)) or (
                    isinstance(cmd.args[0], _Var) and not cmd.args[0].names and len(cmd.args) == 1):
                raise self.error(pos, f"non executable command in pipeline stage {cmds.index(cmd) + 1}")
        return cmds

    def command(self, tokens: list[_Tok]) -> _Command:
        args: list[_Node] = []
        k = 0
        while k < len(tokens):
            node, k = self.operand(tokens, k)
            args.append(node)
        return _Command(tokens[0].pos, args)

    def operand(self, tokens: list[_Tok], k: int) -> tuple[_Node, int]:
        node, k = self.term(tokens, k)
        names = []
        while k < len(tokens) and tokens[k].kind == "field" and not tokens[k].spaced:
            names.append(tokens[k].text)
            k += 1
        if names:
            if isinstance(node, _Field):
                node = _Field(node.pos, node.names + names)
            elif isinstance(node, _Var):
                node = _Var(node.pos, node.name, node.names + names)
            elif isinstance(node, (_Const, _Dot, _Ident)):
                raise self.error(node.pos, f"unexpected . after term {_node_text(node)!r}")
            else:
                node = _Chain(node.pos, node, names)
        return node, k

    def term(self, tokens: list[_Tok], k: int) -> tuple[_Node, int]:
        tok = tokens[k]
        if tok.kind == "(":
            depth, j = 0, k
            for j in range(k, len(tokens)):
                depth += {"(": 1, ")": -1}.get(tokens[j].kind, 0)
                if depth == 0:
                    break
            inner = tokens[k + 1:j]
            if not inner:
                raise self.error(tok.pos, "missing value for parenthesized pipeline")
            return self.pipeline(inner, "parenthesized pipeline", tok.pos), j + 1
        if tok.kind == "field":
            return _Field(tok.pos, [tok.text]), k + 1
        if tok.kind == "dot":
            return _Dot(tok.pos), k + 1
        if tok.kind == "var":
            if tok.text not in self.vars:
                raise self.error(tok.pos, f"undefined variable \"{tok.text}\"")
            return _Var(tok.pos, tok.text, []), k + 1
        if tok.kind == "ident":
            if tok.text in ("true", "false"):
                return _Const(tok.pos, tok.text == "true", tok.text), k + 1
            if tok.text == "nil":
                return _Const(tok.pos, None, "nil"), k + 1
            if tok.text not in self.funcs:
                raise self.error(tok.pos, f"function \"{tok.text}\" not defined")
            return _Ident(tok.pos, tok.text), k + 1
        if tok.kind in ("string", "rawstring", "char", "number"):
            return _Const(tok.pos, self.literal(tok), tok.text if tok.kind != "rawstring" else f"`{tok.text}`"), k + 1
        raise self.error(tok.pos, f"unexpected \"{tok.text}\" in operand")

    def literal(self, tok: _Tok) -> Any:
        if tok.kind == "rawstring":
            return tok.text
        if tok.kind == "string":
            return _unquote(tok.text[1:-1], lambda: self.error(tok.pos, f"bad string syntax: {tok.text}"))
        if tok.kind == "char":
            return ord(_unquote(tok.text[1:-1], lambda: self.error(tok.pos, f"bad character: {tok.text}")))
        return _number(tok.text, lambda: self.error(tok.pos, f"bad number syntax: \"{tok.text}\""))


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a", "b": "\b", "f": "\f",
            "v": "\v"}


def _unquote(body: str, error: Callable[[], TemplateError]) -> str:
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        e = body[i + 1] if i + 1 < len(body) else ""
        if e in _ESCAPES:
            out.append(_ESCAPES[e])
            i += 2
        elif e in "xuU":
            n = {"x": 2, "u": 4, "U": 8}[e]
            digits = body[i + 2:i + 2 + n]
            if len(digits) != n or not all(d in "0123456789abcdefABCDEF" for d in digits):
                raise error()
            out.append(chr(int(digits, 16)))
            i += 2 + n
        elif e in "01234567":
            out.append(chr(int(body[i + 1:i + 4], 8)))
            i += 4
        else:
            raise error()
    return "".join(out)


def _number(text: str, error: Callable[[], TemplateError]) -> int | float:
    clean = text.replace("_", "")
    try:
        if re.fullmatch(r"[+-]?0[xXbBoO].*", clean):
            return int(clean, 0)
        if re.fullmatch(r"[+-]?\d+", clean):
            return int(clean, 8) if len(clean.lstrip("+-")) > 1 and clean.lstrip("+-")[0] == "0" else int(clean)
        return float(clean)
    except ValueError:
        raise error() from None


# ---------------------------------------------------------------------------------------------- execution


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _Exec:
    def __init__(self, template: Template, data: Any, funcs: dict[str, Callable[..., Any]],
                 missing_key_error: bool = False) -> None:
        self.template = template
        self.funcs = funcs
        self.missing_key_error = missing_key_error
        self.vars: list[tuple[str, Any]] = [("$", data)]
        self.out: list[str] = []

    def error(self, node: _Node, message: str) -> TemplateError:
        src = self.template.source
        line = src.count("\n", 0, node.pos) + 1
        col = node.pos - (src.rfind("\n", 0, node.pos) + 1)
        name = self.template.name
        return TemplateError(f'template: {name}:{line}:{col}: executing "{name}" at <{_error_context(node)}>: '
                             f"{message}")

    def walk(self, dot: Any, nodes: list[_Node]) -> None:
        for node in nodes:
            if isinstance(node, _Text):
                self.out.append(node.text)
            elif isinstance(node, _Action):
                value = self.pipeline(dot, node.pipe)
                if not node.pipe.decl:
                    self.out.append(go_print(value))
            elif isinstance(node, _Branch):
                self.branch(dot, node)
            elif isinstance(node, _Loop):
                raise _Break() if node.kind == "break" else _Continue()

    def branch(self, dot: Any, node: _Branch) -> None:
        mark = len(self.vars)
        value = self.pipeline(dot, node.pipe)
        try:
            if node.kind == "range":
                self.range(dot, node, value)
            elif truth(value):
                self.walk(value if node.kind == "with" else dot, node.body)
            elif node.else_body is not None:
                self.walk(dot, node.else_body)
        finally:
            del self.vars[mark:]

    def range(self, dot: Any, node: _Branch, value: Any) -> None:
        if isinstance(value, list):
            items = list(enumerate(value))
        elif isinstance(value, dict):
            items = sorted(value.items(), key=lambda kv: kv[0])
        elif isinstance(value, int) and not isinstance(value, bool):
            items = [(i, i) for i in range(value)]
        elif value is None or value is NO_VALUE:
            items = []
        else:
            raise self.error(node, f"range can't iterate over {go_print(value, False)}")
        mark = len(self.vars)
        for key, element in items:
            if node.pipe.decl:
                self.vars[mark - len(node.pipe.decl):mark] = (
                    [(node.pipe.decl[0], element)] if len(node.pipe.decl) == 1 else
                    [(node.pipe.decl[0], key), (node.pipe.decl[1], element)])
            try:
                self.walk(element, node.body)
            except _Break:
                break
            except _Continue:
                continue
            finally:
                del self.vars[mark:]
        if not items and node.else_body is not None:
            self.walk(dot, node.else_body)

    def pipeline(self, dot: Any, pipe: _Pipe) -> Any:
        value: Any = _NO_FINAL
        for cmd in pipe.cmds:
            value = self.command(dot, cmd, value)
        if value is _NO_FINAL:
            value = NO_VALUE
        if pipe.assign:
            for i in range(len(self.vars) - 1, -1, -1):
                if self.vars[i][0] == pipe.decl[0]:
                    self.vars[i] = (pipe.decl[0], value)
                    break
        elif len(pipe.decl) == 1:
            self.vars.append((pipe.decl[0], value))
        elif len(pipe.decl) == 2:  # range $i, $e := ...: bound per iteration
            self.vars.extend([(pipe.decl[0], None), (pipe.decl[1], None)])
        return value

    def command(self, dot: Any, cmd: _Command, final: Any) -> Any:
        first = cmd.args[0]
        if isinstance(first, _Field):
            return self.field_chain(dot, first, dot, first.names, cmd.args[1:], final)
        if isinstance(first, _Chain):
            base = self.arg_value(dot, first.node)
            return self.field_chain(dot, first, base, first.names, cmd.args[1:], final)
        if isinstance(first, _Var):
            base = self.variable(first)
            if not first.names:
                self.no_args(first, cmd.args[1:], final)
                return base
            return self.field_chain(dot, first, base, first.names, cmd.args[1:], final)
        if isinstance(first, _Ident):
            return self.call(dot, first, cmd.args[1:], final)
        self.no_args(first, cmd.args[1:], final)
        return self.arg_value(dot, first)

    def no_args(self, node: _Node, args: list[_Node], final: Any) -> None:
        if args or final is not _NO_FINAL:
            raise self.error(node, f"can't give argument to non-function {_node_text(node)}")

    def variable(self, node: _Var) -> Any:
        for name, value in reversed(self.vars):
            if name == node.name:
                return value
        raise self.error(node, f"undefined variable: {node.name}")

    def arg_value(self, dot: Any, node: _Node) -> Any:
        """An argument or the head of a chain: a complete value, never a function awaiting arguments."""
        if isinstance(node, _Dot):
            return dot
        if isinstance(node, _Const):
            return node.value
        if isinstance(node, _Field):
            return self.field_chain(dot, node, dot, node.names, [], _NO_FINAL)
        if isinstance(node, _Var):
            base = self.variable(node)
            return self.field_chain(dot, node, base, node.names, [], _NO_FINAL) if node.names else base
        if isinstance(node, _Chain):
            return self.field_chain(dot, node, self.arg_value(dot, node.node), node.names, [], _NO_FINAL)
        if isinstance(node, _Pipe):
            mark = len(self.vars)
            try:
                return self.pipeline(dot, node)
            finally:
                del self.vars[mark:]
        if isinstance(node, _Ident):
            return self.call(dot, node, [], _NO_FINAL)
        raise self.error(node, "can't handle argument")

    def field_chain(self, dot: Any, node: _Node, receiver: Any, names: list[str], args: list[_Node],
                    final: Any) -> Any:
        for name in names[:-1]:
            receiver = self.field(dot, node, receiver, name, [], _NO_FINAL)
        return self.field(dot, node, receiver, names[-1], args, final)

    def field(self, dot: Any, node: _Node, receiver: Any, name: str, args: list[_Node], final: Any) -> Any:
        has_args = bool(args) or final is not _NO_FINAL
        if receiver is NO_VALUE:
            if self.missing_key_error:
                raise self.error(node, f"nil data; no entry for key \"{name}\"")
            return NO_VALUE
        if isinstance(receiver, (GoStruct, GoMap)) and name in receiver.methods:
            values = [self.arg_value(dot, a) for a in args] + ([] if final is _NO_FINAL else [final])
            try:
                return receiver.methods[name](*[want_str(v) for v in values])
            except TypeError:
                raise self.error(node, f"wrong number of args for {name}: want 1 got {len(values)}") from None
            except ArgumentError as e:
                raise self.error(node, str(e)) from None
        if isinstance(receiver, Stringer) and name in receiver.fields and not has_args:
            return receiver.fields[name]
        if isinstance(receiver, GoStruct):
            if name in receiver.fields:
                if has_args:
                    raise self.error(node, f"{name} has arguments but cannot be invoked as function")
                return receiver.fields[name]
            raise self.error(node, f"can't evaluate field {name} in type {receiver.type_name}")
        if isinstance(receiver, dict):
            if has_args:
                raise self.error(node, f"{name} is not a method but has arguments")
            if name not in receiver and self.missing_key_error:
                raise self.error(node, f"map has no entry for key \"{name}\"")
            return receiver.get(name, NO_VALUE)
        if receiver is None:
            raise self.error(node, f"nil pointer evaluating interface {{}}.{name}")
        raise self.error(node, f"can't evaluate field {name} in type {go_type(receiver)}")

    def call(self, dot: Any, node: _Ident, args: list[_Node], final: Any) -> Any:
        name = node.name
        if name in ("and", "or"):
            return self.and_or(dot, node, args, final)
        values = []
        for a in args:
            values.append(self.arg_value(dot, a))
        if final is not _NO_FINAL:
            values.append(final)
        try:
            return self.funcs[name](*values)
        except ArgumentError as e:
            raise self.error(args[0] if args else node, str(e)) from None
        except CallError as e:
            raise self.error(node, f"error calling {name}: {e}") from None
        except TypeError:
            raise self.error(node, f"wrong number of args for {name}: got {len(values)}") from None

    def and_or(self, dot: Any, node: _Ident, args: list[_Node], final: Any) -> Any:
        count = len(args) + (final is not _NO_FINAL)
        if count < 1:
            raise self.error(node, f"wrong number of args for {node.name}: want at least 1 got 0")
        value: Any = NO_VALUE
        for a in args:
            value = self.arg_value(dot, a)
            if truth(value) == (node.name == "or"):
                return value
        if final is not _NO_FINAL:
            value = final
        return value


class Template:
    """A parsed Go template; `execute(data)` renders it (raises TemplateError as Go's Execute would fail)."""

    def __init__(self, source: str, funcs: dict[str, Callable[..., Any]] | None = None, name: str = "") -> None:
        self.source = source
        self.name = name
        self.funcs = funcs or FUNCTIONS
        try:
            self.nodes = _Parser(source, self.funcs).parse()
        except TemplateError as e:
            raise TemplateError(e.message.replace("\0", name, 1)) from None
        self.plain_pieces = _plain_pieces(self.nodes)

    def execute(self, data: Any, funcs: dict[str, Callable[..., Any]] | None = None, *,
                missing_key_error: bool = False) -> str:
        """Render; `missing_key_error` is Go's Option("missingkey=error") (docker inspect's map fallback)."""
        if self.plain_pieces is not None and type(data) is GoStruct:
            text = _plain_execute(self.plain_pieces, data)
            if text is not None:
                return text
        run = _Exec(self, data, funcs or self.funcs, missing_key_error)
        run.walk(data, self.nodes)
        return "".join(run.out)

    def execute_partial(self, data: Any, funcs: dict[str, Callable[..., Any]] | None = None) -> str:
        """What Go writes before an error (docker-cli ignores errors of the header row and keeps that text)."""
        run = _Exec(self, data, funcs or self.funcs)
        try:
            run.walk(data, self.nodes)
        except TemplateError:
            pass
        return "".join(run.out)


def _plain_pieces(nodes: list[_Node]) -> list[tuple[bool, str]] | None:
    """A template of only text and `{{.Field}}` actions as (is_field, text-or-name) pieces, else None.

    Why: `ps -a` runs the default table's template once per container; such a template is a join of the
    row's strings, which `_plain_execute` does without the general walk."""
    pieces = []
    for node in nodes:
        if isinstance(node, _Text):
            pieces.append((False, node.text))
            continue
        if not isinstance(node, _Action) or node.pipe.decl or len(node.pipe.cmds) != 1:
            return None
        args = node.pipe.cmds[0].args
        if len(args) != 1 or not isinstance(args[0], _Field) or len(args[0].names) != 1:
            return None
        pieces.append((True, args[0].names[0]))
    return pieces


def _plain_execute(pieces: list[tuple[bool, str]], data: GoStruct) -> str | None:
    """The text of a plain template on a struct whose named fields are all strings (printed as they are);
    None when any is not, so the general walk gives Go's output or error."""
    out = []
    fields, methods = data.fields, data.methods
    for is_field, text in pieces:
        if is_field:
            if text in methods:
                return None
            text = fields.get(text)
            if type(text) is not str:
                return None
        out.append(text)
    return "".join(out)


def parse(source: str, name: str = "") -> Template:
    """docker-cli's templates.Parse: a parse error reads `template parsing error: template: :1: ...`."""
    try:
        return Template(source, name=name)
    except TemplateError as e:
        raise TemplateError(f"template parsing error: {e}") from None


def json_shorthand(fmt: str) -> str:
    """Newer docker-cli's `--format json`: the whole document as `{{json .}}`."""
    return "{{json .}}" if fmt == "json" else fmt


def render(source: str, data: Any) -> str:
    """Parse and execute once (an execution error is reported as it is)."""
    return parse(source).execute(data)


def inspect_lines(source: str, documents: list[Any]) -> tuple[str, list[str]]:
    """docker-cli's TemplateInspector over inspect documents (JSON maps, `missingkey=error`).

    Returns (text to print, errors): each document that renders gives its text and a newline; one that fails
    gives `template parsing error: ...` instead; nothing rendered prints one empty line.
    """
    template = parse(source)
    out, errors = [], []
    for doc in documents:
        try:
            out.append(template.execute(doc, missing_key_error=True) + "\n")
        except TemplateError as e:
            errors.append(f"template parsing error: {e}")
    return "".join(out) or "\n", errors
