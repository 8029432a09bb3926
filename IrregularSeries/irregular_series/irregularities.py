"""What can be irregular about a stack: the kinds, what each means downstream, and their numbers.

Each ``IrregularityKind`` carries what it means for the rest of the package (whether the stack is
still one regular grid, whether a regular-grid loader misplaces slices, whether an acquisition
transform can represent it, whether the loaded volume holds filled-in data, how plots mark it),
so that no other module keeps its own list of kinds. Each kind has its own typed details record;
its fields are the kind's fields in the JSON report (docs/report-schema.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any, Union


class IrregularityKind(str, Enum):
    """A kind of irregularity; the value is the word used in reports.

    ``blocks_regular``: the stack is not one regular grid of its slices (gantry tilt is a sheared but
    regular grid; a disagreeing nominal spacing or an instance order that does not follow the
    positions are reported but leave the stack regular).
    ``misplaced_by_regular_grid``: a regular-grid volume, such as Slicer's scalar-volume plugin
    makes, puts slices in the wrong place (Slicer sorts by position and ignores the nominal spacing,
    so ``nominal_mismatch`` and ``instance_order`` load right there).
    ``untransformable``: a grid transform cannot represent it (two slices at one position fold the
    transform, so it has no inverse): such stacks are resampled instead.
    ``approximate``: a volume of the stack holds filled-in or averaged data (a warning when loading).
    ``plot_colour``: the matplotlib colour spacing profiles mark it with (``None``: not marked).
    """

    blocks_regular: bool
    misplaced_by_regular_grid: bool
    untransformable: bool
    approximate: bool
    plot_colour: str | None

    def __new__(
        cls,
        value: str,
        blocks_regular: bool,
        misplaced_by_regular_grid: bool,
        untransformable: bool = False,
        approximate: bool = False,
        plot_colour: str | None = None,
    ) -> IrregularityKind:
        member = str.__new__(cls, value)
        member._value_ = value
        member.blocks_regular = blocks_regular
        member.misplaced_by_regular_grid = misplaced_by_regular_grid
        member.untransformable = untransformable
        member.approximate = approximate
        member.plot_colour = plot_colour
        return member

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    # value, blocks_regular, misplaced_by_regular_grid, untransformable, approximate, plot_colour
    MISSING_SLICES = "missing_slices", True, True, False, True, "tab:red"
    VARIABLE_SPACING = "variable_spacing", True, True, False, False, "tab:orange"
    DUPLICATE_POSITIONS = "duplicate_positions", True, True, True, True, "tab:purple"
    STITCHED_SECTIONS = "stitched_sections", True, True
    NON_PARALLEL = "non_parallel", True, True, False, True
    NON_COLLINEAR = "non_collinear", True, True, False, True
    GANTRY_TILT = "gantry_tilt", False, True
    NOMINAL_MISMATCH = "nominal_mismatch", False, False
    INSTANCE_ORDER = "instance_order", False, False
    STATION_GAP = "station_gap", True, True, False, True, "tab:red"

@dataclass(frozen=True)
class MissingSlices:
    gap_mm: float
    local_step_mm: float
    missing_count: int
    instance_numbers: tuple[int, ...]
    at_mm: float

@dataclass(frozen=True)
class StepRun:
    first_step: int
    count: int
    step_mm: float

@dataclass(frozen=True)
class VariableSpacing:
    runs: tuple[StepRun, ...]

@dataclass(frozen=True)
class DuplicatePositions:
    after_indices: tuple[int, ...]
    positions_mm: tuple[float, ...]

@dataclass(frozen=True)
class SectionSummary:
    index: int
    start_mm: float
    end_mm: float
    slices: int
    step_mm: float | None

@dataclass(frozen=True)
class Overlap:
    length_mm: float
    at_mm: float

@dataclass(frozen=True)
class StitchedSections:
    sections: tuple[SectionSummary, ...]
    overlaps: tuple[Overlap, ...]

@dataclass(frozen=True)
class NonParallel:
    max_angle_deg: float

@dataclass(frozen=True)
class NonCollinear:
    max_offset_mm: float
    slice_index: int

@dataclass(frozen=True)
class GantryTilt:
    tilt_deg: float
    tag_deg: float | None

@dataclass(frozen=True)
class NominalMismatch:
    nominal_mm: float
    dominant_step_mm: float
    along_table: bool

@dataclass(frozen=True)
class InstanceOrder:
    evidence: str
    restarts: int

@dataclass(frozen=True)
class StationGap:
    gap_mm: float
    local_step_mm: float

Details = Union[
    MissingSlices, VariableSpacing, DuplicatePositions, StitchedSections, NonParallel, NonCollinear,
    GantryTilt, NominalMismatch, InstanceOrder, StationGap,
]

DETAILS_OF: dict[IrregularityKind, type] = {
    IrregularityKind.MISSING_SLICES: MissingSlices,
    IrregularityKind.VARIABLE_SPACING: VariableSpacing,
    IrregularityKind.DUPLICATE_POSITIONS: DuplicatePositions,
    IrregularityKind.STITCHED_SECTIONS: StitchedSections,
    IrregularityKind.NON_PARALLEL: NonParallel,
    IrregularityKind.NON_COLLINEAR: NonCollinear,
    IrregularityKind.GANTRY_TILT: GantryTilt,
    IrregularityKind.NOMINAL_MISMATCH: NominalMismatch,
    IrregularityKind.INSTANCE_ORDER: InstanceOrder,
    IrregularityKind.STATION_GAP: StationGap,
}
"""The details record of each kind."""

_KIND_OF = {kind.value: kind for kind in IrregularityKind}

COMMON_FIELDS = ("kind", "message", "after_index")
"""The fields every irregularity has in the JSON report; no details record may use these names."""

@dataclass(frozen=True)
class Irregularity:
    """Something about a stack that a regular-grid loader would get wrong, or that a user should
    know. ``after_index`` is the spatial index of the slice the irregularity follows (``None``
    when it concerns the whole stack); ``details`` the numbers, a record of the kind's type
    (``DETAILS_OF``)."""

    kind: IrregularityKind
    message: str
    after_index: int | None = None
    details: Details = field(kw_only=True)

    def __post_init__(self) -> None:
        kind = _KIND_OF.get(str(self.kind))
        if kind is None:
            raise ValueError(f"not an irregularity kind: {self.kind!r}")
        object.__setattr__(self, "kind", kind)
        if type(self.details) is not DETAILS_OF[self.kind]:
            raise TypeError(f"{self.kind} details must be {DETAILS_OF[self.kind].__name__}, "
                            f"not {type(self.details).__name__}")

    @property
    def after_indices(self) -> tuple[int, ...]:
        """Every slice index the irregularity follows (repeated positions can follow several)."""
        if isinstance(self.details, DuplicatePositions):
            return self.details.after_indices
        return () if self.after_index is None else (self.after_index,)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: the common fields, then the details' fields (names never shared)."""
        out: dict[str, Any] = {"kind": self.kind.value, "message": self.message, "after_index": self.after_index}
        out.update(_json(self.details))
        return out

def _json(value: Any) -> Any:
    """A details record (nested records, tuples) as JSON values."""
    if hasattr(value, "__dataclass_fields__"):
        return {f.name: _json(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, (tuple, list)):
        return [_json(v) for v in value]
    return value
