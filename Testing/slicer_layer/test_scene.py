"""Scene logic on a real MRML scene from the slicer-core wheel (no Slicer application, no Qt).

Geometry is checked against the DICOM headers read back with pydicom, and against Slicer's own
code where it has the same job: the vtkITK reader's grid for the raw volume, and
``vtkSlicerTransformLogic.hardenTransform`` for resampled values.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pydicom
import pytest

slicer = pytest.importorskip("slicer", reason="needs the slicer-core wheel (requirements/test.txt)")
import slicer.util  # noqa: E402, F811 (the submodule, after the skip)
from pydicom.multival import MultiValue  # noqa: E402
from vtkmodules.vtkCommonMath import vtkMatrix4x4  # noqa: E402

from irregular_series import analyze  # noqa: E402
from irregular_series.analysis import analyze_slices  # noqa: E402
from irregular_series.headers import slice_from_tag_values  # noqa: E402
from irregular_series.model import Stack  # noqa: E402
from irregular_series.options import ConvertOptions  # noqa: E402
from irregular_series.pixels import load_pixels  # noqa: E402
from irregular_series.slicer import scene as mrml  # noqa: E402
from irregular_series.slicer.database import with_transfer_syntax  # noqa: E402
from irregular_series.testing.synthetic import (  # noqa: E402
    SyntheticSeries,
    SyntheticSlice,
    micro_ct_demo_series,
    uid,
    write_demo,
    write_series,
)
from irregular_series.tolerances import DEFAULT, Tolerances  # noqa: E402

import phantoms  # noqa: E402
from volume_checks import DicomPlacement  # noqa: E402

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _volume_stack(folder: Path) -> Stack:
    return next(s for s in analyze([folder]).series[0].stacks if s.role == "volume")


def _dicom_corners_ras(stack: Stack) -> np.ndarray:
    """Each slice's lattice corners from its own file, read with pydicom: (N, 2, 2, 3) RAS."""
    corners = []
    for s in stack.slices:
        at = DicomPlacement.of(s.path)
        across = at.columns * at.between_columns * at.along_row
        down = at.rows * at.between_rows * at.down_column
        corners.append([[at.ipp, at.ipp + across], [at.ipp + down, at.ipp + down + across]])
    return np.array(corners) * [-1.0, -1.0, 1.0]


def _nodes(scene, class_name: str) -> list:
    collection = scene.GetNodesByClass(class_name)
    return [collection.GetItemAsObject(i) for i in range(collection.GetNumberOfItems())]


def _ijk_to_ras(node) -> np.ndarray:
    matrix = vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return slicer.util.arrayFromVTKMatrix(matrix)


def _world_corners(node) -> np.ndarray:
    lattice = mrml.lattice_corners_ras(node)
    world = np.empty_like(lattice)
    for index in np.ndindex(lattice.shape[:3]):
        out = [0.0, 0.0, 0.0]
        node.TransformPointToWorld(lattice[index].tolist(), out)
        world[index] = out
    return world


def _vtkitk_ijk_to_ras(stack: Stack) -> np.ndarray:
    """The IJK-to-RAS matrix Slicer's DICOM reader gives the stack's files, in stack order."""
    reader = slicer.vtkITKArchetypeImageSeriesScalarReader()
    reader.SetArchetype(stack.slices[0].path)
    for s in stack.slices:
        reader.AddFileName(s.path)
    reader.SetSingleFile(0)
    reader.SetOutputScalarTypeToNative()
    reader.SetDesiredCoordinateOrientationToNative()
    reader.SetUseNativeOriginOn()
    reader.SetDICOMImageIOApproachToGDCM()
    reader.Update()
    assert reader.GetErrorCode() == 0
    return np.linalg.inv(slicer.util.arrayFromVTKMatrix(reader.GetRasToIjkMatrix()))


# --- raw volume and acquisition transform ------------------------------------------------------


@pytest.mark.parametrize("case", ["missing_slices", "gantry_tilt", "tilt_with_missing", "stitched_sections"])
def test_raw_volume_has_the_grid_slicers_reader_builds(scene, write_phantom, case):
    stack = _volume_stack(write_phantom(case))
    node = mrml.add_stack_volume(scene, stack, load_pixels(stack.slices), "raw")
    np.testing.assert_allclose(_ijk_to_ras(node), _vtkitk_ijk_to_ras(stack), atol=1e-9)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), load_pixels(stack.slices))


