"""Header scan: files and folders to slices (one per frame), every left-out file with its reason.

Everything is read from real files written with pydicom (the phantom generator), including broken
ones: truncated, corrupt, non-numeric, missing tags, other transfer syntaxes.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.datadict import keyword_for_tag
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, ImplicitVRLittleEndian

from irregular_series import analyze, headers
from irregular_series.conversion import ConvertOptions, convert
from irregular_series.headers import (
    HEADER_TAGS,
    HeaderError,
    parse_floats,
    parse_hint,
    parse_int,
    scan,
    scan_file,
    slice_from_tag_values,
    unit_cosines,
)
from irregular_series.model import Excluded, SliceHeader
from irregular_series.testing.synthetic import SyntheticSeries, SyntheticSlice, write_non_image_objects, write_series

import phantoms


def _patch(path: Path, old: bytes, new: bytes) -> None:
    """Replace one byte string by another of equal length: how invalid values get into a file."""
    data = path.read_bytes()
    assert len(old) == len(new) and data.count(old) == 1
    path.write_bytes(data.replace(old, new))


def _reasons(excluded: list[Excluded]) -> dict[str, str]:
    return {Path(e.path).name: e.reason for e in excluded}


# --- value parsing -----------------------------------------------------------------------------


def test_decimal_strings_are_parsed_tolerantly_but_never_guessed():
    assert parse_floats(" 1.5\\-2e1 \\3 ", "ImagePositionPatient", 3) == (1.5, -20.0, 3.0)
    assert parse_floats("  \x00", "PixelSpacing") is None
    with pytest.raises(HeaderError, match='PixelSpacing "0.5/abc" is not a number'):
        parse_floats("0.5/abc", "PixelSpacing")
    with pytest.raises(HeaderError, match="has 2 values, 3 expected"):
        parse_floats("1\\2", "ImagePositionPatient", 3)
    with pytest.raises(HeaderError, match="not finite"):
        parse_floats("nan\\1", "PixelSpacing", 2)
    # Hints (thickness, tilt, times) keep a leading number and ignore junk after it.
    assert parse_hint("2.5mm") == 2.5
    assert parse_hint("-18.5\\0") == -18.5
    assert parse_hint("abc") is None
    assert parse_int("12 ") == 12
    assert parse_int("1.5") is None


def test_orientation_is_normalised_and_orthogonalised():
    row, col = unit_cosines([1.002, 0.0, 0.0, 0.001, 0.999, 0.0])
    assert row == pytest.approx((1.0, 0.0, 0.0))
    assert sum(a * b for a, b in zip(row, col)) == pytest.approx(0.0, abs=1e-12)
    assert sum(c * c for c in col) == pytest.approx(1.0)
    with pytest.raises(HeaderError, match="not orthogonal"):
        unit_cosines([1, 0, 0, 0.5, 0.866, 0])
    with pytest.raises(HeaderError, match="unit vectors"):
        unit_cosines([0, 0, 0, 0, 1, 0])


def test_header_tags_name_the_tags_they_say():
    for keyword, tag in HEADER_TAGS.items():
        number = int(tag.replace(",", ""), 16)
        if (number >> 16) % 2:  # private tags have no standard keyword; their names are ours
            continue
        assert keyword_for_tag(number) == keyword


# --- folders, non-image objects, broken files ----------------------------------------------------


@pytest.fixture
def mixed_folder(tmp_path: Path) -> tuple[Path, dict[str, Path], phantoms.Phantom]:
    """A regular series in a sub-sub-folder, plus every kind of file a scan must leave out."""
    phantom = phantoms.regular()
    phantom.write(tmp_path / "a" / "b")
    objects = write_non_image_objects(tmp_path, phantom.series)
    return tmp_path, objects, phantom


def test_folder_scan_explains_every_file_and_still_analyses_the_rest(mixed_folder):
    root, objects, phantom = mixed_folder
    analysis = analyze([root])

    series = {s.series_instance_uid: s for s in analysis.series}
    main = series[phantom.series.series_instance_uid]
    assert [(s.role, s.slice_count) for s in main.stacks] == [("volume", 20)]
    # Left out from the series the files belong to.
    in_series = _reasons(main.excluded)
    assert "ImagePositionPatient" in in_series[objects["no_position"].name]
    assert "Raw Data Storage" in in_series[objects["raw_data"].name]
    # Left out, in no series with images.
    loose = _reasons(analysis.excluded)
    assert "DICOMDIR" in loose["DICOMDIR"]
    assert "Basic Text SR Storage" in loose[objects["basic_text_sr"].name]
    assert "RT Structure Set Storage" in loose[objects["rt_structure_set"].name]
    assert "not a DICOM file" in loose["not_dicom"]
    assert "truncated" in loose[objects["truncated"].name]
    assert 'PixelSpacing "0.5\\abc" is not a number' in loose[objects["junk_decimals"].name]
    # Every file is accounted for exactly once: in a stack, or left out with a reason.
    in_stacks = [s.path for ser in analysis.series for st in ser.stacks for s in st.slices]
    left_out = [e.path for e in analysis.excluded] + [e.path for ser in analysis.series for e in ser.excluded]
    every_file = sorted(str(p) for p in root.rglob("*") if p.is_file())
    assert sorted(in_stacks + left_out) == every_file
    assert all(e.reason for e in analysis.excluded)


def test_non_normalised_orientation_reads_as_unit_vectors(mixed_folder):
    _, objects, _ = mixed_folder
    (s,), excluded = scan_file(objects["non_normalised_orientation"])
    assert not excluded
    assert s.row_cosines == pytest.approx((1.0, 0.0, 0.0))
    assert s.col_cosines == pytest.approx((0.0, 1.0, 0.0))


def test_junk_in_a_hint_costs_the_value_only(tmp_path):
    """SliceThickness "2.5mm" is read as 2.5; the image is kept."""
    series = SyntheticSeries(slices=[SyntheticSlice((0.0, 0.0, 0.0), rows=8, columns=8, slice_thickness_mm=2.597)])
    (path,) = write_series(series, tmp_path)
    _patch(path, b"2.597", b"2.5mm")
    (s,), excluded = scan_file(path)
    assert s.slice_thickness_mm == 2.5 and not excluded


@pytest.mark.parametrize(
    "old, new, expected",
    [
        (b"-15.5\\-15.5\\-25.0", b"-15.5\\-15.5\\-2x.0", 'ImagePositionPatient "-15.5\\-15.5\\-2x.0" is not a number'),
        (b"1.0\\0.0\\0.0\\0.0\\1.0\\0.0", b"1.0\\0.0\\0.0\\0.0\\0.0\\0.0", "ImageOrientationPatient"),
    ],
)
def test_broken_values_exclude_that_file_only(tmp_path, old, new, expected):
    paths = phantoms.regular().write(tmp_path, names="instance")
    _patch(paths[0], old, new)
    result = scan([tmp_path])
    reasons = _reasons(result.excluded)
    assert expected in reasons[paths[0].name]
    assert len(result.slices) == 19


def test_missing_geometry_tags_are_reported_per_tag(tmp_path):
    base = phantoms.regular()
    slices = list(base.series.slices)
    slices[3] = dataclasses.replace(slices[3], omit=("ImageOrientationPatient", "PixelSpacing"))
    paths = write_series(dataclasses.replace(base.series, slices=slices), tmp_path)
    analysis = analyze([tmp_path])
    (series,) = analysis.series
    assert series.stacks[0].slice_count == 19
    (excluded,) = series.excluded
    assert excluded.path == str(paths[3])
    assert "ImageOrientationPatient, PixelSpacing" in excluded.reason


def test_the_pose_of_a_header_without_a_position_names_the_file_and_the_tag(tmp_path):
    base = phantoms.regular()
    slices = list(base.series.slices)
    slices[3] = dataclasses.replace(slices[3], omit=("ImagePositionPatient",))
    paths = write_series(dataclasses.replace(base.series, slices=slices), tmp_path)
    by_path = {h.path: h for h in scan([tmp_path]).slices}
    assert by_path[str(paths[0])].pose.position_lps_mm == by_path[str(paths[0])].position_lps_mm
    with pytest.raises(ValueError, match=re.escape(f"{paths[3]}: no ImagePositionPatient: the image cannot be placed")):
        by_path[str(paths[3])].pose


def test_corrupt_and_truncated_files_never_stop_the_scan(tmp_path):
    paths = phantoms.regular().write(tmp_path, names="instance")
    data = paths[0].read_bytes()
    paths[0].write_bytes(data[:-700])  # cut inside the pixel data
    paths[1].write_bytes(data[:128] + b"DICM" + bytes(range(256)) * 4)  # garbage after the marker
    paths[2].write_bytes(b"")  # empty
    result = scan([tmp_path])
    reasons = _reasons(result.excluded)
    assert "truncated: the pixel data ends 700 bytes beyond the end of the file" in reasons[paths[0].name]
    assert reasons[paths[1].name] and reasons[paths[2].name]
    assert len(result.slices) == 17


def test_paths_that_do_not_exist_are_reported(tmp_path):
    result = scan([tmp_path / "nowhere.dcm"])
    assert result.slices == [] and result.excluded == [Excluded(str(tmp_path / "nowhere.dcm"), "does not exist")]


def test_files_named_directly_and_folders_give_the_same_slices(tmp_path):
    paths = phantoms.missing_slices().write(tmp_path)
    by_folder = scan([tmp_path]).slices
    by_file = scan(reversed(paths)).slices
    assert sorted(by_folder, key=lambda s: s.path) == sorted(by_file, key=lambda s: s.path)


# --- transfer syntaxes and frames -------------------------------------------------------------


def _comparable(s: SliceHeader) -> SliceHeader:
    return dataclasses.replace(s, path="", transfer_syntax_uid="")


@pytest.mark.parametrize("syntax", ["implicit_le", "explicit_be", "deflated_le"])
@pytest.mark.parametrize("case", ["gantry_tilt", "mf_mr_magnitude_phase"])
def test_every_transfer_syntax_reads_the_same_headers(tmp_path, case, syntax):
    phantom = phantoms.CASES[case]()
    phantom.write(tmp_path / "le", names="instance")
    phantom.write(tmp_path / syntax, names="instance", transfer_syntax=syntax)
    reference = [_comparable(s) for s in scan([tmp_path / "le"]).slices]
    other = scan([tmp_path / syntax])
    assert not other.excluded
    assert [_comparable(s) for s in other.slices] == reference
    expected = {"implicit_le": ImplicitVRLittleEndian, "explicit_be": ExplicitVRBigEndian,
                "deflated_le": DeflatedExplicitVRLittleEndian}[syntax]
    assert {s.transfer_syntax_uid for s in other.slices} == {expected}


def test_a_slice_is_one_frame_of_a_file(tmp_path):
    phantom = phantoms.mf_time_points()
    (path,) = phantom.write(tmp_path)
    slices, excluded = scan_file(path)
    assert not excluded
    assert [s.frame for s in slices] == list(range(32))
    assert {s.path for s in slices} == {str(path)} and {s.number_of_frames for s in slices} == {32}
    assert slices[5].label == f"{path}#5"
    truth = phantom.series.slices
    assert np.allclose([s.position_lps_mm for s in slices], [t.position_lps_mm for t in truth])
    assert [s.temporal_position for s in slices] == [t.temporal_position for t in truth]


def test_one_broken_frame_costs_that_frame_only(tmp_path):
    base = phantoms.mf_regular()
    frames = list(base.series.slices)
    frames[4] = dataclasses.replace(frames[4], omit=("ImagePositionPatient",))
    (path,) = write_series(dataclasses.replace(base.series, slices=frames), tmp_path, multiframe=True)
    analysis = analyze([tmp_path])
    (series,) = analysis.series
    assert series.stacks[0].slice_count == 19
    (excluded,) = series.excluded
    assert (excluded.path, excluded.frame) == (str(path), 4)
    assert "ImagePositionPatient" in excluded.reason


def test_database_values_give_the_same_slice_as_the_file(tmp_path):
    """``slice_from_tag_values`` (what the Slicer plugin calls with its database) matches the scan."""
    paths = phantoms.gantry_tilt().write(tmp_path, names="instance")
    ds = pydicom.dcmread(paths[0], stop_before_pixels=True)

    def get(tag: str) -> str:
        value = ds.get(int(tag.replace(",", ""), 16))
        if value is None or value.value is None:
            return ""
        v = value.value
        return "\\".join(str(x) for x in v) if isinstance(v, (list, tuple)) or type(v).__name__ == "MultiValue" else str(v)

    from_database = slice_from_tag_values(str(paths[0]), get)
    (from_file,), _ = scan_file(paths[0])
    assert from_file.pixel_data_offset is not None  # the scan found the pixel values; the database cannot say
    assert dataclasses.replace(from_database, transfer_syntax_uid="") == dataclasses.replace(from_file, transfer_syntax_uid="")
    broken = slice_from_tag_values("x.dcm", lambda tag: "abc" if tag == "0028,0030" else get(tag))
    assert isinstance(broken, Excluded) and "PixelSpacing" in broken.reason


@pytest.mark.parametrize(("charset", "description"), [
    ("ISO_IR 192", "Schädel – Knochen 0.6 mm"),
    ("ISO_IR 100", "Schädel"),
    ("ISO_IR 144", "Череп"),
    ("GB18030", "头部 CT"),
    ("\\ISO 2022 IR 87", "頭部CT"),
])
def test_series_descriptions_are_decoded_by_their_character_set(tmp_path, charset, description):
    """Read from the file (both readers) in the file's SpecificCharacterSet, not as Latin-1: the
    description names reports, nodes and output files."""
    path = phantoms.regular().write(tmp_path / "in", names="instance")[0]
    ds = pydicom.dcmread(path)
    ds.SpecificCharacterSet = charset
    ds.SeriesDescription = description
    ds.save_as(path)
    assert description.encode("utf-8") not in path.read_bytes() or charset == "ISO_IR 192"  # really re-encoded
    (image,), _ = scan_file(path)
    assert image.series_description == description
    assert headers._scan_plain_image(str(path)) == headers._scan_with_pydicom(str(path))


def test_parallel_scan_gives_the_sequential_result_in_order(tmp_path, monkeypatch):
    phantoms.echoes().write(tmp_path / "echoes")
    write_non_image_objects(tmp_path / "other")
    sequential = scan([tmp_path], workers=1)
    monkeypatch.setattr(headers, "PARALLEL_THRESHOLD", 2)
    parallel = scan([tmp_path], workers=2)
    assert parallel.slices == sequential.slices
    assert parallel.excluded == sequential.excluded


@pytest.mark.parametrize("case", ["regular", "mf_time_points"])
def test_randomly_damaged_files_never_crash_the_scan_or_the_analysis(tmp_path, case):
    """Hundreds of damaged copies (bytes overwritten, cut, or spliced at random places, header and
    sequences included): each gives images or an exclusion with a reason, and analysing the whole
    folder, good files among the damaged ones, still works."""
    good = phantoms.CASES[case]().write(tmp_path / "good", names="instance")
    original = good[0].read_bytes()
    rng = np.random.default_rng(7)
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for n in range(150):
        data = bytearray(original)
        where = int(rng.integers(0, len(data)))
        kind = n % 3
        if kind == 0:  # overwrite a few bytes
            data[where : where + 8] = rng.integers(0, 256, 8, dtype=np.uint8).tobytes()
        elif kind == 1:  # cut
            del data[where:]
        else:  # splice another part of the file in
            other = int(rng.integers(0, len(data)))
            data[where : where + 16] = original[other : other + 16]
        (damaged / f"d{n:03d}.dcm").write_bytes(bytes(data))
    result = scan([damaged])
    for path in damaged.iterdir():  # the raw reader reads each as pydicom does, or declines it
        fast = headers._scan_plain_image(str(path))
        assert fast is None or fast == headers._scan_with_pydicom(str(path)), path.name
    named = {Path(s.path).name for s in result.slices} | {Path(e.path).name for e in result.excluded}
    assert len(named) == 150  # every file is accounted for
    assert all(e.reason for e in result.excluded)
    analysis = analyze([tmp_path])
    assert analysis.series  # the good files are still analysed
    converted = convert([tmp_path], tmp_path / "out", ConvertOptions(allow_output_in_input=True), progress=False)
    # Damage costs the damaged files, never the run. Damaged copies of one image that still read
    # are different images at one position: the stack is then refused in words, not guessed at.
    assert converted.outputs or any("pixels differ" in failure.message for failure in converted.failures)
    assert all("\n" not in str(failure) for failure in converted.failures)
