"""Imports point down only: reading DICOM knows nothing of the analysis, the analysis nothing of
pixels, resampling, writers or Slicer, and only the scene logic imports ``slicer``.

The import graph is read from the sources (every ``import`` statement, also inside functions),
and the rules are checked on what each module reaches through it, so an indirect import breaks
them too. Importing the pure plugin logic is also checked for real, in a fresh interpreter.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "IrregularSeries" / "irregular_series"
PACKAGE = "irregular_series"

READING = {"rawelements", "headers"}
ANALYSIS = {"grouping", "geometry", "analysis", "report"}
ANALYSIS_MODULES = ANALYSIS | {"spacing", "planning"}
CONVERSION = {"pixels", "resample", "grid", "verify", "volume", "series_volumes", "writers", "dicom_writer", "conversion",
              "cli"}
SLICER_LIBRARIES = {"slicer", "vtk", "vtkmodules", "qt", "ctk", "DICOMLib"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(module: str, node: ast.ImportFrom) -> list[str]:
    """Absolute names (inside the package, without its prefix) or top-level library names."""
    if node.level == 0:
        name = node.module or ""
        if name == PACKAGE or name.startswith(PACKAGE + "."):
            inner = name[len(PACKAGE) + 1:]
            return [f"{inner}.{a.name}" if inner else a.name for a in node.names]
        return [name.split(".")[0]]
    package = module.split(".") if (PACKAGE_DIR / module.replace(".", "/") / "__init__.py").exists() else \
        module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
    if node.module:
        return [".".join(base + node.module.split("."))]
    return [".".join(base + [a.name]) for a in node.names]


@cache
def import_graph() -> dict[str, set[str]]:
    """Module (``headers``, ``slicer.scene``; ``""`` for the package) -> what it imports: package
    modules by the same kind of name, libraries as ``lib:<top-level name>``."""
    modules = {_module_name(p): p for p in PACKAGE_DIR.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    name = alias.name
                    if name == PACKAGE or name.startswith(PACKAGE + "."):
                        targets.add(name[len(PACKAGE) + 1:])
                    else:
                        targets.add("lib:" + name.split(".")[0])
            elif isinstance(node, ast.ImportFrom):
                for name in _resolve(module, node):
                    if name in modules:
                        targets.add(name)
                    elif name.rsplit(".", 1)[0] in modules and "." in name:
                        targets.add(name.rsplit(".", 1)[0])  # ``from .x import name``: a name in x
                    elif node.level == 0:
                        targets.add("lib:" + name)
                    else:
                        targets.add(name.rsplit(".", 1)[0] if "." in name else "")  # a name of a package
        graph[module] = targets - {module}
    return graph


def reaches(module: str) -> set[str]:
    """Everything ``module`` imports, directly or through other package modules."""
    graph = import_graph()
    seen: set[str] = set()
    todo = [module]
    while todo:
        for target in graph.get(todo.pop(), set()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_the_graph_sees_the_package():
    graph = import_graph()
    assert READING | ANALYSIS | CONVERSION | {"slicer.scene", "slicer.examine"} <= set(graph)
    assert "headers" in graph["analysis"] and "lib:numpy" in graph["geometry"]
    assert "slicer.examine" in graph["slicer.scene"] and "lib:slicer" in graph["slicer.scene"]


@pytest.mark.parametrize("module", sorted(READING))
def test_dicom_reading_imports_no_analysis(module):
    assert not reaches(module) & (ANALYSIS_MODULES | CONVERSION), reaches(module)


@pytest.mark.parametrize("module", sorted(ANALYSIS))
def test_analysis_imports_no_pixels_resampling_writers_or_slicer(module):
    found = reaches(module)
    assert not found & CONVERSION, found
    assert not {m for m in found if m.startswith("slicer")}, found
    assert not {m for m in found if m.removeprefix("lib:") in SLICER_LIBRARIES}, found


def test_only_the_scene_logic_imports_slicer():
    importers = {m for m, targets in import_graph().items()
                 if {t.removeprefix("lib:") for t in targets if t.startswith("lib:")} & SLICER_LIBRARIES}
    assert "slicer.scene" in importers
    assert all(m.startswith("slicer.") for m in importers), importers  # the scene logic modules only
    assert not importers & {"slicer.examine", "slicer.database", "slicer.progress"}, importers  # pure


def test_examine_loads_only_what_it_needs():
    code = ("import json, sys; import irregular_series.slicer.examine; "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('irregular_series') or m == 'pydicom')))")
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                           text=True).stdout))
    heavy = {f"{PACKAGE}.{m}" for m in CONVERSION | {"planning", "headers", "rawelements"}} | {"pydicom"}
    assert not loaded & heavy, loaded & heavy
