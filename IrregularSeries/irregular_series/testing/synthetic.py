"""Synthetic DICOM phantoms: real files whose voxel values encode their own position.

Every pixel stores ``Encoding.values(p)`` for ``p`` the LPS position (mm) of its centre, as the
header written next to it states. Geometry can therefore be checked voxel by voxel anywhere
downstream: after loading, sorting or resampling, a voxel at LPS ``q`` must hold
``Encoding.values(q)`` (within the stored-value rounding, ±0.5 · RescaleSlope). Because the value
is affine in position, linear interpolation reproduces it exactly up to that rounding.

Files are written with pydicom only and read with any DICOM reader; the same code runs on
pydicom 2.4 and 3.0. Single-frame objects are CT or MR Image Storage; ``multiframe=True`` writes
one Enhanced CT or Enhanced MR object per series, with functional groups.
"""

from __future__ import annotations

import dataclasses
import math
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import Tag
from pydicom.uid import (
    UID,
    BasicTextSRStorage,
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    EnhancedCTImageStorage,
    EnhancedMRImageStorage,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    MediaStorageDirectoryStorage,
    MRImageStorage,
    RawDataStorage,
    RTStructureSetStorage,
    generate_uid,
)
from pydicom.valuerep import format_number_as_ds

from ..dicom_writer import save_part10
from ..model import Vec3, as_vec3

NameStyle = Literal["instance", "shuffled", "position"]
TransferSyntaxName = Literal["explicit_le", "implicit_le", "explicit_be", "deflated_le"]

TRANSFER_SYNTAXES: dict[str, UID] = {
    "explicit_le": ExplicitVRLittleEndian,
    "implicit_le": ImplicitVRLittleEndian,
    "explicit_be": ExplicitVRBigEndian,
    "deflated_le": DeflatedExplicitVRLittleEndian,
}
_SINGLE_FRAME_CLASS = {"CT": CTImageStorage, "MR": MRImageStorage}
_ENHANCED_CLASS = {"CT": EnhancedCTImageStorage, "MR": EnhancedMRImageStorage}
_STUDY_DATE = "20260101"
_INT16 = np.iinfo(np.int16)


def uid(*parts: object) -> UID:
    """A UID derived from ``parts`` only, so that phantoms are the same on every run."""
    return generate_uid(entropy_srcs=[str(p) for p in parts])


@dataclass(frozen=True)
class Encoding:
    """Voxel value = ``scale * dot(axis, p_lps_mm) + offset`` (modality units, after rescale)."""

    axis: Vec3 = (0.0, 0.0, 1.0)
    scale: float = 10.0
    offset: float = 0.0

    def values(self, points_lps_mm: np.ndarray) -> np.ndarray:
        """Exact (unrounded) values at points of shape (..., 3), LPS mm."""
        points = np.asarray(points_lps_mm, float)
        return self.scale * (points @ np.asarray(self.axis, float)) + self.offset


def stored_values(
    encoding: Encoding,
    points_lps_mm: np.ndarray,
    rescale_slope: float = 1.0,
    rescale_intercept: float = 0.0,
) -> np.ndarray:
    """The int16 stored values written for ``points_lps_mm``: round((value - intercept) / slope)."""
    stored = np.rint((encoding.values(points_lps_mm) - rescale_intercept) / rescale_slope)
    if stored.size and (stored.min() < _INT16.min or stored.max() > _INT16.max):
        raise ValueError(
            f"encoded values {stored.min():.0f}..{stored.max():.0f} do not fit int16: "
            "lower Encoding.scale or move the phantom closer to the origin"
        )
    return stored.astype(np.int16)


def expected_values(
    encoding: Encoding,
    points_lps_mm: np.ndarray,
    rescale_slope: float = 1.0,
    rescale_intercept: float = 0.0,
) -> np.ndarray:
    """What a reader recovers at ``points_lps_mm`` after applying the rescale: the encoded value
    rounded to the stored-value grid (stored * slope + intercept)."""
    stored = stored_values(encoding, points_lps_mm, rescale_slope, rescale_intercept)
    return stored.astype(float) * rescale_slope + rescale_intercept


def pixel_centres_lps(
    position_lps_mm: Vec3,
    row_cosines: Vec3,
    col_cosines: Vec3,
    pixel_spacing_mm: tuple[float, float],
    rows: int,
    columns: int,
) -> np.ndarray:
    """LPS centres (mm) of every pixel, shape (rows, columns, 3), indexed [j, i].

    p = IPP + i * PixelSpacing[1] * row_cosines + j * PixelSpacing[0] * col_cosines.
    """
    i = np.arange(columns, dtype=float)[None, :, None] * pixel_spacing_mm[1]
    j = np.arange(rows, dtype=float)[:, None, None] * pixel_spacing_mm[0]
    return (
        np.asarray(position_lps_mm, float)
        + i * np.asarray(row_cosines, float)
        + j * np.asarray(col_cosines, float)
    )


