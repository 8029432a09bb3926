"""The slice spacing of an output volume: the ``auto`` rule, the nominal spacing and when the
positions support it, and the spacing presets a stack offers."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .geometry import acquired_steps, constant_runs, dominant_step
from .model import Stack
from .policies import Spacing, SpacingRule, parse_spacing
from .tolerances import DEFAULT, Tolerances

MIN_RUN_STEPS = 2
"""A run of equal steps sets the ``auto`` spacing only when it holds at least this many steps (three
slices): a single step between two runs (the 1.08 mm where a 4 mm and a 7 mm run meet) is a
junction, not a spacing the scanner acquired at."""

SINGLE_SLICE_SPACING_MM = 1.0
"""The k spacing given to a one-slice volume (a localizer) whose headers state no spacing or
thickness: any value places its one plane correctly; 1 mm keeps viewers' defaults sensible."""


SpacingSource = Literal["nominal", "finest_run", "median", "min", "requested", "single_slice_default"]
"""Where a slice spacing comes from: a candidate of the stack, the number the user gave, or
``SINGLE_SLICE_SPACING_MM``."""


@dataclass(frozen=True)
class SliceSpacing:
    """The spacing ``choose_spacing`` chose: ``value_mm`` along the normal, the ``rule`` it was
    chosen by (``None`` for a number given by the user), the value's ``source`` and the ``reason``
    in neutral words (e.g. "nominal spacing 0.6 mm (the positions agree with it)")."""

    value_mm: float
    rule: SpacingRule | None
    source: SpacingSource
    reason: str


def choose_spacing(stack: Stack, choice: Spacing | str, tol: Tolerances = DEFAULT) -> SliceSpacing:
    """The slice spacing (mm, along the normal) for ``choice``, and where it comes from.

    ``auto`` is never coarser than the finest regular run of the stack, so that no part of it
    loses resolution: the nominal spacing (SpacingBetweenSlices, else SliceThickness) when the
    positions support it — the usual step, or every stitched section's step, agrees with it within
    ``tol.nominal_mm``, and on a tilted stack it is not the table step; else the finest regular
    run: the smallest section step of stitched sections, or the smallest mean step of the runs of
    at least ``MIN_RUN_STEPS`` equal steps (junction steps between runs, overlaps and gaps never
    count); else (no such run) the median step. A single slice gets its nominal spacing, else
    ``SINGLE_SLICE_SPACING_MM``. ``nominal``,
    ``median``, ``min``: that value (an error when the stack lacks it). A number: exactly that
    many mm.
    """
    g = stack.known_geometry
    choice = parse_spacing(choice)
    if not isinstance(choice, SpacingRule):
        return SliceSpacing(choice, None, "requested", f"{choice:g} mm as requested")
    candidates = g.candidate_spacings_mm
    auto = SpacingRule.AUTO
    if choice == auto:
        nominal = candidates.get("nominal")
        if "median" not in candidates:  # one position: no step to measure
            if nominal is not None:
                return SliceSpacing(nominal, auto, "nominal",
                                    f"nominal spacing {nominal:g} mm (one position: no step to measure)")
            return SliceSpacing(SINGLE_SLICE_SPACING_MM, auto, "single_slice_default",
                                f"{SINGLE_SLICE_SPACING_MM:g} mm (one position, and no SpacingBetweenSlices "
                                "or SliceThickness)")
        why = "no nominal spacing in the headers" if nominal is None else _nominal_disagreement(stack, nominal, tol)
        if nominal is not None and why is None:
            return SliceSpacing(nominal, auto, "nominal", f"nominal spacing {nominal:g} mm (the positions agree with it)")
        finest = finest_run_step(stack, tol)
        if finest is not None:
            step, what = finest
            return SliceSpacing(step, auto, "finest_run",
                                f"{step:.4g} mm, the step of {what} ({why}; a coarser spacing would lose its resolution)")
        median = candidates["median"]
        return SliceSpacing(median, auto, "median", f"median step {median:.4g} mm ({why}; no run of equal steps)")
    if choice.value not in candidates:
        what = "no such value in its headers" if choice == SpacingRule.NOMINAL else "one position: no steps"
        raise ValueError(f"stack {stack.id} has no {choice} spacing ({what})")
    value = candidates[choice.value]
    source: SpacingSource = "nominal" if choice == SpacingRule.NOMINAL else "median" if choice == SpacingRule.MEDIAN else "min"
    return SliceSpacing(value, choice, source, f"{choice} spacing {value:.4g} mm")


def finest_run_step(stack: Stack, tol: Tolerances = DEFAULT) -> tuple[float, str] | None:
    """The step of the stack's finest regular run and what that run is, in words: the smallest
    section step of stitched sections, else the smallest mean step among runs of at least
    ``MIN_RUN_STEPS`` agreeing steps (``geometry.constant_runs``). ``None`` when there is none."""
    g = stack.known_geometry
    sections = [(s.step_mm, s) for s in g.sections if s.step_mm]
    if len(sections) > 1:
        step_mm, finest = min(sections, key=lambda stepped: stepped[0])
        return step_mm, f"stitched section {finest.index + 1} (of {len(g.sections)})"
    steps = np.asarray(g.steps_mm)
    runs = [r for r in constant_runs(steps, tol) if r[1] >= MIN_RUN_STEPS and r[2] > tol.position_mm]
    if not runs:
        return None
    first, count, step = min(runs, key=lambda r: r[2])
    if len(runs) == 1 and count == len(steps):
        return step, "the stack's equal steps"
    return step, f"its finest run of equal steps ({count + 1} slices, from slice {first + 1})"


def _nominal_disagreement(stack: Stack, nominal: float, tol: Tolerances) -> str | None:
    """Why the positions do not support ``nominal`` as the slice spacing; None when they do."""
    g = stack.known_geometry
    steps: list[float | None] = [s.step_mm for s in g.sections if s.step_mm] or [dominant_step(acquired_steps(g), tol)]
    if any(step is None or abs(step - nominal) > tol.nominal_mm for step in steps):
        return f"nominal {nominal:g} mm disagrees with the positions"
    if nominal_along_table(stack, nominal, tol):
        return f"nominal {nominal:g} mm is the table step of this {g.tilt_deg:.1f}° tilted stack"
    return None


def nominal_along_table(stack: Stack, nominal: float, tol: Tolerances) -> bool:
    """Tilted stacks: is ``nominal`` closer to the step along the stacking line (the table step,
    which CT scanners write there) than to the step along the normal?"""
    g = stack.known_geometry
    step = dominant_step(np.asarray(g.steps_mm), tol)
    if g.tilt_deg <= tol.tilt_deg or step is None:
        return False
    return abs(nominal - step / math.cos(math.radians(g.tilt_deg))) < abs(nominal - step)
