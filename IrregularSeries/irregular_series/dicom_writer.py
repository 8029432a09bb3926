"""A verified volume as a new single-frame DICOM series: one CT or MR Image file per plane.

What a reader of the series gets, and why:

* **Identity.** Patient, study and Frame of Reference are the source's (the planes lie in the same
  patient space); series and instances get new UIDs under pydicom's root ``UID_ROOT``; the series
  number is ``derived_series_number``. Modality is the source's and the SOP class the classic
  (single-frame) class of its modality: CT Image or MR Image, also for Enhanced and Legacy
  Converted Enhanced sources (Secondary Capture has no geometry, so it is never used).
* **Geometry.** Every plane's ImagePositionPatient, ImageOrientationPatient and PixelSpacing come
  from the output grid (decimal strings of up to 16 characters, about 1e-9 mm for head-sized
  coordinates); SliceThickness and SpacingBetweenSlices are the chosen spacing; InstanceNumber
  counts the planes in spatial order. A DICOM stack has its planes along their normal, so a
  sheared grid (gantry tilt kept as acquired) is refused, not deskewed behind the caller's back.
* **Provenance.** ImageType ``DERIVED\\SECONDARY`` then the source's remaining values,
  DerivationDescription in words, DerivationCodeSequence ``DERIVATION_CODES`` (DICOM part 16,
  CID 7203), per plane SourceImageSequence naming the source
  instances (and frames) the plane was made of, ReferencedSeriesSequence naming their series and
  instances (the Common Instance Reference module lists what the instance references), the source
  scanner in ContributingEquipmentSequence.
* **Values.** ``choose_encoding`` keeps the source's stored representation and rescale when every
  value (background included) is exactly representable with them, else finds a 16-bit rescale that
  holds them exactly; only fractional values that no 16-bit rescale holds (interpolated
  floating-point data) are rounded, to a step that is stated. Background voxels (outside the data)
  are stored as PixelPaddingValue. Window centre and width are the source's.

The series folder appears complete or not at all (``outputs.atomic_folder``).
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    PYDICOM_ROOT_UID,
    UID,
    ExplicitVRLittleEndian,
    generate_uid,
)
from pydicom.valuerep import format_number_as_ds

from . import __version__
from .decisions import PolicyError
from .model import SliceHeader
from .options import ConvertOptions
from .outputs import atomic_folder
from .tolerances import Tolerances
from .volume import Volume

UID_ROOT = PYDICOM_ROOT_UID
"""Root of every UID written here: pydicom's registered root ``1.2.826.0.1.3680043.8.498.``, followed
by random digits (``pydicom.uid.generate_uid``), so UIDs are unique without a registry of our own."""



@dataclass(frozen=True)
class Code:
    """A coded concept of DICOM part 16 (the tests check each against pydicom's code dictionary,
    which is generated from part 16; importing that dictionary here would cost a second)."""

    value: str
    scheme_designator: str
    meaning: str


DERIVATION_CODES = (Code("113085", "DCM", "Spatial resampling"),)
"""CID 7203 Image Derivation: the planes are the source slices resampled onto a regular lattice.
Not 113072 "Multiplanar reformatting": the planes keep the source slices' orientation."""

SOURCE_IMAGE_PURPOSE = Code("121322", "DCM", "Source image for image processing operation")
"""CID 7202 Source Image Purpose of Reference, in every SourceImageSequence item."""

ACQUISITION_EQUIPMENT = Code("109101", "DCM", "Acquisition Equipment")
"""CID 7005 Contributing Equipment Purpose of Reference: the source's scanner."""

_CT, _MR = "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.4"
CLASSIC_SOP_CLASS = {
    _CT: _CT,
    "1.2.840.10008.5.1.4.1.1.2.1": _CT,  # Enhanced CT Image
    "1.2.840.10008.5.1.4.1.1.2.2": _CT,  # Legacy Converted Enhanced CT Image
    _MR: _MR,
    "1.2.840.10008.5.1.4.1.1.4.1": _MR,  # Enhanced MR Image
    "1.2.840.10008.5.1.4.1.1.4.4": _MR,  # Legacy Converted Enhanced MR Image
}
"""Source SOP class -> the single-frame SOP class written for it."""