@dataclass(frozen=True)
class SyntheticSlice:
    """One image to write. ``None`` fields are left out of the header.

    ``stack_id`` and ``in_stack_position`` are used by multi-frame objects only (``""`` means
    stack "1"; ``None`` means the rank of the frame's position among its stack's distinct
    positions along the normal). ``photometric`` sets the tag only: stored values are the same for
    MONOCHROME1. ``omit`` lists keywords to remove from the finished header, to make broken files
    (in a multi-frame object, from that frame's functional groups). ``manufacturer`` replaces the
    synthetic Manufacturer; ``private_elements`` are (tag, VR, value) written as given (vendor
    private tags with their creators); ``rows_stored_flipped`` stores the rows bottom to top, as
    GE stores reversed phase-encoding EPI (single-frame only).
    """

    position_lps_mm: Vec3
    row_cosines: Vec3 = (1.0, 0.0, 0.0)
    col_cosines: Vec3 = (0.0, 1.0, 0.0)
    rows: int = 32
    columns: int = 32
    pixel_spacing_mm: tuple[float, float] = (1.0, 1.0)
    instance_number: int | None = None
    image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "AXIAL")
    acquisition_number: int | None = None
    temporal_position: int | None = None
    echo_number: int | None = None
    trigger_time_ms: float | None = None
    content_time: str = ""
    slice_thickness_mm: float | None = None
    spacing_between_slices_mm: float | None = None
    gantry_tilt_tag_deg: float | None = None
    series_instance_uid: str | None = None
    sop_instance_uid: str | None = None
    rescale_slope: float = 1.0
    rescale_intercept: float = 0.0
    photometric: str = "MONOCHROME2"
    stack_id: str = ""
    in_stack_position: int | None = None
    complex_component: str = ""
    manufacturer: str = ""
    private_elements: tuple[tuple[int, str, str | int], ...] = ()
    rows_stored_flipped: bool = False
    omit: tuple[str, ...] = ()

    @property
    def normal(self) -> np.ndarray:
        """row × col, the slice normal (LPS)."""
        return np.cross(self.row_cosines, self.col_cosines)

    @property
    def position_along_normal_mm(self) -> float:
        return float(np.dot(self.position_lps_mm, self.normal))


@dataclass
class SyntheticSeries:
    """Slices sharing one SeriesInstanceUID (unless a slice overrides it).

    ``sop_class`` ``None`` means CT Image Storage, or MR Image Storage when ``modality`` is MR
    (Enhanced CT / Enhanced MR when written as multi-frame).
    """

    slices: list[SyntheticSlice]
    series_instance_uid: str = field(default_factory=generate_uid)
    study_instance_uid: str = field(default_factory=generate_uid)
    frame_of_reference_uid: str = field(default_factory=generate_uid)
    modality: str = "CT"
    series_description: str = ""
    series_number: int = 1
    sop_class: str | None = None
    encoding: Encoding = field(default_factory=Encoding)

    def sop_class_uid(self, multiframe: bool = False) -> str:
        if self.sop_class and not multiframe:
            return self.sop_class
        classes = _ENHANCED_CLASS if multiframe else _SINGLE_FRAME_CLASS
        if multiframe and self.modality not in classes:
            raise ValueError(f"multi-frame is written for CT and MR only, not {self.modality!r}")
        return classes.get(self.modality, CTImageStorage)


# --- header building -------------------------------------------------------------------------


def _ds(value: float) -> str:
    """A decimal string of at most 16 characters, as DS requires: the shortest repr when it fits."""
    text = repr(float(value))
    return text if len(text) <= 16 else format_number_as_ds(float(value))


def _as_read(value: float) -> float:
    """The value as a reader will parse it from the header, so pixels match the header exactly."""
    return float(_ds(value))


def _written_geometry(s: SyntheticSlice) -> SyntheticSlice:
    between_rows, between_columns = s.pixel_spacing_mm
    return dataclasses.replace(
        s,
        position_lps_mm=as_vec3(map(_as_read, s.position_lps_mm)),
        row_cosines=as_vec3(map(_as_read, s.row_cosines)),
        col_cosines=as_vec3(map(_as_read, s.col_cosines)),
        pixel_spacing_mm=(_as_read(between_rows), _as_read(between_columns)),
    )


def _stored_frame(series: SyntheticSeries, s: SyntheticSlice) -> np.ndarray:
    w = _written_geometry(s)
    centres = pixel_centres_lps(
        w.position_lps_mm, w.row_cosines, w.col_cosines, w.pixel_spacing_mm, w.rows, w.columns
    )
    return stored_values(series.encoding, centres, s.rescale_slope, s.rescale_intercept)


def _item(**keywords: object) -> Dataset:
    ds = Dataset()
    for keyword, value in keywords.items():
        setattr(ds, keyword, value)
    return ds


def _drop(ds: Dataset, keywords: tuple[str, ...]) -> Dataset:
    """Remove ``keywords`` from ``ds`` and from every nested sequence item; return ``ds``."""
    for keyword in keywords:
        if keyword in ds:
            delattr(ds, keyword)
    for element in ds:
        if element.VR == "SQ":
            for item in element.value:
                _drop(item, keywords)
    return ds


