"""Header-only scan: DICOM files and folders to ``SliceHeader`` records.

Only the tags the analysis needs are read, pixel data is skipped (its presence is noted), and every
file that cannot contribute an image is reported with a reason instead of stopping the scan.
Decimal and integer strings are parsed here, not by pydicom, so that junk in one tag of one file
costs that file (or that value) and nothing else. Enhanced multi-frame objects contribute one
``SliceHeader`` per frame, read from their functional groups.

Plain single-frame images, nearly every file of a CT or MR series, are read by ``rawelements``
without pydicom; everything else (multi-frame objects, files without pixel data, unusual encodings,
damaged headers) goes through pydicom, which is imported only then. Both give the same records:
the tests compare them file by file.
"""

from __future__ import annotations

import functools
import math
import os
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from .imagekind import image_kind
from .limits import DEFAULT_LIMITS, LimitExceeded, Limits
from .messages import one_line, os_reason
from .model import Excluded, SliceHeader, Vec3
from .mosaic import MOSAIC_WORD, MosaicError, is_mosaic, read_csa, unpack
from .quirks import ge_pepolar_flip
from .rawelements import RawElements, check_limits, read_elements
from .transfer_syntaxes import DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, LITTLE_ENDIAN_NATIVE
from .walk import find_files

if TYPE_CHECKING:
    from pydicom.dataelem import DataElement, RawDataElement
    from pydicom.dataset import Dataset

HEADER_TAGS: dict[str, str] = {
    "SpecificCharacterSet": "0008,0005",
    "SOPClassUID": "0008,0016",
    "SOPInstanceUID": "0008,0018",
    "ImageType": "0008,0008",
    "Modality": "0008,0060",
    "SeriesDescription": "0008,103E",
    "PatientID": "0010,0020",
    "ContentTime": "0008,0033",
    "AcquisitionTime": "0008,0032",
    "SliceThickness": "0018,0050",
    "SpacingBetweenSlices": "0018,0088",
    "RepetitionTime": "0018,0080",
    "EchoTime": "0018,0081",
    "EchoNumbers": "0018,0086",
    "TriggerTime": "0018,1060",
    "GantryDetectorTilt": "0018,1120",
    "StudyInstanceUID": "0020,000D",
    "SeriesInstanceUID": "0020,000E",
    "SeriesNumber": "0020,0011",
    "AcquisitionNumber": "0020,0012",
    "InstanceNumber": "0020,0013",
    "ImagePositionPatient": "0020,0032",
    "ImageOrientationPatient": "0020,0037",
    "FrameOfReferenceUID": "0020,0052",
    "TemporalPositionIdentifier": "0020,0100",
    "TemporalResolution": "0020,0110",
    "SamplesPerPixel": "0028,0002",
    "PhotometricInterpretation": "0028,0004",
    "NumberOfFrames": "0028,0008",
    "Rows": "0028,0010",
    "Columns": "0028,0011",
    "PixelSpacing": "0028,0030",
    "BitsAllocated": "0028,0100",
    "BitsStored": "0028,0101",
    "PixelRepresentation": "0028,0103",
    "PixelPaddingValue": "0028,0120",
    "RescaleIntercept": "0028,1052",
    "RescaleSlope": "0028,1053",
    "Manufacturer": "0008,0070",
    "ComplexImageComponent": "0008,9208",
    "GEAcquisitionCreator": "0019,0010",
    "GEPulseSequenceName": "0019,109C",
    "GEUserData12": "0019,10B3",
    "GEParameterCreator": "0043,0010",
    "GEImageType": "0043,102F",
    "PhilipsMRCreator": "2005,0010",
    "PhilipsImageTypeMR": "2005,1011",
    "PixelData": "7FE0,0010",
}
"""Every top-level tag the scan reads: keyword -> "gggg,eeee" (what the Slicer DICOM database caches)."""

_FUNCTIONAL_GROUP_TAGS = {
    "SharedFunctionalGroupsSequence": 0x52009229,
    "PerFrameFunctionalGroupsSequence": 0x52009230,
    "FloatPixelData": 0x7FE00008,
    "DoubleFloatPixelData": 0x7FE00009,
}

_TAG_OF = {k: int(t.replace(",", ""), 16) for k, t in HEADER_TAGS.items()}

_READ_TAGS = list(_TAG_OF.values()) + list(_FUNCTIONAL_GROUP_TAGS.values())

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")

_PYDICOM_KEPT = frozenset(_READ_TAGS) - {_tag for k, _tag in {**_TAG_OF, **_FUNCTIONAL_GROUP_TAGS}.items()
                                         if k in _PIXEL_KEYWORDS}
"""The top-level values the pydicom path reads (every tag read but the pixel data's, deferred)."""

_TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UT"})

_ABSENT_SHORT = -(1 << 16)
"""Stands for an absent 16-bit value that has no default: outside both the US and the SS range."""

_UINT_DEFAULTS = {"Rows": 0, "Columns": 0, "SamplesPerPixel": 1, "BitsAllocated": 16, "BitsStored": 0,
                  "PixelRepresentation": 0, "GEImageType": -1, "PixelPaddingValue": _ABSENT_SHORT}
"""The 16-bit integer tags read, with the value assumed when one is absent or malformed. All are
unsigned shorts (US) but GE's image type, a signed short (SS) whose values 0 to 3 read the same,
and PixelPaddingValue, US or SS as PixelRepresentation says (read as its 16 bits, then signed)."""

_SHORT_VRS = {"GEImageType": frozenset({b"SS", b"US"}), "PixelPaddingValue": frozenset({b"SS", b"US"})}

