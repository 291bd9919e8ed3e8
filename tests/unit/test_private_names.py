"""No module of pyctr uses another module's `_private` name: a name with a leading underscore is its module's
own business, so a reader can change it by reading one file. What two modules share gets a public name in
one home (issue 14).

Checked on the syntax tree: `from pyctr.x import _name`, and `alias._name` where `alias` is a pyctr module
imported into the file (`import pyctr.x as alias`, `from pyctr import x`). A package-private module
(`network/_rtnl.py`) may be imported by its own package's modules, not from outside it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pyctr

PACKAGE = Path(pyctr.__file__).parent
# The areas this test guards. The rest of pyctr (image/, build/, commands/, output/) is being cleared by
# another branch of issue 14; add each area here once it is clean.
CHECKED = ("runtime",)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_module_outside_its_package(importer: str, module: str) -> bool:
    """`pyctr.a._b` (or below it) imported by a module that is not in package `pyctr.a`."""
    parts = module.split(".")
    for index, part in enumerate(parts):
        if is_private(part):
            package = ".".join(parts[:index])
            return importer != package and not importer.startswith(package + ".")
    return False


def violations(path: Path) -> list[str]:
    importer = module_name(path)
    tree = ast.parse(path.read_text(), str(path))
    modules: set[str] = set()  # local names bound to pyctr modules
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("pyctr.") and alias.asname:
                    modules.add(alias.asname)
                if alias.name.startswith("pyctr.") and private_module_outside_its_package(importer, alias.name):
                    found.append(f"{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("pyctr"):
            if private_module_outside_its_package(importer, node.module):
                found.append(f"{node.lineno}: from {node.module}")
            for alias in node.names:
                if is_private(alias.name) and f"{node.module}.{alias.name}" != importer:
                    if not private_module_outside_its_package(importer, f"{node.module}.{alias.name}") \
                            and (PACKAGE.parent / node.module.replace(".", "/") / f"{alias.name}.py").exists():
                        continue  # a package-private submodule, imported from inside its package
                    found.append(f"{node.lineno}: from {node.module} import {alias.name}")
                modules.add(alias.asname or alias.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules \
                and is_private(node.attr):
            found.append(f"{node.lineno}: {node.value.id}.{node.attr}")
    return found


def checked_files() -> list[Path]:
    return sorted(path for area in CHECKED for path in (PACKAGE / area).rglob("*.py"))


@pytest.mark.parametrize("path", checked_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_uses_another_modules_private_name(path):
    assert violations(path) == []


def test_the_check_finds_each_kind_of_use(tmp_path, monkeypatch):
    """The checker itself: each form it must catch, and what it must let through."""
    monkeypatch.setattr(pyctr, "__file__", str(tmp_path / "pyctr" / "__init__.py"))
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path / "pyctr"
    try:
        (PACKAGE / "net").mkdir(parents=True)
        (PACKAGE / "net" / "_low.py").write_text("")
        inside = PACKAGE / "net" / "veth.py"
        inside.write_text("from pyctr.net._low import open_link\nfrom pyctr.net import _low\n")
        outside = PACKAGE / "run.py"
        outside.write_text("from pyctr.a import _hidden\nimport pyctr.b as b\nfrom pyctr import c\n"
                           "b._x()\nc._y\nc.ok\nfrom pyctr.net._low import open_link\nimport _signal\n")
        assert violations(inside) == []
        assert sorted(violations(outside)) == ["1: from pyctr.a import _hidden", "4: b._x", "5: c._y",
                                               "7: from pyctr.net._low"]
    finally:
        PACKAGE = saved
