"""Slice orientations and coordinates: normals, positions along a normal, angles between
orientations, plain-word names, and the LPS to RAS flip."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .model import SliceHeader


def normal_of(row: Sequence[float], col: Sequence[float]) -> np.ndarray:
    """Unit slice normal row x col (LPS); slices of a stack are ordered along it."""
    n = np.cross(np.asarray(row, float), np.asarray(col, float))
    return n / np.linalg.norm(n)


LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
"""Homogeneous DICOM patient coordinates (LPS) to RAS (MRML, NIfTI): x and y change sign."""


def positions_along(slices: Sequence[SliceHeader], normal: Sequence[float]) -> np.ndarray:
    """Each slice's position along ``normal``: IPP · normal (mm). A stack's slices are ordered and
    reported along its mean normal (``geometry.stack_normal``); an output grid's planes lie along
    its first slice's normal (``normal_of``), so positions compared with planes use that one."""
    return np.array([s.position_lps_mm for s in slices], float) @ np.asarray(normal, float)


def angle_deg(a: Sequence[float], b: Sequence[float]) -> float:
    """Angle between two directions, in degrees (0..180)."""
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    cos = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
    return math.degrees(math.acos(max(-1.0, min(1.0, cos))))


def orientation_difference_deg(a: SliceHeader, b: SliceHeader) -> float:
    """The larger of the angles between the two slices' row and column directions."""
    return max(angle_deg(a.row_cosines, b.row_cosines), angle_deg(a.col_cosines, b.col_cosines))


def plane_name(normal: Sequence[float], oblique_deg: float = 10.0) -> str:
    """``axial``, ``coronal`` or ``sagittal`` when the normal is within ``oblique_deg`` of an LPS
    axis, else ``oblique <nearest>``."""
    n = np.abs(np.asarray(normal, float))
    axis = int(np.argmax(n))
    name = ("sagittal", "coronal", "axial")[axis]
    off = math.degrees(math.acos(min(1.0, float(n[axis]))))
    return name if off <= oblique_deg else f"oblique {name}"


def format_cosines(orientation: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:.3g}" for v in orientation) + "]"
