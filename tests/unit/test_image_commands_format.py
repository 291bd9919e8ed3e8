"""Docker's human formats used by `images`, `history` and `system df` (the output layer's helpers)."""

import pytest

from pyctr.commands.image import IMAGE_HEADERS, context, image_format
from pyctr.output.table import write
from pyctr.output.template import go_print, render
from pyctr.output.timefmt import parse_rfc3339, since
from pyctr.units import human_duration, human_size


@pytest.mark.parametrize("size,text", [(0, "0B"), (999, "999B"), (1000, "1kB"), (4_261_000, "4.26MB"),
                                       (77_800_000, "77.8MB"), (1_234_567_890, "1.23GB")])
def test_human_size(size, text):
    assert human_size(size) == text


@pytest.mark.parametrize("seconds,text", [(0.5, "Less than a second"), (1, "1 second"), (59, "59 seconds"),
                                          (60, "About a minute"), (3599, "59 minutes"), (3600, "About an hour"),
                                          (3 * 3600, "3 hours"), (47 * 3600, "47 hours"), (3 * 86400, "3 days"),
                                          (20 * 86400, "2 weeks"), (90 * 86400, "3 months"),
                                          (800 * 86400, "2 years")])
def test_human_duration(seconds, text):
    assert human_duration(seconds) == text


def test_created_parsing_with_nanoseconds_and_offsets():
    assert parse_rfc3339("2024-01-01T00:00:00Z") == 1704067200
    assert parse_rfc3339("2024-01-01T00:00:00.123456789Z") == pytest.approx(1704067200.123456789)
    assert parse_rfc3339("2024-01-01T01:00:00+01:00") == 1704067200
    assert parse_rfc3339("2023-12-31T20:30:00.5-03:30") == 1704067200.5
    assert parse_rfc3339("garbage") == 0.0
    assert parse_rfc3339("0001-01-01T00:00:00Z") == 0.0
    assert since("2024-01-01T00:00:00Z", now=1704067200 + 7200) == "2 hours ago"
    assert since("", now=0) == "N/A"


ROW = {"Containers": "N/A", "CreatedAt": "2024-01-01 00:00:00 +0000 UTC", "CreatedSince": "2 hours ago",
       "Digest": "<none>", "ID": "beae173ccac6", "Repository": "busybox", "SharedSize": "N/A", "Size": "1.24MB",
       "Tag": "latest", "UniqueSize": "N/A", "VirtualSize": "1.24MB"}


def images(fmt, digests=False, rows=(ROW,)):
    return write(image_format(fmt, digests), [context("*formatter.imageContext", r) for r in rows], IMAGE_HEADERS)


def test_default_images_table_as_docker_prints_it():
    assert images(None).splitlines() == [
        "REPOSITORY   TAG       IMAGE ID       CREATED       SIZE",
        "busybox      latest    beae173ccac6   2 hours ago   1.24MB",
    ]
    assert images("table", digests=True).splitlines()[0] == (
        "REPOSITORY   TAG       DIGEST    IMAGE ID       CREATED       SIZE")


def test_custom_images_formats_as_docker_prints_them():
    # issue 14: `images --format 'table {{.ID}}\t{{.Size}}'` printed the word "table"; Docker prints a table
    assert images("table {{.ID}}\\t{{.Size}}") == "IMAGE ID       SIZE\nbeae173ccac6   1.24MB\n"
    assert images("{{upper .Repository}}") == "BUSYBOX\n"
    assert images("{{.Repository}}:{{.Tag}}") == "busybox:latest\n"
    assert images("table {{.Repository}}:{{.Tag}}", rows=()) == "REPOSITORY:TAG\n"
    # --digests adds a DIGEST column to a custom table that lacks one (docker-cli's NewImageFormat)
    assert images("table {{.ID}}", digests=True).splitlines()[0] == "IMAGE ID       DIGEST"


def test_images_json_is_docker_cli_marshal_json():
    # MarshalJSON: every field, keys sorted, HTML escaped (json.Marshal)
    assert images("json") == (
        '{"Containers":"N/A","CreatedAt":"2024-01-01 00:00:00 +0000 UTC","CreatedSince":"2 hours ago",'
        '"Digest":"\\u003cnone\\u003e","ID":"beae173ccac6","Repository":"busybox","SharedSize":"N/A",'
        '"Size":"1.24MB","Tag":"latest","UniqueSize":"N/A","VirtualSize":"1.24MB"}\n')
    assert images("{{json .}}") == images("json")


def test_a_missing_field_is_an_error_as_in_docker():
    from pyctr.output.template import TemplateError

    with pytest.raises(TemplateError) as e:
        images("{{.Nope}}")
    assert str(e.value) == ('template parsing error: template: :1:2: executing "" at <.Nope>: '
                            "can't evaluate field Nope in type *formatter.imageContext")
    assert e.value.exit_code == 1


def test_inspect_style_templates():
    doc = {"Id": "sha256:x", "Config": {"Cmd": ["sh", "-c"], "Labels": {"a": "1"}, "Env": None}, "Tty": False}
    assert render("{{.Id}}", doc) == "sha256:x"
    assert render("{{.Config.Cmd}}", doc) == "[sh -c]"
    assert render("{{json .Config.Cmd}}", doc) == '["sh","-c"]'
    assert render('{{index .Config.Labels "a"}}', doc) == "1"
    assert render("{{.Tty}}\t{{.Config.Env}}", doc) == "false\t<no value>"
    assert go_print({"b": 1, "a": [1]}) == "map[a:[1] b:1]"
