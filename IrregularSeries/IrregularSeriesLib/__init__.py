"""IrregularSeries core: DICOM series with irregular geometry to exact, regular volumes.

Headless (numpy and pydicom only); never imports ``slicer``. Coordinates are LPS millimetres.
"""

__version__ = "0.1.0"

from .analysis import analyze, analyze_slices
from .model import Analysis, Excluded, Irregularity, SeriesAnalysis, SliceHeader, Stack, StackGeometry
from .tolerances import Tolerances

__all__ = [
    "Analysis",
    "Excluded",
    "Irregularity",
    "SeriesAnalysis",
    "SliceHeader",
    "Stack",
    "StackGeometry",
    "Tolerances",
    "analyze",
    "analyze_slices",
]
