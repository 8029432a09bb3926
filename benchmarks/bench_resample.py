"""Resampling an irregular stack onto a regular grid: ``resample_stack`` versus slicer-core's
``hardenTransform`` of the equivalent grid transform (what Slicer's DICOM loader does).

Volume: 300 slices of 512x512 int16, 0.7 mm pixels, steps of 1.0 mm with every 7th step 1.5 mm
(320 mm in all). Each voxel stores round(10 x (0.3 x + 0.2 y + z)) for its LPS centre, so linear
interpolation between the real slice positions reproduces it exactly up to rounding: both outputs
are compared with each other and with these exact values.

Both resample onto the grid Slicer's DICOM loader uses: 300 planes at the mean step
(320 mm / 299 = 1.0702 mm) from the first slice, so that almost every plane falls between two
slices and is interpolated (at a 1.0 mm step half the planes would be plain copies):
* ours: ``build_grid(slices, step, tilt="deskew")`` then ``resample_stack(..., "linear")``, in
  process, on headers (``model.SliceHeader``) built directly;
* Slicer: a volume node on that grid with a ``vtkMRMLGridTransformNode`` (2 x 2 x 300
  displacement grid, one plane per slice) moving slice k to its real position, then
  ``vtkSlicerTransformLogic.hardenTransform`` (timed alone; building the nodes is not). Hardening
  auto-crops to the transformed bounds, so Slicer's grid could have a plane more than ours:
  values are compared on the planes both have.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import slicer
import slicer.util
from benchlib import Child, interleaved, machine, table
from vtkmodules.vtkCommonCore import VTK_DOUBLE
from vtkmodules.vtkCommonDataModel import vtkImageData
from vtkmodules.vtkCommonMath import vtkMatrix4x4

from irregular_series.grid import build_grid
from irregular_series.model import SliceHeader
from irregular_series.resample import resample_stack

SLICES = 300
SIZE = 512
PIXEL_MM = 0.7
TARGET_SPEEDUP = 20.0
VALUE_TOLERANCE = 1  # int16 units: both round to integers, so one unit apart is "the same value"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def positions_mm() -> np.ndarray:
    steps = np.where(np.arange(SLICES - 1) % 7 == 6, 1.5, 1.0)
    return -160.0 + np.r_[0.0, np.cumsum(steps)]


def grid_step_mm(z: np.ndarray) -> float:
    """The mean step, as ITK's reader (and so Slicer's DICOM loader) makes the regular grid."""
    return float((z[-1] - z[0]) / (len(z) - 1))


def corner_lps() -> np.ndarray:
    """LPS (x, y) of pixel (0, 0): the slices are centred on the z axis."""
    return np.full(2, -(SIZE - 1) * PIXEL_MM / 2)


def in_plane_values() -> np.ndarray:
    """10 x (0.3 x + 0.2 y) at every pixel centre [j, i]."""
    x0, y0 = corner_lps()
    x = x0 + PIXEL_MM * np.arange(SIZE)
    y = y0 + PIXEL_MM * np.arange(SIZE)
    return 10.0 * (0.3 * x[None, :] + 0.2 * y[:, None])


def headers(z: np.ndarray) -> list[SliceHeader]:
    x0, y0 = corner_lps()
    return [SliceHeader(path=f"slice{k:03d}.dcm", frame=0, number_of_frames=1, sop_instance_uid=f"2.25.{k + 1}",
                        sop_class_uid=CT_IMAGE_STORAGE, series_instance_uid="2.25.999", modality="CT",
                        rows=SIZE, columns=SIZE, row_cosines=(1.0, 0.0, 0.0), col_cosines=(0.0, 1.0, 0.0),
                        position_lps_mm=(float(x0), float(y0), float(zk)), pixel_spacing_mm=(PIXEL_MM, PIXEL_MM),
                        instance_number=k + 1, pixel_representation=1)
            for k, zk in enumerate(z)]


def harden_on_slicer_grid(pixels: np.ndarray, z: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(harden seconds, hardened voxels [k, j, i], their index_to_lps)."""
    x0, y0 = corner_lps()
    ijk_to_ras = LPS_TO_RAS @ np.array([[PIXEL_MM, 0, 0, x0], [0, PIXEL_MM, 0, y0],
                                        [0, 0, grid_step_mm(z), z[0]], [0, 0, 0, 1]])
    scene = slicer.vtkMRMLScene()
    volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "irregular")
    volume.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(ijk_to_ras))
    slicer.util.updateVolumeFromArray(volume, pixels)
    volume.SetAndObserveTransformNodeID(acquisition_transform(scene, volume, z).GetID())

    start = time.perf_counter()
    if not slicer.vtkSlicerTransformLogic().hardenTransform(volume):
        raise RuntimeError("hardenTransform failed")
    seconds = time.perf_counter() - start

    voxels = slicer.util.arrayFromVolume(volume).copy()
    matrix = vtkMatrix4x4()
    volume.GetIJKToRASMatrix(matrix)
    index_to_lps = LPS_TO_RAS @ slicer.util.arrayFromVTKMatrix(matrix)
    scene.Clear(1)
    return seconds, voxels, index_to_lps