# What the raw reader keeps: every header tag but the pixel data (where it stops), with the VRs
# that make it read exactly as the pydicom path reads it.
_RAW_WANTED = {
    tag: _SHORT_VRS.get(k, frozenset({b"US"})) if k in _UINT_DEFAULTS else frozenset(vr.encode() for vr in _TEXT_VRS)
    for k, tag in _TAG_OF.items()
    if k != "PixelData"
}
_RAW_REJECT = frozenset({_FUNCTIONAL_GROUP_TAGS["SharedFunctionalGroupsSequence"],
                         _FUNCTIONAL_GROUP_TAGS["PerFrameFunctionalGroupsSequence"]})
_FIRST_PIXEL_TAG = _FUNCTIONAL_GROUP_TAGS["FloatPixelData"]

_PRIVATE = frozenset(k for k, t in HEADER_TAGS.items() if int(t[:4], 16) % 2 and k not in _UINT_DEFAULTS)
"""Private text elements read (vendor facts documented by their vendors). Each private element is
used only with its private creator, read beside it."""

_FREE_TEXT = frozenset({"SeriesDescription", "PatientID"})
"""Values that may hold any character; every other value read is ASCII by its VR (CS, UI, DS, IS,
DA, TM)."""

# Python codecs of the SpecificCharacterSet terms without code extensions (PS3.3 C.12.1.1.2).
_CODECS = {
    "": "latin_1",  # the default repertoire is ASCII; latin-1 reads it and never fails
    "ISO_IR 6": "latin_1",
    "ISO_IR 100": "latin_1",
    "ISO_IR 101": "iso8859_2",
    "ISO_IR 109": "iso8859_3",
    "ISO_IR 110": "iso8859_4",
    "ISO_IR 144": "iso8859_5",
    "ISO_IR 127": "iso8859_6",
    "ISO_IR 126": "iso8859_7",
    "ISO_IR 138": "iso8859_8",
    "ISO_IR 148": "iso8859_9",
    "ISO_IR 203": "iso8859_15",
    "ISO_IR 13": "shift_jis",
    "ISO_IR 166": "tis_620",
    "ISO_IR 192": "utf_8",
    "GB18030": "gb18030",
    "GBK": "gbk",
}

_MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"

_FLOAT32_MAX = 3.4028234663852886e38
"""The largest finite float32: rescaled values beyond it cannot be held by a float volume."""

_BITS_ALLOCATED = frozenset({1, 8, 16, 32, 64})

STRICT_ENV = "IRREGULAR_SERIES_STRICT"
"""When this environment variable is set (the test suite sets it), a fault of the tool while
reading one file is raised instead of costing only that file, so that programming errors surface."""

_PROGRESS_STEP = 256
"""Files scanned between progress reports when the scan runs in one process."""

PARALLEL_THRESHOLD = 1000
"""Below this many files the scan runs in one process: starting workers costs more than it saves
(a plain image header takes about 0.2 ms to read; pydicom needs about 1 ms)."""


@dataclass
class ScanResult:
    """Every image found (one record per frame) and every file or frame left out, with reasons."""

    slices: list[SliceHeader]
    excluded: list[Excluded]


class HeaderError(ValueError):
    """A header value that makes a file or frame unusable; the message says which tag and why."""


# ---------------------------------------------------------------------------------------------
# Tolerant value parsing (strings as stored: backslash-separated, possibly padded or junk)
# ---------------------------------------------------------------------------------------------


def parse_floats(text: str, keyword: str, count: int | None = None) -> tuple[float, ...] | None:
    """Decimal strings to floats; ``None`` when empty. Raises ``HeaderError`` on junk or wrong count."""
    text = text.strip().strip("\x00").strip()
    if not text:
        return None
    values = []
    for part in text.split("\\"):
        try:
            value = float(part.strip())
        except ValueError:
            raise HeaderError(f'{keyword} "{text}" is not a number') from None
        if not math.isfinite(value):
            raise HeaderError(f'{keyword} "{text}" is not finite')
        values.append(value)
    if count is not None and len(values) != count:
        raise HeaderError(f'{keyword} "{text}" has {len(values)} values, {count} expected')
    return tuple(values)


_LEADING_NUMBER = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def parse_hint(text: str) -> float | None:
    """A single informative number (thickness, tilt, time): leading number kept, junk ignored.

    These values are only hints compared with the geometry, so "2.5mm" reads as 2.5 rather than
    costing the file.
    """
    first = text.strip().strip("\x00").split("\\")[0]
    match = _LEADING_NUMBER.match(first)
    if not match:
        return None
    value = float(match.group(0))
    return value if math.isfinite(value) else None


def _first_hint(text: str, fallback: float | None) -> float | None:
    value = parse_hint(text)
    return fallback if value is None else value


def parse_int(text: str) -> int | None:
    value = parse_hint(text)
    return None if value is None or value != int(value) else int(value)


def decode_text(value: bytes, specific_character_set: str) -> str:
    """Free text (e.g. SeriesDescription) as the file's SpecificCharacterSet says, padding removed.

    Single character sets are decoded here; code extensions (several terms, e.g. Japanese
    ``\\ISO 2022 IR 87``) go through pydicom. Bytes the character set cannot hold become U+FFFD
    rather than costing the file.
    """
    terms = [t.strip() for t in specific_character_set.split("\\")]
    codec = _CODECS.get(terms[0]) if len(terms) == 1 else None
    if codec is None and not all(t.isprintable() and t.isascii() for t in terms):
        codec = "latin_1"  # a defined term is plain ASCII text: this one is damaged, so the default
    if codec is not None:
        text = value.decode(codec, errors="replace")
    else:
        from pydicom.charset import convert_encodings, decode_bytes

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an unknown term falls back to the default, as said
            try:
                text = decode_bytes(value, convert_encodings(terms), {0x5C})
            except (LookupError, ValueError, UnicodeError):
                text = value.decode("latin_1")
    return text.rstrip("\x00 ").strip()


