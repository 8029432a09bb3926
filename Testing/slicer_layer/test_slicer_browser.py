"""How Slicer's DICOM browser picks loadables, read from its code, and our plugin's offers under that rule.

The rule, from ``DICOMUtils.selectHighestConfidenceLoadables`` and ``DICOMBrowser`` (both releases):

1. Every enabled plugin examines the series; the browser groups all loadables by the
   SeriesInstanceUID of their first file and selects, per series, exactly those whose confidence
   equals the series' highest (ties are all selected, whatever the plugin's own ``selected`` said).
2. The loadable table then keeps, per plugin, one selected loadable per set of files: a later one
   with the same files is unselected (``DICOMLoadableTable.setLoadables``), so it is not loaded.

Slicer's scalar-volume plugin, read from its ``examineFiles``: every loadable starts at the
``DICOMLoadable`` default confidence; the preferred ones (all files, or the localizer-free
subseries) keep it, the others drop to at most a fixed cap; a loadable whose files have no pixel
data gets a fixed low confidence. So its best offer for a series with pixel data is the default.
Those numbers are taken from the code, per release, not assumed.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest

from irregular_series import analyze
from irregular_series.model import SeriesAnalysis
from irregular_series.slicer.examine import Offer, examine_series, offers, slicer_series_name

from conftest import SLICER_RELEASES
from phantoms import CASES

DICOM_UTILS = "Modules/Scripted/DICOMLib/DICOMUtils.py"
DICOM_BROWSER = "Modules/Scripted/DICOMLib/DICOMBrowser.py"
DICOM_PLUGIN = "Modules/Scripted/DICOMLib/DICOMPlugin.py"
SCALAR_PLUGIN = "Modules/Scripted/DICOMPlugins/DICOMScalarVolumePlugin.py"

OURS, SCALAR = "IrregularSeries", "Scalar Volume"


def _tree(root: Path, relative: str) -> ast.Module:
    return ast.parse((root / relative).read_text(encoding="utf-8"))


def _function(tree: ast.AST, name: str, within: str | None = None) -> ast.FunctionDef:
    scope = tree
    if within:
        scope = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == within)
    return next(n for n in ast.walk(scope) if isinstance(n, ast.FunctionDef) and n.name == name)


def _statements(function: ast.FunctionDef) -> set[str]:
    return {ast.unparse(n) for n in ast.walk(function) if isinstance(n, ast.stmt) and not isinstance(n, ast.FunctionDef)}


@dataclass(frozen=True)
class ScalarPlugin:
    """The confidences of Slicer's scalar-volume plugin, read from one release's code."""

    default: float
    not_preferred_cap: float
    no_pixel_data: float

    def best(self, any_pixel_data: bool) -> float:
        """Its highest confidence for one series: a preferred loadable keeps the default."""
        return self.default if any_pixel_data else self.no_pixel_data


def scalar_plugin(root: Path) -> ScalarPlugin:
    loadable = next(n for n in ast.walk(_tree(root, DICOM_PLUGIN)) if isinstance(n, ast.ClassDef) and n.name == "DICOMLoadable")
    default = [n.value.value for n in ast.walk(_function(loadable, "__init__")) if isinstance(n, ast.Assign)
               and ast.unparse(n.targets[0]) == "self.confidence" and isinstance(n.value, ast.Constant)]
    examine = _function(_tree(root, SCALAR_PLUGIN), "examineFiles")
    writes = [n for n in ast.walk(examine) if isinstance(n, ast.Assign)
              and any(isinstance(t, ast.Attribute) and t.attr == "confidence" for t in n.targets)]
    constants = [n.value.value for n in writes if isinstance(n.value, ast.Constant)]
    caps = [n.value.args[1].value for n in writes if isinstance(n.value, ast.Call) and ast.unparse(n.value.func) == "min"]
    # The model holds only if these are all the confidence writes, and preferred ones keep theirs.
    assert len(default) == 1 and len(constants) == 1 and len(caps) == 1 and len(writes) == 2, [ast.unparse(w) for w in writes]
    preferred = next(n for n in ast.walk(examine)
                     if isinstance(n, ast.If) and ast.unparse(n.test) == "loadable in preferredLoadables")
    assert [ast.unparse(s) for s in preferred.body] == ["loadable.selected = True"]
    assert any("min(loadable.confidence" in ast.unparse(s) for s in preferred.orelse)
    no_pixels = next(w for w in writes if isinstance(w.value, ast.Constant))
    assert any(no_pixels in ast.walk(n) for n in ast.walk(examine) if isinstance(n, ast.If)
               and "len(newFiles) > 0" in ast.unparse(n.test))  # only where no file has pixel data
    return ScalarPlugin(default=default[0], not_preferred_cap=caps[0], no_pixel_data=constants[0])


@dataclass
class Loadable:
    plugin: str
    files: frozenset[str]
    confidence: float
    offer: Offer | None = None
    selected: bool = False


def browser_selects(loadables: list[Loadable]) -> list[Loadable]:
    """The rule of the module docstring, for the loadables of one series (all plugins)."""
    top = max(o.confidence for o in loadables)
    for loadable in loadables:
        loadable.selected = loadable.confidence == top
    for plugin in dict.fromkeys(o.plugin for o in loadables):
        kept: list[frozenset[str]] = []
        for loadable in (o for o in loadables if o.plugin == plugin and o.selected):
            if loadable.files in kept:
                loadable.selected = False
            else:
                kept.append(loadable.files)
    return [o for o in loadables if o.selected]


@pytest.fixture(scope="module", params=SLICER_RELEASES)
def release_root(request, slicer_api) -> Path:
    root = slicer_api / request.param
    if not root.is_dir():
        pytest.skip(f"{root} missing")
    return root


def test_the_rule_is_the_one_in_slicers_code(release_root):
    select = _statements(_function(_tree(release_root, DICOM_UTILS), "selectHighestConfidenceLoadables"))
    assert "seriesUID = slicer.dicomDatabase.fileValue(loadable.files[0], seriesUIDTag)" in select
    assert "highestConfidenceValue = max(loadable.confidence, highestConfidenceValue)" in select
    assert "loadable.selected = loadable.confidence == highestConfidenceValue" in select
    table = _statements(_function(_tree(release_root, DICOM_BROWSER), "setLoadables", within="DICOMLoadableTable"))
    assert "fileDifferences = set(thisLoadable.files).symmetric_difference(set(prevLoadable.files))" in table
    assert "thisLoadable.selected = False" in table
    examine = [ast.unparse(s) for s in _function(_tree(release_root, DICOM_BROWSER), "examineForLoading").body
               if not isinstance(s, ast.Expr) or not isinstance(s.value, ast.Constant)]
    assert examine[1:3] == ["DICOMLib.selectHighestConfidenceLoadables(self.loadablesByPlugin)",
                            "self.loadableTable.setLoadables(self.loadablesByPlugin)"]


def test_scalar_plugin_confidences_come_from_its_code(release_root):
    scalar = scalar_plugin(release_root)
    assert scalar.no_pixel_data < scalar.not_preferred_cap < scalar.default
    print(f"{release_root.name}: scalar-volume plugin {scalar}")


def _pixel_data(files) -> bool:
    return any("PixelData" in pydicom.dcmread(f, stop_before_pixels=False, specific_tags=["PixelData"]) for f in files)


def _loadables(series: SeriesAnalysis, scalar: ScalarPlugin) -> list[Loadable]:
    files = [s.path for stack in series.stacks for s in stack.slices] + [e.path for e in series.excluded]
    label = slicer_series_name(series)
    found = [Loadable(SCALAR, frozenset(files), scalar.best(_pixel_data(set(files))))]
    return found + [Loadable(OURS, frozenset(offer.files), offer.confidence, offer)
                    for offer in offers(examine_series(series, label), label)]


SCALAR_LOADS_RIGHT = {
    "regular": "one regular stack of single-frame images",
    "ge_three_plane_localizer": "localizers only: it splits them by orientation and loads each",
    "all_one_position": "images at one position, no volume: it loads each acquisition's image",
}
"""The phantoms Slicer's scalar-volume plugin loads right (every other one it gets wrong or warns about)."""


