"""``ConvertOptions``: every choice a conversion makes on the user's behalf, validated when made."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from .limits import DEFAULT_LIMITS, Limits
from .policies import (
    GapPolicy,
    Interpolation,
    OutputFormat,
    OverlapPolicy,
    PositionSource,
    SectionPolicy,
    Spacing,
    SpacingRule,
    StackSplit,
    TiltPolicy,
    parse_spacing,
)
from .tolerances import DEFAULT, Tolerances

_POLICY_FIELDS = {
    "gaps": GapPolicy,
    "sections": SectionPolicy,
    "tilt": TiltPolicy,
    "interpolation": Interpolation,
    "format": OutputFormat,
    "positions": PositionSource,
    "overlap": OverlapPolicy,
}


@dataclass(frozen=True)
class ConvertOptions:
    """Every choice ``convert`` makes on the user's behalf; defaults are the documented ones.

    Policy fields accept a member of their enum or its text (``gaps="blank"``) and hold the member;
    anything else raises ``ValueError`` here, at construction, naming the allowed values.
    """

    spacing: Spacing = SpacingRule.AUTO
    gaps: GapPolicy = GapPolicy.INTERPOLATE
    sections: SectionPolicy = SectionPolicy.MERGE
    tilt: TiltPolicy = TiltPolicy.DESKEW
    interpolation: Interpolation = Interpolation.LINEAR
    format: OutputFormat = OutputFormat.NRRD
    positions: PositionSource = PositionSource.DICOM
    overlap: OverlapPolicy = OverlapPolicy.MIDDLE
    assemble: bool | tuple[str, ...] = False
    """Assembly of several series into one volume: False (none), True (every group the analysis
    offers), or the SeriesInstanceUIDs of exactly the series to join."""
    in_plane_spacing_mm: float | None = None
    """Pixel spacing of assembled volumes whose series differ in-plane; None: the finest."""
    include_localizers: bool = False
    keep_together: tuple[StackSplit, ...] = ()
    """Splits of a series into stacks not made (each given as a member or its text), for a series
    that one of them parts wrongly; the stacks' reasons say what was kept together."""
    force: bool = False
    background: float | None = None
    """The value of voxels no slice reaches; None: the rescaled PixelPaddingValue when the slices
    give one, else the lowest value in the stack's data."""
    mask: bool = False
    """Write the data mask (1 where a voxel holds data) next to every volume; it is written with
    blank gaps whatever this says."""
    four_d: bool = False
    """Write each time series (time points, cardiac phases, repeated acquisitions of one volume set)
    as one 4D file on a common grid instead of one file per volume (see ``timeseries``)."""
    allow_output_in_input: bool = False
    """Write into a folder inside an input folder (or below which an input lies); the scan then
    leaves the output folder out."""
    tolerances: Tolerances = DEFAULT
    limits: Limits = DEFAULT_LIMITS

    def __post_init__(self) -> None:
        object.__setattr__(self, "spacing", parse_spacing(self.spacing))
        for name, policy in _POLICY_FIELDS.items():
            object.__setattr__(self, name, policy.parse(getattr(self, name)))
        if self.background is not None:
            if isinstance(self.background, bool) or not isinstance(self.background, (int, float)) \
                    or not math.isfinite(self.background):
                raise ValueError(f"background must be a finite number or None; got {self.background!r}")
            object.__setattr__(self, "background", float(self.background))
        for name in ("include_localizers", "force", "mask", "four_d", "allow_output_in_input"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False; got {getattr(self, name)!r}")
        if not isinstance(self.keep_together, (list, tuple, set, frozenset)):
            raise ValueError(f"keep_together must be a list of {', '.join(StackSplit.values())}; got {self.keep_together!r}")
        kept = {StackSplit.parse(split) for split in self.keep_together}
        object.__setattr__(self, "keep_together", tuple(split for split in StackSplit if split in kept))
        if isinstance(self.assemble, (list, tuple)):
            uids = tuple(str(u).strip() for u in self.assemble if str(u).strip())
            if len(uids) < 2:
                raise ValueError(f"assemble names {len(uids)} series; joining needs at least two")
            object.__setattr__(self, "assemble", uids)
        elif not isinstance(self.assemble, bool):
            raise ValueError(f"assemble must be True, False or SeriesInstanceUIDs; got {self.assemble!r}")
        if self.in_plane_spacing_mm is not None:
            spacing = parse_spacing(self.in_plane_spacing_mm)
            if isinstance(spacing, SpacingRule):
                raise ValueError(f"in-plane spacing must be a number of mm; got {self.in_plane_spacing_mm!r}")
            object.__setattr__(self, "in_plane_spacing_mm", spacing)
        if not isinstance(self.tolerances, Tolerances):
            raise ValueError(f"tolerances must be a Tolerances record; got {type(self.tolerances).__name__}")
        if not isinstance(self.limits, Limits):
            raise ValueError(f"limits must be a Limits record; got {type(self.limits).__name__}")

    def to_dict(self) -> dict[str, Any]:
        """The options as JSON values (policies as their words, tolerances as a mapping)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.__dict__ if isinstance(value, (Tolerances, Limits)) else (
                str(value) if isinstance(value, SpacingRule) or f.name in _POLICY_FIELDS else
                [str(split) for split in value] if f.name == "keep_together" else value)
        return out
