"""Labels mapped back onto the acquired slices, on a real MRML scene (slicer-core wheel).

The labels are coordinate-encoded: regions defined in LPS (two balls) are painted on a hardened
volume's grid, mapped back, and every raw pixel's label is checked against its own DICOM position
read from its file with pydicom, two ways: exactly (the label of the voxel nearest to that
position, computed here from the headers and the labelmap's own matrix) and by meaning (a pixel
further than half a voxel diagonal from a ball's surface has that ball's label, or 0 outside both).
"""

from __future__ import annotations

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="needs the slicer-core wheel (requirements/test.txt)")
import slicer.util  # noqa: E402, F811 (the submodule, after the skip)
from vtkmodules.vtkCommonMath import vtkMatrix4x4  # noqa: E402

from irregular_series import analyze  # noqa: E402
from irregular_series.options import ConvertOptions  # noqa: E402
from irregular_series.orientation import LPS_TO_RAS  # noqa: E402
from irregular_series.slicer import mapback  # noqa: E402
from irregular_series.slicer import scene as mrml  # noqa: E402
from irregular_series.slicer.progress import Cancelled  # noqa: E402

from volume_checks import DicomPlacement  # noqa: E402


def _volume_stack(folder):
    return next(s for s in analyze([folder]).series[0].stacks if s.role == "volume")


def _ijk_to_ras(node) -> np.ndarray:
    matrix = vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return slicer.util.arrayFromVTKMatrix(matrix)


def _dicom_pixels_lps(stack) -> np.ndarray:
    """Every pixel's position from its own file's header: (N, rows, columns, 3), LPS mm."""
    out = []
    for s in stack.slices:
        at = DicomPlacement.of(s.path)
        j, i = np.mgrid[0:at.rows, 0:at.columns]
        out.append(at.ipp + i[..., None] * at.between_columns * at.along_row
                   + j[..., None] * at.between_rows * at.down_column)
    return np.array(out)


class Balls:
    """Label 1 in a ball around ``centre``, label 2 in a smaller ball above it (LPS mm), 0 elsewhere."""

    def __init__(self, centre_lps: np.ndarray, radius_mm: float) -> None:
        self.centres = [np.asarray(centre_lps, float), np.asarray(centre_lps, float) + [0.0, 0.0, 1.9 * radius_mm]]
        self.radii = [radius_mm, 0.6 * radius_mm]

    def labels(self, points_lps: np.ndarray) -> np.ndarray:
        out = np.zeros(points_lps.shape[:-1], np.int16)
        for label, (centre, radius) in enumerate(zip(self.centres, self.radii), start=1):
            out[np.linalg.norm(points_lps - centre, axis=-1) < radius] = label
        return out

    def clear_of_surfaces(self, points_lps: np.ndarray, margin_mm: float) -> np.ndarray:
        clear = np.ones(points_lps.shape[:-1], bool)
        for centre, radius in zip(self.centres, self.radii):
            clear &= np.abs(np.linalg.norm(points_lps - centre, axis=-1) - radius) > margin_mm
        return clear


def _labelmap_on(scene, grid_node, world_to_lps: np.ndarray, balls: Balls, name: str = "labels"):
    """A labelmap on ``grid_node``'s grid whose voxels hold ``balls``' label at their centres;
    ``world_to_lps`` (4 x 4) takes the labelmap's RAS to the LPS the balls are defined in."""
    node = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", name)
    node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(_ijk_to_ras(grid_node)))
    shape = slicer.util.arrayFromVolume(grid_node).shape
    k, j, i = np.indices(shape)
    ijk = np.stack([i, j, k, np.ones_like(i)], axis=-1).astype(float)
    lps = ijk @ (world_to_lps @ _ijk_to_ras(grid_node)).T
    slicer.util.updateVolumeFromArray(node, balls.labels(lps[..., :3]))
    node.CreateDefaultDisplayNodes()
    return node


