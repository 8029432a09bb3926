"""Hostile and degenerate input files: each costs that file only, with a plain reason, in bounded
time and memory (issue 17). Every file is real DICOM written with pydicom, then damaged."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pydicom
import pytest
from pydicom.dataelem import DataElement
from pydicom.sequence import Sequence
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, ExplicitVRLittleEndian

from irregular_series import analyze
from irregular_series.headers import scan
from irregular_series.limits import Limits
from irregular_series.rawelements import read_meta
from irregular_series.testing.synthetic import save_dataset

import phantoms

PACKAGE = Path(__file__).resolve().parents[1] / "IrregularSeries"


def _series(tmp_path: Path, count: int | None = None) -> list[Path]:
    paths = phantoms.regular().write(tmp_path / "in", names="instance")
    return paths if count is None else paths[:count]


def _reasons(result) -> dict[str, str]:
    return {Path(e.path).name: e.reason for e in result.excluded}


def _rewrite(path: Path, change) -> Path:
    ds = pydicom.dcmread(path)
    change(ds)
    return save_dataset(ds, path, ExplicitVRLittleEndian)


def _patch_vr(path: Path, tag: tuple[int, int], vr: bytes) -> None:
    """Give the element ``tag`` another explicit VR (same length field size), as a damaged file."""
    data = bytearray(path.read_bytes())
    needle = struct.pack("<HH", *tag)
    at = data.index(needle, 132)
    data[at + 4 : at + 6] = vr
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("vr", [b"WI", b"UO", b"FD", b"SQ", b"SS"])
def test_series_uid_of_any_vr_costs_that_file_only(tmp_path, vr):
    paths = _series(tmp_path)
    _patch_vr(paths[0], (0x0020, 0x000E), vr)
    result = scan([tmp_path / "in"])
    assert len(result.slices) == len(paths) - 1 or len(result.slices) == len(paths)
    if len(result.slices) < len(paths):
        (e,) = result.excluded
        assert e.path == str(paths[0]) and "Traceback" not in e.reason and "internal error" not in e.reason


def test_series_uid_as_a_sequence_is_refused_by_name(tmp_path):
    paths = _series(tmp_path, 2)
    _rewrite(paths[0], lambda ds: ds.__setitem__(0x0020000E, DataElement(0x0020000E, "SQ", Sequence([pydicom.Dataset()]))))
    result = scan(paths)
    assert len(result.slices) == 1
    assert _reasons(result) == {paths[0].name: "SeriesInstanceUID holds a Sequence, not text or a number"}


def test_a_nul_in_the_character_set_reads_the_description_with_the_default(tmp_path):
    (path,) = _series(tmp_path, 1)
    _rewrite(path, lambda ds: (setattr(ds, "SpecificCharacterSet", ["ISO_IR 100", "ISO 2022 IR 87"]),
                               setattr(ds, "SeriesDescription", "Kopf")))
    data = path.read_bytes()
    path.write_bytes(data.replace(b"ISO_IR 100", b"ISO_IR\x00100"))
    result = scan([path])
    (image,) = result.slices
    assert image.series_description == "Kopf" and not result.excluded


def test_positions_outside_a_patient_sized_box_are_refused_and_the_rest_analysed(tmp_path):
    paths = _series(tmp_path)
    for path in paths[:3]:
        _rewrite(path, lambda ds: setattr(ds, "ImagePositionPatient", [0, 0, 1e308]))
    analysis = analyze([tmp_path / "in"])
    (series,) = analysis.series
    assert series.stacks[0].slice_count == len(paths) - 3
    reasons = {e.reason for e in series.excluded}
    assert reasons == {"ImagePositionPatient 0\\0\\1e+308 lies outside the ±10000 mm box any patient fits in "
                       "(limit coordinate_mm)"}
    assert {e.error_type for e in series.excluded} == {"LimitExceeded"}
    # A user with such data can raise the limit.
    for path in paths[:3]:
        _rewrite(path, lambda ds: setattr(ds, "ImagePositionPatient", [0, 0, 2e4]))
    assert analyze([tmp_path / "in"]).series[0].excluded
    assert not analyze([tmp_path / "in"], limits=Limits(coordinate_mm=1e5)).series[0].excluded


@pytest.mark.parametrize(("keyword", "value", "expected"), [
    ("PixelSpacing", [1e-9, 1e-9], "PixelSpacing 1e-09\\1e-09 is below 0.0001 mm (limit min_pixel_spacing_mm)"),
    ("PixelSpacing", [5e6, 1], "PixelSpacing 5e+06\\1 is above 1000 mm (limit max_pixel_spacing_mm)"),
    ("BitsStored", 65535, "BitsStored 65535 is more than BitsAllocated 16"),
    ("BitsAllocated", 12, "BitsAllocated 12 is not one of 1, 8, 16, 32, 64"),
    ("RescaleSlope", 1e308, "RescaleSlope 1e+308 and RescaleIntercept 0 take 16-bit stored values beyond 3.4e+38, "
                            "more than any image volume can hold"),
    ("PixelData", b"", "Pixel Data is empty, but Rows x Columns x frames x samples x BitsAllocated "
                       "(32 x 32 x 1 x 1 x 16 bits) need 2048 bytes"),
])
def test_refused_header_values_say_what_is_wrong_in_dicom_terms(tmp_path, keyword, value, expected):
    paths = _series(tmp_path)
    _rewrite(paths[0], lambda ds: setattr(ds, keyword, value))
    result = scan([tmp_path / "in"])
    assert _reasons(result) == {paths[0].name: expected}
    assert len(result.slices) == len(paths) - 1


def test_a_huge_image_with_two_bytes_of_pixel_data_is_not_an_image(tmp_path):
    (path,) = _series(tmp_path, 1)
    _rewrite(path, lambda ds: (setattr(ds, "Rows", 65535), setattr(ds, "Columns", 65535),
                               setattr(ds, "PixelData", b"\0\0")))
    result = scan([path])
    assert not result.slices
    assert _reasons(result)[path.name].startswith("Pixel Data is 2 bytes long, but Rows x Columns")


def test_a_file_that_has_a_dicm_marker_is_not_said_to_lack_one(tmp_path):
    path = tmp_path / "x.dcm"
    path.write_bytes(bytes(128) + b"DICM" + bytes(range(256)) * 4)
    reason = _reasons(scan([path]))[path.name]
    assert reason == "a DICOM file without image attributes (no SOP Class UID, SeriesInstanceUID or Rows)"


def test_a_file_of_zeros_is_declined_at_once(tmp_path):
    path = tmp_path / "disk.img"
    with open(path, "wb") as f:
        f.truncate(200 * 2**20)  # 200 MB of zeros (sparse: no disk used)
    start = time.perf_counter()
    result = scan([path])
    assert time.perf_counter() - start < 1.0
    assert _reasons(result)[path.name].startswith("not a DICOM file")


def test_a_deflate_bomb_is_declined_without_inflating_it(tmp_path):
    (path,) = _series(tmp_path, 1)
    bomb = save_dataset(pydicom.dcmread(path), tmp_path / "bomb.dcm", DeflatedExplicitVRLittleEndian)
    data = bomb.read_bytes()
    _, start = read_meta(str(bomb))  # the data set begins after the meta group
    data_set = zlib.decompress(data[start:], -15)
    # 100 MB of zeros in a private element after the pixel data: about 100 kB on disk.
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts = [deflater.compress(data_set), deflater.compress(struct.pack("<HH2sHI", 0x7FE1, 0x1010, b"OB", 0, 100 * 2**20))]
    parts += [deflater.compress(bytes(2**20)) for _ in range(100)]
    bomb.write_bytes(data[:start] + b"".join(parts) + deflater.flush())
    assert bomb.stat().st_size < 2**20
    begin = time.perf_counter()
    result = scan([bomb])
    assert time.perf_counter() - begin < 5
    assert _reasons(result) == {bomb.name: "deflated data set inflates to more than 64 MB (limit header_bytes)"}


def test_a_large_element_before_the_pixel_data_is_never_read_whole(tmp_path):
    (path,) = _series(tmp_path, 1)
    _rewrite(path, lambda ds: ds.add_new(0x00091010, "OB", bytes(3 * 2**20)))
    result = scan([path], limits=Limits(header_bytes=2**20))
    assert _reasons(result) == {path.name: "header longer than 1 MB before the pixel data (limit header_bytes)"}
    assert len(scan([path]).slices) == 1  # within the default limit it is read


def test_two_hundred_thousand_empty_items_are_declined_quickly(tmp_path):
    (path,) = _series(tmp_path, 1)
    ds = pydicom.dcmread(path)
    ds.NumberOfFrames = 1
    ds.PerFrameFunctionalGroupsSequence = Sequence([pydicom.Dataset() for _ in range(3)])
    save_dataset(ds, path, ExplicitVRLittleEndian)
    # The same sequence, of undefined length, with 200,000 empty items: 1.6 MB.
    data = path.read_bytes()
    old = b"\x00\x52\x30\x92SQ\x00\x00\x18\x00\x00\x00" + b"\xfe\xff\x00\xe0\x00\x00\x00\x00" * 3
    new = (b"\x00\x52\x30\x92SQ\x00\x00\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0\x00\x00\x00\x00" * 200_000
           + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00")
    assert data.count(old) == 1
    path.write_bytes(data.replace(old, new))
    start = time.perf_counter()
    result = scan([path])
    assert time.perf_counter() - start < 3
    assert _reasons(result) == {path.name: "a sequence of more than 100000 items (limit sequence_items)"}


def _big_endian(tmp_path: Path, change=None) -> Path:
    """One image in explicit VR big endian, which the raw reader declines: pydicom reads it."""
    path = phantoms.regular().write(tmp_path / "in", names="instance", transfer_syntax="explicit_be")[0]
    if change is not None:
        ds = pydicom.dcmread(path)
        change(ds)
        save_dataset(ds, path, ExplicitVRBigEndian)
    return path


def _scan_in_a_new_process(path: Path) -> tuple[list[str], int, int]:
    """(reasons, images, peak resident memory in kB) of scanning ``path`` in a fresh process (Linux)."""
    # VmHWM, not getrusage: ru_maxrss survives exec, so it would start at the test process's size.
    script = ("import json, sys\n"
              "from irregular_series.headers import scan\n"
              "found = scan([sys.argv[1]])\n"
              "status = open('/proc/self/status').read().split('VmHWM:')[1]\n"
              "print(json.dumps([[e.reason for e in found.excluded], len(found.slices), int(status.split()[0])]))")
    env = {**os.environ, "PYTHONPATH": str(PACKAGE)}
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    reasons, images, peak_kb = json.loads(done.stdout)
    return reasons, images, peak_kb


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="peak memory is read from /proc (Linux)")
def test_a_huge_wanted_element_is_never_read_whole_by_pydicom(tmp_path):
    path = _big_endian(tmp_path)
    data = path.read_bytes()
    at = data.index(b"\x00\x08\x10\x3eLO", 132)  # SeriesDescription
    (length,) = struct.unpack(">H", data[at + 6 : at + 8])
    value = data[at + 8 : at + 8 + length]
    huge = 1536 * 2**20
    with open(path, "wb") as f:  # the same value declared 1.5 GB long (VR UN), the rest a hole: no disk used
        f.write(data[:at] + b"\x00\x08\x10\x3eUN\x00\x00" + struct.pack(">I", huge) + value)
        f.seek(huge - len(value), os.SEEK_CUR)
        f.write(data[at + 8 + length :])
    reasons, images, peak_kb = _scan_in_a_new_process(path)
    assert reasons == ["header values of more than 64 MB to read (limit header_bytes)"] and images == 0
    assert peak_kb < 400 * 1024  # python, numpy and pydicom: about 100 MB; the value alone would be 1.5 GB


@pytest.mark.parametrize("blob_mb", [0.01, 3])
def test_an_unfollowable_header_is_bounded_by_what_is_left_of_the_file(tmp_path, blob_mb):
    """A value of undefined length that is neither a sequence nor fragments: no reader can tell
    where it ends without searching the bytes, as pydicom does, holding them all. What is left of
    the file from there bounds that; beyond the limit the file is refused before pydicom reads it."""
    path = _big_endian(tmp_path)
    data = path.read_bytes()
    at = data.index(b"\x7f\xe0\x00\x10", 132)  # Pixel Data
    blob = b"\x01" * int(blob_mb * 2**20)
    unfollowable = b"\x00\x09\x10\x10OB\x00\x00\xff\xff\xff\xff" + blob + b"\xff\xfe\xe0\xdd\x00\x00\x00\x00"
    path.write_bytes(data[:at] + unfollowable + data[at:])
    found = scan([path], limits=Limits(header_bytes=2**20))
    if blob_mb > 1:
        (reason,) = _reasons(found).values()
        assert reason.startswith(f"the header cannot be followed from byte {at + 12} on, and the 3 MB after it")
        assert reason.endswith("more than 1 MB (limit header_bytes)")
        assert not found.slices
    else:  # small enough to let pydicom read it, which it does
        assert len(found.slices) == 1 and not found.excluded


def _items(n: int) -> Sequence:
    return Sequence([pydicom.Dataset() for _ in range(n)])


def test_sequence_items_and_depth_are_limited_on_the_pydicom_path_too(tmp_path):
    shared = pydicom.Dataset()
    shared.PixelMeasuresSequence = _items(1500)  # nested in an item
    path = _big_endian(tmp_path, lambda ds: setattr(ds, "SharedFunctionalGroupsSequence", Sequence([shared])))
    assert _reasons(scan([path], limits=Limits(sequence_items=1000))) == {
        path.name: "a sequence of more than 1000 items (limit sequence_items)"}
    assert _reasons(scan([path], limits=Limits(sequence_depth=1))) == {
        path.name: "sequences nested more than 1 deep (limit sequence_depth)"}
    assert len(scan([path]).slices) == 1  # within the default limits it is read


def test_sequence_items_are_limited_in_all_as_well_as_per_sequence(tmp_path):
    """Many sequences, each under the per-sequence limit, cannot add up to millions of objects."""
    shared = pydicom.Dataset()
    shared.PixelMeasuresSequence = _items(600)
    shared.FrameContentSequence = _items(600)
    path = _big_endian(tmp_path, lambda ds: setattr(ds, "SharedFunctionalGroupsSequence", Sequence([shared])))
    assert _reasons(scan([path], limits=Limits(sequence_items=1000, header_items=1000))) == {
        path.name: "more than 1000 sequence items in all (limit header_items)"}
    assert len(scan([path], limits=Limits(sequence_items=1000, header_items=1201)).slices) == 1


@pytest.mark.parametrize("undefined", [True, False])
def test_an_unwanted_sequence_counts_only_when_pydicom_must_parse_it(tmp_path, undefined):
    def private_sequence(ds):
        ds.add_new(0x00090010, "LO", "HOSTILE")
        ds.add_new(0x00091010, "SQ", _items(1500))
        ds[0x00091010].is_undefined_length = undefined

    path = _big_endian(tmp_path, private_sequence)
    found = scan([path], limits=Limits(sequence_items=1000))
    if undefined:  # its end is found only by reading its items
        assert _reasons(found) == {path.name: "a sequence of more than 1000 items (limit sequence_items)"}
    else:  # of defined length, pydicom seeks past it
        assert len(found.slices) == 1 and not found.excluded


def test_folders_of_any_depth_are_walked_without_recursion(tmp_path):
    (path,) = _series(tmp_path, 1)
    deep = tmp_path / "deep"
    folders = [deep]
    for _ in range(1200):  # deeper than Python's recursion limit (os.makedirs itself recurses)
        folders.append(folders[-1] / "d")
    for folder in folders:
        folder.mkdir()
    os.replace(path, folders[-1] / "slice.dcm")
    try:
        result = scan([deep])
        (e,) = result.excluded
        assert e.reason.startswith("folder not scanned: more than 256 levels below") and "(limit folder_depth)" in e.reason
        assert len(scan([deep], limits=Limits(folder_depth=2000)).slices) == 1
    finally:  # pytest's clean-up recurses too
        (folders[-1] / "slice.dcm").unlink()
        for folder in reversed(folders):
            folder.rmdir()


def test_links_and_special_files_are_listed_with_their_real_reason(tmp_path):
    paths = _series(tmp_path)
    root = tmp_path / "in"
    (root / "elsewhere").mkdir()
    os.symlink(tmp_path / "in" / "elsewhere", root / "linked_folder")
    os.symlink(root / "missing.dcm", root / "dangling")
    os.symlink(root / "loop_a", root / "loop_b")
    os.symlink(root / "loop_b", root / "loop_a")
    os.symlink(paths[0], root / "linked_file.dcm")
    os.mkfifo(root / "pipe")
    result = scan([root])
    reasons = _reasons(result)
    assert reasons["linked_folder"].endswith("a folder: links to folders are not followed (name the folder itself "
                                             "to scan it)")
    assert reasons["dangling"].startswith("dangling symbolic link: its target") and "does not exist" in reasons["dangling"]
    assert reasons["loop_a"].startswith("symbolic link loop") and reasons["loop_b"].startswith("symbolic link loop")
    assert reasons["pipe"] == "a named pipe (FIFO), not a file"
    assert len(result.slices) == len(paths) + 1  # and the linked file (a link to a file is read)
    # Named directly, a pipe is not opened either (that would wait forever).
    assert _reasons(scan([root / "pipe"])) == {"pipe": "a named pipe (FIFO), not a file"}


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every folder: permissions cannot be tested as root")
def test_unreadable_folders_are_listed(tmp_path):
    _series(tmp_path, 1)
    locked = tmp_path / "in" / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        assert _reasons(scan([tmp_path / "in"]))["locked"] == "folder cannot be read: permission denied"
    finally:
        locked.chmod(0o755)
