"""A name imported only under `if TYPE_CHECKING:` exists for the type checker alone: used at run time (outside an
annotation, with no import of its own in the function) it is a NameError that ruff cannot see, and that only the
code path using it finds, inside a container's init, say (two merges did exactly that)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "pyctr"


def _imported(nodes: list[ast.AST]) -> set[str]:
    return {(alias.asname or alias.name).split(".")[0] for node in nodes for sub in ast.walk(node)
            if isinstance(sub, (ast.Import, ast.ImportFrom)) for alias in sub.names}


def _annotation_nodes(tree: ast.AST) -> set[int]:
    found: set[int] = set()
    for node in ast.walk(tree):
        annotations = []
        if isinstance(node, (ast.arg, ast.AnnAssign)) and node.annotation is not None:
            annotations.append(node.annotation)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
            annotations.append(node.returns)
        found |= {id(sub) for annotation in annotations for sub in ast.walk(annotation)}
    return found


def runtime_uses_of_type_only_names(source: str) -> list[tuple[int, str]]:
    """(line, name) of each run-time use of a TYPE_CHECKING-only name with no import of it in its function."""
    tree = ast.parse(source)
    guarded = [node for node in tree.body
               if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING"]
    type_only = _imported(guarded) - _imported([n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))])
    if not type_only:
        return []
    in_annotations = _annotation_nodes(tree)
    uses = []
    for function in ast.walk(tree):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        local = _imported(function.body)
        uses += [(sub.lineno, sub.id) for statement in function.body for sub in ast.walk(statement)
                 if isinstance(sub, ast.Name) and sub.id in type_only - local and id(sub) not in in_annotations]
    return sorted(set(uses))


def test_the_checker_finds_a_type_only_name_used_at_run_time():
    source = ("TYPE_CHECKING = False\nif TYPE_CHECKING:\n    from pathlib import Path\n"
              "def good(p: Path) -> Path:\n    from pathlib import Path\n    return Path(p)\n"
              "def typed(p: Path) -> None:\n    return None\n"
              "def bad(p: str) -> None:\n    return Path(p)\n")
    assert runtime_uses_of_type_only_names(source) == [(10, "Path")]


def test_no_module_uses_a_type_only_name_at_run_time():
    found = [f"{path.relative_to(PACKAGE.parent)}:{line}: {name}" for path in sorted(PACKAGE.rglob("*.py"))
             for line, name in runtime_uses_of_type_only_names(path.read_text())]
    assert found == []
