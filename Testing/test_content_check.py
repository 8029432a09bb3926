"""The content check (``content_check.py``): it passes what the resampler makes, and it fails
volumes whose voxels were broken after resampling — a slice shifted by a pixel, a blanked row, a
lost edge band — naming the slice. Stacks are built in memory as in ``test_resample``."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from irregular_series.content_check import REFERENCE_STRIDE, check_content, reference_sample
from irregular_series.grid import build_grid
from irregular_series.resample import resample_stack, slice_reach_mm

from test_resample import PIXEL_SPACING, encode, make_stack, oblique, tilted


def resampled(slices, spacing, *, tilt="deskew", interpolation="linear", gaps="interpolate", max_gap_mm=None,
              pixels=None):
    pixels = encode(slices) if pixels is None else pixels
    grid = build_grid(slices, spacing, tilt)
    positions = np.array([s.position_lps_mm for s in slices]) @ np.cross(slices[0].row_cosines, slices[0].col_cosines)
    steps = np.diff(positions)
    gap_after = steps > max_gap_mm if gaps == "blank" else np.zeros(len(steps), bool)
    reach = slice_reach_mm(slices, positions, gap_after)
    result = resample_stack(pixels, slices, grid, interpolation=interpolation, gaps=gaps,
                            blank_after=list(np.flatnonzero(gap_after)), reach_mm=reach)
    return pixels, grid, result, gap_after, reach


def check(slices, pixels, grid, result, gap_after, reach, *, interpolation="linear", volume=None, mask="same",
          spacing=None):
    volume = result.volume if volume is None else volume
    mask = result.mask if isinstance(mask, str) else mask
    background = None if mask is None else float(pixels.min())
    return check_content(volume, mask, grid, slices, pixels, interpolation=interpolation, gap_after=gap_after,
                         reach_mm=reach, background=background,
                         spacing_mm=spacing or float(grid.spacing_mm[2]))


CLEAN = {
    "regular copy": (lambda: make_stack(2.0 * np.arange(8)), 2.0, {}),
    "variable steps": (lambda: make_stack([0.0, 4.0, 8.0, 12.0, 19.0, 26.0, 33.0], orientation=oblique()), 1.5, {}),
    "tilted deskew": (lambda: tilted(2.5 * np.arange(8)), 1.0, {}),
    "tilted deskew cubic": (lambda: tilted([0.0, 1.5, 3.0, 5.5, 6.0, 9.0, 10.0], oblique()), 0.7,
                            {"interpolation": "cubic"}),
    "tilted keep": (lambda: tilted(2.5 * np.arange(8), oblique()), 1.0, {"tilt": "keep"}),
    "nearest": (lambda: make_stack([0.0, 2.0, 5.0, 6.0, 10.0], orientation=oblique()), 0.75,
                {"interpolation": "nearest"}),
    "blank gaps": (lambda: make_stack(np.delete(2.0 * np.arange(12), [4, 5, 9])), 1.0,
                   {"gaps": "blank", "max_gap_mm": 3.0}),
}


@pytest.mark.parametrize("case", sorted(CLEAN))
def test_what_the_resampler_makes_passes(case):
    make, spacing, options = CLEAN[case]
    slices = make()
    pixels, grid, result, gap_after, reach = resampled(slices, spacing, **options)
    content = check(slices, pixels, grid, result, gap_after, reach,
                    interpolation=options.get("interpolation", "linear"))
    assert content.ok, content.failure
    summary = content.summary()
    assert summary["slices"] == len(slices) and summary["footprint_min"] == 1.0
    assert summary["reference_max_error"] <= summary["tolerances"]["value"]
    assert summary["voxels_checked"] > 0


def test_copies_count_as_exact_and_the_end_plane_is_checked():
    slices = make_stack(2.0 * np.arange(8))
    pixels, grid, result, gap_after, reach = resampled(slices, 2.0)
    content = check(slices, pixels, grid, result, gap_after, reach)
    assert content.summary()["exact_slices"] == 8 and content.summary()["ncc_min"] == 1.0
    shorter = make_stack([0.0, 2.0, 4.0, 6.0, 7.0])
    pixels, grid, result, gap_after, reach = resampled(shorter, 2.5)
    assert result.planes[-1].extrapolated_mm > 0
    broken = result.volume.copy()
    broken[-1] += 3  # the extrapolated end plane no longer copies the last slice
    content = check(shorter, pixels, grid, result, gap_after, reach, volume=broken)
    assert not content.ok and "slice004" in content.failure


def test_beside_a_bit_for_bit_copy_the_reference_still_checks_the_plane():
    """The reference leaves out only the sample voxels inside a slice's bit-for-bit copy (that
    comparison proves them); the rest of the plane is still computed: a background voxel beside
    the copy that holds a value fails."""
    slices = make_stack(2.0 * np.arange(8), [(0.0, 0.0)] * 4 + [(0.0, 3 * PIXEL_SPACING[0])] * 4)
    pixels, grid, result, gap_after, reach = resampled(slices, 2.0)  # the last 4 slices 3 rows further on
    content = check(slices, pixels, grid, result, gap_after, reach)
    assert content.ok and content.summary()["exact_slices"] == 8
    assert content.summary()["voxels_checked"] == len(reference_sample(result.volume.shape))
    beside = [tuple(v) for v in reference_sample(result.volume.shape) if result.mask[tuple(v)] == 0]
    assert beside, "the sample has voxels beside the copies"
    broken = result.volume.copy()
    broken[beside[0]] += 7
    content = check(slices, pixels, grid, result, gap_after, reach, volume=broken)
    assert not content.ok and "no input slice reaches it" in content.failure


def test_a_copied_slice_shifted_by_one_pixel_fails_naming_it():
    slices = make_stack(2.0 * np.arange(8))
    pixels, grid, result, gap_after, reach = resampled(slices, 2.0)
    broken = result.volume.copy()
    broken[5] = np.roll(broken[5], 1, axis=1)
    content = check(slices, pixels, grid, result, gap_after, reach, volume=broken)
    assert not content.ok
    assert "slice005.dcm" in content.failure


def test_an_interpolated_plane_shifted_by_one_pixel_fails():
    slices = tilted(2.5 * np.arange(8))
    pixels, grid, result, gap_after, reach = resampled(slices, 1.0)
    k = 7  # a plane between two slices
    assert len(result.planes[k].slice_indices) == 2
    broken = result.volume.copy()
    broken[k] = np.roll(broken[k], 1, axis=0)
    content = check(slices, pixels, grid, result, gap_after, reach, volume=broken)
    assert not content.ok and "content check failed near slice00" in content.failure


def test_a_blanked_row_fails():
    slices = make_stack([0.0, 1.5, 3.0, 4.5, 6.0, 7.5, 9.0], orientation=oblique())
    pixels, grid, result, gap_after, reach = resampled(slices, 1.0)
    broken, mask = result.volume.copy(), np.ones(result.volume.shape, np.uint8)
    k = 4  # an interpolated plane; its row 3 * k modulo the stride is in the fixed sub-sample
    assert len(result.planes[k].slice_indices) == 2
    j = (3 * k) % REFERENCE_STRIDE
    broken[k, j] = pixels.min()
    content = check(slices, pixels, grid, result, gap_after, reach, volume=broken, mask=None)
    assert not content.ok and "holds" in content.failure
    # Marked as background in the mask too, it is input lost: the check still fails.
    mask[k, j] = 0
    content = check(slices, pixels, grid, result, gap_after, reach, volume=broken, mask=mask)
    assert not content.ok


def test_an_edge_band_lost_to_background_fails_naming_the_slice():
    """What deskewing did before footprints were unions: rows only one of a plane's two slices
    covers became background."""
    slices = tilted(2.5 * np.arange(6))
    pixels, grid, result, gap_after, reach = resampled(slices, 1.25)
    broken, mask = result.volume.copy(), result.mask.copy()
    for m, plane in enumerate(result.planes):
        if len(plane.slice_indices) == 2:
            a, b = (result.placements[s] for s in plane.slice_indices)
            band = slice(int(np.ceil(a.j0)), int(np.ceil(b.j0)))  # rows b does not cover
            broken[m, band], mask[m, band] = pixels.min(), 0
    content = check(slices, pixels, grid, result, gap_after, reach, volume=broken, mask=mask)
    assert not content.ok and "slice00" in content.failure


def test_reproduction_below_the_step_is_a_warning_naming_the_spacing_that_keeps_it():
    positions = [0.0, 4.0, 8.0, 12.0, 16.0, 20.0, 27.0, 34.0, 41.0, 48.0]
    slices = [dataclasses.replace(s, slice_thickness_mm=4.0) for s in make_stack(positions)]
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 1000, (len(slices), 20, 24)).astype(np.int16)  # slices unlike each other
    pixels, grid, result, gap_after, reach = resampled(slices, 7.0, pixels=pixels)
    content = check(slices, pixels, grid, result, gap_after, reach)
    assert content.ok  # coarse is a choice, not a failure
    (warning, *_) = content.warnings
    assert "the 7 mm spacing is coarser than their 4 mm step; a spacing of 4 mm keeps them" in warning
    assert content.summary()["ncc_min"] < 0.99


def test_blank_gaps_at_a_coarse_spacing_report_the_slices_beside_them_apart():
    positions = np.delete(2.5 * np.arange(40), [12, 13, 14])
    slices = [dataclasses.replace(s, slice_thickness_mm=2.5) for s in make_stack(positions)]
    pixels, grid, result, gap_after, reach = resampled(slices, 32.5, gaps="blank", max_gap_mm=3.0)
    assert result.planes[1].blank
    content = check(slices, pixels, grid, result, gap_after, reach)
    assert content.ok, content.failure
    assert content.summary()["footprint_min"] == 1.0
