"""Output grid, resampling and verification on stacks built in memory.

Slices are ``SliceHeader`` records written directly (the geometry maths needs no files) and their
pixels encode LPS coordinates: value = 10 * ENCODE . p at the pixel centre p. Linear data stays
linear under every interpolation used, so each output voxel must hold 10 * ENCODE . (its own LPS
position), to the rounding of int16 pixels (0.05 mm in, 0.05 mm out).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math

import numpy as np
import pytest

from irregular_series.grid import OutputGrid, build_grid
from irregular_series.model import SliceHeader
from irregular_series.resample import SlicePlacement, resample_stack
from irregular_series.verify import verify_placements

ENCODE = np.array([0.3, -0.5, 0.8])
SCALE = 10.0
AXIAL = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0))
ROWS, COLUMNS = 20, 24
PIXEL_SPACING = (0.8, 0.6)  # row step 0.8 mm along col_cosines, column step 0.6 mm along row_cosines
TILT_DEG = 15.0


def oblique() -> tuple[tuple[float, ...], tuple[float, ...]]:
    """A generic orientation, so that no axis mix-up can hide behind zeros."""
    a, b = math.radians(20.0), math.radians(-35.0)
    rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    rotation = rz @ rx
    return tuple(rotation[:, 0]), tuple(rotation[:, 1])


def make_stack(positions_mm, drift_mm=None, orientation=AXIAL) -> list[SliceHeader]:
    """Slices at ``positions_mm`` along the normal; ``drift_mm`` (N, 2) moves each IPP in-plane
    along (row, col) cosines (gantry tilt)."""
    row, col = (np.array(v) for v in orientation)
    normal = np.cross(row, col)
    drift = np.zeros((len(positions_mm), 2)) if drift_mm is None else np.asarray(drift_mm)
    corner = np.array([-7.0, -6.0, 2.0])
    return [
        SliceHeader(
            path=f"slice{k:03d}.dcm", frame=0, number_of_frames=1,
            sop_instance_uid=f"1.2.3.{k + 1}", sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
            series_instance_uid="1.2.3", modality="CT", instance_number=k + 1,
            rows=ROWS, columns=COLUMNS, row_cosines=tuple(row), col_cosines=tuple(col),
            position_lps_mm=tuple(corner - (corner @ normal) * normal + z * normal
                                  + drift[k, 0] * row + drift[k, 1] * col),
            pixel_spacing_mm=PIXEL_SPACING,
        )
        for k, z in enumerate(positions_mm)
    ]


def tilted(positions_mm, orientation=AXIAL, tilt_deg=TILT_DEG) -> list[SliceHeader]:
    """Gantry tilt: the IPPs step along a direction ``tilt_deg`` away from the normal, drifting
    mostly along the column direction and a little along the row direction."""
    along = np.asarray(positions_mm) * math.tan(math.radians(tilt_deg))
    return make_stack(positions_mm, np.column_stack([0.3 * along, along]), orientation)


def encode(slices, dtype=np.int16) -> np.ndarray:
    j, i = np.mgrid[0:ROWS, 0:COLUMNS]
    planes = []
    for s in slices:
        p = (np.asarray(s.position_lps_mm)[:, None, None]
             + i * PIXEL_SPACING[1] * np.asarray(s.row_cosines)[:, None, None]
             + j * PIXEL_SPACING[0] * np.asarray(s.col_cosines)[:, None, None])
        planes.append(SCALE * np.tensordot(ENCODE, p, axes=1))
    values = np.array(planes)
    return (np.rint(values) if np.dtype(dtype).kind in "iu" else values).astype(dtype)


def expected(grid: OutputGrid) -> np.ndarray:
    """10 * ENCODE . p at every voxel centre of the grid."""
    k, j, i = np.indices(grid.shape_kji)
    index = np.stack([i, j, k, np.ones_like(i)], axis=-1).astype(float)
    return SCALE * (index @ grid.index_to_lps.T)[..., :3] @ ENCODE


def from_slice(grid: OutputGrid, slices, s: int) -> np.ndarray:
    """The code of slice ``s`` carried along the grid's k axis to every voxel: what a voxel that
    only slice ``s`` reaches (constant extrapolation, a partly covered blend) holds."""
    k, j, i = np.indices(grid.shape_kji)
    index = np.stack([i, j, k, np.ones_like(i)], axis=-1).astype(float)
    lps = (index @ grid.index_to_lps.T)[..., :3]
    row, col = (np.asarray(v) for v in (slices[s].row_cosines, slices[s].col_cosines))
    normal = np.cross(row, col)
    axis = grid.index_to_lps[:3, 2]
    along = ((lps - np.asarray(slices[s].position_lps_mm)) @ normal) / (axis @ normal)
    return SCALE * (lps - along[..., None] * axis) @ ENCODE


def assert_reproduces(result, grid, tolerance, slices=None):
    """Every voxel holding data equals its own coordinate code, or (``slices`` given) the code of
    one of its plane's slices carried to it along k (a voxel only that slice covers); every other
    voxel is one background value, the lowest value there is."""
    values = result.volume.astype(float)
    error = np.abs(values - expected(grid))
    valid = np.ones(grid.shape_kji, bool) if result.mask is None else result.mask.astype(bool)
    assert valid.any()
    if slices is not None:
        for m, plane in enumerate(result.planes):
            for s in plane.slice_indices:
                error[m] = np.minimum(error[m], np.abs(values[m] - from_slice(grid, slices, s)[m]))
    assert error[valid].max() <= tolerance
    if (~valid).any():
        background = values[~valid]
        assert (background == background[0]).all() and background[0] <= values[valid].min()


def assert_verified(slices, result, grid, tolerance_mm=0.01):
    check = verify_placements(slices, result.placements, grid, tolerance_mm)
    assert check.ok, (check.max_mm, check.worst_slice)
    return check


def slice_planes(result) -> list[int]:
    """The k index of each input slice's placement."""
    return [p.k for p in result.placements]


