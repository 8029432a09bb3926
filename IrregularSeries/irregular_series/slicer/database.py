"""Headers and files from Slicer's DICOM database (``slicer.dicomDatabase``, a ctkDICOMDatabase).

The database is passed in, never imported, and only methods Slicer's own DICOM plugins call on it
are used (``fileValue``, ``fileValueExists``). Neither the ``slicer-core`` wheel nor any other
package outside the Slicer application provides that class, so ``database_headers`` stays thin:
what it feeds (``slice_from_tag_values``, ``analyze_slices``) is tested on its own.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import replace

from ..headers import HEADER_TAGS, needs_file_scan, scan_file, slice_from_tag_values
from ..model import Excluded, SliceHeader
from ..rawelements import read_elements

_FIRST_DATA_SET_TAG = 0x00080000
"""Reading stops at the first data set element: the transfer syntax is in the file meta group."""


def database_headers(database, files: Iterable[str]) -> tuple[list[SliceHeader], list[Excluded]]:
    """The images of ``files``: single-frame ones from the database's cached tags (which the
    plugin's ``tags`` make it pre-cache at import), multi-frame ones and Siemens MOSAIC images from
    the file (per-frame functional groups are sequences, which the database flattens; a mosaic's
    tiles come from its CSA header)."""
    slices: list[SliceHeader] = []
    excluded: list[Excluded] = []
    for path in files:
        value_of = functools.partial(database.fileValue, path)  # tag ("gggg,eeee") -> the cached string
        if not database.fileValueExists(path, HEADER_TAGS["PixelData"]):
            excluded.append(Excluded(path, "no pixel data"))
        elif needs_file_scan(value_of):
            found, left_out = scan_file(path)
            slices += found
            excluded += left_out
        else:
            header = slice_from_tag_values(path, value_of)
            if isinstance(header, Excluded):
                excluded.append(header)
            else:
                slices.append(header)
    return slices, excluded


def with_transfer_syntax(slices: list[SliceHeader]) -> list[SliceHeader]:
    """``slices``, each with its file's transfer syntax, read from the file meta group where the
    header lacks it. The database caches data set elements only (CTK parses the data set without
    its meta group), and without a transfer syntax the pixels cannot take the direct reader."""
    syntax_of: dict[str, str] = {}
    filled = []
    for s in slices:
        if not s.transfer_syntax_uid:
            if s.path not in syntax_of:
                raw = read_elements(s.path, {}, stop_at=_FIRST_DATA_SET_TAG)
                syntax_of[s.path] = raw.transfer_syntax_uid if raw is not None else ""
            s = replace(s, transfer_syntax_uid=syntax_of[s.path])
        filled.append(s)
    return filled
