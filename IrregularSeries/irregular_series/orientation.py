"""Slice orientations and coordinates: normals, positions along a normal, angles between
orientations, plain-word names, and the LPS to RAS flip."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from .model import SliceHeader

VectorLike = Sequence[float] | npt.NDArray[np.floating]
"""A direction or a position: a record's tuple of floats, or an array computed from them."""


def normal_of(row: VectorLike, col: VectorLike) -> npt.NDArray[np.float64]:
    """Unit slice normal row x col (LPS); slices of a stack are ordered along it."""
    n = np.cross(np.asarray(row, float), np.asarray(col, float))
    return n / np.linalg.norm(n)


LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
"""Homogeneous DICOM patient coordinates (LPS) to RAS (MRML, NIfTI): x and y change sign."""


def positions_along(slices: Sequence[SliceHeader], normal: VectorLike) -> npt.NDArray[np.float64]:
    """Each slice's position along ``normal``: IPP · normal (mm). A stack's slices are ordered and
    reported along its mean normal (``geometry.stack_normal``); an output grid's planes lie along
    its first slice's normal (``normal_of``), so positions compared with planes use that one."""
    return np.array([s.position_lps_mm for s in slices], float) @ np.asarray(normal, float)


def pixel_centre_range_mm(slices: Sequence[SliceHeader], axis: VectorLike) -> tuple[float, float]:
    """The range (mm) the slices' pixel centres cover along ``axis``: from each first pixel
    centre (IPP), ``columns - 1`` i steps along the row direction and ``rows - 1`` j steps along the
    column direction."""
    a = np.asarray(axis, float)
    lows, highs = [], []
    for s in slices:
        pose = s.pose
        step_i, step_j = s.pixel_steps_mm
        start = float(np.dot(pose.position_lps_mm, a))
        across = ((s.columns - 1) * step_i * float(np.dot(pose.row_cosines, a)),
                  (s.rows - 1) * step_j * float(np.dot(pose.col_cosines, a)))
        lows.append(start + (min(across[0], 0.0) + min(across[1], 0.0)))
        highs.append(start + (max(across[0], 0.0) + max(across[1], 0.0)))
    return min(lows), max(highs)


def angle_deg(a: VectorLike, b: VectorLike) -> float:
    """Angle between two directions, in degrees (0..180)."""
    u = np.asarray(a, float)
    v = np.asarray(b, float)
    cos = float(np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v)))
    return math.degrees(math.acos(max(-1.0, min(1.0, cos))))


def orientation_difference_deg(a: SliceHeader, b: SliceHeader) -> float:
    """The larger of the angles between the two slices' row and column directions."""
    pa, pb = a.pose, b.pose
    return max(angle_deg(pa.row_cosines, pb.row_cosines), angle_deg(pa.col_cosines, pb.col_cosines))


def plane_name(normal: VectorLike, oblique_deg: float = 10.0) -> str:
    """``axial``, ``coronal`` or ``sagittal`` when the normal is within ``oblique_deg`` of an LPS
    axis, else ``oblique <nearest>``."""
    n = np.abs(np.asarray(normal, float))
    axis = int(np.argmax(n))
    name = ("sagittal", "coronal", "axial")[axis]
    off = math.degrees(math.acos(min(1.0, float(n[axis]))))
    return name if off <= oblique_deg else f"oblique {name}"


def format_cosines(orientation: VectorLike) -> str:
    return "[" + ", ".join(f"{v:.3g}" for v in orientation) + "]"