# --- regular stacks: exact copies ---------------------------------------------------------------

def test_regular_stack_is_copied_bit_for_bit():
    slices = make_stack(3.0 + 2.5 * np.arange(9), orientation=oblique())
    pixels = np.random.default_rng(1).integers(-2000, 3000, (9, ROWS, COLUMNS)).astype(np.int16)
    grid = build_grid(slices, 2.5)
    result = resample_stack(pixels, slices, grid)
    assert grid.shape_kji == (9, ROWS, COLUMNS)
    assert result.volume.dtype == np.int16
    assert np.array_equal(result.volume, pixels)
    assert result.interpolated is False
    assert result.mask is None
    assert slice_planes(result) == list(range(9))
    assert all(p.slice_indices == (k,) and p.weights == (1.0,) for k, p in enumerate(result.planes))
    assert assert_verified(slices, result, grid).max_mm < 1e-9


def test_regular_stack_with_rounded_positions_is_still_a_copy():
    slices = make_stack(3.0 + 2.5 * np.arange(9) + 2e-6 * np.sin(np.arange(9)))
    pixels = encode(slices)
    result = resample_stack(pixels, slices, build_grid(slices, 2.5 * (1 + 5e-7)))
    assert np.array_equal(result.volume, pixels) and result.interpolated is False


def test_in_plane_jitter_below_the_snap_is_copied_and_reported():
    jitter = 3e-4 * np.column_stack([np.cos(np.arange(6)), np.sin(np.arange(6))])
    slices = make_stack(2.0 * np.arange(6), jitter, oblique())
    pixels = encode(slices)
    grid = build_grid(slices, 2.0)
    result = resample_stack(pixels, slices, grid)
    assert grid.shape_kji == (6, ROWS, COLUMNS)
    assert np.array_equal(result.volume, pixels) and result.interpolated is False
    check = assert_verified(slices, result, grid)
    assert 1e-4 < check.max_mm <= 6e-4  # the copy's own error (drift from slice 0), measured


