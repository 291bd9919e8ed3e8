"""Where other projects' test tables live: `shared/peer-cases` beside the checkout.

The tables (BuildKit, moby/patternmatcher, distribution/reference, docker/go-units)
are read at test time and never copied into the repository. A checkout may be
/work/main or a worktree /work/wt/NAME, so the folder is found by walking up.
Missing tables are a test failure, not a skip: a conformance test that silently
skips proves nothing.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]


@cache
def peer_cases_dir() -> Path:
    """The `shared/peer-cases` folder nearest above the repository root."""
    for parent in REPO_ROOT.parents:
        candidate = parent / "shared" / "peer-cases"
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"peer test tables not found: no shared/peer-cases folder above {REPO_ROOT} "
        "(expected ../shared/peer-cases beside the checkout)")


def load_table(name: str) -> dict[str, Any]:
    """One JSON table file, e.g. `reference-cases.json`."""
    return json.loads((peer_cases_dir() / name).read_text(encoding="utf-8"))


def table_or_empty(name: str) -> dict[str, Any]:
    """For collection time: an absent folder yields no cases here, and `test_tables_present` fails."""
    try:
        return load_table(name)
    except FileNotFoundError:
        return {}


def buildkit_dir() -> Path:
    return peer_cases_dir() / "buildkit"