def _base_dataset(
    series: SyntheticSeries, sop_class: str, sop_instance_uid: str, modality: str
) -> Dataset:
    """Patient, study, series, equipment and SOP common modules."""
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance_uid
    ds.StudyDate = _STUDY_DATE
    ds.StudyTime = "120000"
    ds.AccessionNumber = ""
    ds.Modality = modality
    ds.Manufacturer = "IrregularSeries synthetic"
    ds.ReferringPhysicianName = ""
    ds.SeriesDescription = series.series_description
    ds.PatientName = "Synthetic^Phantom"
    ds.PatientID = "IRREGULAR-SYNTHETIC"
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.StudyInstanceUID = series.study_instance_uid
    ds.SeriesInstanceUID = series.series_instance_uid
    ds.StudyID = "1"
    ds.SeriesNumber = series.series_number
    return ds


def _image_header(ds: Dataset, series: SyntheticSeries) -> None:
    ds.PatientPosition = "HFS"
    ds.FrameOfReferenceUID = series.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    ds.ContentDate = _STUDY_DATE


def _plane(s: SyntheticSlice) -> dict[str, list[str]]:
    """Plane position and orientation keywords (DS strings)."""
    return {
        "ImagePositionPatient": [_ds(v) for v in s.position_lps_mm],
        "ImageOrientationPatient": [_ds(v) for v in (*s.row_cosines, *s.col_cosines)],
    }


def _pixel_measures(s: SyntheticSlice) -> dict[str, str | list[str]]:
    """Pixel measures keywords (DS strings); thickness and spacing only when given."""
    measures: dict[str, str | list[str]] = {"PixelSpacing": [_ds(v) for v in s.pixel_spacing_mm]}
    if s.slice_thickness_mm is not None:
        measures["SliceThickness"] = _ds(s.slice_thickness_mm)
    if s.spacing_between_slices_mm is not None:
        measures["SpacingBetweenSlices"] = _ds(s.spacing_between_slices_mm)
    return measures


def _pixel_module(ds: Dataset, frames: list[np.ndarray], photometric: str, little_endian: bool) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = frames[0].shape
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    if len(frames) > 1 or "PerFrameFunctionalGroupsSequence" in ds:
        ds.NumberOfFrames = len(frames)
    # OW bytes are written as given: the byte order must follow the transfer syntax.
    data = np.stack(frames).astype("<i2" if little_endian else ">i2")
    ds.add_new(Tag("PixelData"), "OW", data.tobytes())


def _rescale(s: SyntheticSlice) -> dict[str, str]:
    return {"RescaleIntercept": _ds(s.rescale_intercept), "RescaleSlope": _ds(s.rescale_slope)}


def _single_frame_dataset(
    series: SyntheticSeries, s: SyntheticSlice, sop_instance_uid: str, little_endian: bool
) -> Dataset:
    ds = _base_dataset(series, series.sop_class_uid(), sop_instance_uid, series.modality)
    if s.series_instance_uid:
        ds.SeriesInstanceUID = s.series_instance_uid
    _image_header(ds, series)
    ds.ImageType = list(s.image_type)
    optional = {
        "InstanceNumber": s.instance_number,
        "AcquisitionNumber": s.acquisition_number,
        "TemporalPositionIdentifier": s.temporal_position,
        "EchoNumbers": s.echo_number,
        "TriggerTime": None if s.trigger_time_ms is None else _ds(s.trigger_time_ms),
        "ContentTime": s.content_time or None,
        "GantryDetectorTilt": None if s.gantry_tilt_tag_deg is None else _ds(s.gantry_tilt_tag_deg),
        "ComplexImageComponent": s.complex_component or None,
    }
    for keyword, value in {**optional, **_plane(s), **_pixel_measures(s), **_rescale(s)}.items():
        if value is not None:
            setattr(ds, keyword, value)
    if s.manufacturer:
        ds.Manufacturer = s.manufacturer
    for tag, vr, value in s.private_elements:
        ds.add_new(Tag(tag), vr, value)
    frame = _stored_frame(series, s)
    _pixel_module(ds, [frame[::-1] if s.rows_stored_flipped else frame], s.photometric, little_endian)
    _drop(ds, s.omit)
    return ds


# --- multi-frame -----------------------------------------------------------------------------


def _in_stack_positions(slices: list[SyntheticSlice]) -> list[int]:
    """InStackPositionNumber: the given value, else the 1-based rank of the frame's position along
    the normal among the distinct positions of its stack (frames at one position share it)."""
    def key(s: SyntheticSlice) -> tuple[str, float]:
        return s.stack_id, round(s.position_along_normal_mm, 6)

    counts: Counter[str] = Counter()
    ranks: dict[tuple[str, float], int] = {}
    for stack, position in sorted({key(s) for s in slices}):
        counts[stack] += 1
        ranks[stack, position] = counts[stack]
    return [s.in_stack_position if s.in_stack_position is not None else ranks[key(s)] for s in slices]


def _shared_image_type(types: list[tuple[str, ...]]) -> list[str]:
    """Enhanced ImageType: four values, each MIXED where the frames' FrameType values differ."""
    padded = [tuple(t[:4]) + ("NONE",) * (4 - len(t[:4])) for t in types]
    return [column[0] if len(set(column)) == 1 else "MIXED" for column in zip(*padded)]


