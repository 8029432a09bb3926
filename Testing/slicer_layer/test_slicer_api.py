"""The Slicer layer against Slicer's own Python sources, release by release (``slicer_api.py``).

Every name the module, the plugin and the package's Slicer modules use on ``DICOMLib``,
``DICOMUtils``, ``DICOMPlugin``/``DICOMLoadable``, ``ScriptedLoadableModule*``, ``slicer.util``,
``slicer.i18n`` and ``slicer.parameterNodeWrapper`` must exist in v5.10.0 and in v5.12.3, with
the arguments passed; overrides must keep the base signature; parameter-node fields must be ones
the wrapper serializes. The last tests break a copy of the sources and check the checker notices.
"""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import pytest

import slicer_api as api
from conftest import SLICER_RELEASES

pytest.importorskip("slicer", reason="the wrapper's NodeSerializer needs the slicer-core wheel")

REPOSITORY = Path(__file__).resolve().parents[2]
MODULE_FOLDER = REPOSITORY / "IrregularSeries"
PACKAGE = MODULE_FOLDER / "irregular_series"
SLICER_MODULES = ("slicer", "DICOMLib", "DICOMUtils", "qt", "ctk")

ONE_RELEASE_ONLY = {
    "DICOMLib.DICOMPlugin.examineFiles": {
        "v5.10.0": "the base class has no examineFiles and its examineForImport returns []: the plugin's "
                   "own examineForImport calls its examineFiles, with the base's loadable cache",
        "v5.12.3": "the base examineForImport would call examineFiles itself; the plugin's override does "
                   "the same, so both releases take one path",
    },
}
"""Names the Slicer layer uses that exist in one supported release only, and what happens in each."""


def _touches_slicer(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] in SLICER_MODULES for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] in SLICER_MODULES:
            return True
    return False


def slicer_layer() -> list[Path]:
    """The module and plugin files, and every module of the package that imports Slicer's Python."""
    package = [p for p in sorted(PACKAGE.rglob("*.py")) if _touches_slicer(p)]
    return [MODULE_FOLDER / "IrregularSeries.py", MODULE_FOLDER / "IrregularSeriesPlugin.py", *package]


@pytest.fixture(scope="module")
def sources() -> dict[str, ast.Module]:
    return api.parse_sources(slicer_layer(), REPOSITORY)


@pytest.fixture(scope="module", params=SLICER_RELEASES)
def release(request, slicer_api) -> api.Release:
    root = slicer_api / request.param
    if not root.is_dir():
        pytest.skip(f"{root} missing")
    return api.Release(root)


def _report(findings) -> str:
    return "\n".join(str(f) for f in dict.fromkeys(findings))


def test_the_slicer_layer_is_the_module_the_plugin_and_the_scene_logic():
    names = {p.relative_to(MODULE_FOLDER).as_posix() for p in slicer_layer()}
    assert {"IrregularSeries.py", "IrregularSeriesPlugin.py", "irregular_series/slicer/scene.py"} <= names
    assert "irregular_series/slicer/examine.py" not in names  # pure: imports no Slicer


@pytest.fixture(scope="module")
def usages(slicer_api, sources) -> dict[str, api.Usage]:
    return {tag: api.check(api.Release(slicer_api / tag), sources) for tag in SLICER_RELEASES
            if (slicer_api / tag).is_dir()}


def test_every_name_used_exists_with_the_arguments_passed(release, usages):
    usage = usages[release.tag]
    assert len(usage.checked) > 50  # the checker really walked the layer
    assert not usage.findings, _report(usage.findings)


def test_parameter_node_fields_are_serialized_and_valid(release, sources):
    findings = [f for file, tree in sources.items() for f in api.parameter_node_findings(release, file, tree)]
    assert not findings, _report(findings)


def test_plugin_hooks_fit_how_the_dicom_module_calls_them(release, sources):
    findings = api.hook_findings(release, sources)
    assert not findings, _report(findings)


