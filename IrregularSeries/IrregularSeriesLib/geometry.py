"""Geometry of one stack: positions, steps, sections, tilt, and what is irregular about them.

Slices are ordered by their position along the slice normal (IPP·n), never by file name or
instance number. Instance numbers are still the best evidence for which slices are missing and
for how stitched sections were acquired, so they are used as evidence, not as order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .model import Irregularity, Section, SliceHeader, SpacingSummary, StackGeometry
from .orientation import angle_deg, normal_of
from .tolerances import DEFAULT, Tolerances


def slice_corners_lps(slices: Sequence[SliceHeader]) -> np.ndarray:
    """Per-slice lattice corners, shape (N, 2, 2, 3), LPS mm: ``[k, b, a] = IPP + a*Columns*Δi*row
    + b*Rows*Δj*col`` for a, b in {0, 1} — the convention of Slicer's ``sliceCornersFromDICOM``."""
    ipp = np.array([s.position_lps_mm for s in slices], float)
    row = np.array([s.row_cosines for s in slices], float)
    col = np.array([s.col_cosines for s in slices], float)
    di = np.array([s.pixel_spacing_mm[1] * s.columns for s in slices], float)[:, None]
    dj = np.array([s.pixel_spacing_mm[0] * s.rows for s in slices], float)[:, None]
    corners = np.empty((len(slices), 2, 2, 3))
    for b in (0, 1):
        for a in (0, 1):
            corners[:, b, a] = ipp + a * di * row + b * dj * col
    return corners


def stack_normal(slices: Sequence[SliceHeader]) -> np.ndarray:
    """Mean unit normal of the slices (they share an orientation within tolerance)."""
    normals = np.array([normal_of(s.row_cosines, s.col_cosines) for s in slices])
    n = normals.mean(axis=0)
    return n / np.linalg.norm(n)


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
    start = 0
    for i in range(1, len(steps) + 1):
        if i == len(steps) or not steps_agree(steps[i], float(np.mean(steps[start:i])), tol):
            runs.append((start, i - start, float(np.mean(steps[start:i]))))
            start = i
    return runs


def _dominant_step(steps: np.ndarray, tol: Tolerances) -> float | None:
    """The step most steps agree with (mode within tolerance), else the median."""
    moving = steps[steps > tol.position_mm]
    if not len(moving):
        return None
    support = [sum(steps_agree(s, t, tol) for t in moving) for s in moving]
    best = moving[np.array(support) == max(support)]
    return float(np.median(best))


def _local_step(steps: np.ndarray, i: int, tol: Tolerances) -> float | None:
    """The usual step around step ``i`` (median of up to 3 neighbours on each side)."""
    window = np.concatenate([steps[max(0, i - 3) : i], steps[i + 1 : i + 4]])
    window = window[window > tol.position_mm]
    return float(np.median(window)) if len(window) else None


def find_sections(
    slices: Sequence[SliceHeader], positions: np.ndarray, tol: Tolerances
) -> tuple[list[Section], str]:
    """Acquisition sections of a stack and how they were found.

    Sections are runs in acquisition order (instance number; else acquisition number and content
    time) that move monotonically along the normal; a run ends where the position jumps back.
    Stitching is only real when sections overlap in position, which the caller checks.
    """
    n = len(slices)
    if any(s.instance_number is not None for s in slices):
        key = lambda i: (slices[i].instance_number is None, slices[i].instance_number or 0, slices[i].frame)
        evidence = "instance number order"
    else:
        key = lambda i: (slices[i].acquisition_number or 0, slices[i].content_time, slices[i].frame)
        evidence = "acquisition number and content time order"
    order = sorted(range(n), key=key)
    deltas = np.diff(positions[order])
    moving = deltas[np.abs(deltas) > tol.position_mm]
    direction = 1.0 if not len(moving) or np.median(moving) >= 0 else -1.0
    runs: list[list[int]] = [[order[0]]]
    for prev, cur in zip(order, order[1:]):
        if (positions[cur] - positions[prev]) * direction < -tol.position_mm:
            runs.append([])
        runs[-1].append(cur)
    sections = []
    for k, run in enumerate(sorted(runs, key=lambda r: positions[r].min())):
        pos = np.sort(positions[run])
        steps = np.diff(pos)
        sections.append(
            Section(
                index=k,
                start_mm=float(pos[0]),
                end_mm=float(pos[-1]),
                slice_indices=tuple(sorted(run)),
                step_mm=_dominant_step(steps, tol) if len(steps) else None,
                evidence=evidence,
            )
        )
    return sections, evidence


