"""Pixel data of slices, decoded into one preallocated (slice, row, column) array.

Every value is the slice's *rescaled* value, ``stored * RescaleSlope + RescaleIntercept``, with the
slice's own slope and intercept. Unused high bits (BitsStored < BitsAllocated) are masked, or
sign-extended for signed data. MONOCHROME1 slices are inverted within their own rescaled range so
that the whole array reads as MONOCHROME2: ``v' = (rescaled min + rescaled max) - v``, where min and
max are the rescaled ends of the range the stored bits can hold.

Uncompressed little-endian files are read straight from disk into the output (no pydicom
decoding); every other transfer syntax, and every Siemens MOSAIC image (whose slices are tiles of
one stored image, see ``mosaic``), goes through ``pydicom``'s ``pixel_array``. pydicom is imported
only when it is needed. Slices whose header says their rows are stored backwards (``flip_rows``,
see ``quirks``) are flipped back.
"""

from __future__ import annotations

import functools
import io
import os
import struct
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt

from .model import SliceHeader
from .mosaic import tiles_of
from .transfer_syntaxes import EXPLICIT_VR_LITTLE_ENDIAN, LITTLE_ENDIAN_NATIVE, NATIVE

__all__ = [
    "PixelDecodeError",
    "decoder_available",
    "load_pixels",
    "output_dtype",
    "rescaled_range",
    "stored_range",
    "value_range",
]

# Pixel data pydicom reads itself: the native transfer syntaxes, and the empty UID of a file
# without File Meta Information, which pydicom reads as little endian.
_NATIVE = NATIVE | {""}

_GREYSCALE = ("MONOCHROME1", "MONOCHROME2")
_PARALLEL_RANGE_BYTES = 16 * 1024 * 1024  # below this per thread, a thread costs more than it saves
_PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"  # (7FE0,0010), little endian
_UNDEFINED_LENGTH = 0xFFFFFFFF

_LIBJPEG = "pip install pylibjpeg pylibjpeg-libjpeg"
_OPENJPEG = "pip install pylibjpeg pylibjpeg-openjpeg"
# What to install so that pydicom (2.4 and 3) decodes a transfer syntax. Both versions use
# pylibjpeg's plugins; pyjpegls is pydicom 3's JPEG-LS plugin and provides the ``jpeg_ls`` module
# that pydicom 2.4's JPEG-LS handler imports.
_INSTALL = {
    "1.2.840.10008.1.2.4.50": _LIBJPEG,  # JPEG Baseline
    "1.2.840.10008.1.2.4.51": _LIBJPEG,  # JPEG Extended
    "1.2.840.10008.1.2.4.57": _LIBJPEG,  # JPEG Lossless
    "1.2.840.10008.1.2.4.70": _LIBJPEG,  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80": "pip install pyjpegls",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81": "pip install pyjpegls",  # JPEG-LS Near Lossless
    "1.2.840.10008.1.2.4.90": _OPENJPEG,  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91": _OPENJPEG,  # JPEG 2000
    "1.2.840.10008.1.2.4.201": _OPENJPEG,  # HTJ2K Lossless
    "1.2.840.10008.1.2.4.202": _OPENJPEG,  # HTJ2K Lossless RPCL
    "1.2.840.10008.1.2.4.203": _OPENJPEG,  # HTJ2K
}
# HTJ2K arrived in pydicom 3.0; pydicom 2.4 does not know these UIDs, nor their names.
_HTJ2K = {
    "1.2.840.10008.1.2.4.201": "HTJ2K Lossless",
    "1.2.840.10008.1.2.4.202": "HTJ2K Lossless RPCL",
    "1.2.840.10008.1.2.4.203": "HTJ2K",
}

# Candidate integer output types, smallest first; unsigned first among equal sizes.
_INTEGER_TYPES = tuple(np.dtype(t) for t in ("uint8", "int8", "uint16", "int16", "int32"))
_FLOAT32_EXACT_BITS = 24  # float32 has a 24-bit significand


class PixelDecodeError(RuntimeError):
    """Pixel data that cannot be decoded here; the message names the file and the remedy."""


# --- value ranges and the output type --------------------------------------------------------


def stored_range(header: SliceHeader) -> tuple[int, int]:
    """(min, max) a stored value can take given BitsStored and PixelRepresentation."""
    bits = header.bits_stored
    if header.pixel_representation == 1:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def rescaled_range(header: SliceHeader) -> tuple[float, float]:
    """(min, max) of the rescaled values the stored range maps to (slope may be negative)."""
    lo, hi = stored_range(header)
    ends = (lo * header.rescale_slope + header.rescale_intercept,
            hi * header.rescale_slope + header.rescale_intercept)
    return min(ends), max(ends)


