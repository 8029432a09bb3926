"""Stacks and geometry of the phantom catalogue: every case against its truth, then each grouping
and geometry rule on its own (split reasons, localizers, repeated positions, sections, gaps, tilt).

Files are written with shuffled names unless a test says otherwise, so nothing can depend on
file order.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from irregular_series import analyze
from irregular_series.conversion import convert
from irregular_series.geometry import analyze_geometry, slice_corners_lps
from irregular_series.headers import scan
from irregular_series.irregularities import NominalMismatch, Overlap
from irregular_series.model import SeriesAnalysis, Stack
from irregular_series.options import ConvertOptions
from irregular_series.orientation import plane_name
from irregular_series.testing.synthetic import SyntheticSlice, write_series
from irregular_series.tolerances import DEFAULT

import phantoms


def _analyse(folder) -> SeriesAnalysis:
    (series,) = analyze([folder]).series
    return series


def _volumes(series: SeriesAnalysis) -> list[Stack]:
    return [s for s in series.stacks if s.role == "volume"]


def _kinds(stack: Stack) -> set[str]:
    return {i.kind for i in stack.geometry.irregularities}


def _irregularity(stack: Stack, kind: str):
    (found,) = [i for i in stack.geometry.irregularities if i.kind == kind]
    return found


def _distinct(positions, tolerance: float = 1e-3) -> list[float]:
    out: list[float] = []
    for p in sorted(positions):
        if not out or p - out[-1] > tolerance:
            out.append(p)
    return out


# --- the catalogue ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(phantoms.CASES))
def test_case_matches_its_truth(write_phantom, case):
    phantom = phantoms.CASES[case]()
    truth = phantom.truth
    series = _analyse(write_phantom(phantom))
    stacks = series.stacks

    # Every stack has a role and readable reasons; slices in spatial order; geometry present.
    for stack in stacks:
        assert stack.role in ("volume", "localizer", "other")
        assert stack.reasons and all(len(r) > 10 for r in stack.reasons)
        assert np.all(np.diff(stack.geometry.positions_mm) >= -1e-9)
    if truth.stacks is not None:
        assert sorted((s.slice_count for s in stacks), reverse=True) == list(truth.stacks)
    if truth.localizers is not None:
        assert sum(s.slice_count for s in stacks if s.role == "localizer") == truth.localizers
    volumes = _volumes(series)
    first = volumes[0] if volumes else None
    if truth.positions_mm:
        # The first volume's positions; when the series has no volume, some stack's; when it is
        # split into parallel blocks, all volumes' together.
        found = [_distinct(s.geometry.positions_mm) for s in ([first] if first else stacks)]
        found.append(_distinct(p for s in volumes for p in s.geometry.positions_mm))
        assert any(len(p) == len(truth.positions_mm) and np.allclose(p, truth.positions_mm, atol=1e-3)
                   for p in found), found
    if truth.regular is not None:
        assert first.geometry.regular == truth.regular
    assert first is None or first.geometry.tilt_deg == pytest.approx(truth.tilt_deg, abs=0.05)
    reported = set().union(*(_kinds(s) for s in stacks))
    assert truth.irregularities <= reported
    if truth.missing_instance_numbers:
        holes = [n for i in first.geometry.irregularities if i.kind == "missing_slices"
                 for n in i.details.instance_numbers]
        assert sorted(holes) == list(truth.missing_instance_numbers)
    if truth.sections is not None:
        assert (len(first.geometry.sections) or 1) == truth.sections


def test_file_names_never_decide_the_order(tmp_path):
    """The same series written with names sorting by instance, by position, or shuffled."""
    phantom = phantoms.localizer_sorts_first()
    orders = []
    for names in ("instance", "position", "shuffled"):
        phantom.write(tmp_path / names, names=names)
        series = _analyse(tmp_path / names)
        orders.append([[s.sop_instance_uid for s in st.slices] for st in series.stacks])
    assert orders[0] == orders[1] == orders[2]


def test_instance_numbers_never_decide_the_order(tmp_path):
    """Instance numbers in random order: the stack still follows the positions, stays regular, and
    says that the numbering does not follow the positions."""
    base = phantoms.regular()
    numbers = np.random.default_rng(3).permutation(len(base.series.slices)) + 1
    slices = [dataclasses.replace(s, instance_number=int(n)) for s, n in zip(base.series.slices, numbers)]
    write_series(dataclasses.replace(base.series, slices=slices), tmp_path, names="instance")
    (stack,) = _analyse(tmp_path).stacks
    assert stack.geometry.positions_mm == pytest.approx(list(base.truth.positions_mm))
    assert stack.geometry.regular
    assert "instance_order" in _kinds(stack) and not stack.geometry.sections


# --- grouping: what is split off, and why ------------------------------------------------------


def test_split_reasons_say_what_was_split_off(write_phantom):
    series = _analyse(write_phantom("localizer_inside_siemens"))
    volume, localizer = series.stacks
    assert volume.reasons[0] == (
        "20 images with ImageType ORIGINAL\\PRIMARY\\AXIAL, kept apart from 1 image with ImageType "
        "ORIGINAL\\PRIMARY\\LOCALIZER"
    )
    assert localizer.reasons == [
        "1 image with ImageType ORIGINAL\\PRIMARY\\LOCALIZER, kept apart from 20 images with ImageType "
        "ORIGINAL\\PRIMARY\\AXIAL",
        "localizer: ImageType says LOCALIZER",
    ]
    assert volume.reasons[-1] == "volume: 20 images at 20 distinct positions along the normal"


def test_split_by_image_size(tmp_path):
    """Same orientation and positions, two matrix sizes (e.g. a reconstruction at two FOVs)."""
    big = phantoms._stack(12, 2.0, size=32, spacing_mm=1.0)
    small = phantoms._stack(12, 2.0, size=16, spacing_mm=2.0, first_instance=13)
    write_series(phantoms._series("sizes", big + small), tmp_path, names="shuffled")
    series = _analyse(tmp_path)
    assert sorted(s.slice_count for s in series.stacks) == [12, 12]
    assert {s.role for s in series.stacks} == {"volume"}
    reasons = {r for s in series.stacks for r in s.reasons}
    assert "12 images of 16x16 pixels of 2x2 mm, kept apart from 12 images of 32x32 pixels of 1x1 mm" in reasons


def test_parallel_offset_blocks_are_split_with_the_offset(write_phantom):
    series = _analyse(write_phantom("parallel_offset_blocks"))
    assert [s.slice_count for s in series.stacks] == [10, 10]
    assert all(s.geometry.regular and "non_collinear" not in _kinds(s) for s in series.stacks)
    assert any("60.0 mm off the main stack line" in r for r in series.stacks[1].reasons + series.stacks[0].reasons)


@pytest.mark.parametrize(
    "field, told_apart_by",
    [
        ({"temporal_position": 1}, "time point"),
        ({"acquisition_number": 1}, "acquisition number"),
        ({"trigger_time_ms": 100.0}, "trigger time"),
        ({"echo_number": 1}, "echo number"),
    ],
)
def test_repeated_positions_are_told_apart_by_tag(tmp_path, field, told_apart_by):
    ((name, first),) = field.items()
    slices = []
    for k in range(3):
        value = first * (k + 1)
        slices += phantoms._stack(6, 3.0, size=16, first_instance=1 + 6 * k, **{name: value})
    write_series(phantoms._series("repeats", slices), tmp_path, names="shuffled")
    series = _analyse(tmp_path)
    assert [s.slice_count for s in series.stacks] == [6, 6, 6]
    assert all(s.geometry.regular for s in series.stacks)
    assert all(f"told apart by {told_apart_by}" in s.reasons[0] for s in series.stacks)


def test_time_series_with_an_incomplete_last_volume(tmp_path):
    """An interrupted acquisition: 4 full time points of 8 positions, the 5th stopped after 5."""
    slices = []
    for t in range(5):
        slices += phantoms._stack(8 if t < 4 else 5, 3.0, size=16, first_instance=1 + 8 * t, temporal_position=t + 1)
    write_series(phantoms._series("interrupted", slices), tmp_path, names="shuffled")
    series = _analyse(tmp_path)
    assert [s.slice_count for s in series.stacks] == [8, 8, 8, 8, 5]
    assert [s.slices[0].temporal_position for s in series.stacks] == [1, 2, 3, 4, 5]
    assert all(s.geometry.regular for s in series.stacks)


def test_repeated_positions_by_instance_order_when_no_tag_differs(write_phantom):
    series = _analyse(write_phantom("repeated_positions_untagged"))
    assert [s.slice_count for s in series.stacks] == [8] * 5
    # Instance numbers are time-major: volume k holds instances 8k+1 … 8k+8.
    for k, stack in enumerate(series.stacks):
        assert sorted(s.instance_number for s in stack.slices) == list(range(8 * k + 1, 8 * k + 9))
        assert stack.reasons[0].startswith(f"volume {k + 1} of 5 at the same 8 positions, told apart by instance order")


def _untagged_time_series(missing: set[tuple[int, int]], *, position_major: bool = False) -> list[SyntheticSlice]:
    """5 time points x 8 positions 3 mm apart, no time tag; ``missing``: (time point, position) pairs
    left out. Instance numbers run volume after volume, or position after position."""
    slices = []
    for t in range(5):
        for p, s in enumerate(phantoms._stack(8, 3.0, size=16)):
            if (t, p) not in missing:
                number = 1 + (5 * p + t if position_major else 8 * t + p)
                slices.append(dataclasses.replace(s, instance_number=number))
    return slices


@pytest.mark.parametrize(("missing", "counts"), [({(2, 3)}, [8, 8, 7, 8, 8]),
                                                 ({(4, 5), (4, 6), (4, 7)}, [8, 8, 8, 8, 5])])
def test_untagged_time_series_with_a_missing_slice_is_still_split_by_instance_order(tmp_path, missing, counts):
    """Volume after volume, a position coming back starts the next volume: a volume lacking slices
    (one lost, or an interrupted last time point) keeps the rest instead of the whole series
    collapsing into one stack of duplicates."""
    write_series(phantoms._series("untagged_missing", _untagged_time_series(missing)), tmp_path)
    series = _analyse(tmp_path)
    by_first_instance = sorted(series.stacks, key=lambda s: min(x.instance_number for x in s.slices))
    assert [s.slice_count for s in by_first_instance] == counts
    assert all("told apart by instance order" in s.reasons[0] for s in series.stacks)
    if counts[2] == 7:
        assert any(i.kind == "missing_slices" for i in by_first_instance[2].geometry.irregularities)
        result = convert([tmp_path], tmp_path / "out", ConvertOptions(allow_output_in_input=True), progress=False)
        assert result.failures == [] and len(result.outputs) == 5
        gap = next(o for o in result.outputs if len(o.source_files) == 7)
        assert gap.interpolated and any(d.kind == "gaps_interpolated" for d in gap.decisions)


def test_untagged_repeats_numbered_position_after_position(tmp_path):
    """Instance numbers that run through every repetition of one position before the next: volume
    k is the k-th occurrence of each position when all occur equally often; with a slice lost there
    is no telling which volume lacks it, so the series stays one stack and its duplicates are said."""
    write_series(phantoms._series("position_major", _untagged_time_series(set(), position_major=True)),
                 tmp_path / "complete")
    assert [s.slice_count for s in _analyse(tmp_path / "complete").stacks] == [8] * 5
    write_series(phantoms._series("position_major", _untagged_time_series({(2, 3)}, position_major=True)),
                 tmp_path / "one_lost")
    (stack,) = _analyse(tmp_path / "one_lost").stacks
    assert any(i.kind == "duplicate_positions" for i in stack.geometry.irregularities)


def test_a_few_repeated_positions_are_duplicates_not_volumes(tmp_path):
    """Two acquisitions on the same grid overlapping by 3 positions: one stitched stack with
    duplicates, not two volumes (under Tolerances.repeated_fraction of the positions repeat)."""
    first = phantoms._stack(12, 1.0, acquisition_number=1, content_time="100000")
    second = phantoms._stack(12, 1.0, start_mm=9.0, first_instance=13, acquisition_number=2, content_time="101000")
    write_series(phantoms._series("overlap", first + second), tmp_path, names="shuffled")
    (stack,) = _analyse(tmp_path).stacks
    assert 3 / 21 < DEFAULT.repeated_fraction
    assert stack.slice_count == 24 and stack.role == "volume"
    assert {"stitched_sections", "duplicate_positions"} <= _kinds(stack)
    assert [len(s.slice_indices) for s in stack.geometry.sections] == [12, 12]


# --- localizers ------------------------------------------------------------------------------


def _tilted_ct_with(localizer: SyntheticSlice) -> list[SyntheticSlice]:
    return [localizer] + phantoms._tilted_stack(20, 2.5, 18.5, gantry_tilt_tag_deg=18.5)


@pytest.mark.parametrize(
    "image_type, evidence",
    [
        (("ORIGINAL", "PRIMARY", "LOCALIZER"), "ImageType says LOCALIZER"),
        (("ORIGINAL", "PRIMARY", "AXIAL"), "instance number 0"),  # no ImageType help at all
    ],
)
def test_siemens_localizer_in_a_tilted_series(tmp_path, image_type, evidence):
    """One coronal image with InstanceNumber 0 inside a tilted axial CT series."""
    localizer = phantoms._localizer(phantoms.CORONAL, 0, image_type=image_type)
    write_series(phantoms._series("siemens", _tilted_ct_with(localizer)), tmp_path, names="shuffled")
    series = _analyse(tmp_path)
    volume, found = series.stacks
    assert (volume.role, volume.slice_count, found.role, found.slice_count) == ("volume", 20, "localizer", 1)
    assert found.slices[0].instance_number == 0
    assert any(evidence in r for r in found.reasons)
    assert volume.geometry.tilt_deg == pytest.approx(18.5, abs=0.05)


def test_localizer_with_the_volume_orientation_is_found_by_its_other_evidence(tmp_path):
    """An axial image at instance 0, thick and small, beside 20 axial slices of the same plane."""
    localizer = phantoms._localizer(phantoms.AXIAL, 0, image_type=("ORIGINAL", "PRIMARY", "OTHER"))
    slices = [localizer] + phantoms._stack(20, 2.5, start_mm=-25.0, first_instance=1)
    write_series(phantoms._series("same plane", slices), tmp_path, names="shuffled")
    volume, localizer_stack = _analyse(tmp_path).stacks
    assert (volume.slice_count, localizer_stack.role) == (20, "localizer")
    assert "instance number 0" in localizer_stack.reasons[-1]
    assert "slice thickness 500 mm" in localizer_stack.reasons[-1]


def test_three_plane_localizer_is_three_localizer_stacks(write_phantom):
    series = _analyse(write_phantom("ge_three_plane_localizer"))
    assert [(s.role, s.slice_count) for s in series.stacks] == [("localizer", 7)] * 3
    assert {plane_name(s.geometry.normal) for s in series.stacks} == {"axial", "coronal", "sagittal"}
    assert all("multi-plane localizer" in s.reasons[-1] for s in series.stacks)


def test_single_image_series_named_localizer(tmp_path):
    slices = phantoms._stack(1, 5.0, image_type=("ORIGINAL", "PRIMARY", "OTHER"))
    write_series(phantoms._series("pilot", slices, series_description="FAST LOCALIZER"), tmp_path)
    (stack,) = _analyse(tmp_path).stacks
    assert stack.role == "localizer"
    assert "FAST LOCALIZER" in stack.reasons[-1]


def test_all_images_at_one_position_are_not_a_volume(write_phantom):
    (stack,) = _analyse(write_phantom("all_one_position")).stacks
    assert stack.role == "other" and stack.reasons[-1] == "other: all 4 images at one position, not a volume"


# --- geometry ----------------------------------------------------------------------------------


def test_regular_stack(write_phantom):
    (stack,) = _analyse(write_phantom("regular")).stacks
    g = stack.geometry
    assert g.regular and g.irregularities == [] and g.sections == []
    assert (g.spacing.nominal, g.spacing.median, g.spacing.min, g.spacing.max) == pytest.approx((2.5,) * 4)
    assert g.candidate_spacings_mm == pytest.approx({"nominal": 2.5, "median": 2.5, "min": 2.5})
    assert g.normal == pytest.approx((0, 0, 1)) and g.stacking_direction == pytest.approx((0, 0, 1))


def test_missing_slices_count_and_instance_holes(write_phantom):
    (stack,) = _analyse(write_phantom("missing_slices")).stacks
    first, second = [i for i in stack.geometry.irregularities if i.kind == "missing_slices"]
    assert (first.after_index, first.details.missing_count, first.details.instance_numbers) == (7, 1, (9,))
    assert (second.after_index, second.details.missing_count, second.details.instance_numbers) == (13, 2, (16, 17))
    assert second.message == ("2 slice(s) missing after slice 13 (instance numbers 16, 17): gap 6.00 mm = 3 acquisition "
                              "steps of 2.00 mm (the instance numbers and SpacingBetweenSlices 2 mm agree on it)")
    assert "variable_spacing" not in _kinds(stack)


def test_missing_slice_estimated_without_instance_holes(tmp_path):
    """A 10 mm gap between consecutive instance numbers (as in dicom2nifti sliceincrement/001)."""
    slices = phantoms._slices_at([0.0, 5.0, 10.0, 20.0, 25.0], first_instance=7)
    write_series(phantoms._series("gap", slices), tmp_path, names="shuffled")
    (stack,) = _analyse(tmp_path).stacks
    missing = _irregularity(stack, "missing_slices")
    assert missing.details.missing_count == 1 and missing.details.instance_numbers == ()
    assert "(no instance number missing between 9 and 10)" in missing.message


def test_variable_spacing_runs(write_phantom):
    (stack,) = _analyse(write_phantom("variable_spacing")).stacks
    irregularity = _irregularity(stack, "variable_spacing")
    assert [(r.count, r.step_mm) for r in irregularity.details.runs] == [(13, 4.0), (14, 7.0)]
    assert irregularity.after_index == 13
    assert irregularity.message == "variable spacing: 13 step(s) of 4.00 mm, 14 step(s) of 7.00 mm"
    assert stack.geometry.spacing.nominal is None  # 4 mm and 7 mm slices: no single nominal spacing


def test_tilt_comes_from_geometry_and_the_tag_only_for_comparison(tmp_path):
    """A Philips-signed tag (-18.5) on a stack tilted +18.5 the GE way: the geometry decides."""
    slices = phantoms._tilted_stack(20, 2.5, 18.5, gantry_tilt_tag_deg=-18.5)
    write_series(phantoms._series("philips sign", slices), tmp_path, names="shuffled")
    (stack,) = _analyse(tmp_path).stacks
    g = stack.geometry
    assert g.tilt_deg == pytest.approx(18.5, abs=1e-3) and g.tilt_tag_deg == -18.5
    assert _irregularity(stack, "gantry_tilt").message == "gantry tilt 18.50° from geometry; tag says -18.5"
    assert g.regular  # a sheared but regular grid
    # Positions are along the normal: the table step times cos(tilt).
    assert g.spacing.median == pytest.approx(2.5 * math.cos(math.radians(18.5)), abs=1e-4)
    mismatch = _irregularity(stack, "nominal_mismatch")
    assert mismatch.details.along_table is True


def test_nominal_spacing_that_disagrees_with_the_positions(tmp_path):
    slices = phantoms._stack(10, 2.5, spacing_between_slices_mm=-3.0, slice_thickness_mm=2.5)
    write_series(phantoms._series("nominal", slices), tmp_path)
    (stack,) = _analyse(tmp_path).stacks
    mismatch = _irregularity(stack, "nominal_mismatch")
    assert mismatch.details == NominalMismatch(nominal_mm=3.0, dominant_step_mm=2.5, along_table=False)
    assert stack.geometry.candidate_spacings_mm == pytest.approx({"nominal": 3.0, "median": 2.5, "min": 2.5})
    assert stack.geometry.regular


def test_duplicates(write_phantom):
    (stack,) = _analyse(write_phantom("duplicate_positions")).stacks
    duplicate = _irregularity(stack, "duplicate_positions")
    assert duplicate.after_index == 7 and duplicate.details.positions_mm == (-7.5,)
    assert not stack.geometry.regular and stack.slice_count == 21


def test_stitched_sections_ranges_and_overlaps(write_phantom):
    (stack,) = _analyse(write_phantom("stitched_sections")).stacks
    sections = stack.geometry.sections
    assert [(s.start_mm, s.end_mm, len(s.slice_indices), s.step_mm) for s in sections] == [
        (0.0, 11.0, 12, 1.0), (8.5, 19.5, 12, 1.0), (17.0, 28.0, 12, 1.0)]
    stitched = _irregularity(stack, "stitched_sections")
    assert stitched.details.overlaps == (Overlap(length_mm=2.5, at_mm=8.5), Overlap(length_mm=2.5, at_mm=17.0))
    assert stitched.message.startswith("3 sections stitched, overlapping 2.5 mm at 8.5 mm and 2.5 mm at 17.0 mm")
    assert stitched.message.endswith("told apart by instance numbers")
    # Interleaved steps of 0.5 mm in the overlaps are not variable spacing or missing slices.
    assert _kinds(stack) == {"stitched_sections"}


@pytest.mark.parametrize(
    "omit, evidence",
    [(("InstanceNumber",), "acquisition numbers"), (("InstanceNumber", "AcquisitionNumber"), "acquisition times")],
)
def test_sections_without_instance_numbers(tmp_path, omit, evidence):
    base = phantoms.stitched_sections()
    slices = [dataclasses.replace(s, omit=omit) for s in base.series.slices]
    write_series(dataclasses.replace(base.series, slices=slices), tmp_path, names="shuffled")
    (stack,) = _analyse(tmp_path).stacks
    assert len(stack.geometry.sections) == 3
    assert _irregularity(stack, "stitched_sections").message.endswith(f"told apart by {evidence}")


def test_no_acquisition_order_means_no_sections(tmp_path):
    """Without instance number, acquisition number or time, file order is never taken instead."""
    base = phantoms.stitched_sections()
    slices = [dataclasses.replace(s, omit=("InstanceNumber", "AcquisitionNumber", "ContentTime"))
              for s in base.series.slices]
    write_series(dataclasses.replace(base.series, slices=slices), tmp_path, names="shuffled")
    (stack,) = _analyse(tmp_path).stacks
    assert stack.slice_count == 36 and stack.geometry.sections == []
    assert "stitched_sections" not in _kinds(stack) and "instance_order" not in _kinds(stack)


def test_interleaved_acquisition_is_not_stitching(tmp_path):
    """Odd slices acquired first, then even ones (MR interleaving): runs share their range."""
    positions = [float(z) for z in range(0, 20, 2)] + [float(z) for z in range(1, 20, 2)]
    slices = phantoms._slices_at(positions, slice_thickness_mm=1.0)
    write_series(phantoms._series("interleaved", slices), tmp_path, names="shuffled")
    (stack,) = _analyse(tmp_path).stacks
    assert stack.geometry.regular and stack.geometry.sections == [] and _kinds(stack) == set()


def test_non_parallel_slices(tmp_path):
    """Orientations 0.3° apart (under the grouping tolerance): one stack, reported non-parallel."""
    slices = phantoms._stack(10, 2.0)
    t = math.radians(0.3)
    slices[5] = dataclasses.replace(slices[5], col_cosines=(0.0, math.cos(t), math.sin(t)))
    write_series(phantoms._series("wobble", slices), tmp_path)
    (stack,) = _analyse(tmp_path).stacks
    assert stack.slice_count == 10
    assert _irregularity(stack, "non_parallel").details.max_angle_deg == pytest.approx(0.27, abs=0.01)
    assert not stack.geometry.regular


def test_offset_blocks_in_one_stack_are_non_collinear(write_phantom):
    """``analyze_geometry`` on slices a caller did not split reports them off the line."""
    result = scan([write_phantom("parallel_offset_blocks")])
    slices = sorted(result.slices, key=lambda s: s.position_lps_mm[2])
    g = analyze_geometry(slices)
    assert "non_collinear" in {i.kind for i in g.irregularities} and not g.regular


def test_slice_corners_follow_the_lattice_convention(tmp_path):
    """corner[k, b, a] = IPP + a·Columns·Δi·row + b·Rows·Δj·col, Δi = PixelSpacing[1]."""
    s = SyntheticSlice(
        position_lps_mm=(10.0, 20.0, 30.0), row_cosines=(0.0, 1.0, 0.0), col_cosines=(0.0, 0.0, -1.0),
        rows=8, columns=12, pixel_spacing_mm=(0.5, 2.0),
    )
    write_series(phantoms._series("corners", [s]), tmp_path)
    (header,) = scan([tmp_path]).slices
    corners = slice_corners_lps([header])
    assert corners.shape == (1, 2, 2, 3)
    assert corners[0, 0, 0] == pytest.approx((10, 20, 30))
    assert corners[0, 0, 1] == pytest.approx((10, 20 + 12 * 2.0, 30))  # along the row: columns x Δi
    assert corners[0, 1, 0] == pytest.approx((10, 20, 30 - 8 * 0.5))  # along the column: rows x Δj
    assert corners[0, 1, 1] == pytest.approx((10, 44, 26))