@pytest.mark.parametrize("case", ["tilt_with_missing", "missing_slices", "variable_spacing", "stitched_sections"])
def test_acquisition_transform_puts_every_slice_corner_on_its_dicom_corner(scene, write_phantom, case):
    stack = _volume_stack(write_phantom(case))
    node = mrml.add_stack_volume(scene, stack, mrml.stack_pixels(stack), "raw")
    expected = _dicom_corners_ras(stack)
    assert np.abs(mrml.lattice_corners_ras(node) - expected).max() > 0.1  # the raw grid alone is off
    transform = mrml.create_acquisition_transform(scene, node, stack)
    assert transform is not None and node.GetParentTransformNode() is transform
    assert transform.IsA("vtkMRMLGridTransformNode") and not transform.IsTransformToWorldLinear()
    assert np.abs(_world_corners(node) - expected).max() <= DEFAULT.corner_mm
    np.testing.assert_allclose(mrml.slice_corners_ras(stack), expected, atol=1e-9)


def test_uniformly_tilted_stack_needs_no_transform(scene, write_phantom):
    # Like Slicer 5.8+, the raw grid is sheared along the stack: it already holds every slice.
    stack = _volume_stack(write_phantom("gantry_tilt"))
    node = mrml.add_stack_volume(scene, stack, mrml.stack_pixels(stack), "raw")
    assert mrml.create_acquisition_transform(scene, node, stack) is None
    assert node.GetParentTransformNode() is None
    assert np.abs(mrml.lattice_corners_ras(node) - _dicom_corners_ras(stack)).max() <= DEFAULT.corner_mm


def test_transform_sits_next_to_its_volume_in_the_subject_hierarchy(scene, write_phantom):
    stack = _volume_stack(write_phantom("missing_slices"))
    node = mrml.add_stack_volume(scene, stack, mrml.stack_pixels(stack), "raw")
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    folder = sh.CreateFolderItem(sh.GetSceneItemID(), "series")
    sh.SetItemParent(sh.GetItemByDataNode(node), folder)
    transform = mrml.create_acquisition_transform(scene, node, stack)
    assert sh.GetItemParent(sh.GetItemByDataNode(transform)) == folder
    assert transform.GetAttribute(mrml.ACQUISITION_TRANSFORM_ATTRIBUTE) == "1"
    assert mrml.create_acquisition_transform(scene, node, stack) is transform  # asked again: kept
    assert scene.GetNodesByClass("vtkMRMLGridTransformNode").GetNumberOfItems() == 1


# --- harden with our resampler -------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The stitched micro-CT demo: 3 sections at 0.6 mm, one slice missing, a localizer."""
    folder = tmp_path_factory.mktemp("demo")
    write_demo(folder)
    return folder


def test_harden_gives_exactly_the_requested_spacing_at_the_dicom_geometry(scene, demo):
    stack = _volume_stack(demo)
    pixels = mrml.stack_pixels(stack)
    raw = mrml.add_stack_volume(scene, stack, pixels, "raw")
    transform = mrml.create_acquisition_transform(scene, raw, stack)
    (node,) = mrml.harden(scene, raw, stack, pixels, ConvertOptions(spacing=0.6), replace=True)

    assert node is raw and node.GetParentTransformNode() is None
    assert scene.GetNodeByID(transform.GetID()) is None  # the acquisition transform is gone
    assert node.GetSpacing() == (0.1, 0.1, 0.6)
    first = pydicom.dcmread(stack.slices[0].path, stop_before_pixels=True)
    ijk_to_lps = LPS_TO_RAS @ _ijk_to_ras(node)
    np.testing.assert_allclose(ijk_to_lps[:3, 3], [float(v) for v in first.ImagePositionPatient], atol=1e-9)
    np.testing.assert_allclose(ijk_to_lps[:3, :3], np.diag([0.1, 0.1, 0.6]), atol=1e-12)
    last_z = max(float(pydicom.dcmread(s.path, stop_before_pixels=True).ImagePositionPatient[2]) for s in stack.slices)
    assert node.GetImageData().GetDimensions() == (64, 64, math.floor((last_z - ijk_to_lps[2, 3]) / 0.6 + 1e-6) + 1)
    assert float(node.GetAttribute(mrml.VERIFICATION_ATTRIBUTE)) <= DEFAULT.verify_mm
    content = json.loads(node.GetAttribute(mrml.CONTENT_ATTRIBUTE))  # the same check as convert's
    assert content["ok"] and content["footprint_min"] == 1.0 and content["voxels_checked"] > 0
    assert node.GetAttribute(mrml.SPACING_ATTRIBUTE) == "0.6"
    decisions = json.loads(node.GetAttribute(mrml.DECISIONS_ATTRIBUTE))
    # In the panel's words: its controls, never command-line flags.
    assert "slice spacing: 0.6 mm as requested (Slice spacing: 0.6)" in decisions
    assert not any("--" in d for d in decisions), decisions

    # every voxel holds the value the phantom encodes at its position (rounding only: stored
    # values are integers, linear interpolation of position-linear values is exact)
    volume = slicer.util.arrayFromVolume(node)
    k, j, i = np.indices(volume.shape)
    lps = np.stack([i, j, k, np.ones_like(i)], axis=-1) @ ijk_to_lps.T
    expected = micro_ct_demo_series().encoding.values(lps[..., :3])
    assert np.abs(volume - expected).max() <= 1.0