def test_names_found_in_one_release_only_are_handled(usages, sources):
    if len(usages) < len(SLICER_RELEASES):
        pytest.skip("needs the sources of every supported release")
    checked = {tag: usage.checked for tag, usage in usages.items()}
    only_in_one = checked[SLICER_RELEASES[0]] ^ checked[SLICER_RELEASES[1]]
    assert only_in_one == set(ONE_RELEASE_ONLY)
    for name, paths in ONE_RELEASE_ONLY.items():
        for tag, path in paths.items():
            print(f"{name} in {tag}: {'present' if name in checked[tag] else 'absent'}; {path}")
    # The path both releases take: the plugin overrides examineForImport and calls its examineFiles.
    plugin = next(n for n in ast.walk(sources["IrregularSeries/IrregularSeriesPlugin.py"])
                  if isinstance(n, ast.ClassDef) and n.name == "IrregularSeriesPluginClass")
    methods = {m.name: m for m in plugin.body if isinstance(m, ast.FunctionDef)}
    assert "self.examineFiles(files)" in ast.unparse(methods["examineForImport"])


def test_loadables_carry_only_slicers_attributes(release):
    """What a loadable may carry: its own fields and what Slicer's plugins add (the scalar
    plugin's ``grayscale``; 5.12's ``referencedSeriesUID``)."""
    assert {"files", "name", "tooltip", "warning", "selected", "confidence"} <= release.loadable_fields
    assert "grayscale" in release.loadable_conventions


# --- the checker can fail ---------------------------------------------------------------------------

BREAKS = {
    "a util function removed": ("Base/Python/slicer/util.py", "def settingsValue(", "def settingsValueGone(",
                                "slicer.util.settingsValue does not exist"),
    "a keyword removed": ("Base/Python/slicer/util.py", "def tryWithErrorDisplay(message=None, show=True, waitCursor=False)",
                          "def tryWithErrorDisplay(message=None, show=True)", "no parameter waitCursor"),
    "a required argument added": ("Base/Python/slicer/util.py", "def setSliceViewerLayers(background=",
                                  "def setSliceViewerLayers(layout, background=", "missing layout"),
    "a mixin method removed": ("Base/Python/slicer/util.py", "def removeObservers(", "def removeAll(",
                               "no removeObservers"),
    "a base method removed": ("Modules/Scripted/DICOMLib/DICOMPlugin.py", "def cacheLoadables(", "def cacheGone(",
                              "no cacheLoadables in DICOMLib.DICOMPlugin"),
    "a base signature changed": ("Modules/Scripted/DICOMLib/DICOMPlugin.py", "def load(self, loadable):",
                                 "def load(self, loadable, options):", "overrides DICOMLib.DICOMPlugin.load"),
    "a DICOMUtils function removed": ("Modules/Scripted/DICOMLib/DICOMUtils.py", "def importDicom(",
                                      "def importGone(", "DICOMLib.DICOMUtils.importDicom does not exist"),
    "a translation function removed": ("Base/Python/slicer/i18n.py", "def tr(text):", "def tr_(text):",
                                       "slicer.i18n.tr does not exist"),
    "a validator removed": ("Base/Python/slicer/parameterNodeWrapper/validators.py", "class WithinRange(",
                            "class Within(", "slicer.parameterNodeWrapper.WithinRange does not exist"),
    "a choice the default is not in": ("Base/Python/slicer/parameterNodeWrapper/validators.py",
                                       "        self.choices = choices\n", "        self.choices = choices[1:]\n",
                                       "default refused"),
    "no string serializer": ("Base/Python/slicer/parameterNodeWrapper/serializers.py",
                             "@parameterNodeSerializer\nclass StringSerializer", "class StringSerializer",
                             "no serializer takes <class 'str'>"),
    "a database method nobody calls": ("*.py", "fileForInstance", "fileForUID", "slicer.dicomDatabase.fileForInstance"),
    "a hook called with one argument": ("Modules/Scripted/DICOM/DICOM.py", ".settingsPanelEntry(parent, pluginGroupBox)",
                                        ".settingsPanelEntry(parent)", "settingsPanelEntry: missing parent"),
    "plugins made with an argument": ("Modules/Scripted/DICOM/DICOM.py", "plugin = slicer.modules.dicomPlugins[pluginClass]()",
                                      "plugin = slicer.modules.dicomPlugins[pluginClass](0)", "IrregularSeriesPluginClass(...)"),
}
"""Changes to a copy of Slicer's sources, each with the finding it must cause (all made in one copy:
each finding names what was changed, so one check shows every one)."""


