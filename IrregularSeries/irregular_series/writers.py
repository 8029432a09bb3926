"""NRRD and NIfTI-1 writers for volumes on an arbitrary (even sheared) index-to-LPS grid.

A volume is a numpy array indexed ``[k, j, i]`` (slice, row, column, as
``slicer.util.arrayFromVolume``) plus a 4x4 ``index_to_lps`` matrix taking homogeneous
``(i, j, k, 1)`` to LPS mm: columns 0..2 are the i, j, k steps in mm, column 3 the centre of voxel
(0, 0, 0). Both formats store i fastest, which is the C order of ``[k, j, i]``, so voxels are
written as they are. The matrix is written as given, never orthogonalised: a sheared grid (gantry
tilt kept as acquired) stays sheared. Only numpy and the standard library are used.

A *volume series* (``write_volume_series``) is an array ``[t, k, j, i]`` of volumes on one grid
along a fourth axis (time, say): NIfTI-1 with that axis fourth (``dim[4]``, its step in
``pixdim[4]``, its unit in ``xyzt_units``); NRRD with a fourth ``list`` axis whose label, unit and
every index value are written as Slicer's volume sequence files have them (``labels``, ``units``,
``axis 3 index type`` and ``axis 3 index values``), so Slicer reads the file as a sequence.
"""

from __future__ import annotations

import contextlib
import gzip
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .orientation import LPS_TO_RAS
from .outputs import atomic_write
from .runlog import DigestingStream

WRITE_BYTES = 8 << 20
"""Voxels handed to the file (and to its digest) per write."""

GZIP_LEVEL = 1
"""zlib level for compressed output: the fastest, trading a few percent of size for speed."""

QFORM_ORTHOGONALITY = 1e-6
"""Largest ``|R^T R - I|`` entry (R: the unit step directions) for which the NIfTI qform, a
rotation plus voxel sizes, can stand for the grid. Above it ``qform_code`` is 0 and only the sform
carries the geometry."""


# numpy dtype name -> (NRRD type, NIfTI datatype code); NIfTI bitpix is the item size in bits.
_TYPES = {
    "int8": ("signed char", 256),
    "uint8": ("uchar", 2),
    "int16": ("short", 4),
    "uint16": ("ushort", 512),
    "int32": ("int", 8),
    "uint32": ("uint", 768),
    "float32": ("float", 16),
    "float64": ("double", 64),
}