def unit_cosines(iop: Sequence[float]) -> tuple[Vec3, Vec3]:
    """Normalised, orthogonalised (row, column) direction cosines; ``HeaderError`` if degenerate.

    Real headers store IOP with few decimals, so the vectors are re-normalised and the column
    direction is made exactly orthogonal to the row direction (Gram-Schmidt).
    """
    r = [float(v) for v in iop[:3]]
    c = [float(v) for v in iop[3:6]]
    rn = math.sqrt(sum(v * v for v in r))
    cn = math.sqrt(sum(v * v for v in c))
    if rn < 0.5 or cn < 0.5 or rn > 1.5 or cn > 1.5:
        raise HeaderError(f"ImageOrientationPatient {list(iop)} does not hold unit vectors")
    r = [v / rn for v in r]
    c = [v / cn for v in c]
    dot = sum(a * b for a, b in zip(r, c))
    if abs(dot) > 0.05:
        raise HeaderError(f"ImageOrientationPatient {list(iop)}: row and column are not orthogonal")
    c = [b - dot * a for a, b in zip(r, c)]
    cn = math.sqrt(sum(v * v for v in c))
    return (r[0], r[1], r[2]), (c[0] / cn, c[1] / cn, c[2] / cn)


# ---------------------------------------------------------------------------------------------
# Reading values out of pydicom datasets without letting pydicom convert text VRs
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _tag(keyword: str) -> int:
    if keyword in _TAG_OF:
        return _TAG_OF[keyword]
    from pydicom.tag import Tag

    return Tag(keyword)


def _text(ds: Dataset, keyword: str) -> str:
    """The value of an element as one string ("" when absent).

    Text VRs come straight from the stored bytes, so that pydicom never validates (and never
    rejects) a malformed decimal string; binary VRs go through pydicom's conversion.
    """
    tag = _tag(keyword)
    if tag not in ds:
        return ""
    elem = ds.get_item(tag)
    value = elem.value
    if isinstance(value, bytes):
        from pydicom.datadict import dictionary_VR

        if keyword in _FREE_TEXT:
            return decode_text(value, _text(ds, "SpecificCharacterSet"))
        if keyword in _PRIVATE:  # no dictionary VR; stored as text, or as UN when anonymised
            return value.decode("latin-1").rstrip("\x00 ").strip()
        vr = elem.VR or dictionary_VR(tag)
        if vr in _TEXT_VRS:
            return value.decode("latin-1").rstrip("\x00 ").strip()
        try:
            value = ds[tag].value
        except Exception as err:  # pydicom converts binary values; damaged ones raise many types
            raise HeaderError(f"{keyword} has a value of VR {vr} that cannot be read as {dictionary_VR(tag)} "
                              f"({len(value)} bytes)") from err
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        if any(not isinstance(v, (str, int, float)) for v in value):
            raise HeaderError(f"{keyword} holds {type(value[0]).__name__} values, not text or numbers")
        return "\\".join(str(v) for v in value)
    if not isinstance(value, (str, int, float)):
        raise HeaderError(f"{keyword} holds a {type(value).__name__}, not text or a number")
    return str(value).strip()


def _uint(ds: Dataset, keyword: str, default: int = 0) -> int:
    """An unsigned short (US) value, decoded from the stored bytes without pydicom's conversion
    (the scan reads six per file); ``default`` when absent or malformed."""
    tag = _tag(keyword)
    if tag not in ds:
        return default
    elem = ds.get_item(tag)
    value = elem.value
    if isinstance(value, bytes):
        if len(value) != 2:
            return default
        return int.from_bytes(value, "little" if getattr(elem, "is_little_endian", True) else "big")
    try:
        return int(value[0] if isinstance(value, (list, tuple)) else value)
    except (TypeError, ValueError, IndexError):
        return default


def _item(ds: Dataset | None, keyword: str) -> Dataset | None:
    """The first item of a sequence (functional-group macros hold exactly one)."""
    if ds is None or keyword not in ds:
        return None
    seq = ds.get(keyword)
    try:
        return seq[0] if seq is not None and len(seq) else None
    except Exception:
        return None


def _get_from(datasets: Sequence[Dataset | None], keyword: str) -> str:
    """The first non-empty value of ``keyword`` among ``datasets`` (per-frame before shared)."""
    for ds in datasets:
        if ds is not None:
            value = _text(ds, keyword)
            if value:
                return value
    return ""


# ---------------------------------------------------------------------------------------------
# Building SliceHeader records
# ---------------------------------------------------------------------------------------------


def _geometry(
    iop_text: str, ipp_text: str, spacing_text: str, limits: Limits
) -> tuple[Vec3 | None, Vec3 | None, Vec3 | None, tuple[float, float] | None]:
    iop = parse_floats(iop_text, "ImageOrientationPatient", 6)
    ipp = parse_floats(ipp_text, "ImagePositionPatient", 3)
    ps = parse_floats(spacing_text, "PixelSpacing", 2)
    row = col = None
    if iop is not None:
        row, col = unit_cosines(iop)
    if ps is not None:
        if ps[0] <= 0 or ps[1] <= 0:
            raise HeaderError(f'PixelSpacing "{spacing_text}" is not positive')
        limits.check_pixel_spacing(ps, "PixelSpacing")
    if ipp is not None:
        limits.check_position(ipp, "ImagePositionPatient")
    position = (ipp[0], ipp[1], ipp[2]) if ipp is not None else None
    spacing = (ps[0], ps[1]) if ps is not None else None
    return row, col, position, spacing


