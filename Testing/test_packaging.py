"""The Slicer extension's packaging: CMake lists, the .ui, icons, and what may import what.

These run without Slicer: Slicer-only files are parsed (ast, XML) and compiled, never imported.
"""

from __future__ import annotations

import ast
import py_compile
import re
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from irregular_series import analyze, policies
from irregular_series.policies import GapPolicy, Interpolation, SectionPolicy
from irregular_series.policies import TiltPolicy as Tilt
from irregular_series.spacing import choose_spacing

ROOT = Path(__file__).resolve().parents[1]
MODULE = ROOT / "IrregularSeries"
LIB = MODULE / "irregular_series"
MODULE_PY = MODULE / "IrregularSeries.py"
PLUGIN_PY = MODULE / "IrregularSeriesPlugin.py"
UI = MODULE / "Resources" / "UI" / "IrregularSeries.ui"

SLICER_ONLY = {"slicer", "qt", "ctk", "vtk", "vtkmodules", "DICOMLib"}
SCENE_LOGIC = LIB / "slicer" / "scene.py"


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _cmake_commands(path: Path) -> list[tuple[str, str]]:
    """(command name, argument text) in file order, comments removed."""
    text = re.sub(r"#[^\n]*", "", path.read_text(encoding="utf-8"))
    return [(m.group(1).lower(), " ".join(m.group(2).split())) for m in re.finditer(r"(\w+)\s*\(([^)]*)\)", text)]


def _cmake_list(path: Path, variable: str) -> set[str]:
    for name, args in _cmake_commands(path):
        words = args.split()
        if name == "set" and words and words[0] == variable:
            return {w.replace("${MODULE_NAME}", "IrregularSeries") for w in words[1:]}
    raise AssertionError(f"{variable} is not set in {path}")


def _shipped(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts]


# --- CMake ----------------------------------------------------------------------------------


def test_extension_cmake_follows_slicers_template_order():
    commands = _cmake_commands(ROOT / "CMakeLists.txt")
    order = [
        ("cmake_minimum_required", "VERSION"),
        ("project", "IrregularSeries"),
        ("set", "EXTENSION_HOMEPAGE"),
        ("set", "EXTENSION_CONTRIBUTORS"),
        ("set", "EXTENSION_DESCRIPTION"),
        ("set", "EXTENSION_ICONURL"),
        ("set", "EXTENSION_SCREENSHOTURLS"),
        ("set", "EXTENSION_DEPENDS"),
        ("find_package", "Slicer REQUIRED"),
        ("include", "${Slicer_USE_FILE}"),
        ("add_subdirectory", "IrregularSeries"),
        ("include", "${Slicer_EXTENSION_GENERATE_CONFIG}"),
        ("include", "${Slicer_EXTENSION_CPACK}"),
    ]
    assert [(name, args.split()[0] if name in ("set", "cmake_minimum_required") else args)
            for name, args in commands] == order
    assert (ROOT / "Resources" / "IrregularSeries.png").is_file()


def test_module_cmake_lists_every_script():
    listed = _cmake_list(MODULE / "CMakeLists.txt", "MODULE_PYTHON_SCRIPTS")
    on_disk = {p.relative_to(MODULE).as_posix() for p in MODULE.glob("*.py")}
    on_disk |= {p.relative_to(MODULE).as_posix() for p in _shipped(LIB) if p.suffix == ".py"}
    assert listed == on_disk


def test_module_cmake_lists_every_resource():
    listed = _cmake_list(MODULE / "CMakeLists.txt", "MODULE_PYTHON_RESOURCES")
    on_disk = {p.relative_to(MODULE).as_posix() for p in _shipped(MODULE / "Resources")}
    on_disk |= {p.relative_to(MODULE).as_posix() for p in _shipped(LIB) if p.suffix != ".py"}
    assert listed == on_disk


def test_module_is_built_as_a_scripted_module_with_generic_tests():
    (args,) = [a for name, a in _cmake_commands(MODULE / "CMakeLists.txt") if name == "slicermacrobuildscriptedmodule"]
    assert args.split() == ["NAME", "${MODULE_NAME}", "SCRIPTS", "${MODULE_PYTHON_SCRIPTS}",
                            "RESOURCES", "${MODULE_PYTHON_RESOURCES}", "WITH_GENERIC_TESTS"]