def _frame_type_group(modality: str) -> str:
    return "MRImageFrameTypeSequence" if modality == "MR" else "CTImageFrameTypeSequence"


def _frame_type_item(s: SyntheticSlice, modality: str) -> Dataset:
    item = _item(
        FrameType=_shared_image_type([s.image_type]),
        PixelPresentation="MONOCHROME",
        VolumetricProperties="VOLUME",
        VolumeBasedCalculationTechnique="NONE",
    )
    if modality == "MR":
        item.ComplexImageComponent = s.complex_component or "MAGNITUDE"
        item.AcquisitionContrast = "UNKNOWN"
    return item


def _dimensions(slices: list[SyntheticSlice], modality: str) -> list[tuple[str, str, str]]:
    """(indexed keyword, the functional group that holds it, label), in DimensionIndexValues order."""
    dims = [
        ("StackID", "FrameContentSequence", "Stack ID"),
        ("InStackPositionNumber", "FrameContentSequence", "In-Stack Position Number"),
    ]
    if any(s.temporal_position is not None for s in slices):
        dims.append(("TemporalPositionIndex", "FrameContentSequence", "Temporal Position Index"))
    if len({s.complex_component for s in slices}) > 1:
        dims.append(("ComplexImageComponent", _frame_type_group(modality), "Complex Image Component"))
    return dims


def _per_frame_groups(
    slices: list[SyntheticSlice], modality: str, dims: list[tuple[str, str, str]]
) -> list[Dataset]:
    stack_ids = [s.stack_id or "1" for s in slices]
    stack_index = {sid: k + 1 for k, sid in enumerate(sorted(set(stack_ids)))}
    complex_index = {c: k + 1 for k, c in enumerate(sorted({s.complex_component for s in slices}))}
    positions = _in_stack_positions(slices)
    groups = []
    for s, stack_id, in_stack in zip(slices, stack_ids, positions):
        position = _item(ImagePositionPatient=_plane(s)["ImagePositionPatient"])
        index = {
            "StackID": stack_index[stack_id],
            "InStackPositionNumber": in_stack,
            "TemporalPositionIndex": s.temporal_position,
            "ComplexImageComponent": complex_index[s.complex_component],
        }
        content = _item(
            StackID=stack_id,
            InStackPositionNumber=in_stack,
            DimensionIndexValues=[index[keyword] for keyword, _, _ in dims],
        )
        if s.temporal_position is not None:
            content.TemporalPositionIndex = s.temporal_position
        if s.acquisition_number is not None:
            content.FrameAcquisitionNumber = s.acquisition_number
        if s.content_time:
            content.FrameAcquisitionDateTime = _STUDY_DATE + s.content_time
        group = _item(
            FrameContentSequence=DicomSequence([content]),
            PlanePositionSequence=DicomSequence([position]),
            PixelValueTransformationSequence=DicomSequence(
                [_item(RescaleType="HU" if modality == "CT" else "US", **_rescale(s))]
            ),
        )
        setattr(group, _frame_type_group(modality), DicomSequence([_frame_type_item(s, modality)]))
        if s.trigger_time_ms is not None:
            group.CardiacSynchronizationSequence = DicomSequence(
                [_item(NominalCardiacTriggerDelayTime=float(s.trigger_time_ms))]
            )
        if s.gantry_tilt_tag_deg is not None and modality == "CT":
            group.CTAcquisitionDetailsSequence = DicomSequence(
                [_item(GantryDetectorTilt=_ds(s.gantry_tilt_tag_deg))]
            )
        groups.append(group)
    return groups


def _share_or_spread(
    shared: Dataset, per_frame: list[Dataset], keyword: str, items: list[Dataset]
) -> None:
    """Put a functional group in the shared groups when every frame has the same, else per frame."""
    if all(item == items[0] for item in items):
        setattr(shared, keyword, DicomSequence([items[0]]))
    else:
        for group, item in zip(per_frame, items):
            setattr(group, keyword, DicomSequence([item]))