def _pixel_fields(ints: dict[str, int]) -> dict[str, Any]:
    """Image size and pixel layout, the same for every frame; DICOM's defaults where absent.
    Raises ``HeaderError`` for a layout no image has (BitsStored above BitsAllocated, say)."""
    allocated = ints["BitsAllocated"] or 16
    stored = ints["BitsStored"] or allocated
    if allocated not in _BITS_ALLOCATED:
        raise HeaderError(f"BitsAllocated {allocated} is not one of {', '.join(map(str, sorted(_BITS_ALLOCATED)))}")
    if stored > allocated:
        raise HeaderError(f"BitsStored {stored} is more than BitsAllocated {allocated}")
    if ints["PixelRepresentation"] not in (0, 1):
        raise HeaderError(f"PixelRepresentation {ints['PixelRepresentation']} is neither 0 (unsigned) nor 1 (signed)")
    return dict(
        rows=ints["Rows"],
        columns=ints["Columns"],
        samples_per_pixel=ints["SamplesPerPixel"] or 1,
        bits_allocated=allocated,
        bits_stored=stored,
        pixel_representation=ints["PixelRepresentation"],
        pixel_padding_value=_padding_value(ints["PixelPaddingValue"], ints["PixelRepresentation"]),
    )


def _padding_value(value: int, pixel_representation: int) -> int | None:
    """PixelPaddingValue as a stored pixel value: its 16 bits read signed when the pixels are
    (PixelRepresentation 1; implicit-VR files do not say which), ``None`` when absent."""
    if value == _ABSENT_SHORT:
        return None
    bits = value & 0xFFFF
    return bits - (1 << 16) if pixel_representation == 1 and bits >= 1 << 15 else bits


def _rescale(slope_text: str, intercept_text: str, fields: dict[str, Any]) -> tuple[float, float]:
    """RescaleSlope and RescaleIntercept (1 and 0 when absent); ``HeaderError`` when they take
    the stored values beyond what a floating-point volume can hold."""
    slope = parse_floats(slope_text, "RescaleSlope", 1)
    intercept = parse_floats(intercept_text, "RescaleIntercept", 1)
    m = slope[0] if slope else 1.0
    b = intercept[0] if intercept else 0.0
    largest_stored = float(2 ** fields["bits_stored"])
    if abs(m) * largest_stored + abs(b) > _FLOAT32_MAX:
        raise HeaderError(f"RescaleSlope {m:g} and RescaleIntercept {b:g} take {fields['bits_stored']}-bit stored "
                          f"values beyond {_FLOAT32_MAX:.3g}, more than any image volume can hold")
    return m, b


def pixel_data_shortfall(fields: dict[str, Any], frames: int, length: int | None) -> str | None:
    """Why a native (uncompressed) Pixel Data value of ``length`` bytes cannot hold the image its
    header describes; None when it can, or when the length is unknown (encapsulated data)."""
    if length is None or length == 0xFFFFFFFF:
        return None
    bits = fields["rows"] * fields["columns"] * frames * fields["samples_per_pixel"] * fields["bits_allocated"]
    needed = (bits + 7) // 8
    if length >= needed:
        return None
    what = "empty" if length == 0 else f"{length} bytes long"
    return (f"Pixel Data is {what}, but Rows x Columns x frames x samples x BitsAllocated "
            f"({fields['rows']} x {fields['columns']} x {frames} x {fields['samples_per_pixel']} x "
            f"{fields['bits_allocated']} bits) need {needed} bytes")


def _common_fields(get: Callable[[str], str]) -> dict[str, Any]:
    """Fields that do not vary between frames, from top-level values."""
    image_type = tuple(v.strip().upper() for v in get("ImageType").split("\\") if v.strip())
    return dict(
        sop_instance_uid=get("SOPInstanceUID"),
        sop_class_uid=get("SOPClassUID"),
        series_instance_uid=get("SeriesInstanceUID"),
        study_instance_uid=get("StudyInstanceUID"),
        patient_id=get("PatientID"),
        frame_of_reference_uid=get("FrameOfReferenceUID"),
        series_number=parse_int(get("SeriesNumber")),
        series_description=get("SeriesDescription"),
        modality=get("Modality").upper(),
        instance_number=parse_int(get("InstanceNumber")),
        image_type=image_type,
        gantry_tilt_tag_deg=parse_hint(get("GantryDetectorTilt")),
        content_time=get("ContentTime"),
        acquisition_time=get("AcquisitionTime"),
        photometric_interpretation=get("PhotometricInterpretation").upper() or "MONOCHROME2",
    )


def slice_from_tag_values(path: str, get: Callable[[str], str]) -> SliceHeader | Excluded:
    """One single-frame image from tag strings, e.g. the Slicer DICOM database's ``fileValue``.

    ``get("gggg,eeee")`` returns the stored string (backslash-joined values, "" when absent).
    Multi-frame objects need their functional groups: read those with ``scan_file``. Pixel data
    presence is not checked here (the database does not store it): callers check it themselves.
    """
    by_keyword = {k: get(t) for k, t in HEADER_TAGS.items()}
    ints = {k: default if (value := parse_int(by_keyword[k])) is None else value
            for k, default in _UINT_DEFAULTS.items()}
    try:
        return _single_frame(path, by_keyword.__getitem__, ints, "", DEFAULT_LIMITS)
    except _REFUSED as err:
        return Excluded(path, str(err), error_type=type(err).__name__)


