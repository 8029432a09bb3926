"""Vendor quirks that change what the pixels mean, each corrected only where its evidence is
documented, and each correction said in words.

GE ``epi_pepolar``: GE's reversed-phase-encoding EPI (PulseSequenceName (0019,109C) containing
``epi_pepolar``, private creator "GEMS_ACQU_01") stores the volumes acquired with the reversed
polarity with their rows upside down, and the header does not say so beyond UserData12
(0019,10B3): 1 = every volume reversed, 2 = reversed then forward (volumes with an odd
TemporalPositionIdentifier reversed), 3 = forward then reversed (even ones reversed). dcm2niix
(heudiconv issue 479, dcm2niix issue 532) flips the rows of those volumes back; so does this.
"""

from __future__ import annotations

from collections.abc import Sequence

from .model import SliceHeader

GE_ACQUISITION_CREATOR = "GEMS_ACQU_01"


def ge_pepolar_flip(
    manufacturer: str, creator: str, pulse_sequence_name: str, user_data_12: float | None,
    temporal_position: int | None,
) -> bool:
    """Whether a GE epi_pepolar image is stored with its rows reversed (see the module text)."""
    if not manufacturer.strip().upper().startswith("GE") or creator.strip() != GE_ACQUISITION_CREATOR:
        return False
    if "epi_pepolar" not in pulse_sequence_name or user_data_12 is None:
        return False
    mode = round(user_data_12)
    volume = temporal_position or 0
    return mode == 1 or (mode == 2 and volume > 0 and volume % 2 == 1) or (mode == 3 and volume > 0 and volume % 2 == 0)


def flip_summary(slices: Sequence[SliceHeader]) -> str | None:
    """The sentence saying that (and why) rows were flipped, or None when no slice is flipped."""
    flipped = [s for s in slices if s.flip_rows]
    if not flipped:
        return None
    return (f"rows of {len(flipped)} of {len(slices)} slices flipped back: a GE epi_pepolar acquisition "
            "stores images acquired with reversed phase encoding upside down (PulseSequenceName epi_pepolar, "
            "UserData12 (0019,10B3)), and the geometry in the header is that of the unflipped image")
