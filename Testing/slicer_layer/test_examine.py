"""What the Slicer DICOM plugin offers per series: loadables, names, confidence, selection.

Slicer's scalar-volume plugin offers 0.5 and the browser loads whatever has the highest confidence,
so the decisive property is: above 0.5 exactly when the series holds something that plugin gets
wrong or only warns about, below 0.5 for a plain series. Phantoms are real DICOM files written
with pydicom (``phantoms.py``); the real-data cases read ``IRREGULAR_SERIES_REALDATA``.
"""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from irregular_series import analyze
from irregular_series.model import SeriesAnalysis
from irregular_series.options import ConvertOptions
from irregular_series.slicer.examine import (
    CONFIDENCE_CORRECTS,
    CONFIDENCE_PLAIN,
    LoadableSpec,
    examine_series,
    offers,
    slicer_series_name,
    spacing_presets,
)
from irregular_series.spacing import choose_spacing
from irregular_series.testing.synthetic import write_series
from irregular_series.tolerances import Tolerances

import phantoms

SCALAR_VOLUME_PLUGIN_CONFIDENCE = 0.5


def _series(folder: Path) -> SeriesAnalysis:
    analysis = analyze([folder])
    assert len(analysis.series) == 1
    return analysis.series[0]


def _examine(folder: Path, **kwargs) -> tuple[SeriesAnalysis, list[LoadableSpec]]:
    series = _series(folder)
    return series, examine_series(series, slicer_series_name(series), **kwargs)


def _ours_win(specs: list[LoadableSpec]) -> bool:
    """Whether Slicer's browser would pick our loadables over the scalar-volume plugin's."""
    return max(s.confidence for s in specs) > SCALAR_VOLUME_PLUGIN_CONFIDENCE


def _z_of(path: str) -> float:
    return float(pydicom.dcmread(path, stop_before_pixels=True).ImagePositionPatient[2])


# --- plain series stay with Slicer's own plugin ----------------------------------------------


def test_regular_series_is_left_to_the_scalar_volume_plugin(write_phantom):
    folder = write_phantom("regular")
    series, specs = _examine(folder)
    (spec,) = specs
    assert spec.confidence == CONFIDENCE_PLAIN < SCALAR_VOLUME_PLUGIN_CONFIDENCE
    assert spec.selected and spec.action == "load" and spec.role == "volume" and spec.spacing_mm is None
    assert spec.name == spec.node_name == "1: regular"  # plain series keep Slicer's node name
    assert spec.warning == ""
    assert "Loading keeps the images as acquired" in spec.tooltip
    # every file, in spatial order (the phantom's file names are shuffled)
    assert sorted(spec.files) == sorted(str(p) for p in folder.iterdir())
    assert [_z_of(f) for f in spec.files] == sorted(_z_of(f) for f in spec.files)


# --- irregular stacks: we win, and say what we found and what loading does -------------------


@pytest.mark.parametrize(
    "case, found",
    [
        ("missing_slices", "2 gaps"),
        ("variable_spacing", "spacing 4–7 mm"),
        ("gantry_tilt", "tilt 18.5°"),
        ("tilt_with_missing", "1 gap, tilt 15.5°"),
        ("stitched_sections", "3 sections stitched"),
        ("duplicate_positions", "repeated positions"),
    ],
)
def test_irregular_stack_is_hardened_at_the_chosen_spacing(write_phantom, case, found):
    series, specs = _examine(write_phantom(case))
    (spec,) = specs
    stack = next(s for s in series.stacks if s.id == spec.stack_id)
    chosen = choose_spacing(stack, "auto")
    spacing_mm, reason = chosen.value_mm, chosen.reason
    assert spec.confidence == CONFIDENCE_CORRECTS and _ours_win(specs)
    assert spec.selected and spec.action == "harden" and spec.spacing_mm == spacing_mm
    assert spec.name == f"1: {case.replace('_', ' ')} — {found}, harden at {spacing_mm:.4g} mm"
    assert spec.node_name == f"1: {case.replace('_', ' ')}"
    assert reason in spec.tooltip
    for irregularity in stack.geometry.irregularities:
        assert irregularity.message in spec.tooltip


def test_transform_mode_keeps_slices_under_an_acquisition_transform(write_phantom):
    (spec,) = _examine(write_phantom("missing_slices"), load_mode="transform")[1]
    assert spec.action == "transform" and spec.spacing_mm is None
    assert spec.name == "1: missing slices — 2 gaps, acquisition transform"
    assert "acquisition transform that puts every slice at its DICOM position" in spec.tooltip


def test_repeated_positions_are_hardened_even_in_transform_mode(write_phantom):
    # Two slices at one position fold a grid transform: it has no inverse, nothing can display it.
    (spec,) = _examine(write_phantom("duplicate_positions"), load_mode="transform")[1]
    assert spec.action == "harden" and spec.spacing_mm is not None
    assert "cannot be kept under an acquisition transform" in spec.tooltip