def _value_map(header: SliceHeader) -> tuple[float, float]:
    """(slope, intercept) taking stored values to output values, MONOCHROME1 inversion included.

    Inverting the rescaled value within the rescaled range is the same as inverting the stored
    value within the stored range: ``slope * (lo + hi - s) + intercept``.
    """
    slope, intercept = header.rescale_slope, header.rescale_intercept
    if header.photometric_interpretation == "MONOCHROME1":
        lo, hi = stored_range(header)
        return -slope, slope * (lo + hi) + intercept
    return slope, intercept


def _integer_map(header: SliceHeader) -> bool:
    return float(header.rescale_slope).is_integer() and float(header.rescale_intercept).is_integer()


def output_dtype(slices: Sequence[SliceHeader]) -> np.dtype:
    """The smallest type that holds every rescaled value of these slices exactly.

    The rule: when every slice's slope and intercept are integers, take the union of the rescaled
    ranges of the stored-bit ranges (``stored_range`` / ``rescaled_range``; MONOCHROME1 inversion
    maps each range onto itself) and return the first of uint8, int8, uint16, int16, int32 that
    holds it; a range wider than int32 gives float64 (exact below 2**53). Otherwise the values are
    fractional: float32, or float64 when a slice stores more than 24 bits (float32's significand).
    """
    if not slices:
        raise ValueError("output_dtype needs at least one slice")
    if not all(_integer_map(s) for s in slices):
        wide = any(s.bits_stored > _FLOAT32_EXACT_BITS for s in slices)
        return np.dtype(np.float64 if wide else np.float32)
    ranges = [rescaled_range(s) for s in slices]
    lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
    for dtype in _INTEGER_TYPES:
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return dtype
    return np.dtype(np.float64)


def value_dtype(lo: float, hi: float, loaded: np.dtype, slices: Sequence[SliceHeader]) -> np.dtype:
    """The output type for values actually within [lo, hi] that were loaded as ``loaded``: floats
    stay as they are; integers take the first of uint8, int8, uint16, int16, int32 that holds the
    range and is no narrower than the slices' stored pixels (a CT stored in 16 bits whose rescaled
    values are -1024..3071 is int16, not the int32 its possible range would need)."""
    if loaded.kind not in "iu":
        return loaded
    stored_bytes = max(s.bits_allocated for s in slices) // 8 if slices else 1
    for dtype in _INTEGER_TYPES:
        info = np.iinfo(dtype)
        if dtype.itemsize >= min(stored_bytes, loaded.itemsize) and info.min <= lo and hi <= info.max:
            return dtype
    return loaded