_NRRD_KEY = re.compile(r"[A-Za-z0-9_.\-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# NIfTI-1 header (348 bytes), field by field as in nifti1.h; little-endian.
_NIFTI1 = struct.Struct("<i10s18sihcc8h3f4h8f3fhcc4f2i80s24s2h6f12f16s4s")
_NIFTI_VOX_OFFSET = 352  # header + the 4-byte extension flag (no extensions)
_NIFTI_UNITS_MM = 2
_NIFTI_TIME_UNITS = {"s": 8, "ms": 16, "us": 24}
_NIFTI_XFORM_SCANNER_ANAT = 1
_NIFTI_MAX_DIM = 32767  # dim[] is int16


def write_nrrd(
    path: Path,
    array_kji: np.ndarray,
    index_to_lps: np.ndarray,
    *,
    force: bool = False,
    compress: bool = False,
    extra: dict[str, str] | None = None,
    before_rename: Callable[[], object] | None = None,
) -> str:
    """Write an attached-header NRRD 0004 file in LPS space (``before_rename``: see ``atomic_write``);
    returns the file's ``content_digest``.

    ``extra`` adds ``key:=value`` lines. Keys must match ``[A-Za-z0-9_.-]+``; in values a backslash
    and a newline are escaped as the NRRD format defines (``\\\\``, ``\\n``) and other control
    characters become spaces, so header text can never start a new header line.
    """
    array, matrix, types = _checked(array_kji, index_to_lps)
    return _write_nrrd(Path(path), array, matrix, types[0], None, force=force, compress=compress, extra=extra,
                       before_rename=before_rename)


@dataclass(frozen=True)
class SeriesAxisHeader:
    """The fourth axis of a volume series file: its ``label`` ("time"), ``unit`` ("s", "ms" or ""),
    one index value per volume, and the ``step`` a NIfTI header holds for it (``pixdim[4]``)."""

    label: str
    unit: str
    values: tuple[float, ...]
    step: float


def _write_nrrd(path: Path, array: np.ndarray, matrix: np.ndarray, nrrd_type: str, axis: SeriesAxisHeader | None,
                *, force: bool, compress: bool, extra: dict[str, str] | None,
                before_rename: Callable[[], object] | None = None) -> str:
    sizes = " ".join(str(n) for n in reversed(array.shape))
    directions = " ".join(_nrrd_vector(matrix[:3, a]) for a in range(3))
    lines = [
        "NRRD0004",
        f"type: {nrrd_type}",
        f"dimension: {array.ndim}",
        "space: left-posterior-superior",
        f"sizes: {sizes}",
        "space directions: " + directions + (" none" if axis else ""),
        "kinds: domain domain domain" + (" list" if axis else ""),
    ]
    if axis is not None:
        lines += [f'labels: "" "" "" {_nrrd_quoted(axis.label)}', f'units: "" "" "" {_nrrd_quoted(axis.unit)}']
    lines += [
        "endian: little",
        f"encoding: {'gzip' if compress else 'raw'}",
        f"space origin: {_nrrd_vector(matrix[:3, 3])}",
    ]
    lines += [f"{_nrrd_key(key)}:={_nrrd_value(value)}" for key, value in (extra or {}).items()]
    if axis is not None:  # Slicer's keys (with spaces, which keys from callers may not have)
        lines += ["axis 3 index type:=numeric", "axis 3 index values:=" + " ".join(f"{v:.9g}" for v in axis.values)]
    header = ("\n".join(lines) + "\n\n").encode("utf-8")

    def write(out: DigestingStream) -> None:
        out.write(header)
        with _maybe_gzip(out, compress) as voxels:
            _write_voxels(voxels, array)

    return _digested_write(path, write, force=force, before_rename=before_rename)


def write_nifti(
    path: Path, array_kji: np.ndarray, index_to_lps: np.ndarray, *, force: bool = False,
    before_rename: Callable[[], object] | None = None,
) -> str:
    """Write a single-file NIfTI-1 volume (``.nii``, or gzipped ``.nii.gz``; ``before_rename``: see
    ``atomic_write``); returns the file's ``content_digest``.

    The RAS affine ``diag(-1, -1, 1, 1) @ index_to_lps`` goes into the sform (code 1, scanner) as
    given. The qform holds the same affine as rotation, voxel sizes and qfac when the step
    directions are orthogonal; otherwise (sheared grids) ``qform_code`` is 0. NIfTI-1 stores both
    in float32, about 7 significant digits.
    """
    name = Path(path).name.lower()
    if not name.endswith((".nii", ".nii.gz")):
        raise ValueError(f"NIfTI file name must end in .nii or .nii.gz: {path}")
    array, matrix, (_, datatype) = _checked(array_kji, index_to_lps)
    return _write_nifti(Path(path), array, matrix, datatype, None, force=force, before_rename=before_rename)


def _write_nifti(path: Path, array: np.ndarray, matrix: np.ndarray, datatype: int, axis: SeriesAxisHeader | None,
                 *, force: bool, before_rename: Callable[[], object] | None = None) -> str:
    if max(array.shape) > _NIFTI_MAX_DIM:
        raise ValueError(f"NIfTI-1 cannot hold more than {_NIFTI_MAX_DIM} voxels along an axis")
    header = _nifti1_header(array, LPS_TO_RAS @ matrix, datatype, axis)

    def write(out: DigestingStream) -> None:
        with _maybe_gzip(out, path.name.lower().endswith(".gz")) as voxels:
            voxels.write(header)
            _write_voxels(voxels, array)

    return _digested_write(path, write, force=force, before_rename=before_rename)


def _digested_write(path: Path, write: Callable[[DigestingStream], None], *, force: bool,
                    before_rename: Callable[[], object] | None) -> str:
    """``atomic_write`` through ``write``; the ``content_digest`` of the file, taken as it was written."""
    digests: list[str] = []

    def digested(stream: BinaryIO) -> None:
        out = DigestingStream(stream)
        write(out)
        digests.append(out.digest)

    atomic_write(Path(path), digested, force=force, before_rename=before_rename)
    return digests[0]


def write_volume(
    path: Path,
    array_kji: np.ndarray,
    index_to_lps: np.ndarray,
    *,
    force: bool = False,
    compress: bool = False,
    before_rename: Callable[[], object] | None = None,
) -> str:
    """Write ``.nrrd``, ``.nii`` or ``.nii.gz``, chosen by the suffix; returns the file's
    ``content_digest``.

    ``compress`` selects gzip encoding for NRRD; NIfTI compression follows the suffix, so
    ``compress=True`` with ``.nii`` is refused rather than ignored. ``before_rename``: see
    ``atomic_write``.
    """
    name = Path(path).name.lower()
    if name.endswith(".nrrd"):
        return write_nrrd(path, array_kji, index_to_lps, force=force, compress=compress, before_rename=before_rename)
    if name.endswith(".nii.gz") or (name.endswith(".nii") and not compress):
        return write_nifti(path, array_kji, index_to_lps, force=force, before_rename=before_rename)
    if name.endswith(".nii"):
        raise ValueError(f"NIfTI compression follows the suffix: name the file .nii.gz ({path})")
    raise ValueError(f"unsupported volume format (use .nrrd, .nii or .nii.gz): {path}")


def write_volume_series(
    path: Path,
    array_tkji: np.ndarray,
    index_to_lps: np.ndarray,
    axis: SeriesAxisHeader,
    *,
    force: bool = False,
    compress: bool = False,
) -> str:
    """Write volumes on one grid along a fourth axis (``array_tkji[t]`` is volume t) as ``.nrrd``,
    ``.nii`` or ``.nii.gz``, chosen by the suffix (see the module text); returns the file's
    ``content_digest``."""
    name = Path(path).name.lower()
    array, matrix, (nrrd_type, datatype) = _checked(array_tkji, index_to_lps, ndim=4)
    if len(axis.values) != array.shape[0]:
        raise ValueError(f"{len(axis.values)} index values for {array.shape[0]} volumes")
    if name.endswith(".nrrd"):
        return _write_nrrd(Path(path), array, matrix, nrrd_type, axis, force=force, compress=compress, extra=None)
    if name.endswith(".nii.gz") or (name.endswith(".nii") and not compress):
        return _write_nifti(Path(path), array, matrix, datatype, axis, force=force)
    raise ValueError(f"unsupported volume series format (use .nrrd, .nii or .nii.gz): {path}")


def _checked(
    array_kji: np.ndarray, index_to_lps: np.ndarray, ndim: int = 3
) -> tuple[np.ndarray, np.ndarray, tuple[str, int]]:
    """The array, the matrix as float64, and the type codes; refuses what no reader could use."""
    array = np.asarray(array_kji)
    if array.ndim != ndim or 0 in array.shape:
        what = "3D [k, j, i]" if ndim == 3 else "4D [t, k, j, i]"
        raise ValueError(f"expected a non-empty {what} array, got shape {array.shape}")
    types = _TYPES.get(array.dtype.name)
    if types is None:
        raise TypeError(f"cannot write voxel type {array.dtype}; supported: {', '.join(_TYPES)}")
    matrix = np.asarray(index_to_lps, dtype=np.float64)
    if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)):
        raise ValueError("index_to_lps must be a finite 4x4 matrix")
    if not np.array_equal(matrix[3], [0.0, 0.0, 0.0, 1.0]):
        raise ValueError(f"index_to_lps must be affine (last row 0 0 0 1): {matrix[3].tolist()}")
    if np.linalg.matrix_rank(matrix[:3, :3]) < 3:
        raise ValueError("index_to_lps has degenerate step vectors (rank < 3)")
    return array, matrix, types