def test_float_input_is_copied_bit_for_bit_including_nan():
    slices = make_stack(2.0 * np.arange(4))
    pixels = encode(slices, np.float32)
    pixels[1, 3, 4] = np.nan
    result = resample_stack(pixels, slices, build_grid(slices, 2.0))
    assert np.array_equal(result.volume, pixels, equal_nan=True)


def test_grid_index_to_ras_flips_x_and_y():
    slices = make_stack(2.0 * np.arange(3), orientation=oblique())
    grid = build_grid(slices, 2.0)
    assert np.allclose(grid.index_to_ras(), np.diag([-1, -1, 1, 1]) @ grid.index_to_lps)
    assert np.allclose(grid.spacing_mm, (PIXEL_SPACING[1], PIXEL_SPACING[0], 2.0))
    assert np.allclose(grid.directions.T @ grid.directions, np.eye(3))
    assert np.allclose(grid.origin_lps, slices[0].position_lps_mm)


def test_integer_output_is_rounded_without_touching_the_input():
    slices = make_stack(2.0 * np.arange(4))
    pixels = encode(slices, np.float32)
    before = pixels.copy()
    result = resample_stack(pixels, slices, build_grid(slices, 2.0), out_dtype=np.int16)
    assert np.array_equal(pixels, before)
    assert np.array_equal(result.volume, np.rint(pixels).astype(np.int16))


def test_cubic_overshoot_is_clipped_not_wrapped():
    slices = make_stack(2.0 * np.arange(5))
    pixels = np.zeros((5, ROWS, COLUMNS), np.uint8)
    pixels[3:] = 255
    result = resample_stack(pixels, slices, build_grid(slices, 0.5), interpolation="cubic")
    between_1_and_2 = result.volume[5:8]  # 2.5 .. 3.5 mm: the Hermite dips below 0 here
    assert len(result.planes[6].slice_indices) == 4 and min(result.planes[6].weights) < 0
    assert (between_1_and_2 == 0).all()


# --- irregular positions --------------------------------------------------------------------------

def test_missing_slices_are_interpolated_from_real_positions():
    positions = np.delete(2.0 * np.arange(10), [4, 5])  # 6 -> 12 mm: two slices missing
    slices = make_stack(positions, orientation=oblique())
    grid = build_grid(slices, 2.0)
    result = resample_stack(encode(slices), slices, grid)
    assert grid.shape_kji[0] == 10
    assert result.interpolated is True and result.mask is None
    assert_reproduces(result, grid, 1.0)
    assert result.planes[4].slice_indices == (3, 4)
    assert np.allclose(result.planes[4].weights, (2 / 3, 1 / 3))
    assert_verified(slices, result, grid)


@pytest.mark.parametrize("out_dtype", [np.int16, np.float32])
def test_blank_gaps_leave_exactly_the_planes_inside_the_gap_empty(out_dtype):
    positions = np.delete(2.0 * np.arange(12), [4, 5, 9])  # gaps 6 -> 12 and 16 -> 20 mm
    slices = make_stack(positions)
    pixels = encode(slices)
    grid = build_grid(slices, 1.0)
    result = resample_stack(pixels, slices, grid, gaps="blank", max_gap_mm=3.0, out_dtype=out_dtype)
    # Slices reach 1 mm (half their 2 mm step): planes 7, 11, 17 and 19 copy their nearest slice.
    blank = [p for p in range(grid.shape_kji[0]) if 7 < p < 11 or 17 < p < 19]
    assert [m for m, plane in enumerate(result.planes) if plane.blank] == blank
    assert [(m, p.slice_indices, p.extrapolated_mm) for m, p in enumerate(result.planes) if p.extrapolated_mm] == [
        (7, (3,), 1.0), (11, (4,), 1.0), (17, (6,), 1.0), (19, (7,), 1.0)]
    assert result.mask.dtype == np.uint8
    assert np.array_equal(np.flatnonzero(result.mask.reshape(len(result.planes), -1).any(axis=1) == 0),
                          blank)
    assert result.mask[[m for m in range(grid.shape_kji[0]) if m not in blank]].all()
    assert_reproduces(result, grid, 1.0, slices)
    assert_verified(slices, result, grid)