def _check_mapped(result, raw, stack, labelmap, balls: Balls, raw_to_labelmap_ras: np.ndarray = np.eye(4)) -> None:
    """``result`` holds, for every raw pixel, the label nearest to its DICOM position (exactly),
    and the balls' label wherever the position is clear of their surfaces (by meaning).
    ``raw_to_labelmap_ras``: from the raw stack's RAS to the labelmap's (the transforms between)."""
    labels = slicer.util.arrayFromVolume(result)
    assert labels.shape == slicer.util.arrayFromVolume(raw).shape
    np.testing.assert_array_equal(_ijk_to_ras(result), _ijk_to_ras(raw))
    assert result.GetTransformNodeID() == raw.GetTransformNodeID()
    assert result.GetAttribute(mrml.STACK_ATTRIBUTE) == raw.GetAttribute(mrml.STACK_ATTRIBUTE)

    lps = _dicom_pixels_lps(stack)
    ras = np.concatenate([lps, np.ones(lps.shape[:-1] + (1,))], axis=-1) @ (raw_to_labelmap_ras @ LPS_TO_RAS).T
    index = ras @ np.linalg.inv(_ijk_to_ras(labelmap)).T
    nearest = np.floor(index[..., :3] + 0.5).astype(int)
    drawn = slicer.util.arrayFromVolume(labelmap)
    inside = np.all((nearest >= 0) & (nearest < drawn.shape[::-1]), axis=-1)
    expected = np.zeros_like(labels)
    expected[inside] = drawn[nearest[inside][:, 2], nearest[inside][:, 1], nearest[inside][:, 0]]
    np.testing.assert_array_equal(labels, expected)

    # In the balls' own frame: LPS of the labelmap's world.
    ball_lps = (ras @ LPS_TO_RAS.T)[..., :3]
    half_diagonal = 0.5 * np.linalg.norm(np.linalg.norm(_ijk_to_ras(labelmap)[:3, :3], axis=0)) + 1e-6
    clear = balls.clear_of_surfaces(ball_lps, half_diagonal)
    np.testing.assert_array_equal(labels[clear], balls.labels(ball_lps)[clear])
    for label in (1, 2):  # not a vacuous check: both balls reach many raw pixels
        assert np.count_nonzero(labels[clear] == label) > 5, label


def _centre_lps(stack) -> np.ndarray:
    return _dicom_pixels_lps(stack).reshape(-1, 3).mean(axis=0)


@pytest.mark.parametrize("tilt", ["deskew", "keep"])
def test_labels_drawn_on_a_hardened_tilted_stack_land_on_the_right_raw_pixels(scene, write_phantom, tilt):
    stack = _volume_stack(write_phantom("gantry_tilt"))
    raw = mrml.add_stack_volume(scene, stack, mrml.stack_pixels(stack), "raw")
    (hardened,) = mrml.harden(scene, raw, stack, None, ConvertOptions(spacing=1.25, tilt=tilt))
    balls = Balls(_centre_lps(stack) - [0.0, 0.0, 6.0], 7.0)
    labelmap = _labelmap_on(scene, hardened, LPS_TO_RAS, balls)

    result = mapback.map_to_acquisition(scene, labelmap, raw, stack)
    assert result.IsA("vtkMRMLLabelMapVolumeNode") and result.GetName() == "labels on raw"
    assert result.GetAttribute(mapback.MAPPED_FROM_ATTRIBUTE) == "labels"
    _check_mapped(result, raw, stack, labelmap, balls)


@pytest.mark.parametrize("case", ["missing_slices", "variable_spacing", "stitched_sections", "tilt_with_missing"])
def test_acquisition_transformed_stacks_with_gaps_map_back_through_their_dicom_positions(scene, write_phantom, case):
    stack = _volume_stack(write_phantom(case))
    raw = mrml.add_stack_volume(scene, stack, mrml.stack_pixels(stack), "raw")
    acquisition = mrml.create_acquisition_transform(scene, raw, stack)
    assert acquisition is not None  # the raw grid alone would put these slices in the wrong place
    (hardened,) = mrml.harden(scene, raw, stack, None, ConvertOptions(spacing=0.7))
    radius = min(8.0, np.ptp(_dicom_pixels_lps(stack)[..., 2]) / 4.2)  # both balls inside the stack
    balls = Balls(_centre_lps(stack) - [0.0, 0.0, 0.95 * radius], radius)
    labelmap = _labelmap_on(scene, hardened, LPS_TO_RAS, balls)

    result = mapback.map_to_acquisition(scene, labelmap, raw, stack)
    assert result.GetParentTransformNode() is acquisition  # shown over the raw volume
    _check_mapped(result, raw, stack, labelmap, balls)


