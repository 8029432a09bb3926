"""``convert``: phantom series to files, read back and checked voxel by voxel.

Every phantom is written with an oblique coordinate encoding (value = 10 * ENCODING . p at the
pixel centre p, LPS mm), so a voxel's value says where the data came from in all three directions.
Each written NRRD is read back with the small reader below, and every voxel is compared with the
encoding at that voxel's centre, computed from the file's own header: a volume is right when
its geometry and its values agree, whatever route they took. Linear, cubic and copy all
reproduce linear data; the error budget is the int16 rounding of input and output (0.5 each).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from irregular_series import conversion as conversion_module
from irregular_series import volume as volume_module
from irregular_series.analysis import analyze
from irregular_series.conversion import STACK_ERRORS, ConvertOptions, OutputVolume, convert
from irregular_series.orientation import LPS_TO_RAS
from irregular_series.pixels import PixelDecodeError
from irregular_series.planning import plan_stack
from irregular_series.runlog import LOG_NAME
from irregular_series.testing.synthetic import save_dataset, uid, write_series
from irregular_series.tolerances import Tolerances
from irregular_series.volume import VerificationError, build_volume

import phantoms
from phantoms import CASES, Phantom, regular
from volume_checks import (
    COPY_ROUNDING,
    ROUNDING,
    NrrdFile,
    data_voxels,
    encoded,
    encoding_error,
    read_nrrd,
    recompress_as_mpeg2,
    tree_digest,
)


def run(tmp_path: Path, case: Phantom | str, *, out: str = "out", **options):
    """Write ``case`` (encoded) under ``tmp_path/in`` unless there, convert it into
    ``tmp_path/out``; return the result and the parsed report."""
    phantom = encoded(case)
    folder = tmp_path / "in" / phantom.name
    if not folder.exists():
        phantom.write(folder)
    result = convert([folder], tmp_path / out, ConvertOptions(**options), progress=False)
    report = json.loads(result.report_path.read_text())
    return result, report


def said(output: OutputVolume) -> list[str]:
    """The output's decisions in the library's own (neutral) words."""
    return [d.message for d in output.decisions]


def volumes(result) -> list[NrrdFile]:
    return [read_nrrd(o.path) for o in result.outputs]


def slice_positions(path: str, normal) -> float:
    return float(np.dot([float(v) for v in pydicom.dcmread(path, stop_before_pixels=True).ImagePositionPatient], normal))


# --- every case: coordinates reproduced, every slice where its header says -------------------

# case -> number of volumes written by default
VOLUME_COUNTS = {
    "regular": 1,
    "missing_slices": 1,
    "variable_spacing": 1,
    "gantry_tilt": 1,
    "tilt_with_missing": 1,
    "localizer_inside_siemens": 1,
    "two_localizers": 1,
    "localizer_sorts_first": 1,
    "unflagged_localizer": 1,
    "stitched_sections": 1,
    "two_orientations": 2,
    "repeated_positions_temporal": 5,
    "repeated_positions_untagged": 5,
    "echoes": 2,
    "duplicate_positions": 1,
    "parallel_offset_blocks": 2,
    "mf_regular": 1,
    "mf_irregular": 1,
    "mf_tilted": 1,
    "mf_two_stacks": 2,
    "mf_time_points": 4,
    "mf_mr_magnitude_phase": 2,
}


IRREGULAR = ("missing_slices", "variable_spacing", "gantry_tilt", "tilt_with_missing", "stitched_sections",
             "mf_irregular")
TILTED = {"gantry_tilt", "tilt_with_missing"}
CASE_SPACINGS = [(case, "auto") for case in sorted(VOLUME_COUNTS)] + [(case, 0.6) for case in IRREGULAR]


@pytest.mark.parametrize(("case", "spacing"), CASE_SPACINGS)
def test_every_case_reproduces_coordinates(tmp_path, case, spacing):
    result, report = run(tmp_path, case, spacing=spacing)
    assert result.failures == [] and len(result.outputs) == VOLUME_COUNTS[case]
    assert report["failures"] == [] and len(report["outputs"]) == VOLUME_COUNTS[case]
    for output, volume in zip(result.outputs, volumes(result)):
        assert output.max_position_error_mm <= 0.01 and output.mean_position_error_mm <= 0.01
        budget = COPY_ROUNDING if not output.interpolated else ROUNDING
        assert encoding_error(volume, carried=case in TILTED) <= budget + 1e-9, output.path
        np.testing.assert_array_equal(volume.index_to_lps, output.index_to_lps)
        plane_distance = volume.index_to_lps[:3, 2] @ np.cross(*volume.index_to_lps[:3, :2].T)
        plane_distance /= np.linalg.norm(np.cross(*volume.index_to_lps[:3, :2].T))
        assert math.isclose(plane_distance, output.slice_spacing_mm, rel_tol=1e-12)
        if spacing != "auto":
            assert output.slice_spacing_mm == spacing


def test_regular_stack_is_copied_bit_for_bit(tmp_path):
    result, report = run(tmp_path, "regular")
    (output,) = report["outputs"]
    assert output["interpolated"] is False
    assert {"kind": "no_interpolation", "message": "no interpolation: every voxel is a copy of an input pixel",
            "option": None, "choice": None, "values": {}} in output["decisions"]
    volume = read_nrrd(output["path"])
    datasets = [pydicom.dcmread(f) for f in output["source_files"]]
    expected = np.stack([ds.pixel_array * int(ds.RescaleSlope) + int(ds.RescaleIntercept) for ds in datasets])
    assert volume.array.dtype == np.int16
    np.testing.assert_array_equal(volume.array, expected)
    assert volume.header["space directions"] == "(1.0,0.0,0.0) (0.0,1.0,0.0) (0.0,0.0,2.5)"
    np.testing.assert_array_equal(volume.index_to_lps[:3, 3], [float(v) for v in datasets[0].ImagePositionPatient])
    assert output["shape"] == [32, 32, 20] and output["spacing"] == [1.0, 1.0, 2.5]


@pytest.mark.parametrize("spacing", [0.6, 0.7, 1.3])
def test_requested_spacing_is_exact_in_the_file(tmp_path, spacing):
    result, _ = run(tmp_path, "stitched_sections", spacing=spacing)
    volume = read_nrrd(result.outputs[0].path)
    assert volume.header["space directions"].split()[2] == f"(0.0,0.0,{spacing!r})"
    assert result.outputs[0].slice_spacing_mm == spacing
    assert encoding_error(volume) <= ROUNDING


def test_tilted_stack_at_a_requested_spacing(tmp_path):
    result, _ = run(tmp_path, "gantry_tilt", spacing=0.6)
    (output,) = result.outputs
    volume = read_nrrd(output.path)
    steps = volume.index_to_lps[:3, :3]
    assert math.isclose(np.linalg.norm(steps[:, 2]), 0.6, rel_tol=1e-15)
    assert abs(steps[:, 2] @ steps[:, 1]) < 1e-12 and abs(steps[:, 2] @ steps[:, 0]) < 1e-12  # deskewed
    assert encoding_error(volume, carried=True) <= ROUNDING
    assert "gantry tilt 18.50° removed: grid along the slice normal" in said(output)


def test_tilt_keep_writes_a_sheared_grid_of_unchanged_pixels(tmp_path):
    result, _ = run(tmp_path, "gantry_tilt", tilt="keep")
    (output,) = result.outputs
    volume = read_nrrd(output.path)
    assert output.interpolated is False and encoding_error(volume) <= COPY_ROUNDING
    steps = volume.index_to_lps[:3, :3]
    angle = math.degrees(math.acos(steps[:, 2] @ np.cross(steps[:, 0], steps[:, 1]) / np.linalg.norm(steps[:, 2])))
    assert math.isclose(angle, 18.5, abs_tol=1e-3)
    assert "gantry tilt 18.50° kept: sheared grid along the stacking direction" in said(output)


def test_tilt_keep_with_a_non_linear_drift_is_still_exact(tmp_path):
    """Slices off the fitted stacking line are shifted in-plane onto the sheared grid."""
    base = CASES["gantry_tilt"]()
    slices = list(base.series.slices)
    slices[7] = dataclasses.replace(slices[7], position_lps_mm=tuple(np.add(slices[7].position_lps_mm, (0.0, 0.4, 0.0))))
    phantom = dataclasses.replace(base, name="wobbly_tilt", series=dataclasses.replace(base.series, slices=slices))
    result, _ = run(tmp_path, phantom, tilt="keep")
    (output,) = result.outputs
    assert output.interpolated is True and output.max_position_error_mm <= 0.01
    assert encoding_error(read_nrrd(output.path), carried=True) <= ROUNDING


# --- spacing rules ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "rule", "spacing", "why"),
    [
        ("regular", "auto", 2.5, "nominal spacing 2.5 mm (the positions agree with it)"),
        ("regular", "nominal", 2.5, "nominal spacing 2.5 mm"),
        # 4 mm then 7 mm: never coarser than the finer run, whatever the median (7 mm) says
        ("variable_spacing", "auto", 4.0, "4 mm, the step of its finest run of equal steps"),
        ("variable_spacing", "median", 7.0, "median spacing 7 mm"),
        ("variable_spacing", "min", 4.0, "min spacing 4 mm"),
        ("stitched_sections", "auto", 1.0, "nominal spacing 1 mm (the positions agree with it)"),
        ("stitched_sections", "min", 0.5, "min spacing 0.5 mm"),
        ("gantry_tilt", "auto", 2.5 * math.cos(math.radians(18.5)), "nominal 2.5 mm disagrees with the positions"),
        # 0.75 mm is within tolerance of the 0.72 mm step, but it is the table step: not the spacing
        ("tilt_with_missing", "auto", 0.75 * math.cos(math.radians(15.5)), "is the table step"),
    ],
)
def test_spacing_rules(tmp_path, case, rule, spacing, why):
    result, _ = run(tmp_path, case, spacing=rule)
    (output,) = result.outputs
    assert math.isclose(output.slice_spacing_mm, spacing, abs_tol=1e-4)
    assert any(d.startswith("slice spacing: ") and why in d for d in said(output)), said(output)
    assert encoding_error(read_nrrd(output.path)) <= ROUNDING


def test_nominal_spacing_missing_is_a_failure(tmp_path):
    result, _ = run(tmp_path, "variable_spacing", spacing="nominal")
    assert result.outputs == []
    (failure,) = [str(f) for f in result.failures]
    assert "has no nominal spacing" in failure and "\n" not in failure


# --- localizers ------------------------------------------------------------------------------


def test_localizers_are_left_out_unless_included(tmp_path):
    result, _ = run(tmp_path, "localizer_inside_siemens")
    assert [o.role for o in result.outputs] == ["volume"] and result.outputs[0].shape == (32, 32, 20)
    result, _ = run(tmp_path, "localizer_inside_siemens", out="with", include_localizers=True)
    assert result.failures == []
    roles = {o.role: o for o in result.outputs}
    assert set(roles) == {"volume", "localizer"}
    localizer = roles["localizer"]
    assert localizer.shape == (24, 24, 1) and localizer.slice_spacing_mm == 500.0  # its SliceThickness
    volume = read_nrrd(localizer.path)
    assert encoding_error(volume) <= COPY_ROUNDING
    assert np.allclose(volume.index_to_lps[:3, 2] / 500.0, [0.0, 1.0, 0.0])  # coronal: normal along +y (P)


# --- stitched sections -----------------------------------------------------------------------


def test_stitched_sections_merge_cuts_each_overlap_at_its_middle(tmp_path):
    result, _ = run(tmp_path, "stitched_sections")
    (output,) = result.outputs
    # Sections 0–11, 8.5–19.5 and 17–28 mm (z): overlaps cut at 9.75 and 18.25 mm.
    used = {round(slice_positions(f, (0, 0, 1)), 3) for f in output.source_files}
    first = {float(k) for k in range(12)}
    second = {8.5 + k for k in range(12)}
    third = {17.0 + k for k in range(12)}
    assert used == {z for z in first if z < 9.75} | {z for z in second if 9.75 <= z < 18.25} | {z for z in third if z >= 18.25}
    assert said(output)[:3] == [
        "section 1 (0.00–11.00 mm) used up to 9.75 mm: 10 slice(s), 2 left out in overlaps "
        "(each overlap is cut at its middle: every section keeps the half nearer its own interior)",
        "section 2 (8.50–19.50 mm) used from 9.75 mm up to 18.25 mm: 8 slice(s), 4 left out in overlaps "
        "(each overlap is cut at its middle: every section keeps the half nearer its own interior)",
        "section 3 (17.00–28.00 mm) used from 18.25 mm: 10 slice(s), 2 left out in overlaps "
        "(each overlap is cut at its middle: every section keeps the half nearer its own interior)",
    ]
    assert encoding_error(read_nrrd(output.path)) <= ROUNDING


def test_stitched_sections_split_gives_one_copied_volume_per_section(tmp_path):
    result, _ = run(tmp_path, "stitched_sections", sections="split")
    assert [Path(o.path).name for o in result.outputs] == [
        f"1_stitched_sections_stack1_section{k}.nrrd" for k in (1, 2, 3)]
    for output, start in zip(result.outputs, (0.0, 8.5, 17.0)):
        assert output.shape == (32, 32, 12) and output.interpolated is False
        volume = read_nrrd(output.path)
        assert volume.index_to_lps[2, 3] == start and encoding_error(volume) <= COPY_ROUNDING


def test_sections_that_do_not_follow_each_other_are_not_merged(tmp_path):
    """Merging cuts between consecutive sections; a section inside another (which the analysis
    reports as interleaving today) has no such cut, and merging it is refused, not guessed."""
    encoded("stitched_sections").write(tmp_path / "in")
    (series,) = analyze([tmp_path / "in"]).series
    stack = series.stacks[0]
    first, second, third = stack.geometry.sections
    stack.geometry.sections = [first, dataclasses.replace(second, start_mm=2.0, end_mm=9.0), third]
    with pytest.raises(ValueError, match=r"sections 1 \(0.00–11.00 mm\) and 2 \(2.00–9.00 mm\) do not follow "
                                         r"each other .* no place to cut between them$") as raised:
        plan_stack(stack, ConvertOptions())
    assert raised.value.remedy == ("sections", "split")
    assert len(plan_stack(stack, ConvertOptions(sections="split"))) == 3


# --- missing slices --------------------------------------------------------------------------

# missing_slices: 2 mm steps from -24 mm, instances 9 (z = -8) and 16, 17 (z = 6, 8) missing.
GAP_PLANES = (8, 15, 16)


def test_gaps_interpolate_fills_the_gap_from_real_positions(tmp_path):
    result, _ = run(tmp_path, "missing_slices")
    (output,) = result.outputs
    assert output.shape == (32, 32, 24) and output.interpolated is True and output.mask_path is None
    assert "missing slices: interpolated across the gaps" in said(output)
    assert encoding_error(read_nrrd(output.path)) <= ROUNDING


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
def test_pixel_padding_value_is_the_background_read_signed_as_the_pixels(tmp_path, implicit):
    """PixelPaddingValue (SS for signed pixels; in implicit VR only PixelRepresentation says so),
    rescaled, fills the deskew edges, below every value the data holds."""
    folder = tmp_path / "in"
    encoded("gantry_tilt").write(folder)
    for path in sorted(folder.rglob("*.dcm")):
        ds = pydicom.dcmread(path)
        signed = ds.PixelRepresentation == 1
        padding = -2000 if signed else 0
        ds.add_new(0x00280120, "SS" if signed else "US", padding)
        save_dataset(ds, path, ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian)
    assert signed  # the phantom's CT values are signed: the SS reading is what is tested
    (first,) = {s.pixel_padding_value for s in analyze([folder]).series[0].stacks[0].slices}
    assert first == padding
    result = convert([folder], tmp_path / "out", ConvertOptions(), progress=False)
    (output,) = result.outputs
    expected = padding * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert output.background == expected
    volume = read_nrrd(output.path)
    assert (volume.array == expected).any() and (volume.array[volume.array != expected] > expected).all()
    assert any("the rescaled PixelPaddingValue" in message for message in said(output))


def test_gaps_blank_writes_a_mask_that_is_zero_exactly_in_the_gaps(tmp_path):
    result, _ = run(tmp_path, "missing_slices", gaps="blank")
    (output,) = result.outputs
    assert Path(output.mask_path).parent == Path(output.path).parent
    assert Path(output.mask_path).name == "1_missing_slices_stack1_mask.nrrd"
    volume, mask = read_nrrd(output.path), read_nrrd(output.mask_path)
    np.testing.assert_array_equal(mask.index_to_lps, volume.index_to_lps)
    assert mask.array.dtype == np.uint8 and mask.array.shape == volume.array.shape == (24, 32, 32)
    expected = np.ones(24, np.uint8)
    expected[list(GAP_PLANES)] = 0
    np.testing.assert_array_equal(mask.array, np.broadcast_to(expected[:, None, None], mask.array.shape))
    assert (volume.array[list(GAP_PLANES)] == output.background).all()
    assert output.background == volume.array[mask.array == 1].min()  # the lowest value in the data
    assert output.interpolated is False and encoding_error(volume) <= COPY_ROUNDING
    assert "3 plane(s) inside missing-slice gaps left blank: no slice reaches them, mask 0 there" in said(output)


def test_gaps_blank_on_a_tilted_stack_blanks_only_the_gap(tmp_path):
    result, _ = run(tmp_path, "tilt_with_missing", gaps="blank")
    (output,) = result.outputs
    mask = read_nrrd(output.mask_path).array
    empty = [k for k in range(mask.shape[0]) if not mask[k].any()]
    assert len(empty) == 1  # one missing slice, spacing = the step along the normal
    assert encoding_error(read_nrrd(output.path), carried=True) <= ROUNDING


def test_gaps_split_gives_one_copied_volume_per_run(tmp_path):
    result, _ = run(tmp_path, "missing_slices", gaps="split")
    assert [o.shape[2] for o in result.outputs] == [8, 6, 7]
    assert [Path(o.path).stem for o in result.outputs] == [
        f"1_missing_slices_stack1_run{k}" for k in (1, 2, 3)]
    for output in result.outputs:
        assert output.interpolated is False
        assert encoding_error(read_nrrd(output.path)) <= COPY_ROUNDING


def test_gaps_blank_and_variable_spacing_without_gaps_blank_nothing(tmp_path):
    """Longer steps that are not missing slices (4 mm then 7 mm) are no gaps."""
    result, _ = run(tmp_path, "variable_spacing", gaps="blank", spacing=1.0)
    (output,) = result.outputs
    assert output.mask_path is None
    assert data_voxels(read_nrrd(output.path)).all()


def test_gaps_blank_tells_a_missing_slice_from_a_longer_ordinary_step(tmp_path):
    """4 mm slices with one missing (an 8 mm gap), then 10 mm slices: only the gap is blank, though
    the ordinary 10 mm steps are longer than it, because the analysis names the gap itself."""
    phantom = CASES["variable_spacing"]()
    slices = [s for s in phantom.series.slices if s.instance_number != 5]
    four = [s for s in slices if s.instance_number <= 14]
    ten = [dataclasses.replace(s, position_lps_mm=(*s.position_lps_mm[:2], 52.0 + 10.0 * k),
                               slice_thickness_mm=10.0)
           for k, s in enumerate(x for x in slices if x.instance_number > 14)]
    case = dataclasses.replace(phantom, name="gap_and_long_steps",
                               series=dataclasses.replace(phantom.series, slices=four + ten))
    result, _ = run(tmp_path, case, gaps="blank", spacing=1.0)
    (output,) = result.outputs
    mask = read_nrrd(output.mask_path).array
    empty = [k for k in range(mask.shape[0]) if not mask[k].any()]
    # The 1 mm planes inside the gap from 12 to 20 mm that neither 4 mm thick slice reaches (2 mm).
    assert empty == list(range(15, 18))
    assert encoding_error(read_nrrd(output.path)) <= ROUNDING


# --- repeated positions, orientations, duplicates ----------------------------------------------


def test_repeated_positions_give_one_volume_per_time_point(tmp_path):
    result, _ = run(tmp_path, "repeated_positions_temporal")
    arrays = [v.array for v in volumes(result)]
    assert len(arrays) == 5 and all(a.shape == (8, 16, 16) for a in arrays)
    for a in arrays[1:]:
        np.testing.assert_array_equal(a, arrays[0])  # the phantom encodes position, not time
    assert len({o.path for o in result.outputs}) == 5
    assert sorted(len(o.source_files) for o in result.outputs) == [8] * 5
    assert len({f for o in result.outputs for f in o.source_files}) == 40


def test_two_orientations_give_two_volumes(tmp_path):
    result, _ = run(tmp_path, "two_orientations")
    normals = sorted(tuple(np.round(o.directions_lps[2], 6)) for o in result.outputs)
    assert normals == [(-1.0, 0.0, 0.0), (0.0, 0.0, 1.0)]


def test_duplicate_positions_keep_one_slice_and_say_so(tmp_path):
    result, _ = run(tmp_path, "duplicate_positions")
    (output,) = result.outputs
    assert output.shape == (32, 32, 20) and output.interpolated is False
    (note,) = [d for d in said(output) if d.startswith("duplicate position")]
    assert "kept" in note and "dropped" in note


# --- positions override ----------------------------------------------------------------------


def test_positions_nominal_overrides_loudly(tmp_path):
    result, _ = run(tmp_path, "missing_slices", positions="nominal", spacing=0.6)
    (output,) = result.outputs
    # 21 slices re-spaced at the nominal 2 mm (not at the 0.6 mm output spacing): the last
    # 5 slices move 6 mm, past the three missing ones.
    assert output.max_position_error_mm <= 0.01
    assert math.isclose(output.max_error_vs_dicom_mm, 6.0, abs_tol=1e-6)
    assert output.slice_spacing_mm == 0.6 and output.shape[2] == math.ceil(40 / 0.6) + 1  # reaches 40 mm
    (note,) = [d for d in said(output) if "POSITIONS OVERRIDDEN" in d]
    assert "2 mm along the normal" in note and "moved by up to 6.000 mm" in note


def test_positions_nominal_on_a_tilted_stack_uses_the_table_step(tmp_path):
    result, _ = run(tmp_path, "gantry_tilt", positions="nominal")
    (output,) = result.outputs
    assert output.max_position_error_mm <= 0.01 and output.max_error_vs_dicom_mm <= 1e-4
    assert any("2.5 mm along the tilted table" in d for d in said(output))


def test_positions_nominal_needs_a_nominal_spacing(tmp_path):
    result, _ = run(tmp_path, "variable_spacing", positions="nominal", spacing=1.0)
    (failure,) = [str(f) for f in result.failures]
    assert "positions from the nominal spacing need SpacingBetweenSlices or SliceThickness" in failure


# --- interpolation kernels -------------------------------------------------------------------


def test_cubic_reproduces_linear_data_on_irregular_stacks(tmp_path):
    for case in ("variable_spacing", "gantry_tilt", "stitched_sections"):
        result, _ = run(tmp_path, case, out=case, interpolation="cubic", spacing=0.7)
        (output,) = result.outputs
        assert output.interpolated is True
        assert encoding_error(read_nrrd(output.path), carried=case == "gantry_tilt") <= ROUNDING


def test_nearest_copies_the_closest_slice(tmp_path):
    result, _ = run(tmp_path, "variable_spacing", interpolation="nearest", spacing=1.0)
    (output,) = result.outputs
    assert output.interpolated is False
    volume = read_nrrd(output.path)
    slices = {round(slice_positions(f, (0, 0, 1)), 3): pydicom.dcmread(f).pixel_array for f in output.source_files}
    z = sorted(slices)
    for k, plane in enumerate(volume.array):
        plane_z = volume.index_to_lps[2, 3] + k * 1.0
        closest = min(z, key=lambda t: (abs(t - plane_z), t))
        np.testing.assert_array_equal(plane, slices[closest])
    assert "nearest neighbour: planes copy the closest slice, up to 3.000 mm away along the normal" in said(output)


def test_nearest_on_a_deskewed_tilt_is_refused_with_the_way_out(tmp_path):
    result, _ = run(tmp_path, "gantry_tilt", interpolation="nearest")
    assert result.outputs == [] and not list((tmp_path / "out").glob("*.nrrd"))
    (failure,) = [str(f) for f in result.failures]
    assert "verification failed" in failure and "keeping the tilt" in failure and "nothing written" in failure
    result, _ = run(tmp_path, "gantry_tilt", out="keep", interpolation="nearest", tilt="keep")
    assert result.failures == [] and encoding_error(read_nrrd(result.outputs[0].path)) <= COPY_ROUNDING


# --- NIfTI -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["nii", "nii.gz"])
def test_nifti_has_the_ras_affine_and_the_same_voxels(tmp_path, fmt):
    nibabel = pytest.importorskip("nibabel")
    nrrd, _ = run(tmp_path, "gantry_tilt", spacing=0.6)
    nifti, _ = run(tmp_path, "gantry_tilt", out="nifti", spacing=0.6, format=fmt)
    (output,) = nifti.outputs
    assert str(output.path).endswith("." + fmt)
    image = nibabel.load(output.path)
    np.testing.assert_allclose(image.affine, LPS_TO_RAS @ np.array(output.index_to_lps), atol=1e-4)
    np.testing.assert_allclose(image.get_sform(), image.affine)
    assert image.get_qform(coded=True)[1] == 1  # the deskewed grid is orthogonal: qform valid too
    voxels = np.asarray(image.dataobj).transpose(2, 1, 0)  # [i, j, k] -> [k, j, i]
    np.testing.assert_array_equal(voxels, read_nrrd(nrrd.outputs[0].path).array)


# --- verification: a wrong volume is never written ---------------------------------------------


def _turned(axis: str, degrees: float) -> Phantom:
    """``regular`` with every other slice turned by ``degrees`` about the normal (``"z"``) or about
    the row direction (``"x"``, slices no longer parallel): within the orientation tolerance, so
    one stack, but those slices' corners lie off any grid common to the stack."""
    base = regular()
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    row, col = ((c, s, 0.0), (-s, c, 0.0)) if axis == "z" else ((1.0, 0.0, 0.0), (0.0, c, s))
    slices = [dataclasses.replace(t, row_cosines=row, col_cosines=col) if k % 2 else t
              for k, t in enumerate(base.series.slices)]
    return dataclasses.replace(base, name=f"turned_{axis}", series=dataclasses.replace(base.series, slices=slices))


