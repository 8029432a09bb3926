"""Independent check of a resampled volume's *content* against its input slices.

``verify.py`` checks where the volume puts each slice; this module checks what the voxels hold,
with none of the resampler's code or bookkeeping (no placements, plane sources, kernels or
rectangles): only the grid's matrix, the slice headers, their pixels and the rules that define
the interpolation (the reach of a slice, the snap to the lattice, the blank gaps).

*Reference check.* A fixed sub-sample of voxels (``reference_sample``: every plane, a sparse
staggered lattice in each) is computed again, voxel by voxel, by a deliberately plain
implementation: voxel -> LPS -> the slices bracketing it along the normal -> in-plane
interpolation in each, projecting along the grid's k axis (the normal when deskewed, the stacking
direction when the tilt is kept). Each must equal the voxel as written, within the rounding of the
output type; a voxel no slice reaches must be background with mask 0. Sample voxels inside a block
that the per-slice check found to be a bit-for-bit copy of a slice (all of it data) are not
computed again: that comparison already proves them.

*Coverage and reproduction per slice.* The volume is sampled (trilinearly, from its own affine)
at each input slice's own pixel positions. The footprint is the fraction of the slice's pixels
whose sample holds data; it must be 1. A slice that lies on a plane with a whole-pixel offset must
come back bit for bit. Every other slice is scored by NCC and the largest absolute difference;
low NCC where the spacing is coarser than the slice's local step is a warning naming the spacing
that keeps the slices, never a failure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .grid import OutputGrid
from .model import SliceHeader
from .policies import Interpolation
from .tolerances import DEFAULT

REFERENCE_STRIDE = 16
"""The voxels computed again from the input slices: in every plane (a plane is one decision: its
slices and weights), every 16th row and column, the offsets moving from plane to plane
(``reference_sample``). Sparse in-plane because the cost is per voxel; planes that are copies of a
slice are compared whole, bit for bit, in the per-slice check (and not computed again here)."""

REFERENCE_CHUNK = 65536
"""Reference voxels computed at a time: the check's own arrays stay a few MB whatever the
volume's size."""

REPRODUCTION_STRIDE = 8
"""Every this many pixels along each in-plane axis of a slice are compared with the volume sampled
there; its footprint is checked at every pixel."""

NCC_KEPT = 0.99
"""A slice whose reproduction reaches this normalised cross-correlation counts as kept."""

FLOAT_RELATIVE = 1e-5
"""Allowed difference, relative to the largest input magnitude, between the reference (float64)
and the resampler (float32 arithmetic) before rounding to the output type."""


class ContentCheckError(RuntimeError):
    """A volume whose voxels are not what its input slices give."""


@dataclass(frozen=True)
class SliceContent:
    """How one input slice is found in the volume at its own pixel positions."""

    index: int
    label: str
    footprint: float
    """Fraction of its pixels whose sample holds data."""
    ncc: float
    max_abs_diff: float
    exact: bool
    """It lies on a plane with a whole-pixel offset and is there bit for bit."""
    local_step_mm: float | None


@dataclass
class ContentCheck:
    slices: list[SliceContent]
    left_out: list[str]
    """Slices a policy leaves out on purpose (overlap halves of merged sections, duplicates)."""
    gap_slices: list[str]
    """Slices beside gaps that are to stay blank, whose samples reach a blank plane (not failures)."""
    reference_max_error: float
    voxels_checked: int
    tolerances: dict[str, float]
    warnings: list[str] = field(default_factory=list)
    failure: str | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None

    def summary(self) -> dict[str, Any]:
        """The ``content_check`` object of ``report.json`` (see docs/report-schema.md)."""
        scored = [s for s in self.slices if s.label not in self.gap_slices]
        nccs = np.array([s.ncc for s in scored]) if scored else np.array([1.0])
        worst = min(self.slices, key=lambda s: (s.footprint, s.ncc)) if self.slices else None
        return {
            "ok": self.ok,
            "slices": len(self.slices),
            "footprint_min": round(min((s.footprint for s in scored), default=1.0), 6),
            "ncc_min": round(float(nccs.min()), 6),
            "ncc_median": round(float(np.median(nccs)), 6),
            "exact_slices": sum(s.exact for s in self.slices),
            "worst_slice": None if worst is None else _file_and_frame(worst.label),
            "max_abs_diff": round(max((s.max_abs_diff for s in scored), default=0.0), 6),
            "reference_max_error": round(self.reference_max_error, 6),
            "voxels_checked": self.voxels_checked,
            "left_out_by_policy": self.left_out,
            "beside_blank_gaps": self.gap_slices,
            "tolerances": self.tolerances,
            "warnings": self.warnings,
            "failure": self.failure,
        }


