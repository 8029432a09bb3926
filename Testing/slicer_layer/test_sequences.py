"""Volume series as Slicer sequences, on a real MRML scene of the slicer-core wheel: the sequence
node and its browser (driven by Slicer's own Sequences logic, with no module panel), every volume
on the common grid and checked against the coordinate-encoded phantom or the ``--4d`` output,
hardening a whole sequence, the DICOM browser offers, and Slicer reading a ``--4d`` NRRD back as a
sequence."""

from __future__ import annotations

import json

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="needs the slicer-core wheel (requirements/test.txt)")
import slicer.util  # noqa: E402, F811 (the submodule, after the skip)
from vtkmodules.vtkCommonMath import vtkMatrix4x4  # noqa: E402

from irregular_series import analyze  # noqa: E402
from irregular_series.conversion import convert  # noqa: E402
from irregular_series.options import ConvertOptions  # noqa: E402
from irregular_series.slicer import scene as mrml  # noqa: E402
from irregular_series.slicer import sequences  # noqa: E402
from irregular_series.slicer.examine import (  # noqa: E402
    CONFIDENCE_ALTERNATIVE,
    examine_series,
    offers,
    slicer_series_name,
    with_sequences,
)
from irregular_series.testing.synthetic import Encoding  # noqa: E402
from irregular_series.timeseries import volume_series  # noqa: E402

from volume_checks import read_nrrd, voxel_centres_lps  # noqa: E402

GE_FMRI = "mr_3plane_localizer_ge/02_Ax_fMRI_FF_I11.1_S15.9"
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


class SequencesScene:
    """A scene observed by Slicer's Sequences logic, as the application sets it up (the logic is
    kept referenced: the scene holds it weakly)."""

    def __init__(self) -> None:
        self.scene = slicer.vtkMRMLScene()
        self.logic = slicer.vtkSlicerSequencesLogic()
        self.logic.SetMRMLScene(self.scene)


@pytest.fixture
def scene():
    made = SequencesScene()
    yield made.scene
    made.scene.Clear(1)


def _only_series(folder):
    (series,) = analyze([folder]).series
    return series


def _load(scene, folder, **options):
    series = _only_series(folder)
    (found,) = volume_series(series)
    return series, found, sequences.load_sequence(scene, found, ConvertOptions(**options), "seq")


def _ijk_to_ras(node) -> np.ndarray:
    matrix = vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return slicer.util.arrayFromVTKMatrix(matrix)


def test_ge_fmri_is_one_sequence_of_5_volumes_with_a_browser(scene, realdata, tmp_path):
    series, found, loaded = _load(scene, realdata / GE_FMRI)
    sequence = loaded.sequence
    assert sequence.GetNumberOfDataNodes() == 5
    assert (sequence.GetIndexName(), sequence.GetIndexUnit()) == ("time", "s")
    assert [sequence.GetNthIndexValue(k) for k in range(5)] == ["0", "1", "2", "3", "4"]
    result = convert([realdata / GE_FMRI], tmp_path / "out", ConvertOptions(), progress=False)
    by_stack = {o.stack: o for o in result.outputs}

    for item, stack in enumerate(found.stacks):
        loaded.browser.SetSelectedItemNumber(item)  # the Sequences logic updates the proxy
        proxy = loaded.proxy
        written = read_nrrd(by_stack[stack.id].path)
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(proxy), written.array)
        np.testing.assert_allclose(_ijk_to_ras(proxy), LPS_TO_RAS @ written.index_to_lps, atol=1e-9)
        assert json.loads(proxy.GetAttribute(mrml.STACK_ATTRIBUTE))["id"] == stack.id
        assert json.loads(proxy.GetAttribute(mrml.CONTENT_ATTRIBUTE))["ok"]
    assert sequences.sequence_of(scene, loaded.proxy) is sequence
    assert sequences.sequence_of(scene, sequence) is sequence
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    assert sh.GetItemByDataNode(loaded.proxy) and sh.GetItemByDataNode(sequence)