@pytest.mark.parametrize("axis", ["z", "x"])
def test_slices_off_the_grid_fail_verification_and_nothing_is_written(tmp_path, axis):
    result, report = run(tmp_path, _turned(axis, 0.3))
    assert result.outputs == [] and report["outputs"] == []
    (failure,) = [str(f) for f in result.failures]
    assert failure.startswith("#1 CT regular stack 1: verification failed: ")
    assert "mm from its DICOM position (tolerance 0.01 mm" in failure and failure.endswith("nothing written")
    assert report["failures"] == [failure]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.json", LOG_NAME]


def test_a_resampler_that_misplaces_slices_is_caught(tmp_path, monkeypatch):
    """If resampling put the slices 0.3 planes off where they belong (and said so in its
    placements), the check against the headers must refuse the volume."""
    resample_stack = volume_module.resample_stack

    def off_by_a_third(*args, **kwargs):
        result = resample_stack(*args, **kwargs)
        result.placements = [dataclasses.replace(p, k=p.k + 0.3) for p in result.placements]
        return result

    monkeypatch.setattr(volume_module, "resample_stack", off_by_a_third)
    result, _ = run(tmp_path, "variable_spacing", spacing=1.0)
    (failure,) = [str(f) for f in result.failures]
    assert "would be 0.3000 mm from its DICOM position" in failure
    assert not list((tmp_path / "out").glob("*.nrrd"))