def value_range(pixels: np.ndarray) -> tuple[float, float]:
    """The lowest and highest value in ``pixels`` (NaN ignored; (0, 0) when empty). Slice by slice,
    the minimum and the maximum of each taken while it is in the cache, on threads: one pass over
    memory instead of two."""
    if not pixels.size:
        return 0.0, 0.0
    # fmin and fmax skip NaN (and, unlike nanmin, without a warning for a slice of NaN alone).
    low, high = (functools.partial(np.fmin.reduce, axis=None), functools.partial(np.fmax.reduce, axis=None))
    planes = pixels.reshape(-1, *pixels.shape[-2:]) if pixels.ndim >= 2 else pixels.reshape(1, 1, -1)

    def extremes(part: np.ndarray) -> tuple[float, float]:
        ranges = [(low(p), high(p)) for p in part]
        return low([r[0] for r in ranges]), high([r[1] for r in ranges])

    workers = max(1, min(os.cpu_count() or 1, len(planes), pixels.nbytes // _PARALLEL_RANGE_BYTES))
    if workers == 1:
        lo, hi = extremes(planes)
    else:
        bounds = np.linspace(0, len(planes), workers + 1).astype(int)
        with ThreadPoolExecutor(workers) as pool:  # numpy's reductions release the GIL
            parts = list(pool.map(extremes, [planes[a:b] for a, b in zip(bounds, bounds[1:])]))
        lo, hi = low([p[0] for p in parts]), high([p[1] for p in parts])
    return float(lo), float(hi)


def _check_dtype(dtype: np.dtype, slices: Sequence[SliceHeader]) -> None:
    """Refuse an output type that would change values (rather than round them, for floats)."""
    if dtype.kind == "f":
        return
    if dtype.kind not in "iu":
        raise ValueError(f"output type must be an integer or floating type, not {dtype}")
    if not all(_integer_map(s) for s in slices):
        raise ValueError(f"rescale slope/intercept are not all integers: {dtype} would truncate")
    info = np.iinfo(dtype)
    for s in slices:
        lo, hi = rescaled_range(s)
        if lo < info.min or hi > info.max:
            raise ValueError(f"{s.label}: rescaled range [{lo:g}, {hi:g}] does not fit {dtype}")


# --- from stored values to output values -----------------------------------------------------


def _clear_unused_bits(values: np.ndarray, header: SliceHeader) -> None:
    """Mask (unsigned) or sign-extend (signed) the bits above BitsStored, in place.

    pydicom 2.4's ``pixel_array`` returns them as stored (old overlay bits, garbage); pydicom 3
    clears them itself, and clearing twice changes nothing.
    """
    size = values.dtype.itemsize
    shift = 8 * size - header.bits_stored
    if shift <= 0:
        return
    if header.pixel_representation == 1:
        signed = values.view(f"i{size}")
        signed <<= shift
        signed >>= shift  # arithmetic shift: copies the sign bit down
    else:
        values.view(f"u{size}")[...] &= (1 << header.bits_stored) - 1


def _wrapped(value: float, dtype: np.dtype) -> np.ndarray:
    """An integer constant reduced modulo 2**bits of ``dtype`` (see ``_store``)."""
    return np.array(int(value), dtype=np.int64).astype(dtype)


def _store(values: np.ndarray, target: np.ndarray, header: SliceHeader) -> None:
    """Write the output values of one frame of stored ``values`` into ``target``.

    ``values`` may be ``target`` itself seen as the stored type. Integer targets are computed in
    the target type: integer arithmetic wraps modulo 2**bits, so the result is exact whenever the
    true value fits the target, which ``_check_dtype`` has made sure of. Float targets are computed
    in float64 and rounded once.
    """
    _clear_unused_bits(values, header)
    slope, intercept = _value_map(header)
    if target.dtype.kind == "f":
        np.copyto(target, values * np.float64(slope) + intercept, casting="same_kind")
        return
    if not np.may_share_memory(values, target):
        np.copyto(target, values, casting="unsafe")
    if slope != 1:
        np.multiply(target, _wrapped(slope, target.dtype), out=target)
    if intercept != 0:
        np.add(target, _wrapped(intercept, target.dtype), out=target)


# --- fast path: uncompressed little endian, read from disk -----------------------------------


def _stored_dtype(header: SliceHeader) -> np.dtype:
    kind = "i" if header.pixel_representation == 1 else "u"
    return np.dtype(f"<{kind}{header.bits_allocated // 8}")


def _readable_from_disk(header: SliceHeader) -> bool:
    return (
        not header.mosaic_columns
        and header.transfer_syntax_uid in LITTLE_ENDIAN_NATIVE
        and header.bits_allocated in (8, 16, 32)
        and np.little_endian  # the stored bytes are then the in-memory layout
    )


def _pixel_data_offset(f: io.FileIO, header: SliceHeader, nbytes: int) -> int | None:
    """File offset of the Pixel Data value, or None when the file has no usable native one (for
    headers the scan did not find it for: multi-frame objects, headers from Slicer's database).

    Pixel Data is nearly always the last element, so its header is first looked for right before
    the last ``nbytes`` (plus the pad byte of an odd length). Anything else (trailing padding or
    private elements after it, a defined length longer than needed) is left to pydicom's parser.
    """
    size = os.fstat(f.fileno()).st_size
    padded = nbytes + (nbytes & 1)
    explicit = header.transfer_syntax_uid == EXPLICIT_VR_LITTLE_ENDIAN
    header_size = 12 if explicit else 8
    start = size - padded - header_size
    if start >= 0:
        f.seek(start)
        head = f.read(header_size)
        if explicit:
            found = head[:4] == _PIXEL_DATA_TAG and head[4:8] in (b"OW\0\0", b"OB\0\0")
        else:
            found = head[:4] == _PIXEL_DATA_TAG
        if found and struct.unpack("<I", head[-4:])[0] == padded:
            return start + header_size
    import pydicom

    element = pydicom.dcmread(
        f.name, defer_size=1024, specific_tags=[0x7FE00010], force=True
    ).get_item(0x7FE00010)
    # A value short enough to have been read rather than deferred (e.g. a truncated file) has no
    # raw length: leave it to pydicom, whose error names the file.
    length = getattr(element, "length", None)
    if length is None or length == _UNDEFINED_LENGTH or length < nbytes:
        return None
    # Set by pydicom on the elements it reads from a file, and not declared in its type information.
    tell: int | None = getattr(element, "value_tell", None)
    return tell


def _read_exactly(f: io.FileIO, buffer: np.ndarray) -> int:
    view = buffer.data.cast("B")
    done = 0
    while done < len(view):
        n = f.readinto(view[done:])
        if not n:
            break
        done += n
    return done


def _read_file(path: str, items: list[tuple[int, SliceHeader]], out: np.ndarray) -> bool:
    """Read the frames of one native little-endian file into ``out``; False if it is not one."""
    first = items[0][1]
    stored = _stored_dtype(first)
    frame_bytes = first.rows * first.columns * stored.itemsize
    with open(path, "rb", buffering=0) as f:
        offset = first.pixel_data_offset
        if offset is None:
            offset = _pixel_data_offset(f, first, frame_bytes * max(first.number_of_frames, 1))
        if offset is None:
            return False
        for k, header in items:
            target = out[k]
            direct = (
                target.dtype.kind in "iu"
                and target.dtype.itemsize == stored.itemsize
                and target.flags.c_contiguous
            )
            # Read into the output itself when the sizes match: no extra copy.
            values = target.view(stored) if direct else np.empty(target.shape, stored)
            f.seek(offset + header.frame * frame_bytes)
            if _read_exactly(f, values) != frame_bytes:
                raise PixelDecodeError(f"{header.label}: file ends inside the pixel data")
            _store(values, target, header)
            _unflip(target, header)
    return True


# --- slow path: pydicom ----------------------------------------------------------------------


@functools.cache
def _pydicom3_get_decoder() -> Callable[[str], Any] | None:
    """pydicom 3's ``get_decoder``; None under pydicom 2.4, which has pixel data handlers instead."""
    try:
        from pydicom.pixels import get_decoder
    except ImportError:
        return None
    return get_decoder


def _syntax_name(uid: str) -> str:
    from pydicom.uid import UID

    name = _HTJ2K.get(uid) or UID(uid).name
    return f"{name} ({uid})" if name != uid else uid


def _pydicom2_can_decode(uid: str) -> bool:
    """pydicom 2.4: is there a handler that will decode ``uid``?

    The handlers' own ``is_available()`` looks at the main package only: pylibjpeg without the
    plugin for this syntax, or Pillow built without the codec, pass it and fail when decoding.
    """
    import pydicom
    from pydicom.pixel_data_handlers import pillow_handler
    from pydicom.uid import UID

    for handler in pydicom.config.pixel_data_handlers:
        if not (handler.supports_transfer_syntax(UID(uid)) and handler.is_available()):
            continue
        if handler.HANDLER_NAME == "pylibjpeg":
            from pylibjpeg.utils import get_pixel_data_decoders

            if uid not in get_pixel_data_decoders():
                continue
        if handler.HANDLER_NAME == "Pillow":
            j2k = uid in pillow_handler.PillowJPEG2000TransferSyntaxes
            if not (pillow_handler.HAVE_JPEG2K if j2k else pillow_handler.HAVE_JPEG):
                continue
        return True
    return False


def decoder_available(transfer_syntax_uid: str) -> tuple[bool, str]:
    """Whether the installed pydicom can decode pixel data in this transfer syntax.

    Returns ``(True, "")``, or ``(False, hint)`` where the hint names the syntax and says what to
    install (or that no pydicom decoder exists for it).
    """
    uid = str(transfer_syntax_uid)
    if uid in _NATIVE:
        return True, ""
    import pydicom

    get_decoder = _pydicom3_get_decoder()
    if get_decoder is not None:
        try:
            available = get_decoder(uid).is_available
        except NotImplementedError:
            available = False
    else:
        available = _pydicom2_can_decode(uid)
    if available:
        return True, ""
    name = _syntax_name(uid)
    if uid in _HTJ2K and get_decoder is None:
        return False, (f"{name} needs pydicom 3 or later (this is pydicom {pydicom.__version__}), "
                       f"then: {_OPENJPEG}")
    if uid in _INSTALL:
        return False, f"{name} needs a pixel data decoder: {_INSTALL[uid]}"
    return False, (f"pydicom {pydicom.__version__} has no decoder for {name}; convert the files to "
                   "an uncompressed transfer syntax first (e.g. gdcmconv --raw)")


def _decode_file(path: str, items: list[tuple[int, SliceHeader]], out: np.ndarray) -> None:
    """Decode one file with pydicom (all its frames at once) and store the frames ``items`` use."""
    import pydicom

    ds = pydicom.dcmread(path, force=True)  # the header scan accepted this file
    uid = str(ds.file_meta.get("TransferSyntaxUID", ""))
    available, hint = decoder_available(uid)
    if not available:
        raise PixelDecodeError(f"{path}: cannot decode the pixel data. {hint}")
    try:
        array = ds.pixel_array
    except Exception as exc:  # decoders raise many types; keep the file name with the cause
        raise PixelDecodeError(
            f"{path}: decoding {_syntax_name(uid) or 'the pixel data'} failed: {exc}"
        ) from exc
    first = items[0][1]
    stored = tiles_of(array, first) if first.mosaic_columns else array.reshape(-1, first.rows, first.columns)
    # Native byte order and writable, since the unused bits are cleared in place.
    frames = np.require(stored, dtype=array.dtype.newbyteorder("="), requirements="W")
    for k, header in items:
        if header.frame >= len(frames):
            raise PixelDecodeError(f"{header.label}: the file holds only {len(frames)} frame(s)")
        _store(frames[header.frame], out[k], header)
        _unflip(out[k], header)


def _unflip(target: np.ndarray, header: SliceHeader) -> None:
    """Rows stored backwards (``SliceHeader.flip_rows``) put back in order, in place."""
    if header.flip_rows:
        target[...] = target[::-1].copy()


# --- the entry point -------------------------------------------------------------------------


def _check_slices(slices: Sequence[SliceHeader]) -> None:
    if not slices:
        raise ValueError("load_pixels needs at least one slice")
    shape = (slices[0].rows, slices[0].columns)
    for s in slices:
        if not 0 <= s.frame < max(s.number_of_frames, 1):
            raise ValueError(f"{s.label}: frame {s.frame} of a {s.number_of_frames}-frame object")
        if (s.rows, s.columns) != shape:
            raise ValueError(
                f"{s.label}: {s.rows}x{s.columns} pixels, but {slices[0].label} has "
                f"{shape[0]}x{shape[1]}; slices of one array must share rows and columns"
            )
        if s.samples_per_pixel != 1 or s.photometric_interpretation not in _GREYSCALE:
            raise ValueError(
                f"{s.label}: colour images are not supported (SamplesPerPixel "
                f"{s.samples_per_pixel}, {s.photometric_interpretation}); only MONOCHROME1/2"
            )


def _load_file(path: str, items: list[tuple[int, SliceHeader]], out: np.ndarray) -> None:
    if not (_readable_from_disk(items[0][1]) and _read_file(path, items, out)):
        _decode_file(path, items, out)


def load_pixels(
    slices: Sequence[SliceHeader],
    *,
    dtype: npt.DTypeLike | None = None,
    out: np.ndarray | None = None,
    workers: int | None = None,
) -> np.ndarray:
    """Rescaled pixel values of ``slices`` as one array indexed [slice, row, column].

    ``dtype`` defaults to ``output_dtype(slices)``; an integer type too narrow for the rescaled
    values is refused (ValueError). ``out``, when given, is filled and returned (shape
    ``(len(slices), rows, columns)``). Each file is opened or decoded once, however many of its
    frames are used; files are processed by ``workers`` threads (default ``min(8, cpu count)``).
    Raises ``ValueError`` for slices of different sizes or colour images and
    ``PixelDecodeError`` when a file's pixel data cannot be decoded.
    """
    _check_slices(slices)
    shape = (len(slices), slices[0].rows, slices[0].columns)
    if out is None:
        out = np.empty(shape, np.dtype(dtype) if dtype is not None else output_dtype(slices))
    elif out.shape != shape:
        raise ValueError(f"out has shape {out.shape}, expected {shape}")
    elif dtype is not None and np.dtype(dtype) != out.dtype:
        raise ValueError(f"dtype {np.dtype(dtype)} differs from out.dtype {out.dtype}")
    _check_dtype(out.dtype, slices)

    by_file: dict[str, list[tuple[int, SliceHeader]]] = {}
    for k, header in enumerate(slices):
        by_file.setdefault(header.path, []).append((k, header))

    workers = min(workers or min(8, os.cpu_count() or 1), len(by_file))
    if workers <= 1:
        for path, items in by_file.items():
            _load_file(path, items, out)
        return out
    # File reads and numpy release the GIL, so threads overlap I/O and arithmetic.
    with ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(_load_file, path, items, out) for path, items in by_file.items()]
        try:
            for future in futures:
                future.result()
        finally:
            for future in futures:
                future.cancel()
    return out