_MAX_DERIVATION_CHARS = 1024  # DerivationDescription is ST
_MAX_LO_CHARS = 64
_BITS_ALLOCATED = 16  # what the CT and MR Image IODs allow

# Copied from the source as they are (top level, or the first frame's functional groups of an
# enhanced source), when present. GantryDetectorTilt is not among them: the planes are stacked along
# their normal, and readers that see the tag would "correct" a tilt that is no longer there.
_PATIENT_STUDY = (
    "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex", "PatientAge",
    "PatientSize", "PatientWeight", "PatientIdentityRemoved", "DeidentificationMethod",
    "StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID",
    "AccessionNumber", "StudyDescription",
)
# Written empty when the source has no value (type 2).
_TYPE_2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
           "ReferringPhysicianName", "StudyID", "AccessionNumber", "PositionReferenceIndicator",
           "AcquisitionNumber", "PatientPosition", "KVP", "ScanOptions", "MRAcquisitionType",
           "EchoTime", "EchoTrainLength")
_SERIES_ACQUISITION = (
    "Modality", "Laterality", "PatientPosition", "BodyPartExamined", "ProtocolName",
    "PositionReferenceIndicator", "AcquisitionNumber", "AcquisitionDate", "AcquisitionTime",
    "BurnedInAnnotation", "LossyImageCompression", "LossyImageCompressionRatio",
    "LossyImageCompressionMethod",
)
_CT_ATTRIBUTES = (
    "KVP", "DataCollectionDiameter", "ReconstructionDiameter", "DistanceSourceToDetector",
    "DistanceSourceToPatient", "ExposureTime", "XRayTubeCurrent", "Exposure", "FilterType",
    "GeneratorPower", "FocalSpots", "ConvolutionKernel", "RotationDirection", "TableHeight",
)
_MR_ATTRIBUTES = (
    "ScanningSequence", "SequenceVariant", "ScanOptions", "MRAcquisitionType", "SequenceName",
    "RepetitionTime", "EchoTime", "InversionTime", "EchoTrainLength", "NumberOfAverages",
    "ImagingFrequency", "ImagedNucleus", "EchoNumbers", "MagneticFieldStrength", "FlipAngle",
    "PixelBandwidth", "ReceiveCoilName", "TransmitCoilName", "InPlanePhaseEncodingDirection",
)
_EQUIPMENT = ("Manufacturer", "InstitutionName", "StationName", "ManufacturerModelName",
              "DeviceSerialNumber", "SoftwareVersions")
_WINDOW = ("WindowCenter", "WindowWidth", "WindowCenterWidthExplanation")
# Enhanced MR keeps some classic attributes under other names, in functional groups.
_ENHANCED_NAMES = {"EchoTime": "EffectiveEchoTime", "InversionTime": "InversionTimes",
                   "ImagedNucleus": "ResonantNucleus"}