def test_a_volume_the_content_check_refuses_is_never_written(tmp_path, monkeypatch):
    """The content check runs while the file is written: a volume it refuses (here one plane moved
    by a pixel after resampling) never takes its name, and no temporary file is left."""
    resample_stack = volume_module.resample_stack

    def moved(*args, **kwargs):
        result = resample_stack(*args, **kwargs)
        result.volume[3] = np.roll(result.volume[3], 1, axis=1)
        return result

    monkeypatch.setattr(volume_module, "resample_stack", moved)
    result, report = run(tmp_path, "variable_spacing", spacing=1.0)
    (failure,) = [str(f) for f in result.failures]
    assert "content check failed" in failure and failure.endswith("nothing written")
    assert result.outputs == [] and report["failures"] == [failure]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.json", LOG_NAME]


# --- the user's tolerances are the ones applied ------------------------------------------------


def test_verification_applies_the_users_angle_tolerance(tmp_path):
    """Slices turned 0.3° within the stack: accepted under a 1 mm, 0.5° verification, refused when
    the user allows only 0.2° (verification used to take the default angle whatever was asked)."""
    _turned("z", 0.3).write(tmp_path / "in")
    (series,) = analyze([tmp_path / "in"]).series
    (part,) = plan_stack(series.stacks[0], ConvertOptions())
    assert build_volume(part, ConvertOptions(tolerances=Tolerances(verify_mm=1.0))).verification.ok
    with pytest.raises(VerificationError, match=r"directions off by up to 0\.300°"):
        build_volume(part, ConvertOptions(tolerances=Tolerances(verify_mm=1.0, orientation_deg=0.2)))