def _rotation_ras() -> np.ndarray:
    angle = np.radians(20.0)
    matrix = np.eye(4)
    matrix[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    matrix[:3, 3] = [5.0, -3.0, 12.0]
    return matrix


def test_parent_transforms_of_the_raw_volume_and_the_labelmap_are_followed(scene, write_phantom):
    stack = _volume_stack(write_phantom("missing_slices"))
    raw = mrml.add_stack_volume(scene, stack, mrml.stack_pixels(stack), "raw")
    acquisition = mrml.create_acquisition_transform(scene, raw, stack)
    registration = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "registration")
    registration.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(_rotation_ras()))
    acquisition.SetAndObserveTransformNodeID(registration.GetID())  # the raw volume, registered
    (hardened,) = mrml.harden(scene, raw, stack, None, ConvertOptions(spacing=0.7))
    assert hardened.GetParentTransformNode() is registration

    # Drawn in the world (no transform) on the registered hardened volume's grid moved there:
    # the raw pixel at DICOM position p is at registration(p) in the world.
    world = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "hardened in the world")
    world.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(_rotation_ras() @ _ijk_to_ras(hardened)))
    slicer.util.updateVolumeFromArray(world, slicer.util.arrayFromVolume(hardened))
    balls = Balls(((_rotation_ras() @ LPS_TO_RAS @ [*_centre_lps(stack), 1.0]) @ LPS_TO_RAS)[:3] - [0, 0, 7.6], 8.0)
    labelmap = _labelmap_on(scene, world, LPS_TO_RAS, balls)
    result = mapback.map_to_acquisition(scene, labelmap, raw, stack)
    _check_mapped(result, raw, stack, labelmap, balls, _rotation_ras())

    # Drawn on the hardened volume itself, under the registration: no transform between them.
    under = _labelmap_on(scene, hardened, LPS_TO_RAS @ _rotation_ras(), balls, "labels under the registration")
    under.SetAndObserveTransformNodeID(registration.GetID())
    again = mapback.map_to_acquisition(scene, under, raw, stack)
    labels = slicer.util.arrayFromVolume(again)
    lps = _dicom_pixels_lps(stack)
    world_lps = (np.concatenate([lps, np.ones(lps.shape[:-1] + (1,))], axis=-1)
                 @ (LPS_TO_RAS @ _rotation_ras() @ LPS_TO_RAS).T)[..., :3]
    clear = balls.clear_of_surfaces(world_lps, 0.5 * np.linalg.norm([0.7, 1.0, 1.0]) + 1e-6)
    np.testing.assert_array_equal(labels[clear], balls.labels(world_lps)[clear])
    assert np.count_nonzero(labels[clear] == 1) > 50


def test_labels_under_the_non_linear_acquisition_transform_map_back_onto_themselves(scene, write_phantom):
    stack = _volume_stack(write_phantom("stitched_sections"))
    raw = mrml.add_stack_volume(scene, stack, mrml.stack_pixels(stack), "raw")
    acquisition = mrml.create_acquisition_transform(scene, raw, stack)
    # One label per raw voxel, on the raw grid, displayed under the grid transform as the raw volume is.
    drawn = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "drawn on the raw volume")
    drawn.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(_ijk_to_ras(raw)))
    k, j, i = np.indices(slicer.util.arrayFromVolume(raw).shape)
    codes = (1 + k * 1000 + j * 32 + i).astype(np.int32)
    slicer.util.updateVolumeFromArray(drawn, codes)
    drawn.SetAndObserveTransformNodeID(acquisition.GetID())

    result = mapback.map_to_acquisition(scene, drawn, raw, stack)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(result), codes)


