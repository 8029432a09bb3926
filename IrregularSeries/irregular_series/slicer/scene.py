"""Scene logic: MRML volume, transform, table and plot nodes for analysed stacks.

Needs ``slicer`` (the application, or the Qt-free ``slicer-core`` wheel), vtk and numpy, never Qt.
Every function takes the scene as an argument, so the same code runs inside Slicer and headless.
MRML is RAS: positions from the core (LPS) have x and y negated here.

The *raw volume* of a stack is what Slicer's own DICOM reader (vtkITK, i.e. ITK's
ImageSeriesReader) makes of the stack's files: the slices' pixels unchanged, on a regular grid
whose origin, in-plane axes and pixel spacing are the first slice's and whose k step is the mean
step ``(IPP_last - IPP_first) / (N - 1)``, sheared along the stack when it is tilted (as Slicer
5.8 and later do). Where the slices are not on that grid (gaps, variable spacing, stitched
sections, non-parallel slices), ``create_acquisition_transform`` adds a grid transform that moves
every slice onto its DICOM position, as Slicer's acquisition transform does; ``harden`` instead
resamples the stack with this package's resampler onto a grid of the chosen spacing and checks
that every slice lands where its header says.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np
import slicer
import slicer.util
from vtkmodules.util.numpy_support import vtk_to_numpy
from vtkmodules.vtkCommonCore import VTK_DOUBLE, vtkDoubleArray, vtkIntArray, vtkStringArray
from vtkmodules.vtkCommonDataModel import vtkImageData
from vtkmodules.vtkCommonMath import vtkMatrix4x4

from ..analysis import analyze
from ..decisions import OptionName
from ..geometry import analyze_geometry, pixel_to_lps, slice_corners_lps
from ..headers import scan
from ..model import Excluded, SliceHeader, Stack
from ..options import ConvertOptions
from ..orientation import LPS_TO_RAS
from ..outputs import output_path, safe_stem
from ..pixels import PixelDecodeError, load_pixels, output_dtype
from ..planning import plan_stack
from ..policies import OutputFormat
from ..tolerances import DEFAULT, Tolerances
from ..volume import VerificationError, Volume, build_volume
from .database import with_transfer_syntax
from .examine import LoadableSpec, LoadMode, examine_series, slicer_series_name
from .progress import Progress, ReportProgress, all_or_nothing, progress_of

if TYPE_CHECKING:
    from ..dicom_writer import DicomSeries

_HARDEN_OPTIONS = ("spacing", "gaps", "sections", "tilt", "interpolation", "tolerances")
"""The options ``harden`` takes, recorded on hardened volumes (``OPTIONS_ATTRIBUTE``)."""

STACK_ATTRIBUTE = "IrregularSeries.stack"
"""Volume node attribute: JSON with the stack's id, role and reasons, its images (SOP instance UID
and frame, in slice order) and the file each instance was in when loaded; ``stack_of`` rebuilds
the stack from exactly those instances."""

INSTANCE_UIDS_ATTRIBUTE = "DICOM.instanceUIDs"
"""Slicer's volume node attribute for the SOP instance UIDs of its files, space-separated, one per
file in slice order (as Slicer's scalar-volume plugin sets it)."""

Locate = Callable[[str], str]
"""``locate(sop_instance_uid)``: the file holding that instance now, "" when unknown."""

ReadHeaders = Callable[[list[str]], tuple[list[SliceHeader], list[Excluded]]]
"""``read(files)``: the images of those files and the files left out."""

ACQUISITION_TRANSFORM_ATTRIBUTE = "IrregularSeries.acquisitionTransform"
"""Set ("1") on grid transform nodes made by ``create_acquisition_transform``."""

OPTIONS_ATTRIBUTE = "IrregularSeries.options"
PART_ATTRIBUTE = "IrregularSeries.part"
"""Hardened volume node attributes: the options it was hardened with (JSON: spacing, the policies
and the tolerances) and the label of its part ("" for a whole stack), from which ``export_dicom``
rebuilds the same volume."""

SPACING_ATTRIBUTE = "IrregularSeries.sliceSpacingMm"
VERIFICATION_ATTRIBUTE = "IrregularSeries.verificationMaxMm"
DECISIONS_ATTRIBUTE = "IrregularSeries.decisions"
CONTENT_ATTRIBUTE = "IrregularSeries.contentCheck"
"""Hardened volume node attributes: slice spacing (mm), worst verified slice residual (mm), the
decisions made (JSON list of sentences in the module panel's words, see ``panel_setting``), and
the content check's summary (JSON, the ``content_check`` object of ``report.json``)."""

PANEL_LABELS: dict[str, str] = {
    "spacing": "Slice spacing", "gaps": "Gaps", "sections": "Sections", "tilt": "Gantry tilt",
    "interpolation": "Interpolation", "include_localizers": "Include localizers", "keep_together": "Keep together",
    "overlap": "Overlap", "in_plane_spacing_mm": "In-plane spacing", "assemble": "Assemble",
}
"""The module panel's label of each conversion option it offers (``ConvertOptions`` field names)."""


def panel_setting(option: OptionName, choice: str | None) -> str:
    """An option setting in the module panel's words: "Gaps: split"."""
    label = PANEL_LABELS.get(option, option)
    return label if choice is None else f"{label}: {choice}"


# ---------------------------------------------------------------------------------------------
# Geometry of the raw volume
# ---------------------------------------------------------------------------------------------


def slice_corners_ras(stack: Stack) -> np.ndarray:
    """DICOM lattice corners of every slice, shape (N, 2, 2, 3) indexed [k, row, column], RAS mm
    (Slicer's ``sliceCornersFromDICOM`` convention)."""
    return slice_corners_lps(stack.slices) * np.array([-1.0, -1.0, 1.0])


def raw_index_to_lps(stack: Stack) -> np.ndarray:
    """Index (i, j, k, 1) to LPS mm of the stack's raw volume, as Slicer's vtkITK reader builds it.

    Origin, in-plane axes and pixel spacing of the first slice; k step the mean step from the
    first slice's position to the last's. A single slice, or slices that all share one position
    (no volume along a normal), get a 1 mm step along the normal so that the images still show.
    """
    (matrix,) = pixel_to_lps(stack.slices[:1])  # k along the normal
    first, last = stack.slices[0].pose, stack.slices[-1].pose
    span = np.asarray(last.position_lps_mm) - first.position_lps_mm
    if np.linalg.norm(span) > DEFAULT.position_mm:
        matrix[:3, 2] = span / (len(stack.slices) - 1)
    return matrix


def lattice_corners_ras(volume_node) -> np.ndarray:
    """Where the volume's own IJK-to-RAS puts each slice's lattice corners: (N, 2, 2, 3), RAS mm,
    [k, b, a] = IJKToRAS (a * columns, b * rows, k)."""
    columns, rows, slices = volume_node.GetImageData().GetDimensions()
    ijk_to_ras = _ijk_to_ras(volume_node)
    a, b = np.meshgrid([0, columns], [0, rows])
    ijk = np.stack(np.broadcast_arrays(a[None], b[None], np.arange(slices)[:, None, None]), axis=-1)
    return ijk @ ijk_to_ras[:3, :3].T + ijk_to_ras[:3, 3]


# ---------------------------------------------------------------------------------------------
# Volumes
# ---------------------------------------------------------------------------------------------


def add_volume(scene, array_kji: np.ndarray, index_to_lps: np.ndarray, name: str):
    """A new scalar volume node holding ``array_kji`` (indexed [k, j, i]) at ``index_to_lps``,
    with display nodes and a subject hierarchy item."""
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", scene.GenerateUniqueName(name))
    _set_voxels(node, array_kji, index_to_lps)
    node.CreateDefaultDisplayNodes()
    sh = _subject_hierarchy(scene)
    sh.CreateItem(sh.GetSceneItemID(), node)
    return node


def add_stack_volume(scene, stack: Stack, pixels: np.ndarray, name: str):
    """The stack's raw volume (see the module docstring), remembering the instances it shows."""
    node = add_volume(scene, pixels, raw_index_to_lps(stack), name)
    node.SetAttribute(STACK_ATTRIBUTE, json.dumps(_stack_record(stack)))
    node.SetAttribute(INSTANCE_UIDS_ATTRIBUTE, " ".join(dict.fromkeys(s.sop_instance_uid for s in stack.slices)))
    return node


_PROGRESS_READS = 50
"""Pixel reading reports its progress about this many times (in groups of whole files)."""


def stack_pixels(stack: Stack, progress: ReportProgress | Progress | None = None,
                 dtype: np.dtype | None = None) -> np.ndarray:
    """The stack's rescaled pixels (N, rows, columns), in ``dtype`` (default: the smallest exact
    type, ``pixels.output_dtype``): this package's reader (uncompressed files
    directly, the rest through pydicom), or Slicer's vtkITK reader (GDCM, then DCMTK) for
    single-frame files pydicom cannot decode here. ``progress`` (see ``progress``) is told as
    groups of files are read."""
    slices = with_transfer_syntax(stack.slices)
    report = progress_of(progress)
    try:
        if report.report is None:
            return load_pixels(slices, dtype=dtype)
        by_file: dict[str, list[int]] = {}
        for k, s in enumerate(slices):
            by_file.setdefault(s.path, []).append(k)
        files = list(by_file.values())
        # Whole files per group, so that a multi-frame file is still decoded once; groups of at
        # least 16 files keep the reader's threads busy.
        size = max(16, -(-len(files) // _PROGRESS_READS))
        out = np.empty((len(slices), slices[0].rows, slices[0].columns), output_dtype(slices) if dtype is None else dtype)
        report(0.0, "Reading the pixels")
        for start in range(0, len(files), size):
            rows = [k for group in files[start:start + size] for k in group]
            out[rows] = load_pixels([slices[k] for k in rows], dtype=out.dtype)
            report(min(start + size, len(files)) / len(files), "Reading the pixels")
        return out
    except PixelDecodeError:
        if any(s.number_of_frames > 1 for s in stack.slices):
            raise
        pixels = read_pixels_vtkitk(stack)
        return pixels if dtype is None else pixels.astype(dtype)


def read_pixels_vtkitk(stack: Stack) -> np.ndarray:
    """The stack's single-frame files read with Slicer's vtkITK reader (GDCM, then DCMTK), in
    slice order: (N, rows, columns), rescaled by ITK."""
    files = [s.path for s in stack.slices]
    for approach in ("GDCM", "DCMTK"):
        reader = slicer.vtkITKArchetypeImageSeriesScalarReader()
        reader.SetArchetype(files[0])
        for f in files:
            reader.AddFileName(f)
        reader.SetSingleFile(0)
        reader.SetOutputScalarTypeToNative()
        reader.SetDesiredCoordinateOrientationToNative()
        reader.SetUseNativeOriginOn()
        getattr(reader, f"SetDICOMImageIOApproachTo{approach}")()
        reader.Update()
        image = reader.GetOutput()
        if reader.GetErrorCode() == 0 and image.GetDimensions()[2] == len(files):
            columns, rows, slices = image.GetDimensions()
            return vtk_to_numpy(image.GetPointData().GetScalars()).reshape(slices, rows, columns).copy()
    raise PixelDecodeError(f"neither pydicom nor Slicer's DICOM reader can read the pixels of {files[0]}")


def read_files(files: list[str]) -> tuple[list[SliceHeader], list[Excluded]]:
    """The images of ``files``, read in this process (Slicer's embedded Python cannot start
    worker processes: they would start the application again)."""
    result = scan(files, workers=1)
    return result.slices, result.excluded


def stack_of(
    volume_node, locate: Locate | None = None, read: ReadHeaders = read_files, tolerances: Tolerances = DEFAULT
) -> Stack:
    """The stack a volume was loaded from (``STACK_ATTRIBUTE``), rebuilt from exactly the
    instances it remembers, without grouping anything again: each instance is found with
    ``locate`` (in Slicer, the DICOM database, which follows files moved within it), else at the
    path it had when loaded; the headers are read with ``read`` and the geometry analysed again.
    ``ValueError`` names the first instance that cannot be found."""
    text = volume_node.GetAttribute(STACK_ATTRIBUTE)
    if not text:
        raise ValueError(f"{volume_node.GetName()} was not loaded by IrregularSeries (no {STACK_ATTRIBUTE})")
    record = json.loads(text)
    wanted = [(uid, frame) for uid, frame in record["slices"]]
    files = {uid: (locate(uid) if locate is not None else "") or path for uid, path in record["files"].items()}
    found, _ = read(list(dict.fromkeys(files.values())))
    by_key = {(s.sop_instance_uid, s.frame): s for s in found}
    missing = [key for key in wanted if key not in by_key]
    if missing:
        uid = missing[0][0]
        raise ValueError(
            f"{volume_node.GetName()}: {len(missing)} of its {len(wanted)} images are no longer found, "
            f"the first of instance {uid} (looked for in {files[uid]})"
        )
    stack = Stack(record["id"], record["role"], record["reasons"], [by_key[key] for key in wanted])
    stack.geometry = analyze_geometry(stack.slices, tolerances)
    return stack


class StackCache:
    """The stacks of a scene's volumes, each rebuilt once (``stack_of``) and all forgotten when
    the scene closes: a scene opened next may hold other volumes under the same records."""

    def __init__(self, scene, locate: Locate | None = None, read: ReadHeaders = read_files) -> None:
        self._stacks: dict[str, Stack] = {}
        self._locate = locate
        self._read = read
        self._scene = scene
        self._observer = scene.AddObserver(scene.EndCloseEvent, lambda caller, event: self._stacks.clear())

    def stack(self, volume_node) -> Stack:
        key = volume_node.GetAttribute(STACK_ATTRIBUTE) or ""
        if key not in self._stacks:
            self._stacks[key] = stack_of(volume_node, self._locate, self._read)
        return self._stacks[key]

    def close(self) -> None:
        """Stop observing the scene and forget every stack."""
        self._scene.RemoveObserver(self._observer)
        self._stacks.clear()


# ---------------------------------------------------------------------------------------------
# Acquisition transform
# ---------------------------------------------------------------------------------------------


def create_acquisition_transform(scene, volume_node, stack: Stack, tolerances: Tolerances = DEFAULT):
    """A grid transform that moves every slice of the raw volume onto its DICOM position, or
    ``None`` when every corner is already within ``tolerances.corner_mm``. A volume already under
    its acquisition transform keeps it (it is returned).

    Like Slicer's acquisition transform: a 2 x 2 x N displacement grid on the volume's slice
    lattice corners (linear in between, so each slice moves as a plane), the volume placed under
    it, the node next to the volume in the subject hierarchy. Raises ``VerificationError`` when
    a mapped corner misses its DICOM corner by more than ``tolerances.corner_mm``.
    """
    parent = volume_node.GetParentTransformNode()
    if parent is not None and parent.GetAttribute(ACQUISITION_TRANSFORM_ATTRIBUTE):
        return parent
    source = lattice_corners_ras(volume_node)
    target = slice_corners_ras(stack)
    if source.shape != target.shape:
        raise ValueError(f"{volume_node.GetName()} has {len(source)} slices, the stack {len(target)}")
    if np.abs(source - target).max() <= tolerances.corner_mm:
        return None

    columns, rows, slices = volume_node.GetImageData().GetDimensions()
    spacing = volume_node.GetSpacing()
    grid = vtkImageData()
    grid.SetOrigin(volume_node.GetOrigin())
    grid.SetSpacing(spacing[0] * columns, spacing[1] * rows, spacing[2])
    grid.SetDimensions(2, 2, slices)
    grid.AllocateScalars(VTK_DOUBLE, 3)
    directions = vtkMatrix4x4()
    volume_node.GetIJKToRASDirectionMatrix(directions)
    transform = slicer.vtkOrientedGridTransform()
    transform.SetGridDirectionMatrix(directions)
    transform.SetDisplacementGridData(grid)

    node = scene.AddNewNodeByClass(
        "vtkMRMLGridTransformNode", scene.GenerateUniqueName(f"{volume_node.GetName()} acquisition transform")
    )
    node.SetAttribute(ACQUISITION_TRANSFORM_ATTRIBUTE, "1")
    node.SetAndObserveTransformToParent(transform)
    slicer.util.arrayFromGridTransform(node)[:] = target - source
    slicer.util.arrayFromGridTransformModified(node)
    volume_node.SetAndObserveTransformNodeID(node.GetID())
    _place_next_to(scene, node, volume_node)

    worst = np.abs(_to_world(volume_node, source) - target).max()
    if worst > tolerances.corner_mm:
        raise VerificationError(
            f"acquisition transform of {volume_node.GetName()} leaves a slice corner {worst:.3g} mm "
            f"from its DICOM position (tolerance {tolerances.corner_mm} mm)"
        )
    return node


def acquisition_transform_of(volume_node):
    """The volume's parent transform when it is an acquisition transform, else ``None``."""
    parent = volume_node.GetParentTransformNode()
    return parent if parent is not None and parent.GetAttribute(ACQUISITION_TRANSFORM_ATTRIBUTE) else None


def placement_parent(volume_node):
    """The transform under which the stack's DICOM positions lie (``None``: the world): the
    volume's parent transform, less an acquisition transform, which only moves the raw volume's
    slices onto those positions. Hardened volumes are placed under it."""
    acquisition = acquisition_transform_of(volume_node)
    return acquisition.GetParentTransformNode() if acquisition is not None else volume_node.GetParentTransformNode()


# ---------------------------------------------------------------------------------------------
# Harden: resample onto a regular grid with this package's resampler
# ---------------------------------------------------------------------------------------------


def harden(
    scene,
    volume_node,
    stack: Stack,
    pixels: np.ndarray | None,
    options: ConvertOptions,
    *,
    replace: bool = False,
    into=None,
    progress: ReportProgress | Progress | None = None,
) -> list[Any]:
    """The stack resampled onto regular grids and verified, as ``irregular-series convert`` does
    with the same ``options``: one volume node, or one per part under the ``split`` gap or section
    policies.

    ``options.spacing`` is mm between slices along the normal, or a rule (see
    ``spacing.choose_spacing``); the gap, section, tilt and interpolation policies and the
    tolerances are those of ``options`` too.
    ``pixels`` are the stack's slices (N, rows, columns); ``None`` reads them from its files.
    Results go into new nodes next to ``volume_node`` (under its parent transform, less an
    acquisition transform); the first goes into ``into`` instead when given, or into
    ``volume_node`` itself with ``replace`` (or ``into=volume_node``), which also removes its
    acquisition transform. Raises ``VerificationError`` when a slice would land further than the
    verification tolerance (``options.tolerances.verify_mm``) from where its header says, and
    ``Cancelled`` when ``progress`` asks to stop (see ``progress``); nothing is changed then.
    """
    report = progress_of(progress)
    if pixels is None:
        pixels = stack_pixels(stack, report.part(0.0, 0.5))
        report = report.part(0.5, 1.0)
    if len(pixels) != stack.slice_count:
        raise ValueError(f"{len(pixels)} pixel slices for a stack of {stack.slice_count}")
    volumes = _build_volumes(stack, pixels, options, report.part(0.0, 0.95))
    with all_or_nothing(scene):
        nodes = _harden_into_nodes(scene, volume_node, volumes, options, replace=replace, into=into)
    report.finished("Hardened")
    return nodes


def _harden_into_nodes(scene, volume_node, volumes: list[Volume], options: ConvertOptions, *, replace: bool,
                       into) -> list[Any]:
    """``harden``'s volumes put into nodes (see there)."""
    acquisition = acquisition_transform_of(volume_node)
    parent = placement_parent(volume_node)
    replace = replace or into is volume_node
    target = volume_node if replace else into
    nodes: list[Any] = []  # MRML volume nodes
    for volume in volumes:
        if target is not None and not nodes:
            node = target
            _set_voxels(node, volume.array, volume.grid.index_to_lps)
            node.CreateDefaultDisplayNodes()
        else:
            label = f" {volume.part.label}" if volume.part.label else ""
            name = f"{volume_node.GetName()} {volume.spacing_mm:g} mm{label}"
            node = add_volume(scene, volume.array, volume.grid.index_to_lps, name)
            _place_next_to(scene, node, volume_node)
        node.SetAndObserveTransformNodeID(parent.GetID() if parent is not None else None)
        node.SetAttribute(STACK_ATTRIBUTE, volume_node.GetAttribute(STACK_ATTRIBUTE))
        record_verified(node, volume)
        node.SetAttribute(OPTIONS_ATTRIBUTE, json.dumps({name: options.to_dict()[name] for name in _HARDEN_OPTIONS}))
        node.SetAttribute(PART_ATTRIBUTE, volume.part.label)
        nodes.append(node)
    if replace and acquisition is not None:
        scene.RemoveNode(acquisition)
    return nodes


def mark_hardened(node, volume: Volume, options: ConvertOptions) -> None:
    """The attributes of a hardened volume node: what ``record_verified`` sets, the options it was
    made with and its part's label."""
    record_verified(node, volume)
    node.SetAttribute(OPTIONS_ATTRIBUTE, json.dumps({name: options.to_dict()[name] for name in _HARDEN_OPTIONS}))
    node.SetAttribute(PART_ATTRIBUTE, volume.part.label)


def record_verified(node, volume: Volume) -> None:
    """Set what the module panel shows of a verified volume on its node: slice spacing, worst slice
    residual, decisions (in the panel's words) and the content check's summary."""
    node.SetAttribute(SPACING_ATTRIBUTE, f"{volume.spacing_mm:g}")
    node.SetAttribute(VERIFICATION_ATTRIBUTE, f"{volume.verification.max_mm:.6g}")
    node.SetAttribute(DECISIONS_ATTRIBUTE, json.dumps([d.in_words(panel_setting) for d in volume.part.decisions]))
    node.SetAttribute(CONTENT_ATTRIBUTE, json.dumps(volume.content.summary()))


def _build_volumes(stack: Stack, pixels: np.ndarray, options: ConvertOptions,
                   progress: Progress | None = None) -> list[Volume]:
    """The verified volumes of every part of ``stack`` (``pixels`` in the stack's slice order),
    reporting to ``progress`` before each part."""
    report = progress or Progress()
    row_of = {_slice_key(s): k for k, s in enumerate(stack.slices)}
    parts = plan_stack(stack, options)
    volumes = []
    for n, part in enumerate(parts):
        what = f" part {n + 1} of {len(parts)}" if len(parts) > 1 else ""
        report(n / len(parts), f"Resampling and verifying{what}")
        volumes.append(build_volume(part, options, pixels[[row_of[_slice_key(s)] for s in part.slices]]))
    report(1.0, "Resampled and verified")
    return volumes


# ---------------------------------------------------------------------------------------------
# Export to DICOM: the hardened volume as a new series, written by the library's writer
# ---------------------------------------------------------------------------------------------


def export_dicom(volume_node, stack: Stack, folder: str | os.PathLike[str], *, force: bool = False) -> DicomSeries:
    """A hardened volume as a new DICOM series in ``folder/<volume name>/`` (see
    ``irregular_series.dicom_writer``), what ``convert`` writes for the same stack and options.

    The volume is built again from its stack with the options it was hardened with (so every plane
    knows the source slices it was made of) and must equal the node's voxels and geometry: a volume
    changed since it was hardened is refused (``ValueError``), since its series would misstate
    where its values came from. So is a volume that was never hardened.
    """
    from ..dicom_writer import derived_series_number, write_dicom_series

    text = volume_node.GetAttribute(OPTIONS_ATTRIBUTE)
    if not text:
        raise ValueError(f"{volume_node.GetName()} is not a hardened volume: harden it first, then export it")
    recorded = json.loads(text)
    tolerances = Tolerances(**recorded.pop("tolerances"))
    options = ConvertOptions(**recorded, tolerances=tolerances, format=OutputFormat.DICOM, force=force)
    label = volume_node.GetAttribute(PART_ATTRIBUTE) or ""
    volumes = [v for v in _build_volumes(stack, stack_pixels(stack), options) if v.part.label == label]
    if len(volumes) != 1:
        raise ValueError(f"{volume_node.GetName()}: its stack no longer gives the part it was hardened as")
    (volume,) = volumes
    voxels = slicer.util.arrayFromVolume(volume_node)
    same_grid = np.allclose(_ijk_to_ras(volume_node), LPS_TO_RAS @ volume.grid.index_to_lps, rtol=0, atol=1e-9)
    if voxels.shape != volume.array.shape or not same_grid or not np.array_equal(voxels, volume.array):
        raise ValueError(
            f"{volume_node.GetName()} has changed since it was hardened (voxels or geometry): a DICOM series of it "
            "would misstate where its values came from; harden it again to export it")
    Path(folder).mkdir(parents=True, exist_ok=True)
    target = output_path(Path(folder), safe_stem(volume_node.GetName()), "")
    if not force and os.path.lexists(target):
        raise FileExistsError(f"{target} already exists; not overwriting it")
    return write_dicom_series(volume, target, options, series_number=derived_series_number(stack.slices[0].series_number, 1),
                              series_description=volume_node.GetName())


# ---------------------------------------------------------------------------------------------
# Spacing table and plot
# ---------------------------------------------------------------------------------------------


def spacing_table(scene, stack: Stack, name: str = ""):
    """A table node (named ``name``, default after the stack) with one row per slice, in slice
    order: index, position along the normal (mm), step from the previous slice (mm; NaN for the
    first), section, instance number (-1 when absent), file, and flags naming the irregularities
    that end at that slice."""
    geometry = stack.known_geometry
    count = stack.slice_count
    steps = [float("nan")] + list(geometry.steps_mm)
    section_of = {k: section.index for section in geometry.sections for k in section.slice_indices}
    flags = _slice_flags(stack)
    table = scene.AddNewNodeByClass("vtkMRMLTableNode", scene.GenerateUniqueName(_title(stack, name)))
    _add_column(table, vtkIntArray(), "index", "", "slice index in spatial order", range(count))
    _add_column(table, vtkDoubleArray(), "position", "mm", "position along the slice normal (IPP·n)",
                geometry.positions_mm)
    _add_column(table, vtkDoubleArray(), "step", "mm", "distance from the previous slice along the normal", steps)
    _add_column(table, vtkIntArray(), "section", "", "acquisition section (0 when the stack is one section)",
                [section_of.get(k, 0) for k in range(count)])
    _add_column(table, vtkIntArray(), "instance", "", "InstanceNumber (-1 when absent)",
                [s.instance_number if s.instance_number is not None else -1 for s in stack.slices])
    _add_column(table, vtkStringArray(), "file", "", "file name (#frame for multi-frame objects)",
                [Path(s.label).name for s in stack.slices])
    _add_column(table, vtkStringArray(), "flags", "", "irregularities that end at this slice", flags)
    return table


_Value = TypeVar("_Value", contravariant=True)


class _ValueArray(Protocol[_Value]):
    """A VTK array of one value type: vtkIntArray (int), vtkDoubleArray (float), vtkStringArray (str)."""

    def SetName(self, name: str, /) -> None: ...

    def InsertNextValue(self, value: _Value, /) -> int: ...


def _add_column(table, array: _ValueArray[_Value], name: str, unit: str, description: str,
                values: Iterable[_Value]) -> None:
    """A column of ``table`` (a vtkMRMLTableNode) named ``name``, holding ``values`` in ``array``."""
    array.SetName(name)
    for value in values:
        array.InsertNextValue(value)
    table.AddColumn(array)
    table.SetColumnUnitLabel(name, unit)
    table.SetColumnDescription(name, description)


def spacing_plot(scene, stack: Stack, table=None, name: str = ""):
    """A plot chart of the step (mm) against slice index, with the nominal spacing as a dashed
    line when the headers give one. Uses (and extends) ``table`` from ``spacing_table`` if given."""
    table = table or spacing_table(scene, stack, name)
    chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", scene.GenerateUniqueName(_title(stack, name)))
    chart.SetTitle("Slice spacing")
    chart.SetXAxisTitle("slice index")
    chart.SetYAxisTitle("step from previous slice (mm)")
    plots = slicer.vtkMRMLPlotSeriesNode
    series = [("step", "step", plots.MarkerStyleCircle, plots.LineStyleSolid)]
    nominal = stack.known_geometry.spacing.nominal
    if nominal is not None:
        if table.GetColumnIndex("nominal") < 0:
            nominal_column = vtkDoubleArray()
            nominal_column.SetName("nominal")
            for _ in range(table.GetNumberOfRows()):
                nominal_column.InsertNextValue(nominal)
            table.AddColumn(nominal_column)
            table.SetColumnUnitLabel("nominal", "mm")
            table.SetColumnDescription("nominal", "nominal spacing from the headers")
        series.append(("nominal", f"nominal {nominal:g} mm", plots.MarkerStyleNone, plots.LineStyleDash))
    for column, title, marker, line in series:
        plot = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", scene.GenerateUniqueName(title))
        plot.SetAndObserveTableNodeID(table.GetID())
        plot.SetXColumnName("index")
        plot.SetYColumnName(column)
        plot.SetPlotType(plots.PlotTypeScatter)
        plot.SetMarkerStyle(marker)
        plot.SetLineStyle(line)
        chart.AddAndObservePlotSeriesNodeID(plot.GetID())
    return chart


# ---------------------------------------------------------------------------------------------
# Loading what the DICOM plugin offers
# ---------------------------------------------------------------------------------------------


def regularize(
    scene,
    volume_node,
    stack: Stack,
    spec: LoadableSpec,
    pixels: np.ndarray,
    options: ConvertOptions = ConvertOptions(),
    progress: ReportProgress | Progress | None = None,
) -> list[Any]:
    """Do what ``spec.action`` says to the stack's raw volume: nothing (``load``), add an
    acquisition transform (``transform``), or harden in place at ``spec.spacing_mm`` with the
    other choices of ``options`` (``harden``). Returns the volume nodes: ``volume_node``, plus any
    further parts of a split. ``progress`` as for ``harden``, which is all that takes long."""
    if spec.action == "transform":
        create_acquisition_transform(scene, volume_node, stack, options.tolerances)
    elif spec.action == "harden":
        if spec.spacing_mm is None:  # examine_series gives every loadable it hardens a spacing
            raise ValueError(f"{spec.name}: hardening needs a slice spacing, and this loadable has none")
        return harden(scene, volume_node, stack, pixels, dataclasses.replace(options, spacing=spec.spacing_mm),
                      replace=True, progress=progress)
    progress_of(progress).finished("Loaded")
    return [volume_node]


def load_series(
    scene,
    paths: Iterable[str | os.PathLike[str]],
    options: ConvertOptions = ConvertOptions(),
    *,
    load_mode: LoadMode = "transform",
    progress: ReportProgress | Progress | None = None,
) -> list[Any]:
    """Load every series found in ``paths`` (files or folders) into ``scene`` as the DICOM plugin
    does: the stacks it selects by default, each as a volume node. Returns the nodes in order.

    ``load_mode`` ``"transform"`` keeps irregular stacks as acquired, under an acquisition
    transform; ``"harden"`` resamples them with ``options`` (its spacing and policies).
    ``options.tolerances`` apply to the analysis, the spacing rule, hardening and the acquisition
    transform. ``progress`` (see ``progress``) is told as headers and pixels are read and stacks
    hardened; when it asks to stop, or anything fails, no node of this call stays in the scene.
    """
    report = progress_of(progress)
    nodes = []
    with all_or_nothing(scene):
        # No worker processes inside Slicer (see read_files).
        analysis = analyze(paths, tolerances=options.tolerances, workers=1, keep_together=options.keep_together,
                           progress=report.part(0.0, 0.1).counting("Reading the headers"))
        loads = [(series, spec) for series in analysis.series
                 for spec in examine_series(series, slicer_series_name(series), load_mode=load_mode, options=options)
                 if spec.selected]
        for n, (series, spec) in enumerate(loads):
            share = report.part(0.1 + 0.9 * n / len(loads), 0.1 + 0.9 * (n + 1) / len(loads))
            stack = next(stack for stack in series.stacks if stack.id == spec.stack_id)
            pixels = stack_pixels(stack, share.part(0.0, 0.4))
            node = add_stack_volume(scene, stack, pixels, spec.node_name)
            nodes += regularize(scene, node, stack, spec, pixels, options, share.part(0.4, 1.0))
    report.finished("Loaded")
    return nodes


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _title(stack: Stack, name: str) -> str:
    return f"{name or f'stack {stack.id}'} slice spacing"


def _subject_hierarchy(scene):
    return slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)


def _place_next_to(scene, node, neighbour) -> None:
    """Put ``node`` in the subject hierarchy folder that holds ``neighbour``."""
    sh = _subject_hierarchy(scene)
    sh.CreateItem(sh.GetItemParent(sh.GetItemByDataNode(neighbour)), node)


def _ijk_to_ras(volume_node) -> np.ndarray:
    matrix = vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    return slicer.util.arrayFromVTKMatrix(matrix)


def _set_voxels(node, array_kji: np.ndarray, index_to_lps: np.ndarray) -> None:
    node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(LPS_TO_RAS @ index_to_lps))
    slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(array_kji))


