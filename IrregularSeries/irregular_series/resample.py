"""Resampling one stack of parallel slices, at arbitrary positions, onto an ``OutputGrid``.

The grid's in-plane axes are the slices' own (see ``grid.py``), so each input slice reaches the
output lattice by a constant in-plane shift: the output index of its pixel (0, 0), found by
mapping its IPP through the grid. An untilted stack needs no shift; a tilted one needs a shift
that changes from slice to slice (deskew), or none on a sheared ``keep`` grid. Each output plane
is then a blend of the shifted input slices around it, with weights from their real positions
along the normal, so gaps, variable steps and interleaved sections need no special case.

Work is plane by plane into one preallocated output array, in float32 for up to 16-bit input
(float64 for wider types), keeping only the few shifted input slices the current plane needs:
memory stays about input + output. A plane that lies on an input slice (within
``Tolerances.lattice_snap_mm``) whose shift is a whole number of pixels is a copy of that slice's pixels,
bit for bit, so a regular stack resampled at its own step comes back unchanged.

Footprints are unions: where a plane blends several slices and only some of them cover a pixel,
the pixel is made from those that do, their weights renormalised (cubic falls back to the linear
pair there). Planes outside the stack, or inside a gap that is to stay blank, copy the nearest
slice when they lie within its *reach* along the k axis (``slice_reach_mm``: half its thickness):
constant extrapolation, reported in ``PlaneSource.extrapolated_mm``. Every other voxel is
``background`` with ``mask`` 0: pixels no slice within reach covers, planes no slice reaches.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from .grid import OutputGrid, StackFrame
from .model import SliceHeader, Vec3
from .policies import Interpolation
from .tolerances import DEFAULT

Gaps = Literal["interpolate", "blank"]

DEFAULT_GAP_FACTOR = 1.5
"""With ``gaps="blank"`` and no ``max_gap_mm``: a gap is a step longer than this times the median
step (one missing slice makes a step of twice the median)."""

MAX_THREADS = 4
PARALLEL_MIN_VOXELS = 4_000_000
"""Below this many output voxels per thread, threads cost more than they save."""

_PAD = 2  # pixels of linear extrapolation around a slice: the reach of the widest (cubic) kernel


@dataclass(frozen=True)
class SlicePlacement:
    """Where the resampler put one input slice, in continuous output voxel indices.

    ``(i0, j0, k)`` is where the slice's pixel (0, 0) landed and ``axis_i``/``axis_j`` the output
    index steps of one input column / row. These are the values actually used (after snapping to
    the lattice, and rounding for ``nearest``), not the ideal ones, so that ``verify.py`` can
    measure the result. ``k`` is the plane index when the slice was copied into a plane.
    """

    slice_index: int
    i0: float
    j0: float
    k: float
    axis_i: Vec3 = (1.0, 0.0, 0.0)
    axis_j: Vec3 = (0.0, 1.0, 0.0)


@dataclass(frozen=True)
class PlaneSource:
    """What one output plane was made of: input slice indices (spatial order) and their weights
    along the normal. No slices: a blank plane (background, mask 0). ``extrapolated_mm`` > 0: the
    plane lies that far outside the slices around it (past an end of the stack or inside a blank
    gap) and copies its one slice, which reaches that far."""

    position_mm: float
    slice_indices: tuple[int, ...]
    weights: tuple[float, ...]
    extrapolated_mm: float = 0.0

    @property
    def blank(self) -> bool:
        return not self.slice_indices


@dataclass
class ResampleResult:
    """``volume`` (K, J, I) on the grid; ``mask`` (K, J, I) uint8, 1 where a voxel comes from real
    slices and 0 where it is background, or ``None`` when every voxel comes from real slices;
    ``interpolated`` is False when every voxel is a copy of one input pixel."""

    volume: np.ndarray
    mask: np.ndarray | None
    placements: list[SlicePlacement]
    interpolated: bool
    planes: list[PlaneSource]


@dataclass(frozen=True)
class _AxisShift:
    """How one input slice reaches one output axis: output index x reads the input at x + offset
    for each kernel tap, with ``weights``; outputs in [lo, hi) lie within the input slice."""

    landed: float
    offsets: tuple[int, ...]
    weights: tuple[float, ...]
    lo: int
    hi: int

    @property
    def whole_pixels(self) -> bool:
        return len(self.offsets) == 1


def resample_stack(
    pixels: np.ndarray,
    slices: Sequence[SliceHeader],
    grid: OutputGrid,
    *,
    interpolation: Interpolation = Interpolation.LINEAR,
    gaps: Gaps = "interpolate",
    max_gap_mm: float | None = None,
    blank_after: Sequence[int] | None = None,
    background: float | None = None,
    out_dtype: np.dtype | type | str | None = None,
    reach_mm: Sequence[float] | npt.NDArray[np.float64] | None = None,
    snap_mm: float = DEFAULT.lattice_snap_mm,
) -> ResampleResult:
    """Resample ``pixels`` (N, rows, columns), the slices of one stack in spatial order, onto
    ``grid`` (whose in-plane axes must be the slices' row/column steps, as ``build_grid`` makes).

    ``interpolation`` applies both in-plane and along the normal: ``linear`` (bilinear shift, two
    slices), ``nearest`` (whole-pixel shift, closest slice), ``cubic`` (Keys cubic convolution
    shift, four slices with a non-uniform cubic Hermite whose slopes are central differences over
    the real positions; two slices at the ends of the stack or of a blank gap). ``linear`` and
    ``cubic`` reproduce linear data exactly; ``nearest`` creates no new values, but moves shifted
    (tilted) slices by up to half a pixel, which their placements and verification show.
    ``gaps="blank"``: a plane strictly between two consecutive slices more than ``max_gap_mm``
    apart (default ``DEFAULT_GAP_FACTOR`` x median step) and not within ``snap_mm`` of either is
    background; ``blank_after`` instead names the gaps exactly, as the indices (spatial order) of
    the slices they follow — what a caller that knows which slices are missing should pass.
    ``reach_mm`` (one per slice, default ``slice_reach_mm``): how far along the k axis a slice
    fills planes outside the slices around it. ``background`` defaults to the lowest value
    present in ``pixels``. ``out_dtype`` defaults to the input's; integer outputs are rounded
    (``np.rint``) and clipped to their range.
    """
    if interpolation not in ("linear", "nearest", "cubic"):
        raise ValueError(f"interpolation must be 'linear', 'nearest' or 'cubic', got {interpolation!r}")
    if gaps not in ("interpolate", "blank"):
        raise ValueError(f"gaps must be 'interpolate' or 'blank', got {gaps!r}")
    frame = StackFrame.from_slices(slices)
    if pixels.shape != (len(slices), frame.rows, frame.columns):
        raise ValueError(f"pixels have shape {pixels.shape}, slices need "
                         f"{(len(slices), frame.rows, frame.columns)}")
    plane_step_mm = _check_grid(grid, frame, snap_mm)
    out_dtype = np.dtype(pixels.dtype if out_dtype is None else out_dtype)
    work_dtype = np.promote_types(pixels.dtype, np.float32)
    n_planes, n_rows, n_columns = grid.shape_kji

    index = _homogeneous(frame.ipp_lps) @ grid.lps_to_index().T
    shifts_i = [_axis_shift(x, frame.columns, n_columns, interpolation, snap_mm / frame.step_i_mm)
                for x in index[:, 0]]
    shifts_j = [_axis_shift(y, frame.rows, n_rows, interpolation, snap_mm / frame.step_j_mm)
                for y in index[:, 1]]
    gap_after = _blank_gaps(frame.positions_mm, gaps, max_gap_mm, blank_after)
    reach = slice_reach_mm(slices, frame.positions_mm, gap_after) if reach_mm is None else np.asarray(reach_mm, float)
    if len(reach) != len(slices):
        raise ValueError(f"{len(reach)} reaches for {len(slices)} slices")
    plane_k_in = index[:, 2]
    sources, plane_k, extrapolated = _plane_sources(
        plane_k_in, n_planes, interpolation, gap_after, snap_mm / plane_step_mm,
        reach / plane_step_mm)
    rects = [[_slice_rect(s, shifts_i, shifts_j) for s in src] for src, _ in sources]

    volume = np.empty(grid.shape_kji, dtype=out_dtype)
    full = (0, n_rows, 0, n_columns)
    complete = all(r == full for plane in rects for r in plane) and all(src for src, _ in sources)
    mask = None if complete else np.ones(grid.shape_kji, dtype=np.uint8)
    fill = None if complete else _background(out_dtype, background, pixels)

    fits_output = np.can_cast(pixels.dtype, out_dtype)

    def fill_planes(planes: range) -> bool:
        """Fill output planes ``planes``; True when any was interpolated. Each call keeps its own
        cache of shifted slices, so calls on separate ranges can run at the same time."""
        shifted = _ShiftedSlices(pixels, shifts_j, shifts_i, work_dtype)
        interpolated = False
        for m in planes:
            (src, weights), plane_rects = sources[m], rects[m]
            if not src:
                assert mask is not None  # a plane without slices made the volume incomplete
                volume[m] = fill
                mask[m] = 0
                continue
            rect = _intersection(plane_rects)
            if any(r != full for r in plane_rects):
                assert mask is not None  # so did a slice that does not cover its plane
                volume[m] = fill
                mask[m] = 0
            if any(r != rect for r in plane_rects):
                assert mask is not None  # the slices' rectangles differ, so one is not the full plane
                # Some pixels are covered by only some of the slices: those slices alone make them.
                interpolated = True
                pair, pair_weights = _partial_sources(plane_k_in, m, src, weights, gap_after)
                box = _bounding(plane_rects)
                values, covered = shifted.renormalised(pair, pair_weights, box)
                j_lo, j_hi, i_lo, i_hi = box
                target = volume[m, j_lo:j_hi, i_lo:i_hi]
                _store_where(target, values, covered)
                mask[m, j_lo:j_hi, i_lo:i_hi] = covered
            j_lo, j_hi, i_lo, i_hi = rect
            if j_lo == j_hi or i_lo == i_hi:
                continue
            if mask is not None:
                mask[m, j_lo:j_hi, i_lo:i_hi] = 1
            target = volume[m, j_lo:j_hi, i_lo:i_hi]
            whole = all(shifted.whole_pixels(s) for s in src)
            if len(src) == 1 and whole:
                copied = shifted.copy(src[0], rect)
                _store(target, copied if copied.dtype == out_dtype else copied.astype(work_dtype), clip=True)
            else:
                interpolated = True
                # Non-negative weights of unshifted pixels stay within the input's range.
                convex = whole and fits_output and min(weights) >= 0
                _store(target, shifted.blend(src, weights, rect), clip=not convex)
        return interpolated

    # numpy releases the GIL in the per-plane arithmetic: contiguous ranges of planes on threads.
    workers = max(1, min(os.cpu_count() or 1, MAX_THREADS, volume.size // PARALLEL_MIN_VOXELS))
    bounds = np.linspace(0, n_planes, workers + 1).astype(int)
    chunks = [range(a, b) for a, b in zip(bounds, bounds[1:])]
    if workers == 1:
        interpolated = fill_planes(chunks[0])
    else:
        with ThreadPoolExecutor(workers) as pool:
            interpolated = any(list(pool.map(fill_planes, chunks)))

    positions = grid.origin_lps @ frame.normal + np.arange(n_planes) * plane_step_mm
    placements = [SlicePlacement(a, shifts_i[a].landed, shifts_j[a].landed, float(plane_k[a]))
                  for a in range(len(slices))]
    planes = [PlaneSource(float(z), src, weights, float(d) * plane_step_mm)
              for z, (src, weights), d in zip(positions, sources, extrapolated)]
    return ResampleResult(volume, mask, placements, interpolated, planes)


def _check_grid(grid: OutputGrid, frame: StackFrame, snap_mm: float) -> float:
    """Refuse grids whose in-plane steps are not the slices' (this resampler only shifts), and
    return the distance between consecutive planes along the normal (mm)."""
    steps = grid.index_to_lps[:3, :3]
    _, n_rows, n_columns = grid.shape_kji
    for step, expected, count, name in ((steps[:, 0], frame.step_i_mm * frame.row, n_columns, "i"),
                                        (steps[:, 1], frame.step_j_mm * frame.col, n_rows, "j")):
        if np.linalg.norm(step - expected) * max(count - 1, 1) > snap_mm:
            raise ValueError(f"the grid's {name} step {step} is not the slices' {expected}")
    plane_step_mm = float(steps[:, 2] @ frame.normal)
    if plane_step_mm <= 0:
        raise ValueError("the grid's k axis must point along the slice normal")
    return plane_step_mm


def _background(dtype: np.dtype, background: float | None, pixels: np.ndarray) -> np.generic:
    """The value of voxels no slice reaches: ``background``, else the lowest value in the data
    (a value viewers' window and histogram already span, unlike a type's minimum)."""
    if background is None:
        background = np.nanmin(pixels) if pixels.dtype.kind == "f" else pixels.min()
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if not info.min <= background <= info.max:
            raise ValueError(f"background {background:g} does not fit the output type {dtype}")
        background = round(float(background))
    return dtype.type(background)


def slice_reach_mm(slices: Sequence[SliceHeader], positions_mm: np.ndarray,
                   gap_after: np.ndarray) -> np.ndarray:
    """How far (mm along the stack) each slice's data extends from its plane: half its
    SliceThickness, else half its local step (the mean of its steps to neighbours that are not
    across a blank gap; 0 when it has none). Planes past an end of the stack or inside a blank gap
    copy the nearest slice only within this reach, so no plane a real slice covers is left blank
    and no data is extrapolated further than the slice itself extends."""
    steps = np.diff(np.asarray(positions_mm, float))
    reach = np.zeros(len(slices))
    for n, s in enumerate(slices):
        if s.slice_thickness_mm:
            reach[n] = s.slice_thickness_mm / 2
            continue
        near = [steps[k] for k in (n - 1, n) if 0 <= k < len(steps) and not gap_after[k]]
        reach[n] = float(np.mean(near)) / 2 if near else 0.0
    return reach


def _homogeneous(points: np.ndarray) -> np.ndarray:
    return np.column_stack([points, np.ones(len(points))])


def _axis_shift(landed: float, n_in: int, n_out: int, interpolation: Interpolation,
                snap: float) -> _AxisShift:
    """The kernel that brings an input axis whose pixel 0 lands at output index ``landed`` onto the
    output lattice (``snap`` in pixels)."""
    whole = round(landed)
    offsets: tuple[int, ...]
    weights: tuple[float, ...]
    if abs(landed - whole) <= snap:
        landed, offsets, weights = float(whole), (-whole,), (1.0,)
    elif interpolation == "nearest":
        offset = math.floor(0.5 - landed)
        landed, offsets, weights = float(-offset), (offset,), (1.0,)
    else:
        base = math.floor(-landed)
        t = -landed - base
        if interpolation == "linear":
            offsets, weights = (base, base + 1), (1.0 - t, t)
        else:
            offsets = (base - 1, base, base + 1, base + 2)
            weights = _keys_weights(t)
    lo = min(max(math.ceil(landed - snap), 0), n_out)
    hi = min(max(math.floor(landed + n_in - 1 + snap) + 1, lo), n_out)
    return _AxisShift(landed, offsets, weights, lo, hi)


def _keys_weights(t: float) -> tuple[float, float, float, float]:
    """Cubic convolution (Keys, a = -1/2) weights of the samples at -1, 0, 1, 2 for a point at
    0 <= t < 1; they reproduce polynomials up to degree 2."""
    t2, t3 = t * t, t * t * t
    return ((-t3 + 2 * t2 - t) / 2, (3 * t3 - 5 * t2 + 2) / 2, (-3 * t3 + 4 * t2 + t) / 2, (t3 - t2) / 2)


def _blank_gaps(positions_mm: np.ndarray, gaps: Gaps, max_gap_mm: float | None,
                blank_after: Sequence[int] | None) -> np.ndarray:
    """For each pair of consecutive slices: True when the planes between them stay blank."""
    steps = np.diff(positions_mm)
    if gaps == "interpolate" or len(steps) == 0:
        return np.zeros(len(steps), dtype=bool)
    if blank_after is not None:
        flags = np.zeros(len(steps), dtype=bool)
        flags[list(blank_after)] = True
        return flags
    limit = DEFAULT_GAP_FACTOR * float(np.median(steps)) if max_gap_mm is None else max_gap_mm
    return steps > limit


def _plane_sources(
    k_of_slice: np.ndarray, n_planes: int, interpolation: Interpolation, gap_after: np.ndarray,
    snap: float, reach: np.ndarray,
) -> tuple[list[tuple[tuple[int, ...], tuple[float, ...]]], np.ndarray, np.ndarray]:
    """For each output plane: the input slices it blends and their weights. ``k_of_slice`` are the
    slices' continuous plane indices (increasing); ``snap`` and ``reach`` (per slice) in planes.
    Also returns the plane indices used for the slices (a slice within ``snap`` of a plane is taken
    to lie on it) and, per plane, how far (planes) it is extrapolated from its one slice."""
    last = len(k_of_slice) - 1
    k_used = k_of_slice.astype(float)
    sources: list[tuple[tuple[int, ...], tuple[float, ...]]] = []
    extrapolated = np.zeros(n_planes)
    for m in range(n_planes):
        a = int(np.searchsorted(k_of_slice, m + snap, side="right")) - 1
        if a >= 0 and m - k_of_slice[a] <= snap:
            sources.append(((a,), (1.0,)))
            k_used[a] = m
        elif a < 0 or a == last or gap_after[a]:  # before, after the stack, or in a blank gap
            near = [n for n in (a, a + 1) if 0 <= n <= last]
            n = min(near, key=lambda n: abs(m - k_of_slice[n]))
            distance = abs(m - k_of_slice[n])
            if distance <= reach[n] + snap:
                sources.append(((n,), (1.0,)))
                extrapolated[m] = distance
            else:
                sources.append(((), ()))
        else:
            sources.append(_between(k_of_slice, a, m, interpolation, gap_after))
    return sources, k_used, extrapolated


def _between(k: np.ndarray, a: int, m: float, interpolation: Interpolation,
             gap_after: np.ndarray) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Weights for plane ``m`` strictly between slices ``a`` and ``a + 1``."""
    b = a + 1
    h = k[b] - k[a]
    t = float((m - k[a]) / h)
    if interpolation == "nearest":
        return ((a,), (1.0,)) if t <= 0.5 else ((b,), (1.0,))
    has_neighbours = a >= 1 and b + 1 < len(k) and not gap_after[a - 1] and not gap_after[b]
    if interpolation == "linear" or not has_neighbours:
        return (a, b), (1.0 - t, t)
    # Cubic Hermite on [k_a, k_b] with slopes (f_b - f_{a-1}) / (k_b - k_{a-1}) at a and
    # (f_{b+1} - f_a) / (k_{b+1} - k_a) at b, written as weights of the four samples.
    h00, h10 = 2 * t**3 - 3 * t**2 + 1, t**3 - 2 * t**2 + t
    h01, h11 = -2 * t**3 + 3 * t**2, t**3 - t**2
    left = float(h / (k[b] - k[a - 1]))
    right = float(h / (k[b + 1] - k[a]))
    return (a - 1, a, b, b + 1), (-h10 * left, h00 - h11 * right, h01 + h10 * left, h11 * right)


def _slice_rect(s: int, shifts_i: list[_AxisShift], shifts_j: list[_AxisShift]) -> tuple[int, int, int, int]:
    """(j_lo, j_hi, i_lo, i_hi): the output pixels slice ``s`` covers."""
    return (shifts_j[s].lo, shifts_j[s].hi, shifts_i[s].lo, shifts_i[s].hi)


def _intersection(rects: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    """The output pixels every one of ``rects`` covers (an empty rectangle when none)."""
    j_lo = max(r[0] for r in rects)
    i_lo = max(r[2] for r in rects)
    return (j_lo, max(j_lo, min(r[1] for r in rects)), i_lo, max(i_lo, min(r[3] for r in rects)))


def _bounding(rects: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    """The smallest rectangle holding every non-empty one of ``rects``."""
    rects = [r for r in rects if r[0] < r[1] and r[2] < r[3]] or [(0, 0, 0, 0)]
    return (min(r[0] for r in rects), max(r[1] for r in rects), min(r[2] for r in rects), max(r[3] for r in rects))


def _partial_sources(k_of_slice: np.ndarray, m: int, src: tuple[int, ...], weights: tuple[float, ...],
                     gap_after: np.ndarray) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """The sources and weights used where only some of plane ``m``'s slices cover a pixel: the
    same, except that a cubic blend falls back to the linear pair around the plane (cubic weights
    of a partial set of four are no interpolation). Each pixel renormalises them over the slices
    that cover it."""
    if len(src) != 4:
        return src, weights
    return _between(k_of_slice, src[1], m, Interpolation.LINEAR, gap_after)


class _ShiftedSlices:
    """Input slices moved onto the output lattice. Each is shifted once, as floats, over the output
    rows and columns it covers, and kept while planes still need it: planes ascend through the
    stack, so a plane's first source releases every slice before it."""

    def __init__(self, pixels: np.ndarray, shifts_j: list[_AxisShift], shifts_i: list[_AxisShift],
                 work_dtype: np.dtype) -> None:
        self._pixels = pixels
        self._shifts_j = shifts_j
        self._shifts_i = shifts_i
        self._work_dtype = work_dtype
        self._kept: dict[int, np.ndarray] = {}
        # Buffers of slices converted to the work type, recycled once their slice is released.
        self._converted: dict[int, np.ndarray] = {}
        self._spare: list[np.ndarray] = []
        # Two plane-sized scratch arrays, reused: fresh ones cost page faults on every plane.
        plane = (max(s.hi for s in shifts_j), max(s.hi for s in shifts_i))
        self._total = np.empty(plane, dtype=work_dtype)
        self._term = np.empty(plane, dtype=work_dtype)

    def whole_pixels(self, s: int) -> bool:
        return self._shifts_j[s].whole_pixels and self._shifts_i[s].whole_pixels

    def copy(self, s: int, rect: tuple[int, int, int, int]) -> np.ndarray:
        """The input pixels of slice ``s`` (whole-pixel shift) that land in ``rect``, unconverted."""
        j_lo, j_hi, i_lo, i_hi = rect
        dj, di = self._shifts_j[s].offsets[0], self._shifts_i[s].offsets[0]
        return self._pixels[s, j_lo + dj:j_hi + dj, i_lo + di:i_hi + di]

    def _shifted(self, s: int) -> np.ndarray:
        """Slice ``s`` shifted onto the output rows and columns it covers (made once, kept)."""
        if s not in self._kept:
            image = self._spare.pop() if self._spare else np.empty(self._pixels.shape[1:], self._work_dtype)
            np.copyto(image, self._pixels[s], casting="unsafe")  # exact: work type is wide enough
            self._converted[s] = image
            image = _shift_axis(image, self._shifts_j[s], 0)
            self._kept[s] = _shift_axis(image, self._shifts_i[s], 1)
        return self._kept[s]

    def _release_before(self, first: int) -> None:
        for old in [s for s in self._kept if s < first]:
            del self._kept[old]
            self._spare.append(self._converted.pop(old))

    def blend(self, sources: tuple[int, ...], weights: tuple[float, ...],
              rect: tuple[int, int, int, int]) -> np.ndarray:
        """Weighted sum of the shifted ``sources`` over ``rect``, in a scratch array that the next
        call overwrites."""
        self._release_before(sources[0])
        j_lo, j_hi, i_lo, i_hi = rect
        total = self._total[:j_hi - j_lo, :i_hi - i_lo]
        term = self._term[:j_hi - j_lo, :i_hi - i_lo]
        for n, (s, weight) in enumerate(zip(sources, weights)):
            top, left = self._shifts_j[s].lo, self._shifts_i[s].lo
            part = self._shifted(s)[j_lo - top:j_hi - top, i_lo - left:i_hi - left]
            np.multiply(part, self._work_dtype.type(weight), out=total if n == 0 else term)
            if n:
                total += term
        return total

    def renormalised(self, sources: tuple[int, ...], weights: tuple[float, ...],
                     box: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Over ``box``: the blend of the ``sources`` that cover each pixel, their (non-negative)
        weights renormalised to sum 1 there, and where any covers. The blend is a scratch array
        that the next call overwrites."""
        self._release_before(sources[0])
        j_lo, j_hi, i_lo, i_hi = box
        total = self._total[:j_hi - j_lo, :i_hi - i_lo]
        total.fill(0)
        weight_sum = np.zeros(total.shape, self._work_dtype)
        for s, weight in zip(sources, weights):
            sj, si = self._shifts_j[s], self._shifts_i[s]
            top, bottom = max(sj.lo, j_lo), min(sj.hi, j_hi)
            left, right = max(si.lo, i_lo), min(si.hi, i_hi)
            if top >= bottom or left >= right:
                continue
            part = self._shifted(s)[top - sj.lo:bottom - sj.lo, left - si.lo:right - si.lo]
            window = (slice(top - j_lo, bottom - j_lo), slice(left - i_lo, right - i_lo))
            total[window] += part * self._work_dtype.type(weight)
            weight_sum[window] += self._work_dtype.type(weight)
        covered = weight_sum > 0
        np.divide(total, weight_sum, out=total, where=covered)
        return total, covered


def _store_where(target: np.ndarray, values: np.ndarray, covered: np.ndarray) -> None:
    """``_store`` of the ``covered`` pixels only (values are convex blends: no clipping needed)."""
    if target.dtype.kind in "iu":
        np.rint(values, out=values)
    np.copyto(target, values, where=covered.astype(bool), casting="unsafe")


def _shift_axis(image: np.ndarray, shift: _AxisShift, axis: int) -> np.ndarray:
    """The output rows (axis 0) or columns (axis 1) [lo, hi) that ``shift`` brings from ``image``.

    Outputs in [lo, hi) read the input at x - landed in [-snap, n - 1 + snap], so the kernel taps
    stay within ``_PAD`` pixels of the input; linear extrapolation there keeps linear data linear.
    """
    count = shift.hi - shift.lo
    if shift.whole_pixels:
        return _window(image, axis, shift.lo + shift.offsets[0], count)
    widths = [(0, 0), (0, 0)]
    widths[axis] = (_PAD, _PAD)
    padded = np.pad(image, widths, mode="reflect", reflect_type="odd")
    result = None
    for offset, weight in zip(shift.offsets, shift.weights):
        taps = _window(padded, axis, shift.lo + offset + _PAD, count) * image.dtype.type(weight)
        result = taps if result is None else np.add(result, taps, out=result)
    assert result is not None  # every kernel has a tap
    return result


def _window(image: np.ndarray, axis: int, start: int, count: int) -> np.ndarray:
    return image[start:start + count] if axis == 0 else image[:, start:start + count]


def _store(target: np.ndarray, values: np.ndarray, *, clip: bool) -> None:
    """Write ``values`` into ``target``, a view of the output: bit for bit when the types match;
    otherwise ``values`` is a float scratch array, rounded into integer types and clipped to their
    range, unless the caller knows the values lie within it."""
    if values.dtype != target.dtype and target.dtype.kind in "iu":
        np.rint(values, out=values)
        if clip:
            info = np.iinfo(target.dtype)
            np.clip(values, info.min, info.max, out=values)
    target[...] = values