def test_blank_gaps_at_a_spacing_coarser_than_the_gap_never_blank_a_plane_a_slice_reaches():
    positions = np.delete(2.5 * np.arange(40), [12, 13, 14])  # a 10 mm gap after 27.5 mm
    slices = [dataclasses.replace(s, slice_thickness_mm=2.5) for s in make_stack(positions)]
    grid = build_grid(slices, 32.5)
    result = resample_stack(encode(slices), slices, grid, gaps="blank", max_gap_mm=3.0)
    # Planes at 0, 32.5, 65, 97.5: 32.5 lies inside the gap 27.5 -> 37.5 mm, 5 mm from either
    # end and beyond both slices' reach (half their 2.5 mm thickness): blank; the others are slices.
    assert [p.blank for p in result.planes] == [False, True, False, False]
    near = dataclasses.replace(grid, index_to_lps=grid.index_to_lps @ np.diag([1, 1, 28.6 / 32.5, 1]))
    result = resample_stack(encode(slices), slices, near, gaps="blank", max_gap_mm=3.0)
    # At 28.6 mm the plane is 1.1 mm from the slice at 27.5, within its half thickness: a copy.
    assert result.planes[1].slice_indices == (11,) and math.isclose(result.planes[1].extrapolated_mm, 1.1)
    assert result.mask is None  # every plane holds data


def test_blank_gaps_default_threshold_and_copies_only():
    positions = np.delete(2.0 * np.arange(8), [3])
    slices = make_stack(positions)
    pixels = encode(slices)
    result = resample_stack(pixels, slices, build_grid(slices, 2.0), gaps="blank", background=-1024)
    assert result.interpolated is False  # every plane is a slice or blank: nothing synthesised
    kept = [0, 1, 2, 4, 5, 6, 7]
    assert result.planes[3].blank and not result.mask[3].any() and result.mask[kept].all()
    assert np.array_equal(result.volume[kept], pixels)
    assert (result.volume[3] == -1024).all()


def test_variable_spacing_4_then_7_mm():
    positions = [0.0, 4.0, 8.0, 12.0, 19.0, 26.0, 33.0]
    slices = make_stack(positions, orientation=oblique())
    grid = build_grid(slices, 2.0)
    result = resample_stack(encode(slices), slices, grid)
    assert grid.shape_kji[0] == 18  # 0 .. 34 mm: the last plane is 1 mm past the last slice
    assert result.planes[-1].slice_indices == (6,) and result.planes[-1].extrapolated_mm == pytest.approx(1.0)
    assert_reproduces(result, grid, 1.0, slices)
    for plane in result.planes[:-1]:
        assert math.isclose(sum(plane.weights), 1.0)
        z = [positions[k] for k in plane.slice_indices]
        assert z[0] - 1e-9 <= plane.position_mm - result.planes[0].position_mm <= z[-1] + 1e-9
    assert_verified(slices, result, grid)


def test_stitched_sections_with_interleaving_positions():
    section_a = 2.0 * np.arange(11)  # 0 .. 20
    section_b = 19.0 + 2.0 * np.arange(11)  # 19 .. 39, overlapping a's end
    slices = make_stack(np.unique(np.concatenate([section_a, section_b])), orientation=oblique())
    grid = build_grid(slices, 1.5)
    for interpolation in ("linear", "cubic"):
        result = resample_stack(encode(slices), slices, grid, interpolation=interpolation)
        assert_reproduces(result, grid, 1.0)
        assert_verified(slices, result, grid)


