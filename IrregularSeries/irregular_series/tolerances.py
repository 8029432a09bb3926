"""Named tolerances used to decide what is "the same" and what is irregular.

Every threshold the analysis, the conversion, the verification and the Slicer logic use lives
here, with its unit, so that a user can read, and override, what the tool considers equal.
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
    where that slice's IPP/IOP say it is. Above it, conversion refuses. Verification also refuses
    a volume whose row or column direction differs from a slice's by more than ``orientation_deg``."""

    stitch_max_overlap: float = 0.5
    """Consecutive acquisition runs are stitched sections only when they overlap by less than this
    fraction of the shorter run's extent; beyond it they are interleaved slices of one acquisition."""

    nominal_agreement_mm: float = 1e-3
    """The slices of a stack agree on a nominal spacing (SpacingBetweenSlices, SliceThickness) when
    their values differ by at most this (mm); otherwise the stack has no nominal spacing."""

    pixel_spacing_relative: float = 1e-6
    """Slices resampled onto one grid must share PixelSpacing within this fraction of it."""

    plane_count_slack: float = 1e-6
    """Relative slack when counting how many planes it takes to reach the last slice, so that a
    span of n steps at a spacing equal to the step within this relative error gives n + 1 planes."""

    corner_mm: float = 1e-3
    """A slice corner further than this (mm, per coordinate) from its DICOM position needs an
    acquisition transform, and the transform must bring every corner within it (Slicer's own
    threshold for its acquisition transform)."""

    three_plane_max_slices: int = 16
    """A series of 3 or more orientations, none with more than this many images and none dominant,
    is read as a multi-plane localizer (GE's 3-plane localizer has 7 images per plane)."""

    minority_fraction: float = 0.1
    """An orientation group with at most this fraction of the dominant group's images (or at most 2
    images) is a minority: a localizer candidate."""

    thick_slice_factor: float = 5.0
    """Slice thickness above this multiple of the dominant stack's step is localizer evidence (CT
    scouts carry thicknesses of hundreds of mm)."""

    repeated_fraction: float = 0.5
    """Repeated positions are read as several volumes (time points, echoes…) only when at least
    this fraction of the distinct positions occur more than once. Fewer repeats are duplicates
    within one volume, or the overlap of stitched sections, and are reported by the geometry
    analysis."""

    @property
    def lattice_snap_mm(self) -> float:
        """An offset (mm) smaller than this from a lattice point counts as on it: grids align to the
        first slice's pixel lattice across it, and the resampler copies pixels instead of
        interpolating. A tenth of ``verify_mm``, so that snapping alone can never fail
        verification."""
        return self.verify_mm / 10


DEFAULT = Tolerances()