def _enhanced_dataset(series: SyntheticSeries, sop_instance_uid: str, little_endian: bool) -> Dataset:
    slices = series.slices
    if len({(s.rows, s.columns) for s in slices}) != 1 or len({s.photometric for s in slices}) != 1:
        raise ValueError("the frames of a multi-frame object need the same rows, columns, photometric")
    ds = _base_dataset(series, series.sop_class_uid(multiframe=True), sop_instance_uid, series.modality)
    _image_header(ds, series)
    ds.InstanceNumber = 1
    ds.ContentTime = min((s.content_time for s in slices if s.content_time), default="120000")
    ds.AcquisitionDateTime = _STUDY_DATE + ds.ContentTime
    ds.ImageType = _shared_image_type([s.image_type for s in slices])
    ds.ContentQualification = "PRODUCT"
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.PresentationLUTShape = "IDENTITY"
    ds.PixelPresentation = "MONOCHROME"
    ds.VolumetricProperties = "VOLUME"
    ds.VolumeBasedCalculationTechnique = "NONE"
    if series.modality == "MR":
        components = {s.complex_component or "MAGNITUDE" for s in slices}
        ds.ComplexImageComponent = components.pop() if len(components) == 1 else "MIXED"
        ds.AcquisitionContrast = "UNKNOWN"

    dims = _dimensions(slices, series.modality)
    organization = uid(sop_instance_uid, "dimension organization")
    ds.DimensionOrganizationSequence = DicomSequence([_item(DimensionOrganizationUID=organization)])
    ds.DimensionIndexSequence = DicomSequence(
        [
            _item(
                DimensionOrganizationUID=organization,
                DimensionIndexPointer=Tag(keyword),
                FunctionalGroupPointer=Tag(group),
                DimensionDescriptionLabel=label,
            )
            for keyword, group, label in dims
        ]
    )

    # A frame's omissions apply to its own groups; a group that then differs between frames
    # moves from the shared to the per-frame functional groups.
    groups = _per_frame_groups(slices, series.modality, dims)
    per_frame = [_drop(group, s.omit) for group, s in zip(groups, slices)]
    shared = Dataset()
    measures = [_drop(_item(**_pixel_measures(s)), s.omit) for s in slices]
    _share_or_spread(shared, per_frame, "PixelMeasuresSequence", measures)
    orientations = [_drop(_item(**_plane(s)), ("ImagePositionPatient", *s.omit)) for s in slices]
    _share_or_spread(shared, per_frame, "PlaneOrientationSequence", orientations)
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    _pixel_module(ds, [_stored_frame(series, s) for s in slices], slices[0].photometric, little_endian)
    _drop(ds, tuple(set.intersection(*(set(s.omit) for s in slices))))
    return ds


# --- Siemens MOSAIC ---------------------------------------------------------------------------


def csa_header(tags: dict[str, tuple[str, list[str]]]) -> bytes:
    """A Siemens CSA2 ("SV10") header holding ``tags``: name -> (VR, values as text)."""
    out = b"SV10\x04\x03\x02\x01" + struct.pack("<2I", len(tags), 77)
    for name, (vr, values) in tags.items():
        out += struct.pack("<64si4s3i", name.encode(), len(values), vr.encode(), 0, len(values), 77)
        for value in values:
            data = value.encode() + b"\0"
            out += struct.pack("<4i", len(data), len(data), 77, len(data)) + data + b"\0" * (-len(data) % 4)
    return out