_REFUSED = (HeaderError, LimitExceeded)
"""What refusing a header value raises: the file (or frame) is left out with that message."""


def _single_frame(
    path: str, get: Callable[[str], str], ints: dict[str, int], transfer_syntax: str, limits: Limits,
    pixel_data_offset: int | None = None,
) -> SliceHeader:
    row, col, position, spacing = _geometry(
        get("ImageOrientationPatient"), get("ImagePositionPatient"), get("PixelSpacing"), limits
    )
    pixel_fields = _pixel_fields(ints)
    slope, intercept = _rescale(get("RescaleSlope"), get("RescaleIntercept"), pixel_fields)
    common = _common_fields(get)
    temporal_position = parse_int(get("TemporalPositionIdentifier"))
    return SliceHeader(
        path=path,
        frame=0,
        number_of_frames=1,
        **pixel_fields,
        row_cosines=row,
        col_cosines=col,
        position_lps_mm=position,
        pixel_spacing_mm=spacing,
        slice_thickness_mm=parse_hint(get("SliceThickness")),
        spacing_between_slices_mm=parse_hint(get("SpacingBetweenSlices")),
        acquisition_number=parse_int(get("AcquisitionNumber")),
        temporal_position=temporal_position,
        echo_number=parse_int(get("EchoNumbers")),
        echo_time_ms=parse_hint(get("EchoTime")),
        trigger_time_ms=parse_hint(get("TriggerTime")),
        repetition_time_ms=parse_hint(get("RepetitionTime")),
        temporal_resolution_ms=parse_hint(get("TemporalResolution")),
        complex_component=image_kind(get("ComplexImageComponent"), common["image_type"],
                                     get("PhilipsImageTypeMR"), get("PhilipsMRCreator"),
                                     ints["GEImageType"], get("GEParameterCreator")),
        flip_rows=ge_pepolar_flip(get("Manufacturer"), get("GEAcquisitionCreator"), get("GEPulseSequenceName"),
                                  parse_hint(get("GEUserData12")), temporal_position),
        rescale_slope=slope,
        rescale_intercept=intercept,
        transfer_syntax_uid=transfer_syntax,
        pixel_data_offset=pixel_data_offset,
        **common,
    )


def _frames(
    path: str, ds: Dataset, ints: dict[str, int], transfer_syntax: str, n_frames: int, limits: Limits
) -> tuple[list[SliceHeader], list[Excluded]]:
    """One record per frame of an enhanced multi-frame object, from its functional groups."""
    shared = _item(ds, "SharedFunctionalGroupsSequence")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") if "PerFrameFunctionalGroupsSequence" in ds else None
    pixel_fields = _pixel_fields(ints)
    if per_frame is None or len(per_frame) == 0:
        return [], [
            Excluded(
                path,
                f"multi-frame object with {n_frames} frames but no per-frame functional groups: "
                "frame positions are unknown, so it cannot be placed in space",
            )
        ]
    if len(per_frame) != n_frames:
        return [], [
            Excluded(path, f"NumberOfFrames is {n_frames} but there are {len(per_frame)} per-frame functional groups")
        ]
    common = _common_fields(lambda k: _text(ds, k))
    top_slope = _text(ds, "RescaleSlope")
    top_intercept = _text(ds, "RescaleIntercept")
    slices: list[SliceHeader] = []
    excluded: list[Excluded] = []
    for index, frame_groups in enumerate(per_frame):

        def group(keyword: str) -> list[Dataset | None]:
            return [_item(frame_groups, keyword), _item(shared, keyword)]

        try:
            row, col, position, spacing = _geometry(
                _get_from(group("PlaneOrientationSequence"), "ImageOrientationPatient")
                or _text(ds, "ImageOrientationPatient"),
                _get_from(group("PlanePositionSequence"), "ImagePositionPatient"),
                _get_from(group("PixelMeasuresSequence"), "PixelSpacing") or _text(ds, "PixelSpacing"),
                limits,
            )
            slope, intercept = _rescale(
                _get_from(group("PixelValueTransformationSequence"), "RescaleSlope") or top_slope,
                _get_from(group("PixelValueTransformationSequence"), "RescaleIntercept") or top_intercept,
                pixel_fields,
            )
        except _REFUSED as err:
            excluded.append(Excluded(path, str(err), frame=index, error_type=type(err).__name__))
            continue
        content = group("FrameContentSequence")
        frame_type_groups = group("MRImageFrameTypeSequence") + group("CTImageFrameTypeSequence")
        dimension = _get_from(content, "DimensionIndexValues")
        slices.append(
            SliceHeader(
                path=path,
                frame=index,
                number_of_frames=n_frames,
                **pixel_fields,
                row_cosines=row,
                col_cosines=col,
                position_lps_mm=position,
                pixel_spacing_mm=spacing,
                slice_thickness_mm=parse_hint(
                    _get_from(group("PixelMeasuresSequence"), "SliceThickness") or _text(ds, "SliceThickness")
                ),
                spacing_between_slices_mm=parse_hint(
                    _get_from(group("PixelMeasuresSequence"), "SpacingBetweenSlices")
                    or _text(ds, "SpacingBetweenSlices")
                ),
                acquisition_number=parse_int(_get_from(content, "FrameAcquisitionNumber"))
                or parse_int(_text(ds, "AcquisitionNumber")),
                temporal_position=parse_int(_get_from(content, "TemporalPositionIndex")),
                echo_number=None,
                echo_time_ms=parse_hint(_get_from(group("MREchoSequence"), "EffectiveEchoTime")),
                trigger_time_ms=parse_hint(
                    _get_from(group("CardiacSynchronizationSequence"), "NominalCardiacTriggerDelayTime")
                ),
                repetition_time_ms=parse_hint(_get_from(group("MRTimingAndRelatedParametersSequence"),
                                                        "RepetitionTime") or _text(ds, "RepetitionTime")),
                temporal_resolution_ms=parse_hint(_text(ds, "TemporalResolution")),
                stack_id=_get_from(content, "StackID"),
                in_stack_position=parse_int(_get_from(content, "InStackPositionNumber")),
                dimension_index=tuple(int(v) for v in parse_floats(dimension, "DimensionIndexValues") or ()),
                complex_component=_get_from(frame_type_groups, "ComplexImageComponent").upper()
                or _text(ds, "ComplexImageComponent").upper(),
                rescale_slope=slope,
                rescale_intercept=intercept,
                transfer_syntax_uid=transfer_syntax,
                **{
                    **common,
                    "content_time": _get_from(content, "FrameAcquisitionDateTime") or common["content_time"],
                    "gantry_tilt_tag_deg": _first_hint(
                        _get_from(group("CTAcquisitionDetailsSequence"), "GantryDetectorTilt"),
                        common["gantry_tilt_tag_deg"],
                    ),
                },
            )
        )
    return slices, excluded


