"""The house rules of docs/ARCHITECTURE.md, read off pyctr's own source (AST, nothing imported):

- which package may import which (the import diagram), for every import, lazy ones and type-only ones too;
- no module uses another module's `_private` name (`from m import _x`, `m._x`, a `_private` submodule of a
  package it is not in), anywhere in pyctr/;
- the image package does not know how containers are stored (the runtime tells it what they hold).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

PYCTR = Path(__file__).resolve().parents[2] / "pyctr"

# The layers, top to bottom. A module may import modules of its own layer group and of the groups it names.
SHARED = {"pyctr", "pyctr.errors", "pyctr.config", "pyctr.fsutil", "pyctr.platform_info", "pyctr.units",
          "pyctr.output", "pyctr.protocol", "pyctr.events"}
LAYERS: dict[str, set[str]] = {
    # entry points: run the CLI (and the server preloads everything)
    "pyctr.__main__": {"pyctr.cli"},
    "pyctr.client": {"pyctr.cli", "pyctr.protocol"},
    "pyctr.server": {"pyctr.cli", "pyctr.client", "pyctr.protocol", "pyctr.runtime"},
    "pyctr.cli": {"pyctr.commands"},
    # front ends: parse, call the packages, print
    "pyctr.commands": {"pyctr.build", "pyctr.image", "pyctr.runtime"},
    "pyctr.api": {"pyctr.build", "pyctr.image", "pyctr.runtime"},
    "pyctr.oci": {"pyctr.runtime", "pyctr.image"},
    # the packages
    "pyctr.build": {"pyctr.image", "pyctr.runtime"},
    "pyctr.runtime": {"pyctr.image"},
    "pyctr.image": set(),
    # shared below everything: only each other
    **{name: set() for name in SHARED},
}

def module_name(path: Path) -> str:
    parts = path.relative_to(PYCTR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(PYCTR.rglob("*.py")):
        yield module_name(path), ast.parse(path.read_text(), str(path))


def group_of(module: str) -> str:
    """The LAYERS key a module belongs to: the longest one that is it or contains it."""
    candidates = [key for key in LAYERS if module == key or (key != "pyctr" and module.startswith(key + "."))]
    if not candidates:
        return module if module.count(".") <= 1 else ".".join(module.split(".")[:2])
    return max(candidates, key=len)


def imported_paths(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """Every pyctr dotted path an import names: `import a.b` -> a.b; `from a import b` -> a.b (b may be a
    module, a class or a function: the rules below treat them alike)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "pyctr":
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] == "pyctr":
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def bindings(tree: ast.Module) -> dict[str, str]:
    """Local name -> the pyctr dotted path it was imported as (anywhere in the module)."""
    bound: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "pyctr":  # `import pyctr.a.b` binds `pyctr`
                    bound[alias.asname or "pyctr"] = alias.name if alias.asname else "pyctr"
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] == "pyctr":
            for alias in node.names:
                bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return bound