def _file_and_frame(label: str) -> dict[str, Any]:
    path, _, frame = label.rpartition("#")
    if path and frame.isdigit():
        return {"file": path, "frame": int(frame)}
    return {"file": label, "frame": None}


# --- the stack, as plain arrays --------------------------------------------------------------


@dataclass(frozen=True)
class _Stack:
    ipp: np.ndarray  # (N, 3) LPS mm
    row: np.ndarray  # (N, 3) unit
    col: np.ndarray
    normal: np.ndarray  # (3,) of the first slice
    step_i: np.ndarray  # (N,) mm
    step_j: np.ndarray
    z: np.ndarray  # (N,) positions along the normal

    @classmethod
    def of(cls, slices: Sequence[SliceHeader]) -> _Stack:
        """The slices share one orientation and pixel spacing within the tolerances that grouped
        them; like the resampler, take the first slice's for all (verification measures what that
        costs)."""
        n = len(slices)
        ipp = np.array([s.position_lps_mm for s in slices], float)
        row = np.tile(np.asarray(slices[0].row_cosines, float), (n, 1))
        col = np.tile(np.asarray(slices[0].col_cosines, float), (n, 1))
        normal = np.cross(row[0], col[0])
        normal /= np.linalg.norm(normal)
        spacing = np.tile(np.asarray(slices[0].pixel_spacing_mm, float), (n, 1))
        return cls(ipp, row, col, normal, spacing[:, 1], spacing[:, 0], ipp @ normal)


# --- reference values, the plain way ---------------------------------------------------------


def _snapped(x: np.ndarray, snap: float) -> np.ndarray:
    nearest = np.rint(x)
    return np.where(np.abs(x - nearest) <= snap, nearest, x)


def _taps(x: np.ndarray, n: int, interpolation: Interpolation) -> list[tuple[np.ndarray, np.ndarray]]:
    """(index, weight) pairs along one in-plane axis at continuous pixel coordinates ``x`` (inside
    [0, n - 1]); cubic taps outside the image are odd reflections (2 p[0] - p[k]), which keep
    linear data linear."""
    if interpolation == "nearest":
        return [(np.clip(np.floor(x + 0.5), 0, n - 1).astype(np.intp), np.ones_like(x))]
    whole = np.rint(x)
    if np.array_equal(whole, x):  # on pixel centres every kernel is the pixel itself
        return [(whole.astype(np.intp), np.ones_like(x))]
    base = np.floor(x)
    t = x - base
    base = base.astype(np.intp)
    if interpolation == "linear":
        pairs = [(base, 1.0 - t), (base + 1, t)]
    else:
        t2, t3 = t * t, t * t * t
        pairs = [(base - 1, (-t3 + 2 * t2 - t) / 2), (base, (3 * t3 - 5 * t2 + 2) / 2),
                 (base + 1, (-3 * t3 + 4 * t2 + t) / 2), (base + 2, (t3 - t2) / 2)]
    out = []
    for index, weight in pairs:
        low, high = index < 0, index > n - 1
        inside = np.clip(index, 0, n - 1)
        out.append((inside, np.where(low | high, 2 * weight, weight)))
        if low.any() or high.any():
            mirror = np.where(low, -index, np.where(high, 2 * (n - 1) - index, 0))
            out.append((np.clip(mirror, 0, n - 1), np.where(low | high, -weight, 0.0)))
    return [(i, w) for i, w in out if np.any(w != 0)]


def _pixel_coordinates(stack: _Stack, grid: OutputGrid) -> tuple[np.ndarray, np.ndarray]:
    """Per slice, the affine map from voxel indices (i, j, k, 1) to its continuous pixel
    coordinates (column u, row v) of the voxel's centre carried onto the slice's plane along the
    grid's k axis: two (N, 4) coefficient tables. Voxel -> LPS -> slice is affine, so this is
    the same computation done once per slice instead of once per voxel."""
    matrix = grid.index_to_lps
    axis = matrix[:3, 2] / np.linalg.norm(matrix[:3, 2])
    n = stack.normal

    def carried(vectors: np.ndarray) -> np.ndarray:  # displacements (..., 3) moved along k onto a plane
        return vectors - ((vectors @ n) / (axis @ n))[..., None] * axis

    steps = carried(matrix[:3, :3].T)  # (3, 3): rows are the carried i, j, k steps
    origins = carried(matrix[:3, 3] - stack.ipp)  # (N, 3)
    tables = []
    for direction, pitch in ((stack.row, stack.step_i), (stack.col, stack.step_j)):
        linear = direction @ steps.T / pitch[:, None]  # (N, 3)
        constant = np.einsum("nc,nc->n", origins, direction) / pitch
        tables.append(np.column_stack([linear, constant]))
    return tables[0], tables[1]


