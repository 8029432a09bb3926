"""Just enough NRRD and NIfTI-1 reading to score what each converter wrote: the voxel array indexed
[k, j, i] and the 4x4 matrix taking (i, j, k, 1) to LPS mm. Independent of the project's writers
on purpose (a benchmark must not grade ours with our own code)."""

from __future__ import annotations

import gzip
import re
import struct
from pathlib import Path

import numpy as np

LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_NRRD_TYPES = {"short": "i2", "int16": "i2", "signed short": "i2", "ushort": "u2", "unsigned short": "u2",
               "uint16": "u2", "int": "i4", "int32": "i4", "float": "f4", "double": "f8",
               "uchar": "u1", "unsigned char": "u1", "uint8": "u1"}
_NIFTI_TYPES = {2: "u1", 4: "i2", 8: "i4", 16: "f4", 64: "f8", 256: "i1", 512: "u2"}


def read_volume(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(voxels [k, j, i], index_to_lps 4x4) of a .nrrd or .nii file."""
    if path.suffix == ".nrrd":
        return read_nrrd(path)
    if path.suffix == ".nii":
        return read_nifti(path)
    raise ValueError(f"{path}: not .nrrd or .nii")


def read_nrrd(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = path.read_bytes()
    end = raw.index(b"\n\n")
    fields = {}
    for line in raw[:end].decode("latin-1").splitlines()[1:]:
        if ":=" in line or line.startswith("#") or ":" not in line:
            continue
        key, value = line.split(":", 1)
        fields[key.strip().lower()] = value.strip()
    sizes = [int(v) for v in fields["sizes"].split()]
    if len(sizes) != 3:
        raise ValueError(f"{path}: {len(sizes)}-D NRRD, expected 3-D")
    dtype = np.dtype(_NRRD_TYPES[fields["type"].lower()]).newbyteorder(
        "<" if fields.get("endian", "little") == "little" else ">")
    payload = raw[end + 2:]
    encoding = fields.get("encoding", "raw")
    if encoding in ("gzip", "gz"):
        payload = gzip.decompress(payload)
    elif encoding != "raw":
        raise ValueError(f"{path}: NRRD encoding {encoding!r} not supported here")
    voxels = np.frombuffer(payload, dtype=dtype, count=int(np.prod(sizes))).reshape(sizes[::-1])
    directions = [[float(x) for x in v.split(",")] for v in re.findall(r"\(([^)]*)\)", fields["space directions"])]
    origin = [float(x) for x in re.findall(r"\(([^)]*)\)", fields["space origin"])[0].split(",")]
    matrix = np.eye(4)
    matrix[:3, :3] = np.array(directions).T
    matrix[:3, 3] = origin
    space = fields.get("space", "left-posterior-superior").lower()
    if space in ("right-anterior-superior", "ras"):
        matrix = LPS_FROM_RAS @ matrix
    elif space not in ("left-posterior-superior", "lps"):
        raise ValueError(f"{path}: NRRD space {space!r} not supported here")
    return voxels, matrix


def read_nifti(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = path.read_bytes()
    if struct.unpack("<i", raw[:4])[0] != 348:
        raise ValueError(f"{path}: not a little-endian NIfTI-1 file")
    dims = struct.unpack("<8h", raw[40:56])
    if dims[0] < 3 or any(d > 1 for d in dims[4:dims[0] + 1]):
        raise ValueError(f"{path}: {dims[0]}-D NIfTI, expected 3-D")
    datatype = struct.unpack("<h", raw[70:72])[0]
    vox_offset = int(struct.unpack("<f", raw[108:112])[0])
    slope, intercept = struct.unpack("<2f", raw[112:120])
    srow = np.array(struct.unpack("<12f", raw[280:328]), dtype=float).reshape(3, 4)
    shape = dims[1:4]
    voxels = np.frombuffer(raw, dtype=np.dtype(_NIFTI_TYPES[datatype]).newbyteorder("<"),
                           count=int(np.prod(shape)), offset=vox_offset).reshape(shape[::-1])
    if slope not in (0.0, 1.0) or intercept != 0.0:
        voxels = voxels * (slope or 1.0) + intercept
    matrix = np.eye(4)
    matrix[:3] = srow
    return voxels, LPS_FROM_RAS @ matrix


def geometry_error_mm(voxels: np.ndarray, index_to_lps: np.ndarray, encode, mm_per_unit: float,
                      stride: int = 4, background: float = -32768) -> dict:
    """Compare each sampled voxel with the value the phantom has at the voxel's LPS centre.

    ``encode`` maps LPS points (..., 3) to values; ``mm_per_unit`` turns a value difference into mm
    along the encoding gradient. Voxels equal to ``background`` (blank gaps) are left out.
    """
    k_count, j_count, i_count = voxels.shape
    j, i = np.meshgrid(np.arange(0, j_count, stride), np.arange(0, i_count, stride), indexing="ij")
    errors, blank = [], 0
    for k in range(k_count):
        ijk1 = np.stack([i, j, np.full_like(i, k), np.ones_like(i)], axis=-1).astype(float)
        points = (ijk1 @ index_to_lps.T)[..., :3]
        got = voxels[k, j, i].astype(float)
        keep = got != background
        blank += int((~keep).sum())
        errors.append(np.abs(got[keep] - encode(points[keep])))
    err = np.concatenate(errors) * mm_per_unit
    return {"mean_mm": float(err.mean()), "p99_mm": float(np.percentile(err, 99)),
            "max_mm": float(err.max()), "blank": blank, "slices": k_count}
