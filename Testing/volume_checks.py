"""Reading the volumes this package writes back, and checking them against the phantoms' encoding.

Every phantom the convert tests write has an oblique coordinate encoding (value = 10 * ENCODING . p
at the pixel centre p, LPS mm), so a voxel's value says where its data came from in all three
directions. ``read_nrrd`` is a small independent reader of the NRRD files written here;
``encoding_error`` compares every voxel holding data with the encoding at its own centre.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
from pathlib import Path

import numpy as np
import pydicom

from irregular_series.testing.synthetic import Encoding

from phantoms import CASES, Phantom

ENCODING = Encoding(axis=(0.2, -0.3, 1.0), scale=10.0)
ROUNDING = 1.0  # input and output values are int16: 0.5 each
COPY_ROUNDING = 0.5  # a copied pixel carries the input rounding only

_NRRD_TYPES = {"signed char": "i1", "uchar": "u1", "short": "<i2", "ushort": "<u2", "int": "<i4",
               "uint": "<u4", "float": "<f4", "double": "<f8"}


# --- reading the files back ------------------------------------------------------------------


@dataclasses.dataclass
class NrrdFile:
    array: np.ndarray  # [k, j, i]
    index_to_lps: np.ndarray
    header: dict[str, str]
    path: Path

    @property
    def record(self) -> dict:
        """The file's entry in the ``report.json`` beside it ({} when there is none)."""
        report = self.path.with_name("report.json")
        if report.exists():
            for output in json.loads(report.read_text())["outputs"]:
                if Path(output["path"]) == self.path:
                    return output
        return {}

    @property
    def background(self) -> float | None:
        """The background value the report gives (None: no voxel is background)."""
        return self.record.get("background")


def read_nrrd(path: str | Path) -> NrrdFile:
    """A minimal reader for the attached-header NRRD files this package writes (raw or gzip,
    little endian, 3D, LPS space)."""
    data = Path(path).read_bytes()
    head, _, body = data.partition(b"\n\n")
    lines = head.decode("utf-8").splitlines()
    assert lines[0].startswith("NRRD")
    header = {}
    for line in lines[1:]:
        if line.startswith("#") or ":=" in line:
            continue
        key, _, value = line.partition(": ")
        header[key] = value
    assert header["space"] == "left-posterior-superior" and header["endian"] == "little"
    if header["encoding"] == "gzip":
        body = gzip.decompress(body)
    sizes = [int(v) for v in header["sizes"].split()]
    array = np.frombuffer(body, _NRRD_TYPES[header["type"]]).reshape(sizes[::-1])
    vectors = [[float(x) for x in v.strip("()").split(",")] for v in header["space directions"].split()]
    matrix = np.eye(4)
    matrix[:3, :3] = np.array(vectors).T
    matrix[:3, 3] = [float(x) for x in header["space origin"].strip("()").split(",")]
    return NrrdFile(array, matrix, header, Path(path))


def voxel_centres_lps(shape_kji, index_to_lps) -> np.ndarray:
    """(K, J, I, 3) LPS centres of every voxel."""
    k, j, i = np.indices(shape_kji)
    index = np.stack([i, j, k, np.ones_like(i)], axis=-1).astype(float)
    return (index @ np.asarray(index_to_lps).T)[..., :3]


def data_voxels(volume: NrrdFile) -> np.ndarray:
    """Voxels that hold data: 1 in the mask written beside the volume (``--mask``), else every
    voxel that is not the background value the report gives."""
    mask_path = volume.path.with_name(volume.path.name.replace(".nrrd", "_mask.nrrd"))
    if mask_path.exists():
        return read_nrrd(mask_path).array.astype(bool)
    if volume.background is None:
        return np.ones(volume.array.shape, bool)
    return volume.array != volume.background