def _check_choice(loadables: list[Loadable], plain: bool) -> None:
    chosen = browser_selects(loadables)
    if plain:
        assert [o.plugin for o in chosen] == [SCALAR], [(o.plugin, o.confidence) for o in loadables]
        return
    assert SCALAR not in {o.plugin for o in chosen}
    stacks = [spec for o in loadables if o.plugin == OURS for spec in o.offer.parts]
    volumes = [spec for spec in stacks if spec.role == "volume"]
    # every volume stack is loaded (and, when there are volumes, nothing else)
    loaded = {spec.stack_id for o in chosen for spec in o.offer.parts}
    assert loaded == {spec.stack_id for spec in (volumes or stacks)}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_browser_loads_our_stacks_exactly_when_the_series_is_irregular(case, release_root, write_phantom):
    scalar = scalar_plugin(release_root)
    for series in analyze([write_phantom(case)]).series:
        _check_choice(_loadables(series, scalar), case in SCALAR_LOADS_RIGHT)


REAL_IRREGULAR = ["ct_tilt_varspacing_ge", "ct_tilt_localizer_philips/S3010", "dicom2nifti_edgecases/failing/sliceincrement/001",
                  "dicom2nifti_edgecases/failing/sliceincrement/002", "mr_3plane_localizer_ge/02_Ax_fMRI_FF_I11.1_S15.9"]
REAL_PLAIN = ["ct_tilt_localizer_philips/S1000", "dicom2nifti_edgecases/generic/anatomical"]


@pytest.mark.parametrize("subfolder", REAL_IRREGULAR + REAL_PLAIN)
def test_the_browser_loads_our_stacks_for_real_irregular_series_only(subfolder, release_root, realdata):
    folder = realdata / subfolder
    if not folder.is_dir():
        pytest.skip(f"{folder} not in the real data set")
    scalar = scalar_plugin(release_root)
    for series in analyze([folder]).series:
        _check_choice(_loadables(series, scalar), subfolder in REAL_PLAIN)
