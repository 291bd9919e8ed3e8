"""Go's text/tabwriter as docker-cli configures it, and docker-cli's `--format` conventions around it.

docker-cli renders every listing the same way (formatter.Context.Write): the format string loses a `table`
prefix, `\\t`/`\\n` escapes become real tabs/newlines, each row is the template executed on a context plus
"\\n"; a table gets a header row (the same template executed on a map of column names, with
HeaderFunctions) and the whole goes through `tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)`. Reproducing that
pipeline, not its usual output, is what makes custom tables and odd templates line up as Docker's do.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from pyctr.output.template import HEADER_FUNCTIONS, GoMap, TemplateError, go_json, parse

_CELL_END = re.compile("([\t\v\n\f])")
MIN_WIDTH = 10
TAB_WIDTH = 1
PADDING = 3


def text_width(text: str) -> int:
    """Terminal columns of a cell (go-runewidth: East Asian wide and fullwidth count 2, combining marks 0)."""
    if text.isascii():
        return len(text)
    width = 0
    for c in text:
        if unicodedata.combining(c) or unicodedata.category(c) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(c) in ("W", "F") else 1
    return width


class _Cell:
    __slots__ = ("text", "width", "htab")

    def __init__(self, text: str, htab: bool) -> None:
        self.text = text
        self.width = text_width(text)
        self.htab = htab


def tabwrite(text: str, minwidth: int = MIN_WIDTH, padding: int = PADDING) -> str:
    """Go's tabwriter (padchar ' ', no flags) over `text`: tab-terminated cells aligned in column blocks.

    A column's width is the widest cell of the consecutive lines that have that column, plus padding, at least
    minwidth; the last cell of a line is not part of a column; a line without tabs ends the block.
    """
    out: list[str] = []
    lines: list[list[_Cell]] = [[]]
    pieces = _CELL_END.split(text)  # cell, terminator, cell, terminator, ..., trailing text
    for i in range(0, len(pieces) - 1, 2):
        end = pieces[i + 1]
        lines[-1].append(_Cell(pieces[i], end == "\t"))
        if end in "\n\f":
            ncells = len(lines[-1])
            lines.append([])
            if end == "\f" or ncells == 1:
                _format(out, lines, 0, len(lines), [], minwidth, padding)
                lines = [[]]
    if pieces[-1]:
        lines[-1].append(_Cell(pieces[-1], False))
    _format(out, lines, 0, len(lines), [], minwidth, padding)
    return "".join(out)


def _format(out: list[str], lines: list[list[_Cell]], line0: int, line1: int, widths: list[int],
            minwidth: int, padding: int) -> None:
    column = len(widths)
    this = line0
    while this < line1:
        if column >= len(lines[this]) - 1:
            this += 1
            continue
        _write_lines(out, lines, line0, this, widths)
        line0 = this
        width = minwidth
        while this < line1 and column < len(lines[this]) - 1:
            width = max(width, lines[this][column].width + padding)
            this += 1
        _format(out, lines, line0, this, widths + [width], minwidth, padding)
        line0 = this
    _write_lines(out, lines, line0, line1, widths)


def _write_lines(out: list[str], lines: list[list[_Cell]], line0: int, line1: int, widths: list[int]) -> None:
    for i in range(line0, line1):
        for j, c in enumerate(lines[i]):
            out.append(c.text)
            if j < len(widths):
                out.append(" " * (widths[j] - c.width))
        if i + 1 < len(lines):
            out.append("\n")


# ---------------------------------------------------------------------------------------------- --format


def is_table(fmt: str) -> bool:
    return fmt.startswith("table")


def template_string(fmt: str) -> str:
    """docker-cli's Format.templateString: `json` -> `{{json .}}`, no `table` prefix, escapes made real."""
    if fmt == "table":
        return ""
    if fmt == "json":
        return "{{json .}}"
    if fmt.startswith("table"):
        fmt = fmt[len("table"):]
    return fmt.strip(" ").replace("\\t", "\t").replace("\\n", "\n")


def write(fmt: str, contexts: list[Any], header: dict[str, str]) -> str:
    """Render `contexts` as docker-cli's formatter.Context.Write does; the text ends with a newline per row.

    A template error anywhere prints nothing (docker-cli buffers the rows) and reads
    `template parsing error: template: ...`.
    """
    template = parse(template_string(fmt))
    rows = []
    for context in contexts:
        try:
            rows.append(template.execute(context) + "\n")
        except TemplateError as e:
            raise TemplateError(f"template parsing error: {e}") from None
    if not is_table(fmt):
        return "".join(rows)
    head = template.execute_partial(GoMap(header, {"Label": label_header}), HEADER_FUNCTIONS)
    return tabwrite(head + "\n" + "".join(rows))


def label_header(name: str) -> str:
    """docker-cli's SubHeaderContext.Label: `{{.Label "com.example.the-tier"}}` heads its column "the tier"."""
    return name.split(".")[-1].replace("-", " ").replace("_", " ")


def check(fmt: str) -> None:
    """Parse a `--format` up front, as docker-cli does before it asks the daemon for anything."""
    parse(template_string(fmt))


def json_lines(rows: list[Any]) -> str:
    """`--format json` output: one compact JSON document per line."""
    return "".join(go_json(row) + "\n" for row in rows)
