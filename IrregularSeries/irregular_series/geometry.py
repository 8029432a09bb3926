"""Geometry of one stack: positions, steps, sections, tilt, and what is irregular about them.

Slices are ordered by their position along the slice normal (IPP·n), never by file name or
instance number. Instance numbers are still the best evidence for which slices are missing and
for how stitched sections were acquired, so they are used as evidence, not as order.

Missing slices are found three ways, the first that applies to a gap deciding it: positions that
other volumes of the stack's volume set have (a time point that lost slices); whole multiples of
the acquisition step that the instance numbers and a nominal value agree on (a sparse series kept
from a longer one, where the local steps say nothing); whole multiples of the local step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from .grouping import count
from .irregularities import (
    DuplicatePositions,
    GantryTilt,
    InstanceOrder,
    Irregularity,
    IrregularityKind,
    MissingSlices,
    NominalMismatch,
    NonCollinear,
    NonParallel,
    Overlap,
    SectionSummary,
    StepRun,
    StitchedSections,
    VariableSpacing,
)
from .model import Section, SliceHeader, SpacingSummary, StackGeometry, as_vec3
from .orientation import angle_deg, normal_of, positions_along
from .tolerances import DEFAULT, Tolerances

MAX_RUNS_LISTED = 6
"""Variable spacing with more runs than this is summarised per step size instead of run by run."""


def pixel_to_lps(slices: Sequence[SliceHeader]) -> np.ndarray:
    """Per slice, the matrix taking pixel index (i, j, 0, 1) — i the column, j the row — to its
    DICOM position, LPS mm: shape (N, 4, 4), columns Δi*row, Δj*col, the unit normal, IPP."""
    matrices = np.zeros((len(slices), 4, 4))
    for matrix, s in zip(matrices, slices):
        step_i, step_j = s.pixel_steps_mm
        row, col = np.asarray(s.row_cosines, float), np.asarray(s.col_cosines, float)
        matrix[:3, 0] = row * step_i
        matrix[:3, 1] = col * step_j
        matrix[:3, 2] = normal_of(row, col)
        matrix[:3, 3] = s.position_lps_mm
        matrix[3, 3] = 1.0
    return matrices


def slice_corners_lps(slices: Sequence[SliceHeader]) -> np.ndarray:
    """Per-slice lattice corners, shape (N, 2, 2, 3), LPS mm: ``[k, b, a] = IPP + a*Columns*Δi*row
    + b*Rows*Δj*col`` for a, b in {0, 1} — the convention of Slicer's ``sliceCornersFromDICOM``."""
    matrices = pixel_to_lps(slices)
    corners = np.empty((len(slices), 2, 2, 3))
    for b in (0, 1):
        for a in (0, 1):
            lattice = np.array([[a * s.columns, b * s.rows, 0.0, 1.0] for s in slices])
            corners[:, b, a] = np.einsum("nij,nj->ni", matrices[:, :3], lattice)
    return corners


def stack_normal(slices: Sequence[SliceHeader]) -> np.ndarray:
    """Mean unit normal of the slices (they share an orientation within tolerance)."""
    n = _normals(slices).mean(axis=0)
    return n / np.linalg.norm(n)


def _normals(slices: Sequence[SliceHeader]) -> np.ndarray:
    """Unit normal (row x col) of every slice, shape (N, 3)."""
    normals = np.cross(np.array([s.row_cosines for s in slices], float), np.array([s.col_cosines for s in slices], float))
    return normals / np.linalg.norm(normals, axis=1, keepdims=True)


