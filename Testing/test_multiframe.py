"""Enhanced (multi-frame) objects: every frame is a slice, read from the per-frame and shared
functional groups, and goes through the same grouping and geometry as single-frame files.

Phantoms first (frame order, stacks, orientations, repeated positions, tilt), then the same series
written both ways must give the same stacks, then the real Enhanced MR/CT sets.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from irregular_series import analyze
from irregular_series.model import SeriesAnalysis, Stack
from irregular_series.report import analysis_to_dict
from irregular_series.testing.synthetic import write_series

import phantoms


def _analyse(folder: Path) -> SeriesAnalysis:
    (series,) = analyze([folder]).series
    return series


def _kinds(stack: Stack) -> set[str]:
    return {i.kind for i in stack.geometry.irregularities}


# --- phantoms ----------------------------------------------------------------------------------


def test_frame_order_is_not_spatial_order(write_phantom):
    phantom = phantoms.mf_shuffled()
    (stack,) = _analyse(write_phantom(phantom)).stacks
    assert stack.geometry.positions_mm == pytest.approx(list(phantom.truth.positions_mm))
    assert sorted(s.frame for s in stack.slices) == list(range(20))
    assert [s.frame for s in stack.slices] != list(range(20))
    # One object: frames share the instance number, so they give no acquisition order.
    assert stack.geometry.regular and stack.geometry.irregularities == [] and stack.geometry.sections == []


def test_stacks_of_one_object_split_by_stack_id(tmp_path):
    """Two StackIDs with the same orientation and positions (two reconstructions in one object)."""
    first = phantoms._stack(8, 2.0, size=16, stack_id="1")
    second = phantoms._stack(8, 2.0, size=16, stack_id="2", first_instance=9)
    write_series(phantoms._series("two stack ids", first + second), tmp_path, multiframe=True)
    series = _analyse(tmp_path)
    assert [s.slice_count for s in series.stacks] == [8, 8]
    assert {s.slices[0].stack_id for s in series.stacks} == {"1", "2"}
    assert "8 images in multi-frame stack 2 (StackID), kept apart from 8 images in multi-frame stack 1 (StackID)" in {
        r for s in series.stacks for r in s.reasons}
    assert all(s.geometry.regular for s in series.stacks)


def test_orientations_of_one_object(write_phantom):
    series = _analyse(write_phantom("mf_two_stacks"))
    assert [(s.role, s.slice_count) for s in series.stacks] == [("volume", 12)] * 2
    assert all("orientation" in s.reasons[0] for s in series.stacks)


def test_time_points_of_one_object(write_phantom):
    series = _analyse(write_phantom("mf_time_points"))
    assert [s.slice_count for s in series.stacks] == [8] * 4
    for k, stack in enumerate(series.stacks):
        assert {s.temporal_position for s in stack.slices} == {k + 1}
        assert stack.reasons[0] == (f"8 images with time point {k + 1}: one of 4 volumes at the same 8 positions, "
                                    "told apart by time point")


def test_magnitude_and_phase_of_one_object(write_phantom):
    series = _analyse(write_phantom("mf_mr_magnitude_phase"))
    assert [s.slice_count for s in series.stacks] == [10, 10]
    assert [{s.complex_component for s in st.slices} for st in series.stacks] == [{"MAGNITUDE"}, {"PHASE"}]
    # Phase frames carry their own rescale, read per frame.
    assert {s.rescale_slope for s in series.stacks[1].slices} == {2.0}


def test_irregular_spacing_and_per_frame_rescale(write_phantom):
    phantom = phantoms.mf_irregular()
    (stack,) = _analyse(write_phantom(phantom)).stacks
    runs = [i for i in stack.geometry.irregularities if i.kind == "variable_spacing"][0].details.runs
    assert [(r.count, r.step_mm) for r in runs] == [(7, 4.0), (8, 7.0)]
    by_frame = {s.frame: s for s in stack.slices}
    assert [(by_frame[k].rescale_slope, by_frame[k].rescale_intercept) for k in range(16)] == [
        (s.rescale_slope, s.rescale_intercept) for s in phantom.series.slices]


def test_tilted_frames_and_their_tilt_tag(write_phantom):
    (stack,) = _analyse(write_phantom("mf_tilted")).stacks
    assert stack.geometry.tilt_deg == pytest.approx(18.5, abs=1e-3)
    assert stack.geometry.tilt_tag_deg == 18.5  # from CTAcquisitionDetailsSequence, per frame


def test_report_names_each_frame(write_phantom):
    folder = write_phantom("mf_regular")
    (stack,) = analysis_to_dict(analyze([folder]))["series"][0]["stacks"]
    (path,) = {f["path"] for f in stack["files"]}
    frames = [f["frame"] for f in stack["files"]]
    assert sorted(frames) == list(range(20)) and Path(path).parent == folder


@pytest.mark.parametrize(
    "case",
    [
        "regular", "missing_slices", "variable_spacing", "gantry_tilt", "tilt_with_missing", "stitched_sections",
        "two_orientations", "repeated_positions_temporal", "repeated_positions_untagged", "duplicate_positions",
        "parallel_offset_blocks", "all_one_position",
    ],
)
def test_single_and_multi_frame_versions_give_the_same_stacks(tmp_path, case):
    phantom = phantoms.CASES[case]()
    phantom.write(tmp_path / "single")
    dataclasses.replace(phantom, multiframe=True).write(tmp_path / "multi")
    single, multi = _analyse(tmp_path / "single"), _analyse(tmp_path / "multi")
    assert len(single.stacks) == len(multi.stacks)
    for a, b in zip(single.stacks, multi.stacks):
        assert (a.role, a.slice_count) == (b.role, b.slice_count)
        ga, gb = a.geometry, b.geometry
        assert np.allclose(ga.positions_mm, gb.positions_mm) and np.allclose(ga.normal, gb.normal)
        assert (ga.regular, ga.tilt_tag_deg, len(ga.sections)) == (gb.regular, gb.tilt_tag_deg, len(gb.sections))
        assert ga.tilt_deg == pytest.approx(gb.tilt_deg)
        assert ga.spacing == gb.spacing
        # Instance numbers are the single-frame files' own evidence (numbering order); frames of one
        # object share theirs, so only what they say about the numbering may differ.
        assert _kinds(a) - {"instance_order"} == _kinds(b)
        assert [s.sop_instance_uid for s in a.slices] != []  # sanity: slices are real


# --- real Enhanced MR / CT -------------------------------------------------------------------


@pytest.fixture(scope="module")
def enhanced(realdata: Path):
    def run(relative: str):
        folder = realdata / relative
        if not folder.exists():
            pytest.skip(f"{folder} is not in this copy of the real data")
        return analyze([folder], workers=1)

    return run


def test_siemens_xa30_t1_96_frames(enhanced):
    (series,) = enhanced("mr_enhanced_multiframe/xa30/5_anat-T1w_acq-tfl").series
    (stack,) = series.stacks
    g = stack.geometry
    assert (stack.role, stack.slice_count) == ("volume", 96)
    assert sorted(s.frame for s in stack.slices) == list(range(96))
    assert g.regular and g.spacing.median == pytest.approx(2.0, abs=1e-3) and g.spacing.nominal == 2.0
    assert g.positions_mm[0] == pytest.approx(-89.58, abs=0.01) and g.positions_mm[-1] == pytest.approx(100.42, abs=0.01)


def test_philips_fieldmap_four_volumes_and_its_raw_data(enhanced):
    analysis = enhanced("mr_enhanced_multiframe/philips_enh")
    (series,) = analysis.series
    assert [(s.role, s.slice_count) for s in series.stacks] == [("volume", 53)] * 4
    assert sum(s.slice_count for s in series.stacks) == 212
    assert {(s.slices[0].echo_time_ms, s.slices[0].complex_component) for s in series.stacks} == {
        (2.3, "MAGNITUDE"), (2.3, "PHASE"), (4.6, "MAGNITUDE"), (4.6, "PHASE")}
    for stack in series.stacks:
        assert stack.geometry.regular and stack.geometry.spacing.median == pytest.approx(3.0, abs=1e-3)
        assert stack.geometry.positions_mm[0] == pytest.approx(-47.75, abs=0.01)
    # The Raw Data object shares the series UID: it is left out of that series, with its reason.
    (raw,) = series.excluded
    assert raw.path.endswith("_Raw.dcm") and "Raw Data Storage" in raw.reason


def test_siemens_xa30_fieldmap_two_objects_of_33_frames(enhanced):
    (series,) = enhanced("mr_enhanced_multiframe/xa30/8_gre_field_mapping").series
    assert [(s.role, s.slice_count) for s in series.stacks] == [("volume", 33)] * 2
    for stack in series.stacks:
        assert len({s.path for s in stack.slices}) == 1  # one echo per object
        g = stack.geometry
        assert g.regular and g.sections == [] and g.spacing.median == pytest.approx(3.4, abs=0.01)


def test_enhanced_ct_two_frames(enhanced):
    analysis = enhanced("pydicom_small/enhanced")
    (series,) = analysis.series
    (stack,) = series.stacks
    assert (stack.role, stack.slice_count) == ("volume", 2)
    assert np.diff(stack.geometry.positions_mm) == pytest.approx([10.0])


def test_enhanced_mr_without_functional_groups_is_left_out(enhanced):
    analysis = enhanced("pydicom_small/enhanced")
    (emri,) = [e for e in analysis.excluded if e.path.endswith("emri_small.dcm")]
    assert "no per-frame functional groups" in emri.reason and "cannot be placed in space" in emri.reason


def test_real_multiframe_reports_are_valid_json(enhanced):
    document = analysis_to_dict(enhanced("mr_enhanced_multiframe"))
    assert json.loads(json.dumps(document, allow_nan=False)) == document
