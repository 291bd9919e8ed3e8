"""Plain templates (text and `{{.Field}}` only) joined without the general walk must print what the walk
prints, and leave every other case (non-string fields, methods, missing fields, maps) to it."""

import pytest

from pyctr.output.template import GoStruct, Stringer, TemplateError, parse


def walked(source, data):
    """The general walk's text (the plain path turned off)."""
    template = parse(source)
    template.plain_pieces = None
    return template.execute(data)


STRUCT = GoStruct("*formatter.ContainerContext", {
    "ID": "abc", "Names": "web", "Status": "Up 2 seconds", "Count": 3, "Flag": True, "Nil": None,
    "Platform": Stringer("linux/amd64", {"os": "linux"}, {"OS": "linux"}), "Empty": ""},
    {"Label": lambda name: "v"})


@pytest.mark.parametrize("source", [
    "{{.ID}}\t{{.Names}}\t{{.Status}}", "x{{.Empty}}y", "{{.Count}} {{.Flag}}", "{{.Nil}}", "{{.Platform}}",
    "plain text only", "{{.ID}}{{.ID}}",
])
def test_plain_templates_print_what_the_walk_prints(source):
    assert parse(source).execute(STRUCT) == walked(source, STRUCT)


def test_only_text_and_single_fields_are_plain():
    assert parse("{{.ID}}\t{{.Names}}").plain_pieces == [(True, "ID"), (False, "\t"), (True, "Names")]
    for source in ("{{.Platform.OS}}", "{{json .}}", "{{.ID | printf \"%s\"}}", "{{if .ID}}x{{end}}",
                   "{{$x := .ID}}", "{{.Label \"k\"}}", "{{.}}"):
        assert parse(source).plain_pieces is None, source


@pytest.mark.parametrize("source", ["{{.Missing}}", "{{.ID}}{{.Label}}"])
def test_errors_are_the_walks(source):
    with pytest.raises(TemplateError) as plain:
        parse(source).execute(STRUCT)
    with pytest.raises(TemplateError) as walk:
        walked(source, STRUCT)
    assert str(plain.value) == str(walk.value)


def test_maps_take_the_walk():
    assert parse("{{.A}}").execute({"A": "x"}) == "x"
    assert parse("{{.B}}").execute({"A": "x"}) == "<no value>"