# --- Slicer-only Python files ---------------------------------------------------------------


@pytest.mark.parametrize("path", [MODULE_PY, PLUGIN_PY], ids=lambda p: p.name)
def test_slicer_files_compile(path, tmp_path):
    py_compile.compile(str(path), cfile=str(tmp_path / "out.pyc"), doraise=True)


def test_each_top_level_script_is_a_module_class():
    # Slicer loads every top-level .py of the module folder as a module named after the file.
    scripts = sorted(p.name for p in MODULE.glob("*.py"))
    assert scripts == ["IrregularSeries.py", "IrregularSeriesPlugin.py"]
    for name in scripts:
        classes = {n.name for n in _tree(MODULE / name).body if isinstance(n, ast.ClassDef)}
        assert Path(name).stem in classes


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_core_never_imports_slicer_and_scene_logic_never_imports_qt():
    for path in LIB.rglob("*.py"):
        roots = _imported_roots(path)
        if path.parent == SCENE_LOGIC.parent:  # the Slicer layer: slicer and vtk, never Qt
            assert not roots & {"qt", "ctk", "DICOMLib"}, path.name
        else:
            assert not roots & SLICER_ONLY, path.name


# --- the .ui and the module code ------------------------------------------------------------


def _ui_widgets() -> dict[str, ET.Element]:
    return {w.get("name"): w for w in ET.parse(UI).getroot().iter("widget")}


def _parameter_fields() -> dict[str, ast.expr]:
    for node in _tree(MODULE_PY).body:
        if isinstance(node, ast.ClassDef) and any(
            isinstance(d, ast.Name) and d.id == "parameterNodeWrapper" for d in node.decorator_list
        ):
            return {s.target.id: s.annotation for s in node.body if isinstance(s, ast.AnnAssign)}
    raise AssertionError("no @parameterNodeWrapper class in IrregularSeries.py")


def test_ui_has_every_widget_the_module_uses():
    used = set(re.findall(r"self\.ui\.(\w+)", MODULE_PY.read_text(encoding="utf-8")))
    assert used and used <= set(_ui_widgets())


def test_ui_parameter_names_are_the_parameter_node_fields():
    bound = {}
    for name, widget in _ui_widgets().items():
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                bound[prop.find("string").text] = name
    assert set(bound) == set(_parameter_fields())


def _choices(annotation: ast.expr) -> list[str]:
    """A ``Choice(...)``'s values: the module builds them from the policy enums, so they are
    evaluated with the names of ``irregular_series.policies`` only."""
    calls = [n for n in ast.walk(annotation) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "Choice"]
    (call,) = calls
    return eval(compile(ast.Expression(call.args[0]), "<Choice>", "eval"), {"__builtins__": {}, **vars(policies)})


@pytest.mark.parametrize(
    "field, policies",
    [
        ("gaps", GapPolicy.values()),
        ("sections", SectionPolicy.values()),
        ("tilt", Tilt.values()),
        ("interpolation", Interpolation.values()),
    ],
)
def test_gui_choices_are_the_core_policies(field, policies):
    assert set(_choices(_parameter_fields()[field])) == set(policies)


def test_gui_spacing_choices_are_spacing_policies(write_phantom):
    stack = analyze([write_phantom("regular")]).series[0].stacks[0]
    choices = _choices(_parameter_fields()["spacing"])
    assert "custom" in choices  # the GUI's own: a number of mm from customSpacing
    for choice in set(choices) - {"custom"}:
        assert choose_spacing(stack, choice).value_mm == 2.5


# --- icons ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", [MODULE / "Resources" / "Icons" / "IrregularSeries.png", ROOT / "Resources" / "IrregularSeries.png"],
    ids=["module", "extension"],
)
def test_icons_are_128_pixel_pngs(path):
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n" and header[12:16] == b"IHDR"
    assert struct.unpack(">II", header[16:24]) == (128, 128)


def test_no_test_folder_joins_the_slicer_package():
    """The slicer-core wheel's ``slicer`` package extends its path with every ``slicer`` folder on
    ``sys.path`` and imports all it finds there: a test folder of that name (pytest puts test
    folders on the path) would be imported as part of Slicer, or break ``import slicer``."""
    tests = ROOT / "Testing"
    assert not [p for p in tests.rglob("slicer") if p.is_dir()]