# ---------------------------------------------------------------------------------------------
# Pixel values
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PixelEncoding:
    """How output values become stored values: ``value = slope * stored + intercept``.

    ``padding`` is the stored value of background voxels (PixelPaddingValue), ``None`` when every
    voxel comes from the data. ``max_error`` is 0 when every value is held exactly; otherwise
    values were rounded to steps of ``slope`` and are at most this far from the volume's.
    """

    slope: float
    intercept: float
    bits_stored: int
    signed: bool
    padding: int | None
    max_error: float

    @property
    def stored_dtype(self) -> np.dtype:
        return np.dtype("<i2" if self.signed else "<u2")

    def stored(self, values: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        """The stored values of ``values`` (one plane or the volume); background as padding."""
        out = np.rint((np.asarray(values, np.float64) - self.intercept) / self.slope)
        if mask is not None and self.padding is not None:
            out[mask == 0] = self.padding
        return out.astype(self.stored_dtype)


def _shared(slices: Sequence[SliceHeader], name: str) -> Any:
    values = {getattr(s, name) for s in slices}
    return values.pop() if len(values) == 1 else None


def _stored_limits(bits: int, signed: bool) -> tuple[int, int]:
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def _bits_needed(lo: int, hi: int, signed: bool) -> int:
    bits = 1
    while not (_stored_limits(bits, signed)[0] <= lo and hi <= _stored_limits(bits, signed)[1]):
        bits += 1
    return bits


def _exact(values: np.ndarray, dtype: np.dtype, slope: float, intercept: float,
           signed: bool) -> np.ndarray | None:
    """Stored values that give back exactly ``values`` (in ``dtype``), or None."""
    stored = np.rint((values - intercept) / slope)
    lo, hi = _stored_limits(_BITS_ALLOCATED, signed)
    if stored.size and (stored.min() < lo or stored.max() > hi):
        return None
    back = (stored * slope + intercept).astype(dtype)
    if not np.array_equal(back, values.astype(dtype)):
        return None
    return stored


def choose_encoding(array: np.ndarray, mask: np.ndarray | None, slices: Sequence[SliceHeader]) -> PixelEncoding:
    """The stored representation for ``array`` (background where ``mask`` is 0).

    Tried in order, the first that holds every value and the background exactly wins: the source's
    slope, intercept and signedness (shared by all its slices); the same rescale with the other
    signedness; slope 1 and intercept 0, signed then unsigned; slope 1 with the data minimum as
    intercept (unsigned). BitsStored is the source's, or as many bits as the values need. Failing
    all (fractional values no 16-bit rescale holds), values are rounded to the finest step
    ``source slope / 2**n`` (or ``2**n``) whose stored range fits 16 unsigned bits.
    """
    data = np.asarray(array if mask is None else array[mask != 0], np.float64)
    background = None if mask is None or mask.all() else np.asarray(array[mask == 0][:1], np.float64)
    if not data.size:
        raise ValueError("the volume holds no data voxels")
    slope, intercept = _shared(slices, "rescale_slope"), _shared(slices, "rescale_intercept")
    signed = _shared(slices, "pixel_representation") == 1
    source_bits = _shared(slices, "bits_stored") or _BITS_ALLOCATED
    candidates = []
    if slope is not None and intercept is not None and slope != 0:
        candidates += [(float(slope), float(intercept), signed), (float(slope), float(intercept), not signed)]
    candidates += [(1.0, 0.0, True), (1.0, 0.0, False)]
    lo = float(data.min())
    if math.isfinite(lo) and lo.is_integer():
        candidates.append((1.0, lo, False))
    dtype = array.dtype
    for cand_slope, cand_intercept, cand_signed in dict.fromkeys(candidates):
        stored = _exact(data, dtype, cand_slope, cand_intercept, cand_signed)
        if stored is None:
            continue
        padding = None
        stored_lo, stored_hi = int(stored.min()), int(stored.max())
        if background is not None:
            exact_background = _exact(background, dtype, cand_slope, cand_intercept, cand_signed)
            if exact_background is None:
                if not np.isnan(background).all():
                    continue
                # NaN background (floating-point volumes): the stored value below the data.
                floor = _stored_limits(_BITS_ALLOCATED, cand_signed)[0]
                if stored_lo <= floor:
                    continue
                exact_background = np.array([stored_lo - 1.0])
            padding = int(exact_background[0])
            stored_lo, stored_hi = min(stored_lo, padding), max(stored_hi, padding)
        bits = max(source_bits if cand_signed == signed else 0, _bits_needed(stored_lo, stored_hi, cand_signed))
        return PixelEncoding(cand_slope, cand_intercept, min(bits, _BITS_ALLOCATED), cand_signed, padding, 0.0)
    return _rounding_encoding(data, background is not None, float(slope) if slope else 1.0)


def _rounding_encoding(data: np.ndarray, has_background: bool, source_slope: float) -> PixelEncoding:
    """Unsigned 16 bits: stored 0 is the background, 1..65535 the data, in steps of a power of two
    times the source slope, as fine as the value range allows."""
    lo, hi = float(np.nanmin(data)), float(np.nanmax(data))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError("the volume holds values that are not finite; DICOM images cannot store them")
    levels = (1 << _BITS_ALLOCATED) - 2
    step = abs(source_slope)
    if hi > lo:  # the finest step s * 2**-n with (hi - lo) / step <= levels
        step *= 2.0 ** -math.floor(math.log2(levels * step / (hi - lo)))
    intercept = lo - step
    stored = np.rint((data - intercept) / step)
    error = float(np.abs(stored * step + intercept - data).max())
    return PixelEncoding(step, intercept, _BITS_ALLOCATED, False, 0 if has_background else None, error)


# ---------------------------------------------------------------------------------------------
# The series
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DicomSeries:
    """What ``write_dicom_series`` wrote: the folder, the new series' identity, its files in
    InstanceNumber (spatial) order and how the values are stored."""

    folder: Path
    series_instance_uid: str
    series_number: int
    sop_class_uid: str
    sop_instance_uids: tuple[str, ...]
    files: tuple[str, ...]
    encoding: PixelEncoding

    def to_dict(self) -> dict[str, Any]:
        e = self.encoding
        return {
            "folder": str(self.folder),
            "series_instance_uid": self.series_instance_uid,
            "series_number": self.series_number,
            "sop_class_uid": self.sop_class_uid,
            "files": list(self.files),
            "sop_instance_uids": list(self.sop_instance_uids),
            "rescale_slope": e.slope,
            "rescale_intercept": e.intercept,
            "bits_stored": e.bits_stored,
            "pixel_representation": int(e.signed),
            "pixel_padding_value": e.padding,
            "max_value_error": e.max_error,
        }


def derived_series_number(source_series_number: int | None, n: int) -> int:
    """SeriesNumber of the ``n``-th (1-based) series derived from one source series in a run:
    ``1000 * source + n`` (source 0 when it has none), so derived series sort after their source
    and name it."""
    return 1000 * (source_series_number or 0) + n


def save_part10(ds: Dataset, path: Path, transfer_syntax: UID = ExplicitVRLittleEndian) -> Path:
    """Write ``ds`` as a DICOM Part 10 file in ``transfer_syntax`` (fresh file meta), under pydicom
    2.4 or 3."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = f"IRREGSER_{__version__}"[:16]
    ds.file_meta = meta
    # pydicom 2.4 encodes from Dataset.is_little_endian/is_implicit_VR; pydicom 3 deprecates those
    # and encodes from the file meta's transfer syntax.
    if pydicom.__version__.startswith("2."):
        ds.is_little_endian = transfer_syntax.is_little_endian
        ds.is_implicit_VR = transfer_syntax.is_implicit_VR
        ds.save_as(path, write_like_original=False)
    else:
        ds.save_as(path, enforce_file_format=True)
    return Path(path)


def _ds(value: float) -> str:
    """A decimal string of at most 16 characters (DS): the shortest repr when it fits."""
    value = float(value) + 0.0  # no "-0.0"
    text = repr(value)
    return text if len(text) <= 16 else format_number_as_ds(value)


def _code(code: Code) -> Dataset:
    item = Dataset()
    item.CodeValue = code.value
    item.CodingSchemeDesignator = code.scheme_designator
    item.CodeMeaning = code.meaning
    return item


def _searched(ds: Dataset, frame: int) -> list[Dataset]:
    """Where a keyword is looked for: the top level, then the shared and the frame's own
    functional group items (enhanced sources)."""
    places = [ds]
    groups = [ds.get("SharedFunctionalGroupsSequence")]
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and frame < len(per_frame):
        groups.append([per_frame[frame]])
    for sequence in groups:
        if not sequence:
            continue
        for element in sequence[0]:
            if element.VR == "SQ" and element.value:
                places.append(element.value[0])
    return places


def _lookup(ds: Dataset, keyword: str, frame: int) -> DataElement | None:
    """The first element named ``keyword`` (or its enhanced name) where ``_searched`` looks."""
    for place in _searched(ds, frame):
        for name in (keyword, _ENHANCED_NAMES.get(keyword)):
            if name and name in place:
                return place[name]
    return None


def _copy(target: Dataset, source: Dataset, keywords: Sequence[str], frame: int) -> None:
    for keyword in keywords:
        element = _lookup(source, keyword, frame)
        if element is None or element.value is None or element.value == "" or element.VR == "SQ":
            continue  # empty values are written for type 2 attributes only, below
        if element.keyword == keyword:
            target.add(pydicom.DataElement(element.tag, element.VR, element.value))
        else:  # an enhanced name (FD) for a classic keyword: the first value in the classic VR
            value = element.value[0] if isinstance(element.value, (list, pydicom.multival.MultiValue)) else element.value
            setattr(target, keyword, _ds(value) if pydicom.datadict.dictionary_VR(keyword) == "DS" else value)
    for keyword in _TYPE_2:
        if keyword in keywords and keyword not in target:
            setattr(target, keyword, "" if pydicom.datadict.dictionary_VR(keyword) != "IS" else None)


def _mr_sequence(source: Dataset, frame: int) -> dict[str, list[str]]:
    """ScanningSequence and SequenceVariant (type 1 in the MR Image IOD) for an enhanced source,
    which describes its sequence with other attributes; from the closest of those."""
    def value(keyword: str) -> str:
        element = _lookup(source, keyword, frame)
        return str(element.value).upper() if element is not None and element.value is not None else ""

    scanning = {"SPIN": ["SE"], "GRADIENT": ["GR"], "BOTH": ["SE", "GR"]}.get(value("EchoPulseSequence"), [])
    if value("InversionRecovery") == "YES":
        scanning.append("IR")
    if value("EchoPlanarPulseSequence") == "YES":
        scanning.append("EP")
    variant = []
    if value("SegmentedKSpaceTraversal") not in ("", "SINGLE"):
        variant.append("SK")
    if value("SteadyStatePulseSequence") not in ("", "NONE"):
        variant.append("SS")
    if value("Spoiling") in ("RF", "GRADIENT", "RF_AND_GRADIENT"):
        variant.append("SP")
    if value("MagnetizationTransfer") not in ("", "NONE"):
        variant.append("MTC")
    return {"ScanningSequence": scanning or ["RM"], "SequenceVariant": variant or ["NONE"]}


def _check_stack(index_to_lps: np.ndarray, planes: int, tolerances: Tolerances) -> None:
    """Refuse a grid whose planes are not stacked along their normal (a sheared grid)."""
    row, col, step = (index_to_lps[:3, a] for a in range(3))
    normal = np.cross(row, col)
    normal /= np.linalg.norm(normal)
    drift_mm = float(np.linalg.norm(step - (step @ normal) * normal)) * max(planes - 1, 1)
    if drift_mm > tolerances.verify_mm:
        angle = math.degrees(math.acos(min(1.0, abs(step @ normal) / np.linalg.norm(step))))
        raise PolicyError(
            f"the grid is sheared: its planes are stacked {angle:.2f}° off their normal (gantry tilt kept as "
            f"acquired), {drift_mm:.3f} mm across the stack; a DICOM image stack has its planes along their "
            "normal, so it cannot hold this grid: deskew the tilt to write DICOM", ("tilt", "deskew"))


def derivation_description(volume: Volume, options: ConvertOptions, encoding: PixelEncoding) -> str:
    """What was done, in words, for DerivationDescription (at most 1024 characters)."""
    count = len({(s.sop_instance_uid, s.frame) for s in volume.part.slices})
    parts = [
        f"Resampled by IrregularSeries {__version__} from {count} source slices onto a regular grid of "
        f"{volume.grid.shape_kji[0]} planes {volume.spacing_mm:g} mm apart along the slice normal.",
        f"Policies: gaps {options.gaps}, sections {options.sections}, tilt {options.tilt}, "
        f"interpolation {options.interpolation}, positions {options.positions}.",
        "Every voxel is a copy of a source pixel." if not volume.interpolated else
        "Voxels between source slices are interpolated.",
        f"Worst source slice position residual {volume.verification.max_mm:.4f} mm "
        f"(tolerance {options.tolerances.verify_mm:g} mm).",
        "Values stored exactly." if encoding.max_error == 0 else
        f"Values rounded to steps of {encoding.slope:.6g}, at most {encoding.max_error:.3g} off.",
    ]
    text = " ".join(parts)
    return text if len(text) <= _MAX_DERIVATION_CHARS else text[: _MAX_DERIVATION_CHARS - 3] + "..."


def _referenced_series(slices: Sequence[SliceHeader]) -> DicomSequence:
    by_series: dict[str, dict[str, str]] = {}
    for s in slices:
        by_series.setdefault(s.series_instance_uid, {})[s.sop_instance_uid] = s.sop_class_uid
    items = []
    for series_uid, instances in by_series.items():
        item = Dataset()
        item.SeriesInstanceUID = series_uid
        references = []
        for sop_uid, sop_class in instances.items():
            reference = Dataset()
            reference.ReferencedSOPClassUID = sop_class
            reference.ReferencedSOPInstanceUID = sop_uid
            references.append(reference)
        item.ReferencedInstanceSequence = DicomSequence(references)
        items.append(item)
    return DicomSequence(items)


def _source_images(slices: Sequence[SliceHeader]) -> DicomSequence:
    items = []
    for s in slices:
        item = Dataset()
        item.ReferencedSOPClassUID = s.sop_class_uid
        item.ReferencedSOPInstanceUID = s.sop_instance_uid
        if s.number_of_frames > 1:
            item.ReferencedFrameNumber = s.frame + 1
        item.PurposeOfReferenceCodeSequence = DicomSequence([_code(SOURCE_IMAGE_PURPOSE)])
        items.append(item)
    return DicomSequence(items)


def _contributing_equipment(source: Dataset, frame: int) -> DicomSequence | None:
    if not str(source.get("Manufacturer", "")).strip():
        return None
    item = Dataset()
    item.PurposeOfReferenceCodeSequence = DicomSequence([_code(ACQUISITION_EQUIPMENT)])
    _copy(item, source, _EQUIPMENT, frame)
    return DicomSequence([item])


def _base_dataset(volume: Volume, options: ConvertOptions, encoding: PixelEncoding, sop_class: str,
                  series_uid: str, series_number: int, description: str) -> Dataset:
    """Every attribute the planes share."""
    first = volume.part.slices[0]
    source = pydicom.dcmread(first.path, stop_before_pixels=True)
    frame = first.frame
    now = datetime.datetime.now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S.%f")
    ds = Dataset()
    if "SpecificCharacterSet" in source:
        ds.SpecificCharacterSet = source.SpecificCharacterSet
    ds.SOPClassUID = sop_class
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
    image_type = [str(v) for v in source.get("ImageType", [])]
    ds.ImageType = ["DERIVED", "SECONDARY"] + image_type[2:]
    _copy(ds, source, _PATIENT_STUDY + _SERIES_ACQUISITION, frame)
    ds.Manufacturer = "IrregularSeries"
    ds.SoftwareVersions = __version__
    equipment = _contributing_equipment(source, frame)
    if equipment is not None:
        ds.ContributingEquipmentSequence = equipment
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.SeriesDate, ds.SeriesTime = date, time
    ds.ContentDate, ds.ContentTime = date, time
    ds.SeriesDescription = description[:_MAX_LO_CHARS]
    ds.FrameOfReferenceUID = first.frame_of_reference_uid or generate_uid(prefix=UID_ROOT)
    if "Laterality" not in ds and "BodyPartExamined" not in ds:
        ds.Laterality = None  # type 2C: required (empty: unknown) for paired body parts, and none is named
    if ds.get("PatientIdentityRemoved") == "YES" and "DeidentificationMethod" not in ds:
        # Type 1C then; the source does not say how, and this must not invent it.
        ds.DeidentificationMethod = "not stated by the source"
    if sop_class == _CT:
        _copy(ds, source, _CT_ATTRIBUTES, frame)
    else:
        _copy(ds, source, _MR_ATTRIBUTES, frame)
        for keyword, value in _mr_sequence(source, frame).items():
            if keyword not in ds:
                setattr(ds, keyword, value)
        # Type 2C, required (possibly empty): InversionTime for inversion recovery; RepetitionTime
        # unless the sequence is echo planar without segmented k-space.
        if "IR" in ds.ScanningSequence and "InversionTime" not in ds:
            ds.InversionTime = None
        if not ("EP" in ds.ScanningSequence and "SK" not in ds.SequenceVariant) and "RepetitionTime" not in ds:
            ds.RepetitionTime = None
    ds.DerivationDescription = derivation_description(volume, options, encoding)
    ds.DerivationCodeSequence = DicomSequence([_code(code) for code in DERIVATION_CODES])

    matrix = volume.grid.index_to_lps
    row, col = (matrix[:3, a] / np.linalg.norm(matrix[:3, a]) for a in range(2))
    ds.ImageOrientationPatient = [_ds(v) for v in (*row, *col)]
    ds.PixelSpacing = [_ds(float(np.linalg.norm(matrix[:3, 1]))), _ds(float(np.linalg.norm(matrix[:3, 0])))]
    ds.SliceThickness = _ds(volume.spacing_mm)
    ds.SpacingBetweenSlices = _ds(volume.spacing_mm)

    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"  # the volume holds MONOCHROME1 sources inverted
    ds.Rows, ds.Columns = volume.grid.shape_kji[1:]
    ds.BitsAllocated = _BITS_ALLOCATED
    ds.BitsStored = encoding.bits_stored
    ds.HighBit = encoding.bits_stored - 1
    ds.PixelRepresentation = int(encoding.signed)
    if encoding.padding is not None:
        ds.add_new(0x00280120, "SS" if encoding.signed else "US", encoding.padding)  # PixelPaddingValue
    # The MR Image IOD has no rescale: written there only when the values need one.
    if sop_class == _CT or (encoding.slope, encoding.intercept) != (1.0, 0.0):
        ds.RescaleIntercept = _ds(encoding.intercept)
        ds.RescaleSlope = _ds(encoding.slope)
    _copy(ds, source, _WINDOW, frame)
    return ds


def write_dicom_series(
    volume: Volume,
    folder: Path,
    options: ConvertOptions,
    *,
    series_number: int,
    series_description: str,
) -> DicomSeries:
    """Write ``volume`` as a new single-frame series into ``folder`` (created whole, or replaced
    whole under ``options.force``; see the module docstring for what the files hold).

    Raises ``PolicyError`` for a sheared grid, ``ValueError`` for a source that is neither CT nor MR, or values that
    16-bit stored pixels cannot hold; nothing is written then.
    """
    slices = volume.part.slices
    sources = {s.sop_class_uid for s in slices}
    classes = {CLASSIC_SOP_CLASS.get(uid) for uid in sources}
    sop_class = classes.pop() if len(classes) == 1 else None
    if sop_class is None:
        raise ValueError("DICOM output is written for CT and MR image sources only; this volume's slices are "
                         + ", ".join(sorted(sources)))
    planes = volume.grid.shape_kji[0]
    _check_stack(volume.grid.index_to_lps, planes, options.tolerances)
    encoding = choose_encoding(volume.array, volume.mask, slices)
    series_uid = generate_uid(prefix=UID_ROOT)
    sop_uids = tuple(generate_uid(prefix=UID_ROOT) for _ in range(planes))
    width = max(4, len(str(planes)))
    names = tuple(f"{k + 1:0{width}d}.dcm" for k in range(planes))

    def fill(target: Path) -> None:
        ds = _base_dataset(volume, options, encoding, sop_class, series_uid, series_number, series_description)
        matrix = volume.grid.index_to_lps
        normal = np.cross(matrix[:3, 0], matrix[:3, 1])
        normal /= np.linalg.norm(normal)
        for k, plane in enumerate(volume.planes):
            position = matrix[:3, 3] + k * matrix[:3, 2]
            ds.SOPInstanceUID = sop_uids[k]
            ds.InstanceNumber = k + 1
            ds.ImagePositionPatient = [_ds(v) for v in position]
            ds.SliceLocation = _ds(position @ normal)
            used = [slices[i] for i, w in zip(plane.slice_indices, plane.weights) if w != 0]
            if used:
                ds.SourceImageSequence = _source_images(used)
                ds.ReferencedSeriesSequence = _referenced_series(used)
            else:  # a blank plane (a gap left blank) is made of no source image
                for keyword in ("SourceImageSequence", "ReferencedSeriesSequence"):
                    if keyword in ds:
                        delattr(ds, keyword)
            mask = None if volume.mask is None else volume.mask[k]
            ds.add_new(0x7FE00010, "OW", encoding.stored(volume.array[k], mask).tobytes())
            save_part10(ds, target / names[k])

    atomic_folder(Path(folder), fill, force=options.force)
    return DicomSeries(Path(folder), series_uid, series_number, sop_class, sop_uids, names, encoding)