def scan_file(path: str | os.PathLike[str], *, limits: Limits = DEFAULT_LIMITS) -> tuple[list[SliceHeader], list[Excluded]]:
    """Headers of one file: its images (one per frame) or the reason it has none."""
    found = _guarded_scan(str(path), limits)
    return found.slices, found.excluded


def _guarded_scan(path: str, limits: Limits) -> ScanResult:
    """``_scan_file``, with anything it did not foresee costing this file only.

    Every problem of the input is turned into an exclusion with its reason where it is met; an
    exception reaching this point is a fault of the tool, reported as one (and raised when
    ``STRICT_ENV`` is set, as in the test suite)."""
    try:
        return _scan_file(path, limits)
    except MemoryError:
        return _excluded(path, "not enough memory to read its header", MemoryError())
    except Exception as err:
        if os.environ.get(STRICT_ENV):
            raise
        return _excluded(path, f"could not be read: an internal error of this tool ({type(err).__name__}: "
                               f"{one_line(err)}); please report it", err)


def _excluded(path: str, reason: str, err: BaseException | None = None) -> ScanResult:
    return ScanResult([], [Excluded(path, reason, error_type=type(err).__name__ if err is not None else "")])


def _scan_file(path: str, limits: Limits) -> ScanResult:
    try:
        found = _scan_plain_image(path, limits)
        if found is None:
            found = _scan_with_pydicom(path, limits)
    except _REFUSED as err:
        return _excluded(path, str(err), err)
    if any(is_mosaic(s) for s in found.slices):
        return _unpack_mosaic(path, found)
    return found


def _unpack_mosaic(path: str, found: ScanResult) -> ScanResult:
    """A Siemens MOSAIC image as one slice per tile, or left out with the reason it cannot be."""
    (header,) = found.slices  # a mosaic is one single-frame image
    try:
        n_images, normal = read_csa(path)
        return ScanResult(unpack(header, n_images, normal), found.excluded)
    except MosaicError as err:
        return ScanResult([], found.excluded + [Excluded(path, str(err), series_instance_uid=header.series_instance_uid,
                                                         error_type=type(err).__name__)])


def needs_file_scan(get: Callable[[str], str]) -> bool:
    """Whether an image whose tag strings ``get("gggg,eeee")`` returns (e.g. the Slicer DICOM
    database's ``fileValue``) must be read with ``scan_file``: a multi-frame object or a Siemens
    MOSAIC, whose slices ``slice_from_tag_values`` cannot see."""
    frames = get(HEADER_TAGS["NumberOfFrames"]).strip()
    image_type = {v.strip().upper() for v in get(HEADER_TAGS["ImageType"]).split("\\")}
    return frames not in ("", "1") or MOSAIC_WORD in image_type


def _scan_plain_image(path: str, limits: Limits = DEFAULT_LIMITS) -> ScanResult | None:
    """A plain single-frame image, read with ``rawelements``; None for every other file.

    The checks are those ``_scan_dataset`` makes; a file failing any of them is left to the
    pydicom path, which says why in its own words.
    """
    raw = read_elements(path, _RAW_WANTED, reject=_RAW_REJECT, stop_at=_FIRST_PIXEL_TAG, limits=limits)
    if raw is None or raw.stop_tag != _TAG_OF["PixelData"] or not raw.stop_value_complete:
        return None  # truncated (or not a plain image)
    get = functools.partial(_raw_text, raw)
    sop_class = get("SOPClassUID") or raw.media_storage_sop_class_uid
    ints = {k: raw.uint16(_TAG_OF[k], default) for k, default in _UINT_DEFAULTS.items()}
    if (
        not sop_class
        or sop_class == _MEDIA_STORAGE_DIRECTORY
        or ints["Rows"] <= 0
        or ints["Columns"] <= 0
        or (parse_int(get("NumberOfFrames")) or 1) > 1
    ):
        return None
    try:
        if pixel_data_shortfall(_pixel_fields(ints), 1, raw.stop_value_length):
            return None
        header = _single_frame(path, get, ints, raw.transfer_syntax_uid, limits, _native_pixel_offset(raw, ints))
    except _REFUSED:
        return None
    return ScanResult([header], [])