def test_harden_into_a_new_node_keeps_the_raw_volume(scene, demo):
    stack = _volume_stack(demo)
    raw = mrml.add_stack_volume(scene, stack, mrml.stack_pixels(stack), "raw")
    transform = mrml.create_acquisition_transform(scene, raw, stack)
    (node,) = mrml.harden(scene, raw, stack, None, ConvertOptions(spacing=0.6))
    assert node is not raw and node.GetName() == "raw 0.6 mm"
    assert raw.GetParentTransformNode() is transform and node.GetParentTransformNode() is None
    assert slicer.util.arrayFromVolume(raw).shape == (stack.slice_count, 64, 64)
    assert node.GetAttribute(mrml.STACK_ATTRIBUTE) == raw.GetAttribute(mrml.STACK_ATTRIBUTE)
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    assert sh.GetItemParent(sh.GetItemByDataNode(node)) == sh.GetItemParent(sh.GetItemByDataNode(raw))


def test_harden_into_a_chosen_node_with_one_node_per_part(scene, demo):
    stack = _volume_stack(demo)
    raw = mrml.add_stack_volume(scene, stack, mrml.stack_pixels(stack), "raw")
    chosen = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "chosen")
    first, second = mrml.harden(scene, raw, stack, None,
                                ConvertOptions(spacing=0.6, gaps="split"))  # split at the missing slice
    again = mrml.harden(scene, raw, stack, None, ConvertOptions(spacing=0.6, gaps="split"), into=chosen)
    assert again[0] is chosen and again[1].GetName() == "raw 0.6 mm run2_1"
    for node, reference in zip(again, (first, second)):
        assert node.GetSpacing() == (0.1, 0.1, 0.6)
        np.testing.assert_array_equal(_ijk_to_ras(node), _ijk_to_ras(reference))
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), slicer.util.arrayFromVolume(reference))
    top = LPS_TO_RAS @ _ijk_to_ras(first) @ [0, 0, first.GetImageData().GetDimensions()[2] - 1, 1]
    bottom = LPS_TO_RAS @ _ijk_to_ras(second) @ [0, 0, 0, 1]
    # nothing is interpolated across the 1.2 mm gap: the parts end and start at the slices around it
    # (the first part's last plane reaches past its last slice, by less than one spacing)
    assert 1.2 - 0.6 < bottom[2] - top[2] <= 1.2 + 1e-9


def test_harden_matches_slicers_hardened_acquisition_transform(scene, tmp_path):
    # Same 32x32x20 irregular stack, same pixels: Slicer resamples through the inverted grid
    # transform onto the raw grid (mean spacing); ours resamples onto that grid directly.
    steps = [1.0] * 5 + [2.0] + [1.0] * 4 + [0.5] * 4 + [1.5] * 5
    z = np.concatenate([[0.0], np.cumsum(steps)])
    slices = [SyntheticSlice(position_lps_mm=(-16.0, -16.0, float(p)), instance_number=n + 1,
                             slice_thickness_mm=1.0) for n, p in enumerate(z)]
    series = SyntheticSeries(slices, series_instance_uid=uid("scene test", "cross-check"))
    write_series(series, tmp_path / "cross")
    stack = _volume_stack(tmp_path / "cross")
    rng = np.random.default_rng(7)
    jj, ii = np.mgrid[0:32, 0:32]
    pixels = np.stack([np.sin(ii / 5.0 + c) * 40 + np.cos(jj / 7.0) * 25 + 60
                       for c in rng.uniform(0, 3, len(z))]).astype(np.float32)

    theirs = mrml.add_stack_volume(scene, stack, pixels, "slicer")
    transform = mrml.create_acquisition_transform(scene, theirs, stack)
    assert slicer.vtkSlicerTransformLogic().hardenTransform(theirs)
    ours_raw = mrml.add_stack_volume(scene, stack, pixels, "ours")
    (ours,) = mrml.harden(scene, ours_raw, stack, pixels, ConvertOptions(spacing=float(z[-1] - z[0]) / (len(z) - 1)))

    np.testing.assert_allclose(_ijk_to_ras(ours), _ijk_to_ras(theirs), atol=1e-9)
    a, b = slicer.util.arrayFromVolume(ours), slicer.util.arrayFromVolume(theirs)
    assert a.shape == b.shape == (20, 32, 32)
    # Slicer inverts the grid transform iteratively, to within its inverse tolerance (mm).
    gradient = np.abs(np.diff(pixels, axis=0)).max() / min(steps)
    tolerance = transform.GetTransformToParent().GetInverseTolerance() * gradient + 1e-3
    assert np.abs(a - b).max() <= tolerance


