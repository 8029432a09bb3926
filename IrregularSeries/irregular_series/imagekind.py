"""What an image holds: magnitude, phase, real or imaginary part of the complex MR signal.

Images of different kinds at the same position are different volumes, never duplicates, so the
kind is read from every place a scanner documents it:

- ComplexImageComponent (0008,9208): the standard attribute, per frame in enhanced objects;
- ImageType values from the third on: Siemens writes ``M``/``P``/``R``/``I`` (``ORIGINAL\\PRIMARY\\P\\ND``),
  Philips classic images ``M``/``P``/``R``/``I`` beside ``M_FFE``/``PHASE MAP``…, others the words
  MAGNITUDE, PHASE, REAL, IMAGINARY (the values dcm2niix reads too);
- Philips private (2005,1011) "Image Type MR" (``M``/``P``/``R``/``I``) in the block of the private
  creator "Philips MR Imaging DD 001";
- GE private (0043,102F) image type (0 magnitude, 1 phase, 2 real, 3 imaginary; documented by
  dcm2niix) in the block of the private creator "GEMS_PARM_01".

A header naming two kinds (e.g. ``M`` and ``P``) says MIXED, as ComplexImageComponent would.
"""

from __future__ import annotations

KINDS = ("MAGNITUDE", "PHASE", "REAL", "IMAGINARY", "MIXED")
"""The ComplexImageComponent terms (PS3.3 C.8.13.3.1.1)."""

_IMAGE_TYPE_WORDS = {
    "M": "MAGNITUDE",
    "MAGNITUDE": "MAGNITUDE",
    "P": "PHASE",
    "PHASE": "PHASE",
    "PHASE MAP": "PHASE",
    "R": "REAL",
    "REAL": "REAL",
    "I": "IMAGINARY",
    "IMAGINARY": "IMAGINARY",
}

PHILIPS_MR_CREATOR = "Philips MR Imaging DD 001"
"""The private creator whose block holds Philips' (2005,1011) image type."""

GE_PARAMETER_CREATOR = "GEMS_PARM_01"
"""The private creator whose block holds GE's (0043,102F) image type."""

_GE_KINDS = ("MAGNITUDE", "PHASE", "REAL", "IMAGINARY")


def image_kind(
    complex_component: str, image_type: tuple[str, ...], philips_image_type: str = "", philips_creator: str = "",
    ge_image_type: int = -1, ge_creator: str = "",
) -> str:
    """The kind (one of ``KINDS``) an image's header states, or "" when it states none
    (``ge_image_type`` -1: absent)."""
    stated = complex_component.strip().upper()
    if stated in KINDS:
        return stated
    found = {_IMAGE_TYPE_WORDS[v] for v in image_type[2:] if v in _IMAGE_TYPE_WORDS}
    if not found and philips_creator.strip() == PHILIPS_MR_CREATOR:
        word = _IMAGE_TYPE_WORDS.get(philips_image_type.strip().upper())
        found = {word} if word else set()
    if not found and ge_creator.strip() == GE_PARAMETER_CREATOR and 0 <= ge_image_type < len(_GE_KINDS):
        found = {_GE_KINDS[ge_image_type]}
    if len(found) > 1:
        return "MIXED"
    return found.pop() if found else ""