def _native_pixel_offset(raw: RawElements, ints: dict[str, int]) -> int | None:
    """Where the scan found the pixel values of an uncompressed little-endian file whose Pixel Data
    holds exactly one frame (plus the pad byte of an odd length); None otherwise."""
    nbytes = ints["Rows"] * ints["Columns"] * ints["SamplesPerPixel"] * ints["BitsAllocated"] // 8
    if raw.transfer_syntax_uid in LITTLE_ENDIAN_NATIVE and raw.stop_value_length == nbytes + (nbytes & 1):
        return raw.stop_value_offset
    return None


def _raw_text(raw: RawElements, keyword: str) -> str:
    if keyword in _FREE_TEXT:
        return decode_text(raw.values.get(_TAG_OF[keyword], b""), raw.text(_TAG_OF["SpecificCharacterSet"]))
    return raw.text(_TAG_OF[keyword])


def _not_dicom_at_a_glance(head: bytes) -> bool:
    """No DICM marker, and the file does not begin with a tag of the groups a data set without
    preamble begins with (0000 to 0008, in either byte order), or begins with a zero tag (a file
    of zeros, a disk image): text, pictures, archives, JSON, empty files."""
    if head[128:132] == b"DICM":
        return False
    if len(head) < 8 or head[:4] == bytes(4):  # shorter than one data element; tag (0000,0000)
        return True
    group = int.from_bytes(head[:2], "little")
    return group > 0x0008 and group not in (0x0200, 0x0400, 0x0800)


def _scan_with_pydicom(path: str, limits: Limits = DEFAULT_LIMITS) -> ScanResult:
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError as err:
        return _excluded(path, f"cannot be read: {os_reason(err)}", err)
    if _not_dicom_at_a_glance(head):  # a stray README needs no pydicom to be left out
        return _excluded(path, "not a DICOM file (no DICM marker, and it does not begin like a DICOM data set)")
    check_limits(path, _PYDICOM_KEPT, limits)  # what pydicom would hold, before it holds it
    import pydicom

    with warnings.catch_warnings():
        # pydicom warns about recoverable oddities (VR mismatches, odd lengths); the scan reports
        # what matters in its own words.
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(path, defer_size=256, specific_tags=_READ_TAGS, force=True)
        except OSError as err:
            return _excluded(path, f"cannot be read: {os_reason(err)}", err)
        except Exception as err:  # pydicom raises many types on corrupt input
            return _excluded(path, _unreadable(head, err), err)
        try:
            slices, excluded = _scan_dataset(path, ds, head, limits)
        except _REFUSED as err:
            slices, excluded = [], [Excluded(path, str(err), error_type=type(err).__name__)]
        except Exception as err:
            if not _raised_in_pydicom(err):
                raise  # a fault of this tool: _guarded_scan says so
            return _excluded(path, _unreadable(head, err), err)
        try:
            series = _text(ds, "SeriesInstanceUID")
        except _REFUSED:
            series = ""  # the exclusions cannot name their series
    return ScanResult(slices, [replace(e, series_instance_uid=series) for e in excluded])


def _unreadable(head: bytes, err: Exception) -> str:
    """Why pydicom could not read a file, in DICOM terms (its exception types say little)."""
    marker = "has a DICM marker, but" if head[128:132] == b"DICM" else "has no DICM marker, and"
    if isinstance(err, RecursionError):
        return f"not a readable DICOM file: it {marker} its sequences are nested too deep to read"
    return f"not a readable DICOM file: it {marker} its data elements cannot be parsed (corrupt or truncated header)"


def _raised_in_pydicom(err: BaseException) -> bool:
    """Whether ``err`` came from inside pydicom (reading a damaged value it had deferred)."""
    import pydicom

    root = os.path.dirname(pydicom.__file__)
    tb = err.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.startswith(root):
            return True
        tb = tb.tb_next
    return False


def _scan_dataset(path: str, ds: Dataset, head: bytes, limits: Limits) -> tuple[list[SliceHeader], list[Excluded]]:
    meta = getattr(ds, "file_meta", None)
    media_class = str(getattr(meta, "MediaStorageSOPClassUID", "")) if meta is not None else ""
    transfer_syntax = str(getattr(meta, "TransferSyntaxUID", "")) if meta is not None else ""
    sop_class = _text(ds, "SOPClassUID") or media_class
    if media_class == _MEDIA_STORAGE_DIRECTORY or sop_class == _MEDIA_STORAGE_DIRECTORY:
        return [], [Excluded(path, "DICOMDIR (a media index, not an image); the files it lists are scanned themselves")]
    if not sop_class and not any(k in ds for k in ("SeriesInstanceUID", "Rows")):
        if head[128:132] == b"DICM":
            return [], [Excluded(path, "a DICOM file without image attributes (no SOP Class UID, SeriesInstanceUID "
                                       "or Rows)")]
        return [], [Excluded(path, "not a DICOM file (no DICM marker and no DICOM image attributes)")]
    pixel_keyword = next((k for k in _PIXEL_KEYWORDS if k in ds), None)
    if pixel_keyword is None:
        if _is_image_class(sop_class):
            return [], [Excluded(path, f"{_sop_class_name(sop_class)} without pixel data: "
                                       f"the file is truncated or incomplete ({os.path.getsize(path)} bytes)")]
        return [], [Excluded(path, f"no pixel data: {_sop_class_name(sop_class)}, not an image")]
    # A deflated data set's offsets are in the inflated stream, not in the file.
    length, cut = _pixel_data_extent(path, ds, pixel_keyword, transfer_syntax == DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN)
    if cut:
        return [], [Excluded(path, f"truncated: the pixel data ends {cut} bytes beyond the end of the file")]
    ints = {k: _uint(ds, k, default) for k, default in _UINT_DEFAULTS.items()}
    if ints["Rows"] <= 0 or ints["Columns"] <= 0:
        return [], [Excluded(path, "image has no Rows/Columns")]
    n_frames = parse_int(_text(ds, "NumberOfFrames")) or 1
    if n_frames < 1:
        return [], [Excluded(path, f"NumberOfFrames is {n_frames}")]
    if n_frames > limits.sequence_items:
        raise LimitExceeded(f"NumberOfFrames {n_frames} is more than {limits.sequence_items} (limit sequence_items)",
                            "sequence_items")
    shortfall = pixel_data_shortfall(_pixel_fields(ints), n_frames, length)
    if shortfall:
        return [], [Excluded(path, shortfall)]
    if n_frames > 1 or "PerFrameFunctionalGroupsSequence" in ds:
        return _frames(path, ds, ints, transfer_syntax, n_frames, limits)
    return [_single_frame(path, lambda k: _text(ds, k), ints, transfer_syntax, limits)], []