def _to_world(volume_node, points_ras: np.ndarray) -> np.ndarray:
    out = np.empty_like(points_ras)
    flat_in, flat_out = points_ras.reshape(-1, 3), out.reshape(-1, 3)
    for n, point in enumerate(flat_in):
        world = [0.0, 0.0, 0.0]
        volume_node.TransformPointToWorld(point.tolist(), world)
        flat_out[n] = world
    return out


def _slice_key(s: SliceHeader) -> tuple[str, str, int]:
    return s.path, s.sop_instance_uid, s.frame


def _stack_record(stack: Stack) -> dict[str, Any]:
    return {
        "id": stack.id,
        "role": str(stack.role),
        "reasons": [str(reason) for reason in stack.reasons],
        "slices": [[s.sop_instance_uid, s.frame] for s in stack.slices],
        "files": {s.sop_instance_uid: s.path for s in stack.slices},
    }


def _slice_flags(stack: Stack) -> list[str]:
    """Per slice, the kinds of the irregularities between it and the previous slice."""
    flags: list[list[str]] = [[] for _ in stack.slices]
    for irregularity in stack.known_geometry.irregularities:
        for index in irregularity.after_indices:
            if index + 1 < len(flags):
                flags[index + 1].append(irregularity.kind.value)
    return [", ".join(dict.fromkeys(f)) for f in flags]
