"""What a conversion decided, and what stopped it, as records turned into words only where shown.

The library writes neutral words (``message``) and names the option a record concerns by its
``ConvertOptions`` field (``option``, ``choice``). Each edge adds how that option is set there:
the command line names its flag (``--gaps split``), the Slicer panel its control ("Gaps: split"),
``report.json`` keeps the fields. Library text never names a command-line flag.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

OptionName = Literal[
    "spacing", "gaps", "sections", "tilt", "interpolation", "format", "positions", "include_localizers", "force",
    "background", "mask", "allow_output_in_input", "limits",
    "overlap", "assemble", "in_plane_spacing_mm", "keep_together", "four_d",
]
"""A ``ConvertOptions`` field."""

SettingWords = Callable[[OptionName, "str | None"], str]
"""How an edge says an option setting: (option, choice or ``None`` for a switch) to words."""


class DecisionKind(str, Enum):
    """What a decision is about; the value is the word in ``report.json``."""

    DUPLICATE_DROPPED = "duplicate_dropped"
    SECTION_USED = "section_used"
    SECTION_ALONE = "section_alone"
    GAP_RUN = "gap_run"
    SLICE_SPACING = "slice_spacing"
    POSITIONS_OVERRIDDEN = "positions_overridden"
    GAPS_INTERPOLATED = "gaps_interpolated"
    GAPS_BLANK = "gaps_blank"
    NEAREST_DISTANCE = "nearest_distance"
    PLANE_EXTRAPOLATED = "plane_extrapolated"
    END_BEYOND_REACH = "end_beyond_reach"
    GAP_PLANES_REACHED = "gap_planes_reached"
    BACKGROUND = "background"
    OUTPUT_TYPE = "output_type"
    CONTENT_WARNING = "content_warning"
    TILT_REMOVED = "tilt_removed"
    TILT_KEPT = "tilt_kept"
    NO_INTERPOLATION = "no_interpolation"
    MOSAIC_UNPACKED = "mosaic_unpacked"
    ROWS_FLIPPED = "rows_flipped"
    ASSEMBLED = "assembled"
    STATION_USED = "station_used"
    OVERLAPS_RESOLVED = "overlaps_resolved"
    IN_PLANE_LATTICE = "in_plane_lattice"
    STATION_GAP = "station_gap"
    INTENSITY_DIFFERENCE = "intensity_difference"
    SERIES_AXIS = "series_axis"
    SERIES_GRID = "series_grid"
    SERIES_COVERAGE = "series_coverage"
    SERIES_APART = "series_apart"

    def __str__(self) -> str:
        return str(self.value)


@dataclass(frozen=True)
class Decision:
    """One decision about one output volume. ``message``: neutral words; ``option``/``choice``:
    the option setting it follows from (``None`` when none does); ``values``: its numbers."""

    kind: DecisionKind
    message: str
    option: OptionName | None = None
    choice: str | None = None
    values: Mapping[str, float | int | str | None] = field(default_factory=dict)

    def in_words(self, setting: SettingWords | None = None) -> str:
        """The message, followed by the option setting in the edge's words when ``setting`` is given."""
        if setting is None or self.option is None:
            return self.message
        return f"{self.message} ({setting(self.option, self.choice)})"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "message": self.message, "option": self.option, "choice": self.choice,
                "values": dict(self.values)}


@dataclass(frozen=True)
class Failure:
    """A stack or part that was not converted: ``subject`` names it, ``message`` says why in
    neutral words; ``remedy`` is an option setting that would avoid it, when there is one."""

    subject: str
    message: str
    remedy: tuple[OptionName, str | None] | None = None

    def in_words(self, setting: SettingWords | None = None) -> str:
        """One line; with ``setting``, the remedy in the edge's words (e.g. "use --force")."""
        text = f"{self.subject}: {self.message}"
        if setting is not None and self.remedy is not None:
            text += f" ({setting(*self.remedy)})"
        return text

    def __str__(self) -> str:
        return self.in_words()


class PolicyError(ValueError):
    """A policy cannot be applied to this input; ``remedy`` is an option setting that can."""

    def __init__(self, message: str, remedy: tuple[OptionName, str | None] | None = None) -> None:
        super().__init__(message)
        self.remedy = remedy