def test_spacing_0_6_from_a_0_5_0_7_mixture():
    positions = np.concatenate([[0.0], np.cumsum(np.tile([0.5, 0.7], 10))])  # 0 .. 12 mm
    slices = make_stack(positions)
    grid = build_grid(slices, 0.6)
    result = resample_stack(encode(slices), slices, grid)
    assert grid.spacing_mm[2] == 0.6
    assert grid.shape_kji[0] == 21  # 12 / 0.6 + 1, with the end reached exactly
    plane_positions = np.array([p.position_mm for p in result.planes])
    assert np.abs(np.diff(plane_positions) - 0.6).max() < 1e-12
    assert plane_positions[0] == 0.0
    assert_reproduces(result, grid, 1.0)
    assert_verified(slices, result, grid)


@pytest.mark.parametrize("thickness, reached", [(None, True), (1.2, True), (0.8, False)])
def test_the_grid_reaches_past_the_last_slice_and_fills_within_its_reach(thickness, reached):
    slices = [dataclasses.replace(s, slice_thickness_mm=thickness) for s in make_stack([0.0, 2.0, 4.0, 6.0, 7.0])]
    grid = build_grid(slices, 2.5)
    result = resample_stack(encode(slices), slices, grid)
    assert grid.shape_kji[0] == 4  # planes at 0, 2.5, 5 and 7.5: every slice is inside the grid
    check = verify_placements(slices, result.placements, grid)
    assert check.ok and check.outside == []
    last = result.planes[-1]
    # 0.5 mm past the last slice: its reach is half its thickness, else half its 1 mm step.
    assert last.blank != reached
    if reached:
        assert last.slice_indices == (4,) and last.extrapolated_mm == pytest.approx(0.5)
        assert result.mask is None and np.array_equal(result.volume[-1], encode(slices)[-1])
    else:
        assert not result.mask[-1].any() and result.mask[:-1].all()
    far = build_grid(slices, 3.0)  # 0, 3, 6, 9: 9 lies 2 mm past the last slice, beyond any reach
    result = resample_stack(encode(slices), slices, far)
    assert result.planes[-1].blank and not result.mask[-1].any() and result.mask[:-1].all()


def test_the_grid_starts_on_the_first_slice_at_either_end_of_a_reversed_stack():
    flipped = ((1.0, 0.0, 0.0), (0.0, -1.0, 0.0))  # normal -z: the stack runs the other way
    slices = make_stack([0.0, 2.0, 4.0, 6.0, 7.0], orientation=flipped)
    grid = build_grid(slices, 2.5)
    result = resample_stack(encode(slices), slices, grid)
    assert grid.shape_kji[0] == 4 and np.allclose(grid.origin_lps, slices[0].position_lps_mm)
    assert np.array_equal(result.volume[0], encode(slices)[0])
    assert result.planes[-1].slice_indices == (4,)


# --- interpolation kernels ---------------------------------------------------------------------

@pytest.mark.parametrize("interpolation", ["linear", "cubic"])
@pytest.mark.parametrize("dtype, tolerance", [(np.int16, 1.0), (np.float32, 2e-3)])
def test_kernels_reproduce_linear_data_on_tilted_irregular_stacks(interpolation, dtype, tolerance):
    positions = [0.0, 1.5, 3.0, 5.5, 6.0, 9.0, 10.0, 10.8, 13.0]
    slices = tilted(positions, oblique())
    grid = build_grid(slices, 0.7)
    result = resample_stack(encode(slices, dtype), slices, grid, interpolation=interpolation)
    assert result.volume.dtype == dtype
    assert_reproduces(result, grid, tolerance, slices)
    assert_verified(slices, result, grid)


def test_cubic_uses_four_slices_inside_and_two_at_the_ends():
    positions = [0.0, 1.0, 3.0, 4.5, 5.0, 8.0]
    slices = make_stack(positions)
    result = resample_stack(encode(slices), slices, build_grid(slices, 0.4), interpolation="cubic")
    counts = [len(p.slice_indices) for p in result.planes]
    assert counts[1] == 2 and counts[-2] == 2 and 4 in counts
    assert all(math.isclose(sum(p.weights), 1.0) for p in result.planes)