def attribute_paths(tree: ast.Module, bound: dict[str, str]) -> Iterator[tuple[int, str]]:
    """`x.y._z` where x is an imported pyctr name: its full dotted path."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        chain, value = [node.attr], node.value
        while isinstance(value, ast.Attribute):
            chain.append(value.attr)
            value = value.value
        if isinstance(value, ast.Name) and value.id in bound:
            yield node.lineno, ".".join([bound[value.id], *reversed(chain)])


def private_violation(importer: str, path: str) -> bool:
    """A `_private` segment of `path` is only for modules inside what comes before it (a package's private
    submodule for the package, a module's private name for itself)."""
    parts = path.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            owner = ".".join(parts[:i])
            if importer != owner and not importer.startswith(owner + "."):
                return True
    return False


def private_uses() -> set[tuple[str, str]]:
    found = set()
    for name, tree in modules():
        for _, path in [*imported_paths(tree), *attribute_paths(tree, bindings(tree))]:
            if private_violation(name, path):
                found.add((name, path))
    return found


def test_no_module_uses_another_modules_private_name():
    found = private_uses()
    new = sorted(found)
    assert not new, "make a public function in one home instead:\n" + "\n".join(f"{m} uses {p}" for m, p in new)


def test_the_private_use_rule_catches_each_form():
    """The checker itself: each way of reaching a private name is seen, a package's own private module is not."""
    tree = ast.parse("from pyctr.runtime import init\nimport pyctr.runtime.spec as spec\n"
                     "from pyctr.image.push import _layer_blob\ninit._report(1)\nspec._env_from_files()\n"
                     "from pyctr.runtime.network import _rtnl\n")
    paths = [p for _, p in [*imported_paths(tree), *attribute_paths(tree, bindings(tree))]]
    assert {p for p in paths if private_violation("pyctr.server", p)} == {
        "pyctr.image.push._layer_blob", "pyctr.runtime.init._report", "pyctr.runtime.spec._env_from_files",
        "pyctr.runtime.network._rtnl"}
    assert not private_violation("pyctr.runtime.network.manager", "pyctr.runtime.network._rtnl.open_iproute")
    assert not private_violation("pyctr.runtime.init", "pyctr.runtime.init._report")


def import_violations() -> list[str]:
    problems = []
    for name, tree in modules():
        group = group_of(name)
        if group not in LAYERS:
            problems.append(f"{name}: its package {group} is not in the layer table (add it to LAYERS and to "
                            "the diagram in docs/ARCHITECTURE.md)")
            continue
        allowed = LAYERS[group] | ({group} if group not in SHARED else set()) | SHARED
        for line, path in imported_paths(tree):
            target = group_of(path)
            if target == group or target in allowed:
                continue
            if not any(path == a or path.startswith(a + ".") for a in allowed):
                problems.append(f"{name}:{line} imports {path} ({group} may not import {target})")
    return problems


def test_imports_follow_the_diagram():
    problems = import_violations()
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(("importer", "path", "ok"), [
    ("pyctr.image.check", "pyctr.runtime.syscalls.umount2", False),
    ("pyctr.runtime.container", "pyctr.commands.image", False),
    ("pyctr.build.executor", "pyctr.cli", False),
    ("pyctr.errors", "pyctr.image.store", False),
    ("pyctr.runtime.usage", "pyctr.image.store.InUse", True),
    ("pyctr.commands.image", "pyctr.runtime.usage", True),
    ("pyctr.output.table", "pyctr.units.human_size", True),
])
def test_the_diagram_rule_decides_each_direction(importer, path, ok):
    group, target = group_of(importer), group_of(path)
    allowed = LAYERS[group] | ({group} if group not in SHARED else set()) | SHARED
    assert (target == group or target in allowed) == ok


def test_the_image_package_does_not_know_how_containers_are_stored():
    """No `paths.containers`, no "containers" path literal, no runtime import in image/: the runtime says what
    containers hold (runtime/usage.py image_users)."""
    found = []
    for name, tree in modules():
        if not name.startswith("pyctr.image"):
            continue
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, ast.Module | ast.FunctionDef | ast.ClassDef) and n.body
                      and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "containers":
                found.append(f"{name}:{node.lineno} .containers")
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings \
                    and (node.value == "containers" or "containers/" in node.value):
                found.append(f"{name}:{node.lineno} {node.value!r}")
    assert not found, found


def readme_layout() -> str:
    text = (PYCTR.parent / "README.md").read_text()
    section = text.split("## Layout\n", 1)[1]
    return section.split("```", 2)[1]


def test_the_readme_layout_names_every_package_and_module_and_nothing_gone():
    """Each package of pyctr/ has its line, each top-level module is named, and every path the section names
    exists (a package a helper adds, or a module it removes, shows here first)."""
    layout = readme_layout()
    packages = sorted(p.name for p in PYCTR.iterdir() if (p / "__init__.py").is_file())
    modules_ = sorted(p.stem for p in PYCTR.glob("*.py") if p.stem not in ("__init__", "__main__"))
    missing = [f"pyctr/{p}/" for p in packages if f"pyctr/{p}/" not in layout]
    missing += [m for m in modules_ if f"pyctr/{m}.py" not in layout and not re.search(rf"\b{m}\b", layout)]
    assert not missing, f"README layout does not mention {missing}"
    named = {word.rstrip("/") for line in layout.splitlines() for word in line.split()[:1]
             if word.startswith(("pyctr/", "tests/", "docs/", "examples/", "bench/")) and "*" not in word}
    gone = sorted(p for p in named if not (PYCTR.parent / p).exists())
    assert not gone, f"README layout names paths that do not exist: {gone}"


def test_the_store_layout_is_named_once():
    """The image store's file, lock and temp names are literals of image/layout.py only: the stores and
    `system check` take them from there instead of re-declaring them."""
    names = ("repositories.json", "layer.json", "image-gc", ".partial")
    found = []
    for name, tree in modules():
        if not name.startswith("pyctr.image") or name == "pyctr.image.layout":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and len(node.value) < 80 \
                    and any(n in node.value for n in names) and " " not in node.value:
                found.append(f"{name}:{node.lineno} {node.value!r}")
    assert not found, found