def test_grid_snaps_within_a_tenth_of_the_users_verification_tolerance(tmp_path):
    """One slice 0.05 mm off the others' pixel lattice: the grid widens by a column to hold it at
    the default tolerance, and snaps it onto the lattice (copying its pixels) when the user allows
    1 mm (the snap distance used to come from the default tolerance whatever was asked)."""
    slices = phantoms._stack(10, 2.0)
    x, y, z = slices[5].position_lps_mm
    slices[5] = dataclasses.replace(slices[5], position_lps_mm=(x + 0.05, y, z))
    write_series(phantoms._series("drift", slices), tmp_path / "in")
    (strict,) = convert([tmp_path / "in"], tmp_path / "strict", ConvertOptions(), progress=False).outputs
    assert strict.shape == (33, 32, 10) and strict.interpolated
    loose = ConvertOptions(tolerances=Tolerances(verify_mm=1.0))
    (snapped,) = convert([tmp_path / "in"], tmp_path / "loose", loose, progress=False).outputs
    assert snapped.shape == (32, 32, 10) and not snapped.interpolated
    assert snapped.max_position_error_mm == pytest.approx(0.05, abs=1e-6)


# --- failures of one stack, and bugs ------------------------------------------------------------


def test_programming_errors_propagate_instead_of_becoming_failures(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(conversion_module, "resample_part", broken)
    with pytest.raises(KeyError, match="a bug"):
        run(tmp_path, "regular")


@pytest.mark.parametrize("error", [ValueError("bad value"), VerificationError("off"), PixelDecodeError("codec"),
                                   OSError("disk full")])
def test_input_errors_of_one_stack_become_failures(tmp_path, monkeypatch, error):
    assert isinstance(error, STACK_ERRORS)

    def failing(*args, **kwargs):
        raise error

    monkeypatch.setattr(conversion_module, "resample_part", failing)
    result, report = run(tmp_path, "regular")
    assert [f.message for f in result.failures] == [str(error)] and report["failures"] == [str(result.failures[0])]


# --- outputs: names, overwriting, what ends up where ---------------------------------------------


def test_report_has_the_inspect_report_outputs_and_failures(tmp_path):
    result, report = run(tmp_path, "localizer_inside_siemens", gaps="blank")
    assert {"tool", "version", "schema_version", "series", "excluded", "options", "outputs", "failures"} <= set(report)
    assert report["series"][0]["stacks"][0]["positions_mm"]  # the inspect report, as inspect --json writes it
    assert report["options"]["gaps"] == "blank" and report["options"]["tolerances"]["verify_mm"] == 0.01
    (output,) = report["outputs"]
    for key in ("path", "series_instance_uid", "stack", "role", "source_files", "shape", "spacing", "origin_lps",
                "directions_lps", "interpolated", "max_position_error_mm", "mean_position_error_mm",
                "max_error_vs_dicom_mm", "decisions", "slice_spacing_mm", "index_to_lps"):
        assert key in output, key
    assert output["series_instance_uid"] == report["series"][0]["series_instance_uid"]
    assert len(output["source_files"]) == 20 and all(Path(f).is_file() for f in output["source_files"])
    assert output["directions_lps"] == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    assert output["origin_lps"] == [-15.5, -15.5, -25.0]


def test_nothing_is_overwritten_without_force(tmp_path):
    result, _ = run(tmp_path, "regular")
    path = Path(result.outputs[0].path)
    before = path.read_bytes()
    again, _ = run(tmp_path, "regular")  # the same again: done already, nothing written
    assert again.resumed_series == [result.outputs[0].series_instance_uid] and not again.outputs + again.failures
    (tmp_path / "out" / "report.json").write_text("{}")  # not the report this tool wrote
    with pytest.raises(FileExistsError, match="report.json already exists and is not a report its log") as raised:
        run(tmp_path, "regular")
    assert "--" not in str(raised.value)  # the library names no command-line flag
    (tmp_path / "out" / "report.json").unlink()
    (tmp_path / "out" / LOG_NAME).unlink()
    result, _ = run(tmp_path, "regular")  # the volume is still there: refused, reported
    (failure,) = result.failures
    assert failure.message.endswith("already exists; not overwriting it") and failure.remedy == ("force", None)
    assert failure.in_words(lambda option, choice: f"set {option}") == f"{failure.subject}: {failure.message} (set force)"
    assert path.read_bytes() == before
    result, _ = run(tmp_path, "regular", force=True)
    assert result.failures == [] and result.outputs[0].path == path


@pytest.mark.parametrize("description", ["../../x", "/etc/passwd", "..", "a/../../../b", "CON"])
def test_hostile_series_descriptions_never_write_outside_the_output_folder(tmp_path, description):
    phantom = encoded("regular", series_description=description)
    phantom.write(tmp_path / "work" / "in")
    before = {p for p in tmp_path.rglob("*")}
    result = convert([tmp_path / "work" / "in"], tmp_path / "work" / "out", progress=False)
    assert result.failures == []
    created = {p for p in tmp_path.rglob("*")} - before
    out = (tmp_path / "work" / "out").resolve()
    assert created and all(p.resolve().parent == out or p.resolve() == out for p in created)
    (output,) = result.outputs
    assert Path(output.path).parent == out and Path(output.path).name.startswith("1_")


def test_series_sharing_number_and_description_get_distinct_files(tmp_path):
    first = encoded("regular")
    second = encoded(regular(), series_instance_uid=uid("another series, same description"))
    first.write(tmp_path / "in" / "a")
    second.write(tmp_path / "in" / "b")
    result = convert([tmp_path / "in"], tmp_path / "out", ConvertOptions(force=True), progress=False)
    assert result.failures == [] and len(result.outputs) == 2
    names = [Path(o.path).name for o in result.outputs]
    assert len(set(names)) == 2 and "1_regular_stack1.nrrd" in names


def test_input_folders_are_never_modified(tmp_path):
    folder = tmp_path / "in"
    encoded("stitched_sections").write(folder / "a")
    encoded("missing_slices").write(folder / "b")
    before = tree_digest(folder)
    for n, options in enumerate([{}, {"gaps": "blank", "format": "nii.gz"}, {"sections": "split", "gaps": "split"}]):
        result = convert([folder], tmp_path / f"out{n}", ConvertOptions(**options), progress=False)
        assert result.ok and result.outputs
    assert tree_digest(folder) == before


# --- failures: the rest still converts, each failure one line ---------------------------------

def test_a_series_without_decoder_fails_alone(tmp_path):
    encoded("regular").write(tmp_path / "in" / "good")
    bad = encoded("missing_slices", series_number=2)
    for path in bad.write(tmp_path / "in" / "bad"):
        recompress_as_mpeg2(path)
    result = convert([tmp_path / "in"], tmp_path / "out", progress=False)
    assert [Path(o.path).name for o in result.outputs] == ["1_regular_stack1.nrrd"]
    (failure,) = [str(f) for f in result.failures]
    assert failure.startswith("#2 CT missing slices stack 1: ") and "\n" not in failure
    assert "MPEG2" in failure and "cannot decode" in failure and str(tmp_path / "in" / "bad") in failure
    assert not result.ok


def test_unreadable_files_are_left_out_and_the_rest_converts(tmp_path):
    files = encoded("regular").write(tmp_path / "in")
    (tmp_path / "in" / "truncated.dcm").write_bytes(files[0].read_bytes()[:300])
    (tmp_path / "in" / "notes.txt").write_text("not DICOM")
    result = convert([tmp_path / "in"], tmp_path / "out", progress=False)
    assert result.ok and len(result.outputs) == 1 and result.outputs[0].shape == (32, 32, 20)
    report = json.loads(result.report_path.read_text())
    left_out = {Path(e["file"]).name for e in report["excluded"]} | {
        Path(e["file"]).name for s in report["series"] for e in s["excluded"]}
    assert {"truncated.dcm", "notes.txt"} <= left_out


def test_a_file_cut_short_is_left_out_and_its_series_still_converts(tmp_path):
    """A header that reads but pixel data cut short: the file is left out with its reason, its
    series is converted from the other files (the hole it leaves is a reported gap)."""
    files = encoded("variable_spacing").write(tmp_path / "in")
    broken = files[3]
    broken.write_bytes(broken.read_bytes()[:-700])
    result = convert([tmp_path / "in"], tmp_path / "out", progress=False)
    assert result.ok
    (output,) = result.outputs
    assert len(output.source_files) == 27 and str(broken) not in output.source_files
    assert encoding_error(read_nrrd(output.path)) <= ROUNDING
    report = json.loads(result.report_path.read_text())
    (excluded,) = report["series"][0]["excluded"]
    assert excluded["file"] == str(broken) and "truncated" in excluded["reason"]
    assert any(i["kind"] == "missing_slices" for i in report["series"][0]["stacks"][0]["irregularities"])


# --- multi-frame: the same volumes as the single-frame files -----------------------------------

MULTIFRAME = sorted(name for name in CASES if name.startswith("mf_"))


@pytest.mark.parametrize("case", MULTIFRAME)
def test_multiframe_gives_the_same_volumes_as_single_frame_files(tmp_path, case):
    phantom = encoded(case)
    results = {}
    for multiframe in (True, False):
        variant = dataclasses.replace(phantom, multiframe=multiframe)
        folder = tmp_path / f"in_{multiframe}"
        files = variant.write(folder)
        assert len(files) == (1 if multiframe else len(phantom.series.slices))
        result = convert([folder], tmp_path / f"out_{multiframe}", progress=False)
        assert result.failures == []
        # Stack numbering may differ between the two; the volumes, as a set, may not.
        results[multiframe] = sorted(
            (read_nrrd(o.path) for o in result.outputs), key=lambda v: tuple(v.index_to_lps.ravel()))
    assert len(results[True]) == len(results[False]) > 0
    for a, b in zip(results[True], results[False]):
        np.testing.assert_array_equal(a.index_to_lps, b.index_to_lps)
        np.testing.assert_array_equal(a.array, b.array)
        assert encoding_error(a) <= ROUNDING


@pytest.mark.parametrize("syntax", ["implicit_le", "explicit_be", "deflated_le"])
def test_every_uncompressed_transfer_syntax_gives_the_same_volume(tmp_path, syntax):
    phantom = encoded("variable_spacing")
    volumes = {}
    for name in ("explicit_le", syntax):
        phantom.write(tmp_path / name, transfer_syntax=name)
        result = convert([tmp_path / name], tmp_path / f"out_{name}", progress=False)
        assert result.failures == []
        (output,) = result.outputs
        volumes[name] = read_nrrd(output.path)
    np.testing.assert_array_equal(volumes[syntax].array, volumes["explicit_le"].array)
    np.testing.assert_array_equal(volumes[syntax].index_to_lps, volumes["explicit_le"].index_to_lps)


# --- progress --------------------------------------------------------------------------------


def test_progress_is_quiet_unless_on_a_terminal(tmp_path, capfd):
    encoded("regular").write(tmp_path / "in")
    convert([tmp_path / "in"], tmp_path / "quiet")  # pytest's stderr is not a terminal
    assert capfd.readouterr().err == ""
    convert([tmp_path / "in"], tmp_path / "loud", progress=True)
    err = capfd.readouterr().err
    assert "1/1" in err and "#1 CT regular" in err



def test_pixel_data_cut_short_after_the_scan_fails_with_the_file_name(tmp_path):
    """The file changes between the header scan and the pixel read (a copy still in progress):
    loading must fail with the file's name and what is wrong, not an internal error."""
    files = encoded("regular").write(tmp_path / "in")
    (series,) = analyze([tmp_path / "in"]).series
    (part,) = plan_stack(series.stacks[0], ConvertOptions())
    broken = Path(part.slices[4].path)
    broken.write_bytes(broken.read_bytes()[:-700])
    assert broken in files
    with pytest.raises(PixelDecodeError, match=broken.name):
        build_volume(part, ConvertOptions())