def acquisition_transform(scene, volume, z: np.ndarray):
    """Grid transform to parent that moves plane k of ``volume`` (at z[0] + k x spacing) to z[k]:
    one 2 x 2 displacement plane per slice, spanning the volume, aligned with it."""
    grid = vtkImageData()
    grid.SetOrigin(*volume.GetOrigin())
    grid.SetDimensions(2, 2, len(z))
    spacing = volume.GetSpacing()
    grid.SetSpacing(spacing[0] * SIZE, spacing[1] * SIZE, spacing[2])
    grid.AllocateScalars(VTK_DOUBLE, 3)
    direction = vtkMatrix4x4()
    volume.GetIJKToRASDirectionMatrix(direction)
    transform = slicer.vtkOrientedGridTransform()
    transform.SetGridDirectionMatrix(direction)
    transform.SetDisplacementGridData(grid)
    node = scene.AddNewNodeByClass("vtkMRMLGridTransformNode", "acquisition")
    node.SetAndObserveTransformToParent(transform)
    displacement = slicer.util.arrayFromGridTransform(node)  # (slices, 2, 2, 3) RAS mm, a view
    displacement[:] = 0.0
    displacement[..., 2] = (z - (z[0] + grid_step_mm(z) * np.arange(len(z))))[:, None, None]  # RAS z = LPS z
    slicer.util.arrayFromGridTransformModified(node)
    return node


def exact_errors(voxels: np.ndarray, index_to_lps: np.ndarray, z: np.ndarray, plane_xy: np.ndarray) -> tuple[float, int]:
    """Max |voxel - exact value| over the planes inside the data, and how many planes that is."""
    plane_z = index_to_lps[2, 3] + index_to_lps[2, 2] * np.arange(len(voxels))
    inside = np.flatnonzero((plane_z >= z[0] - 1e-6) & (plane_z <= z[-1] + 1e-6))
    worst = max(float(np.abs(voxels[k] - (plane_xy + 10.0 * plane_z[k])).max()) for k in inside)
    return worst, len(inside)


def main() -> int:
    z = positions_mm()
    print(f"bench_resample: {SIZE}x{SIZE}x{SLICES} int16, irregular steps -> {grid_step_mm(z):.4f} mm grid; {machine()}")
    plane_xy = in_plane_values()
    pixels = np.rint(plane_xy[None, :, :] + 10.0 * z[:, None, None]).astype(np.int16)
    slices = headers(z)
    results = {}

    def ours() -> Child:
        start = time.perf_counter()
        grid = build_grid(slices, grid_step_mm(z), tilt="deskew")
        result = resample_stack(pixels, slices, grid, interpolation="linear")
        seconds = time.perf_counter() - start
        results["ours"] = (result.volume, grid.index_to_lps)
        results["blended"] = sum(len(p.slice_indices) > 1 for p in result.planes)
        return Child(seconds, 0, "")

    def slicer_harden() -> Child:
        seconds, voxels, index_to_lps = harden_on_slicer_grid(pixels, z)
        results["slicer"] = (voxels, index_to_lps)
        return Child(seconds, 0, "")

    timings = interleaved({"ours: resample_stack": ours, "Slicer: hardenTransform": slicer_harden})
    t_ours, t_slicer = timings.values()
    (ours_vox, ours_m), (slicer_vox, slicer_m) = results["ours"], results["slicer"]

    print(f"\nours:   {ours_vox.shape[::-1]} voxels (i, j, k), origin LPS {np.round(ours_m[:3, 3], 3)}, "
          f"k step {ours_m[2, 2]:.4f} mm, {results['blended']} of {len(ours_vox)} planes interpolated")
    print(f"Slicer: {slicer_vox.shape[::-1]} voxels (i, j, k), origin LPS {np.round(slicer_m[:3, 3], 3)}, "
          f"k step {slicer_m[2, 2]:.4f} mm")
    same_grid = np.allclose(ours_m, slicer_m, atol=1e-6) and ours_vox.shape[1:] == slicer_vox.shape[1:]
    common = min(len(ours_vox), len(slicer_vox))  # ours ends at the last slice, Slicer may go one plane further
    diff = np.abs(ours_vox[:common].astype(np.int32) - slicer_vox[:common].astype(np.int32))
    ours_err, ours_planes = exact_errors(ours_vox, ours_m, z, plane_xy)
    slicer_err, slicer_planes = exact_errors(slicer_vox, slicer_m, z, plane_xy)
    speedup = t_slicer.best / t_ours.best

    rows = [(t.name, f"{t.best:.2f}", " / ".join(f"{w:.2f}" for w in t.walls)) for t in timings.values()]
    print()
    print(table(rows, ("contender", "best wall s", "runs s")))
    print(f"\nsame grid: {same_grid}; compared the {common} planes both have")
    planes_differing = np.flatnonzero(diff.reshape(common, -1).max(axis=1))
    print(f"max |ours - Slicer| = {diff.max()} (voxels differing: {np.count_nonzero(diff)} of {diff.size}, "
          f"in {len(planes_differing)} planes{': ' + str(planes_differing.tolist()) if len(planes_differing) <= 10 else ''})")
    print(f"max |ours - exact| = {ours_err:.2f} over {ours_planes} planes; "
          f"max |Slicer - exact| = {slicer_err:.2f} over {slicer_planes} planes (10 units = 1 mm along z)")
    same = same_grid and diff.max() <= VALUE_TOLERANCE
    fast = speedup >= TARGET_SPEEDUP
    print(f"speed ratio Slicer/ours = {speedup:.1f}x (target >= {TARGET_SPEEDUP:.0f}x: {'met' if fast else 'NOT met'}); "
          f"values {'the same' if same else 'DIFFERENT'} (tolerance {VALUE_TOLERANCE} unit)")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