# --- spacing table and plot ---------------------------------------------------------------------


def test_spacing_table_holds_the_slice_positions_and_steps(scene, write_phantom):
    folder = write_phantom("missing_slices")
    stack = _volume_stack(folder)
    table = mrml.spacing_table(scene, stack)
    headers = sorted((pydicom.dcmread(p, stop_before_pixels=True) for p in folder.iterdir()),
                     key=lambda ds: float(ds.ImagePositionPatient[2]))
    z = np.array([float(ds.ImagePositionPatient[2]) for ds in headers])

    assert table.GetNumberOfRows() == len(headers) == 21
    column = lambda name: slicer.util.arrayFromTableColumn(table, name)  # noqa: E731
    np.testing.assert_array_equal(column("index"), np.arange(21))
    np.testing.assert_allclose(column("position"), z, atol=1e-9)
    steps = column("step")
    assert np.isnan(steps[0])
    np.testing.assert_allclose(steps[1:], np.diff(z), atol=1e-9)
    np.testing.assert_array_equal(column("instance"), [int(ds.InstanceNumber) for ds in headers])
    files = table.GetTable().GetColumnByName("file")
    flags = table.GetTable().GetColumnByName("flags")
    assert [files.GetValue(r) for r in range(21)] == [Path(ds.filename).name for ds in headers]
    gaps = {r for r in range(1, 21) if steps[r] > 2.5}  # 2 mm steps; instances 9 and 16-17 missing
    assert len(gaps) == 2
    assert {r for r in range(21) if "missing_slices" in flags.GetValue(r)} == gaps
    assert table.GetColumnUnitLabel("step") == "mm"


def test_spacing_plot_shows_steps_and_the_nominal_line(scene, write_phantom):
    stack = _volume_stack(write_phantom("missing_slices"))
    table = mrml.spacing_table(scene, stack)
    chart = mrml.spacing_plot(scene, stack, table)
    assert chart.GetNumberOfPlotSeriesNodes() == 2
    step, nominal = (chart.GetNthPlotSeriesNode(n) for n in range(2))
    for series, y in ((step, "step"), (nominal, "nominal")):
        assert series.GetTableNode() is table
        assert (series.GetXColumnName(), series.GetYColumnName()) == ("index", y)
    np.testing.assert_array_equal(slicer.util.arrayFromTableColumn(table, "nominal"), np.full(21, 2.0))
    assert chart.GetYAxisTitle().startswith("step")


# --- loading, pixels and the stack record -------------------------------------------------------


def test_load_series_transform_mode(scene, demo):
    (node,) = mrml.load_series(scene, [demo])
    assert node.GetName() == "3: micro-CT stitched 0.6 mm (synthetic)"
    transform = node.GetParentTransformNode()
    assert transform.IsA("vtkMRMLGridTransformNode")
    assert transform.GetName() == f"{node.GetName()} acquisition transform"
    stack = mrml.stack_of(node)
    assert np.abs(_world_corners(node) - _dicom_corners_ras(stack)).max() <= DEFAULT.corner_mm


def test_load_series_harden_mode(scene, demo):
    (node,) = mrml.load_series(scene, [demo], load_mode="harden")
    assert node.GetSpacing() == (0.1, 0.1, 0.6) and node.GetParentTransformNode() is None
    assert scene.GetNodesByClass("vtkMRMLGridTransformNode").GetNumberOfItems() == 0