def test_nearest_takes_the_closest_slice_without_new_values():
    positions = [0.0, 2.0, 5.0, 6.0, 10.0]
    slices = make_stack(positions, orientation=oblique())
    pixels = encode(slices)
    grid = build_grid(slices, 0.75)
    result = resample_stack(pixels, slices, grid, interpolation="nearest")
    assert result.interpolated is False
    for plane, values in zip(result.planes, result.volume):
        closest = int(np.argmin(np.abs(np.array(positions) - plane.position_mm)))
        assert plane.slice_indices == (closest,)
        assert np.array_equal(values, pixels[closest])


def test_nearest_on_tilted_data_is_honestly_off_by_up_to_half_a_pixel():
    slices = tilted(2.0 * np.arange(6))
    grid = build_grid(slices, 2.0)
    result = resample_stack(encode(slices), slices, grid, interpolation="nearest")
    check = verify_placements(slices, result.placements, grid)
    assert not check.ok
    assert 0.01 < check.max_mm <= 0.5 * math.hypot(*PIXEL_SPACING)


# --- gantry tilt ------------------------------------------------------------------------------

def test_tilt_deskew_widens_the_grid_and_masks_what_no_slice_covers():
    positions = 2.5 * np.arange(8)
    slices = tilted(positions)
    grid = build_grid(slices, 2.5)
    drift_j = positions[-1] * math.tan(math.radians(TILT_DEG)) / PIXEL_SPACING[0]
    drift_i = 0.3 * positions[-1] * math.tan(math.radians(TILT_DEG)) / PIXEL_SPACING[1]
    assert grid.shape_kji == (8, ROWS + math.ceil(drift_j), COLUMNS + math.ceil(drift_i))
    assert np.allclose(grid.directions, np.eye(3))
    assert np.allclose(grid.origin_lps, slices[0].position_lps_mm)
    result = resample_stack(encode(slices), slices, grid)
    assert result.interpolated is True
    assert result.mask[0, :ROWS, :COLUMNS].all() and result.mask[0].sum() == ROWS * COLUMNS
    assert result.mask[-1].sum() == (ROWS - 1) * (COLUMNS - 1)  # a fractional shift loses an edge
    assert_reproduces(result, grid, 1.0, slices)
    assert_verified(slices, result, grid)


def test_tilt_deskew_of_a_negative_drift_moves_the_origin():
    slices = tilted(2.5 * np.arange(6), tilt_deg=-TILT_DEG)
    grid = build_grid(slices, 2.5)
    assert grid.origin_lps[1] < slices[0].position_lps_mm[1]  # the lattice reaches back to hold them
    result = resample_stack(encode(slices), slices, grid, interpolation="cubic")
    assert_reproduces(result, grid, 1.0, slices)
    assert_verified(slices, result, grid)


def test_tilt_deskew_edges_are_unions_of_the_slices_footprints():
    """A pixel only one of a plane's two slices covers is that slice's pixel, not background."""
    positions = 2.5 * np.arange(6)
    slices = tilted(positions)
    grid = build_grid(slices, 1.25)
    pixels = encode(slices)
    result = resample_stack(pixels, slices, grid)
    for m, plane in enumerate(result.planes):
        covered = np.zeros(grid.shape_kji[1:], bool)
        for s in plane.slice_indices:
            p = result.placements[s]
            j_lo, i_lo = math.ceil(p.j0 - 1e-3), math.ceil(p.i0 - 1e-3)
            j_hi, i_hi = math.floor(p.j0 + ROWS - 1 + 1e-3) + 1, math.floor(p.i0 + COLUMNS - 1 + 1e-3) + 1
            covered[j_lo:j_hi, i_lo:i_hi] = True
        assert np.array_equal(result.mask[m].astype(bool), covered), m
    assert_reproduces(result, grid, 1.0, slices)


