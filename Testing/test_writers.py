"""Output naming, atomic writes and the NRRD / NIfTI writers, checked with real readers.

NRRD files are read back with Slicer's own storage nodes (the slicer-core wheel), NIfTI files with
nibabel; tests that need one of them skip visibly when it is not installed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from irregular_series.outputs import atomic_write, output_path, safe_stem
from irregular_series.runlog import content_digest
from irregular_series.writers import SeriesAxisHeader, write_nifti, write_nrrd, write_volume, write_volume_series

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
SHAPE_KJI = (5, 6, 7)  # 7 columns, 6 rows, 5 slices: every axis distinct, so a swap shows


def _rotation(axis, degrees):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    angle = np.deg2rad(degrees)
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


def _index_to_lps(steps_columns, origin):
    matrix = np.eye(4)
    matrix[:3, :3] = steps_columns
    matrix[:3, 3] = origin
    return matrix


# Oblique, anisotropic, with an origin that is not a round binary number.
OBLIQUE = _index_to_lps(_rotation([1, 2, 3], 31) * [0.8, 0.6, 2.5], [-101.3, 37.7, 12.0625])
# Left-handed (k reversed against row x column): NIfTI needs qfac = -1 for it.
LEFT_HANDED = OBLIQUE @ np.diag([1.0, 1.0, -1.0, 1.0])
# Gantry tilt kept as acquired: the k step leans 17 degrees towards the column direction.
_TILT = np.deg2rad(17)
SHEARED = _index_to_lps(
    np.array([[0.7, 0, 0], [0, 0.7, 2.5 * np.sin(_TILT)], [0, 0, 2.5 * np.cos(_TILT)]]),
    [-120.0, -95.5, -310.25],
)
MATRICES = {"oblique": OBLIQUE, "left_handed": LEFT_HANDED, "sheared": SHEARED}
DTYPES = ["int8", "uint8", "int16", "uint16", "int32", "uint32", "float32", "float64"]


def _volume(dtype) -> np.ndarray:
    """Distinct values per voxel, covering negative values for signed types."""
    values = np.arange(np.prod(SHAPE_KJI)).reshape(SHAPE_KJI)
    if np.dtype(dtype).kind in "if":
        values = values - values.size // 2
    if np.dtype(dtype).kind == "f":
        values = values * 0.25
    return values.astype(dtype)


# --------------------------------------------------------------------------------------------
# names
# --------------------------------------------------------------------------------------------
HOSTILE = [
    "../../etc/passwd",
    "/abs",
    "/",
    "a\\b",
    "..\\..\\windows",
    "CON",
    "con.txt",
    "LPT1",
    "\x00",
    "a\x00b",
    "",
    "   ",
    ".",
    "..",
    "...",
    ".hidden",
    "-rf",
    "~/x",
    "x" * 1000,
    "é" * 300,
    "\n\r\t",
    "C:\\Windows\\system32",
    "名前",
]


@pytest.mark.parametrize("text", HOSTILE, ids=lambda t: repr(t[:20]))
def test_hostile_descriptions_stay_inside_outdir(tmp_path, text):
    stem = safe_stem(text)
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", stem)
    assert ".." not in stem and len(stem) <= 80
    target = output_path(tmp_path, stem, ".nii.gz")
    assert target.parent == tmp_path.resolve()
    atomic_write(target, lambda stream: stream.write(b"x"), force=False)
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


@pytest.mark.parametrize(
    ("text", "stem"),
    [
        ("CT Head  w/o contrast", "CT_Head_w_o_contrast"),
        ("1.2.840.113619.2.55.3", "1.2.840.113619.2.55.3"),
        ("T2_TSE-ax", "T2_TSE-ax"),
        ("a - b", "a_b"),
        ("../../etc/passwd", "etc_passwd"),
        ("Thorax é", "Thorax_e"),
        ("CON", "CON_"),
        ("nul.series", "nul_.series"),
        ("com1", "com1_"),
        ("", "unnamed"),
        ("\x00", "unnamed"),
    ],
)
def test_safe_stem_values(text, stem):
    assert safe_stem(text) == stem


def test_long_stems_are_cut_and_stay_distinct():
    first, second = "A" * 200 + "1", "A" * 200 + "2"
    assert len(safe_stem(first)) == 80 and len(safe_stem(first, max_len=40)) == 40
    assert safe_stem(first) != safe_stem(second)
    assert safe_stem(first) == safe_stem(first)
    with pytest.raises(ValueError, match="max_len"):
        safe_stem("x", max_len=3)


@pytest.mark.parametrize(
    ("stem", "suffix"),
    [
        ("../x", ".nrrd"),
        ("..", ".nrrd"),
        (".", ".nrrd"),
        ("", ".nrrd"),
        ("/abs", ".nrrd"),
        ("a/b", ".nrrd"),
        ("a\\b", ".nrrd"),
        ("a\x00b", ".nrrd"),
        ("x", "nrrd"),
        ("x", "/.nrrd"),
        ("x", ".nr/rd"),
        ("x", ".nrrd\x00"),
        ("x" * 300, ".nrrd"),
    ],
)
def test_output_path_refuses_unsafe_names(tmp_path, stem, suffix):
    with pytest.raises(ValueError):
        output_path(tmp_path, stem, suffix)


def test_output_path_refuses_nul_in_outdir(tmp_path):
    with pytest.raises(ValueError, match="NUL"):
        output_path(Path(f"{tmp_path}\x00evil"), "x", ".nrrd")


def test_output_path_refuses_planted_symlink(tmp_path):
    outdir, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    outdir.mkdir()
    elsewhere.mkdir()
    (outdir / "vol.nrrd").symlink_to(elsewhere / "vol.nrrd")
    with pytest.raises(ValueError, match="outside"):
        output_path(outdir, "vol", ".nrrd")
    loop = outdir / "loop.nrrd"
    loop.symlink_to(loop)
    with pytest.raises(ValueError):
        output_path(outdir, "loop", ".nrrd")


def test_output_path_through_symlinked_outdir(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    target = output_path(link, "vol", ".nrrd")
    assert target == real.resolve() / "vol.nrrd"


# --------------------------------------------------------------------------------------------
# atomic writes
# --------------------------------------------------------------------------------------------
def test_atomic_write_refuses_overwrite_without_force(tmp_path):
    target = tmp_path / "vol.nrrd"
    atomic_write(target, lambda stream: stream.write(b"first"), force=False)
    with pytest.raises(FileExistsError, match="already exists; not overwriting it$") as error:
        atomic_write(target, lambda stream: stream.write(b"second"), force=False)
    assert str(target) in str(error.value)
    assert target.read_bytes() == b"first"
    atomic_write(target, lambda stream: stream.write(b"second"), force=True)
    assert target.read_bytes() == b"second"
    assert [p.name for p in tmp_path.iterdir()] == ["vol.nrrd"]


def test_atomic_write_treats_dangling_symlink_as_existing(tmp_path):
    target = tmp_path / "vol.nrrd"
    target.symlink_to(tmp_path / "missing")
    with pytest.raises(FileExistsError):
        atomic_write(target, lambda stream: stream.write(b"x"), force=False)
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("error", [RuntimeError("disk on fire"), KeyboardInterrupt()])
@pytest.mark.parametrize("existing", [False, True])
def test_atomic_write_leaves_nothing_on_failure(tmp_path, error, existing):
    target = tmp_path / "vol.nrrd"
    if existing:
        target.write_bytes(b"old")

    def failing(stream):
        stream.write(b"half a volume")
        raise error

    with pytest.raises(type(error)):
        atomic_write(target, failing, force=True)
    assert [p.name for p in tmp_path.iterdir()] == (["vol.nrrd"] if existing else [])
    if existing:
        assert target.read_bytes() == b"old"


@pytest.mark.parametrize("advice", ["taken", "refused"])
def test_atomic_write_of_a_big_file_hands_it_to_the_disk_in_parts(tmp_path, monkeypatch, advice):
    """Past 16 MB the file is handed to the disk as it is written (posix_fadvise where there is
    one): every byte still arrives, in order, whatever the sizes of the writes, and a file system
    that refuses the advice costs nothing but the advice."""
    refused = []
    if advice == "refused" and hasattr(os, "posix_fadvise"):
        def refuse(*args):
            refused.append(args)
            raise OSError(95, "Operation not supported")

        monkeypatch.setattr(os, "posix_fadvise", refuse)
    chunks = [bytes([n]) * size for n, size in enumerate([5, 1 << 20, 7 << 20, 13 << 20, 3, 9 << 20])]
    target = tmp_path / "big.raw"

    def write(stream):
        for chunk in chunks:
            stream.write(chunk)

    atomic_write(target, write, force=False)
    assert target.read_bytes() == b"".join(chunks)
    assert len(refused) == (1 if advice == "refused" and hasattr(os, "posix_fadvise") else 0)  # asked once only


def test_atomic_write_into_missing_folder_fails_cleanly(tmp_path):
    with pytest.raises(FileNotFoundError):
        atomic_write(tmp_path / "missing" / "vol.nrrd", lambda stream: None, force=False)
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_respects_umask(tmp_path):
    previous = os.umask(0o027)
    try:
        atomic_write(tmp_path / "vol.nrrd", lambda stream: stream.write(b"x"), force=False)
    finally:
        os.umask(previous)
    assert (tmp_path / "vol.nrrd").stat().st_mode & 0o777 == 0o640


# --------------------------------------------------------------------------------------------
# NRRD, read back by Slicer
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def slicer_scene():
    slicer = pytest.importorskip("slicer", reason="NRRD read-back needs the slicer-core wheel")
    scene = slicer.vtkMRMLScene()
    yield slicer, scene
    scene.Clear(1)


def _read_with_slicer(slicer_scene, path, storage_class):
    """Voxels [k, j, i] and the IJK-to-RAS matrix as Slicer loads them."""
    from vtkmodules.vtkCommonMath import vtkMatrix4x4

    slicer, scene = slicer_scene
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode")
    storage = getattr(slicer, storage_class)()
    storage.SetFileName(str(path))
    assert storage.ReadData(node) == 1, f"{storage_class} could not read {path}"
    matrix = vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return slicer.util.arrayFromVolume(node).copy(), slicer.util.arrayFromVTKMatrix(matrix)


STORAGE_CLASSES = ["vtkMRMLNRRDStorageNode", "vtkMRMLVolumeArchetypeStorageNode"]


@pytest.mark.parametrize("storage_class", STORAGE_CLASSES)
@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("dtype", ["int16", "float32"])
@pytest.mark.parametrize("geometry", ["oblique", "sheared"])
def test_nrrd_read_by_slicer(tmp_path, slicer_scene, storage_class, compress, dtype, geometry):
    array, matrix = _volume(dtype), MATRICES[geometry]
    path = tmp_path / "vol.nrrd"
    write_nrrd(path, array, matrix, compress=compress)
    voxels, ijk_to_ras = _read_with_slicer(slicer_scene, path, storage_class)
    assert voxels.dtype == array.dtype
    np.testing.assert_array_equal(voxels, array)
    np.testing.assert_allclose(ijk_to_ras, LPS_TO_RAS @ matrix, rtol=0, atol=1e-9)


@pytest.mark.parametrize("dtype", DTYPES)
def test_nrrd_every_voxel_type_read_by_slicer(tmp_path, slicer_scene, dtype):
    array = _volume(dtype)
    write_nrrd(tmp_path / "vol.nrrd", array, LEFT_HANDED)
    voxels, ijk_to_ras = _read_with_slicer(slicer_scene, tmp_path / "vol.nrrd", STORAGE_CLASSES[0])
    assert voxels.dtype == array.dtype
    np.testing.assert_array_equal(voxels, array)
    np.testing.assert_allclose(ijk_to_ras, LPS_TO_RAS @ LEFT_HANDED, rtol=0, atol=1e-9)


def _nrrd_header(path) -> dict[str, str]:
    text = path.read_bytes().split(b"\n\n", 1)[0].decode("utf-8")
    lines = text.splitlines()
    assert lines[0] == "NRRD0004"
    return dict(re.split(r":=|: ", line, maxsplit=1) for line in lines[1:])


def test_nrrd_header_keeps_full_precision(tmp_path):
    matrix = SHEARED.copy()
    matrix[:3, 3] += [1e-12, 1 / 3, -2 / 7]
    write_nrrd(tmp_path / "vol.nrrd", _volume("uint8"), matrix)
    header = _nrrd_header(tmp_path / "vol.nrrd")
    assert header["space"] == "left-posterior-superior"
    assert header["sizes"] == "7 6 5"
    assert header["kinds"] == "domain domain domain"
    assert header["encoding"] == "raw" and header["endian"] == "little"
    groups = re.findall(r"\(([^)]*)\)", header["space directions"])
    vectors = [[float(v) for v in group.split(",")] for group in groups]
    origin = [float(v) for v in header["space origin"].strip("()").split(",")]
    assert np.array_equal(np.array(vectors).T, matrix[:3, :3])  # bit for bit
    assert np.array_equal(origin, matrix[:3, 3])


def test_nrrd_extra_fields_cannot_inject_header_lines(tmp_path, slicer_scene):
    slicer, _ = slicer_scene
    hostile = "x\nspace origin: (0,0,0)\r\nback\\slash\x00end"
    path = tmp_path / "vol.nrrd"
    write_nrrd(path, _volume("int16"), OBLIQUE, extra={"IrregularSeries.description": hostile})
    origin = ",".join(repr(float(v)) for v in OBLIQUE[:3, 3])
    assert _nrrd_header(path)["space origin"] == f"({origin})"
    reader = slicer.vtkTeemNRRDReader()
    reader.SetFileName(str(path))
    reader.Update()
    # teem undoes the NRRD escapes; the other control characters were replaced by spaces.
    expected = "x\nspace origin: (0,0,0) \nback\\slash end"
    assert reader.GetHeaderValue("IrregularSeries.description") == expected
    _, ijk_to_ras = _read_with_slicer(slicer_scene, path, "vtkMRMLNRRDStorageNode")
    np.testing.assert_allclose(ijk_to_ras, LPS_TO_RAS @ OBLIQUE, rtol=0, atol=1e-9)


@pytest.mark.parametrize("key", ["", "a b", "a:=b", "line\nbreak"])
def test_nrrd_refuses_bad_keys(tmp_path, key):
    with pytest.raises(ValueError, match="key"):
        write_nrrd(tmp_path / "vol.nrrd", _volume("int16"), OBLIQUE, extra={key: "v"})
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------
# NIfTI, read back by nibabel
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def nib():
    return pytest.importorskip("nibabel", reason="NIfTI read-back needs nibabel")


def _load_nifti(nib, path):
    """The image, its voxels as [k, j, i], and the header exactly as stored in the file (the
    image's own header is a copy that nibabel resets for writing: vox_offset, scl_slope...)."""
    image = nib.load(str(path))
    with nib.openers.ImageOpener(str(path)) as stream:
        stored = nib.Nifti1Header.from_fileobj(stream)
    assert nib.Nifti1Header.diagnose_binaryblock(stored.binaryblock) == ""  # no problem found
    return image, np.asarray(image.dataobj).transpose(2, 1, 0), stored


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
@pytest.mark.parametrize("geometry", ["oblique", "left_handed"])
def test_nifti_orthogonal_read_by_nibabel(tmp_path, nib, suffix, geometry):
    array, matrix = _volume("int16"), MATRICES[geometry]
    path = tmp_path / f"vol{suffix}"
    write_nifti(path, array, matrix)
    if suffix == ".nii.gz":
        assert path.read_bytes()[:2] == b"\x1f\x8b"
    image, voxels, stored = _load_nifti(nib, path)
    np.testing.assert_array_equal(voxels, array)
    affine = LPS_TO_RAS @ matrix
    sform, sform_code = image.header.get_sform(coded=True)
    qform, qform_code = image.header.get_qform(coded=True)
    assert (int(sform_code), int(qform_code)) == (1, 1)
    np.testing.assert_allclose(sform, affine, rtol=0, atol=2e-5)  # float32 in NIfTI-1
    np.testing.assert_allclose(qform, affine, rtol=0, atol=2e-5)
    pixdim = image.header["pixdim"]
    assert pixdim[0] == (-1 if geometry == "left_handed" else 1)
    np.testing.assert_allclose(pixdim[1:4], [0.8, 0.6, 2.5], rtol=1e-6)
    assert (stored["vox_offset"], stored["scl_slope"], stored["scl_inter"]) == (352, 1, 0)
    assert stored.get_xyzt_units() == ("mm", "unknown")


def test_nifti_sheared_has_sform_only(tmp_path, nib):
    array = _volume("float32")
    write_nifti(tmp_path / "vol.nii.gz", array, SHEARED)
    image, voxels, _ = _load_nifti(nib, tmp_path / "vol.nii.gz")
    np.testing.assert_array_equal(voxels, array)
    sform, sform_code = image.header.get_sform(coded=True)
    assert int(sform_code) == 1 and int(image.header["qform_code"]) == 0
    np.testing.assert_allclose(sform, LPS_TO_RAS @ SHEARED, rtol=0, atol=5e-5)
    np.testing.assert_allclose(image.affine, LPS_TO_RAS @ SHEARED, rtol=0, atol=5e-5)
    np.testing.assert_allclose(image.header["pixdim"][1:4], [0.7, 0.7, 2.5], rtol=1e-6)


# DICOM orientations as (row, column) cosines in LPS; the normal completes them. Their RAS
# rotations reach every branch of the quaternion computation (trace > 0, and each largest diagonal).
ORIENTATIONS = {
    "axial": ([1, 0, 0], [0, 1, 0]),
    "coronal": ([1, 0, 0], [0, 0, -1]),
    "sagittal": ([0, 1, 0], [0, 0, -1]),
    "axial_flipped": ([-1, 0, 0], [0, 1, 0]),
    "upside_down": ([1, 0, 0], [0, -1, 0]),
    "oblique_180": ([0, 0, 1], [0, -1, 0]),
}


@pytest.mark.parametrize("orientation", ORIENTATIONS)
@pytest.mark.parametrize("handedness", [1.0, -1.0])
def test_nifti_qform_for_dicom_orientations(tmp_path, nib, orientation, handedness):
    row, col = (np.array(v, float) for v in ORIENTATIONS[orientation])
    steps = np.column_stack([0.5 * row, 0.75 * col, handedness * 2.0 * np.cross(row, col)])
    matrix = _index_to_lps(steps, [10.0, -20.0, 30.0])
    write_nifti(tmp_path / "vol.nii", _volume("int16"), matrix)
    image, _, _ = _load_nifti(nib, tmp_path / "vol.nii")
    qform, qform_code = image.header.get_qform(coded=True)
    assert int(qform_code) == 1
    np.testing.assert_allclose(qform, LPS_TO_RAS @ matrix, rtol=0, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_nifti_every_voxel_type(tmp_path, nib, dtype):
    array = _volume(dtype)
    write_nifti(tmp_path / "vol.nii", array, OBLIQUE)
    image, voxels, _ = _load_nifti(nib, tmp_path / "vol.nii")
    assert image.get_data_dtype() == np.dtype(dtype)
    assert int(image.header["bitpix"]) == np.dtype(dtype).itemsize * 8
    np.testing.assert_array_equal(voxels, array)


def test_big_endian_and_strided_input_are_written_as_values(tmp_path, nib):
    array = _volume("int32")
    strided = np.asfortranarray(array.astype(">i4"))
    assert not strided.flags.c_contiguous
    write_nifti(tmp_path / "vol.nii", strided, OBLIQUE)
    np.testing.assert_array_equal(_load_nifti(nib, tmp_path / "vol.nii")[1], array)


@pytest.mark.parametrize(("limit_planes", "per_write"), [(2.5, 2), (0.5, 1)])
def test_voxels_are_written_in_whole_planes_of_bounded_size(tmp_path, monkeypatch, limit_planes, per_write):
    """A few large writes (the GIL is handed back rarely while another thread computes), each whole
    planes and at most WRITE_BYTES (one plane when a plane is larger), so that a converted
    (big-endian, strided) input costs that much memory, not a copy of the volume."""
    from irregular_series import runlog, writers

    array = _volume("int16")
    plane_bytes = array[0].nbytes
    monkeypatch.setattr(writers, "WRITE_BYTES", int(limit_planes * plane_bytes))
    sizes = []
    write = runlog.DigestingStream.write
    monkeypatch.setattr(runlog.DigestingStream, "write", lambda self, data: sizes.append(len(data)) or write(self, data))
    strided = np.asfortranarray(array.astype(">i2"))
    write_nrrd(tmp_path / "vol.nrrd", strided, OBLIQUE)
    header, voxels = sizes[0], sizes[1:]
    planes = len(array)
    rest = [(planes % per_write) * plane_bytes] if planes % per_write else []
    assert voxels == [per_write * plane_bytes] * (planes // per_write) + rest
    assert (tmp_path / "vol.nrrd").read_bytes()[header:] == array.astype("<i2").tobytes()


# --------------------------------------------------------------------------------------------
# dispatch and refusals
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["mask.nrrd", "mask.nii", "MASK.NII.GZ"])
def test_write_volume_dispatches_on_suffix(tmp_path, nib, name):
    mask = (_volume("int16") > 0).astype(np.uint8)
    write_volume(tmp_path / name, mask, OBLIQUE)
    data = (tmp_path / name).read_bytes()
    if name.endswith(".nrrd"):
        assert data.startswith(b"NRRD0004\n")
        assert data.endswith(mask.tobytes())
    else:
        np.testing.assert_array_equal(_load_nifti(nib, tmp_path / name)[1], mask)


@pytest.mark.parametrize("name", ["vol.nrrd", "vol.nii.gz"])
def test_compressed_output_is_reproducible(tmp_path, name):
    """No time stamp or temporary file name in the gzip stream: same input, same bytes."""
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        compress = name.endswith(".nrrd")
        write_volume(tmp_path / folder / name, _volume("int16"), OBLIQUE, compress=compress)
    assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


@pytest.mark.parametrize("name", ["vol.nrrd", "vol.nii", "vol.nii.gz", "gz.nrrd"])
@pytest.mark.parametrize("series", [False, True])
def test_writers_return_the_digest_of_the_file_they_made(tmp_path, name, series):
    """The run log records the digest a writer returns without reading the file back: it must be
    the one ``content_digest`` finds in the file (gzip included, whose bytes differ from the voxels')."""
    compress = name == "gz.nrrd"
    array = _volume("int16")
    if series:
        axis = SeriesAxisHeader("time", "s", (0.0, 2.0), 2.0)
        digest = write_volume_series(tmp_path / name, np.stack([array, array[::-1]]), OBLIQUE, axis, compress=compress)
    else:
        digest = write_volume(tmp_path / name, array, OBLIQUE, compress=compress)
    assert digest == content_digest(tmp_path / name)
    assert digest != content_digest_of(b"")


DIGEST_WITHOUT_ZLIB_NG = """
import sys
sys.modules["zlib_ng"] = None  # as in a Python without the package (Slicer's): import fails
from irregular_series.runlog import content_digest, crc32
print(crc32.__module__, content_digest(__import__("pathlib").Path(sys.argv[1])))
"""


def test_digests_are_zlibs_crc32_with_or_without_zlib_ng(tmp_path):
    """The run log's CRC-32 (zlib-ng's when installed) is zlib's, and a Python without zlib-ng
    digests the same file to the same value, so a run log stays valid across the two."""
    digest = write_volume(tmp_path / "vol.nii", _volume("int16"), OBLIQUE)
    assert digest == content_digest_of((tmp_path / "vol.nii").read_bytes())
    done = subprocess.run([sys.executable, "-c", DIGEST_WITHOUT_ZLIB_NG, str(tmp_path / "vol.nii")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["zlib", digest]


def content_digest_of(data: bytes) -> str:
    return f"crc32:{zlib.crc32(data):08x}"


def test_write_volume_refusals(tmp_path):
    array = _volume("int16")
    with pytest.raises(ValueError, match="unsupported"):
        write_volume(tmp_path / "vol.mha", array, OBLIQUE)
    with pytest.raises(ValueError, match=".nii.gz"):
        write_volume(tmp_path / "vol.nii", array, OBLIQUE, compress=True)
    write_volume(tmp_path / "vol.nrrd", array, OBLIQUE, compress=True)
    assert _nrrd_header(tmp_path / "vol.nrrd")["encoding"] == "gzip"
    with pytest.raises(FileExistsError, match="already exists; not overwriting it$"):
        write_volume(tmp_path / "vol.nrrd", array, OBLIQUE)
    write_volume(tmp_path / "vol.nrrd", array, OBLIQUE, force=True)
    assert _nrrd_header(tmp_path / "vol.nrrd")["encoding"] == "raw"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vol.nrrd"]


def _singular():
    matrix = OBLIQUE.copy()
    matrix[:3, 2] = matrix[:3, 0]
    return matrix


def _with(row, col, value):
    matrix = OBLIQUE.copy()
    matrix[row, col] = value
    return matrix


@pytest.mark.parametrize(
    ("array", "matrix", "error"),
    [
        (np.zeros((4, 4), np.int16), OBLIQUE, ValueError),
        (np.zeros((0, 4, 4), np.int16), OBLIQUE, ValueError),
        (np.zeros((2, 4, 4), bool), OBLIQUE, TypeError),
        (np.zeros((2, 4, 4), np.int64), OBLIQUE, TypeError),
        (np.zeros((2, 4, 4), np.int16), OBLIQUE[:3], ValueError),
        (np.zeros((2, 4, 4), np.int16), _singular(), ValueError),
        (np.zeros((2, 4, 4), np.int16), _with(3, 0, 0.5), ValueError),
        (np.zeros((2, 4, 4), np.int16), _with(0, 3, np.nan), ValueError),
    ],
    ids=["2d", "empty", "bool", "int64", "3x4", "singular", "projective", "nan"],
)
@pytest.mark.parametrize("suffix", [".nrrd", ".nii"])
def test_writers_refuse_bad_input(tmp_path, array, matrix, error, suffix):
    with pytest.raises(error):
        write_volume(tmp_path / f"vol{suffix}", array, matrix)
    assert list(tmp_path.iterdir()) == []
