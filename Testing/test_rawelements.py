"""Headers read without pydicom (``rawelements``) must give exactly what pydicom gives.

Every file here is read both ways: the raw reader either returns the very records the pydicom path
returns or declines (``None``), never a different answer. It must not decline the ordinary case, a
single-frame little-endian image, or it would be no faster; and everything it does not handle
exactly (big endian, no preamble, multi-frame, unexpected VRs, broken lengths) must be declined.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless

from irregular_series import headers
from irregular_series.rawelements import read_elements
from irregular_series.testing.synthetic import save_dataset, write_non_image_objects

import phantoms


def read_both_ways(path: Path) -> bool:
    """True when the raw reader read ``path``, False when it declined; fails if the two differ."""
    fast = headers._scan_plain_image(str(path))
    if fast is None:
        return False
    assert fast == headers._scan_with_pydicom(str(path)), f"{path}: raw and pydicom readings differ"
    return True


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("case", sorted(phantoms.CASES))
def test_every_phantom_reads_the_same_without_pydicom(write_phantom, case):
    files = _files(write_phantom(case))
    fast = [read_both_ways(p) for p in files]
    # Enhanced multi-frame objects need their functional groups: always pydicom's.
    assert all(fast) if not case.startswith("mf_") else not any(fast)


@pytest.mark.parametrize(("syntax", "read_raw"), [("implicit_le", True), ("explicit_be", False),
                                                  ("deflated_le", False)])
def test_implicit_vr_is_read_big_endian_and_deflated_are_left_to_pydicom(write_phantom, syntax, read_raw):
    files = _files(write_phantom("gantry_tilt", transfer_syntax=syntax))
    assert [read_both_ways(p) for p in files] == [read_raw] * len(files)


def test_files_that_are_not_plain_images_are_left_to_pydicom(tmp_path):
    written = write_non_image_objects(tmp_path)
    fast = {name: read_both_ways(path) for name, path in written.items()}
    # Images lacking a position or with unnormalised cosines are still plain images (and read the
    # same); the other files need pydicom to say why they are left out.
    assert {name for name, read in fast.items() if read} == {"no_position", "non_normalised_orientation"}


@pytest.fixture
def slice_file(write_phantom) -> Path:
    """One single-frame CT file written by the phantom generator."""
    return _files(write_phantom("regular"))[0]


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_nested_sequences_of_undefined_length_are_skipped(tmp_path, slice_file, syntax):
    ds = pydicom.dcmread(slice_file)
    inner = Dataset()
    inner.CodeValue = "113691"
    inner.CodingSchemeDesignator = "DCM"
    item = Dataset()
    item.ReferencedSOPClassUID = ds.SOPClassUID
    item.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    item.PurposeOfReferenceCodeSequence = DicomSequence([inner])
    ds.ReferencedImageSequence = DicomSequence([item, item])
    ds.add_new(0x00091010, "LO", "PRIVATE CREATOR")
    ds.add_new(0x00091001, "OB", bytes(range(256)) * 400)  # 100 kB to skip: longer than the first read
    for keyword in ("ReferencedImageSequence",):
        ds[keyword].is_undefined_length = True
        for i in ds[keyword].value:
            i.is_undefined_length_sequence_item = True
            i["PurposeOfReferenceCodeSequence"].is_undefined_length = True
            for j in i.PurposeOfReferenceCodeSequence:
                j.is_undefined_length_sequence_item = True
    path = save_dataset(ds, tmp_path / "nested.dcm", syntax)
    data = path.read_bytes()
    assert b"\xfe\xff\xdd\xe0" in data and b"\xfe\xff\x0d\xe0" in data  # really undefined lengths
    assert read_both_ways(path)


def test_what_the_reader_does_not_handle_exactly_is_declined(tmp_path, slice_file, write_phantom):
    wanted = {0x00280010: (b"US",), 0x0020000E: (b"UI",)}

    def read(path: Path, **kwargs):
        return read_elements(str(path), {**wanted, **kwargs.pop("wanted", {})}, stop_at=0x7FE00008, **kwargs)

    good = read(slice_file)
    assert good is not None and good.stop_tag == 0x7FE00010 and good.uint16(0x00280010) > 0
    assert read(slice_file, reject=(0x00280010,)) is None
    assert read(slice_file, wanted={0x00280010: (b"SS",)}) is None  # an unexpected VR
    data = slice_file.read_bytes()
    declined = {
        "big endian": _files(write_phantom("gantry_tilt", transfer_syntax="explicit_be"))[0],
        "deflated": save_dataset(pydicom.dcmread(slice_file), tmp_path / "deflated.dcm", DeflatedExplicitVRLittleEndian),
        "no preamble": tmp_path / "raw.dcm",
        "empty": tmp_path / "empty.dcm",
        "folder": tmp_path,
        "cut in the header": tmp_path / "cut.dcm",
        "length past the end": tmp_path / "long.dcm",
    }
    declined["no preamble"].write_bytes(data[132:])  # pydicom still reads it (force=True)
    declined["empty"].write_bytes(b"")
    encapsulated = pydicom.dcmread(slice_file)
    encapsulated.compress(RLELossless)
    encapsulated.save_as(tmp_path / "rle.dcm")
    assert read_both_ways(tmp_path / "rle.dcm")  # compressed files are read too
    # ... but one cut inside its fragments (no end delimiter) is left to pydicom to judge.
    (tmp_path / "rle_cut.dcm").write_bytes((tmp_path / "rle.dcm").read_bytes()[:-20])
    assert headers._scan_plain_image(str(tmp_path / "rle_cut.dcm")) is None
    rows = data.index(b"\x28\x00\x10\x00US")
    declined["cut in the header"].write_bytes(data[: rows + 6])
    declined["length past the end"].write_bytes(data[: rows + 6] + b"\xff\x7f" + data[rows + 8 : rows + 200])
    for reason, path in declined.items():
        assert read(path) is None, reason
        assert headers._scan_plain_image(str(path)) is None, reason
    # Declined is not lost: pydicom reads what it can.
    for reason in ("big endian", "deflated", "no preamble"):
        (image,), _ = headers.scan_file(declined[reason])
        assert image.rows > 0 and image.position_lps_mm is not None, reason


def test_real_files_read_the_same_without_pydicom(realdata):
    files = [p for p in sorted(realdata.rglob("*")) if p.is_file() and p.suffix.lower() not in (".md", ".txt")]
    fast = [read_both_ways(p) for p in files]
    print(f"{sum(fast)} of {len(files)} real files read without pydicom")
    # The GE CT with gantry tilt: every slice (private sequences and all) is a plain image.
    ge = [read for p, read in zip(files, fast) if "ct_tilt_varspacing_ge" in p.parts]
    assert ge and all(ge)


CONVERT_SCRIPT = """
import json, sys
from irregular_series.conversion import ConvertOptions, convert
result = convert([sys.argv[1]], sys.argv[2], ConvertOptions(), progress=False)
print(json.dumps({"written": len(result.outputs), "pydicom": "pydicom" in sys.modules}))
"""


def test_converting_plain_images_never_imports_pydicom(write_phantom, tmp_path):
    """pydicom costs 0.2 s to import: a series of plain images is scanned and read without it,
    and so are the stray files folders hold."""
    folder = write_phantom("variable_spacing")
    (folder / "README.txt").write_text("Exported series\n")
    (folder / "params.json").write_text("{}\n")
    package_root = Path(headers.__file__).resolve().parents[1]
    run = subprocess.run(
        [sys.executable, "-c", CONVERT_SCRIPT, str(folder), str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(package_root), os.environ.get("PYTHONPATH", "")])},
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {"written": 1, "pydicom": False}