def test_load_series_applies_the_users_tolerances(scene, tmp_path):
    """Steps of 2.53 mm under a nominal 2.5 mm, one slice missing: hardened at the nominal spacing
    within the default 0.05 mm, at the median step when the user allows only 0.01 mm."""
    positions = [round(2.53 * k, 6) for k in range(12) if k != 6]
    slices = phantoms._slices_at(positions, slice_thickness_mm=2.5, spacing_between_slices_mm=2.5)
    write_series(phantoms._series("tolerance", slices), tmp_path)
    (default,) = mrml.load_series(scene, [tmp_path], load_mode="harden")
    (strict,) = mrml.load_series(scene, [tmp_path], ConvertOptions(tolerances=Tolerances(nominal_mm=0.01)),
                                 load_mode="harden")
    assert default.GetSpacing()[2] == pytest.approx(2.5) and strict.GetSpacing()[2] == pytest.approx(2.53)


def _identities(stack: Stack) -> list[tuple[str, int]]:
    return [(s.sop_instance_uid, s.frame) for s in stack.slices]


def test_stack_of_rebuilds_the_stack_from_its_instances(scene, write_phantom):
    stack = _volume_stack(write_phantom("stitched_sections"))
    node = mrml.add_stack_volume(scene, stack, mrml.stack_pixels(stack), "raw")
    again = mrml.stack_of(node)
    assert _identities(again) == _identities(stack)
    assert (again.id, again.role, again.reasons) == (stack.id, stack.role, stack.reasons)
    assert again.geometry.positions_mm == stack.geometry.positions_mm
    assert node.GetAttribute(mrml.INSTANCE_UIDS_ATTRIBUTE).split() == [uid for uid, _ in _identities(stack)]
    assert "files" in json.loads(node.GetAttribute(mrml.STACK_ATTRIBUTE))  # where each instance was, as a fallback


def test_saved_scene_reopens_with_files_moved_where_the_database_says(scene, write_phantom, tmp_path):
    """The record survives a real save and reopen of the scene; the files then live elsewhere
    (as when the DICOM database moves them) and ``locate`` says where: the stack comes back."""
    folder = write_phantom("missing_slices")
    stack = _volume_stack(folder)
    node = mrml.add_stack_volume(scene, stack, mrml.stack_pixels(stack), "raw")
    scene_file = tmp_path / "saved.mrml"
    scene.SetURL(str(scene_file))
    assert scene.Commit()
    moved = folder.rename(tmp_path / "moved")
    where = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID: str(p) for p in moved.iterdir()}

    reopened = slicer.vtkMRMLScene()
    reopened.SetURL(str(scene_file))
    assert reopened.Connect()
    (restored,) = [n for n in _nodes(reopened, "vtkMRMLScalarVolumeNode") if n.GetName() == node.GetName()]
    with pytest.raises(ValueError, match="no longer found"):
        mrml.stack_of(restored)  # the stored paths alone no longer lead to the files
    again = mrml.stack_of(restored, locate=where.get)
    assert _identities(again) == _identities(stack)
    assert all(s.path.startswith(str(moved)) for s in again.slices)
    assert again.geometry.positions_mm == stack.geometry.positions_mm


def test_stack_of_names_the_first_missing_instance(scene, write_phantom):
    stack = _volume_stack(write_phantom("variable_spacing"))
    node = mrml.add_stack_volume(scene, stack, mrml.stack_pixels(stack), "raw")
    gone = stack.slices[3]
    Path(gone.path).unlink()
    with pytest.raises(ValueError, match=f"1 of its {stack.slice_count} images.*instance {gone.sop_instance_uid}"):
        mrml.stack_of(node)


def test_stack_cache_reads_once_and_forgets_when_the_scene_closes(scene, write_phantom):
    stack = _volume_stack(write_phantom("gantry_tilt"))
    reads = []

    def read(files):
        reads.append(len(files))
        return mrml.read_files(files)

    cache = mrml.StackCache(scene, read=read)
    node = mrml.add_stack_volume(scene, stack, mrml.stack_pixels(stack), "raw")
    record = node.GetAttribute(mrml.STACK_ATTRIBUTE)
    assert cache.stack(node) is cache.stack(node) and len(reads) == 1
    scene.Clear(0)
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode")
    node.SetAttribute(mrml.STACK_ATTRIBUTE, record)
    cache.stack(node)
    assert len(reads) == 2  # read again after the close
    cache.close()
    scene.Clear(0)
    assert cache.stack(node) is not None and len(reads) == 3  # closed: not observing any more