def test_missing_slices_are_a_warning(write_phantom):
    series, specs = _examine(write_phantom("missing_slices"))
    messages = [i.message for i in series.stacks[0].geometry.irregularities if i.kind == "missing_slices"]
    assert messages and all(m in specs[0].warning for m in messages)


def test_requested_spacing_is_used(write_phantom):
    (spec,) = _examine(write_phantom("stitched_sections"), options=ConvertOptions(spacing=0.5))[1]
    assert spec.spacing_mm == 0.5 and spec.name.endswith("harden at 0.5 mm")
    assert "0.5 mm as requested" in spec.tooltip


# --- localizers: a separate loadable, never loaded by default --------------------------------


@pytest.mark.parametrize(
    "case, localizers",
    [("localizer_inside_siemens", 1), ("two_localizers", 2), ("localizer_sorts_first", 1), ("unflagged_localizer", 1)],
)
def test_localizer_is_offered_apart_and_unselected(write_phantom, case, localizers):
    folder = write_phantom(case)
    series, specs = _examine(folder)
    volume, *others = specs
    assert volume.role == "volume" and volume.selected and volume.action == "load"
    assert volume.confidence == CONFIDENCE_CORRECTS and _ours_win(specs)
    label = slicer_series_name(series)
    plural = "image" if localizers == 1 else "images"
    assert volume.name == f"{label} — {localizers} localizer {plural} left out"
    assert len(others) == localizers
    for other in others:
        assert other.role == "localizer" and not other.selected
        assert other.confidence < volume.confidence
        assert other.name.startswith(f"{label} — localizer") and other.name.endswith("(excluded from volume)")
        assert other.node_name == other.name.removesuffix(" (excluded from volume)")
        assert not set(other.files) & set(volume.files)
    assert sorted(f for s in specs for f in s.files) == sorted(str(p) for p in folder.iterdir())


def test_localizer_only_series_stays_plain(write_phantom):
    # Three 7-image stacks of a 3-plane localizer: Slicer's own plugin splits them by orientation
    # too. Whatever role they get, each is offered and selected.
    specs = _examine(write_phantom("ge_three_plane_localizer"))[1]
    assert len(specs) == 3 and all(s.selected for s in specs)
    assert len({s.name for s in specs}) == 3


# --- several volumes in one series ------------------------------------------------------------


@pytest.mark.parametrize(
    "case, volumes",
    [("two_orientations", 2), ("repeated_positions_temporal", 5), ("repeated_positions_untagged", 5),
     ("echoes", 2), ("mf_two_stacks", 2)],
)
def test_several_volumes_are_each_offered_and_selected(write_phantom, case, volumes):
    specs = _examine(write_phantom(case))[1]
    assert len(specs) == volumes
    assert all(s.role == "volume" and s.selected and s.confidence == CONFIDENCE_CORRECTS for s in specs)
    assert len({s.name for s in specs}) == volumes
    assert all(f"volume {k} of {volumes}" in s.name for k, s in enumerate(specs, start=1))
    # "<series> — volume k of n", then the stack's name where it has one ("echo number 2")
    assert [s.node_name.split(", ")[0] for s in specs] == [
        f"{specs[0].node_name.split(' — ')[0]} — volume {k} of {volumes}" for k in range(1, volumes + 1)]
    files = [f for s in specs for f in s.files]
    assert len(files) == len(set(files)) or case.startswith("mf_")  # one multi-frame file holds every stack


def test_multiframe_object_wins(write_phantom):
    folder = write_phantom("mf_regular")
    (spec,) = _examine(folder)[1]
    assert spec.confidence == CONFIDENCE_CORRECTS and spec.action == "load"
    assert "multi-frame" in spec.name
    assert spec.files == tuple(str(p) for p in folder.iterdir())  # the one file, once


def test_series_name_follows_slicer():
    series = SeriesAnalysis("1.2.3", 7, "", "CT", [], [])
    assert slicer_series_name(series) == "7: Unnamed Series"
    series.series_description = "HEAD"
    series.series_number = None
    assert slicer_series_name(series) == "HEAD"


# --- real data --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "subfolder, expected",
    [
        ("ct_tilt_varspacing_ge", ["spacing 1.08–7 mm", "tilt 18.5°", "harden at"]),
        ("ct_tilt_localizer_philips/S3010", ["tilt 16.5°", "harden at"]),
        ("dicom2nifti_edgecases/failing/sliceincrement/001", ["1 gap", "harden at"]),
        ("dicom2nifti_edgecases/failing/sliceincrement/002", ["1 gap", "tilt 15.5°", "harden at"]),
    ],
)
def test_real_irregular_series_win(realdata, subfolder, expected):
    folder = realdata / subfolder
    if not folder.is_dir():
        pytest.skip(f"{folder} not in the real data set")
    specs = _examine(folder)[1]
    volume = specs[0]
    assert volume.confidence == CONFIDENCE_CORRECTS and volume.selected and volume.action == "harden"
    for phrase in expected:
        assert phrase in volume.name


