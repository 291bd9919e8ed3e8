"""Docker's human formats used by `images`, `history` and `system df` (pure helpers of pyctr/commands/image.py)."""

import pytest

from pyctr.commands.image import go_value, human_duration, human_size, parse_created, render_template, since, table


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
    assert parse_created("2024-01-01T00:00:00Z") == 1704067200
    assert parse_created("2024-01-01T00:00:00.123456789Z") == pytest.approx(1704067200.123456789)
    assert parse_created("2024-01-01T01:00:00+01:00") == 1704067200
    assert parse_created("garbage") is None
    assert since("2024-01-01T00:00:00Z", now=1704067200 + 7200) == "2 hours ago"
    assert since("", now=0) == "N/A"


def test_table_pads_like_tabwriter():
    out = table([["REPOSITORY", "TAG"], ["busybox", "latest"]])
    assert out.splitlines() == ["REPOSITORY   TAG", "busybox      latest"]


def test_templates():
    doc = {"Id": "sha256:x", "Config": {"Cmd": ["sh", "-c"], "Labels": {"a": "1"}, "Env": None}, "Tty": False}
    assert render_template("{{.Id}}", doc) == "sha256:x"
    assert render_template("{{.Config.Cmd}}", doc) == "[sh -c]"
    assert render_template("{{json .Config.Cmd}}", doc) == '["sh","-c"]'
    assert render_template('{{index .Config.Labels "a"}}', doc) == "1"
    assert render_template("{{.Tty}}\\t{{.Config.Env}}", doc) == "false\t<no value>"
    assert go_value({"b": 1, "a": [1]}) == "map[a:[1] b:1]"