def _in_slices(pixels: np.ndarray, s: np.ndarray, voxels_ijk: Sequence[np.ndarray], u_table: np.ndarray,
               v_table: np.ndarray, snap_u: np.ndarray, snap_v: np.ndarray,
               interpolation: Interpolation) -> tuple[np.ndarray, np.ndarray]:
    """Values of slices ``s`` (one per voxel, whose indices i, j, k are ``voxels_ijk``, as floats)
    at the voxels carried onto their planes, and whether the slice covers each voxel. The tables
    are ``_pixel_coordinates``' transposed (4, N); ``snap_u``/``snap_v`` the snap in pixels per
    slice."""
    def coordinate(table: np.ndarray, snap: np.ndarray) -> np.ndarray:
        x = table[3][s]
        for coefficient, index in zip(table[:3], voxels_ijk):
            x += coefficient[s] * index
        return _snapped(x, snap[s])

    u, v = coordinate(u_table, snap_u), coordinate(v_table, snap_v)
    rows, columns = pixels.shape[1:]
    if interpolation == "nearest":  # the nearest pixel must exist
        covered = (np.floor(u + 0.5) >= 0) & (np.floor(u + 0.5) <= columns - 1)
        covered &= (np.floor(v + 0.5) >= 0) & (np.floor(v + 0.5) <= rows - 1)
    else:
        covered = (u >= 0) & (u <= columns - 1) & (v >= 0) & (v <= rows - 1)
    u, v = np.clip(u, 0, columns - 1), np.clip(v, 0, rows - 1)
    value = np.zeros(len(s))
    for jj, wj in _taps(v, rows, interpolation):
        for ii, wi in _taps(u, columns, interpolation):
            value += wj * wi * pixels[s, jj, ii]
    return value, covered


