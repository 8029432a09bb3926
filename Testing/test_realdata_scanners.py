"""Series as scanners write them, on real public DICOM (see the realdata README); skipped visibly
when it is absent.

- ``philips_dualecho``: 30 positions x 2 echoes x magnitude and phase in one classic series: 4
  volumes of 30, and each of the 120 images in an output at its own position.
- ``ts_mosaic``: one Siemens mosaic (35 tiles) in 9 transfer syntaxes: each file alone gives the
  same 64x64x35 volume, voxel for voxel where dcm2niix places it.
- ``xa_4d_interrupted``: the second time point lacks 8 slices: missing slices, and a mask under
  the blank gap policy.
- ``dupe_positions_zip``: a sparse GE CT: missing counts that agree with the instance numbers.
- The compressed copies (dicom2nifti generic, ts_mosaic) decode with the core dependencies alone.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

from irregular_series import analyze
from irregular_series.conversion import ConvertOptions, convert
from irregular_series.pixels import _INSTALL, decoder_available, load_pixels

from volume_checks import read_nrrd, voxel_centres_lps

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"

def _outputs(result) -> list[dict]:
    """The written volumes as their report.json entries, decisions as their messages."""
    return [{**o.to_dict(), "decisions": [d.message for d in o.decisions]} for o in result.outputs]



def _folder(realdata: Path, relative: str) -> Path:
    folder = realdata / relative
    if not folder.is_dir():
        pytest.skip(f"{folder} is not in the real data")
    return folder


def test_magnitude_and_phase_echoes_are_four_volumes_holding_every_image(realdata, tmp_path):
    folder = _folder(realdata, "philips_dualecho")
    result = convert([folder], tmp_path, ConvertOptions(), progress=False)
    assert result.ok
    names = sorted(s.name for s in result.analysis.series[0].stacks)
    assert names == ["magnitude echo number 1", "magnitude echo number 2", "phase echo number 1", "phase echo number 2"]
    assert sorted(len(o["source_files"]) for o in _outputs(result)) == [30] * 4
    found = 0
    for output in _outputs(result):
        nrrd = read_nrrd(output["path"])
        centres = voxel_centres_lps(nrrd.array.shape, nrrd.index_to_lps)
        for path in output["source_files"]:
            ds = pydicom.dcmread(path)
            k = int(np.argmin(np.abs(centres[:, 0, 0] - np.asarray(ds.ImagePositionPatient, float)).sum(axis=1)))
            assert np.allclose(centres[k, 0, 0], np.asarray(ds.ImagePositionPatient, float), atol=1e-3)
            rescaled = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
            assert np.allclose(nrrd.array[k], rescaled, atol=1e-3), path
            found += 1
    assert found == 120


@pytest.fixture(scope="module")
def dcm2niix_binary() -> str:
    exe = shutil.which("dcm2niix", path=str(Path(sys.executable).parent)) or shutil.which("dcm2niix")
    if exe is None:
        pytest.skip("dcm2niix is not installed (requirements/test.txt)")
    return exe


def _dcm2niix(exe: str, dicom: Path, tmp_path: Path):
    import nibabel

    source, out = tmp_path / "dcm2niix_in", tmp_path / "dcm2niix_out"
    source.mkdir()
    out.mkdir()
    shutil.copy(dicom, source)
    subprocess.run([exe, "-z", "n", "-b", "n", "-o", str(out), str(source)], check=True, capture_output=True)
    (nii,) = out.glob("*.nii")
    return nibabel.load(nii)


@pytest.mark.parametrize("number", range(1, 10))
def test_each_mosaic_file_gives_the_volume_dcm2niix_places(realdata, tmp_path, dcm2niix_binary, number):
    import nibabel

    path = _folder(realdata, "ts_mosaic") / f"{number}.dcm"
    result = convert([path], tmp_path / "ours", ConvertOptions(format="nii"), progress=False)
    (output,) = _outputs(result)
    assert output["shape"] == [64, 64, 35] and not output["interpolated"]
    ours = nibabel.load(output["path"])
    theirs = _dcm2niix(dcm2niix_binary, path, tmp_path)
    a, b = np.asarray(ours.dataobj), np.asarray(theirs.dataobj)
    index = np.indices(a.shape).reshape(3, -1)
    world = ours.affine[:3, :3] @ index + ours.affine[:3, 3:]
    theirs_index = np.linalg.solve(theirs.affine[:3, :3], world - theirs.affine[:3, 3:])
    assert np.abs(theirs_index - np.rint(theirs_index)).max() < 1e-3  # same voxel centres (float32 affines)
    theirs_index = np.rint(theirs_index).astype(int)
    assert (theirs_index.min(axis=1) == 0).all() and (theirs_index.max(axis=1) == np.array(b.shape) - 1).all()
    assert np.array_equal(a.reshape(-1), b[tuple(theirs_index)])


def test_the_interrupted_time_point_reports_missing_slices_and_blank_writes_its_mask(realdata, tmp_path):
    folder = _folder(realdata, "xa_4d_interrupted")
    result = convert([folder], tmp_path, ConvertOptions(gaps="blank"), progress=False)
    stacks = {s.name: s for s in result.analysis.series[0].stacks}
    assert sorted(stacks) == ["time point 1", "time point 21"]
    assert stacks["time point 1"].geometry.regular
    interrupted = stacks["time point 21"].geometry
    missing = [i for i in interrupted.irregularities if i.kind == "missing_slices"]
    assert sum(i.details.missing_count for i in missing) == 8
    assert "variable_spacing" not in {i.kind for i in interrupted.irregularities}
    (output,) = [o for o in _outputs(result) if o["mask_path"]]
    assert output["shape"][2] == 34 and output["slice_spacing_mm"] == 4.0
    mask = read_nrrd(output["mask_path"]).array
    assert sum(not plane.any() for plane in mask) == 8


def test_the_sparse_series_reports_missing_counts_that_agree_with_its_instance_numbers(realdata):
    (stack,) = analyze([_folder(realdata, "dupe_positions_zip")]).series[0].stacks
    missing = [i for i in stack.geometry.irregularities if i.kind == "missing_slices"]
    assert [i.details.missing_count for i in missing] == [len(i.details.instance_numbers) for i in missing]
    assert sum(i.details.missing_count for i in missing) == 179  # instance numbers 2..190 minus the 10 kept
    assert {i.details.local_step_mm for i in missing} == {2.5}
    assert "variable_spacing" not in {i.kind for i in stack.geometry.irregularities}


def _core_dependencies() -> set[str]:
    text = PYPROJECT.read_text()
    block = re.search(r"^dependencies = \[(.*?)\]", text, re.S | re.M).group(1)
    return {re.split(r"[<>=!~ ]", d.strip().strip('"'))[0].lower() for d in block.split(",") if d.strip()}


@pytest.mark.parametrize("relative, pattern", [("dicom2nifti_edgecases/generic", "compressed_*"), ("ts_mosaic", "*.dcm")])
def test_compressed_copies_decode_with_the_core_dependencies(realdata, relative, pattern):
    """Each copy on its own (the copies share SOP Instance UIDs): every transfer syntax needs only
    packages that a plain install brings, and every copy decodes to the same values."""
    core = _core_dependencies()
    sums, syntaxes = [], set()
    for copy in sorted(_folder(realdata, relative).glob(pattern)):
        (stack,) = analyze([copy]).series[0].stacks
        syntax = stack.slices[0].transfer_syntax_uid
        needs = _INSTALL.get(syntax, "pip install").split()[2:]
        assert set(needs) <= core, (syntax, needs)
        assert decoder_available(syntax)[0], syntax
        syntaxes.add(syntax)
        sums.append(float(load_pixels(stack.slices, dtype=np.float64).sum()))
    assert len(syntaxes) >= 4 and len(set(sums)) == 1