@pytest.mark.parametrize("subfolder", ["ct_tilt_localizer_philips/S1000", "dicom2nifti_edgecases/generic/anatomical"])
def test_real_plain_series_stay_with_slicer(realdata, subfolder):
    folder = realdata / subfolder
    if not folder.is_dir():
        pytest.skip(f"{folder} not in the real data set")
    for series in analyze([folder]).series:
        specs = examine_series(series, slicer_series_name(series))
        assert not _ours_win(specs), [s.name for s in specs]


def test_real_fmri_volumes_are_split_and_selected(realdata):
    folder = realdata / "mr_3plane_localizer_ge" / "02_Ax_fMRI_FF_I11.1_S15.9"
    if not folder.is_dir():
        pytest.skip(f"{folder} not in the real data set")
    specs = _examine(folder)[1]
    assert len(specs) == 5 and all(s.selected and s.confidence == CONFIDENCE_CORRECTS for s in specs)
    assert all(len(s.files) == 10 for s in specs)


def test_spacing_presets_show_their_values(tmp_path):
    from irregular_series.testing.synthetic import write_demo

    write_demo(tmp_path)
    series = _series(tmp_path)
    volume = next(s for s in series.stacks if s.role == "volume")
    text = spacing_presets(volume)
    assert text.startswith("auto = nominal 0.6 mm")
    assert "nominal 0.6 mm" in text and "median 0.6 mm" in text and "smallest 0.3 mm" in text


def test_spacing_presets_of_one_slice_without_a_nominal_spacing(tmp_path):
    """The auto value's source comes from the spacing record, not from parsing its sentence (which
    showed "auto = 1 1 mm" here)."""
    slices = phantoms._stack(1, 2.0, slice_thickness_mm=None, spacing_between_slices_mm=None)
    write_series(phantoms._series("one slice", slices), tmp_path)
    (stack,) = _series(tmp_path).stacks
    assert stack.slice_count == 1 and spacing_presets(stack) == "auto = 1 mm"
    chosen = choose_spacing(stack, "auto")
    assert (chosen.value_mm, chosen.rule, chosen.source) == (1.0, "auto", "single_slice_default")


def test_the_users_tolerances_choose_the_spacing(tmp_path):
    """Steps of 2.53 mm under a nominal 2.5 mm: the nominal spacing within the default 0.05 mm, the
    measured step (of the finest run) when the user allows only 0.01 mm (examine used to ignore the
    user's tolerances)."""
    positions = [round(2.53 * k, 6) for k in range(12) if k != 6]  # one slice missing: hardened
    slices = phantoms._slices_at(positions, slice_thickness_mm=2.5, spacing_between_slices_mm=2.5)
    write_series(phantoms._series("tolerance", slices), tmp_path)
    strict = Tolerances(nominal_mm=0.01)
    (stack,) = analyze([tmp_path], tolerances=strict).series[0].stacks
    assert spacing_presets(stack).startswith("auto = nominal 2.5 mm")
    assert spacing_presets(stack, strict).startswith("auto = finest run 2.53 mm")
    (spec,) = examine_series(analyze([tmp_path], tolerances=strict).series[0], "1: tolerance",
                            options=ConvertOptions(tolerances=strict))
    assert spec.action == "harden" and spec.spacing_mm == pytest.approx(2.53)


# --- what the browser is offered ---------------------------------------------------------------


def test_stacks_of_one_file_are_offered_together(write_phantom):
    """Slicer's browser keeps one selected loadable per plugin and set of files: the two stacks of
    one multi-frame object must come as one loadable, or the second would never be loaded."""
    series, specs = _examine(write_phantom("mf_two_stacks"))
    assert len(specs) == 2 and specs[0].files == specs[1].files
    (offer,) = offers(specs, slicer_series_name(series))
    assert offer.parts == tuple(specs) and offer.selected and offer.confidence == CONFIDENCE_CORRECTS
    assert offer.name.startswith(f"{slicer_series_name(series)} — 2 stacks of one file: volume 1 of 2")
    assert "volume 2 of 2" in offer.name


def test_other_stacks_keep_one_offer_each(write_phantom):
    series, specs = _examine(write_phantom("localizer_inside_siemens"))
    found = offers(specs, slicer_series_name(series))
    assert [o.parts for o in found] == [(s,) for s in specs]
    assert [(o.name, o.selected, o.confidence) for o in found] == [(s.name, s.selected, s.confidence) for s in specs]