def _along_normal(stack: _Stack, z: np.ndarray, interpolation: Interpolation, gap_after: np.ndarray,
                  reach_mm: np.ndarray, snap_mm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For points at positions ``z`` (mm along the normal): the slices (P, 4) around each, as
    (a - 1, a, a + 1, a + 2), their weights (P, 4; 0 where unused), and the weights (P, 4) used where
    only some of them cover the point (the linear pair a, a + 1, renormalised per point). A point
    on a slice, or filled from one slice within its reach, has that slice as ``a`` with weight 1;
    a point no slice reaches has no weight at all."""
    last = len(stack.z) - 1
    a = np.searchsorted(stack.z, z + snap_mm, side="right") - 1
    slots = np.clip(a[:, None] + np.arange(-1, 3), 0, last)
    weights = np.zeros((len(z), 4))
    ac, bc = np.clip(a, 0, last), np.clip(a + 1, 0, last)
    on = (a >= 0) & (z - stack.z[ac] <= snap_mm)
    gap = np.zeros(len(z), bool)
    inner = (a >= 0) & (a < last)
    gap[inner] = gap_after[a[inner]]
    outside = ~on & ((a < 0) | (a == last) | gap)
    between = ~on & ~outside
    # On a slice, or outside the slices around it: the nearest slice, within its reach.
    nearer_b = outside & (a < last) & ((a < 0) | (np.abs(z - stack.z[bc]) < np.abs(z - stack.z[ac])))
    single = np.where(nearer_b, bc, ac)
    reached = on | (outside & (np.abs(z - stack.z[single]) <= reach_mm[single] + snap_mm))
    slots[reached, 1] = single[reached]
    weights[reached, 1] = 1.0
    # Between two slices.
    t = np.zeros(len(z))
    t[between] = (z[between] - stack.z[ac[between]]) / (stack.z[bc[between]] - stack.z[ac[between]])
    if interpolation == "nearest":
        weights[between & (t <= 0.5), 1] = 1.0
        weights[between & (t > 0.5), 2] = 1.0
        return slots, weights, weights.copy()
    weights[between, 1], weights[between, 2] = 1.0 - t[between], t[between]
    pair = weights.copy()
    if interpolation == "cubic":
        prev_gap = np.ones(len(z), bool)
        next_gap = np.ones(len(z), bool)
        ok = between & (a >= 1) & (a + 2 <= last)
        prev_gap[ok] = gap_after[a[ok] - 1]
        next_gap[ok] = gap_after[a[ok] + 1]
        cubic = ok & ~prev_gap & ~next_gap
        za, zb = stack.z[ac[cubic]], stack.z[bc[cubic]]
        zp, zn = stack.z[a[cubic] - 1], stack.z[a[cubic] + 2]
        tc, h = t[cubic], zb - za
        ma, mb = h / (zb - zp), h / (zn - za)
        h00, h10 = 2 * tc**3 - 3 * tc**2 + 1, tc**3 - 2 * tc**2 + tc
        h01, h11 = -2 * tc**3 + 3 * tc**2, tc**3 - tc**2
        weights[cubic] = np.column_stack([-h10 * ma, h00 - h11 * mb, h01 + h10 * ma, h11 * mb])
    return slots, weights, pair


def reference_voxels(pixels: np.ndarray, slices: Sequence[SliceHeader], grid: OutputGrid,
                     kji: np.ndarray, *, interpolation: Interpolation, gap_after: np.ndarray,
                     reach_mm: np.ndarray, snap_mm: float = DEFAULT.lattice_snap_mm,
                     chunk: int = REFERENCE_CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """The values (float64, before rounding) and data flags of the voxels ``kji`` (P, 3 indices
    k, j, i), computed from the input slices alone, ``chunk`` voxels at a time."""
    stack = _Stack.of(slices)
    matrix = grid.index_to_lps
    if max(abs(matrix[:3, 0] @ stack.normal), abs(matrix[:3, 1] @ stack.normal)) > 1e-9:
        raise ValueError("the grid's planes are not parallel to the slices")
    planes = np.arange(grid.shape_kji[0])
    z = (matrix[:3, 3] + planes[:, None] * matrix[:3, 2]) @ stack.normal  # each plane's position
    slots, weights, pair = _along_normal(stack, z, interpolation, gap_after, np.asarray(reach_mm, float), snap_mm)
    u_table, v_table = (np.ascontiguousarray(t.T) for t in _pixel_coordinates(stack, grid))
    snap_u, snap_v = snap_mm / stack.step_i, snap_mm / stack.step_j
    used = (weights != 0) | (pair != 0)  # (planes, 4): the slots each plane's voxels look at
    reached = np.any(weights != 0, axis=1)
    values, data = np.zeros(len(kji)), np.zeros(len(kji), bool)
    for start in range(0, len(kji), chunk):
        part = slice(start, start + chunk)
        k = kji[part, 0]
        ijk = (kji[part, 2].astype(float), kji[part, 1].astype(float), k.astype(float))
        total = np.zeros(len(k))
        full = reached[k]
        partial_sum = np.zeros(len(k))
        partial_weight = np.zeros(len(k))
        for slot in range(4):
            at = np.flatnonzero(used[k, slot])
            if not len(at):
                continue
            ka = k[at]
            value, covered = _in_slices(pixels, slots[ka, slot], [a[at] for a in ijk], u_table, v_table, snap_u,
                                        snap_v, interpolation)
            w, lw = weights[ka, slot], pair[ka, slot]
            total[at] += w * value
            full[at] &= covered | (w == 0)
            partial_sum[at] += lw * value * covered
            partial_weight[at] += lw * covered
        some = partial_weight > 0
        values[part] = np.where(full, total, np.divide(partial_sum, partial_weight, out=np.zeros_like(total),
                                                       where=some))
        data[part] = full | (reached[k] & some)
    return values, data


def expected_data(pixels_shape: tuple[int, int], slices: Sequence[SliceHeader], grid: OutputGrid, *,
                  interpolation: Interpolation, gap_after: np.ndarray, reach_mm: np.ndarray,
                  snap_mm: float = DEFAULT.lattice_snap_mm) -> list[list[tuple[int, int, int, int]]]:
    """For every plane, the rectangles (j_lo, j_hi, i_lo, i_hi) of voxels that some slice around
    it covers: where the volume must hold data (their union) and nowhere else. Needs a grid whose
    in-plane axes are the slices' (as the resampler's are)."""
    stack = _Stack.of(slices)
    matrix = grid.index_to_lps
    planes = np.arange(grid.shape_kji[0])
    z = (matrix[:3, 3] + planes[:, None] * matrix[:3, 2]) @ stack.normal
    slots, weights, pair = _along_normal(stack, z, interpolation, gap_after, np.asarray(reach_mm, float), snap_mm)
    u_table, v_table = _pixel_coordinates(stack, grid)
    if not (np.allclose(u_table[:, :3], [1, 0, 0], atol=1e-9) and np.allclose(v_table[:, :3], [0, 1, 0], atol=1e-9)):
        raise ValueError("the grid's in-plane axes are not the slices' pixel axes")
    rows, columns = pixels_shape
    low, high = (-0.5, 0.5) if interpolation == "nearest" else (0.0, 0.0)

    def span(offset: float, size: int, snap: float, count: int) -> tuple[int, int]:
        x0 = np.rint(offset) if abs(offset - np.rint(offset)) <= snap else offset  # the slice's pixel 0 at -offset
        lo = math.ceil(low - x0 - 1e-9)
        hi = math.floor(size - 1 + high - x0 - (1e-9 if high else -1e-9)) + 1
        return max(lo, 0), min(max(hi, 0), count)

    out = []
    for m in planes:
        rects = []
        for slot in range(4):
            if pair[m, slot] == 0 and weights[m, slot] == 0:
                continue
            if pair[m, slot] == 0:  # only in the full (cubic) blend: inside the pair's union
                continue
            s = slots[m, slot]
            j = span(v_table[s, 3], rows, snap_mm / stack.step_j[s], grid.shape_kji[1])
            i = span(u_table[s, 3], columns, snap_mm / stack.step_i[s], grid.shape_kji[2])
            if j[0] < j[1] and i[0] < i[1]:
                rects.append((j[0], j[1], i[0], i[1]))
        out.append(rects)
    return out


def reference_sample(shape_kji: tuple[int, int, int], stride: int = REFERENCE_STRIDE) -> np.ndarray:
    """The fixed sub-sample of voxels the reference check computes, (P, 3) indices k, j, i: every
    plane, every ``stride``-th row and column, starting at offsets that move from plane to plane
    (3k and 5k modulo the stride) so that across planes every row and column is visited."""
    planes, rows, columns = shape_kji
    k = np.arange(planes)[:, None, None]
    j = (3 * k) % stride + stride * np.arange(-(-rows // stride))[None, :, None]
    i = (5 * k) % stride + stride * np.arange(-(-columns // stride))[None, None, :]
    k, j, i = np.broadcast_arrays(k, j, i)
    keep = (j < rows) & (i < columns)
    return np.column_stack([k[keep], j[keep], i[keep]])


def _trilinear(volume: np.ndarray, data: np.ndarray | None, start: np.ndarray, shape: tuple[int, int],
               stride: int, snap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The volume at a slice's pixels [::stride, ::stride], whose pixel (0, 0) lies at continuous
    voxel indices ``start`` (i, j, k) (the grid's in-plane axes are the slice's, so pixel (r, c)
    lies at ``start`` + (c, r, 0)): trilinear, renormalised over the corners that hold data; and
    which samples hold data."""
    start = np.where(np.abs(start - np.rint(start)) <= snap, np.rint(start), start)
    base = np.floor(start).astype(int)
    frac = start - base
    rows = np.arange(0, shape[0], stride)
    columns = np.arange(0, shape[1], stride)
    total = np.zeros((len(rows), len(columns)))
    weight_sum = np.zeros_like(total)
    for dk in ((0, 1) if frac[2] else (0,)):
        k = base[2] + dk
        if not 0 <= k < volume.shape[0]:
            continue
        for dj in ((0, 1) if frac[1] else (0,)):
            j = base[1] + dj + rows
            r = np.flatnonzero((j >= 0) & (j < volume.shape[1]))
            for di in ((0, 1) if frac[0] else (0,)):
                i = base[0] + di + columns
                c = np.flatnonzero((i >= 0) & (i < volume.shape[2]))
                if not len(r) or not len(c):
                    continue
                weight = ((frac[2] if dk else 1 - frac[2]) * (frac[1] if dj else 1 - frac[1])
                          * (frac[0] if di else 1 - frac[0]))
                window = (slice(r[0], r[-1] + 1), slice(c[0], c[-1] + 1))
                source = (k, slice(j[r[0]], j[r[-1]] + 1, stride), slice(i[c[0]], i[c[-1]] + 1, stride))
                if data is None:
                    total[window] += weight * volume[source]
                    weight_sum[window] += weight
                else:
                    has = data[source].astype(bool)
                    total[window] += np.where(has, weight * volume[source], 0.0)
                    weight_sum[window] += np.where(has, weight, 0.0)
    holds = weight_sum > 0
    return np.divide(total, weight_sum, out=np.zeros_like(total), where=holds), holds


