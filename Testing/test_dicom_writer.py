"""``convert --format dicom``: the written series, checked by independent readers and a validator.

Each case is converted twice with the same options, to NRRD and to DICOM. The DICOM series must be
the volume the NRRD file holds (same values, geometry within ``GEOMETRY_MM``) when read back by
pydicom (by hand, from the headers), SimpleITK, slicer-core's vtkITK reader (GDCM and DCMTK, with
no "non uniform sampling" warning) and dcm2niix (no "varies", ``_Eq`` or ``_Tilt``); read back by
this package it is one regular stack that converts bit for bit to the same volume. dciodvfy
(Debian's dicom3tools) must find no errors. Real data skips visibly when absent, and so does each
external reader.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

from irregular_series import analyze, dicom_writer
from irregular_series.conversion import ConvertOptions, convert
from irregular_series.dicom_writer import DERIVATION_CODES, UID_ROOT, choose_encoding
from irregular_series.model import SliceHeader
from irregular_series.runlog import LOG_NAME
from irregular_series.testing.synthetic import SyntheticSeries, write_demo

from phantoms import CASES, _stack
from volume_checks import read_nrrd, tree_digest

GEOMETRY_MM = 1e-3
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
GE_TILT = "ct_tilt_varspacing_ge"
XA30_T1 = "mr_enhanced_multiframe/xa30/5_anat-T1w_acq-tfl"


# --- cases -------------------------------------------------------------------------------------


def _mr_fractional_rescale() -> SyntheticSeries:
    """An MR series whose rescale slope is 0.25: values are fractional, floating-point output."""
    slices = [dataclasses.replace(s, rescale_slope=0.25, rescale_intercept=-3.0) for s in _stack(12, 2.0)]
    return SyntheticSeries(slices, modality="MR", series_description="fractional MR", series_number=7)


def _source(case: str, tmp_path: Path, realdata) -> Path:
    """The source folder of ``case``: a phantom, the demo, or a real-data set."""
    if case in CASES:
        folder = tmp_path / "source"
        CASES[case]().write(folder)
        return folder
    if case == "demo":
        write_demo(tmp_path / "source")
        return tmp_path / "source"
    if case == "mr_fractional":
        from irregular_series.testing.synthetic import write_series

        write_series(_mr_fractional_rescale(), tmp_path / "source")
        return tmp_path / "source"
    folder = realdata() / case
    if not folder.is_dir():
        pytest.skip(f"{folder} is not in the real data")
    return folder


@dataclasses.dataclass
class Converted:
    source: Path
    nrrd: dict
    dicom: dict
    folder: Path
    files: list[Path]
    options: ConvertOptions


def _convert_both(source: Path, tmp_path: Path, **options) -> Converted:
    nrrd = convert([source], tmp_path / "nrrd", ConvertOptions(**options), progress=False)
    dicom = convert([source], tmp_path / "dicom", ConvertOptions(format="dicom", **options), progress=False)
    assert nrrd.ok and dicom.ok, (nrrd.failures, dicom.failures)
    (n,), (d,) = [o.to_dict() for o in nrrd.outputs], [o.to_dict() for o in dicom.outputs]
    folder = Path(d["path"])
    return Converted(source, n, d, folder, [folder / f for f in d["dicom_series"]["files"]],
                     ConvertOptions(format="dicom", **options))


CASES_WRITTEN = {
    "regular": {},
    "gantry_tilt": {},  # deskewed: in-plane shifts, background at the edges (padding)
    "missing_slices_blank": {"gaps": "blank"},  # blank planes: padding, no source images
    "mf_irregular": {},  # Enhanced CT source, rescale differing per frame
    "mr_fractional": {"spacing": 1.5},  # fractional values interpolated: rounded, stated
    "demo": {"spacing": 0.6},
    GE_TILT: {},
    XA30_T1: {},
}


def _case_source(case: str) -> str:
    return "missing_slices" if case == "missing_slices_blank" else case


@pytest.fixture(scope="module", params=list(CASES_WRITTEN), ids=lambda c: c.split("/")[-1])
def converted(request, tmp_path_factory) -> Converted:
    """Each case converted once for all the checks below (real data looked up only when needed)."""
    case = request.param
    tmp_path = tmp_path_factory.mktemp(case.split("/")[-1])
    source = _source(_case_source(case), tmp_path, lambda: request.getfixturevalue("realdata"))
    return _convert_both(source, tmp_path, **CASES_WRITTEN[case])


# --- comparing volumes read by other tools ------------------------------------------------------


def _aligned(array_kji: np.ndarray, index_to_lps: np.ndarray, reference) -> np.ndarray:
    """``array_kji`` on ``index_to_lps`` re-indexed onto the reference grid (a reader may flip or
    permute axes), after checking that the two grids place every corner within GEOMETRY_MM."""
    to_reference = np.linalg.inv(reference.index_to_lps) @ index_to_lps
    permutation = np.rint(to_reference[:3, :3])
    assert sorted(np.abs(permutation).sum(axis=0)) == [1, 1, 1], to_reference
    shape_ijk = np.array(array_kji.shape[::-1])
    corners = np.array([[a, b, c, 1.0] for a in (0, shape_ijk[0] - 1) for b in (0, shape_ijk[1] - 1)
                        for c in (0, shape_ijk[2] - 1)])
    index = corners @ to_reference.T
    assert np.abs(index[:, :3] - np.rint(index[:, :3])).max() * max(
        np.linalg.norm(reference.index_to_lps[:3, :3], axis=0)) <= GEOMETRY_MM
    theirs = corners @ index_to_lps.T
    ours = np.rint(index) @ reference.index_to_lps.T
    assert np.abs(theirs - ours).max() <= GEOMETRY_MM
    ijk = array_kji.transpose(2, 1, 0)
    axes = [int(np.flatnonzero(permutation[b])[0]) for b in range(3)]
    ijk = ijk.transpose(axes)
    for b in range(3):
        if permutation[b, axes[b]] < 0:
            ijk = np.flip(ijk, axis=b)
    assert ijk.shape == reference.array.shape[::-1]
    return ijk.transpose(2, 1, 0)


def _assert_holds_reference(array_kji, index_to_lps, converted: Converted) -> None:
    reference = read_nrrd(converted.nrrd["path"])
    values = _aligned(np.asarray(array_kji), np.asarray(index_to_lps, float), reference)
    error = converted.dicom["dicom_series"]["max_value_error"]
    if error == 0:
        np.testing.assert_array_equal(values.astype(np.float64), reference.array.astype(np.float64))
    else:
        assert np.abs(values.astype(np.float64) - reference.array).max() <= error + 1e-6


def _read_with_pydicom(files: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """The stack from the headers alone: sorted by position along the normal, rescaled."""
    datasets = [pydicom.dcmread(f) for f in files]
    iop = np.array(datasets[0].ImageOrientationPatient, float)
    normal = np.cross(iop[:3], iop[3:])
    datasets.sort(key=lambda ds: float(np.dot(ds.ImagePositionPatient, normal)))
    ipp = np.array([ds.ImagePositionPatient for ds in datasets], float)
    row_mm, column_mm = (float(v) for v in datasets[0].PixelSpacing)
    matrix = np.eye(4)
    matrix[:3, 0], matrix[:3, 1] = iop[:3] * column_mm, iop[3:] * row_mm
    matrix[:3, 2] = (ipp[-1] - ipp[0]) / max(len(ipp) - 1, 1)
    matrix[:3, 3] = ipp[0]
    steps = np.diff(ipp, axis=0)
    assert np.abs(steps - matrix[:3, 2]).max(initial=0) <= GEOMETRY_MM  # a regular stack
    array = np.stack([ds.pixel_array * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
                      for ds in datasets])
    return array, matrix


# --- the series as written -----------------------------------------------------------------------


def test_every_reader_gets_the_nrrd_volume(converted, capfd):
    array, matrix = _read_with_pydicom(converted.files)
    _assert_holds_reference(array, matrix, converted)

    sitk = pytest.importorskip("SimpleITK", reason="SimpleITK is in requirements/test.txt")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(converted.folder)))
    image = reader.Execute()
    matrix = np.eye(4)
    matrix[:3, :3] = np.array(image.GetDirection()).reshape(3, 3) * image.GetSpacing()
    matrix[:3, 3] = image.GetOrigin()
    _assert_holds_reference(sitk.GetArrayFromImage(image), matrix, converted)

    slicer = pytest.importorskip("slicer", reason="needs the slicer-core wheel (requirements/test.txt)")
    import slicer.util  # noqa: F811 (the submodule, after the skip)
    from vtkmodules.util.numpy_support import vtk_to_numpy

    for approach in ("GDCM", "DCMTK"):
        capfd.readouterr()
        vtk_reader = slicer.vtkITKArchetypeImageSeriesScalarReader()
        vtk_reader.SetArchetype(str(converted.files[0]))
        for f in converted.files:
            vtk_reader.AddFileName(str(f))
        vtk_reader.SetSingleFile(0)
        vtk_reader.SetOutputScalarTypeToNative()
        vtk_reader.SetDesiredCoordinateOrientationToNative()
        vtk_reader.SetUseNativeOriginOn()
        getattr(vtk_reader, f"SetDICOMImageIOApproachTo{approach}")()
        vtk_reader.Update()
        assert vtk_reader.GetErrorCode() == 0
        image = vtk_reader.GetOutput()
        columns, rows, planes = image.GetDimensions()
        array = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(planes, rows, columns)
        ijk_to_lps = LPS_TO_RAS @ np.linalg.inv(slicer.util.arrayFromVTKMatrix(vtk_reader.GetRasToIjkMatrix()))
        _assert_holds_reference(array, ijk_to_lps, converted)
        assert "non uniform sampling" not in capfd.readouterr().err.lower(), approach


def test_dcm2niix_sees_one_regular_untilted_volume(converted, tmp_path):
    dcm2niix = shutil.which("dcm2niix") or shutil.which("dcm2niix", path=str(Path(sys.executable).parent))
    if dcm2niix is None:
        pytest.skip("dcm2niix is not installed (requirements/test.txt)")
    nibabel = pytest.importorskip("nibabel")
    out = tmp_path / "dcm2niix"
    out.mkdir()
    run = subprocess.run([dcm2niix, "-z", "n", "-b", "n", "-f", "%s_%d", "-o", str(out), str(converted.folder)],
                         capture_output=True, text=True, check=True)
    text = run.stdout + run.stderr
    assert "varies" not in text.lower(), text
    (nifti,) = out.glob("*.nii")
    assert "_Eq" not in nifti.name and "_Tilt" not in nifti.name, nifti.name
    image = nibabel.load(nifti)
    array_ijk = np.asanyarray(image.dataobj)
    _assert_holds_reference(array_ijk.transpose(2, 1, 0), LPS_TO_RAS @ image.affine, converted)


def test_read_back_by_this_package_is_regular_and_converts_bit_for_bit(converted, tmp_path):
    analysis = analyze([converted.folder])
    (series,) = analysis.series
    assert series.series_instance_uid == converted.dicom["dicom_series"]["series_instance_uid"]
    (stack,) = series.stacks
    assert stack.role == "volume" and stack.geometry.regular and not stack.geometry.irregularities
    again = convert([converted.folder], tmp_path / "again", ConvertOptions(), progress=False)
    assert again.ok
    (output,) = again.outputs
    assert not output.interpolated
    first, second = read_nrrd(converted.nrrd["path"]), read_nrrd(output.path)
    if converted.dicom["dicom_series"]["max_value_error"] == 0:
        np.testing.assert_array_equal(second.array.astype(np.float64), first.array.astype(np.float64))
    else:
        assert np.abs(second.array - first.array.astype(np.float64)).max() <= (
            converted.dicom["dicom_series"]["max_value_error"] + 1e-6)
    assert np.abs(second.index_to_lps - first.index_to_lps).max() <= GEOMETRY_MM / 10


def test_identity_uids_and_references(converted):
    sources = [s for series in analyze([converted.source]).series for stack in series.stacks for s in stack.slices]
    by_uid: dict[str, list[SliceHeader]] = {}
    for s in sources:
        by_uid.setdefault(s.sop_instance_uid, []).append(s)
    used = _used_instances(converted, by_uid)
    referenced_anywhere: set[str] = set()
    first_source = pydicom.dcmread(sources[0].path, stop_before_pixels=True)
    record = converted.dicom["dicom_series"]
    datasets = [pydicom.dcmread(f, stop_before_pixels=True) for f in converted.files]
    assert [ds.InstanceNumber for ds in datasets] == list(range(1, len(datasets) + 1))
    iop = np.array(datasets[0].ImageOrientationPatient, float)
    positions = [float(np.dot(ds.ImagePositionPatient, np.cross(iop[:3], iop[3:]))) for ds in datasets]
    assert positions == sorted(positions)  # InstanceNumber in spatial order
    sop_uids = [ds.SOPInstanceUID for ds in datasets]
    assert sop_uids == record["sop_instance_uids"] and len(set(sop_uids)) == len(sop_uids)
    new_uids = set(sop_uids) | {record["series_instance_uid"]}
    assert not new_uids & (set(by_uid) | {s.series_instance_uid for s in sources})
    assert all(uid.startswith(UID_ROOT) for uid in new_uids)
    expected_class = {"CT": "1.2.840.10008.5.1.4.1.1.2", "MR": "1.2.840.10008.5.1.4.1.1.4"}[first_source.Modality]
    for ds in datasets:
        for keyword in ("PatientName", "PatientID", "StudyInstanceUID", "FrameOfReferenceUID", "Modality",
                        "StudyDate", "AccessionNumber"):
            assert ds.get(keyword) == first_source.get(keyword), keyword
        assert ds.SeriesInstanceUID == record["series_instance_uid"]
        assert ds.SeriesNumber == record["series_number"] != first_source.get("SeriesNumber")
        assert ds.SOPClassUID == expected_class == record["sop_class_uid"]
        assert list(ds.ImageType[:2]) == ["DERIVED", "SECONDARY"]
        assert list(ds.ImageType[2:]) == list(first_source.get("ImageType", [])[2:])
        assert "GantryDetectorTilt" not in ds
        assert float(ds.SliceThickness) == float(ds.SpacingBetweenSlices) == pytest.approx(
            converted.dicom["slice_spacing_mm"], abs=1e-9)
        assert [(c.CodingSchemeDesignator, c.CodeValue) for c in ds.DerivationCodeSequence] == [
            (c.scheme_designator, c.value) for c in DERIVATION_CODES]
        assert "regular grid" in ds.DerivationDescription and f"tilt {converted.options.tilt}" in ds.DerivationDescription
        for item in ds.get("SourceImageSequence", []):
            (source,) = by_uid[item.ReferencedSOPInstanceUID][:1]
            assert item.ReferencedSOPClassUID == source.sop_class_uid
            if source.number_of_frames > 1:
                assert 1 <= item.ReferencedFrameNumber <= source.number_of_frames
        if "SourceImageSequence" in ds:
            (referenced,) = ds.ReferencedSeriesSequence
            assert referenced.SeriesInstanceUID == sources[0].series_instance_uid
            instances = {r.ReferencedSOPInstanceUID for r in referenced.ReferencedInstanceSequence}
            assert instances == {item.ReferencedSOPInstanceUID for item in ds.SourceImageSequence}
            referenced_anywhere |= instances
        if "WindowCenter" in first_source:
            assert ds.WindowCenter == first_source.WindowCenter and ds.WindowWidth == first_source.WindowWidth
    assert referenced_anywhere == used  # every source instance the volume used, and no other
    # every plane made of slices names them; only planes no slice reaches (gaps left blank, a last
    # plane beyond the last slice's reach) name none
    referencing = sum("SourceImageSequence" in ds for ds in datasets)
    assert referencing == len(datasets) or converted.options.gaps == "blank" or any(
        d["kind"] == "end_beyond_reach" for d in converted.dicom["decisions"])
    report = json.loads((converted.folder.parent / "report.json").read_text())
    assert report["outputs"][0]["dicom_series"]["files"] == [f.name for f in converted.files]


def _used_instances(converted: Converted, by_uid: dict[str, list[SliceHeader]]) -> set[str]:
    """SOP instance UIDs of the source files the volume was made of (from the report)."""
    files = {f.split("#")[0] for f in converted.dicom["source_files"]}
    return {uid for uid, slices in by_uid.items() if slices[0].path in files}


def test_no_validator_errors(converted):
    dciodvfy = shutil.which("dciodvfy")
    if dciodvfy is None:
        pytest.skip("dciodvfy (Debian package dicom3tools) is not installed; `make test` installs it as root")
    for f in converted.files:
        run = subprocess.run([dciodvfy, str(f)], capture_output=True, text=True)
        errors = [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]
        assert not errors, (f.name, errors)


# --- refusals, atomicity, force ------------------------------------------------------------------


def test_sheared_grid_is_refused_and_nothing_is_written(write_phantom, tmp_path):
    result = convert([write_phantom("gantry_tilt")], tmp_path / "out",
                     ConvertOptions(format="dicom", tilt="keep"), progress=False)
    (failure,) = result.failures
    assert "sheared" in failure.message and "--" not in failure.message and failure.remedy == ("tilt", "deskew")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.json", LOG_NAME]


def test_untilted_stack_kept_as_acquired_is_a_stack(write_phantom, tmp_path):
    result = convert([write_phantom("regular")], tmp_path / "out",
                     ConvertOptions(format="dicom", tilt="keep"), progress=False)
    assert result.ok and len(result.outputs) == 1


def test_interrupted_write_leaves_nothing(write_phantom, tmp_path, monkeypatch):
    calls = []

    def failing(ds, path, *args):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(ds, path, *args)

    real = dicom_writer.save_part10
    monkeypatch.setattr(dicom_writer, "save_part10", failing)
    with pytest.raises(KeyboardInterrupt):
        convert([write_phantom("regular")], tmp_path / "out", ConvertOptions(format="dicom"), progress=False)
    assert list((tmp_path / "out").iterdir()) == []  # no series folder, no hidden partial folder


def test_existing_series_needs_force_and_is_replaced_whole(write_phantom, tmp_path):
    source = write_phantom("regular")
    before = tree_digest(source)
    first = convert([source], tmp_path / "out", ConvertOptions(format="dicom"), progress=False)
    again = convert([source], tmp_path / "out", ConvertOptions(format="dicom"), progress=False)
    assert again.resumed_series and not again.outputs + again.failures  # the same again: done already
    stray = first.outputs[0].path / "stray.txt"
    stray.write_text("the user's")  # the folder is no longer what this tool wrote: never replaced without force
    changed = convert([source], tmp_path / "out", ConvertOptions(format="dicom"), progress=False)
    assert not changed.resumed_series and "already exists" in changed.failures[0].message and stray.exists()
    stray.unlink()
    (tmp_path / "out" / "report.json").unlink()
    (tmp_path / "out" / LOG_NAME).unlink()
    kept = convert([source], tmp_path / "out", ConvertOptions(format="dicom"), progress=False)
    assert "already exists" in kept.failures[0].message and kept.failures[0].remedy == ("force", None)
    assert not kept.outputs
    folder = first.outputs[0].path
    (folder / "stray.txt").write_text("from an earlier run")
    second = convert([source], tmp_path / "out", ConvertOptions(format="dicom", force=True), progress=False)
    assert second.ok
    new = second.outputs[0].dicom_series
    assert new.series_instance_uid != first.outputs[0].dicom_series.series_instance_uid
    assert sorted(p.name for p in folder.iterdir()) == list(new.files)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted([folder.name, "report.json", LOG_NAME])
    assert tree_digest(source) == before


def test_derived_series_numbers_follow_their_source(write_phantom, tmp_path):
    result = convert([write_phantom("missing_slices")], tmp_path / "out",
                     ConvertOptions(format="dicom", gaps="split"), progress=False)
    numbers = [o.dicom_series.series_number for o in result.outputs]
    assert len(numbers) == 3 and numbers == [1001, 1002, 1003]


# --- pixel encoding ------------------------------------------------------------------------------


def _header(**kwargs) -> SliceHeader:
    return SliceHeader(path="x", frame=0, number_of_frames=1, sop_instance_uid="1", sop_class_uid="1",
                       series_instance_uid="1", **kwargs)


def test_source_representation_kept_when_the_values_fit():
    source = _header(rescale_slope=1.0, rescale_intercept=-1024.0, bits_stored=12, pixel_representation=0)
    values = np.array([[[-1024, 0, 3071]]], np.int16)
    encoding = choose_encoding(values, None, [source])
    assert (encoding.slope, encoding.intercept, encoding.bits_stored, encoding.signed) == (1.0, -1024.0, 12, False)
    assert encoding.max_error == 0 and encoding.padding is None


def test_background_outside_the_source_range_gets_an_exact_rescale():
    source = _header(rescale_slope=1.0, rescale_intercept=-1024.0, bits_stored=12, pixel_representation=0)
    values = np.array([[[-32768, -1024, 3071]]], np.int16)
    mask = np.array([[[0, 1, 1]]], np.uint8)
    encoding = choose_encoding(values, mask, [source])
    stored = encoding.stored(values, mask)
    np.testing.assert_array_equal(stored * encoding.slope + encoding.intercept, values)
    assert encoding.padding == stored[0, 0, 0] and encoding.max_error == 0


def test_fractional_values_on_the_source_lattice_are_exact():
    source = _header(rescale_slope=0.25, rescale_intercept=-3.0, bits_stored=16, pixel_representation=1)
    values = (np.arange(-40, 40, dtype=np.float32) * 0.25 - 3.0).reshape(1, 8, 10)
    encoding = choose_encoding(values, None, [source])
    assert (encoding.slope, encoding.intercept, encoding.max_error) == (0.25, -3.0, 0.0)


def test_interpolated_fractional_values_are_rounded_and_say_how_much():
    source = _header(rescale_slope=0.25, rescale_intercept=-3.0, bits_stored=16, pixel_representation=1)
    values = np.linspace(-10.0, 10.0, 81, dtype=np.float32).reshape(1, 9, 9) + np.float32(0.01)
    encoding = choose_encoding(values, None, [source])
    assert 0 < encoding.max_error <= encoding.slope / 2 and encoding.slope < 0.25
    back = encoding.stored(values, None) * encoding.slope + encoding.intercept
    assert np.abs(back - values).max() <= encoding.max_error + 1e-9


def test_codes_are_those_of_dicom_part_16():
    from pydicom.sr.codedict import codes

    expected = [codes.DCM.SpatialResampling, codes.DCM.SourceImageForImageProcessingOperation,
                codes.DCM.AcquisitionEquipment]
    ours = [*DERIVATION_CODES, dicom_writer.SOURCE_IMAGE_PURPOSE, dicom_writer.ACQUISITION_EQUIPMENT]
    assert [(c.value, c.scheme_designator, c.meaning) for c in ours] == [
        (c.value, c.scheme_designator, c.meaning) for c in expected]
