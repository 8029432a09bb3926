"""One in-plane lattice for slices of different fields of view, pixel spacings and matrices.

The resampler (``resample.py``) works on slices that share one in-plane grid: it only shifts them
along their own rows and columns. Series assembled into one volume may differ in-plane, so each
of their slices is first mapped onto a *union lattice*: the slices' common row and column
directions, the finest pixel spacing among them (or a chosen one), aligned to the pixels of the
first slice at that spacing, and wide enough to hold every slice's pixel centres. Because all the
slices are parallel, the mapping is separable: along each axis an output pixel reads the source
at ``u = a + b x``. Where ``b`` is 1 and ``a`` a whole number of pixels (same spacing, lattices
aligned) the mapping is a copy, bit for bit; otherwise it interpolates (nearest, linear or Keys
cubic, as the volume's interpolation). Output pixels a slice does not reach are marked invalid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from .model import SliceHeader, as_vec3
from .orientation import normal_of, pixel_centre_range_mm
from .policies import Interpolation
from .resample import SlicePlacement
from .tolerances import DEFAULT


@dataclass(frozen=True, eq=False)
class UnionLattice:
    """The in-plane lattice: pixel (i, j) of a slice at position ``z`` along ``normal`` is at
    ``origin_lps + i * step_i_mm * row + j * step_j_mm * col + z * normal`` (``origin_lps`` has no
    component along ``normal``)."""

    row: np.ndarray
    col: np.ndarray
    normal: np.ndarray
    step_i_mm: float
    step_j_mm: float
    columns: int
    rows: int
    origin_lps: np.ndarray

    def header(self, s: SliceHeader, rank: int) -> SliceHeader:
        """``s`` as it is after mapping onto the lattice: same file and frame (so reports name the
        source), the lattice's size, spacing and directions, its position along the normal, and
        ``rank`` as instance number with no acquisition tags (the assembled stack's order is
        spatial; the stations' own numbering would read as stitched sections)."""
        z = float(np.dot(s.pose.position_lps_mm, self.normal))
        return replace(
            s,
            rows=self.rows,
            columns=self.columns,
            pixel_spacing_mm=(self.step_j_mm, self.step_i_mm),  # as the tag lists them: between rows first
            row_cosines=as_vec3(self.row),
            col_cosines=as_vec3(self.col),
            position_lps_mm=as_vec3(self.origin_lps + z * self.normal),
            instance_number=rank,
            acquisition_number=None,
            content_time="",
            acquisition_time="",
            temporal_position=None,
        )


def union_lattice(slices: Sequence[SliceHeader], spacing_mm: float | None = None,
                  snap_mm: float = DEFAULT.lattice_snap_mm) -> UnionLattice:
    """The lattice holding every slice's pixel centres at the finest pixel spacing among them
    (separately for rows and columns), or at ``spacing_mm`` in both directions; aligned to the
    first slice with the finest spacing (to the first slice when ``spacing_mm`` is given)."""
    first = slices[0].pose
    row = np.asarray(first.row_cosines, float)
    col = np.asarray(first.col_cosines, float)
    normal = normal_of(row, col)
    steps = np.array([s.pixel_steps_mm for s in slices], float)  # (i step, j step) of each slice
    if spacing_mm is None:
        step_i, step_j = float(steps[:, 0].min()), float(steps[:, 1].min())
        finest = steps.prod(axis=1)
        reference = slices[int(np.argmin(finest))]
    else:
        step_i = step_j = float(spacing_mm)
        reference = slices[0]
    anchor = np.asarray(reference.pose.position_lps_mm, float)
    anchor = anchor - (anchor @ normal) * normal
    starts, counts = [], []
    for axis, step in ((row, step_i), (col, step_j)):
        low_mm, high_mm = pixel_centre_range_mm(slices, axis)
        slack = snap_mm / step
        lo = math.floor((low_mm - anchor @ axis) / step + slack)
        hi = math.ceil((high_mm - anchor @ axis) / step - slack)
        starts.append(lo)
        counts.append(hi - lo + 1)
    origin = anchor + starts[0] * step_i * row + starts[1] * step_j * col
    return UnionLattice(row, col, normal, step_i, step_j, counts[0], counts[1], origin)


@dataclass(frozen=True)
class _AxisMap:
    """One axis of a slice's mapping: output pixels [lo, hi) read the source; ``copy_offset`` is the
    source index of output pixel 0 when the mapping is a copy, else ``weights`` (hi - lo, n_src)."""

    lo: int
    hi: int
    landed: float
    scale: float
    copy_offset: int | None
    weights: np.ndarray | None


@dataclass(frozen=True)
class SliceMapping:
    """How one slice reaches the union lattice: valid in ``rect`` = (j_lo, j_hi, i_lo, i_hi) only;
    ``copied`` when no value is interpolated; ``placement`` where the source's pixel lattice lies
    in lattice indices (``k`` left 0)."""

    map_i: _AxisMap
    map_j: _AxisMap

    @property
    def rect(self) -> tuple[int, int, int, int]:
        return (self.map_j.lo, self.map_j.hi, self.map_i.lo, self.map_i.hi)

    @property
    def copied(self) -> bool:
        return self.map_i.copy_offset is not None and self.map_j.copy_offset is not None

    def covers(self, lattice: UnionLattice) -> bool:
        return self.rect == (0, lattice.rows, 0, lattice.columns)

    @property
    def placement(self) -> SlicePlacement:
        return SlicePlacement(0, self.map_i.landed, self.map_j.landed, 0.0,
                              (self.map_i.scale, 0.0, 0.0), (0.0, self.map_j.scale, 0.0))

    def apply(self, pixels: np.ndarray, out: np.ndarray, fill: float) -> None:
        """Write ``pixels`` (the slice's rows, columns) onto ``out`` (the lattice's rows, columns),
        ``fill`` where the slice does not reach; integer outputs are rounded."""
        out[...] = fill
        j_lo, j_hi, i_lo, i_hi = self.rect
        if j_hi <= j_lo or i_hi <= i_lo:
            return
        values = pixels
        copy_j, weights_j = self.map_j.copy_offset, self.map_j.weights
        if copy_j is not None:
            values = values[j_lo + copy_j:j_hi + copy_j]
        else:
            assert weights_j is not None  # an axis map copies or weighs
            values = weights_j @ values.astype(np.float64)
        copy_i, weights_i = self.map_i.copy_offset, self.map_i.weights
        if copy_i is not None:
            values = values[:, i_lo + copy_i:i_hi + copy_i]
        else:
            assert weights_i is not None
            values = values.astype(np.float64) @ weights_i.T
        if values.dtype != out.dtype and out.dtype.kind in "iu":
            values = np.rint(values)
        out[j_lo:j_hi, i_lo:i_hi] = values


def slice_mapping(s: SliceHeader, lattice: UnionLattice, interpolation: Interpolation,
                  snap_mm: float = DEFAULT.lattice_snap_mm) -> SliceMapping:
    """How slice ``s`` is mapped onto ``lattice``."""
    maps = []
    pose = s.pose
    source_step_i, source_step_j = s.pixel_steps_mm
    offset = np.asarray(lattice.origin_lps, float) - np.asarray(pose.position_lps_mm, float)
    for axis, step, source_cosines, source_step, n_src, n_out in (
            (lattice.row, lattice.step_i_mm, pose.row_cosines, source_step_i, s.columns, lattice.columns),
            (lattice.col, lattice.step_j_mm, pose.col_cosines, source_step_j, s.rows, lattice.rows)):
        source_axis = np.asarray(source_cosines, float)
        a = float(offset @ source_axis) / source_step
        b = step * float(axis @ source_axis) / source_step
        maps.append(_axis_map(a, b, n_src, n_out, interpolation, snap_mm / source_step))
    return SliceMapping(*maps)


def _axis_map(a: float, b: float, n_src: int, n_out: int, interpolation: Interpolation, snap: float) -> _AxisMap:
    """Output pixel x reads the source at u = a + b x (``snap`` in source pixels)."""
    whole = round(a)
    if abs(b - 1.0) * max(n_src, n_out) <= snap and abs(a - whole) <= snap:
        lo = min(max(-whole, 0), n_out)
        hi = min(max(n_src - whole, lo), n_out)
        return _AxisMap(lo, hi, float(-whole), 1.0, whole, None)
    x = np.arange(n_out, dtype=float)
    u = a + b * x
    inside = np.flatnonzero((u >= -snap) & (u <= n_src - 1 + snap))
    lo, hi = (int(inside[0]), int(inside[-1]) + 1) if len(inside) else (0, 0)
    u = np.clip(u[lo:hi], 0.0, n_src - 1.0)
    weights = np.zeros((hi - lo, n_src))
    rows = np.arange(hi - lo)
    if interpolation == "nearest":
        weights[rows, np.rint(u).astype(int)] = 1.0
    else:
        base = np.floor(u).astype(int)
        t = u - base
        taps: tuple[tuple[int, np.ndarray], ...]
        if interpolation == "linear":
            taps = ((0, 1.0 - t), (1, t))
        else:
            t2, t3 = t * t, t * t * t
            taps = ((-1, (-t3 + 2 * t2 - t) / 2), (0, (3 * t3 - 5 * t2 + 2) / 2),
                    (1, (-3 * t3 + 4 * t2 + t) / 2), (2, (t3 - t2) / 2))
        for shift, w in taps:
            _add_taps(weights, rows, base + shift, w, n_src)
    return _AxisMap(lo, hi, -a / b, 1.0 / b, None, weights)


def _add_taps(weights: np.ndarray, rows: np.ndarray, index: np.ndarray, w: np.ndarray, n: int) -> None:
    """Add weights ``w`` of source samples ``index``; samples beyond either end are the odd
    reflection about the end sample (f(-m) = 2 f(0) - f(m)), which keeps linear data linear."""
    below, above = index < 0, index > n - 1
    inside = ~(below | above)
    np.add.at(weights, (rows[inside], index[inside]), w[inside])
    for mask, end, mirror in ((below, 0, lambda m: -m), (above, n - 1, lambda m: 2 * (n - 1) - m)):
        if mask.any():
            np.add.at(weights, (rows[mask], np.full(mask.sum(), end)), 2 * w[mask])
            np.add.at(weights, (rows[mask], np.clip(mirror(index[mask]), 0, n - 1)), -w[mask])