def _footprint(mask: np.ndarray | None, shape_kji: tuple[int, ...], start: np.ndarray, rows: int, columns: int,
               snap: np.ndarray) -> float:
    """The fraction of a slice's rows x columns pixels, whose pixel (0, 0) lies at continuous voxel
    indices ``start``, where some voxel of the trilinear sample holds data: inside the grid and,
    when there is a ``mask``, marked 1 in it (every pixel is looked at)."""
    start = np.where(np.abs(start - np.rint(start)) <= snap, np.rint(start), start)
    base = np.floor(start).astype(int)
    frac = start - base
    offsets = [(0, 1) if f else (0,) for f in frac]  # i, j, k
    if mask is None:  # inside the grid is holding data: count rows and columns that reach it
        if not any(0 <= base[2] + dk < shape_kji[0] for dk in offsets[2]):
            return 0.0
        return ((_reaching(int(base[1]), rows, shape_kji[1], offsets[1]) / rows)
                * (_reaching(int(base[0]), columns, shape_kji[2], offsets[0]) / columns))
    holds = np.zeros((rows, columns), bool)
    for dk in offsets[2]:
        k = base[2] + dk
        if not 0 <= k < shape_kji[0]:
            continue
        for dj in offsets[1]:
            for di in offsets[0]:
                j0, i0 = base[1] + dj, base[0] + di
                top, left = max(j0, 0), max(i0, 0)
                bottom, right = min(j0 + rows, shape_kji[1]), min(i0 + columns, shape_kji[2])
                if top >= bottom or left >= right:
                    continue
                holds[top - j0:bottom - j0, left - i0:right - i0] |= mask[k, top:bottom, left:right].astype(bool)
    return float(holds.mean())


