"""Go's text/tabwriter as docker-cli configures it (minwidth 10, tabwidth 1, padding 3, ' '), and --format."""

from __future__ import annotations

import pytest

from pyctr.output.table import tabwrite, template_string, text_width, write
from pyctr.output.template import GoStruct, TemplateError


@pytest.mark.parametrize("text,expected", [
    # a column is its widest cell + padding 3, at least 10
    ("a\tb\nccc\td\n", "a         b\nccc       d\n"),
    ("abcdefghijkl\tx\ny\tz\n", "abcdefghijkl   x\ny              z\n"),
    # the last cell of a line is not part of a column: never padded
    ("CONTAINER ID\tNAMES\n", "CONTAINER ID   NAMES\n"),
    # an empty last cell after a tab keeps the padding (Docker's rows with an empty PORTS end in spaces)
    ("x\t\n", "x         \n"),
    # a column spans only the consecutive lines that have it
    ("a\tb\tc\nlonglonglong\td\n", "a              b         c\nlonglonglong   d\n"),
    # a line without tabs ends the block: the next lines are aligned on their own
    ("aaaaaaaaaaaaaa\tb\nplain\nc\td\n", "aaaaaaaaaaaaaa   b\nplain\nc         d\n"),
    # wide characters count two columns (go-runewidth)
    ("日本\tx\nab\ty\n", "日本      x\nab        y\n"),
    ("日本語日本語\tx\n", "日本語日本語   x\n"),
    # text without a final newline is flushed as it is
    ("a\tb", "a         b"),
    ("", ""),
])
def test_tabwriter(text, expected):
    assert tabwrite(text) == expected


def test_text_width():
    assert (text_width("abc"), text_width("日本"), text_width("é"), text_width("e\u0301")) == (3, 4, 1, 1)


@pytest.mark.parametrize("fmt,expected", [
    ("table", ""),
    ("json", "{{json .}}"),
    ("table {{.ID}}\\t{{.Names}}", "{{.ID}}\t{{.Names}}"),
    ("  {{.ID}}\\n ", "{{.ID}}\n"),
    ("table\t{{.ID}}", "\t{{.ID}}"),   # only spaces are trimmed (strings.Trim(out, " "))
])
def test_template_string_is_docker_clis(fmt, expected):
    assert template_string(fmt) == expected


CONTEXTS = [GoStruct("*formatter.ContainerContext", {"ID": "0123456789ab", "Names": "web", "Ports": ""}),
            GoStruct("*formatter.ContainerContext", {"ID": "ba9876543210", "Names": "db", "Ports": "80/tcp"})]
HEADERS = {"ID": "CONTAINER ID", "Names": "NAMES", "Ports": "PORTS"}


def test_table_with_header_rows_and_header_functions():
    assert write("table {{.ID}}\\t{{.Names}}", CONTEXTS, HEADERS) == (
        "CONTAINER ID   NAMES\n0123456789ab   web\nba9876543210   db\n")
    # upper/lower/json/... leave the header as it is; pad still pads it (docker-cli's HeaderFunctions)
    assert write("table {{upper .Names}}\\t{{pad .Ports 1 1}}|", CONTEXTS, HEADERS) == (
        "NAMES      PORTS |\nWEB       |\nDB         80/tcp |\n")
    assert write("table {{.Names}}", [], HEADERS) == "NAMES\n"
    # a label column is headed by the label's last dotted part, - and _ as spaces (SubHeaderContext.Label)
    labelled = [GoStruct("*formatter.ContainerContext", {"Names": "web"}, {"Label": lambda k: "db"})]
    assert write('table {{.Names}}\\t{{.Label "com.example.the_tier"}}', labelled, HEADERS) == (
        "NAMES     the tier\nweb       db\n")
    assert write("{{.Names}}", [], HEADERS) == ""
    assert write("{{.Names}}", CONTEXTS, HEADERS) == "web\ndb\n"


def test_a_failing_row_prints_nothing():
    with pytest.raises(TemplateError, match=r"^template parsing error: template: :1:2: executing .*field Nope"):
        write("table {{.Nope}}", CONTEXTS, HEADERS)
    with pytest.raises(TemplateError, match=r"^template parsing error: template: :1: unclosed action$"):
        write("{{.ID", CONTEXTS, HEADERS)
