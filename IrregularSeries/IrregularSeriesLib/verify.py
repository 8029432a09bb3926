"""Independent check of a resampled volume's geometry against every input slice's header.

For each input slice, its placement (where the resampler put its pixel lattice, in output voxel
indices) is mapped through the grid's index-to-LPS matrix and compared with where the slice's own
IPP, IOP and PixelSpacing say its pixel centres are. Nothing here reuses the resampler's or the
grid builder's arithmetic: a wrong origin, a flipped or mis-scaled axis, a missing deskew or a
wrong-sign tilt all move some corner away from where the header puts it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .grid import OutputGrid
from .model import SliceHeader
from .orientation import angle_deg
from .resample import SlicePlacement
from .tolerances import DEFAULT


@dataclass
class VerificationResult:
    """Per-slice residuals (mm): the largest distance, over the slice's four corner pixel centres,
    between where the volume puts them and where the header does. ``direction_deg``: the larger
    angle between the volume's and the header's row / column directions. ``outside``: slices
    (spatial indices) with a corner outside the grid's voxel centres by more than the tolerance;
    with ``build_grid``'s grids that can be the last slice, up to one spacing past the last plane.
    ``ok``: residuals and angles within tolerance."""

    max_mm: float
    mean_mm: float
    per_slice_mm: list[float]
    worst_slice: int
    direction_deg: list[float]
    max_direction_deg: float
    outside: list[int]
    tolerance_mm: float
    ok: bool


def verify_placements(
    slices: Sequence[SliceHeader],
    placements: Sequence[SlicePlacement],
    grid: OutputGrid,
    tolerance_mm: float = DEFAULT.verify_mm,
    *,
    direction_tolerance_deg: float = DEFAULT.orientation_deg,
) -> VerificationResult:
    """Check where ``grid`` + ``placements`` put each of ``slices`` (same order) against its
    header."""
    if len(slices) != len(placements):
        raise ValueError(f"{len(slices)} slices but {len(placements)} placements")
    if not slices:
        raise ValueError("no slices to verify")
    matrix = grid.index_to_lps
    residuals, angles, outside = [], [], []
    for index, (header, placement) in enumerate(zip(slices, placements)):
        placed, expected = _corners(header, placement)
        lps = placed @ matrix[:3, :3].T + matrix[:3, 3]
        residuals.append(float(np.max(np.linalg.norm(lps - expected, axis=1))))
        angles.append(max(angle_deg(matrix[:3, :3] @ placement.axis_i, header.row_cosines),
                          angle_deg(matrix[:3, :3] @ placement.axis_j, header.col_cosines)))
        if _outside_mm(placed, grid) > tolerance_mm:
            outside.append(index)
    worst = int(np.argmax(residuals))
    return VerificationResult(
        max_mm=residuals[worst],
        mean_mm=float(np.mean(residuals)),
        per_slice_mm=residuals,
        worst_slice=worst,
        direction_deg=angles,
        max_direction_deg=max(angles),
        outside=outside,
        tolerance_mm=tolerance_mm,
        ok=residuals[worst] <= tolerance_mm and max(angles) <= direction_tolerance_deg,
    )


def _corners(header: SliceHeader, placement: SlicePlacement) -> tuple[np.ndarray, np.ndarray]:
    """The four corner pixel centres of a slice: (4, 3) output indices where the placement puts
    them, and (4, 3) LPS mm where the header puts them."""
    if not header.has_geometry:
        raise ValueError(f"{header.label}: no geometry to verify against")
    last_column, last_row = header.columns - 1, header.rows - 1
    ab = np.array([(0, 0), (1, 0), (0, 1), (1, 1)], dtype=float)
    placed = (np.array([placement.i0, placement.j0, placement.k])
              + np.outer(ab[:, 0] * last_column, placement.axis_i)
              + np.outer(ab[:, 1] * last_row, placement.axis_j))
    row_step = header.pixel_spacing_mm[1] * np.asarray(header.row_cosines, float)
    col_step = header.pixel_spacing_mm[0] * np.asarray(header.col_cosines, float)
    expected = (np.asarray(header.position_lps_mm, float)
                + np.outer(ab[:, 0] * last_column, row_step)
                + np.outer(ab[:, 1] * last_row, col_step))
    return placed, expected


def _outside_mm(placed: np.ndarray, grid: OutputGrid) -> float:
    """How far (mm, along each grid axis) the furthest placed corner lies outside the grid's
    voxel centres; 0 when all are inside."""
    upper = np.array(grid.shape_kji[::-1], dtype=float) - 1
    beyond = np.maximum(np.maximum(-placed, placed - upper), 0.0)
    return float(np.max(beyond * np.array(grid.spacing_mm)))