def mosaic_dataset(
    series: SyntheticSeries, tiles: list[SyntheticSlice], sop_instance_uid: str, instance_number: int,
    little_endian: bool = True,
) -> Dataset:
    """One Siemens MOSAIC MR image holding ``tiles`` (slices of one volume in spatial order, equal
    steps along their normal) as Siemens writes it: tiles row by row in a ceil(sqrt(n)) grid,
    ImagePositionPatient that of the whole image centred on the first tile, the tile count and
    slice normal in the CSA image header. Each tile stores the encoding of its own pixel centres."""
    first = _written_geometry(tiles[0])
    grid = math.ceil(math.sqrt(len(tiles)))
    r, c = first.rows, first.columns
    dj, di = first.pixel_spacing_mm
    row, col = np.asarray(first.row_cosines), np.asarray(first.col_cosines)
    corner = np.asarray(first.position_lps_mm) - (grid - 1) * c / 2 * di * row - (grid - 1) * r / 2 * dj * col
    step = tiles[1].position_along_normal_mm - tiles[0].position_along_normal_mm if len(tiles) > 1 else 1.0
    image = np.zeros((grid * r, grid * c), np.int16)
    for k, tile in enumerate(tiles):
        image[(k // grid) * r : (k // grid + 1) * r, (k % grid) * c : (k % grid + 1) * c] = _stored_frame(series, tile)
    whole = dataclasses.replace(
        tiles[0], position_lps_mm=as_vec3(corner), rows=grid * r, columns=grid * c,
        instance_number=instance_number, image_type=("ORIGINAL", "PRIMARY", "M", "ND", "MOSAIC"),
        spacing_between_slices_mm=abs(step), manufacturer="SIEMENS",
    )
    ds = _single_frame_dataset(series, whole, sop_instance_uid, little_endian)
    normal = tiles[0].normal * (1.0 if step >= 0 else -1.0)
    csa = csa_header({
        "NumberOfImagesInMosaic": ("US", [str(len(tiles))]),
        "SliceNormalVector": ("FD", [repr(float(v)) for v in normal]),
        "AcquisitionMatrixText": ("SH", [f"{c}p*{r}"]),
    })
    ds.add_new(Tag(0x00290010), "LO", "SIEMENS CSA HEADER")
    ds.add_new(Tag(0x00291010), "OB", csa)
    del ds.PixelData
    _pixel_module(ds, [image], whole.photometric, little_endian)
    return ds


def write_mosaics(series: SyntheticSeries, volumes: list[list[SyntheticSlice]], outdir: str | Path) -> list[Path]:
    """One MOSAIC file per volume (a time series of mosaics: InstanceNumber and AcquisitionNumber
    count the volumes); paths in volume order."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, tiles in enumerate(volumes):
        tiles = [dataclasses.replace(t, acquisition_number=k + 1) for t in tiles]
        ds = mosaic_dataset(series, tiles, uid(series.series_instance_uid, "mosaic", k), k + 1)
        paths.append(save_dataset(ds, out / f"MOSAIC{k + 1:04d}.dcm", ExplicitVRLittleEndian))
    return paths


# --- writing ---------------------------------------------------------------------------------


def save_dataset(ds: Dataset, path: Path, transfer_syntax: UID) -> Path:
    """Write ``ds`` as a Part 10 file in ``transfer_syntax`` (fresh file meta), under pydicom 2.4 or
    3: the package's own Part 10 writer (``dicom_writer.save_part10``)."""
    return save_part10(ds, path, transfer_syntax)


def _spatial_key(s: SyntheticSlice) -> tuple[tuple[float, ...], float]:
    return (tuple(np.round(s.normal, 3)), round(s.position_along_normal_mm, 6))


def _name_order(
    slices: list[SyntheticSlice], names: str, first: tuple[int, ...], rng: np.random.Generator
) -> list[int]:
    """Indices of ``slices`` in the order their file names sort."""
    rest = [k for k in range(len(slices)) if k not in first]
    if names == "instance":
        rest.sort(key=lambda k: (slices[k].instance_number is None, slices[k].instance_number or 0))
    elif names == "position":
        rest.sort(key=lambda k: _spatial_key(slices[k]))
    elif names == "shuffled":
        rest = [rest[k] for k in rng.permutation(len(rest))]
        keys = [_spatial_key(slices[k]) for k in rest]
        # A random permutation of a few slices can come out sorted; names must never reveal order.
        if len(set(keys)) >= 3 and keys in (sorted(keys), sorted(keys, reverse=True)):
            rest[0], rest[1] = rest[1], rest[0]
    else:
        raise ValueError(f"names must be 'instance', 'shuffled' or 'position', not {names!r}")
    return list(first) + rest


def _file_names(count: int, names: str, rng: np.random.Generator) -> list[str]:
    """``count`` file names in sorting order: random hex tokens when shuffled, else IM00001.dcm …"""
    if names != "shuffled":
        return [f"IM{k + 1:05d}.dcm" for k in range(count)]
    tokens: set[str] = set()
    while len(tokens) < count:
        tokens.add(f"{int(rng.integers(16**7, 16**8)):08X}")
    return [f"{t}.dcm" for t in sorted(tokens)]


def write_series(
    series: SyntheticSeries,
    outdir: str | Path,
    *,
    names: NameStyle = "instance",
    transfer_syntax: TransferSyntaxName = "explicit_le",
    multiframe: bool = False,
    seed: int = 0,
    first_names: tuple[int, ...] = (),
) -> list[Path]:
    """Write ``series`` into ``outdir`` (created if needed); return the paths.

    Single-frame: one file per slice, paths in the order of ``series.slices``. File names sort by
    InstanceNumber (``"instance"``), by orientation then position along the normal
    (``"position"``), or are random tokens whose order never matches the spatial order
    (``"shuffled"``). ``first_names`` are indices into ``series.slices`` whose files get the names
    that sort first, in that order (e.g. a localizer listed first by a file browser).

    ``multiframe=True`` writes one Enhanced CT/MR object holding the slices as frames, in the order
    given. ``seed`` drives the random names; UIDs depend on the series UID only.
    """
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    syntax = TRANSFER_SYNTAXES[transfer_syntax]
    rng = np.random.default_rng(seed)
    if multiframe:
        sop: str = uid(series.series_instance_uid, "multi-frame")
        ds = _enhanced_dataset(series, sop, syntax.is_little_endian)
        return [save_dataset(ds, out / _file_names(1, names, rng)[0], syntax)]

    order = _name_order(series.slices, names, tuple(first_names), rng)
    file_names = dict(zip(order, _file_names(len(order), names, rng)))
    paths = []
    for k, s in enumerate(series.slices):
        sop = s.sop_instance_uid or uid(series.series_instance_uid, "instance", k)
        ds = _single_frame_dataset(series, s, sop, syntax.is_little_endian)
        paths.append(save_dataset(ds, out / file_names[k], syntax))
    return paths


# --- objects that are not image slices -------------------------------------------------------


def _non_image_dataset(context: SyntheticSeries, sop_class: str, name: str, modality: str) -> Dataset:
    """A header sharing ``context``'s study, in a series of its own."""
    own_series = dataclasses.replace(
        context,
        series_instance_uid=uid(context.series_instance_uid, name, "series"),
        series_description=name,
        series_number=context.series_number + 100,
    )
    ds = _base_dataset(own_series, sop_class, uid(context.series_instance_uid, name), modality)
    ds.InstanceNumber = 1
    ds.ContentDate = _STUDY_DATE
    ds.ContentTime = "120000"
    return ds


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    return _item(CodeValue=value, CodingSchemeDesignator=scheme, CodeMeaning=meaning)


def _basic_text_sr(context: SyntheticSeries) -> Dataset:
    ds = _non_image_dataset(context, BasicTextSRStorage, "basic_text_sr", "SR")
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = DicomSequence(
        [_code("18748-4", "LN", "Diagnostic Imaging Report")]
    )
    ds.ContinuityOfContent = "SEPARATE"
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    ds.ContentSequence = DicomSequence(
        [
            _item(
                RelationshipType="CONTAINS",
                ValueType="TEXT",
                ConceptNameCodeSequence=DicomSequence([_code("121071", "DCM", "Finding")]),
                TextValue="Synthetic phantom: no findings.",
            )
        ]
    )
    return ds


def _rt_structure_set(context: SyntheticSeries) -> Dataset:
    ds = _non_image_dataset(context, RTStructureSetStorage, "rt_structure_set", "RTSTRUCT")
    ds.StructureSetLabel = "SYNTHETIC"
    ds.StructureSetDate = _STUDY_DATE
    ds.StructureSetTime = "120000"
    ds.ReferencedFrameOfReferenceSequence = DicomSequence(
        [_item(FrameOfReferenceUID=context.frame_of_reference_uid)]
    )
    ds.StructureSetROISequence = DicomSequence(
        [
            _item(
                ROINumber=1,
                ReferencedFrameOfReferenceUID=context.frame_of_reference_uid,
                ROIName="point",
                ROIGenerationAlgorithm="MANUAL",
            )
        ]
    )
    ds.ROIContourSequence = DicomSequence(
        [
            _item(
                ReferencedROINumber=1,
                ContourSequence=DicomSequence(
                    [_item(ContourGeometricType="POINT", NumberOfContourPoints=1, ContourData=[0, 0, 0])]
                ),
            )
        ]
    )
    return ds


def _raw_data(context: SyntheticSeries) -> Dataset:
    """Raw Data in the context's own series, as scanners store it (e.g. Philips next to Enhanced MR)."""
    ds = _non_image_dataset(context, RawDataStorage, "raw_data", context.modality)
    ds.SeriesInstanceUID = context.series_instance_uid
    ds.SeriesNumber = context.series_number
    ds.AcquisitionNumber = 1
    return ds


def _media_storage_directory(context: SyntheticSeries) -> Dataset:
    """An empty DICOMDIR: File-set Identification and Directory Information without records."""
    ds = Dataset()
    ds.SOPClassUID = MediaStorageDirectoryStorage
    ds.SOPInstanceUID = uid(context.series_instance_uid, "DICOMDIR")
    ds.FileSetID = "SYNTHETIC"
    ds.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.FileSetConsistencyFlag = 0
    ds.DirectoryRecordSequence = DicomSequence([])
    return ds


def _patched(path: Path, replacements: dict[bytes, bytes]) -> Path:
    """Replace byte strings of equal length in a written file: how invalid values get in, since
    pydicom refuses to encode them."""
    data = path.read_bytes()
    for old, new in replacements.items():
        if len(old) != len(new) or data.count(old) != 1:
            raise AssertionError(f"cannot patch {old!r} in {path}")
        data = data.replace(old, new)
    path.write_bytes(data)
    return path


def write_non_image_objects(
    outdir: str | Path, series: SyntheticSeries | None = None
) -> dict[str, Path]:
    """Write files a folder scan must leave out of volumes, or read with care; return name → path.

    - ``basic_text_sr``: Basic Text SR, no pixel data (own series).
    - ``rt_structure_set``: RT Structure Set, no pixel data (own series).
    - ``raw_data``: Raw Data Storage in ``series``' SeriesInstanceUID, no pixels, no geometry.
    - ``not_dicom``: a text file without extension.
    - ``truncated``: the first 300 bytes of a valid image file (it ends inside the file meta).
    - ``truncated_pixels``: a complete header whose Pixel Data stops 100 bytes short.
    - ``no_position``: a CT image without ImagePositionPatient, in ``series``' SeriesInstanceUID.
    - ``junk_decimals``: a CT image with PixelSpacing ``0.5\\abc`` and SliceThickness ``2.5mm``.
    - ``non_normalised_orientation``: a valid CT image whose IOP cosines are scaled by 1.002.
    - ``dicomdir``: a Media Storage Directory object named DICOMDIR (no records).

    Study and frame of reference are ``series``' (a fresh context when ``None``).
    """
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    context = series or SyntheticSeries(slices=[], series_instance_uid=uid("non-image context"))
    syntax = ExplicitVRLittleEndian
    paths = {
        "basic_text_sr": save_dataset(_basic_text_sr(context), out / "SR00001.dcm", syntax),
        "rt_structure_set": save_dataset(_rt_structure_set(context), out / "RS00001.dcm", syntax),
        "raw_data": save_dataset(_raw_data(context), out / "RAW00001.dcm", syntax),
        "dicomdir": save_dataset(_media_storage_directory(context), out / "DICOMDIR", syntax),
    }
    paths["not_dicom"] = out / "not_dicom"
    paths["not_dicom"].write_text("This folder holds synthetic DICOM phantoms.\n")

    def image(name: str, s: SyntheticSlice, same_series: bool) -> Path:
        own = context
        if not same_series:
            own_uid = uid(context.series_instance_uid, name, "series")
            own = dataclasses.replace(context, series_instance_uid=own_uid, series_description=name)
        ds = _single_frame_dataset(own, s, uid(context.series_instance_uid, name), True)
        return save_dataset(ds, out / f"{name}.dcm", syntax)

    small = SyntheticSlice(position_lps_mm=(-8.0, -8.0, 0.0), rows=16, columns=16, instance_number=1000)
    complete = image("complete", small, same_series=False)
    paths["truncated"] = out / "truncated.dcm"
    paths["truncated"].write_bytes(complete.read_bytes()[:300])
    paths["truncated_pixels"] = out / "truncated_pixels.dcm"
    paths["truncated_pixels"].write_bytes(complete.read_bytes()[:-100])
    complete.unlink()
    paths["no_position"] = image(
        "no_position", dataclasses.replace(small, omit=("ImagePositionPatient",)), same_series=True
    )
    junk = dataclasses.replace(small, pixel_spacing_mm=(0.5, 9.7), slice_thickness_mm=2.597)
    paths["junk_decimals"] = _patched(
        image("junk_decimals", junk, same_series=False), {b"0.5\\9.7": b"0.5\\abc", b"2.597": b"2.5mm"}
    )
    scaled = dataclasses.replace(small, row_cosines=(1.002, 0.0, 0.0), col_cosines=(0.0, 1.002, 0.0))
    paths["non_normalised_orientation"] = image("non_normalised_orientation", scaled, same_series=False)
    return paths


# --- the built-in demo -----------------------------------------------------------------------


def micro_ct_demo_series() -> SyntheticSeries:
    """A stitched micro-CT scan like the one that motivated this tool.

    Three sections of 40 nominal slices at exactly 0.6 mm (SliceThickness = SpacingBetweenSlices =
    0.6), 64×64 pixels of 0.1 mm. Each section has its own AcquisitionNumber and ContentTime;
    InstanceNumbers run on across sections (1–40, 41–80, 81–120). Consecutive sections overlap by
    2.7 mm and are offset by 0.3 mm, so their slices interleave in the overlap. Instance 60 (inside
    the second section) is missing. One coronal LOCALIZER (InstanceNumber 0, 48×80 pixels of 1 mm,
    SliceThickness 100) shares the SeriesInstanceUID.
    """
    step, per_section, overlap = 0.6, 40, 2.7
    corner = round(-(64 - 1) / 2 * 0.1, 6)  # puts the image centre on the z axis
    slices = [
        SyntheticSlice(
            position_lps_mm=(-23.5, 0.0, 50.0),
            row_cosines=(1.0, 0.0, 0.0),
            col_cosines=(0.0, 0.0, -1.0),
            rows=80,
            columns=48,
            pixel_spacing_mm=(1.0, 1.0),
            instance_number=0,
            image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
            content_time="101000",
            slice_thickness_mm=100.0,
        )
    ]
    start = -20.0
    for section in range(3):
        for k in range(per_section):
            number = section * per_section + k + 1
            if number == 60:
                continue
            slices.append(
                SyntheticSlice(
                    position_lps_mm=(corner, corner, round(start + k * step, 6)),
                    rows=64,
                    columns=64,
                    pixel_spacing_mm=(0.1, 0.1),
                    instance_number=number,
                    acquisition_number=section + 1,
                    content_time=f"10{15 + 5 * section:02d}00",
                    slice_thickness_mm=step,
                    spacing_between_slices_mm=step,
                )
            )
        start = round(start + (per_section - 1) * step - overlap, 6)
    return _demo_series("micro-CT demo", slices, series_description="micro-CT stitched 0.6 mm (synthetic)",
                        series_number=3, encoding=Encoding(scale=100.0))


def _demo_series(name: str, slices: list[SyntheticSlice], **fields: Any) -> SyntheticSeries:
    """A demo series of its own study and frame of reference, its UIDs derived from ``name``."""
    return SyntheticSeries(slices=slices, series_instance_uid=uid(name, "series"), study_instance_uid=uid(name, "study"),
                           frame_of_reference_uid=uid(name, "frame of reference"), **fields)


def write_demo(outdir: str | Path) -> list[Path]:
    """Write the micro-CT demo with shuffled file names, the localizer's name sorting first."""
    series = micro_ct_demo_series()
    localizer = next(k for k, s in enumerate(series.slices) if "LOCALIZER" in s.image_type)
    return write_series(series, outdir, names="shuffled", first_names=(localizer,))


def time_series_demo_series() -> SyntheticSeries:
    """An fMRI-like time series whose last time point lost slices: 3 time points (temporal positions
    1-3, ContentTime 2 s apart) of 10 axial MR slices 3 mm apart, 32x32 pixels of 2 mm; the third
    lacks the slices at positions 4 and 6 (of 0-9). InstanceNumbers are time-major."""
    corner = round(-(32 - 1) / 2 * 2.0, 6)
    slices = [
        SyntheticSlice(
            position_lps_mm=(corner, corner, round(-15.0 + 3.0 * k, 6)),
            instance_number=1 + 10 * t + k,
            temporal_position=t + 1,
            content_time=f"1100{2 * t:02d}",
            slice_thickness_mm=3.0,
            spacing_between_slices_mm=3.0,
            pixel_spacing_mm=(2.0, 2.0),
        )
        for t in range(3) for k in range(10) if not (t == 2 and k in (4, 6))
    ]
    return _demo_series("time series demo", slices, modality="MR",
                        series_description="time series, last time point partial (synthetic)", series_number=7)
