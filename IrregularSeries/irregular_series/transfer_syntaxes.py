"""Transfer syntax UIDs (DICOM PS3.5 §10, PS3.6 Annex A) the package tells apart, defined once."""

from __future__ import annotations

IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
EXPLICIT_VR_BIG_ENDIAN = "1.2.840.10008.1.2.2"
DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1.99"
ENCAPSULATED_UNCOMPRESSED = "1.2.840.10008.1.2.1.98"

LITTLE_ENDIAN_NATIVE = frozenset({IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN})
"""Uncompressed pixel data stored as the bytes of little-endian integers: readable straight from
the file."""

NATIVE = LITTLE_ENDIAN_NATIVE | {EXPLICIT_VR_BIG_ENDIAN, DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN}
"""Transfer syntaxes whose pixel data is not encapsulated (pydicom reads it without a decoder)."""

ENCAPSULATED_PREFIXES = (
    "1.2.840.10008.1.2.4.",  # JPEG, JPEG-LS, JPEG 2000, HTJ2K, MPEG, HEVC...
    "1.2.840.10008.1.2.5",  # RLE Lossless
    ENCAPSULATED_UNCOMPRESSED,
)
"""Prefixes of the transfer syntaxes whose pixel data is encapsulated (fragments in items)."""