def test_tilt_keep_is_a_sheared_grid_holding_the_pixels_unchanged():
    positions = 2.5 * np.arange(8)
    slices = tilted(positions, oblique())
    pixels = encode(slices)
    grid = build_grid(slices, 2.5, tilt="keep")
    stacking = np.subtract(slices[-1].position_lps_mm, slices[0].position_lps_mm)
    assert np.allclose(grid.directions[:, 2], stacking / np.linalg.norm(stacking))
    drift_per_mm = math.hypot(0.3, 1.0) * math.tan(math.radians(TILT_DEG))
    assert math.isclose(grid.spacing_mm[2], 2.5 * math.hypot(1.0, drift_per_mm))
    result = resample_stack(pixels, slices, grid)
    assert np.array_equal(result.volume, pixels) and result.interpolated is False and result.mask is None
    assert_verified(slices, result, grid)
    finer = build_grid(slices, 1.0, tilt="keep")
    result = resample_stack(pixels, slices, finer)
    assert_reproduces(result, finer, 1.0)
    assert all(p.i0 == 0.0 and p.j0 == 0.0 for p in result.placements)  # no in-plane resampling
    assert_verified(slices, result, finer)


def test_tilt_keep_with_non_linear_drift_shifts_the_slices_off_the_line():
    positions = 2.0 * np.arange(8)
    drift = np.column_stack([np.zeros(8), positions * 0.25 + np.where(positions > 7, 0.3, 0.0)])
    slices = make_stack(positions, drift)
    grid = build_grid(slices, 2.0, tilt="keep")
    stacked = [SlicePlacement(k, 0.0, 0.0, float(k)) for k in range(8)]  # what a plain stack does
    assert not verify_placements(slices, stacked, grid).ok
    result = resample_stack(encode(slices), slices, grid)
    assert any(p.j0 != 0.0 for p in result.placements) and result.interpolated is True
    assert_reproduces(result, grid, 1.0, slices)
    assert_verified(slices, result, grid)


# --- verification catches wrong grids -----------------------------------------------------------

def wrong(grid: OutputGrid, column: int, vector) -> OutputGrid:
    matrix = grid.index_to_lps.copy()
    matrix[:3, column] = vector
    return dataclasses.replace(grid, index_to_lps=matrix)


def test_verification_catches_wrong_grids():
    slices = tilted([0.0, 2.0, 4.0, 7.0, 9.0, 11.0], oblique())
    grid = build_grid(slices, 1.0)
    result = resample_stack(encode(slices), slices, grid)
    assert_verified(slices, result, grid, tolerance_mm=1e-6)
    m = grid.index_to_lps
    cases = {
        "shifted origin": wrong(grid, 3, m[:3, 3] + 0.5 * m[:3, 0] / np.linalg.norm(m[:3, 0])),
        "flipped k": wrong(grid, 2, -m[:3, 2]),
        "k spacing 1% off": wrong(grid, 2, 1.01 * m[:3, 2]),
        "flipped j": wrong(grid, 1, -m[:3, 1]),
        "i spacing 1% off": wrong(grid, 0, 1.01 * m[:3, 0]),
    }
    for name, bad in cases.items():
        check = verify_placements(slices, result.placements, bad)
        assert not check.ok and check.max_mm > 0.05, name
    flipped_k = verify_placements(slices, result.placements, cases["flipped k"])
    assert flipped_k.worst_slice == len(slices) - 1 and flipped_k.per_slice_mm[0] < 1e-9
    assert verify_placements(slices, result.placements, cases["flipped j"]).max_direction_deg > 179