def test_a_segmentation_is_mapped_back_as_its_exported_labels(scene, write_phantom):
    stack = _volume_stack(write_phantom("gantry_tilt"))
    raw = mrml.add_stack_volume(scene, stack, mrml.stack_pixels(stack), "raw")
    (hardened,) = mrml.harden(scene, raw, stack, None, ConvertOptions(spacing=1.25))
    balls = Balls(_centre_lps(stack) - [0.0, 0.0, 6.0], 7.0)
    labelmap = _labelmap_on(scene, hardened, LPS_TO_RAS, balls)
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "segments")
    assert slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap, segmentation)
    before = scene.GetNumberOfNodes()

    result = mapback.map_to_acquisition(scene, segmentation, raw, stack)
    assert result.GetName() == "segments on raw"
    # the result, its display node and the exported labels' colour table (segment colours); the
    # exported labelmap itself is gone
    added = [scene.GetNthNode(n).GetClassName() for n in range(before, scene.GetNumberOfNodes())]
    assert sorted(added) == ["vtkMRMLColorTableNode", "vtkMRMLLabelMapVolumeDisplayNode",
                             "vtkMRMLLabelMapVolumeNode"], added
    (colors,) = [scene.GetNthNode(n) for n in range(before, scene.GetNumberOfNodes())
                 if scene.GetNthNode(n).IsA("vtkMRMLColorTableNode")]
    assert result.GetDisplayNode().GetColorNodeID() == colors.GetID()
    from_labels = mapback.map_to_acquisition(scene, labelmap, raw, stack)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(result), slicer.util.arrayFromVolume(from_labels))


def test_cancelled_map_back_adds_nothing(scene, write_phantom):
    stack = _volume_stack(write_phantom("gantry_tilt"))
    raw = mrml.add_stack_volume(scene, stack, mrml.stack_pixels(stack), "raw")
    (hardened,) = mrml.harden(scene, raw, stack, None, ConvertOptions(spacing=1.25))
    labelmap = _labelmap_on(scene, hardened, LPS_TO_RAS, Balls(_centre_lps(stack), 7.0))
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "segments")
    slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap, segmentation)
    before = [scene.GetNthNode(n).GetID() for n in range(scene.GetNumberOfNodes())]
    reports = []

    def stop_at_the_fifth_slice(fraction, message):
        reports.append(fraction)
        return len(reports) == 5

    with pytest.raises(Cancelled):
        mapback.map_to_acquisition(scene, segmentation, raw, stack, progress=stop_at_the_fifth_slice)
    assert [scene.GetNthNode(n).GetID() for n in range(scene.GetNumberOfNodes())] == before
    assert reports == sorted(reports) and reports[-1] == pytest.approx(5 / stack.slice_count)


def test_only_a_raw_volume_of_the_stack_takes_the_labels(scene, write_phantom):
    stack = _volume_stack(write_phantom("gantry_tilt"))
    raw = mrml.add_stack_volume(scene, stack, mrml.stack_pixels(stack), "raw")
    (hardened,) = mrml.harden(scene, raw, stack, None, ConvertOptions(spacing=1.25))
    labelmap = _labelmap_on(scene, hardened, LPS_TO_RAS, Balls(_centre_lps(stack), 7.0))
    with pytest.raises(ValueError, match="is a hardened volume"):
        mapback.map_to_acquisition(scene, labelmap, hardened, stack)
    with pytest.raises(ValueError, match="not loaded by IrregularSeries"):
        mapback.map_to_acquisition(scene, labelmap, labelmap, stack)
    other = _volume_stack(write_phantom("missing_slices"))
    with pytest.raises(ValueError, match="not the stack's raw volume"):
        mapback.map_to_acquisition(scene, labelmap, raw, other)
    with pytest.raises(ValueError, match="neither a labelmap nor a segmentation"):
        mapback.map_to_acquisition(scene, hardened, raw, stack)
