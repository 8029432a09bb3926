"""A volume sampled at the DICOM pixel positions of slices, nearest voxel (``irregular_series.mapback``)."""

from __future__ import annotations

import numpy as np
import pytest

from irregular_series import analyze
from irregular_series.geometry import pixel_to_lps, slice_corners_lps
from irregular_series.mapback import nearest_on_slices


@pytest.fixture
def tilted(write_phantom):
    return next(s for s in analyze([write_phantom("gantry_tilt")]).series[0].stacks if s.role == "volume")


def _grid() -> np.ndarray:
    """Index to LPS of a rotated 1.3 x 0.9 x 1.7 mm grid around the phantom."""
    angle = np.radians(25.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0.0], [np.sin(angle), np.cos(angle), 0.0], [0.0, 0.0, 1.0]])
    matrix = np.eye(4)
    matrix[:3, :3] = rotation @ np.diag([1.3, 0.9, 1.7])
    matrix[:3, 3] = [-20.0, -25.0, -30.0]
    return matrix


def test_each_pixel_takes_the_voxel_nearest_to_its_dicom_position(tilted):
    volume = np.arange(40 * 50 * 45, dtype=np.int32).reshape(40, 50, 45) + 1  # [k, j, i], every voxel its own label
    to_index = np.linalg.inv(_grid())
    out = nearest_on_slices(volume, tilted.slices, to_index)
    assert out.shape == (tilted.slice_count, 32, 32) and out.dtype == volume.dtype
    for n, j, i in [(0, 0, 0), (3, 31, 5), (19, 17, 31), (11, 8, 8)]:
        s = tilted.slices[n]
        between_rows, between_columns = s.pixel_spacing_mm
        lps = np.asarray(s.position_lps_mm) + i * between_columns * np.asarray(s.row_cosines) \
            + j * between_rows * np.asarray(s.col_cosines)
        ci, cj, ck = (to_index @ [*lps, 1.0])[:3]
        assert out[n, j, i] == volume[round(ck), round(cj), round(ci)]
    # the same through a point-mapping function (a non-linear transform between the two)
    through = nearest_on_slices(volume, tilted.slices, lambda lps: lps @ to_index[:3, :3].T + to_index[:3, 3])
    np.testing.assert_array_equal(through, out)


def test_outside_the_volume_is_background_from_half_a_voxel_beyond_its_centres(tilted):
    first = tilted.slices[:1]
    (to_lps,) = pixel_to_lps(first)
    volume = np.full((1, 1, 4), 7, np.uint8)
    # A grid whose i axis runs along the slice's rows, one voxel per pixel, starting at pixel 10:
    # voxel centres at pixels 10..13 reach pixels 9.5..13.5.
    grid = to_lps.copy()
    grid[:3, 3] = to_lps[:3] @ [10.0, 5.0, 0.0, 1.0]
    out = nearest_on_slices(volume, first, np.linalg.inv(grid), background=3)
    row = out[0, 5]
    assert list(np.flatnonzero(row == 7)) == [10, 11, 12, 13]
    assert np.all(np.delete(out[0], 5, axis=0) == 3) and np.count_nonzero(row == 3) == 28
    shifted = grid.copy()
    shifted[:3, 3] -= 0.5 * grid[:3, 0]  # centres at pixels 9.5..12.5: pixels 9 and 13 exactly halfway
    row = nearest_on_slices(volume, first, np.linalg.inv(shifted), background=3)[0, 5]
    assert list(np.flatnonzero(row == 7)) == [9, 10, 11, 12]  # each takes the voxel above it


def test_pixel_matrices_give_slicers_lattice_corners(tilted):
    matrices = pixel_to_lps(tilted.slices)
    corners = slice_corners_lps(tilted.slices)
    np.testing.assert_allclose(matrices[:, :3, 3], corners[:, 0, 0])
    np.testing.assert_allclose(np.einsum("nij,j->ni", matrices[:, :3], [32, 32, 0, 1]), corners[:, 1, 1])
    np.testing.assert_allclose(np.linalg.norm(matrices[:, :3, 2], axis=1), 1.0)