def _overlaps(sections: list[Section]) -> list[tuple[float, float]]:
    """(overlap length, where) for consecutive sections that overlap in position (mm)."""
    return [
        (a.end_mm - b.start_mm, b.start_mm)
        for a, b in zip(sections, sections[1:])
        if a.end_mm - b.start_mm > -1e-9
    ]


def number_ranges(numbers: Sequence[int]) -> str:
    """"3, 7–9, 12" from [3, 7, 8, 9, 12]."""
    parts: list[str] = []
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


def analyze_geometry(
    slices: Sequence[SliceHeader], tol: Tolerances = DEFAULT
) -> StackGeometry:
    """Geometry and irregularities of a stack whose slices are in spatial order."""
    ipp = np.array([s.position_lps_mm for s in slices], float)
    normal = stack_normal(slices)
    positions = ipp @ normal
    steps = np.diff(positions)
    irregularities: list[Irregularity] = []

    # Parallelism: every slice against the mean normal.
    spread = max(angle_deg(normal_of(s.row_cosines, s.col_cosines), normal) for s in slices)
    if spread > tol.tilt_deg:
        irregularities.append(
            Irregularity(
                "non_parallel",
                f"slices are not parallel: normals differ by up to {spread:.2f}° from their mean",
                details={"max_angle_deg": round(spread, 4)},
            )
        )

    # Tilt from geometry; the tag only for comparison (its sign depends on the vendor).
    direction = stacking_direction(ipp, normal)
    tilt = angle_deg(direction, normal) if len(slices) > 1 and np.ptp(positions) > tol.position_mm else 0.0
    tag_values = {s.gantry_tilt_tag_deg for s in slices if s.gantry_tilt_tag_deg is not None}
    tilt_tag = tag_values.pop() if len(tag_values) == 1 else None
    if tilt > tol.tilt_deg:
        tag_note = f"; tag says {tilt_tag:g}" if tilt_tag is not None else "; no GantryDetectorTilt tag"
        irregularities.append(
            Irregularity(
                "gantry_tilt",
                f"gantry tilt {tilt:.2f}° from geometry{tag_note}",
                details={"tilt_deg": round(tilt, 4), "tag_deg": tilt_tag},
            )
        )

    # Duplicates: the same position twice within one stack.
    duplicate_at = [i for i, s in enumerate(steps) if s <= tol.position_mm]
    if duplicate_at:
        irregularities.append(
            Irregularity(
                "duplicate_positions",
                f"{len(duplicate_at)} slice(s) repeat the position of their neighbour "
                f"(first at {positions[duplicate_at[0]]:.2f} mm)",
                after_index=duplicate_at[0],
                details={"after_indices": duplicate_at, "positions_mm": [round(positions[i], 3) for i in duplicate_at]},
            )
        )

    sections, evidence = find_sections(slices, positions, tol)
    overlaps = _overlaps(sections)
    stitched = len(sections) > 1 and bool(overlaps)
    if stitched:
        where = " and ".join(f"{length:.1f} mm at {at:.1f} mm" for length, at in overlaps)
        irregularities.append(
            Irregularity(
                "stitched_sections",
                f"{len(sections)} sections stitched ({evidence}), overlapping {where}",
                details={
                    "sections": [
                        {"index": s.index, "start_mm": round(s.start_mm, 3), "end_mm": round(s.end_mm, 3),
                         "slices": len(s.slice_indices), "step_mm": s.step_mm}
                        for s in sections
                    ],
                    "overlaps": [{"length_mm": round(a, 3), "at_mm": round(b, 3)} for a, b in overlaps],
                },
            )
        )
        gap_steps = _steps_within_sections(sections, positions)
    else:
        gap_steps = [(i, i + 1) for i in range(len(steps))]

    # Missing slices: a gap that is a whole multiple (>= 2) of the local step.
    for a, b in gap_steps:
        step = positions[b] - positions[a]
        local = _local_step(np.diff(positions), a, tol) if not stitched else _section_step(sections, a)
        if not local or step <= tol.position_mm:
            continue
        ratio = step / local
        count = round(ratio)
        if count >= 2 and abs(ratio - count) <= tol.missing_multiple:
            holes = _instance_holes(slices[a], slices[b])
            evidence_text = f" (instance numbers {number_ranges(holes)})" if holes else ""
            irregularities.append(
                Irregularity(
                    "missing_slices",
                    f"{count - 1} slice(s) missing after slice {a}{evidence_text}: "
                    f"gap {step:.2f} mm where the step is {local:.2f} mm",
                    after_index=a,
                    details={"gap_mm": round(step, 4), "local_step_mm": round(local, 4),
                             "missing_count": count - 1, "instance_numbers": holes,
                             "at_mm": round(positions[a], 3)},
                )
            )

    # Variable spacing: runs of different constant steps (missing-slice gaps aside).
    missing_after = {irr.after_index for irr in irregularities if irr.kind == "missing_slices"}
    if not stitched:
        runs = [r for r in constant_runs(steps, tol) if not (r[1] == 1 and r[0] in missing_after)]
        distinct = []
        for _, _, step in runs:
            if step > tol.position_mm and not any(steps_agree(step, d, tol) for d in distinct):
                distinct.append(step)
        if len(distinct) > 1:
            described = ", ".join(f"{count} step(s) of {step:.2f} mm" for _, count, step in runs)
            irregularities.append(
                Irregularity(
                    "variable_spacing",
                    f"variable spacing: {described}",
                    after_index=runs[1][0],
                    details={"runs": [{"first_step": s, "count": c, "step_mm": round(v, 4)} for s, c, v in runs]},
                )
            )

    moving = steps[steps > tol.position_mm]
    nominal = _nominal(slices)
    dominant = _dominant_step(steps, tol)
    summary = SpacingSummary(
        nominal=nominal,
        median=float(np.median(moving)) if len(moving) else None,
        min=float(moving.min()) if len(moving) else None,
        max=float(moving.max()) if len(moving) else None,
    )
    mismatch = _nominal_mismatch(nominal, dominant, tilt, tol)
    if mismatch:
        irregularities.append(mismatch)

    candidates = {}
    if nominal is not None:
        candidates["nominal"] = nominal
    if summary.median is not None:
        candidates["median"] = summary.median
        candidates["min"] = summary.min
    blocking = {"non_parallel", "duplicate_positions", "stitched_sections", "missing_slices", "variable_spacing"}
    regular = len(slices) > 1 and not any(i.kind in blocking for i in irregularities) and bool(len(moving))
    return StackGeometry(
        orientation=tuple(slices[0].orientation),
        normal=tuple(float(v) for v in normal),
        stacking_direction=tuple(float(v) for v in direction),
        positions_mm=[float(p) for p in positions],
        steps_mm=[float(s) for s in steps],
        spacing=summary,
        regular=regular,
        irregularities=irregularities,
        tilt_deg=float(tilt),
        tilt_tag_deg=tilt_tag,
        sections=sections if stitched else [],
        candidate_spacings_mm=candidates,
    )


