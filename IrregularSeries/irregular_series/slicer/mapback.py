"""Labels mapped back onto the acquired slices: a labelmap or segmentation made on a hardened (or
acquisition-transformed) volume becomes a labelmap on the raw volume's grid, one label per pixel
of every DICOM image, so that results can be reported per original slice, exported with the
original series or compared with the raw images.

Each raw pixel takes the label of the voxel nearest to its own DICOM position (slice by slice,
``irregular_series.mapback``), with every transform between the two volumes taken into account:
the raw volume's placement (its parent transform, less the acquisition transform) and the
labelmap's parent transforms, linear or not. The result remembers the raw stack and sits under
the raw volume's own parent transform, so it is shown over the raw volume and can be exported
with the raw series.
"""

from __future__ import annotations

import numpy as np
import slicer
import slicer.util
from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonTransforms import vtkGeneralTransform, vtkTransform

from ..mapback import nearest_on_slices
from ..model import Stack
from ..orientation import LPS_TO_RAS
from .progress import Progress, ReportProgress, all_or_nothing, progress_of, remove_nodes
from .scene import INSTANCE_UIDS_ATTRIBUTE, SPACING_ATTRIBUTE, STACK_ATTRIBUTE, placement_parent
from .scene import _ijk_to_ras as ijk_to_ras
from .scene import _place_next_to as place_next_to

MAPPED_FROM_ATTRIBUTE = "IrregularSeries.mappedFrom"
"""Mapped-back labelmap attribute: the name of the labelmap or segmentation it was mapped from."""


def map_to_acquisition(scene, source_node, raw_node, stack: Stack, *, name: str = "",
                       progress: ReportProgress | Progress | None = None):
    """A new labelmap volume node on ``raw_node``'s grid (the stack's raw volume, one slice per
    image of ``stack``) holding, for every raw pixel, the label of ``source_node`` nearest to that
    pixel's DICOM position, 0 where it is outside the labels.

    ``source_node`` is a ``vtkMRMLLabelMapVolumeNode`` or a ``vtkMRMLSegmentationNode`` (all its
    segments, exported to labels with Slicer's segmentations logic, numbered as Slicer numbers
    them). The result is named ``name`` (default "<source> on <raw>"), carries the raw volume's
    stack and instances, and sits under the raw volume's parent transform next to it. ``progress``
    is told after each slice (see ``progress``); a cancelled or failed call adds no node.
    """
    if not raw_node.GetAttribute(STACK_ATTRIBUTE):
        raise ValueError(f"{raw_node.GetName()} was not loaded by IrregularSeries (no {STACK_ATTRIBUTE})")
    if raw_node.GetAttribute(SPACING_ATTRIBUTE):
        raise ValueError(f"{raw_node.GetName()} is a hardened volume: map back onto the raw volume it was made from")
    shape = (stack.slice_count, stack.slices[0].rows, stack.slices[0].columns)
    raw_shape = raw_node.GetImageData().GetDimensions()[::-1] if raw_node.GetImageData() is not None else None
    if raw_shape != shape:
        raise ValueError(f"{raw_node.GetName()} holds {raw_shape} voxels (slices, rows, columns), "
                         f"its stack {shape}: it is not the stack's raw volume")
    report = progress_of(progress)
    with all_or_nothing(scene):
        labelmap = _as_labelmap(scene, source_node)
        try:
            labels = nearest_on_slices(slicer.util.arrayFromVolume(labelmap), stack.slices,
                                       _lps_to_index(labelmap, raw_node), progress=report.counting("Mapping the labels"))
            color = labelmap.GetDisplayNode().GetColorNodeID() if labelmap.GetDisplayNode() is not None else None
        finally:
            if labelmap is not source_node:
                remove_nodes(scene, [labelmap])  # its colour table stays: the result's colours
        node = scene.AddNewNodeByClass(
            "vtkMRMLLabelMapVolumeNode",
            scene.GenerateUniqueName(name or f"{source_node.GetName()} on {raw_node.GetName()}"))
        node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(ijk_to_ras(raw_node)))
        slicer.util.updateVolumeFromArray(node, labels)
        node.CreateDefaultDisplayNodes()
        if color:
            node.GetDisplayNode().SetAndObserveColorNodeID(color)
        node.SetAndObserveTransformNodeID(raw_node.GetTransformNodeID())
        for attribute in (STACK_ATTRIBUTE, INSTANCE_UIDS_ATTRIBUTE):
            node.SetAttribute(attribute, raw_node.GetAttribute(attribute) or "")
        node.SetAttribute(MAPPED_FROM_ATTRIBUTE, source_node.GetName())
        place_next_to(scene, node, raw_node)
    report.finished("Mapped the labels")
    return node


def _as_labelmap(scene, source_node):
    """``source_node`` itself when it is a labelmap; a segmentation's segments exported to a new
    labelmap (under the segmentation's transform, at the segments' own geometry)."""
    if source_node.IsA("vtkMRMLLabelMapVolumeNode"):
        return source_node
    if not source_node.IsA("vtkMRMLSegmentationNode"):
        raise ValueError(f"{source_node.GetName()} is neither a labelmap nor a segmentation")
    if source_node.GetSegmentation().GetNumberOfSegments() == 0:
        raise ValueError(f"{source_node.GetName()} has no segments")
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", scene.GenerateUniqueName(source_node.GetName()))
    if not slicer.vtkSlicerSegmentationsModuleLogic.ExportAllSegmentsToLabelmapNode(source_node, labelmap):
        raise ValueError(f"the segments of {source_node.GetName()} could not be exported to a labelmap")
    return labelmap


def _lps_to_index(labelmap, raw_node):
    """From the stack's DICOM positions (LPS, under the raw volume's placement) to the labelmap's
    continuous (i, j, k): a 4 x 4 matrix when every transform between them is linear, else a
    function that maps the points through them."""
    between = vtkGeneralTransform()
    slicer.vtkMRMLTransformNode.GetTransformBetweenNodes(placement_parent(raw_node), labelmap.GetParentTransformNode(),
                                                         between)
    ras_to_index = np.linalg.inv(ijk_to_ras(labelmap))
    linear = vtkTransform()
    if slicer.vtkMRMLTransformNode.IsGeneralTransformLinear(between, linear):
        return ras_to_index @ slicer.util.arrayFromVTKMatrix(linear.GetMatrix()) @ LPS_TO_RAS

    def through(points_lps: np.ndarray) -> np.ndarray:
        points, moved = vtkPoints(), vtkPoints()
        points.SetData(numpy_to_vtk(np.ascontiguousarray(points_lps * [-1.0, -1.0, 1.0]), deep=True))
        between.TransformPoints(points, moved)
        ras = vtk_to_numpy(moved.GetData())
        return ras @ ras_to_index[:3, :3].T + ras_to_index[:3, 3]

    return through
