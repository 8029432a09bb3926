"""Slicer's "Export to DICOM" up to the files it writes, on the slicer-core wheel's real MRML scene:
a hardened volume node becomes the same series ``convert --format dicom`` writes (the database
import needs the Slicer application and is in the module's self-test)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

slicer = pytest.importorskip("slicer", reason="needs the slicer-core wheel (requirements/test.txt)")
import slicer.util  # noqa: E402, F811 (the submodule, after the skip)

from irregular_series import analyze  # noqa: E402
from irregular_series.conversion import ConvertOptions, convert  # noqa: E402
from irregular_series.slicer import scene as mrml  # noqa: E402
from irregular_series.testing.synthetic import write_demo  # noqa: E402

# What the two writers may differ in: new UIDs and the time they were written.
_PER_RUN = {"SOPInstanceUID", "SeriesInstanceUID", "InstanceCreationTime", "InstanceCreationDate", "SeriesTime",
            "SeriesDate", "ContentTime", "ContentDate", "SeriesDescription"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("demo")
    write_demo(folder)
    return folder


def _stack(folder: Path):
    return next(s for s in analyze([folder]).series[0].stacks if s.role == "volume")


def _hardened(scene, folder: Path, **policies):
    stack = _stack(folder)
    raw = mrml.add_stack_volume(scene, stack, mrml.stack_pixels(stack), "demo")
    return stack, mrml.harden(scene, raw, stack, None, ConvertOptions(spacing=0.6, **policies))


def _headers(folder: Path) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(f) for f in sorted(folder.iterdir())]


def test_export_writes_the_series_convert_writes(scene, demo, tmp_path):
    stack, (node,) = _hardened(scene, demo)
    series = mrml.export_dicom(node, stack, tmp_path / "export")
    assert series.folder == (tmp_path / "export" / "demo_0.6_mm").resolve()
    assert sorted(p.name for p in series.folder.iterdir()) == list(series.files)

    converted = convert([demo], tmp_path / "convert", ConvertOptions(spacing=0.6, format="dicom"), progress=False)
    (output,) = converted.outputs
    ours, theirs = _headers(series.folder), _headers(output.path)
    assert len(ours) == len(theirs) == node.GetImageData().GetDimensions()[2]
    for a, b in zip(ours, theirs):
        differing = {e.keyword for e in a if e.keyword not in _PER_RUN and (e.keyword not in b or b[e.keyword] != e)}
        assert not differing, differing
        assert a.SeriesInstanceUID == series.series_instance_uid != b.SeriesInstanceUID

    # the files hold the node's voxels where the node has them
    volume = np.stack([ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept) for ds in ours])
    np.testing.assert_array_equal(volume, slicer.util.arrayFromVolume(node))


def test_each_part_of_a_split_exports_itself(scene, demo, tmp_path):
    stack, nodes = _hardened(scene, demo, gaps="split")
    assert len(nodes) == 2
    first, second = (mrml.export_dicom(n, stack, tmp_path / "out") for n in nodes)
    assert first.folder != second.folder
    for node, series in zip(nodes, (first, second)):
        assert len(series.files) == node.GetImageData().GetDimensions()[2]


def test_a_changed_volume_is_refused(scene, demo, tmp_path):
    stack, (node,) = _hardened(scene, demo)
    slicer.util.arrayFromVolume(node)[3, 4, 5] += 1
    slicer.util.arrayFromVolumeModified(node)
    with pytest.raises(ValueError, match="changed since it was hardened"):
        mrml.export_dicom(node, stack, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_volume_that_was_not_hardened_is_refused(scene, demo, tmp_path):
    stack = _stack(demo)
    raw = mrml.add_stack_volume(scene, stack, mrml.stack_pixels(stack), "raw")
    with pytest.raises(ValueError, match="not a hardened volume"):
        mrml.export_dicom(raw, stack, tmp_path / "out")


def test_an_existing_export_is_kept_unless_forced(scene, demo, tmp_path):
    stack, (node,) = _hardened(scene, demo)
    first = mrml.export_dicom(node, stack, tmp_path / "out")
    with pytest.raises(FileExistsError):
        mrml.export_dicom(node, stack, tmp_path / "out")
    second = mrml.export_dicom(node, stack, tmp_path / "out", force=True)
    assert second.folder == first.folder and second.series_instance_uid != first.series_instance_uid


def test_the_tolerances_hardened_with_are_the_ones_exported_with(scene, demo, tmp_path):
    from irregular_series.tolerances import Tolerances

    stack, (node,) = _hardened(scene, demo, tolerances=Tolerances(verify_mm=0.02))
    series = mrml.export_dicom(node, stack, tmp_path / "out")
    first = pydicom.dcmread(series.folder / series.files[0])
    assert "(tolerance 0.02 mm)" in first.DerivationDescription
