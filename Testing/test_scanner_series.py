"""Series as scanners write them, on phantoms: magnitude and phase in one classic series, Siemens
MOSAIC images, a time series that lost slices in one time point, a sparse series, GE epi_pepolar
rows stored upside down, private objects without pixel data, different images at one position."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

from irregular_series import analyze
from irregular_series.conversion import ConvertOptions, convert
from irregular_series.headers import scan, scan_file
from irregular_series.imagekind import image_kind
from irregular_series.pixels import load_pixels
from irregular_series.testing.synthetic import (
    Encoding,
    SyntheticSeries,
    expected_values,
    pixel_centres_lps,
    save_dataset,
    uid,
    write_mosaics,
)

import phantoms
from volume_checks import read_nrrd, voxel_centres_lps


def _outputs(result) -> list[dict]:
    """The written volumes as their report.json entries, decisions as their messages."""
    return [{**o.to_dict(), "decisions": [d.message for d in o.decisions]} for o in result.outputs]



def _kinds(stack) -> set[str]:
    return {i.kind for i in stack.geometry.irregularities}


# --- image kinds ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "complex_component, image_type, philips, creator, kind",
    [
        ("PHASE", ("ORIGINAL", "PRIMARY", "M", "ND"), "", "", "PHASE"),  # the standard attribute wins
        ("", ("ORIGINAL", "PRIMARY", "P", "ND"), "", "", "PHASE"),  # Siemens
        ("", ("ORIGINAL", "PRIMARY", "M_FFE", "M", "FFE"), "", "", "MAGNITUDE"),  # Philips classic
        ("", ("ORIGINAL", "PRIMARY", "PHASE MAP", "P", "FFE"), "", "", "PHASE"),
        ("", ("DERIVED", "PRIMARY", "REAL"), "", "", "REAL"),
        ("", ("ORIGINAL", "PRIMARY", "M", "P"), "", "", "MIXED"),
        ("", ("ORIGINAL", "PRIMARY", "FFE"), "I", "Philips MR Imaging DD 001", "IMAGINARY"),
        ("", ("ORIGINAL", "PRIMARY", "FFE"), "I", "SOMEONE ELSE", ""),  # another creator's block
        ("", ("M", "P", "AXIAL"), "", "", ""),  # the first two values are not kinds
    ],
)
def test_image_kind_from_every_documented_place(complex_component, image_type, philips, creator, kind):
    assert image_kind(complex_component, image_type, philips, creator) == kind


def test_magnitude_and_phase_are_separate_named_volumes_and_every_image_is_converted(write_phantom, tmp_path):
    folder = write_phantom("magnitude_phase_classic")
    (series,) = analyze([folder]).series
    assert sorted(s.name for s in series.stacks) == [
        "magnitude echo number 1", "magnitude echo number 2", "phase echo number 1", "phase echo number 2"]
    assert len({s.volume_set for s in series.stacks}) == 1
    assert all(s.role == "volume" and s.geometry.regular and s.slice_count == 10 for s in series.stacks)
    result = convert([folder], tmp_path / "out", ConvertOptions(), progress=False)
    assert result.ok and len(_outputs(result)) == 4
    used = [f for o in _outputs(result) for f in o["source_files"]]
    assert len(used) == len(set(used)) == 40  # no image dropped as a "duplicate"
    assert not any("duplicate" in d for o in _outputs(result) for d in o["decisions"])
    assert sorted(Path(o["path"]).name.split("_stack")[1] for o in _outputs(result)) == [
        "1_magnitude_echo_number_1.nrrd", "2_magnitude_echo_number_2.nrrd",
        "3_phase_echo_number_1.nrrd", "4_phase_echo_number_2.nrrd"]


def test_the_philips_private_image_type_tells_kinds_apart_when_image_type_does_not(tmp_path):
    base = phantoms.magnitude_phase_classic()
    creator = (0x20050010, "LO", "Philips MR Imaging DD 001")
    slices = [
        dataclasses.replace(s, image_type=("ORIGINAL", "PRIMARY", "FFE"),
                            private_elements=(creator, (0x20051011, "CS", s.image_type[3])))
        for s in base.series.slices
    ]
    phantoms.write_series(dataclasses.replace(base.series, slices=slices), tmp_path)
    (series,) = analyze([tmp_path]).series
    assert sorted(s.name for s in series.stacks)[0] == "magnitude echo number 1" and len(series.stacks) == 4


@pytest.mark.parametrize("syntax", ["explicit_le", "implicit_le", "explicit_be"])
def test_the_ge_private_image_type_tells_kinds_apart(tmp_path, syntax):
    """GE (0043,102F): 0 magnitude, 1 phase, in the block of GEMS_PARM_01; ImageType says OTHER."""
    base = phantoms.magnitude_phase_classic()
    creator = (0x00430010, "LO", "GEMS_PARM_01")
    slices = [
        dataclasses.replace(s, image_type=("ORIGINAL", "PRIMARY", "OTHER"),
                            private_elements=(creator, (0x0043102F, "SS", 0 if s.image_type[3] == "M" else 1)))
        for s in base.series.slices
    ]
    phantoms.write_series(dataclasses.replace(base.series, slices=slices), tmp_path, transfer_syntax=syntax)
    (series,) = analyze([tmp_path]).series
    assert sorted(s.name for s in series.stacks) == [
        "magnitude echo number 1", "magnitude echo number 2", "phase echo number 1", "phase echo number 2"]


# --- true duplicates ----------------------------------------------------------------------------


def test_different_images_at_one_position_are_never_dropped_as_duplicates(tmp_path):
    slices = phantoms._stack(20, 2.5, start_mm=-25.0)
    other = dataclasses.replace(slices[7], rows_stored_flipped=True)  # same header, other pixels
    series = phantoms._series("differing duplicate", slices + [other])
    series.encoding = Encoding(axis=(0.0, 1.0, 0.0))  # values vary along the columns: flipping changes them
    phantoms.write_series(series, tmp_path / "in")
    result = convert([tmp_path / "in"], tmp_path / "out", ConvertOptions(), progress=False)
    assert not _outputs(result)
    (failure,) = [str(f) for f in result.failures]
    assert "pixels differ" in failure and "nothing is dropped" in failure


def test_a_copy_is_dropped_with_its_reason(write_phantom, tmp_path):
    result = convert([write_phantom("duplicate_positions")], tmp_path / "out", ConvertOptions(), progress=False)
    (note,) = [d for d in _outputs(result)[0]["decisions"] if d.startswith("duplicate position")]
    assert note.endswith("(the same pixel values: a copy)")


# --- Siemens MOSAIC ----------------------------------------------------------------------------


def _mosaic_volumes(times: int) -> tuple[SyntheticSeries, list[list]]:
    """An oblique EPI-like volume of 10 slices of 12x16 pixels, ``times`` times."""
    row = (1.0, 0.0, 0.0)
    col = (0.0, float(np.cos(0.2)), float(-np.sin(0.2)))
    tiles = phantoms._slices_at(phantoms._steps(10, 3.5, start_mm=-10.0), orientation=(row, col), size=12,
                                spacing_mm=2.5, slice_thickness_mm=3.0)
    tiles = [dataclasses.replace(t, columns=16) for t in tiles]
    volumes = [list(tiles) for _ in range(times)]
    series = phantoms._series("mosaic", tiles, modality="MR")
    series.encoding = Encoding(axis=(0.3, -0.5, 0.8), scale=20.0)
    return series, volumes


def test_a_mosaic_is_unpacked_into_slices_at_their_true_positions(tmp_path):
    series, volumes = _mosaic_volumes(times=1)
    (path,) = write_mosaics(series, volumes, tmp_path)
    slices, excluded = scan_file(path)
    assert excluded == [] and len(slices) == 10
    assert {(s.rows, s.columns, s.mosaic_columns, s.number_of_frames) for s in slices} == {(12, 16, 4, 10)}
    for header, tile in zip(slices, volumes[0]):
        assert header.position_lps_mm == pytest.approx(tile.position_lps_mm, abs=1e-6)
    pixels = load_pixels(slices, dtype=np.float64)
    for header, values in zip(slices, pixels):
        centres = pixel_centres_lps(header.position_lps_mm, header.row_cosines, header.col_cosines,
                                    header.pixel_spacing_mm, header.rows, header.columns)
        assert np.array_equal(values, expected_values(series.encoding, centres))


def test_a_time_series_of_mosaics_converts_every_volume_exactly(tmp_path):
    series, volumes = _mosaic_volumes(times=3)
    write_mosaics(series, volumes, tmp_path / "in")
    (found,) = analyze([tmp_path / "in"]).series
    assert [s.slice_count for s in found.stacks] == [10, 10, 10]
    assert any("Siemens MOSAIC" in r for r in found.stacks[0].reasons)
    result = convert([tmp_path / "in"], tmp_path / "out", ConvertOptions(), progress=False)
    assert result.ok and len(_outputs(result)) == 3
    for output in _outputs(result):
        assert any(d.startswith("Siemens MOSAIC: 10 tiles of 16x12 pixels") for d in output["decisions"])
        nrrd = read_nrrd(output["path"])
        centres = voxel_centres_lps(nrrd.array.shape, nrrd.index_to_lps)
        assert np.array_equal(nrrd.array, expected_values(series.encoding, centres))


def test_a_mosaic_without_its_csa_header_is_left_out_with_the_reason(tmp_path):
    series, volumes = _mosaic_volumes(times=1)
    (path,) = write_mosaics(series, volumes, tmp_path)
    import pydicom

    ds = pydicom.dcmread(path)
    del ds[0x00291010]
    ds.save_as(path)
    slices, (excluded,) = scan_file(path)
    assert slices == [] and "no Siemens CSA image header" in excluded.reason


# --- interrupted and sparse series -------------------------------------------------------------


def test_an_interrupted_time_point_has_missing_slices_and_the_gap_policies_apply(write_phantom, tmp_path):
    folder = write_phantom("interrupted_time_series")
    (series,) = analyze([folder]).series
    last = next(s for s in series.stacks if s.slice_count == 8)
    assert last.name == "time point 3"
    missing = [i for i in last.geometry.irregularities if i.kind == "missing_slices"]
    assert [i.details.missing_count for i in missing] == [1, 1, 1, 1]
    assert "variable_spacing" not in _kinds(last) and not last.geometry.regular
    blank = convert([folder], tmp_path / "blank", ConvertOptions(gaps="blank"), progress=False)
    (output,) = [o for o in _outputs(blank) if len(o["source_files"]) == 8]
    assert output["mask_path"] and output["shape"][2] == 12 and output["slice_spacing_mm"] == 3.0
    mask = read_nrrd(output["mask_path"]).array
    assert [k for k in range(12) if not mask[k].any()] == [3, 5, 7, 9]
    split = convert([folder], tmp_path / "split", ConvertOptions(gaps="split"), progress=False)
    assert sorted(len(o["source_files"]) for o in _outputs(split)) == [1, 1, 1, 2, 3, 12, 12]


def test_a_sparse_series_is_judged_against_the_step_its_instance_numbers_and_thickness_agree_on(write_phantom):
    (stack,) = analyze([write_phantom("sparse_series")]).series[0].stacks
    missing = [i for i in stack.geometry.irregularities if i.kind == "missing_slices"]
    assert "variable_spacing" not in _kinds(stack) and "nominal_mismatch" not in _kinds(stack)
    assert [i.details.missing_count for i in missing] == [len(i.details.instance_numbers) for i in missing]
    assert sum(i.details.missing_count for i in missing) == 110
    assert all(i.details.local_step_mm == 2.5 for i in missing)
    assert stack.geometry.spacing.nominal == 2.5  # SliceThickness, which the numbering supports


# --- vendor quirks -----------------------------------------------------------------------------


def test_ge_pepolar_rows_stored_upside_down_are_flipped_back_and_said(write_phantom, tmp_path):
    folder = write_phantom("ge_pepolar")
    slices = scan([folder]).slices
    assert {s.temporal_position for s in slices if s.flip_rows} == {1}
    result = convert([folder], tmp_path / "out", ConvertOptions(), progress=False)
    assert result.ok and len(_outputs(result)) == 2
    encoding = phantoms.ge_pepolar().series.encoding
    for output in _outputs(result):
        nrrd = read_nrrd(output["path"])
        assert np.array_equal(nrrd.array, expected_values(encoding, voxel_centres_lps(nrrd.array.shape, nrrd.index_to_lps)))
    flipped = [o for o in _outputs(result) if any(d.startswith("rows of 8 of 8 slices flipped back") for d in o["decisions"])]
    assert len(flipped) == 1


def test_a_private_object_without_pixel_data_is_not_called_truncated(tmp_path):
    ds = Dataset()
    ds.SOPClassUID = "1.3.46.670589.11.0.0.12.2"
    ds.SOPInstanceUID = uid("philips private")
    ds.SeriesInstanceUID = uid("philips private series")
    ds.Modality = "MR"
    ds.Rows = ds.Columns = 1
    path = save_dataset(ds, tmp_path / "private.dcm", ExplicitVRLittleEndian)
    _, (excluded,) = scan_file(path)
    assert "truncated" not in excluded.reason
    assert excluded.reason.startswith("no pixel data: Philips Private MR Series Data Storage")


def test_classic_and_enhanced_copies_of_one_series_are_told_apart_in_words(tmp_path):
    phantom = phantoms.regular()
    phantom.write(tmp_path / "classic")
    phantoms.write_series(phantom.series, tmp_path / "enhanced", multiframe=True)
    (series,) = analyze([tmp_path]).series
    reasons = {r for s in series.stacks for r in s.reasons}
    assert any("in single-frame (classic) files, kept apart from" in r and "in multi-frame stack 1 (StackID)" in r
               for r in reasons)
    assert not any("(none)" in r for r in reasons)


# --- Slicer loadables --------------------------------------------------------------------------


def test_loadables_carry_the_volume_names_and_mosaics_are_read_from_their_files(write_phantom, tmp_path):
    from irregular_series.headers import HEADER_TAGS, needs_file_scan
    from irregular_series.slicer.examine import examine_series

    (series,) = analyze([write_phantom("magnitude_phase_classic")]).series
    names = [spec.node_name for spec in examine_series(series, "1: dual echo")]
    assert "1: dual echo — volume 3 of 4, phase echo number 1" in names
    mosaic, volumes = _mosaic_volumes(times=1)
    (path,) = write_mosaics(mosaic, volumes, tmp_path / "mosaic")
    import pydicom

    ds = pydicom.dcmread(path, stop_before_pixels=True)
    cached = {HEADER_TAGS["ImageType"]: "\\".join(ds.ImageType), HEADER_TAGS["NumberOfFrames"]: ""}
    assert needs_file_scan(lambda tag: cached.get(tag, ""))
    (found,) = analyze([path]).series
    (spec,) = examine_series(found, "1: mosaic")
    assert spec.files == (str(path),) and spec.role == "volume"
