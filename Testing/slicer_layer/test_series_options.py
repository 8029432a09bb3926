"""Load options remembered per series (``irregular_series.slicer.series_options``): stored by
SeriesInstanceUID, read back and validated, applied by what the plugin offers and loads.

The settings are ``MemorySettings``, the module's backend where there is no Qt; in Slicer the same
calls go to ``slicer.app.settings()``. Phantoms are real DICOM files written with pydicom; loading
runs on a real MRML scene of the slicer-core wheel, the way the plugin's ``load`` does.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

slicer = pytest.importorskip("slicer", reason="needs the slicer-core wheel (requirements/test.txt)")

from irregular_series.headers import scan  # noqa: E402
from irregular_series.model import SeriesAnalysis  # noqa: E402
from irregular_series.options import ConvertOptions  # noqa: E402
from irregular_series.slicer import scene as mrml  # noqa: E402
from irregular_series.slicer.examine import CONFIDENCE_ALTERNATIVE  # noqa: E402
from irregular_series.slicer.series_options import (  # noqa: E402
    SETTINGS_PREFIX,
    Examined,
    MemorySettings,
    Recalled,
    SeriesChoice,
    examine_headers,
    examine_with,
    forget,
    recall,
    remember,
)
from irregular_series.tolerances import Tolerances  # noqa: E402

DEFAULTS = SeriesChoice("transform", ConvertOptions())
"""The plugin's defaults with Slicer's settings panel untouched: acquisition transform, auto spacing."""

SPLIT_AT_1_MM = SeriesChoice("harden", ConvertOptions(spacing=1.0, gaps="split"))


@pytest.fixture
def scene():
    mrml_scene = slicer.vtkMRMLScene()
    yield mrml_scene
    mrml_scene.Clear(1)


def _examine(folder: Path, settings: MemorySettings) -> tuple[SeriesAnalysis, Examined]:
    """What the plugin offers for the one series in ``folder``, as analysed for its choice."""
    headers = scan([folder], workers=1)
    ((series, examined),) = examine_headers(headers.slices, headers.excluded, lambda uid: "1: series", settings,
                                            DEFAULTS)
    return series, examined


def _load(scene, series: SeriesAnalysis, examined) -> list:
    """What the plugin's ``load`` does with each selected offer (less the subject hierarchy's
    DICOM items, which need Slicer's DICOM database)."""
    stacks = {stack.id: stack for stack in series.stacks}
    nodes = []
    for offer in examined.offers:
        if not offer.selected:
            continue
        for spec in offer.parts:
            stack = stacks[spec.stack_id]
            pixels = mrml.stack_pixels(stack)
            node = mrml.add_stack_volume(scene, stack, pixels, spec.node_name)
            nodes += mrml.regularize(scene, node, stack, spec, pixels, examined.choice.options)
    return nodes


# --- stored and read back ----------------------------------------------------------------------


def test_a_choice_is_stored_as_json_under_the_series_uid_and_read_back():
    settings = MemorySettings()
    remember(settings, "1.2.3", SPLIT_AT_1_MM)
    stored = json.loads(settings.value(SETTINGS_PREFIX + "1.2.3"))
    assert stored == {"version": 1, "load_mode": "harden", "spacing": 1.0, "gaps": "split", "sections": "merge",
                      "tilt": "deskew", "interpolation": "linear", "include_localizers": False, "keep_together": []}
    assert recall(settings, "1.2.3", DEFAULTS) == Recalled(SPLIT_AT_1_MM)
    assert recall(settings, "1.2.4", DEFAULTS) == Recalled(None)  # another series: nothing remembered
    forget(settings, "1.2.3")
    assert settings.value(SETTINGS_PREFIX + "1.2.3") is None
    assert recall(settings, "1.2.3", DEFAULTS) == Recalled(None)


def test_what_a_choice_does_not_set_comes_from_the_defaults():
    settings = MemorySettings()
    remember(settings, "1.2.3", SPLIT_AT_1_MM)
    strict = SeriesChoice("transform", ConvertOptions(tolerances=Tolerances(position_mm=0.001), mask=True))
    recalled = recall(settings, "1.2.3", strict).choice
    assert recalled.load_mode == "harden" and recalled.options.gaps == "split" and recalled.options.spacing == 1.0
    assert recalled.options.tolerances == Tolerances(position_mm=0.001) and recalled.options.mask


def test_the_choice_in_the_panels_words():
    assert SPLIT_AT_1_MM.words() == ["Irregular stacks: harden", "Slice spacing: 1 mm", "Gaps: split"]
    keep = SeriesChoice("transform", ConvertOptions(tilt="keep", include_localizers=True, keep_together=["line"]))
    assert keep.words() == ["Irregular stacks: acquisition transform", "Gantry tilt: keep", "Include localizers",
                            "Keep together: line"]


