"""One volume from several series: finding candidates, joining them, CLI; phantoms whose voxels
encode their LPS position, and a real series split into several."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from irregular_series import cli
from irregular_series.analysis import analyze
from irregular_series.assembly import JunctionKind, find_candidates, requested_candidate
from irregular_series.conversion import ConvertOptions, convert
from irregular_series.testing.synthetic import Encoding, uid, write_series

from phantoms import SAGITTAL, _series, _stack
from volume_checks import COPY_ROUNDING, ENCODING, ROUNDING, data_voxels, encoding_error, read_nrrd


def station(root: Path, name: str, count: int, step_mm: float, start_mm: float, number: int, *,
            encoding: Encoding = ENCODING, series_fields: dict | None = None, **slice_fields) -> str:
    """Write one series of ``count`` axial slices into ``root/name``; return its UID."""
    series = _series(name, _stack(count, step_mm, start_mm=start_mm, **slice_fields), series_number=number,
                     encoding=encoding)
    series = dataclasses.replace(series, **(series_fields or {}))
    write_series(series, root / name, names="shuffled")
    return series.series_instance_uid


def messages(output: dict) -> list[str]:
    return [d["message"] for d in output["decisions"]]


def joined(tmp_path: Path, **options):
    result = convert([tmp_path / "in"], tmp_path / "out", ConvertOptions(**options), progress=False)
    assert result.failures == []
    return result, json.loads(result.report_path.read_text())


def test_two_stations_with_an_overlap_are_offered_and_joined_bit_for_bit(tmp_path):
    root = tmp_path / "in"
    station(root, "upper", 20, 2.5, -25.0, 4)
    station(root, "lower", 20, 2.5, 12.5, 5)
    (candidate,) = find_candidates(analyze([root]))
    assert candidate.reasons[0] == ("series 4 and 5 form one axial stack along the normal: 2 stations, "
                                    "overlap 10.0 mm")
    assert [j.kind for j in candidate.junctions] == [JunctionKind.OVERLAP]
    result, report = joined(tmp_path, assemble=True)
    assert report["assembly_candidates"][0]["reasons"][0] == candidate.reasons[0]
    (output,) = report["outputs"]
    assert output["shape"] == [32, 32, 35] and output["interpolated"] is False
    volume = read_nrrd(output["path"])
    assert encoding_error(volume) <= COPY_ROUNDING
    first, second = output["assembly"]["sources"]
    # The 10 mm overlap (12.5–22.5 mm) is cut at 17.5 mm: each series keeps its own half.
    assert (first["used_start_mm"], first["used_end_mm"]) == (-25.0, 15.0)
    assert (second["used_start_mm"], second["used_end_mm"]) == (17.5, 60.0)
    assert len(first["left_out_files"]) == 3 and len(second["left_out_files"]) == 2
    assert output["max_position_error_mm"] == 0.0
    assert any("median difference +0" in d for d in messages(output))


def test_without_asking_nothing_is_joined(tmp_path):
    root = tmp_path / "in"
    station(root, "upper", 20, 2.5, -25.0, 4)
    station(root, "lower", 20, 2.5, 12.5, 5)
    result, report = joined(tmp_path)
    assert len(report["outputs"]) == 2 and all("assembly" not in o for o in report["outputs"])
    assert len(report["assembly_candidates"]) == 1


def test_three_stations_of_different_pixel_spacing_and_matrix(tmp_path):
    root = tmp_path / "in"
    station(root, "a", 20, 2.5, -25.0, 4)
    station(root, "b", 20, 2.5, 15.0, 5, size=24, spacing_mm=1.5)
    station(root, "c", 12, 2.5, 50.0, 6, size=40, spacing_mm=0.75)
    (candidate,) = find_candidates(analyze([root]))
    assert candidate.reasons[0].endswith("3 stations, overlaps 7.5 mm and 12.5 mm")
    assert "in-plane grids differ" in candidate.reasons[2]
    _, report = joined(tmp_path, assemble=True)
    (output,) = report["outputs"]
    volume = read_nrrd(output["path"])
    # The finest spacing (0.75 mm, c's lattice) over the union of the fields of view: b's reaches
    # from 3.5 of c's pixels before c's first to 42.5 after it, so 48 pixels.
    assert output["spacing"][:2] == [0.75, 0.75] and output["shape"][:2] == [48, 48]
    assert output["interpolated"] is True and output["max_position_error_mm"] <= 0.01
    assert encoding_error(volume) <= ROUNDING
    valid = data_voxels(volume)
    assert not valid.all()  # a's and c's planes do not reach b's wider field of view
    assert valid[:, 24, 24].all()  # the centre line is covered everywhere


def test_non_square_pixels_keep_their_row_and_column_steps(tmp_path):
    """PixelSpacing lists the step between rows first: a station of 40 columns 0.75 mm apart and 20
    rows 1.5 mm apart, joined with one of square 1 mm pixels, gives a lattice of the finest step
    along each axis (0.75 mm along i, 1 mm along j), every voxel where its encoding says. Reading
    the two steps the other way round gives 1 x 0.75 mm and misplaces the voxels."""
    root = tmp_path / "in"
    station(root, "square", 20, 2.5, -25.0, 4)
    slices = [dataclasses.replace(s, rows=20, columns=40, pixel_spacing_mm=(1.5, 0.75),
                                  position_lps_mm=(-14.625, -14.25, s.position_lps_mm[2]))
              for s in _stack(20, 2.5, start_mm=12.5)]
    write_series(_series("oblong", slices, series_number=5, encoding=ENCODING), root / "oblong", names="shuffled")
    (candidate,) = find_candidates(analyze([root]))
    assert candidate.stations[1].grid_phrase == "40x20 pixels of 0.75x1.5 mm"
    _, report = joined(tmp_path, assemble=True, mask=True)
    (output,) = report["outputs"]
    assert output["spacing"][:2] == [0.75, 1.0] and output["interpolated"] is True
    # The square station's 31 mm field holds the oblong one's (29.25 x 28.5 mm): 43 x 32 pixels.
    assert output["shape"][:2] == [43, 32]
    assert output["max_position_error_mm"] <= 0.01
    volume = read_nrrd(output["path"])
    assert encoding_error(volume) <= ROUNDING + 1e-9  # both interpolations round: 0.5 each, and float noise
    valid = data_voxels(volume)
    # The oblong station's planes (from 17.5 mm) reach 14.625 mm either side of the centre along
    # x and 14.25 mm along y: in the square station's 15.5 mm field, not beyond.
    x_mm, y_mm = volume.index_to_lps[0, 3] + 0.75 * np.arange(volume.array.shape[2]), \
        volume.index_to_lps[1, 3] + 1.0 * np.arange(volume.array.shape[1])
    last = valid[-1]
    assert last[:, np.abs(x_mm) > 14.7].sum() == 0 and last[np.abs(y_mm) > 14.3].sum() == 0
    assert last[np.ix_(np.abs(y_mm) < 14.2, np.abs(x_mm) < 14.6)].all()


def test_abutting_stations(tmp_path):
    root = tmp_path / "in"
    station(root, "a", 10, 2.0, 0.0, 1)
    station(root, "b", 10, 2.0, 20.0, 2)
    (candidate,) = find_candidates(analyze([root]))
    assert [j.kind for j in candidate.junctions] == [JunctionKind.ABUT]
    assert candidate.reasons[0].endswith("2 stations, abutting")
    _, report = joined(tmp_path, assemble=True)
    (output,) = report["outputs"]
    assert output["shape"][2] == 20 and output["interpolated"] is False
    assert encoding_error(read_nrrd(output["path"])) <= COPY_ROUNDING


@pytest.mark.parametrize("gaps", ["interpolate", "blank", "split"])
def test_a_gap_between_stations_follows_the_gap_policy(tmp_path, gaps):
    root = tmp_path / "in"
    station(root, "a", 10, 2.0, 0.0, 1)
    station(root, "b", 10, 2.0, 25.0, 2)  # 18 mm last slice to first: a 5 mm gap beyond one step
    (candidate,) = find_candidates(analyze([root]))
    assert candidate.reasons[0].endswith("2 stations, gap 5.0 mm")
    _, report = joined(tmp_path, assemble=True, gaps=gaps, spacing=1.0)
    outputs = report["outputs"]
    assert len(outputs) == (2 if gaps == "split" else 1)
    for output in outputs:
        assert encoding_error(read_nrrd(output["path"])) <= ROUNDING
        assert any("gap 5.0 mm between series 1 and series 2" in d for d in messages(output))
    if gaps == "blank":
        mask = read_nrrd(outputs[0]["mask_path"]).array
        # 18 mm to 25 mm: the planes within a slice's reach (1 mm each side) copy it; 20–23 mm are blank.
        assert mask[20:24].max() == 0 and mask[:20].min() == 1 and mask[24:].min() == 1


def test_one_series_per_slice_shuffled(tmp_path):
    root = tmp_path / "in"
    slices = _stack(12, 1.5, start_mm=-9.0)
    order = np.random.default_rng(3).permutation(len(slices))
    for n, k in enumerate(order):
        one = dataclasses.replace(slices[k], instance_number=1)
        series = _series(f"slice_{k}", [one], series_number=100 + n, encoding=ENCODING)
        write_series(series, root / f"s{n}", names="shuffled")
    (candidate,) = find_candidates(analyze([root]))
    assert candidate.reasons[0] == "12 series of one axial slice each line up into one stack along the normal"
    _, report = joined(tmp_path, assemble=True)
    (output,) = report["outputs"]
    assert output["shape"] == [32, 32, 12] and output["interpolated"] is False
    assert encoding_error(read_nrrd(output["path"])) <= COPY_ROUNDING


def test_different_frames_of_reference_only_on_request(tmp_path):
    root = tmp_path / "in"
    a = station(root, "a", 10, 2.0, 0.0, 1)
    b = station(root, "b", 10, 2.0, 16.0, 2, series_fields={"frame_of_reference_uid": uid("another frame")})
    analysis = analyze([root])
    assert find_candidates(analysis) == []
    candidate = requested_candidate(analysis, [b, a])
    assert candidate.series_uids == (a, b) and candidate.requested
    assert "frames of reference differ" in candidate.reasons[-1]
    _, report = joined(tmp_path, assemble=(a, b))
    (output,) = report["outputs"]
    assert output["assembly"]["requested"] is True
    assert encoding_error(read_nrrd(output["path"])) <= COPY_ROUNDING


def test_other_studies_are_never_joined(tmp_path):
    root = tmp_path / "in"
    a = station(root, "a", 10, 2.0, 0.0, 1)
    b = station(root, "b", 10, 2.0, 16.0, 2, series_fields={"frame_of_reference_uid": uid("f2"),
                                                            "study_instance_uid": uid("s2")})
    with pytest.raises(ValueError, match="neither share a frame of reference nor a study"):
        requested_candidate(analyze([root]), [a, b])
    result = convert([root], tmp_path / "out", ConvertOptions(assemble=(a, b)), progress=False)
    assert len(result.outputs) == 2 and "converted one by one" in str(result.failures[0])


def test_two_orientations_are_never_joined(tmp_path):
    root = tmp_path / "in"
    a = station(root, "axial", 10, 2.0, 0.0, 1)
    b = station(root, "sagittal", 10, 2.0, 30.0, 2, orientation=SAGITTAL)
    analysis = analyze([root])
    assert find_candidates(analysis) == []
    with pytest.raises(ValueError, match="not parallel"):
        requested_candidate(analysis, [a, b])


def test_series_covering_the_same_range_are_not_offered(tmp_path):
    root = tmp_path / "in"
    a = station(root, "t1", 20, 2.0, 0.0, 1)
    b = station(root, "t2", 20, 2.0, 0.0, 2)
    analysis = analyze([root])
    assert find_candidates(analysis) == []
    with pytest.raises(ValueError, match="do not follow each other"):
        requested_candidate(analysis, [a, b])


@pytest.mark.parametrize(("overlap", "first_end", "second_start"),
                         [("first", 22.5, 25.0), ("last", 10.0, 12.5), ("middle", 15.0, 17.5)])
def test_overlap_policies_choose_the_slices(tmp_path, overlap, first_end, second_start):
    root = tmp_path / "in"
    station(root, "upper", 20, 2.5, -25.0, 4)
    station(root, "lower", 20, 2.5, 12.5, 5)
    _, report = joined(tmp_path, assemble=True, overlap=overlap)
    (output,) = report["outputs"]
    first, second = output["assembly"]["sources"]
    assert (first["used_end_mm"], second["used_start_mm"]) == (first_end, second_start)
    assert encoding_error(read_nrrd(output["path"])) <= COPY_ROUNDING


def test_blend_weights_the_overlap_and_differences_are_reported(tmp_path):
    root = tmp_path / "in"
    station(root, "upper", 20, 2.5, -25.0, 4)
    brighter = dataclasses.replace(ENCODING, offset=40.0)
    station(root, "lower", 20, 2.5, 12.5, 5, encoding=brighter)
    _, report = joined(tmp_path, assemble=True, overlap="blend")
    (output,) = report["outputs"]
    assert any("median difference +40 (series 5 minus series 4" in d for d in messages(output))
    assert output["assembly"]["intensity_differences"][0]["median_difference"] == 40.0
    volume = read_nrrd(output["path"])
    centres_k = np.arange(volume.array.shape[0]) * 2.5 - 25.0
    offset = (volume.array.astype(float) - ENCODING.values(
        _centres(volume)))[:, 16, 16]
    # 0 below the overlap, 40 above it, and a linear ramp across 12.5–22.5 mm.
    ramp = np.clip((centres_k - 12.5) / 10.0, 0.0, 1.0) * 40.0
    np.testing.assert_allclose(offset, ramp, atol=ROUNDING)


def _centres(volume) -> np.ndarray:
    k, j, i = np.indices(volume.array.shape)
    index = np.stack([i, j, k, np.ones_like(i)], axis=-1).astype(float)
    return (index @ volume.index_to_lps.T)[..., :3]


def test_cli_inspect_lists_candidates_and_convert_joins_the_named_series(tmp_path, capsys):
    root = tmp_path / "in"
    a = station(root, "upper", 20, 2.5, -25.0, 4)
    b = station(root, "lower", 20, 2.5, 12.5, 5)
    assert cli.main(["inspect", str(root)]) == 0
    text = capsys.readouterr().out
    assert "Assembly candidate: series 4 and 5 form one axial stack along the normal" in text
    assert f"series UIDs: {a},{b}" in text
    assert cli.main(["convert", str(root), "-o", str(tmp_path / "out"), "--assemble", f"{a},{b}",
                     "--overlap", "last"]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    (output,) = report["outputs"]
    assert report["options"]["assemble"] == [a, b] and report["options"]["overlap"] == "last"
    assert output["assembly"]["sources"][0]["used_end_mm"] == 10.0


# --- real data: a real series split into several, joined back --------------------------------

REAL_SERIES = "ct_tilt_localizer_philips/S3010"


def _split(source: Path, target: Path, ranges: list[range], crop: dict[int, tuple[int, int]] | None = None) -> None:
    """Copy the series' files into ``target``, one new SeriesInstanceUID per range of spatial
    indices (ranges may overlap: a file then goes into both); ``crop`` cuts the slices of one
    range to rows/columns [lo, hi) in-plane, moving ImagePositionPatient accordingly."""
    datasets = [pydicom.dcmread(p) for p in sorted(source.iterdir()) if p.is_file()]
    datasets = [d for d in datasets if "ImagePositionPatient" in d]
    normal = np.cross(*np.array(datasets[0].ImageOrientationPatient, float).reshape(2, 3))
    datasets.sort(key=lambda d: float(np.dot(d.ImagePositionPatient, normal)))
    for n, indices in enumerate(ranges):
        folder = target / f"part{n}"
        folder.mkdir(parents=True)
        series_uid = uid(source, "part", n)
        for k in indices:
            ds = pydicom.dcmread(datasets[k].filename)
            ds.SeriesInstanceUID = series_uid
            ds.SOPInstanceUID = uid(source, "part", n, k)
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            if crop and n in crop:
                lo, hi = crop[n]
                pixels = ds.pixel_array[lo:hi, lo:hi]
                row, col = np.array(ds.ImageOrientationPatient, float).reshape(2, 3)
                spacing = np.array(ds.PixelSpacing, float)
                ds.ImagePositionPatient = [float(v) for v in np.array(ds.ImagePositionPatient, float)
                                           + lo * spacing[1] * row + lo * spacing[0] * col]
                ds.Rows = ds.Columns = hi - lo
                ds.PixelData = np.ascontiguousarray(pixels).tobytes()
            ds.save_as(folder / f"{k:03d}.dcm")


@pytest.fixture(scope="module")
def real_original(realdata, tmp_path_factory):
    source = realdata / REAL_SERIES
    if not source.is_dir():
        pytest.skip(f"{source} not found")
    out = tmp_path_factory.mktemp("original")
    result = convert([source], out, ConvertOptions(), progress=False)
    volumes = [o for o in result.outputs if o.role == "volume"]
    assert result.failures == [] and len(volumes) == 1
    return source, read_nrrd(volumes[0].path), len(volumes[0].source_files)


def test_real_series_split_by_series_uid_assembles_back_voxel_for_voxel(real_original, tmp_path):
    source, original, count = real_original
    _split(source, tmp_path / "in", [range(0, 22), range(18, 40), range(37, count)])
    (candidate,) = find_candidates(analyze([tmp_path / "in"]))
    assert candidate.reasons[0].endswith("3 stations, overlaps 7.2 mm and 4.8 mm")
    _, report = joined(tmp_path, assemble=True)
    (output,) = report["outputs"]
    assembled = read_nrrd(output["path"])
    np.testing.assert_allclose(assembled.index_to_lps, original.index_to_lps, atol=1e-6)
    assert assembled.array.shape == original.array.shape
    np.testing.assert_array_equal(assembled.array, original.array)


def test_real_series_with_one_station_cropped_in_plane(real_original, tmp_path):
    source, original, count = real_original
    _split(source, tmp_path / "in", [range(0, 30), range(28, count)], crop={1: (96, 416)})
    _, report = joined(tmp_path, assemble=True)
    (output,) = report["outputs"]
    assembled = read_nrrd(output["path"])
    # The cropped station no longer reaches the edges the tilt drift gave the original: the
    # assembled grid is the original's lattice, narrower; compare on the voxels it holds.
    np.testing.assert_allclose(assembled.index_to_lps[:3, :3], original.index_to_lps[:3, :3], atol=1e-9)
    offset = np.linalg.solve(original.index_to_lps, assembled.index_to_lps[:, 3])[:3]
    np.testing.assert_allclose(offset, np.rint(offset), atol=1e-6)
    i0, j0, k0 = (int(v) for v in np.rint(offset))
    k, j, i = assembled.array.shape
    same = original.array[k0:k0 + k, j0:j0 + j, i0:i0 + i]
    valid = data_voxels(assembled)
    assert 0.5 < valid.mean() < 1.0
    # The cropped station's slices go through float work arrays (NaN beyond its field of view):
    # an interpolated value that lies on a rounding tie may round the other way.
    difference = np.abs(assembled.array[valid].astype(int) - same[valid])
    assert difference.max() <= 1 and np.count_nonzero(difference) < 1e-4 * difference.size


@pytest.mark.parametrize("overlap", ["middle", "blend"])
def test_assembled_volume_as_a_dicom_series_references_every_series(tmp_path, overlap):
    root = tmp_path / "in"
    a = station(root, "upper", 20, 2.5, -25.0, 4)
    b = station(root, "lower", 20, 2.5, 12.5, 5)
    _, report = joined(tmp_path, assemble=True, overlap=overlap, format="dicom")
    (output,) = report["outputs"]
    files = sorted(Path(output["path"]).iterdir())
    assert len(files) == 35
    referenced = set()
    for f in files:
        ds = pydicom.dcmread(f)
        referenced |= {item.SeriesInstanceUID for item in ds.ReferencedSeriesSequence}
    assert referenced == {a, b}