def _same_values(a: np.ndarray, b: np.ndarray) -> bool:
    """``a`` equals ``b`` (same shape): bit for bit when they share a type, compared 8 bytes at a
    time where their rows allow it (a quarter of the element comparisons for 16-bit data)."""
    if a.dtype == b.dtype and a.strides[-1] == b.strides[-1] == a.itemsize and (a.shape[-1] * a.itemsize) % 8 == 0:
        return bool(np.array_equal(a.view(np.uint64), b.view(np.uint64)))
    return bool(np.array_equal(a, b))


def _reaching(base: int, count: int, size: int, offsets: tuple[int, ...]) -> int:
    """How many of the pixels 0 .. count - 1 of one axis, at voxel base + pixel + some offset
    (consecutive offsets), fall on voxels 0 .. size - 1."""
    return max(0, min(count, size - base - min(offsets)) - max(0, -base - max(offsets)))


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    if a.size < 2:
        return 1.0 if np.array_equal(a, b) else 0.0
    a, b = a - a.mean(), b - b.mean()
    # Element-wise sums rather than BLAS dot products: BLAS threads stall on a busy machine.
    norm = math.sqrt(float(np.square(a).sum()) * float(np.square(b).sum()))
    if norm == 0:
        return 1.0 if np.allclose(a, b) else 0.0
    return float((a * b).sum()) / norm


def _local_steps(z: np.ndarray, gap_after: np.ndarray) -> list[float | None]:
    steps = np.diff(z)
    out = []
    for n in range(len(z)):
        near = [steps[k] for k in (n - 1, n) if 0 <= k < len(steps) and not gap_after[k]]
        out.append(float(min(near)) if near else None)
    return out


# --- the check -------------------------------------------------------------------------------


def check_content(
    volume: np.ndarray,
    mask: np.ndarray | None,
    grid: OutputGrid,
    slices: Sequence[SliceHeader],
    pixels: np.ndarray,
    *,
    interpolation: Interpolation,
    gap_after: np.ndarray,
    reach_mm: np.ndarray,
    background: float | None,
    spacing_mm: float,
    left_out: Sequence[SliceHeader] = (),
    value_range: tuple[float, float] | None = None,
    snap_mm: float = DEFAULT.lattice_snap_mm,
    reference_stride: int = REFERENCE_STRIDE,
    reproduction_stride: int = REPRODUCTION_STRIDE,
) -> ContentCheck:
    """Check ``volume`` (and ``mask``, None when every voxel holds data) on ``grid`` against
    ``slices`` and their ``pixels``, made with ``interpolation``, blank gaps after the slices
    flagged in ``gap_after`` and slice reaches ``reach_mm``. Never raises for bad content: the
    result's ``failure`` says what is wrong, naming the first bad slice. ``value_range``: the
    (min, max) of ``pixels`` when the caller knows it."""
    stack = _Stack.of(slices)
    lo, hi = value_range if value_range is not None else (float(np.min(pixels)), float(np.max(pixels)))
    scale = max(abs(lo), abs(hi))
    integer = volume.dtype.kind in "iu"
    tolerance = (0.5 if integer else 0.0) + FLOAT_RELATIVE * max(scale, 1.0)
    tolerances = {"value": tolerance, "float_relative": FLOAT_RELATIVE, "snap_mm": snap_mm,
                  "ncc_kept": NCC_KEPT, "reference_stride": reference_stride,
                  "reproduction_stride": reproduction_stride}
    rules = _Rules(interpolation, gap_after, reach_mm, snap_mm)
    results, gap_slices, slice_failure, copies = _slice_checks(volume, mask, grid, stack, slices, pixels, rules,
                                                              reproduction_stride)
    reference_max, checked, failure = _reference_check(volume, mask, grid, stack, slices, pixels, rules,
                                                       background, tolerance, reference_stride, copies)
    failure = failure or _data_check(volume, mask, grid, stack, slices, pixels, rules)
    failure = failure or slice_failure
    warnings = _reproduction_warnings(results, spacing_mm, gap_slices)
    return ContentCheck(results, [h.label for h in left_out], gap_slices, reference_max, checked,
                        tolerances, warnings, failure)


@dataclass(frozen=True)
class _Rules:
    """What defines the interpolation beside the grid: see ``check_content``."""

    interpolation: Interpolation
    gap_after: np.ndarray
    reach_mm: np.ndarray
    snap_mm: float