def test_partial_time_point_interpolates_its_own_gaps_on_the_common_grid(scene, write_phantom):
    series, found, loaded = _load(scene, write_phantom("interrupted_time_series"))
    assert loaded.sequence.GetNumberOfDataNodes() == 3 and not loaded.apart
    encoding = Encoding()
    for item in range(3):
        loaded.browser.SetSelectedItemNumber(item)
        voxels = slicer.util.arrayFromVolume(loaded.proxy)
        assert voxels.shape == (12, 16, 16)
        lps = voxel_centres_lps(voxels.shape, np.linalg.inv(LPS_TO_RAS) @ _ijk_to_ras(loaded.proxy))
        assert np.abs(voxels - encoding.values(lps)).max() <= 0.5 + 1e-6  # every voxel where it belongs
    decisions = json.loads(loaded.proxy.GetAttribute(mrml.DECISIONS_ATTRIBUTE))
    assert any("interpolated across the gaps" in d for d in decisions)


def test_split_gaps_load_the_cut_time_point_apart(scene, write_phantom):
    _, found, loaded = _load(scene, write_phantom("interrupted_time_series"), gaps="split")
    assert loaded.sequence.GetNumberOfDataNodes() == 2
    assert len(loaded.apart) == 5 and all(n.GetAttribute(mrml.SPACING_ATTRIBUTE) for n in loaded.apart)


def test_harden_a_sequence_from_its_proxy_or_itself(scene, realdata):
    _, found, loaded = _load(scene, realdata / GE_FMRI)
    stacks = mrml.StackCache(scene)
    try:
        hardened = sequences.harden_sequence(scene, loaded.proxy, stacks.stack, ConvertOptions(spacing=1.5))
        assert hardened.sequence is not loaded.sequence and hardened.sequence.GetNumberOfDataNodes() == 5
        assert [hardened.sequence.GetNthIndexValue(k) for k in range(5)] == ["0", "1", "2", "3", "4"]
        for item in range(5):
            hardened.browser.SetSelectedItemNumber(item)
            assert hardened.proxy.GetSpacing()[2] == pytest.approx(1.5)
            assert slicer.util.arrayFromVolume(hardened.proxy).shape[0] == 19  # 27 mm at 1.5 mm
            assert float(hardened.proxy.GetAttribute(mrml.VERIFICATION_ATTRIBUTE)) <= 0.01
        again = sequences.harden_sequence(scene, loaded.sequence, stacks.stack, ConvertOptions())
        loaded.browser.SetSelectedItemNumber(2)
        again.browser.SetSelectedItemNumber(2)
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(again.proxy),
                                      slicer.util.arrayFromVolume(loaded.proxy))
        assert loaded.sequence.GetNumberOfDataNodes() == 5  # the original is left as it was
        with pytest.raises(ValueError, match="not a sequence"):
            plain = mrml.add_volume(scene, np.zeros((2, 2, 2), np.int16), np.eye(4), "plain")
            sequences.harden_sequence(scene, plain, stacks.stack, ConvertOptions())
    finally:
        stacks.close()


def test_harden_a_partial_sequence_sees_the_missing_slices_again(scene, write_phantom):
    _, found, loaded = _load(scene, write_phantom("interrupted_time_series"), gaps="blank")
    stacks = mrml.StackCache(scene)
    try:
        hardened = sequences.harden_sequence(scene, loaded.proxy, stacks.stack, ConvertOptions(gaps="blank"))
        hardened.browser.SetSelectedItemNumber(2)
        decisions = json.loads(hardened.proxy.GetAttribute(mrml.DECISIONS_ATTRIBUTE))
        assert any("left blank" in d for d in decisions)
    finally:
        stacks.close()


def test_no_browser_without_the_sequences_logic(realdata):
    bare = slicer.vtkMRMLScene()
    (found,) = volume_series(_only_series(realdata / GE_FMRI))
    with pytest.raises(RuntimeError, match="Sequences module logic"):
        sequences.load_sequence(bare, found, ConvertOptions(), "seq")
    assert bare.GetNodesByClass("vtkMRMLSequenceNode").GetNumberOfItems() == 0


def test_the_browser_offers_the_sequence_first_and_the_volumes_unselected(realdata):
    series = _only_series(realdata / GE_FMRI)
    label = slicer_series_name(series)
    found = with_sequences(series, label, offers(examine_series(series, label), label))
    first, *others = found
    assert first.sequence is not None and first.selected and first.confidence > 0.5
    assert "sequence of 5 time points (time 0–4 s)" in first.name and "10 axial slices each" in first.name
    assert "RepetitionTime 1000 ms" in first.tooltip and "common grid" in first.tooltip
    assert len(first.files) == 50
    assert len(others) == 5 and all(not o.selected and o.confidence == CONFIDENCE_ALTERNATIVE for o in others)


