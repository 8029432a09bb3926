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
    for header in slices:
        if not header.has_geometry:
            raise ValueError(f"{header.label}: no geometry to verify against")
    rotation, origin = grid.index_to_lps[:3, :3], grid.index_to_lps[:3, 3]
    placed, expected = _corners(slices, placements)
    axis_i = np.array([p.axis_i for p in placements], float)
    axis_j = np.array([p.axis_j for p in placements], float)
    row_cosines = np.array([h.row_cosines for h in slices], float)
    col_cosines = np.array([h.col_cosines for h in slices], float)
    residuals = np.linalg.norm(placed @ rotation.T + origin - expected, axis=2).max(axis=1)
    angles = np.maximum(_angles_deg(axis_i @ rotation.T, row_cosines), _angles_deg(axis_j @ rotation.T, col_cosines))
    outside = np.flatnonzero(_outside_mm(placed, grid) > tolerance_mm)
    worst = int(np.argmax(residuals))
    return VerificationResult(
        max_mm=float(residuals[worst]),
        mean_mm=float(np.mean(residuals)),
        per_slice_mm=residuals.tolist(),
        worst_slice=worst,
        direction_deg=angles.tolist(),
        max_direction_deg=float(angles.max()),
        outside=outside.tolist(),
        tolerance_mm=tolerance_mm,
        ok=bool(residuals[worst] <= tolerance_mm and angles.max() <= direction_tolerance_deg),
    )


def _corners(
    slices: Sequence[SliceHeader], placements: Sequence[SlicePlacement]
) -> tuple[np.ndarray, np.ndarray]:
    """The four corner pixel centres of every slice, (N, 4, 3): output indices where the placements
    put them, and LPS mm where the headers put them. Corner c is column a * (Columns - 1), row
    b * (Rows - 1), for (a, b) in (0, 0), (1, 0), (0, 1), (1, 1)."""
    a = np.array([0.0, 1.0, 0.0, 1.0])
    b = np.array([0.0, 0.0, 1.0, 1.0])
    columns = (a * np.array([h.columns - 1 for h in slices], float)[:, None])[..., None]
    rows = (b * np.array([h.rows - 1 for h in slices], float)[:, None])[..., None]
    start = np.array([(p.i0, p.j0, p.k) for p in placements], float)
    axis_i = np.array([p.axis_i for p in placements], float)
    axis_j = np.array([p.axis_j for p in placements], float)
    placed = start[:, None] + columns * axis_i[:, None] + rows * axis_j[:, None]
    steps = np.array([h.pixel_steps_mm for h in slices], float)
    row_step = steps[:, 0, None] * np.array([h.row_cosines for h in slices], float)
    col_step = steps[:, 1, None] * np.array([h.col_cosines for h in slices], float)
    ipp = np.array([h.position_lps_mm for h in slices], float)
    expected = ipp[:, None] + columns * row_step[:, None] + rows * col_step[:, None]
    return placed, expected


def _angles_deg(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Row-wise angles (degrees) between the directions in ``u`` and ``v``, both (N, 3)."""
    cos = np.sum(u * v, axis=1) / (np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1))
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def _outside_mm(placed: np.ndarray, grid: OutputGrid) -> np.ndarray:
    """Per slice, how far (mm, along each grid axis) its furthest placed corner (``placed``: N, 4, 3
    output indices) lies outside the grid's voxel centres; 0 when all are inside."""
    upper = np.array(grid.shape_kji[::-1], dtype=float) - 1
    beyond = np.maximum(np.maximum(-placed, placed - upper), 0.0)
    return (beyond * np.array(grid.spacing_mm)).max(axis=(1, 2))