def stacking_direction(ipp: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """Unit direction of the least-squares line through the IPPs, pointing along +normal."""
    if len(ipp) < 2:
        return normal.copy()
    centred = ipp - ipp.mean(axis=0)
    direction = np.linalg.svd(centred, full_matrices=False)[2][0]
    return direction if direction @ normal >= 0 else -direction


def steps_agree(a: float, b: float, tol: Tolerances) -> bool:
    return abs(a - b) <= max(tol.step_mm, tol.step_relative * max(abs(a), abs(b)))


def constant_runs(steps: np.ndarray, tol: Tolerances) -> list[tuple[int, int, float]]:
    """Maximal runs of consecutive steps that agree: (first step index, count, mean step)."""
    runs: list[tuple[int, int, float]] = []
    start, total = 0, 0.0
    for i, step in enumerate(steps):
        if i > start and not steps_agree(float(step), total / (i - start), tol):
            runs.append((start, i - start, total / (i - start)))
            start, total = i, 0.0
        total += float(step)
    if len(steps):
        runs.append((start, len(steps) - start, total / (len(steps) - start)))
    return runs


def dominant_step(steps: np.ndarray, tol: Tolerances) -> float | None:
    """The step most steps agree with (mode within tolerance; the median of the tied best)."""
    moving = np.sort(steps[steps > tol.position_mm])
    if not len(moving):
        return None
    # t agrees with s (``steps_agree``) exactly when s - max(step_mm, rel*s) <= t <= the larger
    # of s + step_mm and s / (1 - rel): a window, so support is counted with two binary searches.
    low = moving - np.maximum(tol.step_mm, tol.step_relative * moving)
    high = np.maximum(moving + tol.step_mm, moving / (1.0 - tol.step_relative))
    support = np.searchsorted(moving, high, side="right") - np.searchsorted(moving, low, side="left")
    return float(np.median(moving[support == support.max()]))


def _local_steps(steps: np.ndarray, tol: Tolerances) -> np.ndarray:
    """The usual step around each step: median of up to 3 neighbours on each side, the step itself
    and steps that do not move left out (NaN when there are none)."""
    if not len(steps):
        return np.empty(0)
    moving = np.where(steps > tol.position_mm, steps, np.nan)
    padded = np.concatenate([np.full(3, np.nan), moving, np.full(3, np.nan)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, 7).copy()
    windows[:, 3] = np.nan
    local = np.full(len(steps), np.nan)
    some = ~np.all(np.isnan(windows), axis=1)
    local[some] = np.nanmedian(windows[some], axis=1)
    return local


_ORDER_FIELDS: tuple[tuple[str, Callable[[SliceHeader], object]], ...] = (
    ("instance numbers", lambda s: s.instance_number),
    ("acquisition numbers", lambda s: s.acquisition_number),
    ("acquisition times", lambda s: s.content_time or None),
)


def acquisition_order(slices: Sequence[SliceHeader], positions: np.ndarray) -> tuple[list[int], str] | None:
    """Slice indices in acquisition order and the tags that order comes from.

    Uses instance number, then acquisition number, then content (or frame acquisition) time,
    each only when it tells apart slices the previous ones could not; slices the tags cannot tell
    apart (frames of one object, one acquisition) follow each other along the acquisition
    direction. ``None`` when no tag differs: frame order or file order are never taken as
    acquisition order.
    """
    used: list[tuple[str, list[object]]] = []
    distinct = 1
    for name, get in _ORDER_FIELDS:
        values = [get(s) for s in slices]
        # A tag is used only when it tells apart slices the tags before it could not.
        refined = len(set(zip(*[v for _, v in used], values)))
        if refined > distinct:
            used.append((name, values))
            distinct = refined
    if not used:
        return None
    keys = list(zip(*[[(v is None, v or 0) for v in values] for _, values in used]))
    rank = {key: r for r, key in enumerate(sorted(set(keys)))}
    ranks = np.array([rank[k] for k in keys])
    # Mean position per key, in key order: which way the acquisition moves along the normal.
    means = np.bincount(ranks, weights=positions) / np.bincount(ranks)
    moves = np.diff(means)
    direction = -1.0 if len(moves) and np.median(moves) < 0 else 1.0
    order = sorted(range(len(slices)), key=lambda i: (keys[i], direction * positions[i]))
    return order, " and ".join(name for name, _ in used)


def acquisition_runs(
    slices: Sequence[SliceHeader], positions: np.ndarray, tol: Tolerances
) -> tuple[list[list[int]], str]:
    """Runs of slices (spatial indices) that move monotonically along the normal in acquisition
    order, and the tags that order comes from; one run and "" when the headers give no order."""
    found = acquisition_order(slices, positions)
    if found is None:
        return [list(range(len(slices)))], ""
    order, evidence = found
    moves = np.diff(positions[order])
    moves = moves[np.abs(moves) > tol.position_mm]
    direction = -1.0 if len(moves) and np.median(moves) < 0 else 1.0
    runs: list[list[int]] = [[order[0]]]
    for prev, cur in zip(order, order[1:]):
        if (positions[cur] - positions[prev]) * direction < -tol.position_mm:
            runs.append([])
        runs[-1].append(cur)
    return runs, evidence


def find_sections(
    slices: Sequence[SliceHeader], positions: np.ndarray, tol: Tolerances
) -> tuple[list[Section], str]:
    """Acquisition sections of a stack and the tags they were told apart by.

    Sections are the runs of ``acquisition_runs``: a run ends where the position jumps back.
    The whole stack is one section when a run would hold a single slice (the numbering simply
    does not follow the positions) or when runs share most of their range (interleaved slice
    acquisition, as MR does, rather than sections side by side). Stitching is only real when
    sections overlap in position, which the caller checks.
    """
    runs, evidence = acquisition_runs(slices, positions, tol)
    runs.sort(key=lambda r: positions[r].min())
    if len(runs) > 1 and (min(len(r) for r in runs) < 2 or _interleaved(runs, positions, tol)):
        runs = [list(range(len(slices)))]
    return [_section(k, run, positions, evidence, tol) for k, run in enumerate(runs)], evidence


def _interleaved(runs: list[list[int]], positions: np.ndarray, tol: Tolerances) -> bool:
    """Whether runs (sorted by start) overlap across most of their extent."""
    for a, b in zip(runs, runs[1:]):
        pa, pb = positions[a], positions[b]
        overlap = min(pa.max(), pb.max()) - pb.min()
        if overlap > tol.stitch_max_overlap * min(np.ptp(pa), np.ptp(pb)):
            return True
    return False


def _section(index: int, run: list[int], positions: np.ndarray, evidence: str, tol: Tolerances) -> Section:
    pos = np.sort(positions[run])
    return Section(
        index=index,
        start_mm=float(pos[0]),
        end_mm=float(pos[-1]),
        slice_indices=tuple(sorted(run)),
        step_mm=dominant_step(np.diff(pos), tol) if len(pos) > 1 else None,
        evidence=evidence,
    )


def number_ranges(numbers: Sequence[int]) -> str:
    """"3, 7–9, 12" from [3, 7, 8, 9, 12]."""
    parts: list[list[int]] = []  # [first, last] of each range
    for n in sorted(numbers):
        if parts and parts[-1][1] == n - 1:
            parts[-1][1] = n
        else:
            parts.append([n, n])
    return ", ".join(str(a) if a == b else f"{a}, {b}" if b == a + 1 else f"{a}–{b}" for a, b in parts)


def _instance_holes(a: SliceHeader, b: SliceHeader) -> list[int]:
    if a.instance_number is None or b.instance_number is None:
        return []
    lo, hi = sorted((a.instance_number, b.instance_number))
    return list(range(lo + 1, hi))


def instance_step(slices: Sequence[SliceHeader], positions: np.ndarray, tol: Tolerances) -> float | None:
    """The step per instance number, when every pair of neighbouring slices (spatial order) with
    different positions agrees on it and at least one pair skips numbers; else None.

    A series kept from a longer one (every few slices, or what a reader sent) keeps its numbering,
    so the numbering tells the acquisition step that the surviving positions no longer show.
    """
    per_number = []
    for k in range(len(slices) - 1):
        a, b = slices[k].instance_number, slices[k + 1].instance_number
        gap = float(positions[k + 1] - positions[k])
        if gap <= tol.position_mm or a is None or b is None:
            continue
        if a == b:
            return None
        per_number.append((gap / abs(b - a), abs(b - a)))
    if len(per_number) < 2 or max(n for _, n in per_number) < 2:
        return None
    step = float(np.median([v for v, _ in per_number]))
    return step if all(steps_agree(v, step, tol) for v, _ in per_number) else None


def acquisition_step(slices: Sequence[SliceHeader], positions: np.ndarray, tol: Tolerances) -> tuple[float, str] | None:
    """The step the acquisition was made with, when the instance numbers and a nominal value
    (SpacingBetweenSlices or SliceThickness) agree on it: (step mm, what says so); else None."""
    step = instance_step(slices, positions, tol)
    if step is None:
        return None
    for name, value in _nominal_values(slices, tol):
        if value is not None and abs(value - step) <= tol.nominal_mm:
            return value, f"the instance numbers and {name} {value:g} mm"
    return None


def _filled_steps(steps: Sequence[float] | npt.NDArray[np.float64], missing: Sequence[Irregularity]
                  ) -> npt.NDArray[np.float64]:
    """``steps`` with every missing-slice gap divided by its slices: the spacing the acquisition
    had, which the positions alone no longer show where slices are missing."""
    filled = np.asarray(steps, float).copy()
    for i in missing:
        if isinstance(i.details, MissingSlices) and i.after_index is not None:
            filled[i.after_index] /= i.details.missing_count + 1
    return filled


def acquired_steps(geometry: StackGeometry) -> npt.NDArray[np.float64]:
    """The steps of an analysed stack with its missing-slice gaps divided (``_filled_steps``)."""
    return _filled_steps(geometry.steps_mm, geometry.irregularities)


def analyze_geometry(
    slices: Sequence[SliceHeader], tol: Tolerances = DEFAULT, reference: Sequence[SliceHeader] = ()
) -> StackGeometry:
    """Geometry and irregularities of a stack whose slices are in spatial order.

    ``reference``: the slices of the stack's whole volume set (itself included), whose positions
    this stack is expected to have."""
    ipp = np.array([s.position_lps_mm for s in slices], float)
    normal = stack_normal(slices)
    positions = positions_along(slices, normal)
    steps = np.diff(positions)
    direction = stacking_direction(ipp, normal)
    tilt = angle_deg(direction, normal) if len(slices) > 1 and np.ptp(positions) > tol.position_mm else 0.0
    tag_values = {s.gantry_tilt_tag_deg for s in slices if s.gantry_tilt_tag_deg is not None}
    tilt_tag = tag_values.pop() if len(tag_values) == 1 else None

    irregularities = _non_parallel(slices, normal, tol)
    irregularities += _gantry_tilt(tilt, tilt_tag, tol)
    irregularities += _non_collinear(ipp, direction, tol)
    irregularities += _duplicates(positions, steps, tol)
    sections, found = _stitched_sections(slices, positions, tol)
    irregularities += found
    expected = _reference_positions(reference, normal, tol)
    acquisition = acquisition_step(slices, positions, tol)
    missing = _missing_slices(slices, positions, sections, expected, acquisition, tol)
    irregularities += missing
    filled = _filled_steps(steps, missing)
    if not sections:
        irregularities += _variable_spacing(filled, tol)

    moving = steps[steps > tol.position_mm]
    nominal = acquisition[0] if acquisition else _nominal(slices, tol)
    summary = SpacingSummary(
        nominal=nominal,
        median=float(np.median(moving)) if len(moving) else None,
        min=float(moving.min()) if len(moving) else None,
        max=float(moving.max()) if len(moving) else None,
    )
    mismatch = _nominal_mismatch(nominal, dominant_step(filled, tol), tilt, tol)
    if mismatch:
        irregularities.append(mismatch)
    candidates: dict[str, float] = {}
    if nominal is not None:
        candidates["nominal"] = nominal
    if summary.median is not None and summary.min is not None:  # both, or neither (no step)
        candidates["median"] = summary.median
        candidates["min"] = summary.min
    regular = len(moving) > 0 and not any(i.kind.blocks_regular for i in irregularities)
    first = slices[0].pose
    return StackGeometry(
        orientation=first.orientation,
        normal=as_vec3(normal),
        stacking_direction=as_vec3(direction),
        positions_mm=[float(p) for p in positions],
        steps_mm=[float(s) for s in steps],
        spacing=summary,
        regular=regular,
        irregularities=irregularities,
        tilt_deg=float(tilt),
        tilt_tag_deg=tilt_tag,
        sections=sections,
        candidate_spacings_mm=candidates,
    )


def _non_parallel(slices: Sequence[SliceHeader], normal: np.ndarray, tol: Tolerances) -> list[Irregularity]:
    cosines = np.clip(_normals(slices) @ normal, -1.0, 1.0)
    spread = float(np.degrees(np.arccos(cosines.min())))
    if spread <= tol.tilt_deg:
        return []
    return [
        Irregularity(
            IrregularityKind.NON_PARALLEL,
            f"slices are not parallel: normals differ by up to {spread:.2f}° from their mean",
            details=NonParallel(max_angle_deg=round(float(spread), 4)),
        )
    ]


def _gantry_tilt(tilt: float, tag: float | None, tol: Tolerances) -> list[Irregularity]:
    """Tilt comes from the geometry; the tag is shown for comparison only (its sign depends on the
    vendor: GE +18.5 and Philips -18.5 for the same IOP)."""
    if tilt <= tol.tilt_deg:
        return []
    tag_note = f"; tag says {tag:g}" if tag is not None else "; no GantryDetectorTilt tag"
    return [
        Irregularity(
            IrregularityKind.GANTRY_TILT,
            f"gantry tilt {tilt:.2f}° from geometry{tag_note}",
            details=GantryTilt(tilt_deg=round(float(tilt), 4), tag_deg=tag),
        )
    ]


def _non_collinear(ipp: np.ndarray, direction: np.ndarray, tol: Tolerances) -> list[Irregularity]:
    """IPPs off the line fitted through them (grouping splits offset blocks; this catches what a
    caller passes in unsplit)."""
    centred = ipp - ipp.mean(axis=0)
    off = np.linalg.norm(centred - np.outer(centred @ direction, direction), axis=1)
    if not len(off) or off.max() <= tol.collinear_mm:
        return []
    worst = int(np.argmax(off))
    return [
        Irregularity(
            IrregularityKind.NON_COLLINEAR,
            f"slice positions are not on one line: slice {worst} lies {off[worst]:.2f} mm off the stack line",
            details=NonCollinear(max_offset_mm=round(float(off[worst]), 4), slice_index=worst),
        )
    ]


def _duplicates(positions: np.ndarray, steps: np.ndarray, tol: Tolerances) -> list[Irregularity]:
    at = [i for i, s in enumerate(steps) if s <= tol.position_mm]
    if not at:
        return []
    return [
        Irregularity(
            IrregularityKind.DUPLICATE_POSITIONS,
            f"{count(len(at), 'slice')} {'repeats' if len(at) == 1 else 'repeat'} the position of the slice "
            f"before (first at {positions[at[0]]:.2f} mm)",
            after_index=at[0],
            details=DuplicatePositions(after_indices=tuple(at),
                                       positions_mm=tuple(round(float(positions[i]), 3) for i in at)),
        )
    ]


def _stitched_sections(
    slices: Sequence[SliceHeader], positions: np.ndarray, tol: Tolerances
) -> tuple[list[Section], list[Irregularity]]:
    """Sections when the stack is stitched from overlapping acquisitions (else none), and what to
    report: the stitching, or an acquisition order that does not follow the positions."""
    sections, evidence = find_sections(slices, positions, tol)
    overlaps = [(a.end_mm - b.start_mm, b.start_mm) for a, b in zip(sections, sections[1:]) if a.end_mm >= b.start_mm]
    if len(sections) > 1 and overlaps:
        where = " and ".join(f"{length:.1f} mm at {at:.1f} mm" for length, at in overlaps)
        ranges = ", ".join(
            f"{s.start_mm:.1f} to {s.end_mm:.1f} mm ({count(len(s.slice_indices), 'slice')})" for s in sections
        )
        return sections, [
            Irregularity(
                IrregularityKind.STITCHED_SECTIONS,
                f"{len(sections)} sections stitched, overlapping {where}; sections {ranges}, "
                f"told apart by {evidence}",
                details=StitchedSections(
                    sections=tuple(
                        SectionSummary(index=s.index, start_mm=round(s.start_mm, 3), end_mm=round(s.end_mm, 3),
                                       slices=len(s.slice_indices), step_mm=s.step_mm)
                        for s in sections
                    ),
                    overlaps=tuple(Overlap(length_mm=round(a, 3), at_mm=round(b, 3)) for a, b in overlaps),
                ),
            )
        ]
    runs, evidence = acquisition_runs(slices, positions, tol)
    if len(runs) > 1 and min(len(r) for r in runs) < 2:
        return [], [
            Irregularity(
                IrregularityKind.INSTANCE_ORDER,
                f"the {evidence} do not follow the positions: in that order the stack turns back "
                f"{count(len(runs) - 1, 'time')}, too often to be stitched sections",
                details=InstanceOrder(evidence=evidence, restarts=len(runs) - 1),
            )
        ]
    return [], []


def _reference_positions(reference: Sequence[SliceHeader], normal: np.ndarray, tol: Tolerances) -> np.ndarray:
    """Distinct positions (mm, along ``normal``, ascending) of a volume set's slices."""
    if not reference:
        return np.empty(0)
    d = np.sort(np.array([s.position_lps_mm for s in reference], float) @ normal)
    return d[np.concatenate([[True], np.diff(d) > tol.position_mm])]


def _missing_slices(
    slices: Sequence[SliceHeader],
    positions: np.ndarray,
    sections: list[Section],
    expected: np.ndarray,
    acquisition: tuple[float, str] | None,
    tol: Tolerances,
) -> list[Irregularity]:
    """Missing slices gap by gap, within each section (see the module text for the three rules)."""
    found = []
    local_steps = _local_steps(np.diff(positions), tol)
    for a, b in _consecutive_pairs(sections, len(slices), positions):
        gap = positions[b] - positions[a]
        if gap <= tol.position_mm:
            continue
        holes = _instance_holes(slices[a], slices[b])
        # ``expected`` is sorted: the positions strictly between the two slices, by bisection.
        inside = len(expected) and max(0, int(np.searchsorted(expected, positions[b] - tol.position_mm, side="left")
                                              - np.searchsorted(expected, positions[a] + tol.position_mm, side="right")))
        if inside:
            missing, step = inside, gap / (inside + 1)
            because = f"where the other volumes of its set have {count(inside, 'position')} (step {step:.2f} mm)"
        else:
            step = acquisition[0] if acquisition else _section_step(sections, a) if sections else local_steps[a]
            if not step or np.isnan(step):
                continue
            ratio = gap / step
            whole = round(ratio) >= 2 and abs(ratio - round(ratio)) <= tol.missing_multiple
            steps_of = f"{ratio:.0f} acquisition steps of {step:.2f} mm ({acquisition[1]} agree on it)" if acquisition else ""
            if whole:
                missing = round(ratio) - 1
                because = f"= {steps_of}" if acquisition else f"where the step is {step:.2f} mm"
            elif acquisition and holes:  # not a whole number of steps, but the numbering has a hole
                missing = len(holes)
                because = (f"= {ratio:.2f} acquisition steps of {step:.2f} mm, not a whole number: "
                           "the count comes from the instance numbers")
            else:
                continue
        found.append(_missing(slices, positions, a, b, missing, step, holes, because))
    return found


def _missing(
    slices: Sequence[SliceHeader], positions: np.ndarray, a: int, b: int, missing: int, step: float,
    holes: list[int], because: str,
) -> Irregularity:
    gap = positions[b] - positions[a]
    if holes:
        evidence = f" (instance {'number' if len(holes) == 1 else 'numbers'} {number_ranges(holes)})"
    elif None not in (slices[a].instance_number, slices[b].instance_number) and slices[a].path != slices[b].path:
        evidence = f" (no instance number missing between {slices[a].instance_number} and {slices[b].instance_number})"
    else:
        evidence = ""
    return Irregularity(
        IrregularityKind.MISSING_SLICES,
        f"{missing} slice(s) missing after slice {a}{evidence}: gap {gap:.2f} mm {because}",
        after_index=int(a),
        details=MissingSlices(gap_mm=round(float(gap), 4), local_step_mm=round(float(step), 4),
                              missing_count=int(missing), instance_numbers=tuple(holes),
                              at_mm=round(float(positions[a]), 3)),
    )


def _variable_spacing(steps: np.ndarray, tol: Tolerances) -> list[Irregularity]:
    """Runs of different constant steps; ``steps`` has every missing-slice gap divided by its
    slices, so that a gap is not also a step of another size."""
    runs = constant_runs(steps, tol)
    distinct: list[float] = []
    for _, _, step in runs:
        if step > tol.position_mm and not any(steps_agree(step, d, tol) for d in distinct):
            distinct.append(step)
    if len(distinct) < 2:
        return []
    if len(runs) <= MAX_RUNS_LISTED:
        described = ", ".join(f"{n} step(s) of {step:.2f} mm" for _, n, step in runs)
    else:
        totals = [sum(n for _, n, step in runs if steps_agree(step, d, tol)) for d in distinct]
        described = " and ".join(f"{n} step(s) of {d:.2f} mm" for n, d in zip(totals, distinct))
        described += f" in {len(runs)} runs"
    return [
        Irregularity(
            IrregularityKind.VARIABLE_SPACING,
            f"variable spacing: {described}",
            after_index=runs[1][0],
            details=VariableSpacing(runs=tuple(StepRun(first_step=s, count=n, step_mm=round(v, 4)) for s, n, v in runs)),
        )
    ]


def _consecutive_pairs(sections: list[Section], n: int, positions: np.ndarray) -> list[tuple[int, int]]:
    """Neighbouring slices (spatial indices): within each section, or along the whole stack."""
    if not sections:
        return [(i, i + 1) for i in range(n - 1)]
    pairs: list[tuple[int, int]] = []
    for s in sections:
        idx = sorted(s.slice_indices, key=lambda i: positions[i])
        pairs.extend(zip(idx, idx[1:]))
    return pairs


def _section_step(sections: list[Section], index: int) -> float | None:
    for s in sections:
        if index in s.slice_indices:
            return s.step_mm
    return None


def _nominal_values(slices: Sequence[SliceHeader], tol: Tolerances) -> list[tuple[str, float | None]]:
    """SpacingBetweenSlices (its magnitude: some scanners write it negative), then SliceThickness,
    each with the value the whole stack agrees on (None where it varies); absent ones left out."""
    found = []
    for name, values in (
        ("SpacingBetweenSlices", [abs(s.spacing_between_slices_mm) for s in slices if s.spacing_between_slices_mm]),
        ("SliceThickness", [s.slice_thickness_mm for s in slices if s.slice_thickness_mm]),
    ):
        if values:
            found.append((name, float(values[0]) if max(values) - min(values) <= tol.nominal_agreement_mm else None))
    return found


def _nominal(slices: Sequence[SliceHeader], tol: Tolerances) -> float | None:
    """The first of ``_nominal_values``: only a value the whole stack agrees on is nominal; where
    it varies (4 mm then 7 mm slices) there is no single nominal spacing and the positions decide.
    """
    values = _nominal_values(slices, tol)
    return values[0][1] if values else None


def _nominal_mismatch(
    nominal: float | None, dominant: float | None, tilt_deg: float, tol: Tolerances
) -> Irregularity | None:
    if nominal is None or dominant is None or abs(nominal - dominant) <= tol.nominal_mm:
        return None
    along_table = dominant / math.cos(math.radians(tilt_deg))
    if tilt_deg > tol.tilt_deg and abs(nominal - along_table) <= tol.nominal_mm:
        return Irregularity(
            IrregularityKind.NOMINAL_MISMATCH,
            f"nominal spacing {nominal:g} mm is measured along the tilted table: "
            f"{dominant:.2f} mm along the slice normal",
            details=NominalMismatch(nominal_mm=nominal, dominant_step_mm=round(dominant, 4), along_table=True),
        )
    return Irregularity(
        IrregularityKind.NOMINAL_MISMATCH,
        f"nominal spacing {nominal:g} mm disagrees with the positions (usual step {dominant:.2f} mm)",
        details=NominalMismatch(nominal_mm=nominal, dominant_step_mm=round(dominant, 4), along_table=False),
    )
