"""IrregularSeries: DICOM series with irregular geometry to exact, regular volumes.

Headless (numpy and pydicom only); never imports ``slicer`` (its Slicer integration is the
``irregular_series.slicer`` subpackage). Coordinates are LPS millimetres.

The names below are imported when first used, so that ``import irregular_series.headers`` (say)
loads only what reading headers needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "analyze": "analysis",
    "analyze_slices": "analysis",
    "Analysis": "model",
    "Excluded": "model",
    "Irregularity": "irregularities",
    "IrregularityKind": "irregularities",
    "Decision": "decisions",
    "DecisionKind": "decisions",
    "Failure": "decisions",
    "OutputVolume": "conversion",
    "SeriesAnalysis": "model",
    "SliceHeader": "model",
    "Stack": "model",
    "StackGeometry": "model",
    "Tolerances": "tolerances",
    "ConvertOptions": "options",
    "ConvertResult": "conversion",
    "convert": "conversion",
    "ArchiveConversion": "archive",
    "SeriesResult": "archive",
    "Execution": "parallel",
    "Action": "summary",
    "StackSummary": "summary",
    "summarize": "summary",
    "write_summary": "summary",
    "GapPolicy": "policies",
    "Interpolation": "policies",
    "OutputFormat": "policies",
    "PositionSource": "policies",
    "SectionPolicy": "policies",
    "SpacingRule": "policies",
    "TiltPolicy": "policies",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:
    from .analysis import analyze, analyze_slices
    from .archive import ArchiveConversion, SeriesResult
    from .conversion import ConvertResult, OutputVolume, convert
    from .decisions import Decision, DecisionKind, Failure
    from .irregularities import Irregularity, IrregularityKind
    from .model import Analysis, Excluded, SeriesAnalysis, SliceHeader, Stack, StackGeometry
    from .options import ConvertOptions
    from .parallel import Execution
    from .policies import (
        GapPolicy,
        Interpolation,
        OutputFormat,
        PositionSource,
        SectionPolicy,
        SpacingRule,
        TiltPolicy,
    )
    from .summary import Action, StackSummary, summarize, write_summary
    from .tolerances import Tolerances