def _write_voxels(stream: DigestingStream | gzip.GzipFile, array: np.ndarray) -> None:
    """Little-endian voxels, i fastest, up to ``WRITE_BYTES`` of whole planes at a time (one plane
    when a plane is larger): a big-endian or strided input costs that much memory, not a copy of
    the volume. Few, large writes, because after each one this thread must get the GIL back from
    the content check running beside it, which can take up to the switch interval (5 ms)."""
    little = array.dtype.newbyteorder("<")
    planes = array.reshape((-1,) + array.shape[-2:])
    per_write = max(1, WRITE_BYTES // planes[0].nbytes)  # _checked refuses empty arrays
    for first in range(0, len(planes), per_write):
        stream.write(np.ascontiguousarray(planes[first:first + per_write], dtype=little).data.cast("B"))


def _maybe_gzip(stream: DigestingStream,
                compress: bool) -> contextlib.AbstractContextManager[DigestingStream | gzip.GzipFile]:
    if not compress:
        return contextlib.nullcontext(stream)
    # filename="" and mtime=0: no temporary name or time stamp in the gzip header.
    return gzip.GzipFile(filename="", fileobj=stream, mode="wb", compresslevel=GZIP_LEVEL, mtime=0)


def _nrrd_vector(values: np.ndarray) -> str:
    # repr() of a Python float is the shortest text that reads back to the same double.
    return "(" + ",".join(repr(float(v)) for v in values) + ")"


def _nrrd_quoted(text: str) -> str:
    return '"' + _CONTROL.sub(" ", text.replace("\\", "").replace('"', "'")) + '"'


def _nrrd_key(key: str) -> str:
    if not _NRRD_KEY.fullmatch(key):
        raise ValueError(f"NRRD key must match [A-Za-z0-9_.-]+, got {key!r}")
    return key


def _nrrd_value(value: str) -> str:
    escaped = str(value).replace("\\", "\\\\").replace("\n", "\\n")
    return _CONTROL.sub(" ", escaped)


def _nifti1_header(array: np.ndarray, affine_ras: np.ndarray, datatype: int, axis: SeriesAxisHeader | None) -> bytes:
    size_k, size_j, size_i = array.shape[-3:]
    size_t = array.shape[0] if axis is not None else 1
    time_units = _NIFTI_TIME_UNITS.get(axis.unit, 0) if axis is not None else 0
    descrip = b"IrregularSeries" if axis is None else f"IrregularSeries; axis 4: {axis.label}"[:79].encode("ascii", "replace")
    steps = affine_ras[:3, :3]
    voxel_mm = np.linalg.norm(steps, axis=0)
    qfac = -1.0 if np.linalg.det(steps) < 0 else 1.0
    rotation = steps / voxel_mm
    orthogonal = np.abs(rotation.T @ rotation - np.eye(3)).max() <= QFORM_ORTHOGONALITY
    # A qform is a proper rotation; a left-handed grid flips k through qfac = pixdim[0].
    quaternion = _quaternion_bcd(rotation * [1.0, 1.0, qfac]) if orthogonal else (0.0, 0.0, 0.0)
    fields = (
        348, b"", b"", 0, 0, b"r", b"\0",
        array.ndim, size_i, size_j, size_k, size_t, 1, 1, 1,  # dim
        0.0, 0.0, 0.0,  # intent_p1..p3
        0, datatype, array.dtype.itemsize * 8, 0,  # intent_code, datatype, bitpix, slice_start
        qfac, *voxel_mm, axis.step if axis is not None else 1.0, 1.0, 1.0, 1.0,  # pixdim
        float(_NIFTI_VOX_OFFSET), 1.0, 0.0,  # vox_offset, scl_slope, scl_inter
        0, b"\0", bytes([_NIFTI_UNITS_MM | time_units]),  # slice_end, slice_code, xyzt_units
        0.0, 0.0, 0.0, axis.values[0] if axis is not None else 0.0,  # cal_max, cal_min, slice_duration, toffset
        0, 0,  # glmax, glmin
        descrip, b"",  # descrip, aux_file
        _NIFTI_XFORM_SCANNER_ANAT if orthogonal else 0, _NIFTI_XFORM_SCANNER_ANAT,
        *quaternion, *affine_ras[:3, 3],
        *affine_ras[0], *affine_ras[1], *affine_ras[2],  # srow_x, srow_y, srow_z
        b"", b"n+1\0",
    )
    return _NIFTI1.pack(*fields) + bytes(_NIFTI_VOX_OFFSET - _NIFTI1.size)


def _quaternion_bcd(rotation: np.ndarray) -> tuple[float, float, float]:
    """(b, c, d) of the unit quaternion of a proper rotation, with a = sqrt(1 - b² - c² - d²)
    >= 0 as NIfTI defines it. Branches on the largest diagonal term for numerical stability."""
    r = rotation
    trace = np.trace(r)
    if trace > 0:
        s = 2.0 * np.sqrt(1.0 + trace)
        q = (s / 4, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s)
    elif r[0, 0] >= r[1, 1] and r[0, 0] >= r[2, 2]:
        s = 2.0 * np.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2])
        q = ((r[2, 1] - r[1, 2]) / s, s / 4, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s)
    elif r[1, 1] >= r[2, 2]:
        s = 2.0 * np.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2])
        q = ((r[0, 2] - r[2, 0]) / s, (r[0, 1] + r[1, 0]) / s, s / 4, (r[1, 2] + r[2, 1]) / s)
    else:
        s = 2.0 * np.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1])
        q = ((r[1, 0] - r[0, 1]) / s, (r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, s / 4)
    sign = -1.0 if q[0] < 0 else 1.0
    return float(sign * q[1]), float(sign * q[2]), float(sign * q[3])
