"""Which slices make which output volume: the gap, section and duplicate policies, and the
nominal-positions override.

``plan_stack`` turns one analysed stack into one or more *parts*, each with the slices it uses (in
spatial order) and a record per decision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from .decisions import Decision, DecisionKind, PolicyError
from .irregularities import IrregularityKind
from .model import SliceHeader, Stack, as_vec3
from .mosaic import unpack_summary
from .options import ConvertOptions
from .orientation import positions_along
from .pixels import load_pixels
from .quirks import flip_summary
from .spacing import nominal_along_table
from .tolerances import DEFAULT, Tolerances


@dataclass
class Part:
    """The slices (spatial order) one output volume is built from, and why. ``left_out``: slices
    of its stack a policy leaves out of it on purpose (duplicates, overlap halves of merged
    sections), which the content check reports apart."""

    stack: Stack
    slices: list[SliceHeader]
    label: str
    decisions: list[Decision] = field(default_factory=list)
    left_out: list[SliceHeader] = field(default_factory=list)


def slice_id(s: SliceHeader) -> tuple[str, int]:
    return s.path, s.frame


def _drop_duplicates(part: Part, normal: Sequence[float], tol: Tolerances) -> Part:
    """Keep one slice per position, the lowest instance number (then label), and drop the others
    only when they are true duplicates: the same pixel values (a copy under another SOP Instance
    UID; copies under the same UID never get this far). Different images at one position are not
    duplicates, and dropping one would lose it: ``ValueError``."""
    d = positions_along(part.slices, normal)
    runs: list[list[SliceHeader]] = []
    last = -math.inf
    for s, p in zip(part.slices, d):
        if p - last <= tol.position_mm:
            runs[-1].append(s)
        else:
            runs.append([s])
            last = p
    kept = []
    for run in runs:
        keep = min(run, key=lambda s: (s.instance_number is None, s.instance_number or 0, s.label))
        kept.append(keep)
        others = [s for s in run if s is not keep]
        if not others:
            continue
        at_mm = float(positions_along([keep], normal)[0])
        where = f"{at_mm:.2f}"
        pixels = load_pixels([keep] + others, dtype=np.float64)
        for s, values in zip(others, pixels[1:]):
            if not np.array_equal(values, pixels[0]):
                raise ValueError(
                    f"{keep.label} and {s.label} are both at {where} mm but their pixels differ: they are different "
                    "images, not duplicates, and no tag tells them apart as volumes; nothing is dropped")
            part.left_out.append(s)
            part.decisions.append(Decision(
                DecisionKind.DUPLICATE_DROPPED,
                f"duplicate position {where} mm: kept {keep.label}, dropped {s.label} (the same pixel values: a copy)",
                values={"position_mm": round(at_mm, 4), "kept": keep.label, "dropped": s.label}))
    part.slices = kept
    return part


def _merge_sections(stack: Stack) -> Part:
    """One volume from stitched sections: each overlap is cut at its middle and each section
    supplies the slices on its side of the cuts, so that in an overlap the data come from the
    section whose interior is nearer (section ends are where stitching artefacts live).

    Sections must follow each other along the stack (each starts and ends after the previous one);
    nested or shuffled sections have no such cut, and merging them is refused.
    """
    g = stack.known_geometry
    positions = np.asarray(g.positions_mm)
    sections = g.sections
    for k, (a, b) in enumerate(zip(sections, sections[1:]), start=1):
        if not (b.start_mm > a.start_mm and b.end_mm > a.end_mm):
            raise PolicyError(
                f"sections {k} ({a.start_mm:.2f}–{a.end_mm:.2f} mm) and {k + 1} ({b.start_mm:.2f}–{b.end_mm:.2f} mm) "
                "do not follow each other along the stack, so there is no place to cut between them",
                remedy=("sections", "split"))
    cuts = [(a.end_mm + b.start_mm) / 2 for a, b in zip(sections, sections[1:])]
    bounds = [-math.inf] + cuts + [math.inf]
    keep: list[int] = []
    decisions = []
    for k, section in enumerate(sections):
        lo, hi = bounds[k], bounds[k + 1]
        owned = [i for i in section.slice_indices if lo <= positions[i] < hi]
        keep.extend(owned)
        where = ([f"from {lo:.2f} mm"] if k > 0 else []) + ([f"up to {hi:.2f} mm"] if k < len(sections) - 1 else [])
        decisions.append(Decision(
            DecisionKind.SECTION_USED,
            f"section {k + 1} ({section.start_mm:.2f}–{section.end_mm:.2f} mm) used {' '.join(where) or 'whole'}: "
            f"{len(owned)} slice(s), {len(section.slice_indices) - len(owned)} left out in overlaps "
            "(each overlap is cut at its middle: every section keeps the half nearer its own interior)",
            "sections", "merge",
            {"section": k + 1, "from_mm": round(lo, 4) if k > 0 else None,
             "up_to_mm": round(hi, 4) if k < len(sections) - 1 else None,
             "slices": len(owned), "left_out": len(section.slice_indices) - len(owned)},
        ))
    keep.sort(key=lambda i: positions[i])
    kept = set(keep)
    left_out = [s for i, s in enumerate(stack.slices) if i not in kept]
    return Part(stack, [stack.slices[i] for i in keep], "", decisions, left_out)


def _split_sections(stack: Stack) -> list[Part]:
    g = stack.known_geometry
    positions = g.positions_mm
    count = len(g.sections)
    return [
        Part(stack, [stack.slices[i] for i in sorted(s.slice_indices, key=lambda i: positions[i])],
             f"section{s.index + 1}",
             [Decision(DecisionKind.SECTION_ALONE, f"section {s.index + 1} of {count} on its own", "sections", "split",
                       {"section": s.index + 1, "sections": count})])
        for s in g.sections
    ]


GAP_KINDS = frozenset({IrregularityKind.MISSING_SLICES, IrregularityKind.STATION_GAP})
"""Irregularity kinds the gap policy applies to: slices missing within a series, and the space
between two series assembled into one volume (``joining.py``)."""


def missing_after(stack: Stack) -> set[tuple[str, int]]:
    """Ids of the slices that a gap follows (missing slices, or a gap between assembled series)."""
    return {
        slice_id(stack.slices[i.after_index])
        for i in stack.known_geometry.irregularities
        if i.kind in GAP_KINDS and i.after_index is not None
    }


def _split_gaps(part: Part, gap_after: set[tuple[str, int]]) -> list[Part]:
    """One part per contiguous run between missing-slice gaps."""
    runs: list[list[SliceHeader]] = [[]]
    for s in part.slices[:-1]:
        runs[-1].append(s)
        if slice_id(s) in gap_after:
            runs.append([])
    runs[-1].append(part.slices[-1])
    if len(runs) == 1:
        return [part]
    label = f"{part.label}_" if part.label else ""
    return [
        Part(part.stack, run, f"{label}run{k + 1}",
             part.decisions + [Decision(DecisionKind.GAP_RUN, f"run {k + 1} of {len(runs)} between missing slices",
                                        "gaps", "split", {"run": k + 1, "runs": len(runs)})])
        for k, run in enumerate(runs)
    ]


def plan_stack(stack: Stack, options: ConvertOptions) -> list[Part]:
    """The parts (output volumes) one stack becomes under the gap and section policies.

    Raises ``ValueError`` when the policies cannot be applied (sections that cannot be merged).
    """
    g = stack.known_geometry
    if g.sections and options.sections == "split":
        parts = _split_sections(stack)
    elif g.sections:
        parts = [_merge_sections(stack)]
    else:
        parts = [Part(stack, list(stack.slices), "")]
    parts = [_drop_duplicates(p, g.normal, options.tolerances) for p in parts if p.slices]
    corrections = [Decision(kind, text) for kind, text in ((DecisionKind.MOSAIC_UNPACKED, unpack_summary(stack.slices)),
                                                            (DecisionKind.ROWS_FLIPPED, flip_summary(stack.slices))) if text]
    for p in parts:
        p.decisions[:0] = corrections
    gap_after = missing_after(stack)
    if options.gaps == "split" and gap_after:
        parts = [q for p in parts for q in _split_gaps(p, gap_after)]
    return parts


def override_positions(part: Part, tol: Tolerances = DEFAULT) -> tuple[list[SliceHeader], str]:
    """Positions from the nominal spacing: slice k placed k nominal steps from the first along the stacking
    line (its tilt kept), replacing ImagePositionPatient. Returns the slices and what the step is.

    The nominal spacing is the stack's SpacingBetweenSlices (else SliceThickness), taken along the
    normal, or along the stacking line when it is a tilted stack's table step.
    """
    stack = part.stack
    g = stack.known_geometry
    nominal = g.candidate_spacings_mm.get("nominal")
    if nominal is None:
        raise PolicyError("positions from the nominal spacing need SpacingBetweenSlices or SliceThickness, "
                          "and this stack has neither", remedy=("positions", "dicom"))
    normal = np.asarray(g.normal)
    direction = np.asarray(g.stacking_direction)
    if nominal_along_table(stack, nominal, tol):
        step, what = direction * nominal, f"{nominal:g} mm along the tilted table"
    else:
        step, what = direction * nominal / float(direction @ normal), f"{nominal:g} mm along the normal"
    origin = np.asarray(part.slices[0].pose.position_lps_mm)
    slices = [
        replace(s, position_lps_mm=as_vec3(origin + k * step)) for k, s in enumerate(part.slices)
    ]
    return slices, what
