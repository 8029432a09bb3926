"""Records shared by every layer: slices, stacks, series analyses.

Coordinates are DICOM patient coordinates (LPS, millimetres) throughout the core. Vectors are
plain tuples of floats so that records stay hashable and JSON-friendly; code that computes builds
numpy arrays from them in bulk.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from .irregularities import Irregularity

Vec3 = tuple[float, float, float]


def as_vec3(values: Iterable[float]) -> Vec3:
    """A record's vector from three numbers (a row of an array, a tag's values)."""
    x, y, z = values
    return float(x), float(y), float(z)


class SlicePose(NamedTuple):
    """Where a slice lies: its row and column directions and the centre of its first pixel (LPS)."""

    row_cosines: Vec3
    col_cosines: Vec3
    position_lps_mm: Vec3

    @property
    def orientation(self) -> tuple[float, ...]:
        """The six direction cosines (row then column), as ImageOrientationPatient lists them."""
        return self.row_cosines + self.col_cosines

Role = Literal["volume", "localizer", "other"]


@dataclass(frozen=True)
class SliceHeader:
    """One 2D image: a single-frame file (frame 0) or one frame of a multi-frame object.

    ``row_cosines`` is the direction of increasing column index (IOP[0:3]), ``col_cosines`` the
    direction of increasing row index (IOP[3:6]); both normalised and orthogonalised (LPS).
    ``pixel_spacing_mm`` is (spacing between rows, spacing between columns), as in the DICOM tag:
    the i (column) step is ``pixel_spacing_mm[1]``, the j (row) step ``pixel_spacing_mm[0]``.
    Geometry fields are ``None`` when the header lacks them.

    ``complex_component`` is the image kind (MAGNITUDE, PHASE, REAL, IMAGINARY, MIXED; "" when
    the header does not say), from ComplexImageComponent or, in classic images, ImageType or a
    documented vendor tag. A tile of a Siemens MOSAIC image is one slice: ``frame`` is its tile
    index, ``number_of_frames`` the number of tiles, ``rows``/``columns`` the tile's size and
    ``mosaic_columns`` the number of tiles per row of the stored image (0 when not a mosaic).
    ``flip_rows`` says the stored rows run backwards (a vendor quirk, see ``headers``).
    """

    path: str
    frame: int
    number_of_frames: int
    sop_instance_uid: str
    sop_class_uid: str
    series_instance_uid: str
    study_instance_uid: str = ""
    patient_id: str = ""
    frame_of_reference_uid: str = ""
    series_number: int | None = None
    series_description: str = ""
    modality: str = ""
    instance_number: int | None = None
    image_type: tuple[str, ...] = ()
    rows: int = 0
    columns: int = 0
    row_cosines: Vec3 | None = None
    col_cosines: Vec3 | None = None
    position_lps_mm: Vec3 | None = None
    pixel_spacing_mm: tuple[float, float] | None = None
    slice_thickness_mm: float | None = None
    spacing_between_slices_mm: float | None = None
    gantry_tilt_tag_deg: float | None = None
    acquisition_number: int | None = None
    temporal_position: int | None = None
    echo_number: int | None = None
    echo_time_ms: float | None = None
    trigger_time_ms: float | None = None
    repetition_time_ms: float | None = None
    temporal_resolution_ms: float | None = None
    """RepetitionTime and TemporalResolution (the time between temporal positions), both ms; hints
    for the time axis of a time series (see ``timeseries``)."""
    content_time: str = ""
    acquisition_time: str = ""
    stack_id: str = ""
    in_stack_position: int | None = None
    dimension_index: tuple[int, ...] = ()
    complex_component: str = ""
    rescale_slope: float = 1.0
    rescale_intercept: float = 0.0
    pixel_padding_value: int | None = None
    """PixelPaddingValue (0028,0120) as stored (before rescaling); None when absent."""
    photometric_interpretation: str = "MONOCHROME2"
    samples_per_pixel: int = 1
    bits_allocated: int = 16
    bits_stored: int = 16
    pixel_representation: int = 0
    transfer_syntax_uid: str = ""
    mosaic_columns: int = 0
    flip_rows: bool = False
    pixel_data_offset: int | None = field(default=None, compare=False)
    """File offset of the pixel values when the header scan found them, uncompressed little
    endian and exactly one frame long; the pixel reader then reads there instead of looking.
    Not compared: where the values are stored does not make another slice (the pydicom reader and
    Slicer's database do not know it)."""

    @property
    def has_geometry(self) -> bool:
        return (
            self.row_cosines is not None
            and self.col_cosines is not None
            and self.position_lps_mm is not None
            and self.pixel_spacing_mm is not None
        )

    @property
    def pose(self) -> SlicePose:
        """The orientation and position of a slice that has them (every slice of a stack: the
        analysis sets the others aside); ``ValueError`` naming the file otherwise."""
        if self.row_cosines is None or self.col_cosines is None or self.position_lps_mm is None:
            missing = [name for name, value in (("ImagePositionPatient", self.position_lps_mm),
                                                ("ImageOrientationPatient", self.row_cosines)) if value is None]
            raise ValueError(f"{self.label}: no {', '.join(missing)}: the image cannot be placed in space")
        return SlicePose(self.row_cosines, self.col_cosines, self.position_lps_mm)

    @property
    def rescaled_padding_value(self) -> float | None:
        """PixelPaddingValue as the rescaled values read it (what fills the outside of a scan)."""
        if self.pixel_padding_value is None:
            return None
        return self.pixel_padding_value * self.rescale_slope + self.rescale_intercept

    @property
    def pixel_steps_mm(self) -> tuple[float, float]:
        """(i step, j step) in mm: the distance between columns (along ``row_cosines``) and
        between rows (along ``col_cosines``). PixelSpacing lists them the other way round."""
        if self.pixel_spacing_mm is None:
            raise ValueError(f"{self.label}: no PixelSpacing")
        between_rows, between_columns = self.pixel_spacing_mm
        return between_columns, between_rows

    @property
    def label(self) -> str:
        """``path`` for single-frame files, ``path#frame`` for frames of multi-frame objects."""
        return self.path if self.number_of_frames <= 1 else f"{self.path}#{self.frame}"


@dataclass(frozen=True)
class Excluded:
    """A file (or one frame of it) left out of every stack, with the reason in plain words.

    ``series_instance_uid`` is the series the header names ("" when unknown or unreadable), so
    that e.g. a Raw Data object is reported with the series it was stored in. ``error_type`` names
    the exception behind the reason when one was raised (``HeaderError``, ``LimitExceeded``,
    ``PermissionError``...), "" when the file was simply recognised as unusable."""

    path: str
    reason: str
    frame: int | None = None
    series_instance_uid: str = ""
    error_type: str = ""


@dataclass(frozen=True)
class SpacingSummary:
    """Slice spacing in mm. ``nominal`` comes from the headers (SpacingBetweenSlices, else
    SliceThickness); the others from the positions along the normal."""

    nominal: float | None
    median: float | None
    min: float | None
    max: float | None


@dataclass(frozen=True)
class Section:
    """A run of slices acquired together (one stitched section), in spatial-index terms."""

    index: int
    start_mm: float
    end_mm: float
    slice_indices: tuple[int, ...]
    step_mm: float | None
    evidence: str


@dataclass
class StackGeometry:
    """Geometry of one stack, slices in spatial order (increasing position along ``normal``).

    ``positions_mm`` are IPP·normal; ``steps_mm`` their consecutive differences.
    ``stacking_direction`` is the unit direction of the line fitted through the IPPs; ``tilt_deg``
    the angle between it and ``normal``.
    """

    orientation: tuple[float, ...]
    normal: Vec3
    stacking_direction: Vec3
    positions_mm: list[float]
    steps_mm: list[float]
    spacing: SpacingSummary
    regular: bool
    irregularities: list[Irregularity]
    tilt_deg: float
    tilt_tag_deg: float | None
    sections: list[Section]
    candidate_spacings_mm: dict[str, float]


@dataclass
class Stack:
    """Slices that form one volume (or one localizer group), in spatial order.

    ``name`` says what the stack is when its series holds several volumes at the same positions
    (e.g. "phase echo 2", "time point 21"); those volumes share one ``volume_set`` (the id of the
    first of them), so that a slice missing from one of them is seen against the others.
    """

    id: str
    role: Role
    reasons: list[str]
    slices: list[SliceHeader]
    geometry: StackGeometry | None = None
    name: str = ""
    volume_set: str = ""

    @property
    def slice_count(self) -> int:
        return len(self.slices)

    @property
    def known_geometry(self) -> StackGeometry:
        """``geometry`` of an analysed stack (every stack of an ``Analysis``); ``ValueError`` for a
        stack the analysis has not measured."""
        if self.geometry is None:
            raise ValueError(f"stack {self.id} has no geometry")
        return self.geometry


@dataclass
class SeriesAnalysis:
    """Everything found in one SeriesInstanceUID."""

    series_instance_uid: str
    series_number: int | None
    series_description: str
    modality: str
    stacks: list[Stack]
    excluded: list[Excluded]


@dataclass
class Analysis:
    """The result of ``analyze``: one record per series, plus files that belong to no series."""

    series: list[SeriesAnalysis]
    excluded: list[Excluded]