def test_verification_catches_a_missing_deskew_and_a_wrong_sign_tilt():
    positions = 2.5 * np.arange(8)
    slices = tilted(positions)
    grid = build_grid(slices, 2.5, tilt="keep")
    result = resample_stack(encode(slices), slices, grid)
    orthogonal = wrong(grid, 2, 2.5 * np.array([0.0, 0.0, 1.0]))  # the stack written as untilted
    missing = verify_placements(slices, result.placements, orthogonal)
    drift = positions[-1] * math.tan(math.radians(TILT_DEG)) * math.hypot(0.3, 1.0)
    assert not missing.ok and missing.worst_slice == 7 and math.isclose(missing.max_mm, drift)
    mirrored = build_grid(tilted(positions, tilt_deg=-TILT_DEG), 2.5, tilt="keep")
    assert not verify_placements(slices, result.placements, mirrored).ok


def test_verification_reports_slices_outside_the_grid():
    slices = make_stack(2.0 * np.arange(6))
    grid = build_grid(slices, 2.0)
    result = resample_stack(encode(slices), slices, grid)
    short = dataclasses.replace(grid, shape_kji=(4, ROWS, COLUMNS))
    check = verify_placements(slices, result.placements, short)
    assert check.ok and check.outside == [4, 5]


def test_grids_the_resampler_cannot_fill_are_refused():
    slices = make_stack(2.0 * np.arange(4))
    grid = build_grid(slices, 2.0)
    with pytest.raises(ValueError, match="i step"):
        resample_stack(encode(slices), slices, wrong(grid, 0, 2 * grid.index_to_lps[:3, 0]))
    with pytest.raises(ValueError, match="increasing position"):
        build_grid(slices[::-1], 2.0)


# --- identical results in every supported environment --------------------------------------------

VOLUME_DIGESTS = {
    "linear": "f6f5b7a4c406ca25903875a3383c9d7cfe13d273ed5d69412ee2f5b6b8aa4819",
    "nearest": "bc584f0438a7660020872114bb09464135e11a15a8db6da36d49337387112aea",
    "cubic": "530e903b4557f724f2a24dd8d5d75d957af8c0ef9ebc0540d4e9550593b534dc",
}


@pytest.mark.parametrize("interpolation", sorted(VOLUME_DIGESTS))
def test_volumes_are_identical_across_environments(interpolation):
    """The same bytes with every pinned numpy: the arithmetic is float32 IEEE in a fixed
    order, so a digest pins it."""
    positions = [0.0, 1.25, 2.5, 5.0, 6.0, 6.5, 9.0, 12.5, 13.0]
    slices = tilted(positions)
    k, j, i = np.indices((len(positions), ROWS, COLUMNS))
    pixels = ((i * 37 + j * 101 + k * 53) % 997 - 500).astype(np.int16)  # not linear: rounding shows
    grid = build_grid(slices, 0.6)
    result = resample_stack(pixels, slices, grid, interpolation=interpolation)
    digest = hashlib.sha256(result.volume.tobytes() + result.mask.tobytes()).hexdigest()
    assert digest == VOLUME_DIGESTS[interpolation]


@pytest.mark.parametrize("interpolation", ["linear", "cubic"])
def test_planes_filled_on_threads_equal_planes_filled_in_one(monkeypatch, interpolation):
    """Large volumes are filled by several threads, each with its own cache of shifted slices;
    the threshold is lowered here so that a small tilted, irregular stack takes that path."""
    from irregular_series import resample

    positions = [0.0, 1.5, 3.0, 5.5, 6.0, 9.0, 10.0, 10.8, 13.0]
    slices = tilted(positions, oblique())
    grid = build_grid(slices, 0.7)
    pixels = encode(slices)
    single = resample_stack(pixels, slices, grid, interpolation=interpolation)
    monkeypatch.setattr(resample, "PARALLEL_MIN_VOXELS", 1)
    monkeypatch.setattr(resample.os, "cpu_count", lambda: 3)
    threaded = resample_stack(pixels, slices, grid, interpolation=interpolation)
    np.testing.assert_array_equal(threaded.volume, single.volume)
    np.testing.assert_array_equal(threaded.mask, single.mask)
    assert threaded.interpolated == single.interpolated