_Block = tuple[int, int, int, int, int]
"""Voxels (k, j_lo, j_hi, i_lo, i_hi): rows j_lo..j_hi - 1 and columns i_lo..i_hi - 1 of plane k."""


def _nearest_label(grid: OutputGrid, stack: _Stack, slices: Sequence[SliceHeader], ijk: tuple[int, int, int]) -> str:
    """The slice nearest to voxel ``ijk`` along the normal: where a failure is reported."""
    point = grid.index_to_lps @ np.array([*ijk, 1.0])
    return slices[int(np.argmin(np.abs(stack.z - point[:3] @ stack.normal)))].label


def _reference_check(volume: np.ndarray, mask: np.ndarray | None, grid: OutputGrid, stack: _Stack,
                     slices: Sequence[SliceHeader], pixels: np.ndarray, rules: _Rules, background: float | None,
                     tolerance: float, stride: int, copies: Sequence[_Block]) -> tuple[float, int, str | None]:
    """The reference check on the fixed sub-sample: (largest error, voxels checked, failure). Its
    voxels inside ``copies`` (blocks already found bit for bit equal to a slice, all of them data)
    are not computed again: that comparison checks them exactly."""
    sample = reference_sample(volume.shape, stride)
    kji = sample[~_inside(sample, copies)]
    reference, data = reference_voxels(pixels, slices, grid, kji, interpolation=rules.interpolation,
                                       gap_after=rules.gap_after, reach_mm=rules.reach_mm, snap_mm=rules.snap_mm)
    if volume.dtype.kind in "iu":
        info = np.iinfo(volume.dtype)
        reference = np.clip(reference, info.min, info.max)
    where = (kji[:, 0], kji[:, 1], kji[:, 2])
    written = volume[where].astype(float)
    written_data = np.ones(len(kji), bool) if mask is None else mask[where].astype(bool)
    error = np.where(data, np.abs(written - reference), 0.0)
    bad = (data & (error > tolerance)) | (data != written_data)
    if background is not None:
        bad |= ~data & (written != float(background))
    reference_max = float(error.max()) if error.size else 0.0
    if not bad.any():
        return reference_max, len(sample), None
    n = int(np.flatnonzero(bad)[0])
    k, j, i = (int(v) for v in kji[n])
    what = (f"holds {written[n]:g}, the input slices give {reference[n]:.6g}" if data[n] and written_data[n]
            else "is background, but the input slices have data there" if data[n]
            else f"holds data ({written[n]:g}), but no input slice reaches it")
    return reference_max, len(sample), (
        f"content check failed near {_nearest_label(grid, stack, slices, (i, j, k))}: voxel (i {i}, j {j}, k {k}) "
        f"{what} (tolerance {tolerance:.3g}; {int(bad.sum())} of {bad.size} recomputed voxels differ)")


def _inside(kji: np.ndarray, blocks: Sequence[_Block]) -> np.ndarray:
    """Which of the voxels ``kji`` (ordered by plane, as ``reference_sample`` gives them) lie in
    one of ``blocks``."""
    inside = np.zeros(len(kji), bool)
    for k, j_lo, j_hi, i_lo, i_hi in blocks:
        first, end = np.searchsorted(kji[:, 0], [k, k + 1])
        j, i = kji[first:end, 1], kji[first:end, 2]
        inside[first:end] |= (j >= j_lo) & (j < j_hi) & (i >= i_lo) & (i < i_hi)
    return inside


def _data_check(volume: np.ndarray, mask: np.ndarray | None, grid: OutputGrid, stack: _Stack,
                slices: Sequence[SliceHeader], pixels: np.ndarray, rules: _Rules) -> str | None:
    """Where the volume holds data, at every voxel: the union of the slices' footprints. The failure, if any."""
    whole_plane = (0, volume.shape[1], 0, volume.shape[2])
    for m, rects in enumerate(expected_data(pixels.shape[1:], slices, grid, interpolation=rules.interpolation,
                                            gap_after=rules.gap_after, reach_mm=rules.reach_mm, snap_mm=rules.snap_mm)):
        if whole_plane in rects:  # data everywhere: only the mask can lose any
            if mask is None or mask[m].all():
                continue
            lost = mask[m] == 0
        else:
            expected = np.zeros(volume.shape[1:], bool)
            for j_lo, j_hi, i_lo, i_hi in rects:
                expected[j_lo:j_hi, i_lo:i_hi] = True
            if mask is None:
                lost = ~expected
            else:
                lost = expected & (mask[m] == 0)
                if (~expected & (mask[m] != 0)).any():
                    return f"content check failed: plane {m} marks voxels as data that no input slice reaches"
        if lost.any():
            j, i = (int(v) for v in np.argwhere(lost)[0])
            return (f"content check failed near {_nearest_label(grid, stack, slices, (i, j, m))}: {int(lost.sum())} "
                    f"voxel(s) of plane {m} (first: i {i}, j {j}) are background although an input slice covers them "
                    "(input lost)")
    return None


