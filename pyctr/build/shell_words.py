"""Docker's word lexer: quote removal and `$VAR` substitution for Dockerfile arguments.

The builder, not a shell, expands variables in ADD COPY ENV EXPOSE FROM LABEL
STOPSIGNAL USER VOLUME WORKDIR (and ONBUILD's contents when they run). The rules
follow buildkit's shell lexer: single quotes are literal; in double quotes only
`"`, `$` and the escape character can be escaped; outside quotes the escape
character makes the next character literal; `$name`, `${name}`,
`${name:-word}`, `${name-word}`, `${name:+word}`, `${name+word}`,
`${name:?msg}` and `${name?msg}` are supported; an unset variable is empty.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyctr.errors import BuildError

_SPECIAL_PARAMS = set("@*#?-$!0")


class _Lexer:
    """One pass over a word; `env` maps names to values (absent = unset)."""

    def __init__(self, text: str, env: Mapping[str, str], escape: str) -> None:
        self.text = text
        self.pos = 0
        self.env = env
        self.escape = escape

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        self.pos += 1 if ch else 0
        return ch

    def words(self, split: bool) -> list[str]:
        """Process the whole text; split on unquoted whitespace when `split` is set."""
        words: list[str] = []
        current: list[str] = []
        in_word = False
        while self.peek():
            ch = self.peek()
            if split and ch in " \t\n" :
                self.next()
                if in_word:
                    words.append("".join(current))
                    current, in_word = [], False
                continue
            in_word = True
            if ch == "'":
                self.next()
                current.append(self._single_quoted())
            elif ch == '"':
                self.next()
                current.append(self._double_quoted())
            elif ch == "$":
                current.append(self._dollar())
            else:
                self.next()
                if ch == self.escape:
                    nxt = self.next()
                    current.append(nxt)
                else:
                    current.append(ch)
        if in_word or not split:
            words.append("".join(current))
        return words

    def _single_quoted(self) -> str:
        out: list[str] = []
        while True:
            ch = self.next()
            if not ch:
                raise BuildError("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                return "".join(out)
            out.append(ch)

    def _double_quoted(self) -> str:
        out: list[str] = []
        while True:
            ch = self.peek()
            if not ch:
                raise BuildError("unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                self.next()
                return "".join(out)
            if ch == "$":
                out.append(self._dollar())
                continue
            self.next()
            if ch == self.escape and self.peek() in ('"', "$", self.escape) and self.peek():
                ch = self.next()
            elif ch == self.escape and not self.peek():
                continue
            out.append(ch)

    def _name(self) -> str:
        ch = self.peek()
        if ch.isdigit():
            digits = []
            while self.peek().isdigit():
                digits.append(self.next())
            return "".join(digits)
        if ch and ch in _SPECIAL_PARAMS:
            return self.next()
        name = []
        while self.peek() and (self.peek().isalnum() or self.peek() == "_"):
            name.append(self.next())
        return "".join(name)

    def _dollar(self) -> str:
        self.next()  # the $
        if self.peek() != "{":
            name = self._name()
            return "$" if not name else self.env.get(name, "")
        self.next()  # the {
        name = self._name()
        if not name:
            raise BuildError(f"bad substitution in '{self.text}'")
        ch = self.next()
        if ch == "}":
            return self.env.get(name, "")
        colon = ch == ":"
        if colon:
            ch = self.next()
        if ch not in ("-", "+", "?"):
            raise BuildError(f"unsupported modifier ({ch or 'end'}) in substitution '{self.text}'")
        word = self._until_brace()
        value = self.env.get(name)
        is_set = value is not None and (value != "" or not colon)
        if ch == "-":
            return value if is_set else word
        if ch == "+":
            return word if is_set else ""
        if not is_set:
            raise BuildError(f"{name}: {word or 'is not allowed to be unset'}")
        return value

    def _until_brace(self) -> str:
        """The word inside `${name:-word}`: quotes and nested `$` processed, up to the `}`."""
        out: list[str] = []
        while True:
            ch = self.peek()
            if not ch:
                raise BuildError(f"missing '}}' in substitution '{self.text}'")
            if ch == "}":
                self.next()
                return "".join(out)
            if ch == "$":
                out.append(self._dollar())
            elif ch == "'":
                self.next()
                out.append(self._single_quoted())
            elif ch == '"':
                self.next()
                out.append(self._double_quoted())
            else:
                self.next()
                if ch == self.escape and self.peek():
                    ch = self.next()
                out.append(ch)


def process_word(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """Expand variables and remove quotes in one Dockerfile word (spaces kept)."""
    return _Lexer(word, env, escape).words(split=False)[0]


def process_words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Expand and split on unquoted whitespace (EXPOSE, and shell-form word lists)."""
    return _Lexer(text, env, escape).words(split=True)


def split_words(text: str, escape: str = "\\") -> list[str]:
    """Split on unquoted whitespace without expanding or removing quotes (the parser's view).

    The raw words keep their quotes and `$` so that substitution can happen
    later with the environment in scope at that step.
    """
    words: list[str] = []
    current: list[str] = []
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == escape and i + 1 < len(text) and quote != "'":
            current.append(text[i:i + 2])
            i += 2
            continue
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in " \t\n":
            if current:
                words.append("".join(current))
                current = []
            i += 1
            continue
        current.append(ch)
        i += 1
    if current:
        words.append("".join(current))
    return words
