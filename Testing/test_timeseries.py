"""Volume series (``timeseries``) and ``convert --4d``: the axis and its values, the common grid, each
volume verified on it, partial time points under the gap policies, and the 4D files read back by
nibabel and pynrrd against the per-volume conversions, voxel for voxel."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from irregular_series import analyze
from irregular_series.cli import main
from irregular_series.conversion import convert
from irregular_series.options import ConvertOptions
from irregular_series.series_volumes import plan_volume_series
from irregular_series.timeseries import AxisKind, dicom_seconds, volume_series

nib = pytest.importorskip("nibabel", reason="the 4D NIfTI read-back needs nibabel")
nrrd = pytest.importorskip("nrrd", reason="the 4D NRRD read-back needs pynrrd (requirements/test.txt)")

GE_FMRI = "mr_3plane_localizer_ge/02_Ax_fMRI_FF_I11.1_S15.9"
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _series(folder: Path):
    (series,) = analyze([folder]).series
    return series, volume_series(series)


def _convert(folder: Path, out: Path, **options):
    return convert([folder], out, ConvertOptions(**options), progress=False)


def _nrrd_tkji(path: Path) -> tuple[np.ndarray, dict]:
    """A 4D NRRD as [t, k, j, i] (pynrrd gives the axes in file order, i first)."""
    data, header = nrrd.read(str(path))
    return np.transpose(data, (3, 2, 1, 0)), header


def _volumes_by_stack(result) -> dict[str, np.ndarray]:
    """Per-volume outputs (no --4d) by stack id, read with pynrrd as [k, j, i]."""
    return {o.stack: np.transpose(nrrd.read(str(o.path))[0], (2, 1, 0)) for o in result.outputs}


def _index_to_lps(output) -> np.ndarray:
    return np.array(output.index_to_lps)


def _check_4d_against_volumes(tmp_path: Path, folder: Path, **options) -> tuple:
    """``--4d`` in NRRD and NIfTI against the per-volume conversion of the same series: every
    volume voxel for voxel, the geometry, the index values. Returns (the 4D output, its NRRD header)."""
    single = _convert(folder, tmp_path / "single", **options)
    assert single.ok, single.failures
    per_stack = _volumes_by_stack(single)
    four_d = _convert(folder, tmp_path / "nrrd", four_d=True, **options)
    assert four_d.ok, four_d.failures
    (output,) = [o for o in four_d.outputs if o.series]
    stacks = output.stack.split(",")
    data, header = _nrrd_tkji(output.path)
    assert data.shape[0] == len(stacks)
    grid = _index_to_lps(output)
    for t, stack in enumerate(stacks):
        own = _index_to_lps(single.outputs[[o.stack for o in single.outputs].index(stack)])
        np.testing.assert_allclose(own[:3, :3], grid[:3, :3], atol=1e-9)
        # A volume that lacks the set's end positions has a shorter grid of its own, on the same lattice.
        start = np.linalg.solve(grid[:3, :3], own[:3, 3] - grid[:3, 3])
        np.testing.assert_allclose(start, np.round(start), atol=1e-6)
        k0, length = int(round(start[2])), len(per_stack[stack])
        np.testing.assert_array_equal(data[t][k0:k0 + length], per_stack[stack])
    assert header["kinds"] == ["domain", "domain", "domain", "list"]
    assert header["labels"][3] == output.series["axis"]["name"]
    assert [float(v) for v in header["axis 3 index values"].split()] == pytest.approx(output.series["axis"]["values"])
    np.testing.assert_allclose(header["space directions"][:3], _index_to_lps(output)[:3, :3].T, atol=1e-9)

    nifti = _convert(folder, tmp_path / "nii", four_d=True, format="nii.gz", **options)
    (nii_output,) = [o for o in nifti.outputs if o.series]
    image = nib.load(str(nii_output.path))
    voxels = np.asarray(image.dataobj)
    assert voxels.shape == data.shape[::-1][:3] + (len(stacks),)  # i, j, k, t: time last
    np.testing.assert_array_equal(np.transpose(voxels, (3, 2, 1, 0)), data)
    np.testing.assert_allclose(image.affine, LPS_TO_RAS @ _index_to_lps(output), atol=1e-4)
    step = output.series["axis"]["step"]
    assert image.header.get_xyzt_units() == ("mm", "sec" if output.series["axis"]["unit"] == "s" else "unknown")
    if step is not None:
        assert float(image.header["pixdim"][4]) == pytest.approx(step, rel=1e-6)
    return output, header


def test_dicom_times_read_as_seconds():
    assert dicom_seconds("122431") == 12 * 3600 + 24 * 60 + 31
    assert dicom_seconds("12:24:31.5") == pytest.approx(12 * 3600 + 24 * 60 + 31.5)
    assert dicom_seconds("20250312133144.1275") - dicom_seconds("20250312133107.9275") == pytest.approx(36.2)
    assert dicom_seconds("") is None and dicom_seconds("12a") is None and dicom_seconds("256000") is None


def test_tagged_time_points_are_one_series_timed_from_their_acquisition(write_phantom):
    _, found = _series(write_phantom("repeated_positions_temporal"))
    (series,) = found
    assert series.axis.kind == AxisKind.TIME and series.axis.name == "time" and series.axis.unit == "s"
    assert series.axis.values == (0, 2, 4, 6, 8)  # ContentTime 120000, 120002, ...
    assert series.axis.step == pytest.approx(2)
    assert "acquisition times" in series.axis.reason
    assert "told apart by time point" in series.reasons[0]


def test_untagged_volumes_are_numbered_in_instance_order(write_phantom):
    _, (series,) = _series(write_phantom("repeated_positions_untagged"))
    assert series.axis.name == "volume" and series.axis.unit == ""
    assert series.axis.values == (1, 2, 3, 4, 5)
    assert "no time" in series.axis.reason
    firsts = [min(s.instance_number for s in st.slices) for st in series.stacks]
    assert firsts == sorted(firsts)


def test_echoes_are_an_echo_series_and_kinds_never_mix(write_phantom):
    _, (series,) = _series(write_phantom("echoes"))
    assert series.axis.kind == AxisKind.ECHO
    _, found = _series(write_phantom("magnitude_phase_classic"))
    assert sorted(s.label for s in found) == ["magnitude", "phase"]
    for s in found:
        assert len({st.slices[0].complex_component for st in s.stacks}) == 1


def test_ge_fmri_is_one_series_of_5_time_points_timed_by_tr(realdata, tmp_path):
    series, (found,) = _series(realdata / GE_FMRI)
    assert len(found.stacks) == 5 and found.axis.name == "time"
    # Every acquisition time is the same: the TR (1000 ms) per temporal position gives the times.
    assert found.axis.values == (0, 1, 2, 3, 4) and "RepetitionTime 1000 ms" in found.axis.reason
    output, header = _check_4d_against_volumes(tmp_path, realdata / GE_FMRI)
    assert output.shape == (64, 64, 10) and header["sizes"].tolist() == [64, 64, 10, 5]
    assert header["units"][3] == "s"
    assert [v["index_value"] for v in output.series["volumes"]] == [0, 1, 2, 3, 4]
    assert all(v["content_check"]["ok"] and v["content_check"]["exact_slices"] == 10 for v in output.series["volumes"])


def test_4d_report_lists_each_volume_check(realdata, tmp_path):
    assert main(["convert", str(realdata / GE_FMRI), "-o", str(tmp_path / "out"), "--4d"]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    (output,) = report["outputs"]
    assert output["series"]["axis"]["name"] == "time" and len(output["series"]["volumes"]) == 5
    kinds = [d["kind"] for d in output["decisions"]]
    assert kinds[:2] == ["series_axis", "series_grid"]
    assert all(v["content_check"]["ok"] for v in output["series"]["volumes"])


def test_interrupted_time_point_interpolates_within_itself(write_phantom, tmp_path):
    folder = write_phantom("interrupted_time_series")
    output, _ = _check_4d_against_volumes(tmp_path, folder)
    volumes = output.series["volumes"]
    assert [len(v["source_files"]) for v in volumes] == [12, 12, 8]
    assert "gaps_interpolated" in [d["kind"] for d in volumes[2]["decisions"]]
    assert output.mask_path is None


def test_interrupted_time_point_blank_gaps_leave_a_4d_mask(write_phantom, tmp_path):
    result = _convert(write_phantom("interrupted_time_series"), tmp_path / "out", four_d=True, gaps="blank")
    assert result.ok, result.failures
    (output,) = result.outputs
    mask, _ = _nrrd_tkji(output.mask_path)
    assert mask.shape[0] == 3 and mask[:2].all()
    assert {int(k) for k in np.flatnonzero(~mask[2].any(axis=(1, 2)))} == {3, 5, 7, 9}


def test_split_gaps_leave_the_cut_time_point_out_of_the_4d_file(write_phantom, tmp_path):
    result = _convert(write_phantom("interrupted_time_series"), tmp_path / "out", four_d=True, gaps="split")
    assert result.ok, result.failures
    (four_d,) = [o for o in result.outputs if o.series]
    assert four_d.series["axis"]["values"] == [1, 2]  # no timing in these headers: volume numbers
    apart = [o for o in result.outputs if not o.series]
    assert len(apart) == 5 and {o.stack for o in apart} == {four_d.series["apart"][0]}
    assert all("series_apart" in [d.kind.value for d in o.decisions] for o in apart)


def test_stopped_time_point_is_background_beyond_its_end(write_phantom, tmp_path):
    folder = write_phantom("stopped_time_series")
    output, _ = _check_4d_against_volumes(tmp_path, folder)
    last = output.series["volumes"][2]
    coverage = [d for d in last["decisions"] if d["kind"] == "series_coverage"]
    assert coverage and coverage[0]["values"]["planes_after"] == 3
    data, _ = _nrrd_tkji(output.path)
    assert data.shape == (3, 10, 16, 16)
    assert (data[2, 7:] == last["background"]).all()


def test_a_series_of_one_kept_time_point_is_converted_as_volumes(write_phantom, tmp_path):
    folder = write_phantom("interrupted_time_series")
    series, (found,) = _series(folder)
    found.stacks = found.stacks[1:]
    plan = plan_volume_series(found, ConvertOptions(gaps="split"))
    assert len(plan.members) == 1 and len(plan.apart) == 5


def test_echoes_stay_one_file_each_with_4d(realdata, tmp_path):
    result = _convert(realdata / "philips_dualecho", tmp_path / "out", four_d=True)
    assert result.ok and len(result.outputs) == 4 and not any(o.series for o in result.outputs)
    _, found = _series(realdata / "philips_dualecho")
    assert sorted((s.label, s.axis.name, len(s.stacks)) for s in found) == [
        ("magnitude", "echo time", 2), ("phase", "echo time", 2)]


def test_real_interrupted_fmri_is_two_time_points_36_s_apart(realdata, tmp_path):
    output, _ = _check_4d_against_volumes(tmp_path, realdata / "xa_4d_interrupted")
    assert output.series["axis"]["values"] == pytest.approx([0, 36.2])
    assert "acquisition times" in output.series["axis"]["reason"]
    assert [len(v["source_files"]) for v in output.series["volumes"]] == [34, 26]
    assert all(v["content_check"]["ok"] for v in output.series["volumes"])


def test_4d_with_dicom_output_is_a_failure_not_a_crash(write_phantom, tmp_path):
    result = _convert(write_phantom("repeated_positions_temporal"), tmp_path / "out", four_d=True, format="dicom")
    assert not result.ok and "4D" in str(result.failures[0])


def test_a_4d_run_resumes_and_keeps_its_file(write_phantom, tmp_path):
    folder = write_phantom("repeated_positions_temporal")
    first = _convert(folder, tmp_path / "out", four_d=True)
    assert first.ok and len(first.outputs) == 1
    before = first.outputs[0].path.stat().st_mtime_ns
    again = _convert(folder, tmp_path / "out", four_d=True)
    assert again.ok, again.failures
    assert again.resumed_series == [first.outputs[0].series_instance_uid]
    assert first.outputs[0].path.stat().st_mtime_ns == before