def _steps_within_sections(sections: list[Section], positions: np.ndarray) -> list[tuple[int, int]]:
    """Consecutive-slice pairs inside each section (spatial indices), for gap detection."""
    pairs = []
    for s in sections:
        idx = sorted(s.slice_indices, key=lambda i: positions[i])
        pairs.extend(zip(idx, idx[1:]))
    return pairs


def _section_step(sections: list[Section], index: int) -> float | None:
    for s in sections:
        if index in s.slice_indices:
            return s.step_mm
    return None


def _nominal(slices: Sequence[SliceHeader]) -> float | None:
    """SpacingBetweenSlices (its magnitude: some scanners write it negative), else SliceThickness.

    Only a value the whole stack agrees on is nominal; where it varies (4 mm then 7 mm slices) there
    is no single nominal spacing and the positions decide.
    """
    for values in (
        [abs(s.spacing_between_slices_mm) for s in slices if s.spacing_between_slices_mm],
        [s.slice_thickness_mm for s in slices if s.slice_thickness_mm],
    ):
        if values:
            return float(values[0]) if max(values) - min(values) <= 1e-3 else None
    return None


def _nominal_mismatch(
    nominal: float | None, dominant: float | None, tilt_deg: float, tol: Tolerances
) -> Irregularity | None:
    if nominal is None or dominant is None or abs(nominal - dominant) <= tol.nominal_mm:
        return None
    along_table = dominant / math.cos(math.radians(tilt_deg))
    if tilt_deg > tol.tilt_deg and abs(nominal - along_table) <= tol.nominal_mm:
        return Irregularity(
            "nominal_mismatch",
            f"nominal spacing {nominal:g} mm is measured along the tilted table: "
            f"{dominant:.2f} mm along the slice normal",
            details={"nominal_mm": nominal, "dominant_step_mm": round(dominant, 4), "along_table": True},
        )
    return Irregularity(
        "nominal_mismatch",
        f"nominal spacing {nominal:g} mm disagrees with the positions (usual step {dominant:.2f} mm)",
        details={"nominal_mm": nominal, "dominant_step_mm": round(dominant, 4), "along_table": False},
    )