@pytest.mark.parametrize(
    "stored, reason",
    [
        ("{not json", "Expecting property name"),
        ("[1, 2]", "not a JSON object but list"),
        ('{"version": 0, "gaps": "split"}', "stored in format 0, this version reads 1"),
        ('{"version": 1, "gaps": "split", "stacks": "merge"}', "options this version does not know: stacks"),
        ('{"version": 1, "gaps": "sideways"}', "gap policy must be one of interpolate, blank, split; got 'sideways'"),
        ('{"version": 1, "spacing": -1}', "slice spacing must be a positive number of mm; got -1"),
        ('{"version": 1, "load_mode": "fast"}', "load mode must be one of transform, harden; got 'fast'"),
        ('{"version": 1, "include_localizers": "yes"}', "include_localizers must be True or False; got 'yes'"),
        ('{"version": 1, "keep_together": ["size"]}', "stack split must be one of image-type, storage, line; got 'size'"),
    ],
)
def test_a_bad_or_outdated_stored_value_says_why_and_the_defaults_apply(write_phantom, stored, reason):
    folder = write_phantom("missing_slices")
    series, plain = _examine(folder, MemorySettings())
    settings = MemorySettings()
    settings.setValue(SETTINGS_PREFIX + series.series_instance_uid, stored)
    recalled = recall(settings, series.series_instance_uid, DEFAULTS)
    assert recalled.choice is None
    assert recalled.problem.startswith("The options remembered for this series were not used (")
    assert reason in recalled.problem and "loading with the defaults" in recalled.problem

    _series, examined = _examine(folder, settings)
    assert examined.choice == DEFAULTS and examined.remembered == recalled
    assert [o.name for o in examined.offers] == [o.name for o in plain.offers]
    assert all(o.warning.endswith(recalled.problem) and recalled.problem in o.tooltip for o in examined.offers)


# --- applied by the examine decisions, and when loaded -----------------------------------------


def test_a_remembered_choice_changes_what_is_offered_and_the_name_says_so(write_phantom):
    folder = write_phantom("missing_slices")
    settings = MemorySettings()
    series, examined = _examine(folder, settings)
    (before,) = examined.offers
    assert [p.action for p in before.parts] == ["transform"] and "your options" not in before.name

    remember(settings, series.series_instance_uid, SPLIT_AT_1_MM)
    _series, examined = _examine(folder, settings)
    (offer,) = examined.offers
    (spec,) = offer.parts
    assert examined.choice == SPLIT_AT_1_MM
    assert spec.action == "harden" and spec.spacing_mm == 1.0
    assert offer.name == ("1: series — 2 gaps, harden at 1 mm "
                          "(your options: Irregular stacks: harden; Slice spacing: 1 mm; Gaps: split)")
    assert offer.tooltip.endswith("Loaded with the options remembered for this series: Irregular stacks: harden; "
                                  "Slice spacing: 1 mm; Gaps: split. Change or forget them in the Irregular Series module.")
    assert offer.warning == before.warning
    # A choice made in the module panel, not remembered: the same loadable, no note.
    (chosen,) = examine_with(series, "1: series", SPLIT_AT_1_MM).offers
    assert chosen.parts == offer.parts and chosen.name == "1: series — 2 gaps, harden at 1 mm"


def test_a_remembered_gap_split_loads_one_volume_per_run(write_phantom, scene):
    folder = write_phantom("missing_slices")  # instances 9 and 16-17 missing: 3 runs
    settings = MemorySettings()
    series, _examined = _examine(folder, settings)
    remember(settings, series.series_instance_uid, SPLIT_AT_1_MM)
    nodes = _load(scene, *_examine(folder, settings))
    assert len(nodes) == 3
    assert [n.GetImageData().GetDimensions()[2] for n in nodes] == [15, 11, 13]  # 8, 6, 7 slices 2 mm apart at 1 mm
    assert all(n.GetSpacing()[2] == pytest.approx(1.0) for n in nodes)
    assert len({n.GetAttribute(mrml.PART_ATTRIBUTE) for n in nodes}) == 3
    assert all(json.loads(n.GetAttribute(mrml.OPTIONS_ATTRIBUTE))["gaps"] == "split" for n in nodes)

    forget(settings, series.series_instance_uid)
    (raw,) = _load(scene, *_examine(folder, settings))  # the defaults: one volume, acquisition transform
    assert raw.GetParentTransformNode().GetAttribute(mrml.ACQUISITION_TRANSFORM_ATTRIBUTE) == "1"


def test_remembered_localizers_are_selected_next_to_the_volume(write_phantom, scene):
    folder = write_phantom("localizer_inside_siemens")
    settings = MemorySettings()
    series, examined = _examine(folder, settings)
    volume, localizer = examined.offers
    assert volume.selected and not localizer.selected and localizer.confidence == CONFIDENCE_ALTERNATIVE

    remember(settings, series.series_instance_uid, SeriesChoice("transform", ConvertOptions(include_localizers=True)))
    series, examined = _examine(folder, settings)
    volume, localizer = examined.offers
    # The browser loads every loadable of a series whose confidence is the highest offered.
    assert volume.selected and localizer.selected and localizer.confidence == volume.confidence
    assert "localizer (excluded from volume)" in localizer.name and "Include localizers" in localizer.name
    assert [n.GetImageData().GetDimensions()[2] for n in _load(scene, series, examined)] == [20, 1]


def test_a_remembered_keep_together_regroups_that_series_only(write_phantom, tmp_path):
    blocks, regular = write_phantom("parallel_offset_blocks"), write_phantom("regular")
    settings = MemorySettings()
    series, examined = _examine(blocks, settings)
    assert len(examined.offers) == 2  # two stacks, on lines 60 mm apart
    remember(settings, series.series_instance_uid, SeriesChoice("harden", ConvertOptions(keep_together=["line"])))
    remember(settings, "another series", SeriesChoice("harden", ConvertOptions(keep_together=["storage"])))

    headers = scan([blocks, regular], workers=1)
    (merged, merged_offers), (plain, plain_offers) = examine_headers(
        headers.slices, headers.excluded, lambda uid: "series", settings, DEFAULTS)
    assert [s.slice_count for s in merged.stacks] == [20]
    assert "20 images kept in one stack despite positions on different lines (2 groups), as chosen" in \
        merged.stacks[0].reasons
    (offer,) = merged_offers.offers
    assert "slices off one line" in offer.name and offer.name.endswith("Keep together: line)")
    assert plain_offers.choice == DEFAULTS and [s.slice_count for s in plain.stacks] == [20]