def source_positions_mm(volume: NrrdFile) -> np.ndarray:
    """Positions along the normal of the slices the volume was made of, from the report."""
    record = volume.record
    report = json.loads(volume.path.with_name("report.json").read_text())
    (stack,) = [st for series in report["series"] if series["series_instance_uid"] == record["series_instance_uid"]
                for st in series["stacks"] if st["id"] == record["stack"]]
    labels = [f["path"] if f["frame"] is None else f"{f['path']}#{f['frame']}" for f in stack["files"]]
    used = set(record["source_files"])
    return np.array([z for label, z in zip(labels, stack["positions_mm"]) if label in used])


def encoding_error(volume: NrrdFile, encoding: Encoding = ENCODING, *, carried: bool = False) -> float:
    """Largest |voxel value - encoding at the voxel's own centre| over the voxels holding data.

    Planes the report lists as extrapolated hold their slice's values carried along k. With
    ``carried``, so may any voxel that only one of its plane's two slices covers (the edges of
    deskewed tilted slices): its value must then be the encoding carried along k from one of them."""
    valid = data_voxels(volume)
    assert valid.any()
    centres = voxel_centres_lps(volume.array.shape, volume.index_to_lps)
    steps = volume.index_to_lps[:3, :3]
    normal = np.cross(steps[:, 0], steps[:, 1])
    normal /= np.linalg.norm(normal)
    k_axis = steps[:, 2] / np.linalg.norm(steps[:, 2])
    k_dot_n = float(k_axis @ normal)
    for plane in volume.record.get("extrapolated_planes", []):
        centres[plane["plane"]] -= plane["offset_mm"] / k_dot_n * k_axis
    residual = volume.array.astype(float) - encoding.values(centres)
    error = np.abs(residual)
    if carried:
        per_mm = float(encoding.values(k_axis[None, :])[0] - encoding.values(np.zeros((1, 3)))[0])
        z = source_positions_mm(volume)
        for m in range(volume.array.shape[0]):
            at = float(centres[m, 0, 0] @ normal)
            a = int(np.clip(np.searchsorted(z, at) - 1, 0, len(z) - 1))
            for s in {a, min(a + 1, len(z) - 1)}:
                error[m] = np.minimum(error[m], np.abs(residual[m] + (at - z[s]) / k_dot_n * per_mm))
    return float(error[valid].max())


@dataclasses.dataclass(frozen=True)
class DicomPlacement:
    """Where a file's header puts its pixels, read with pydicom (none of this package's reader):
    the first pixel's centre and the unit directions along a row and down a column (LPS mm), the
    distances between columns and between rows (mm), and the matrix size."""

    ipp: np.ndarray
    along_row: np.ndarray
    down_column: np.ndarray
    between_columns: float
    between_rows: float
    rows: int
    columns: int

    @classmethod
    def of(cls, path: str | Path) -> DicomPlacement:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        iop = np.array([float(v) for v in ds.ImageOrientationPatient])
        between_rows, between_columns = (float(v) for v in ds.PixelSpacing)
        return cls(np.array([float(v) for v in ds.ImagePositionPatient]), iop[:3], iop[3:], between_columns,
                   between_rows, int(ds.Rows), int(ds.Columns))


def tree_digest(root: Path) -> str:
    """Names, sizes and contents of every file under ``root``."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def encoded(case: Phantom | str, **series_fields) -> Phantom:
    phantom = CASES[case]() if isinstance(case, str) else case
    series = dataclasses.replace(phantom.series, encoding=ENCODING, **series_fields)
    return dataclasses.replace(phantom, series=series)


MPEG2 = "1.2.840.10008.1.2.4.100"  # no pydicom decoder exists for it


def recompress_as_mpeg2(path: Path) -> None:
    """Rewrite a file's pixel data as (meaningless) MPEG-2: a compressed series nobody here can decode."""
    from pydicom.encaps import encapsulate

    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = MPEG2
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + bytes(60)])
    ds["PixelData"].VR = "OB"
    if int(pydicom.__version__.split(".")[0]) < 3:
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.save_as(path, write_like_original=False)
    else:
        ds.save_as(path, enforce_file_format=True)