@pytest.fixture(scope="module")
def broken_findings(slicer_api, sources, tmp_path_factory) -> list[str]:
    copy = tmp_path_factory.mktemp("slicer-api") / SLICER_RELEASES[-1]
    shutil.copytree(slicer_api / SLICER_RELEASES[-1], copy)
    for what, (pattern, old, new, _) in BREAKS.items():
        changed = 0
        for path in copy.rglob(pattern) if "*" in pattern else [copy / pattern]:
            text = path.read_text(encoding="utf-8")
            changed += old in text
            path.write_text(text.replace(old, new), encoding="utf-8")
        assert changed, f"{what}: {old!r} is no longer in the sources"
    release = api.Release(copy)
    findings = api.check(release, sources).findings + api.hook_findings(release, sources)
    findings += [f for file, tree in sources.items() for f in api.parameter_node_findings(release, file, tree)]
    return [str(f) for f in findings]


@pytest.mark.parametrize("what", sorted(BREAKS))
def test_checker_fails_when_the_sources_change(what, broken_findings):
    expected = BREAKS[what][3]
    assert any(expected in f for f in broken_findings), "\n".join(broken_findings) or "no findings"


def test_checker_finds_a_private_attribute_on_a_loadable(slicer_api, sources):
    """As the plugin once kept its stack on the loadable: not an attribute Slicer knows."""
    plugin = "IrregularSeries/IrregularSeriesPlugin.py"
    text = re.sub(r"\n(\s*)loadable.confidence = \w+.confidence",
                  r"\g<0>\n\1loadable.irregularSeries = None", ast.unparse(sources[plugin]))
    assert "irregularSeries" in text
    findings = api.check(api.Release(slicer_api / SLICER_RELEASES[-1]), {plugin: ast.parse(text)}).findings
    assert any("DICOMLoadable.irregularSeries is neither" in str(f) for f in findings), _report(findings)


# --- the module panel's .ui and the one-step self-test ---------------------------------------------


def test_every_ui_widget_class_is_one_slicers_designer_plugins_provide():
    allowed = api.designer_classes()
    tree = api.ui_classes(MODULE_FOLDER / "Resources" / "UI" / "IrregularSeries.ui")
    unknown = {name: kind for name, kind in tree.items() if name not in allowed[kind]}
    assert not unknown, f"not provided by Qt, CTK or Slicer's designer plugins: {unknown}"


def test_readme_runs_the_self_test_in_one_command(release):
    readme = (REPOSITORY / "README.md").read_text(encoding="utf-8")
    (command,) = re.findall(r'^Slicer .*--python-code "(.+)"$', readme, flags=re.M)
    code = ast.parse(command)
    findings = api.check(release, {"README.md": code}).findings
    assert not findings, _report(findings)
    called = {ast.unparse(n.func) for n in ast.walk(code) if isinstance(n, ast.Call)}
    assert {"slicer.util.exit", "IrregularSeries.runSelfTest"} <= called
    module = ast.parse((MODULE_FOLDER / "IrregularSeries.py").read_text(encoding="utf-8"))
    assert "runSelfTest" in {n.name for n in module.body if isinstance(n, ast.FunctionDef)}


UI = MODULE_FOLDER / "Resources" / "UI" / "IrregularSeries.ui"
MODULE = "IrregularSeries/IrregularSeries.py"


def test_every_bound_ui_widget_has_a_gui_connector_for_its_field(release, sources):
    text = UI.read_text(encoding="utf-8")
    assert text.count('name="SlicerParameterName"') == 10  # every field of the parameter node
    findings = api.gui_connector_findings(release, UI, MODULE, sources[MODULE])
    assert not findings, _report(findings)


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ('class="ctkDoubleSpinBox" name="customSpacingSpinBox"', 'class="QLineEdit" name="customSpacingSpinBox"',
         "no GUI connector takes it for customSpacing"),
        ("<string>tilt</string>", "<string>tilts</string>", "bound to tilts, which the parameter node lacks"),
    ],
)
def test_gui_connector_check_can_fail(old, new, expected, release, sources, tmp_path):
    text = UI.read_text(encoding="utf-8")
    assert old in text
    broken = tmp_path / UI.name
    broken.write_text(text.replace(old, new), encoding="utf-8")
    findings = api.gui_connector_findings(release, broken, MODULE, sources[MODULE])
    assert any(expected in str(f) for f in findings), _report(findings) or "no findings"