def test_load_series_starts_no_worker_processes(scene, demo, monkeypatch):
    import concurrent.futures

    from irregular_series import headers

    def refuse(*args, **kwargs):
        raise AssertionError("a process pool was started")

    monkeypatch.setattr(headers, "PARALLEL_THRESHOLD", 1)
    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", refuse)
    (node,) = mrml.load_series(scene, [demo], ConvertOptions(spacing=0.6), load_mode="harden")
    assert node.GetSpacing() == (0.1, 0.1, 0.6)


def _database_strings(path: str):
    """``get(tag)`` answering as Slicer's DICOM database's ``fileValue`` does: the data set's
    value as text, several values joined with backslashes, "" when absent; the file meta group
    is not part of the data set CTK parses, so its transfer syntax is never there."""
    dataset = pydicom.dcmread(path, stop_before_pixels=True)

    def get(tag: str) -> str:
        element = dataset.get(int(tag.replace(",", ""), 16))
        if element is None or element.tag.group == 0x0002:
            return ""
        value = element.value
        return "\\".join(str(v) for v in value) if isinstance(value, MultiValue) else str(value)

    return get


def test_headers_from_the_database_take_the_direct_pixel_reader(scene, write_phantom, monkeypatch):
    folder = write_phantom("missing_slices")
    headers = [slice_from_tag_values(str(p), _database_strings(str(p))) for p in sorted(folder.iterdir())]
    assert all(h.transfer_syntax_uid == "" for h in headers)
    stack = next(s for s in analyze_slices(headers).series[0].stacks if s.role == "volume")
    expected = load_pixels(_volume_stack(folder).slices)

    def no_pydicom(*args, **kwargs):
        raise AssertionError("pixels read through pydicom")

    monkeypatch.setattr(pydicom, "dcmread", no_pydicom)
    np.testing.assert_array_equal(mrml.stack_pixels(stack), expected)
    assert {s.transfer_syntax_uid for s in with_transfer_syntax(stack.slices)} == {"1.2.840.10008.1.2.1"}


def test_vtkitk_reader_gives_the_same_pixels(write_phantom):
    stack = _volume_stack(write_phantom("tilt_with_missing"))
    np.testing.assert_array_equal(mrml.read_pixels_vtkitk(stack), load_pixels(stack.slices))


# --- what the scene gives equals what convert writes; real series ---------------------------------


def test_harden_gives_the_same_volume_as_convert(scene, demo, tmp_path):
    from irregular_series.conversion import convert

    from volume_checks import read_nrrd

    (output,) = convert([demo], tmp_path / "out", ConvertOptions(spacing=0.6), progress=False).outputs
    written = read_nrrd(output.path)

    stack = _volume_stack(demo)
    pixels = mrml.stack_pixels(stack)
    raw = mrml.add_stack_volume(scene, stack, pixels, "raw")
    (node,) = mrml.harden(scene, raw, stack, pixels, ConvertOptions(spacing=0.6))
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), written.array)
    np.testing.assert_allclose(LPS_TO_RAS @ _ijk_to_ras(node), written.index_to_lps, atol=1e-9)


def test_real_tilted_ct_in_the_scene(scene, realdata):
    """GE head CT, 18.5° tilt, 4 mm then 7 mm: every slice corner lands on its DICOM corner under
    the acquisition transform, and hardening at 4 mm keeps every slice within 0.01 mm."""
    stack = _volume_stack(realdata / "ct_tilt_varspacing_ge")
    pixels = mrml.stack_pixels(stack)
    raw = mrml.add_stack_volume(scene, stack, pixels, "raw")
    transform = mrml.create_acquisition_transform(scene, raw, stack)
    assert transform is not None  # the 4 mm / 7 mm steps need one, the tilt alone would not
    assert np.abs(_world_corners(raw) - _dicom_corners_ras(stack)).max() <= DEFAULT.corner_mm
    (node,) = mrml.harden(scene, raw, stack, pixels, ConvertOptions(spacing=4.0))
    ijk_to_ras = _ijk_to_ras(node)
    normal = np.cross(ijk_to_ras[:3, 0], ijk_to_ras[:3, 1])
    assert float(ijk_to_ras[:3, 2] @ normal / np.linalg.norm(normal)) == pytest.approx(4.0, abs=1e-9)
    assert float(node.GetAttribute(mrml.VERIFICATION_ATTRIBUTE)) <= 0.01