def _is_image_class(sop_class: str) -> bool:
    from pydicom.uid import UID

    return bool(sop_class) and UID(sop_class).name.endswith("Image Storage")


def _pixel_data_extent(path: str, ds: Dataset, keyword: str, deflated: bool) -> tuple[int | None, int]:
    """(length of the pixel data value in bytes, None when unknown or encapsulated; how many of
    its bytes lie beyond the end of the file, 0 if none).

    The scan never reads pixel values, but the element's offset and length are known, so a file
    cut short inside its pixel data is caught here rather than when a volume is built.
    """
    tag = _tag(keyword)
    elem: DataElement | RawDataElement | None
    try:
        elem = ds.get_item(tag, keep_deferred=True)
    except TypeError:  # pydicom 2 has no keep_deferred; its get_item would read the value
        from pydicom.tag import BaseTag

        elem = ds._dict.get(BaseTag(tag))
    value = getattr(elem, "value", None)
    length = getattr(elem, "length", None)
    tell = getattr(elem, "value_tell", None)
    if length == 0xFFFFFFFF or getattr(elem, "is_undefined_length", False):
        return None, 0  # encapsulated: fragments, whose decoded size only a decoder knows
    if value is not None:
        return (len(value) if isinstance(value, bytes) else None), 0
    if length is None:
        return None, 0
    if deflated or tell is None:
        return length, 0
    return length, max(0, tell + length - os.path.getsize(path))


_PRIVATE_CLASSES = {
    # Philips' private objects that hold scanner data rather than images (dcm2niix's Philips notes).
    "1.3.46.670589.11.0.0.12.1": "Philips Private MR Spectrum Storage",
    "1.3.46.670589.11.0.0.12.2": "Philips Private MR Series Data Storage",
    "1.3.46.670589.11.0.0.12.4": "Philips Private MR Examcard Storage",
}


def _sop_class_name(uid: str) -> str:
    if not uid:
        return "object without SOP Class UID"
    if uid in _PRIVATE_CLASSES:
        return f"{_PRIVATE_CLASSES[uid]} ({uid}), a private object without pixel data by design"
    from pydicom.uid import UID

    name = UID(uid).name
    return name if name != uid else f"SOP Class {uid}"


def _scan_chunk(paths: list[str], limits: Limits = DEFAULT_LIMITS) -> ScanResult:
    total = ScanResult([], [])
    for path in paths:
        found = _guarded_scan(path, limits)
        total.slices.extend(found.slices)
        total.excluded.extend(found.excluded)
    return total


def scan(
    paths: Iterable[str | os.PathLike[str]],
    *,
    workers: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
    skip: Iterable[str | os.PathLike[str]] = (),
    progress: Callable[[int, int], None] | None = None,
) -> ScanResult:
    """Scan files and folders (below folders: every regular file, at any depth) for images,
    header only. Folders in ``skip`` (e.g. the output folder of a conversion) are not entered.
    ``progress(files_done, files_found)`` is called as the scan goes.

    With many files the work is spread over processes (pydicom parsing holds the GIL); results keep
    the order in which files were found.
    """
    found = find_files(paths, limits=limits, skip=skip)
    files = found.files
    workers = workers or os.cpu_count() or 1
    parallel = workers > 1 and len(files) >= PARALLEL_THRESHOLD
    size = max(32, math.ceil(len(files) / (workers * 8))) if parallel else _PROGRESS_STEP
    pieces = [files[i : i + size] for i in range(0, len(files), size)]
    result = ScanResult([], found.excluded)
    if parallel:
        from concurrent.futures import ProcessPoolExecutor  # multiprocessing takes 25 ms to import

        from .parallel import ignore_interrupts

        pool = ProcessPoolExecutor(max_workers=workers, initializer=ignore_interrupts)
        chunks: Iterable[ScanResult] = pool.map(_scan_chunk, pieces, [limits] * len(pieces))
    else:
        pool = None
        chunks = (_scan_chunk(piece, limits) for piece in pieces)
    try:
        done = 0
        for piece, chunk in zip(pieces, chunks):
            result.slices.extend(chunk.slices)
            result.excluded.extend(chunk.excluded)
            done += len(piece)
            if progress is not None:
                progress(done, len(files))
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return result
