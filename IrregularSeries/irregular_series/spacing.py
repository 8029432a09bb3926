"""The slice spacing of an output volume: the ``auto`` rule, the nominal spacing and when the
positions support it, and the spacing presets a stack offers."""

from __future__ import annotations

import math

import numpy as np

from .geometry import dominant_step
from .model import Stack
from .policies import Spacing, SpacingRule, parse_spacing
from .tolerances import DEFAULT, Tolerances

SINGLE_SLICE_SPACING_MM = 1.0
"""The k spacing given to a one-slice volume (a localizer) whose headers state no spacing or
thickness: any value places its one plane correctly; 1 mm keeps viewers' defaults sensible."""


def choose_spacing(stack: Stack, choice: Spacing | str, tol: Tolerances = DEFAULT) -> tuple[float, str]:
    """Slice spacing (mm, along the normal) for ``choice`` and a sentence saying where it comes from.

    ``auto``: the nominal spacing (SpacingBetweenSlices, else SliceThickness) when the positions
    support it — the usual step, or every stitched section's step, agrees with it within
    ``tol.nominal_mm``, and on a tilted stack it is not the table step — else the median step.
    A single slice gets its nominal spacing, else ``SINGLE_SLICE_SPACING_MM``. ``nominal``,
    ``median``, ``min``: that value (an error when the stack lacks it). A number: exactly that
    many mm.
    """
    g = stack.geometry
    if g is None:
        raise ValueError(f"stack {stack.id} has no geometry")
    choice = parse_spacing(choice)
    if not isinstance(choice, SpacingRule):
        return choice, f"{choice:g} mm as requested"
    candidates = g.candidate_spacings_mm
    if choice == "auto":
        nominal = candidates.get("nominal")
        if "median" not in candidates:  # one position: no step to measure
            if nominal is not None:
                return nominal, f"nominal spacing {nominal:g} mm (one position: no step to measure)"
            return SINGLE_SLICE_SPACING_MM, (f"{SINGLE_SLICE_SPACING_MM:g} mm (one position, and no "
                                             "SpacingBetweenSlices or SliceThickness)")
        why = "no nominal spacing in the headers" if nominal is None else _nominal_disagreement(stack, nominal, tol)
        if why is None:
            return nominal, f"nominal spacing {nominal:g} mm (the positions agree with it)"
        return candidates["median"], f"median step {candidates['median']:.4g} mm ({why})"
    if choice.value not in candidates:
        what = "no such value in its headers" if choice == "nominal" else "one position: no steps"
        raise ValueError(f"stack {stack.id} has no {choice} spacing ({what})")
    return candidates[choice.value], f"{choice} spacing {candidates[choice.value]:.4g} mm"


def _nominal_disagreement(stack: Stack, nominal: float, tol: Tolerances) -> str | None:
    """Why the positions do not support ``nominal`` as the slice spacing; None when they do."""
    g = stack.geometry
    steps = [s.step_mm for s in g.sections if s.step_mm] or [dominant_step(np.asarray(g.steps_mm), tol)]
    if any(step is None or abs(step - nominal) > tol.nominal_mm for step in steps):
        return f"nominal {nominal:g} mm disagrees with the positions"
    if nominal_along_table(stack, nominal, tol):
        return f"nominal {nominal:g} mm is the table step of this {g.tilt_deg:.1f}° tilted stack"
    return None


def nominal_along_table(stack: Stack, nominal: float, tol: Tolerances) -> bool:
    """Tilted stacks: is ``nominal`` closer to the step along the stacking line (the table step,
    which CT scanners write there) than to the step along the normal?"""
    g = stack.geometry
    step = dominant_step(np.asarray(g.steps_mm), tol)
    if g.tilt_deg <= tol.tilt_deg or step is None:
        return False
    return abs(nominal - step / math.cos(math.radians(g.tilt_deg))) < abs(nominal - step)