def _slice_checks(volume: np.ndarray, mask: np.ndarray | None, grid: OutputGrid, stack: _Stack,
                  slices: Sequence[SliceHeader], pixels: np.ndarray, rules: _Rules,
                  stride: int) -> tuple[list[SliceContent], list[str], str | None, list[_Block]]:
    """Coverage and reproduction per slice: the results, the slices a blank gap leaves out in part,
    the first failure, and the blocks of the volume found bit for bit equal to a slice, with data
    at every voxel."""
    to_index = grid.lps_to_index()
    index0 = (np.column_stack([stack.ipp, np.ones(len(stack.ipp))]) @ to_index.T)[:, :3]
    steps = np.linalg.norm(grid.index_to_lps[:3, :3], axis=0)
    snap = rules.snap_mm / steps
    gap_side = np.zeros(len(slices), bool)
    gap_side[:-1] |= rules.gap_after
    gap_side[1:] |= rules.gap_after
    local = _local_steps(stack.z, rules.gap_after)
    results: list[SliceContent] = []
    gap_slices: list[str] = []
    copies: list[_Block] = []
    failure = None
    for s, header in enumerate(slices):
        start = index0[s]
        exact = False
        if np.all(np.abs(start - np.rint(start)) <= snap):
            k, j, i = (int(v) for v in np.rint(start[::-1]))
            inside = 0 <= k < volume.shape[0] and j >= 0 and i >= 0
            block = volume[k, j:j + pixels.shape[1], i:i + pixels.shape[2]] if inside else None
            exact = block is not None and block.shape == pixels.shape[1:] and _same_values(block, pixels[s])
            if not exact and failure is None:
                failure = (f"content check failed: {header.label} lies on plane {k} of the output but the plane "
                           "is not a bit-for-bit copy of it")
        footprint = (1.0 if exact and mask is None
                     else _footprint(mask, volume.shape, start, pixels.shape[1], pixels.shape[2], snap))
        if exact and footprint == 1.0:
            copies.append((k, j, j + pixels.shape[1], i, i + pixels.shape[2]))
        if exact:
            ncc, diff = 1.0, 0.0
        else:
            sample, holds = _trilinear(volume, mask, start, pixels.shape[1:], stride, snap)
            original = pixels[s, ::stride, ::stride].astype(float)
            ncc = _ncc(sample[holds], original[holds]) if holds.any() else 0.0
            diff = float(np.abs(sample[holds] - original[holds]).max()) if holds.any() else math.inf
        if footprint < 1 and gap_side[s]:
            gap_slices.append(header.label)
        elif footprint < 1 and failure is None:
            failure = (f"content check failed: only {100 * footprint:.1f}% of {header.label}'s pixels hold data "
                       "in the output (input lost)")
        results.append(SliceContent(s, header.label, footprint, ncc, diff, exact, local[s]))
    return results, gap_slices, failure, copies


def _reproduction_warnings(results: list[SliceContent], spacing_mm: float, gap_slices: list[str]) -> list[str]:
    """Slices the volume reproduces below ``NCC_KEPT``: because the spacing is coarser than their
    step (and which spacing keeps them), or for no reason the spacing explains."""
    low = [r for r in results if r.ncc < NCC_KEPT and r.label not in gap_slices]
    coarse = [r for r in low if r.local_step_mm is not None and spacing_mm > r.local_step_mm * (1 + 1e-3)]
    other = [r for r in low if r not in coarse]
    warnings = []
    if coarse:
        keep = min(step for r in coarse if (step := r.local_step_mm) is not None)
        warnings.append(
            f"{len(coarse)} slice(s) reproduced at NCC {min(r.ncc for r in coarse):.2f}–{max(r.ncc for r in coarse):.2f} "
            f"(from {coarse[0].label}): the {spacing_mm:.4g} mm spacing is coarser than their {keep:.4g} mm step; "
            f"a spacing of {keep:.4g} mm keeps them")
    if other:
        worst = min(other, key=lambda r: r.ncc)
        warnings.append(
            f"{len(other)} slice(s) reproduced at NCC down to {worst.ncc:.2f} ({worst.label}) although the spacing "
            "is not coarser than their step: interpolation between dissimilar slices")
    return warnings


def content_summary_text(s: dict[str, Any]) -> str:
    """One line for panels and logs, from a ``ContentCheck.summary()``."""
    return (f"content check {'passed' if s['ok'] else 'FAILED'}: {s['slices']} slices, footprint min "
            f"{s['footprint_min']:.3f}, NCC min {s['ncc_min']:.3f} / median {s['ncc_median']:.3f}, "
            f"{s['exact_slices']} exact, reference error {s['reference_max_error']:.3g} over {s['voxels_checked']} voxels")

