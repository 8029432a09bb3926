"""The analysis of the real public DICOM sets, against the values their README gives.

The data is read from $IRREGULAR_SERIES_REALDATA (default ../shared/realdata); every test skips,
saying so, when it is absent. Multi-frame sets are in test_multiframe.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from irregular_series import analyze
from irregular_series.model import Analysis, SeriesAnalysis, Stack
from irregular_series.orientation import plane_name


@pytest.fixture(scope="module")
def inspect(realdata: Path):
    """``inspect("set/sub/folder")``: the analysis of that folder, computed once per module."""
    cache: dict[str, Analysis] = {}

    def run(relative: str) -> Analysis:
        folder = realdata / relative
        if not folder.is_dir():
            pytest.skip(f"{folder} is not in this copy of the real data")
        if relative not in cache:
            cache[relative] = analyze([folder], workers=1)
        return cache[relative]

    return run


def _one_series(analysis: Analysis) -> SeriesAnalysis:
    (series,) = analysis.series
    return series


def _kinds(stack: Stack) -> set[str]:
    return {i.kind for i in stack.geometry.irregularities}


def _irregularity(stack: Stack, kind: str):
    (found,) = [i for i in stack.geometry.irregularities if i.kind == kind]
    return found


def test_ge_tilted_ct_with_variable_spacing(inspect):
    analysis = inspect("ct_tilt_varspacing_ge")
    (stack,) = _one_series(analysis).stacks
    g = stack.geometry
    assert (stack.role, stack.slice_count) == ("volume", 28)
    assert g.tilt_deg == pytest.approx(18.50, abs=0.05)
    assert g.tilt_tag_deg == 18.5
    assert _irregularity(stack, "gantry_tilt").message == "gantry tilt 18.50° from geometry; tag says 18.5"
    runs = _irregularity(stack, "variable_spacing").details.runs
    assert [r.count for r in runs] == [13, 1, 13]
    assert [r.step_mm for r in runs] == pytest.approx([4.0, 1.08, 7.0], abs=0.01)
    assert "missing_slices" not in _kinds(stack) and not g.regular
    # Only the LICENSE and SOURCE texts are left out.
    assert sorted(Path(e.path).name for e in analysis.excluded) == ["LICENSE.dcm_qa_ct.txt", "SOURCE.txt"]
    assert all("not a DICOM file" in e.reason for e in analysis.excluded)


def test_philips_tilted_ct_its_localizer_and_survey(inspect):
    analysis = inspect("ct_tilt_localizer_philips")
    by_number = {s.series_number: s for s in analysis.series}
    assert sorted(by_number) == [100, 301, 401]

    (localizer,) = by_number[100].stacks
    assert (localizer.role, localizer.slice_count) == ("localizer", 1)

    (volume,) = by_number[301].stacks
    g = volume.geometry
    assert (volume.role, volume.slice_count) == ("volume", 58)
    assert g.tilt_deg == pytest.approx(16.5, abs=0.05) and g.tilt_tag_deg == 16.5
    assert g.regular and g.spacing.median == pytest.approx(2.40, abs=0.01)
    # SliceThickness = SpacingBetweenSlices = 2.5 is the table step: 2.5 cos 16.5° along the normal.
    assert _irregularity(volume, "nominal_mismatch").details.along_table is True

    survey = by_number[401]
    (surview,) = survey.stacks
    assert (surview.role, surview.slice_count) == ("localizer", 2)
    assert "REF_SURVIEW" in surview.reasons[-1]
    assert sorted(Path(e.path).name for e in survey.excluded) == ["I30", "I40", "I50"]
    assert all("cannot be placed in space" in e.reason for e in survey.excluded)


def test_ge_three_plane_localizer(inspect):
    series = _one_series(inspect("mr_3plane_localizer_ge/01_3_Plane_Localizer_FF"))
    assert [(s.role, s.slice_count) for s in series.stacks] == [("localizer", 7)] * 3
    assert {plane_name(s.geometry.normal) for s in series.stacks} == {"axial", "coronal", "sagittal"}
    for stack in series.stacks:
        assert stack.geometry.positions_mm == pytest.approx([-45, -30, -15, 0, 15, 30, 45], abs=0.01)


def test_fmri_is_five_volumes(inspect):
    series = _one_series(inspect("mr_3plane_localizer_ge/02_Ax_fMRI_FF_I11.1_S15.9"))
    assert [(s.role, s.slice_count) for s in series.stacks] == [("volume", 10)] * 5
    for stack in series.stacks:
        assert stack.geometry.regular and stack.geometry.spacing.median == pytest.approx(3.0, abs=0.01)
        assert stack.geometry.positions_mm[0] == pytest.approx(-11.1, abs=0.01)
    assert {len({s.sop_instance_uid for st in series.stacks for s in st.slices})} == {50}


def test_gap_between_acquisitions(inspect):
    (stack,) = _one_series(inspect("dicom2nifti_edgecases/failing/sliceincrement/001")).stacks
    missing = _irregularity(stack, "missing_slices")
    assert missing.details.gap_mm == pytest.approx(10.0, abs=0.01)
    assert missing.details.missing_count == 1 and missing.after_index == 2


def test_tilted_ct_with_a_missing_instance(inspect):
    (stack,) = _one_series(inspect("dicom2nifti_edgecases/failing/sliceincrement/002")).stacks
    assert stack.geometry.tilt_deg == pytest.approx(15.5, abs=0.05)
    assert stack.geometry.tilt_tag_deg is None
    missing = _irregularity(stack, "missing_slices")
    assert missing.details.instance_numbers == (4,) and missing.details.missing_count == 1


def test_ct_tilt_without_a_tag(inspect):
    (stack,) = _one_series(inspect("dicom2nifti_edgecases/failing/gantrytilting/001")).stacks
    assert stack.geometry.tilt_deg == pytest.approx(14.0, abs=0.05)
    assert stack.geometry.spacing.median == pytest.approx(4.85, abs=0.01)
    assert "no GantryDetectorTilt tag" in _irregularity(stack, "gantry_tilt").message


def test_two_orientations_in_one_series(inspect):
    series = _one_series(inspect("dicom2nifti_edgecases/failing/sliceorientation/001"))
    assert [s.slice_count for s in series.stacks] == [2, 2]
    assert all("orientation" in s.reasons[0] and "kept apart" in s.reasons[0] for s in series.stacks)


def test_all_at_one_position_is_not_a_volume(inspect):
    (stack,) = _one_series(inspect("dicom2nifti_edgecases/failing/notavolume/001")).stacks
    assert stack.role == "other" and stack.slice_count == 4
    assert stack.geometry.positions_mm == pytest.approx([61.5] * 4, abs=0.01)


def test_compressed_copies_are_used_once(inspect):
    # generic/ holds the four compressed copies of one series, and one anatomical series.
    copies = next(s for s in inspect("dicom2nifti_edgecases/generic").series if s.excluded)
    assert len(copies.excluded) == 12
    (stack,) = copies.stacks
    assert stack.slice_count == 4 and stack.geometry.regular
    assert all("same SOP Instance UID" in e.reason for e in copies.excluded)
    assert len({s.sop_instance_uid for s in stack.slices}) == 4


def test_pydicom_scout_with_two_localizers(inspect):
    series = _one_series(inspect("pydicom_small/dicomdirtests/98892001/CT2N"))
    assert [(s.role, s.slice_count) for s in series.stacks] == [("localizer", 1)] * 2
    assert {plane_name(s.geometry.normal) for s in series.stacks} == {"sagittal", "coronal"}


def test_projections_are_other(inspect):
    series = _one_series(inspect("pydicom_small/dicomdirtests/98892003/MR700"))
    assert [(s.role, s.slice_count) for s in series.stacks] == [("other", 1)] * 7
    assert all("projection" in s.reasons[-1] for s in series.stacks)


def test_every_stack_of_every_set_has_a_role_and_reasons(inspect, realdata):
    for folder in sorted(p.name for p in realdata.iterdir() if p.is_dir()):
        for series in inspect(folder).series:
            for stack in series.stacks:
                assert stack.role in ("volume", "localizer", "other") and stack.reasons, (folder, stack.id)
