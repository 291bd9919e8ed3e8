"""Docker's word lexer: quote removal and `$VAR` substitution for Dockerfile arguments.

The builder, not a shell, expands variables in ADD COPY ENV EXPOSE FROM LABEL
STOPSIGNAL USER VOLUME WORKDIR (and ONBUILD's contents when they run). This is
a port of buildkit's shell lexer (frontend/dockerfile/shell/lex.go) so that its
own test tables hold for us: single quotes are literal; in double quotes only
`"`, `$` and the escape character can be escaped; outside quotes the escape
character makes the next character literal; `$name`, `${name}`, `${name:-w}`,
`${name-w}`, `${name:+w}`, `${name+w}`, `${name:?msg}`, `${name?msg}`, the
pattern modifiers `${name#p}`, `${name##p}`, `${name%p}`, `${name%%p}`,
`${name/p/r}` and `${name//p/r}`; an unset variable is empty. Unquoted
expansions are split into words where words are wanted (EXPOSE $PORTS).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from pyctr.errors import BuildError

_SPECIAL_PARAMS = frozenset("@*#?-$!0")
_HEREDOC_SPACE = frozenset("\t\r ")


@dataclass
class LexResult:
    """One processed text: the word, its split words, and which variables were found or missing."""

    word: str
    words: list[str]
    matched: set[str] = field(default_factory=set)
    unmatched: set[str] = field(default_factory=set)


class _Words:
    """buildkit's wordsStruct: unquoted whitespace separates words, quoted text never does."""

    def __init__(self) -> None:
        self.buf: list[str] = []
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if ch.isspace():
            if self.in_word and self.buf:
                self.words.append("".join(self.buf))
                self.buf, self.in_word = [], False
        else:
            self.add_raw(ch)

    def add_raw(self, text: str) -> None:
        self.buf.append(text)
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def result(self) -> list[str]:
        if self.buf and "".join(self.buf):
            self.words.append("".join(self.buf))
            self.buf, self.in_word = [], False
        return self.words


class Lexer:
    """buildkit's shell.Lex. `raw_quotes` keeps quotes, `raw_escapes` keeps escape characters,
    `skip_unset` leaves `$NAME` of unset variables as written (the parser's heredoc view)."""

    def __init__(self, escape: str = "\\", *, raw_quotes: bool = False, raw_escapes: bool = False,
                 skip_unset: bool = False) -> None:
        self.escape = escape
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_unset = skip_unset

    def process(self, text: str, env: Mapping[str, str]) -> LexResult:
        """Process the whole text; errors are BuildError naming the text, as buildkit's."""
        scan = _Scan(self, text, env)
        try:
            word, words = scan.until("", self.raw_escapes)
        except BuildError as e:
            raise BuildError(f"failed to process \"{text}\": {e.message}") from None
        return LexResult(word, words, scan.matched, scan.unmatched)