MULTIVOLUME_IMPORTER_CONFIDENCE = (0.9, 1.0)  # fedorov/MultiVolumeImporter's range for a volume series
IMAGE_SEQUENCE_PLUGIN_CONFIDENCE = 1.05  # Slicer's DICOMImageSequencePlugin, at most


@pytest.mark.parametrize(("case", "corrects"), [("repeated_positions_temporal", False), ("interrupted_time_series", True)])
def test_a_sequence_wins_over_the_other_volume_series_loaders_only_when_it_corrects(write_phantom, case, corrects):
    """MultiVolumeImporter loads each volume with the scalar-volume plugin: right for a regular
    volume series (it stays the default), wrong for one with gaps, tilt or variable spacing."""
    series = analyze([write_phantom(case)]).series[0]
    label = slicer_series_name(series)
    (sequence,) = [o for o in with_sequences(series, label, offers(examine_series(series, label), label)) if o.sequence]
    if corrects:
        assert sequence.confidence > max(*MULTIVOLUME_IMPORTER_CONFIDENCE, IMAGE_SEQUENCE_PLUGIN_CONFIDENCE)
    else:
        assert sequence.confidence < min(MULTIVOLUME_IMPORTER_CONFIDENCE)


def test_dual_echo_offers_one_echo_sequence_per_kind(realdata):
    series = _only_series(realdata / "philips_dualecho")
    label = slicer_series_name(series)
    found = [o for o in with_sequences(series, label, offers(examine_series(series, label), label)) if o.sequence]
    assert sorted(o.sequence.label for o in found) == ["magnitude", "phase"]
    assert all(o.sequence.axis.name == "echo time" and o.sequence.axis.unit == "ms" for o in found)


def test_real_interrupted_fmri_sequence(scene, realdata):
    _, found, loaded = _load(scene, realdata / "xa_4d_interrupted")
    assert [loaded.sequence.GetNthIndexValue(k) for k in range(2)] == ["0", "36.2"]
    loaded.browser.SetSelectedItemNumber(1)
    assert json.loads(loaded.proxy.GetAttribute(mrml.CONTENT_ATTRIBUTE))["ok"]
    assert slicer.util.arrayFromVolume(loaded.proxy).shape == (34, 64, 64)


def test_slicer_reads_a_4d_nrrd_as_a_sequence(scene, realdata, tmp_path):
    result = convert([realdata / GE_FMRI], tmp_path / "out", ConvertOptions(four_d=True), progress=False)
    (output,) = result.outputs
    sequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode", "read")
    storage = slicer.vtkMRMLVolumeSequenceStorageNode()
    storage.SetFileName(str(output.path))
    assert storage.ReadData(sequence)
    assert sequence.GetNumberOfDataNodes() == 5
    assert (sequence.GetIndexName(), sequence.GetIndexUnit()) == ("time", "s")
    assert [float(sequence.GetNthIndexValue(k)) for k in range(5)] == [0, 1, 2, 3, 4]
    series, found, loaded = _load(scene, realdata / GE_FMRI)
    for item in range(5):
        ours = loaded.sequence.GetNthDataNode(item)
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(sequence.GetNthDataNode(item)),
                                      slicer.util.arrayFromVolume(ours))
        np.testing.assert_allclose(_ijk_to_ras(sequence.GetNthDataNode(item)), _ijk_to_ras(ours), atol=1e-6)


def test_a_cancelled_load_leaves_the_scene_as_it_was(scene, write_phantom):
    from irregular_series.slicer.progress import Cancelled

    (found,) = volume_series(_only_series(write_phantom("interrupted_time_series")))
    before = scene.GetNumberOfNodes()
    for stop_at in (1, 3, 4):
        reports = []
        with pytest.raises(Cancelled):
            sequences.load_sequence(scene, found, ConvertOptions(), "seq",
                                    progress=lambda f, m: reports.append(f) or len(reports) == stop_at)
        assert scene.GetNumberOfNodes() == before
    reports = []
    sequences.load_sequence(scene, found, ConvertOptions(), "seq", progress=lambda f, m: reports.append(f))
    assert reports == sorted(reports) and reports[-1] == 1.0
