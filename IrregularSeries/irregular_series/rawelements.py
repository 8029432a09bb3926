"""Top-level data elements read straight from the bytes of a DICOM file, without pydicom.

The header scan needs a few dozen top-level values from each of thousands of files. pydicom's
general parser, and importing it (about 0.2 s), cost more than the rest of a conversion's
analysis, so the common case is read here: a Part 10 file (128-byte preamble, ``DICM``, explicit
VR little-endian meta group) whose data set is little endian, implicit or explicit VR. That covers
uncompressed files and every encapsulated (compressed) transfer syntax, whose data sets are
explicit VR little endian.

The reader never guesses. Anything it does not handle exactly (no preamble, big endian, deflated
or unknown transfer syntaxes, a wanted element with an unexpected VR or an undefined length, a
length running past the end of the file, a data set whose VR encoding contradicts its transfer
syntax, ...) gives ``None``, and the caller reads the file with pydicom instead. What it will not
do at all, whoever reads the file, raises ``LimitExceeded``: a header longer than the limit
(``Limits.header_bytes``; the reader never holds more than that), sequences nested deeper or
holding more items than the limits.

``check_limits`` applies the same limits to the files this reader declines, before pydicom reads
them: it walks the structure as pydicom will (any byte order and VR encoding, with or without
preamble, deflated), seeking past what pydicom skips, and counts what pydicom will hold.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import BinaryIO

from .limits import DEFAULT_LIMITS, LimitExceeded, Limits
from .transfer_syntaxes import (
    DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
    ENCAPSULATED_PREFIXES,
    EXPLICIT_VR_BIG_ENDIAN,
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
)

__all__ = ["RawElements", "check_limits", "read_elements", "read_meta"]

_UNDEFINED = 0xFFFFFFFF
_ITEM = 0xFFFEE000
_ITEM_END = 0xFFFEE00D
_SEQUENCE_END = 0xFFFEE0DD
_SEQUENCE_END_BYTES = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"  # the delimiter item, length 0
_FIRST_READ = 64 * 1024  # holds nearly every header; longer ones are read in doubling steps

# VRs whose explicit encoding has two reserved bytes and a 4-byte length (PS3.5 7.1.2).
_LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ SV UC UN UR UT UV".split())
_SHORT_VRS = frozenset(b"AE AS AT CS DA DS DT FD FL IS LO LT PN SH SL SS ST TM UI UL US".split())
_VRS = _LONG_VRS | _SHORT_VRS

_TAG = struct.Struct("<HH")  # tag group, tag element
_HEADER = struct.Struct("<HHI")  # tag group, tag element, 4-byte length (implicit VR and items)
_EXPLICIT_SHORT = struct.Struct("<HH2sH")  # tag group, tag element, VR, 2-byte length
_LONG_LENGTH = struct.Struct("<I")  # after an explicit long VR and two reserved bytes


@dataclass(frozen=True)
class RawElements:
    """The wanted top-level elements of one file, and where its pixel data element starts.

    ``values`` maps each wanted tag found (as an int, ``0xggggeeee``) to its value bytes as stored.
    ``stop_tag`` is the first top-level tag at or after the reader's ``stop_at`` (normally one of
    the pixel data tags), with its value's file offset and length (``0xFFFFFFFF`` when undefined,
    i.e. encapsulated); ``None`` when the data set ended before one. ``stop_value_complete``: that
    value lies within the file (a defined length that fits; encapsulated fragments that end with
    their sequence delimiter as the file's last bytes). ``file_size`` in bytes.
    """

    transfer_syntax_uid: str
    media_storage_sop_class_uid: str
    values: Mapping[int, bytes]
    stop_tag: int | None
    stop_value_offset: int
    stop_value_length: int
    file_size: int
    stop_value_complete: bool = False

    def text(self, tag: int) -> str:
        """A text value as stored (backslash-separated values), padding removed; "" when absent."""
        value = self.values.get(tag)
        return "" if value is None else value.decode("latin-1").rstrip("\x00 ").strip()

    def uint16(self, tag: int, default: int = 0) -> int:
        """An unsigned short (US) value; ``default`` when absent or not two bytes long."""
        value = self.values.get(tag)
        return int.from_bytes(value, "little") if value is not None and len(value) == 2 else default


def read_elements(
    path: str,
    wanted: Mapping[int, Collection[bytes]],
    *,
    reject: Collection[int] = (),
    stop_at: int,
    limits: Limits = DEFAULT_LIMITS,
) -> RawElements | None:
    """Read the ``wanted`` top-level elements of ``path``, stopping at the first tag ``>= stop_at``.

    ``wanted`` maps each tag to the explicit VRs accepted for it (e.g. ``{0x00280010: {b"US"}}``);
    in implicit VR files the VR is not stored and is not checked. The presence of any ``reject``
    tag gives ``None`` (after its items are counted against the limits), as does every file this
    reader does not handle exactly (module docstring). Only the header is read: the first 64 kB,
    doubled until the header fits; ``LimitExceeded`` beyond ``limits.header_bytes``.
    """
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            data = f.read(_FIRST_READ)
            while True:
                try:
                    found = _read(f, data, size, wanted, reject, stop_at, limits)
                    if found is None or found.stop_tag is not None or len(data) >= size:
                        return found
                except _OutOfData:
                    if len(data) >= size:
                        return None  # the file ends inside its header
                    if len(data) >= limits.header_bytes:
                        raise LimitExceeded(
                            f"header longer than {limits.header_bytes / 2**20:g} MB before the pixel data "
                            "(limit header_bytes)", "header_bytes") from None
                more = f.read(min(len(data), limits.header_bytes - len(data)))  # twice as much, and parse again
                if not more:
                    return None
                data += more
    except OSError:
        return None


def read_meta(path: str) -> tuple[str, int] | None:
    """(TransferSyntaxUID, offset of the data set) of a Part 10 file; None when it has no
    preamble and DICM marker or its meta group cannot be read."""
    try:
        with open(path, "rb") as f:
            m = f.read(_FIRST_READ)
    except OSError:
        return None
    if len(m) < 132 or m[128:132] != b"DICM":
        return None
    meta: dict[int, bytes] = {}
    try:
        pos = _elements(m, 132, True, {0x00020010: (b"UI",)}, meta, start_at=0x00020000, stop_at=0x00030000,
                        limits=DEFAULT_LIMITS)
    except _OutOfData:
        return None
    if pos is None:
        return None
    return RawElements("", "", meta, None, 0, 0, 0).text(0x00020010), pos


def _value_complete(f: BinaryIO, offset: int, length: int, size: int) -> bool:
    """Whether the value at ``offset`` of ``length`` bytes lies within the file ``f`` of ``size`` bytes."""
    if length != _UNDEFINED:
        return offset + length <= size
    # Encapsulated pixel data is the last element: complete fragments end with their delimiter.
    f.seek(max(0, size - len(_SEQUENCE_END_BYTES)))
    return f.read(len(_SEQUENCE_END_BYTES)) == _SEQUENCE_END_BYTES


class _OutOfData(Exception):
    """The header runs past the bytes read."""


def _read(
    f: BinaryIO, m: bytes, size: int, wanted: Mapping[int, Collection[bytes]], reject: Collection[int], stop_at: int,
    limits: Limits,
) -> RawElements | None:
    """Parse the bytes ``m`` read from the start of the file ``f`` of ``size`` bytes."""
    if len(m) < 132 or m[128:132] != b"DICM":
        return None
    meta: dict[int, bytes] = {}
    # The meta group ends at the first tag outside group 0002, as pydicom reads it.
    pos = _elements(m, 132, True, {0x00020002: (b"UI",), 0x00020010: (b"UI",)}, meta,
                    start_at=0x00020000, stop_at=0x00030000, limits=limits)
    if pos is None:
        return None
    meta_elements = RawElements("", "", meta, None, 0, 0, size)
    syntax = meta_elements.text(0x00020010)
    explicit = _is_explicit_little_endian(syntax)
    if explicit is None or _encoding_contradicts(m, pos, explicit):
        return None
    values: dict[int, bytes] = {}
    stop: list[int] = []
    if _elements(m, pos, explicit, wanted, values, stop_at=stop_at, reject=reject, stop=stop, limits=limits) is None:
        return None
    if not stop:
        return RawElements(syntax, meta_elements.text(0x00020002), values, None, 0, 0, size)
    stop_tag, offset, length = stop
    return RawElements(syntax, meta_elements.text(0x00020002), values, stop_tag, offset, length, size,
                       _value_complete(f, offset, length, size))


def _is_explicit_little_endian(syntax: str) -> bool | None:
    """True/False for the little-endian data set encodings handled here; None for the others."""
    if syntax == IMPLICIT_VR_LITTLE_ENDIAN:
        return False
    if syntax == EXPLICIT_VR_LITTLE_ENDIAN or syntax.startswith(ENCAPSULATED_PREFIXES):
        return True
    return None


def _encoding_contradicts(m: bytes, pos: int, explicit: bool) -> bool:
    """Whether the first data set element looks encoded the other way (files that lie about their
    transfer syntax exist; pydicom detects and reads them, so they are left to it)."""
    if pos + 6 > len(m):
        return False
    looks_explicit = m[pos + 4 : pos + 6] in _VRS
    return looks_explicit != explicit


def _element_header(m: bytes, pos: int, explicit: bool) -> tuple[int, bytes, int, int] | None:
    """(tag, VR or b"", value offset, value length) of the element at ``pos``; None when an
    explicit VR is not a DICOM VR."""
    if pos + 8 > len(m):
        raise _OutOfData
    if explicit:
        group, element, vr, short_length = _EXPLICIT_SHORT.unpack_from(m, pos)
        if group != 0xFFFE:  # items and delimiters never carry a VR
            if vr in _SHORT_VRS:
                return group << 16 | element, vr, pos + 8, short_length
            if vr in _LONG_VRS:
                if pos + 12 > len(m):
                    raise _OutOfData
                return group << 16 | element, vr, pos + 12, _LONG_LENGTH.unpack_from(m, pos + 8)[0]
            return None
    group, element, length = _HEADER.unpack_from(m, pos)
    return group << 16 | element, b"", pos + 8, length


def _elements(
    m: bytes,
    pos: int,
    explicit: bool,
    wanted: Mapping[int, Collection[bytes]],
    values: dict[int, bytes],
    *,
    stop_at: int,
    limits: Limits,
    start_at: int = 0,
    reject: Collection[int] = (),
    stop: list[int] | None = None,
) -> int | None:
    """Walk the elements from ``pos`` to the end of ``m`` or the first tag ``>= stop_at`` (or
    ``< start_at``), keeping wanted values; the position reached, or None when the bytes are not
    what they should be. ``stop`` receives (tag, value offset, length) of the element at
    ``stop_at`` or beyond that stopped the walk. Raises ``_OutOfData`` when an element runs past
    the end of ``m``."""
    size = len(m)
    while pos < size:
        if pos + 4 > size:
            raise _OutOfData
        group, element = _TAG.unpack_from(m, pos)
        if (group << 16 | element) < start_at:
            return pos
        if (group << 16 | element) >= stop_at and stop is None:
            return pos  # the next part (the data set after the meta group) may be encoded differently
        header = _element_header(m, pos, explicit)
        if header is None:
            return None
        tag, vr, at, length = header
        if tag >= stop_at and stop is not None:  # (without ``stop`` the walk returned above)
            stop.extend((tag, at, length))
            return pos
        if (tag >> 16) == 0xFFFE:  # a stray item or delimiter at top level
            return None
        if tag in reject:
            if vr in (b"SQ", b""):  # count its items: whoever reads it next would hold them all
                _skip_sequence(m, at, explicit, 1, limits, None if length == _UNDEFINED else at + length)
            return None
        accepted = wanted.get(tag)
        if length == _UNDEFINED:
            if accepted is not None or vr not in (b"SQ", b""):
                return None
            after = _skip_sequence(m, at, explicit, 1, limits)
            if after is None:
                return None
            pos = after
            continue
        end = at + length
        if end > size:
            raise _OutOfData
        if accepted is not None:
            if explicit and vr not in accepted:
                return None
            values[tag] = m[at:end]
        pos = end
    return pos


def _skip_sequence(m: bytes, pos: int, explicit: bool, depth: int, limits: Limits, end: int | None = None
                   ) -> int | None:
    """The position after the sequence whose items start at ``pos``: after its delimiter, or
    ``end`` for a sequence of defined length; None when it is malformed. Raises
    ``LimitExceeded`` for more items or deeper nesting than the limits."""
    if depth > limits.sequence_depth:
        raise LimitExceeded(f"sequences nested more than {limits.sequence_depth} deep (limit sequence_depth)",
                            "sequence_depth")
    items = 0
    while True:
        if end is not None and pos >= end:
            return pos
        if pos + 8 > len(m):
            raise _OutOfData
        group, element, length = _HEADER.unpack_from(m, pos)
        tag = group << 16 | element
        pos += 8
        if tag == _SEQUENCE_END:
            return pos
        if tag != _ITEM:
            return None
        items += 1
        if items > limits.sequence_items:
            raise LimitExceeded(f"a sequence of more than {limits.sequence_items} items (limit sequence_items)",
                                "sequence_items")
        if length != _UNDEFINED:
            pos += length
            continue
        while True:  # an undefined-length item: its elements, up to the item delimiter
            header = _element_header(m, pos, explicit)
            if header is None:
                return None
            tag, vr, at, length = header
            if tag == _ITEM_END:
                pos = at
                break
            if length == _UNDEFINED:
                if vr not in (b"SQ", b""):
                    return None
                after = _skip_sequence(m, at, explicit, depth + 1, limits)
                if after is None:
                    return None
                pos = after
            else:
                pos = at + length


# ---------------------------------------------------------------------------------------------
# Limits for the files pydicom reads
# ---------------------------------------------------------------------------------------------


def check_limits(path: str, kept: Collection[int], limits: Limits = DEFAULT_LIMITS) -> None:
    """Raise ``LimitExceeded`` when reading ``path`` with pydicom, keeping the values of the
    top-level elements ``kept`` (not the pixel data's: deferred, never read by the scan) and
    seeking past the others, would hold more than the limits allow.

    pydicom holds every wanted top-level value, and everything inside the sequences it parses
    (wanted ones, and every sequence of undefined length, which it must parse to find its end),
    while it seeks past the other values. Those bytes, with every element header read, count
    against ``limits.header_bytes``; every sequence's items against ``limits.sequence_items``, all
    of them together against ``limits.header_items``, its nesting against
    ``limits.sequence_depth``; a deflated data set, inflated whole by pydicom, against
    ``header_bytes`` too. Where the bytes stop making sense the check ends: the reader that
    follows says what is wrong with the file, unless the rest of the file could take it past
    ``header_bytes``. A truncated file ends the check too: what it holds was counted.
    """
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            preamble = f.read(132)[128:132] == b"DICM"
            meta = _Walk(f, size, True, True, (), limits)  # pydicom reads every value of the meta group
            pos, syntax = meta.meta_group(132 if preamble else 0)
            explicit, little = _encoding(syntax, meta.read(pos, 6) if pos + 6 <= size else b"")
            if syntax == DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN:
                data = _inflate(f, pos, limits.header_bytes)
                _Walk(io.BytesIO(data), len(data), True, True, kept, limits, meta.held).data_set(0, None, 0)
            else:
                _Walk(f, size, explicit, little, kept, limits, meta.held).data_set(pos, None, 0)
    except _Unfollowable as lost:
        # What pydicom holds from there on cannot be told, short of reading it: at most the rest of the file.
        if lost.held + lost.rest > limits.header_bytes:
            raise LimitExceeded(
                f"the header cannot be followed from byte {lost.pos} on, and the {lost.rest / 2**20:.3g} MB after it "
                f"could all be held: more than {limits.header_bytes / 2**20:g} MB (limit header_bytes)",
                "header_bytes") from None
    except (OSError, _OutOfData, struct.error, zlib.error):
        return


class _Unfollowable(Exception):
    """The bytes from ``pos`` on (``rest`` bytes to the end of the data set) are not a structure
    pydicom would read the same way; ``held`` bytes were counted before them."""

    def __init__(self, pos: int, rest: int, held: int) -> None:
        super().__init__(pos, rest, held)
        self.pos, self.rest, self.held = pos, rest, held


_PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})


def _encoding(syntax: str | None, first: bytes) -> tuple[bool, bool]:
    """(explicit VR, little endian) of a data set whose first element begins with the bytes
    ``first``, as pydicom reads it: by the transfer syntax, but following what the first element
    looks like when the syntax says otherwise; guessed as pydicom guesses without a syntax."""
    explicit = _is_vr(first[4:6])
    if syntax is None:  # a valid VR means explicit; a group beyond 0x03FF read little endian, big endian
        return explicit, not (explicit and len(first) == 6 and struct.unpack_from("<H", first)[0] >= 1024)
    return explicit, syntax != EXPLICIT_VR_BIG_ENDIAN


def _is_vr(two: bytes) -> bool:
    """Two capital letters: what pydicom takes for an explicit VR."""
    return len(two) == 2 and all(0x41 <= c <= 0x5A for c in two)


def _inflate(f: BinaryIO, offset: int, limit: int) -> bytes:
    """The deflated data set at ``offset``, inflated; ``LimitExceeded`` beyond ``limit`` bytes."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    out = bytearray()
    f.seek(offset)
    while chunk := f.read(_FIRST_READ):
        while chunk:
            out += inflater.decompress(chunk, _FIRST_READ)
            if len(out) > limit:
                raise LimitExceeded(f"deflated data set inflates to more than {limit / 2**20:g} MB "
                                    "(limit header_bytes)", "header_bytes")
            chunk = inflater.unconsumed_tail
        if inflater.eof:
            break
    return bytes(out)


class _Walk:
    """One pass over a data set as pydicom reads it, counting what it holds (``check_limits``)."""

    def __init__(self, f: BinaryIO, size: int, explicit: bool, little: bool, kept: Collection[int],
                 limits: Limits, held: int = 0) -> None:
        self.f, self.size, self.explicit, self.limits, self.kept = f, size, explicit, limits, kept
        order = "<" if little else ">"
        self.header = struct.Struct(order + "HHI")
        self.short = struct.Struct(order + "HH2sH")
        self.long = struct.Struct(order + "I")
        self.held = held
        """Bytes counted so far (of this walk and the ones before it over the same file)."""
        self.items = 0
        """Sequence items counted so far, at any depth."""

    def meta_group(self, pos: int) -> tuple[int, str | None]:
        """Walk the meta group at ``pos`` (explicit VR little endian, group 0002), holding every
        value; (the offset after it, its TransferSyntaxUID or None)."""
        syntax = None
        while pos + 8 <= self.size and self.header.unpack(self.read(pos, 8))[0] == 0x0002:
            tag, _, at, length = self.element(pos, True)
            if length == _UNDEFINED:
                raise _Unfollowable(pos, self.size - pos, self.held)
            self.hold(min(length, self.size - at))
            if tag == 0x00020010 and length <= 64:
                syntax = self.read(at, length).decode("latin-1").rstrip("\x00 ").strip()
            pos = at + length
        return pos, syntax

    def hold(self, nbytes: int) -> None:
        self.held += nbytes
        if self.held > self.limits.header_bytes:
            raise LimitExceeded(f"header values of more than {self.limits.header_bytes / 2**20:g} MB to read "
                                "(limit header_bytes)", "header_bytes")

    def read(self, pos: int, n: int) -> bytes:
        self.f.seek(pos)
        data = self.f.read(n)
        if len(data) < n:
            raise _OutOfData
        return data

    def element(self, pos: int, explicit: bool) -> tuple[int, bytes, int, int]:
        """(tag, VR or b"", value offset, value length) of the element at ``pos``."""
        data = self.read(pos, 8)
        group, element, length = self.header.unpack(data)
        tag = group << 16 | element
        vr = data[4:6]
        if not explicit or group == 0xFFFE or not _is_vr(vr):  # items; pydicom's switch to implicit VR
            self.hold(8)
            return tag, b"", pos + 8, length
        if vr in _LONG_VRS:
            self.hold(12)
            return tag, vr, pos + 12, self.long.unpack(self.read(pos + 8, 4))[0]
        self.hold(8)
        return tag, vr, pos + 8, self.short.unpack(data)[3]  # an unknown VR: a 2-byte length, as pydicom reads it

    def data_set(self, pos: int, end: int | None, depth: int) -> int:
        """Walk the elements from ``pos`` to ``end`` (an item's; the end of the file at top level,
        depth 0; its delimiter for an item of undefined length); the position after them."""
        while pos < (self.size if end is None else end):
            tag, vr, at, length = self.element(pos, self.explicit)
            if tag == _ITEM_END:
                return at
            held = depth > 0 or tag in self.kept
            if length != _UNDEFINED:
                if vr == b"SQ" and held:
                    self.sequence(at, at + length, depth + 1)
                elif held:
                    self.hold(min(length, self.size - at))  # a length beyond the end reads what is there
                pos = at + length
            elif vr in (b"SQ", b"UN") or (vr == b"" and tag not in _PIXEL_TAGS and self._items_follow(at)):
                pos = self.sequence(at, None, depth + 1)  # parsed whether wanted or not, to find its end
            else:
                pos = self.undefined_value(at, depth > 0 and tag not in _PIXEL_TAGS)
        return pos

    def _items_follow(self, pos: int) -> bool:
        return self.header.unpack(self.read(pos, 8))[:2] == (0xFFFE, 0xE000)

    def sequence(self, pos: int, end: int | None, depth: int) -> int:
        """Count the items of the sequence whose items start at ``pos`` and walk them; the position
        after it (``end``, or after its delimiter)."""
        if depth > self.limits.sequence_depth:
            raise LimitExceeded(f"sequences nested more than {self.limits.sequence_depth} deep (limit sequence_depth)",
                                "sequence_depth")
        items = 0
        while end is None or pos < end:
            tag, _, at, length = self.element(pos, False)
            if tag == _SEQUENCE_END:
                return at
            if tag != _ITEM:
                raise _Unfollowable(pos, self.size - pos, self.held)
            items += 1
            self.items += 1
            if items > self.limits.sequence_items:
                raise LimitExceeded(f"a sequence of more than {self.limits.sequence_items} items "
                                    "(limit sequence_items)", "sequence_items")
            if self.items > self.limits.header_items:
                raise LimitExceeded(f"more than {self.limits.header_items} sequence items in all "
                                    "(limit header_items)", "header_items")
            pos = self.data_set(at, None if length == _UNDEFINED else at + length, depth)
        return pos

    def undefined_value(self, pos: int, held: bool) -> int:
        """The position after a value of undefined length (encapsulated fragments, or bytes up to
        a sequence delimiter), counting it when pydicom holds it."""
        start = pos
        while True:
            tag, _, at, length = self.element(pos, False)
            if tag == _SEQUENCE_END:
                break
            if tag != _ITEM or length == _UNDEFINED:  # not fragments: pydicom searches the bytes for the end
                raise _Unfollowable(start, self.size - start, self.held)
            pos = at + length
        if held:
            self.hold(pos - start)
        return at