class _Scan:
    """One pass of the lexer over a text (buildkit's shellWord)."""

    def __init__(self, lexer: Lexer, text: str, env: Mapping[str, str]) -> None:
        self.lexer = lexer
        self.text = text
        self.pos = 0
        self.env = env
        self.raw_escapes = lexer.raw_escapes
        self.matched: set[str] = set()
        self.unmatched: set[str] = set()

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        self.pos += 1 if ch else 0
        return ch

    def get(self, name: str) -> str | None:
        value = self.env.get(name)
        (self.unmatched if value is None else self.matched).add(name)
        return value

    def until(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        """processStopOn: up to `stop` (consumed) or the end when `stop` is empty."""
        saved, self.raw_escapes = self.raw_escapes, raw_escapes
        try:
            return self._until(stop)
        finally:
            self.raw_escapes = saved

    def _until(self, stop: str) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        escape = self.lexer.escape
        while self.peek():
            ch = self.peek()
            if stop and ch == stop:
                self.next()
                return "".join(result), words.result()
            special = self._special(ch)
            if special is not None:
                piece = special()
                result.append(piece)
                if ch == "$":
                    words.add_string(piece)
                else:
                    words.add_raw(piece)
                continue
            self.next()
            if ch == escape:
                if self.raw_escapes:
                    words.add_raw(ch)
                    result.append(ch)
                ch = self.next()
                if not ch:
                    break
                words.add_raw(ch)
            else:
                words.add_char(ch)
            result.append(ch)
        if stop:
            raise BuildError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.result()

    def _special(self, ch: str):
        if ch == "$":
            return self.dollar
        if ch == "<":
            return self.possible_heredoc
        if ch == "'":
            return self.single_quoted
        if ch == '"':
            return self.double_quoted
        return None

    def single_quoted(self) -> str:
        raw = self.lexer.raw_quotes
        first = self.next()
        out = [first] if raw else []
        while True:
            ch = self.next()
            if not ch:
                raise BuildError("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if raw:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def double_quoted(self) -> str:
        raw = self.lexer.raw_quotes
        first = self.next()
        out = [first] if raw else []
        escape = self.lexer.escape
        while True:
            ch = self.peek()
            if not ch:
                raise BuildError("unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                self.next()
                if raw:
                    out.append(ch)
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            ch = self.next()
            if ch == escape:
                if self.raw_escapes:
                    out.append(ch)
                following = self.peek()
                if not following:
                    continue
                if following in ('"', "$", escape):
                    ch = self.next()
            out.append(ch)

    def name(self) -> str:
        first = self.peek()
        if first.isdigit():
            digits = []
            while self.peek().isdigit():
                digits.append(self.next())
            return "".join(digits)
        if first and first in _SPECIAL_PARAMS:
            return self.next()
        chars = []
        while self.peek() and (self.peek().isalnum() or self.peek() == "_"):
            chars.append(self.next())
        return "".join(chars)

    def dollar(self) -> str:
        self.next()  # the $
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            value = self.get(name)
            if value is None and self.lexer.skip_unset:
                return "$" + name
            return value or ""
        self.next()  # the {
        if not self.peek():
            raise BuildError("syntax error: missing '}'")
        if self.peek() in "{}:":
            raise BuildError("syntax error: bad substitution")
        name = self.name()
        ch = self.next()
        if ch == "}":
            value = self.get(name)
            if value is None and self.lexer.skip_unset:
                return "${" + name + "}"
            return value or ""
        if ch == "/":
            return self._replace(name)
        modifier = ch
        null_is_unset = ch == ":"
        if null_is_unset:
            ch = self.next()
            modifier += ch
        if ch not in ("+", "-", "?", "#", "%"):
            raise BuildError(f"unsupported modifier ({modifier}) in substitution")
        pattern_like = ch in "#%"
        if null_is_unset and pattern_like:
            raise BuildError(f"unsupported modifier ({modifier}) in substitution")
        word = self._word_until("}", pattern_like, "syntax error: missing '}'")
        value = self.get(name)
        if value is None and self.lexer.skip_unset:
            return "${" + name + modifier + word + "}"
        return _apply_modifier(name, ch, value, word, null_is_unset)

    def _word_until(self, stop: str, raw_escapes: bool, missing: str) -> str:
        try:
            word, _ = self.until(stop, raw_escapes)
        except BuildError:
            if not self.peek():
                raise BuildError(missing) from None
            raise
        return word

    def _replace(self, name: str) -> str:
        replace_all = self.peek() == "/"
        if replace_all:
            self.next()
        pattern = self._word_until("/", True, "syntax error: missing '/' in ${}")
        replacement = self._word_until("}", True, "syntax error: missing '}'")
        value = self.get(name)
        if value is None and self.lexer.skip_unset:
            return "${" + name + "/" + pattern + "/" + replacement + "}"
        regex = _pattern_regex(pattern, greedy=True, anchored=False)
        value = value or ""
        if replace_all:
            return regex.sub(lambda _m: replacement, value)
        return regex.sub(lambda _m: replacement, value, count=1)

    def possible_heredoc(self) -> str:
        """`<<` and the blanks after it stay glued to the next word (the heredoc's name)."""
        self.next()
        if self.peek() != "<":
            return "<"
        self.next()
        space = []
        while self.peek() and self.peek() in _HEREDOC_SPACE:
            space.append(self.next())
        return "<<" + "".join(space)


def _apply_modifier(name: str, op: str, value: str | None, word: str, null_is_unset: bool) -> str:
    is_set = value is not None and not (null_is_unset and value == "")
    if op == "-":
        return value if is_set and value is not None else word
    if op == "+":
        return word if is_set else ""
    if op == "?":
        if value is None:
            raise BuildError(f"{name}: {word or 'is not allowed to be unset'}")
        if null_is_unset and value == "":
            raise BuildError(f"{name}: {word or 'is not allowed to be empty'}")
        return value
    greedy = word.startswith(op)
    if greedy:
        word = word[1:]
    if op == "%":
        return _reverse(_trim_prefix(_reverse_pattern(word), _reverse(value or ""), greedy))
    return _trim_prefix(word, value or "", greedy)


def _pattern_regex(pattern: str, *, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """buildkit's convertShellPatternToRegex: `*`, `?` and backslash escapes of `*`, `?`, `\\`."""
    out = ["^"] if anchored else []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append(".*" if greedy else ".*?")
        elif ch == "?":
            out.append(".")
        elif ch == "\\":
            if i < len(pattern) and pattern[i] in "}/":
                continue
            nxt = pattern[i] if i < len(pattern) else ""
            i += 1
            if nxt not in ("*", "?", "\\") or not nxt:
                raise BuildError(f"invalid pattern ({pattern}) in substitution: invalid escape '\\{nxt}'")
            out.append("\\" + nxt)
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.DOTALL)


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    match = _pattern_regex(pattern, greedy=greedy, anchored=True).search(value)
    return value[match.end():] if match else value


def _reverse_pattern(pattern: str) -> str:
    """Reverse a pattern keeping each `\\x` escape pair in order (for suffix trimming)."""
    tokens = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i != len(pattern) - 1:
            tokens.append(pattern[i:i + 2])
            i += 2
        else:
            tokens.append(pattern[i])
            i += 1
    return "".join(reversed(tokens))


def _reverse(text: str) -> str:
    return text[::-1]


def process_word(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """Expand variables and remove quotes in one Dockerfile word (spaces kept)."""
    return Lexer(escape).process(word, env).word


def process_words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Expand and split on unquoted whitespace, expansions included (EXPOSE $PORTS)."""
    return Lexer(escape).process(text, env).words


def split_words(text: str, escape: str = "\\") -> list[str]:
    """Split on unquoted whitespace without expanding or removing quotes (buildkit's parseWords).

    The raw words keep their quotes and `$` so that substitution can happen
    later with the environment in scope at that step. A quoted empty string
    is a word; an escape character at the very end is dropped.
    """
    words: list[str] = []
    word: list[str] = []
    quote = ""
    blank_ok = False
    pos = 0
    while pos < len(text):
        ch = text[pos]
        if not quote:
            if ch.isspace():
                if blank_ok or word:
                    words.append("".join(word))
                word, blank_ok = [], False
                pos += 1
                continue
            if ch in "'\"":
                quote, blank_ok = ch, True
            elif ch == escape:
                if pos + 1 == len(text):
                    break
                word.append(ch)
                pos += 1
                ch = text[pos]
            word.append(ch)
            pos += 1
            continue
        if ch == quote:
            quote = ""
        elif ch == escape and quote != "'":
            if pos + 1 == len(text):
                quote = ""
                pos += 1
                continue
            word.append(ch)
            pos += 1
            ch = text[pos]
        word.append(ch)
        pos += 1
    if blank_ok or word:
        words.append("".join(word))
    return words
