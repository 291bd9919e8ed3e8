"""A `--format` that does not parse, per command, as docker-cli 20.10 reports it (read from its source):
formatter.Context (ps, images, network ls, volume ls, stats, system df) wraps Go's error as
`template parsing error: ...` and exits 1; inspect, info and version return cli.StatusError 64; events returns
StatusError 64 worded `Error parsing format: <Go's error>`."""

from __future__ import annotations

import pytest

from pyctr.cli import main

GO_ERROR = "template: :1: unclosed action"


@pytest.mark.parametrize(("argv", "code", "line"), [
    (["events"], 64, f"Error parsing format: {GO_ERROR}"),
    (["ps"], 1, f"template parsing error: {GO_ERROR}"),
    (["images"], 1, f"template parsing error: {GO_ERROR}"),
    (["network", "ls"], 1, f"template parsing error: {GO_ERROR}"),
    (["volume", "ls"], 1, f"template parsing error: {GO_ERROR}"),
    (["inspect", "x"], 64, f"template parsing error: {GO_ERROR}"),
    (["version"], 64, "template parsing error: template: version:1: unclosed action"),
    (["info"], 64, f"template parsing error: {GO_ERROR}"),
])
def test_a_bad_format_exits_as_docker_cli(argv, code, line, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PYCTR_ROOT", str(tmp_path))
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--format", "{{.Bogus"])
    assert exited.value.code == code
    captured = capsys.readouterr()
    assert captured.err.strip() == line and captured.out == ""
