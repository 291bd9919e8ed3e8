"""The README's two-service example, run exactly as written: its lines are read from README.md (the block after
`<!-- two-service example -->`), `sudo pyctr` becomes this checkout's pyctr on a root of its own, and each
`# prints: X` must be what that line prints."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from tests.integration.helpers import lifecycle_runner

README = Path(__file__).resolve().parents[2] / "README.md"
MARKER = "<!-- two-service example -->"


def example_lines() -> list[tuple[list[str], str | None]]:
    """(pyctr arguments, expected output or None) for each line of the README's example block."""
    text = README.read_text()
    assert MARKER in text, "the README lost its two-service example"
    block = text.split(MARKER, 1)[1].split("```", 2)[1]
    lines = []
    for line in block.splitlines():
        if not line.strip():
            continue
        command, _, comment = line.partition("    # ")
        words = shlex.split(command)
        assert words[:2] == ["sudo", "pyctr"], line
        expected = comment.removeprefix("prints: ").strip() if comment.startswith("prints: ") else None
        lines.append((words[2:], expected))
    return lines


@pytest.fixture(scope="module")
def app(pyctr_config, tmp_path_factory):
    yield from lifecycle_runner(pyctr_config, tmp_path_factory, "readme-example")


def test_the_readme_two_service_example(app):
    lines = example_lines()
    assert any(expected for _, expected in lines) and len(lines) >= 5
    try:
        for args, expected in lines:
            proc = app(*args, timeout=120)
            assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
            if expected is not None:
                assert proc.stdout.strip() == expected, (args, proc.stdout)
    finally:
        app("rm", "-f", "web")
        app("network", "rm", "appnet")
        app("volume", "rm", "webdata")
    assert app("network", "ls", "-q", "--filter", "name=appnet").stdout.strip() == ""
    assert app("volume", "ls", "-q").stdout.strip() == ""
