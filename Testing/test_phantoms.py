"""The phantom generator writes real DICOM that pydicom reads back with the intended geometry,
and whose voxel values encode the LPS position of each pixel centre."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pydicom
import pytest
from pydicom.errors import InvalidDicomError
from pydicom.uid import (
    CTImageStorage,
    EnhancedCTImageStorage,
    EnhancedMRImageStorage,
    MRImageStorage,
    RawDataStorage,
)

from irregular_series.testing.synthetic import (
    TRANSFER_SYNTAXES,
    Encoding,
    SyntheticSeries,
    SyntheticSlice,
    expected_values,
    micro_ct_demo_series,
    pixel_centres_lps,
    stored_values,
    write_demo,
    write_non_image_objects,
    write_series,
)

import phantoms


def _floats(values) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


def _frame_headers(ds: pydicom.Dataset) -> list[dict]:
    """Geometry and rescale of every frame, straight from the header (single- or multi-frame)."""
    if "PerFrameFunctionalGroupsSequence" not in ds:
        sources = [{"position": ds, "orientation": ds, "measures": ds, "rescale": ds}]
    else:
        shared = ds.SharedFunctionalGroupsSequence[0]

        def group(item, keyword):
            return getattr(item if keyword in item else shared, keyword)[0]

        sources = [
            {
                "position": group(item, "PlanePositionSequence"),
                "orientation": group(item, "PlaneOrientationSequence"),
                "measures": group(item, "PixelMeasuresSequence"),
                "rescale": group(item, "PixelValueTransformationSequence"),
            }
            for item in ds.PerFrameFunctionalGroupsSequence
        ]
    return [
        {
            "ipp": _floats(s["position"].ImagePositionPatient),
            "iop": _floats(s["orientation"].ImageOrientationPatient),
            "spacing": _floats(s["measures"].PixelSpacing),
            "slope": float(s["rescale"].RescaleSlope),
            "intercept": float(s["rescale"].RescaleIntercept),
        }
        for s in sources
    ]


def _assert_encoded(ds: pydicom.Dataset, encoding: Encoding) -> None:
    """Every pixel of every frame holds the encoded value of its centre, as its header places it."""
    pixels = ds.pixel_array.reshape(-1, ds.Rows, ds.Columns)
    frames = _frame_headers(ds)
    assert len(frames) == pixels.shape[0]
    for frame, stored in zip(frames, pixels):
        row, col = frame["iop"][:3], frame["iop"][3:]
        centres = pixel_centres_lps(frame["ipp"], row, col, frame["spacing"], ds.Rows, ds.Columns)
        expected = expected_values(encoding, centres, frame["slope"], frame["intercept"])
        np.testing.assert_array_equal(stored * frame["slope"] + frame["intercept"], expected)


def _assert_geometry(frame: dict, s: SyntheticSlice) -> None:
    np.testing.assert_allclose(frame["ipp"], s.position_lps_mm, atol=1e-9)
    np.testing.assert_allclose(frame["iop"], s.row_cosines + s.col_cosines, atol=1e-9)
    assert frame["spacing"] == pytest.approx(s.pixel_spacing_mm)
    assert (frame["slope"], frame["intercept"]) == (s.rescale_slope, s.rescale_intercept)


# --- single-frame --------------------------------------------------------------------------


def test_regular_series_reads_back_as_written(tmp_path):
    phantom = phantoms.regular()
    paths = phantom.write(tmp_path, names="instance")
    for path, s in zip(paths, phantom.series.slices):
        ds = pydicom.dcmread(path)
        assert ds.SOPClassUID == CTImageStorage
        assert ds.SeriesInstanceUID == phantom.series.series_instance_uid
        assert ds.InstanceNumber == s.instance_number
        assert tuple(ds.ImageType) == s.image_type
        assert float(ds.SliceThickness) == float(ds.SpacingBetweenSlices) == 2.5
        assert (ds.PixelRepresentation, ds.BitsStored, ds.pixel_array.dtype) == (1, 16, np.int16)
        _assert_geometry(_frame_headers(ds)[0], s)
        _assert_encoded(ds, phantom.series.encoding)


def test_encoding_at_known_pixels_of_a_tilted_slice(tmp_path):
    """Checked by hand, not through pixel_centres_lps: value = 10 · z of the pixel centre."""
    phantom = phantoms.gantry_tilt(18.5)
    ds = pydicom.dcmread(phantom.write(tmp_path, names="instance")[3])
    t = math.radians(18.5)
    iop = _floats(ds.ImageOrientationPatient)
    assert iop == pytest.approx((1, 0, 0, 0, math.cos(t), -math.sin(t)), abs=1e-9)
    assert float(ds.GantryDetectorTilt) == 18.5
    z0 = float(ds.ImagePositionPatient[2])
    # Row j moves by j · 1 mm along the column direction, whose z component is -sin t.
    for j, i in [(0, 0), (0, 31), (31, 0), (17, 5)]:
        assert ds.pixel_array[j, i] == np.rint(10 * (z0 - j * math.sin(t)))
    _assert_encoded(ds, phantom.series.encoding)


@pytest.mark.parametrize("case", ["gantry_tilt", "tilt_with_missing", "mf_tilted"])
def test_tilted_positions_step_along_the_table(tmp_path, case):
    phantom = phantoms.CASES[case]()
    frames = []
    for path in phantom.write(tmp_path):
        frames += _frame_headers(pydicom.dcmread(path))
    ipps = np.array(sorted(f["ipp"] for f in frames))
    iop = np.array(frames[0]["iop"])
    normal = np.cross(iop[:3], iop[3:])
    line = ipps[-1] - ipps[0]
    np.testing.assert_allclose(ipps[:, :2], ipps[:1, :2].repeat(len(ipps), 0), atol=1e-9)
    tilt = math.degrees(math.acos(np.dot(line, normal) / np.linalg.norm(line)))
    assert tilt == pytest.approx(phantom.truth.tilt_deg, abs=1e-6)
    assert tuple(sorted(np.round(ipps @ normal, 6))) == pytest.approx(phantom.truth.positions_mm)


def test_rescale_and_photometric_are_written(tmp_path):
    s = SyntheticSlice((0.0, 0.0, 7.3), rows=16, columns=16, rescale_slope=2.5, rescale_intercept=-1024)
    series = SyntheticSeries([s, dataclasses.replace(s, photometric="MONOCHROME1")], modality="MR")
    paths = write_series(series, tmp_path)
    ds = pydicom.dcmread(paths[0])
    assert ds.SOPClassUID == MRImageStorage
    assert ds.pixel_array[0, 0] == np.rint((73.0 + 1024.0) / 2.5)
    _assert_encoded(ds, series.encoding)
    assert pydicom.dcmread(paths[1]).PhotometricInterpretation == "MONOCHROME1"


def test_omit_leaves_keywords_out(tmp_path):
    omit = ("ImagePositionPatient", "PixelSpacing")
    s = SyntheticSlice((0.0, 0.0, 0.0), rows=16, columns=16, omit=omit)
    series = SyntheticSeries([s, dataclasses.replace(s, omit=("ImagePositionPatient",))])
    single = pydicom.dcmread(write_series(series, tmp_path / "single")[0])
    assert "ImagePositionPatient" not in single and "PixelSpacing" not in single
    assert "ImageOrientationPatient" in single and "PixelData" in single
    enhanced = pydicom.dcmread(write_series(series, tmp_path / "multi", multiframe=True)[0])
    first, second = enhanced.PerFrameFunctionalGroupsSequence
    assert "ImagePositionPatient" not in first.PlanePositionSequence[0]
    assert "PixelSpacing" not in first.PixelMeasuresSequence[0]
    assert "PixelSpacing" in second.PixelMeasuresSequence[0]


def test_values_that_do_not_fit_int16_are_refused():
    with pytest.raises(ValueError, match="int16"):
        stored_values(Encoding(scale=1000.0), np.array([[0.0, 0.0, 40.0]]))


# --- multi-frame ---------------------------------------------------------------------------


def test_multiframe_keeps_the_given_frame_order(tmp_path):
    phantom = phantoms.mf_shuffled()
    (path,) = phantom.write(tmp_path)
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == EnhancedCTImageStorage
    assert ds.NumberOfFrames == 20
    shared = ds.SharedFunctionalGroupsSequence[0]
    assert "PixelMeasuresSequence" in shared and "PlaneOrientationSequence" in shared
    frames = _frame_headers(ds)
    for frame, s in zip(frames, phantom.series.slices):
        _assert_geometry(frame, s)
    z = [f["ipp"][2] for f in frames]
    assert z != sorted(z)
    items = ds.PerFrameFunctionalGroupsSequence
    in_stack = [item.FrameContentSequence[0].InStackPositionNumber for item in items]
    assert [sorted(z).index(v) + 1 for v in z] == in_stack
    _assert_encoded(ds, phantom.series.encoding)


def test_multiframe_orientation_per_frame_when_it_varies(tmp_path):
    phantom = phantoms.mf_two_stacks()
    ds = pydicom.dcmread(phantom.write(tmp_path)[0])
    assert "PlaneOrientationSequence" not in ds.SharedFunctionalGroupsSequence[0]
    items = ds.PerFrameFunctionalGroupsSequence
    assert {item.FrameContentSequence[0].StackID for item in items} == {"1", "2"}
    assert all(len(item.FrameContentSequence[0].DimensionIndexValues) == 2 for item in items)
    for frame, s in zip(_frame_headers(ds), phantom.series.slices):
        _assert_geometry(frame, s)
    _assert_encoded(ds, phantom.series.encoding)


def test_multiframe_rescale_per_frame(tmp_path):
    phantom = phantoms.mf_irregular()
    ds = pydicom.dcmread(phantom.write(tmp_path)[0])
    slopes = {f["slope"] for f in _frame_headers(ds)}
    assert slopes == {1.0, 2.0}
    _assert_encoded(ds, phantom.series.encoding)


def test_multiframe_time_points(tmp_path):
    ds = pydicom.dcmread(phantoms.mf_time_points().write(tmp_path)[0])
    contents = [item.FrameContentSequence[0] for item in ds.PerFrameFunctionalGroupsSequence]
    assert [c.TemporalPositionIndex for c in contents] == [t for t in (1, 2, 3, 4) for _ in range(8)]
    assert {tuple(c.DimensionIndexValues) for c in contents} == {
        (1, k, t) for k in range(1, 9) for t in range(1, 5)
    }


def test_enhanced_mr_magnitude_and_phase(tmp_path):
    phantom = phantoms.mf_mr_magnitude_phase()
    ds = pydicom.dcmread(phantom.write(tmp_path)[0])
    assert ds.SOPClassUID == EnhancedMRImageStorage
    assert ds.ComplexImageComponent == "MIXED"
    items = ds.PerFrameFunctionalGroupsSequence
    components = [item.MRImageFrameTypeSequence[0].ComplexImageComponent for item in items]
    assert components == ["MAGNITUDE", "PHASE"] * 10
    in_stack = [item.FrameContentSequence[0].InStackPositionNumber for item in items]
    assert in_stack == [k for k in range(1, 11) for _ in range(2)]
    _assert_encoded(ds, phantom.series.encoding)


# --- encodings and names -------------------------------------------------------------------


@pytest.mark.parametrize("multiframe", [False, True], ids=["single", "multi"])
@pytest.mark.parametrize("syntax", sorted(TRANSFER_SYNTAXES))
def test_every_transfer_syntax_reads_back(tmp_path, syntax, multiframe):
    series = phantoms.regular().series
    series = dataclasses.replace(series, slices=series.slices[:4])
    paths = write_series(series, tmp_path, transfer_syntax=syntax, multiframe=multiframe)
    reference = write_series(series, tmp_path / "le", multiframe=multiframe)
    for path, ref in zip(paths, reference):
        ds = pydicom.dcmread(path)
        assert ds.file_meta.TransferSyntaxUID == TRANSFER_SYNTAXES[syntax]
        np.testing.assert_array_equal(ds.pixel_array, pydicom.dcmread(ref).pixel_array)
        _assert_encoded(ds, series.encoding)


def _z_in_name_order(paths) -> list[float]:
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(paths)]
    return [float(ds.ImagePositionPatient[2]) for ds in headers]


def test_shuffled_names_do_not_sort_spatially(tmp_path):
    series = phantoms.regular().series
    for seed in range(5):
        z = _z_in_name_order(write_series(series, tmp_path / str(seed), names="shuffled", seed=seed))
        assert z != sorted(z) and z != sorted(z, reverse=True)


def test_position_and_instance_names(tmp_path):
    series = phantoms.stitched_sections().series
    z = _z_in_name_order(write_series(series, tmp_path / "position", names="position"))
    assert z == sorted(z)
    paths = sorted(write_series(series, tmp_path / "instance", names="instance"))
    numbers = [pydicom.dcmread(p, stop_before_pixels=True).InstanceNumber for p in paths]
    assert numbers == sorted(numbers)


def test_first_names_put_the_localizer_first(tmp_path):
    phantom = phantoms.localizer_sorts_first()
    paths = phantom.write(tmp_path, names="shuffled")
    assert min(paths) == paths[0]
    assert pydicom.dcmread(paths[0]).ImageOrientationPatient[4] == 0


# --- the catalogue -------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(phantoms.CASES))
def test_every_case_is_readable_and_encoded(tmp_path, case):
    phantom = phantoms.CASES[case]()
    assert all(16 <= max(s.rows, s.columns) <= 32 for s in phantom.series.slices)
    assert len(phantom.series.slices) <= 40
    paths = phantom.write(tmp_path)
    assert len(paths) == (1 if phantom.multiframe else len(phantom.series.slices))
    frames = []
    instance_numbers = []
    for path in paths:
        ds = pydicom.dcmread(path)
        assert ds.SeriesInstanceUID == phantom.series.series_instance_uid
        _assert_encoded(ds, phantom.series.encoding)
        frames += _frame_headers(ds)
        instance_numbers.append(ds.get("InstanceNumber"))
    for frame, s in zip(frames, phantom.series.slices):
        _assert_geometry(frame, s)
    missing = set(phantom.truth.missing_instance_numbers)
    if missing:
        assert not missing & set(instance_numbers)
        assert missing < set(range(min(instance_numbers), max(instance_numbers)))
    if phantom.truth.stacks is not None:
        assert sum(phantom.truth.stacks) == len(phantom.series.slices)


def test_case_specific_headers(write_phantom):
    ge = phantoms.ge_three_plane_localizer().series.slices
    assert {s.image_type for s in ge} == {("ORIGINAL", "PRIMARY", "OTHER")}
    assert len({s.row_cosines + s.col_cosines for s in ge}) == 3
    temporal = phantoms.repeated_positions_temporal().series.slices
    assert sorted({s.temporal_position for s in temporal}) == [1, 2, 3, 4, 5]
    untagged = phantoms.repeated_positions_untagged().series.slices
    assert {s.temporal_position for s in untagged} == {None}
    # time-major numbering: the first volume is instances 1–8
    assert [s.instance_number for s in untagged[:8]] == list(range(1, 9))
    assert {s.echo_number for s in phantoms.echoes().series.slices} == {1, 2}
    stitched = phantoms.stitched_sections().series.slices
    assert sorted({s.acquisition_number for s in stitched}) == [1, 2, 3]
    folder = write_phantom("duplicate_positions")
    uids = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in folder.iterdir()}
    assert len(uids) == 21 and len(phantoms.duplicate_positions().truth.positions_mm) == 20


# --- objects that are not slices -----------------------------------------------------------


# pydicom 2.4 reads a DICOMDIR as its deprecated DicomDir class, with a warning.
@pytest.mark.filterwarnings("ignore:The 'DicomDir' class is deprecated")
def test_non_image_objects_are_what_they_say(tmp_path):
    series = phantoms.regular().series
    objects = write_non_image_objects(tmp_path, series)
    read = {name: pydicom.dcmread(path) for name, path in objects.items() if name != "not_dicom"}
    for name in ("basic_text_sr", "rt_structure_set", "raw_data"):
        assert "PixelData" not in read[name]
    assert read["basic_text_sr"].Modality == "SR"
    assert read["rt_structure_set"].Modality == "RTSTRUCT"
    assert read["raw_data"].SOPClassUID == RawDataStorage
    assert read["raw_data"].SeriesInstanceUID == series.series_instance_uid
    assert read["no_position"].SeriesInstanceUID == series.series_instance_uid
    assert "ImagePositionPatient" not in read["no_position"] and "PixelData" in read["no_position"]
    assert read["junk_decimals"].get_item("PixelSpacing").value.rstrip() == b"0.5\\abc"
    assert read["junk_decimals"].get_item("SliceThickness").value.rstrip() == b"2.5mm"
    iop = np.array(_floats(read["non_normalised_orientation"].ImageOrientationPatient))
    assert np.linalg.norm(iop[:3]) == pytest.approx(1.002)
    assert objects["dicomdir"].name == "DICOMDIR"
    assert read["dicomdir"].file_meta.MediaStorageSOPClassUID == "1.2.840.10008.1.3.10"
    assert objects["truncated"].stat().st_size == 300
    assert "PixelData" not in read["truncated"] and "SOPInstanceUID" not in read["truncated"]
    assert read["truncated_pixels"].SOPClassUID == CTImageStorage
    with pytest.raises(ValueError):
        read["truncated_pixels"].pixel_array
    with pytest.raises(InvalidDicomError):
        pydicom.dcmread(objects["not_dicom"])


# --- the demo ------------------------------------------------------------------------------


def test_micro_ct_demo_is_a_stitched_series_with_a_localizer(tmp_path):
    slices = micro_ct_demo_series().slices
    (localizer,) = [s for s in slices if "LOCALIZER" in s.image_type]
    assert localizer.instance_number == 0 and localizer.col_cosines == (0.0, 0.0, -1.0)
    axial = [s for s in slices if s is not localizer]
    assert (localizer.rows, localizer.columns) != (axial[0].rows, axial[0].columns)
    assert localizer.slice_thickness_mm > 50
    assert {(s.slice_thickness_mm, s.spacing_between_slices_mm) for s in axial} == {(0.6, 0.6)}
    assert sorted(s.instance_number for s in axial) == [n for n in range(1, 121) if n != 60]
    sections = {}
    for s in axial:
        sections.setdefault(s.acquisition_number, []).append(s.position_lps_mm[2])
    assert sorted(sections) == [1, 2, 3]
    assert len({s.content_time for s in axial}) == 3
    first, second, third = (sorted(sections[k]) for k in (1, 2, 3))
    assert 2.0 < first[-1] - second[0] < 5.0 and 2.0 < second[-1] - third[0] < 5.0
    # the second section sits 0.3 mm off the first one's 0.6 mm grid, so their slices interleave
    assert (second[0] - first[0]) % 0.6 == pytest.approx(0.3)

    paths = write_demo(tmp_path)
    assert len(paths) == len(slices)
    first_name = pydicom.dcmread(min(paths), stop_before_pixels=True)
    assert "LOCALIZER" in first_name.ImageType
    assert len({pydicom.dcmread(p, stop_before_pixels=True).SeriesInstanceUID for p in paths}) == 1
