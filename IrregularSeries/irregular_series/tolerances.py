"""Named tolerances used to decide what is "the same" and what is irregular.

Every threshold the analysis and the verification use lives here, with its unit, so that a user
can read, and override, what the tool considers equal.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tolerances:
    orientation_deg: float = 0.5
    """Two slices share an orientation when both their row and column directions differ by less
    than this angle (degrees). IOP is often written with 6 decimals or less."""

    position_mm: float = 0.01
    """Two slices are at the same position (duplicates, repeated positions) when their positions
    along the normal differ by less than this (mm)."""

    step_mm: float = 0.02
    """Steps that differ by less than this (mm) are the same step; a stack whose steps all agree
    within it is regular."""

    step_relative: float = 0.01
    """The same, relative to the step: two steps agree when they differ by less than
    ``max(step_mm, step_relative * step)``."""

    collinear_mm: float = 0.5
    """A slice whose IPP lies further than this (mm) from the line fitted through its stack's IPPs,
    across the normal, is off the stack line (parallel offset blocks, table-move stacks)."""

    missing_multiple: float = 0.15
    """A gap counts as missing slices when gap / local step is within this of an integer >= 2."""

    nominal_mm: float = 0.05
    """The nominal spacing (SpacingBetweenSlices, SliceThickness) agrees with the positions when it
    differs from the dominant step by less than this (mm)."""

    tilt_deg: float = 0.05
    """Below this angle between normal and stacking direction (degrees) a stack is not tilted."""

    verify_mm: float = 0.01
    """Largest allowed distance (mm) between where an output volume puts an input slice's data and
    where that slice's IPP/IOP say it is. Above it, conversion refuses."""


DEFAULT = Tolerances()
