"""The output grid: the regular lattice that one stack of parallel slices is resampled onto.

A grid is a shape and a 4x4 matrix taking homogeneous voxel indices (i, j, k, 1) to LPS mm; its
columns are the i, j and k step vectors and the centre of voxel (0, 0, 0). The in-plane axes are
always the slices' own: i along the row direction with the column step, j along the column
direction with the row step, so that no in-plane scaling or rotation is ever needed. Along the
stack there are two choices for tilted (gantry tilt) stacks:

``deskew``
    k along the slice normal: an orthogonal grid. Slices whose positions drift in-plane are shifted
    onto the grid's lattice, which is widened so that no slice's footprint is cut.
``keep``
    k along the stacking direction (the line fitted through the positions): a sheared grid that
    holds the slices' own pixels without in-plane resampling. It is exact when the in-plane drift
    is linear in the position along the normal; when it is not, the slices that leave the fitted
    line show it as in-plane offsets in their placements (see ``resample.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .model import SliceHeader, as_vec3
from .orientation import LPS_TO_RAS, normal_of, positions_along
from .policies import TiltPolicy
from .tolerances import DEFAULT, Tolerances


@dataclass(frozen=True, eq=False)
class OutputGrid:
    """``shape_kji`` = (K, J, I) voxels, as numpy volumes are indexed [k, j, i];
    ``index_to_lps`` maps (i, j, k, 1) to LPS mm (read-only copy)."""

    shape_kji: tuple[int, int, int]
    index_to_lps: np.ndarray

    def __post_init__(self) -> None:
        matrix = np.array(self.index_to_lps, dtype=float)
        if matrix.shape != (4, 4) or not np.array_equal(matrix[3], [0.0, 0.0, 0.0, 1.0]):
            raise ValueError("index_to_lps must be a 4x4 affine matrix")
        if abs(np.linalg.det(matrix[:3, :3])) == 0.0:
            raise ValueError("index_to_lps has degenerate step vectors")
        matrix.setflags(write=False)
        object.__setattr__(self, "index_to_lps", matrix)
        object.__setattr__(self, "shape_kji", tuple(int(v) for v in self.shape_kji))

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """Step lengths along i, j, k (mm). For a sheared grid the k step is longer than the
        distance between planes."""
        return as_vec3(np.linalg.norm(self.index_to_lps[:3, :3], axis=0))

    @property
    def directions(self) -> np.ndarray:
        """3x3, columns the unit i, j, k directions (LPS)."""
        steps = self.index_to_lps[:3, :3]
        return steps / np.linalg.norm(steps, axis=0)

    @property
    def origin_lps(self) -> np.ndarray:
        """Centre of voxel (0, 0, 0), LPS mm."""
        return self.index_to_lps[:3, 3].copy()

    def index_to_ras(self) -> np.ndarray:
        """The same matrix with RAS output (MRML, NIfTI)."""
        return LPS_TO_RAS @ self.index_to_lps

    def lps_to_index(self) -> np.ndarray:
        """Inverse of ``index_to_lps``: LPS mm to continuous voxel indices (i, j, k)."""
        return np.linalg.inv(self.index_to_lps)


@dataclass(frozen=True, eq=False)
class StackFrame:
    """The common geometry of a stack as arrays: in-plane axes, steps and slice positions.

    ``row``/``col``/``normal`` are unit LPS vectors taken from the first slice (the slices share
    one orientation); ``step_i_mm``/``step_j_mm`` the pixel steps along them; ``ipp_lps`` (N, 3)
    the positions of pixel (0, 0); ``positions_mm`` their projections on the normal, increasing.
    """

    row: np.ndarray
    col: np.ndarray
    normal: np.ndarray
    step_i_mm: float
    step_j_mm: float
    rows: int
    columns: int
    ipp_lps: np.ndarray
    positions_mm: np.ndarray

    @classmethod
    def from_slices(cls, slices: Sequence[SliceHeader], tol: Tolerances = DEFAULT) -> StackFrame:
        """The frame of ``slices``; ``ValueError`` unless they share size and PixelSpacing (within
        ``tol.pixel_spacing_relative``) and are sorted along the normal."""
        if not slices:
            raise ValueError("no slices")
        first = slices[0]
        for s in slices:
            if not s.has_geometry:
                raise ValueError(f"{s.label}: no geometry (IOP, IPP or PixelSpacing missing)")
            if (s.rows, s.columns) != (first.rows, first.columns):
                raise ValueError(f"{s.label}: {s.rows}x{s.columns} pixels, "
                                 f"first slice has {first.rows}x{first.columns}")
        spacings = np.array([s.pixel_spacing_mm for s in slices], dtype=float)
        differs = np.abs(spacings - spacings[0]).max(axis=1) > tol.pixel_spacing_relative * spacings[0].max()
        if differs.any():
            other = slices[int(np.argmax(differs))]
            raise ValueError(f"{other.label}: pixel spacing {other.pixel_spacing_mm} differs from "
                             f"the first slice's {first.pixel_spacing_mm}")
        row = np.asarray(first.row_cosines, float)
        col = np.asarray(first.col_cosines, float)
        normal = normal_of(row, col)
        ipp = np.array([s.position_lps_mm for s in slices], dtype=float)
        positions = positions_along(slices, normal)
        if np.any(np.diff(positions) <= 0):
            raise ValueError("slices must be sorted by strictly increasing position along the normal")
        step_i, step_j = first.pixel_steps_mm
        return cls(row, col, normal, step_i, step_j, first.rows, first.columns, ipp, positions)


def build_grid(
    slices: Sequence[SliceHeader],
    slice_spacing_mm: float,
    tilt: TiltPolicy = TiltPolicy.DESKEW,
    *,
    tolerances: Tolerances = DEFAULT,
) -> OutputGrid:
    """The grid for ``slices`` (one orientation, sorted by position) with planes
    ``slice_spacing_mm`` apart along the normal.

    The first plane is at the first slice's position; planes follow every ``slice_spacing_mm``
    until one reaches the last slice: ``K = ceil(span / spacing x (1 - tolerances.plane_count_slack))
    + 1`` (a span of whole spacings, within the slack, ends on the last slice). When the span is
    not a whole number of spacings the last plane lies past the last slice by less than one
    spacing, so every input slice is inside the grid; the resampler fills that plane from the last
    slice only within the slice's reach (see ``resample.slice_reach_mm``).

    ``deskew``: k = spacing x normal. In-plane the grid holds every slice's footprint; its lattice
    stays aligned to the first slice's pixels (offsets are whole pixels), so an untilted stack
    gets exactly the slices' rows x columns and the first slice's position as origin.
    ``keep``: k = the stacking direction (least-squares line through the positions), scaled so
    that consecutive planes are ``slice_spacing_mm`` apart along the normal; rows x columns, origin
    on the fitted line at the first slice's position.
    """
    if not slice_spacing_mm > 0 or not math.isfinite(slice_spacing_mm):
        raise ValueError(f"slice spacing must be a positive number of mm, got {slice_spacing_mm}")
    frame = StackFrame.from_slices(slices, tolerances)
    span = frame.positions_mm[-1] - frame.positions_mm[0]
    planes = math.ceil((span - tolerances.lattice_snap_mm) / slice_spacing_mm * (1 - tolerances.plane_count_slack)) + 1
    matrix = np.eye(4)
    matrix[:3, 0] = frame.step_i_mm * frame.row
    matrix[:3, 1] = frame.step_j_mm * frame.col
    if tilt == "deskew":
        matrix[:3, 2] = slice_spacing_mm * frame.normal
        (i_first, columns), (j_first, rows) = _footprint_cover(frame, tolerances.lattice_snap_mm)
        matrix[:3, 3] = frame.ipp_lps[0] + i_first * matrix[:3, 0] + j_first * matrix[:3, 1]
    elif tilt == "keep":
        drift_per_mm, origin = _stack_line(frame)
        matrix[:3, 2] = slice_spacing_mm * (frame.normal + drift_per_mm)
        matrix[:3, 3] = origin
        rows, columns = frame.rows, frame.columns
    else:
        raise ValueError(f"tilt must be 'deskew' or 'keep', got {tilt!r}")
    return OutputGrid((planes, rows, columns), matrix)


def _footprint_cover(frame: StackFrame, snap_mm: float) -> tuple[tuple[int, int], tuple[int, int]]:
    """(first index, count) along i and along j of the smallest lattice aligned to the first slice
    that holds every slice's pixel centres, in that slice's pixel units."""
    offsets = frame.ipp_lps - frame.ipp_lps[0]
    cover = []
    axes = ((frame.row, frame.step_i_mm, frame.columns), (frame.col, frame.step_j_mm, frame.rows))
    for axis, step, size in axes:
        pixels = offsets @ axis / step
        slack = snap_mm / step
        first = math.floor(pixels.min() + slack)
        last = math.ceil(pixels.max() + size - 1 - slack)
        cover.append((first, last - first + 1))
    return cover[0], cover[1]


def _stack_line(frame: StackFrame) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares line through the slice positions: the in-plane drift per mm along the normal
    (an LPS vector orthogonal to the normal) and the line's point at the first slice's position."""
    z = frame.positions_mm - frame.positions_mm[0]
    in_plane = frame.ipp_lps - np.outer(frame.ipp_lps @ frame.normal, frame.normal)
    if len(z) == 1:
        return np.zeros(3), frame.ipp_lps[0].copy()
    design = np.column_stack([np.ones_like(z), z])
    (start, drift), *_ = np.linalg.lstsq(design, in_plane, rcond=None)
    drift = drift - (drift @ frame.normal) * frame.normal  # rounding: keep plane distances exact
    start = start - (start @ frame.normal) * frame.normal
    return drift, start + frame.positions_mm[0] * frame.normal
