"""One part to one verified output volume: load, resample, verify, and the decisions that says.

Raises ``VerificationError`` when the volume would put an input slice away from where its
headers say it is; nothing is written for such a volume.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from .decisions import Decision, DecisionKind
from .grid import OutputGrid, build_grid
from .model import SliceHeader
from .options import ConvertOptions
from .pixels import load_pixels
from .policies import GapPolicy, Interpolation, PositionSource, TiltPolicy
from .planning import Part, missing_after, override_positions, positions_along, slice_id
from .resample import PlaneSource, ResampleResult, resample_stack
from .spacing import choose_spacing
from .verify import VerificationResult, verify_placements


@dataclass
class Volume:
    """One verified output volume, not yet written. ``part.decisions`` holds every decision,
    those of ``build_volume`` included."""

    part: Part
    array: np.ndarray
    mask: np.ndarray | None
    grid: OutputGrid
    spacing_mm: float
    interpolated: bool
    verification: VerificationResult
    dicom_error_mm: float
    """Residual against the headers' own positions; differs from ``verification.max_mm`` only when
    positions were overridden (``positions="nominal"``)."""
    planes: list[PlaneSource]
    """What each plane was made of: indices into ``part.slices`` and their weights."""


class VerificationError(RuntimeError):
    """An output volume would put input slices away from where their headers say they are."""


def _plane_notes(result: ResampleResult, slices: Sequence[SliceHeader], normal: Sequence[float],
                 options: ConvertOptions) -> list[Decision]:
    """What the planes are made of: blank gap planes, nearest-neighbour distances."""
    notes = []
    blank = [p.position_mm for p in result.planes if p.blank]
    if blank and options.gaps == GapPolicy.BLANK:
        notes.append(Decision(DecisionKind.GAPS_BLANK,
                              f"{len(blank)} plane(s) inside missing-slice gaps left blank, mask 0 there",
                              "gaps", "blank", {"planes": len(blank)}))
    if options.interpolation == Interpolation.NEAREST:
        positions = positions_along(slices, normal)
        far = max((abs(p.position_mm - positions[p.slice_indices[0]]) for p in result.planes if not p.blank),
                  default=0.0)
        if far > options.tolerances.verify_mm:
            notes.append(Decision(
                DecisionKind.NEAREST_DISTANCE,
                f"nearest neighbour: planes copy the closest slice, up to {far:.3f} mm away along the normal",
                "interpolation", "nearest", {"max_distance_mm": round(float(far), 6)}))
    return notes


def build_volume(part: Part, options: ConvertOptions, pixels: np.ndarray | None = None) -> Volume:
    """Load (unless ``pixels``, the part's slices in order, are given), resample and verify one
    part. Raises ``VerificationError`` above tolerance; ``part`` itself is left unchanged."""
    tol = options.tolerances
    stack = part.stack
    g = stack.geometry
    chosen = choose_spacing(stack, options.spacing, tol)
    spacing = chosen.value_mm
    decisions = list(part.decisions) + [Decision(
        DecisionKind.SLICE_SPACING, f"slice spacing: {chosen.reason}", "spacing",
        str(chosen.rule) if chosen.rule is not None else f"{spacing:g}",
        {"spacing_mm": spacing, "source": chosen.source})]
    slices = part.slices
    if options.positions == PositionSource.NOMINAL:
        slices, what = override_positions(part, tol)
        moved = np.linalg.norm(np.array([s.position_lps_mm for s in slices])
                               - np.array([s.position_lps_mm for s in part.slices]), axis=1)
        decisions.append(Decision(
            DecisionKind.POSITIONS_OVERRIDDEN,
            f"POSITIONS OVERRIDDEN: ImagePositionPatient replaced by equal steps of {what} in spatial order; "
            f"slices moved by up to {float(moved.max()):.3f} mm from their DICOM positions",
            "positions", "nominal", {"max_moved_mm": round(float(moved.max()), 6)}))
    if pixels is None:
        pixels = load_pixels(part.slices)
    grid = build_grid(slices, spacing, options.tilt, tolerances=tol)
    gap_after = missing_after(stack)
    blank_after = [k for k, s in enumerate(slices[:-1]) if slice_id(s) in gap_after]
    result = resample_stack(pixels, slices, grid, interpolation=options.interpolation,
                            gaps="blank" if options.gaps == "blank" else "interpolate", blank_after=blank_after,
                            snap_mm=tol.lattice_snap_mm)
    verification = verify_placements(slices, result.placements, grid, tol.verify_mm,
                                     direction_tolerance_deg=tol.orientation_deg)
    if not verification.ok:
        worst = slices[verification.worst_slice]
        hint = ""
        if options.interpolation == Interpolation.NEAREST and options.tilt == TiltPolicy.DESKEW \
                and g.tilt_deg > tol.tilt_deg:
            hint = (" (nearest neighbour moves tilted slices by whole pixels in-plane: linear or cubic "
                    "interpolation, or keeping the tilt, avoids that)")
        raise VerificationError(
            f"verification failed: {worst.label} would be {verification.max_mm:.4f} mm from its "
            f"{'overridden' if slices is not part.slices else 'DICOM'} position (tolerance {tol.verify_mm} mm, "
            f"directions off by up to {verification.max_direction_deg:.3f}°){hint}; nothing written"
        )
    dicom_error = verification.max_mm
    if slices is not part.slices:
        dicom_error = verify_placements(part.slices, result.placements, grid, tol.verify_mm,
                                        direction_tolerance_deg=tol.orientation_deg).max_mm
    if options.gaps == GapPolicy.INTERPOLATE and any(slice_id(s) in gap_after for s in slices[:-1]):
        decisions.append(Decision(DecisionKind.GAPS_INTERPOLATED, "missing slices: interpolated across the gaps",
                                  "gaps", "interpolate"))
    decisions += _plane_notes(result, slices, g.normal, options)
    positions = positions_along(slices, g.normal)
    short = positions[-1] - (positions[0] + (grid.shape_kji[0] - 1) * spacing)
    if short > tol.verify_mm:
        decisions.append(Decision(
            DecisionKind.LAST_PLANE_SHORT,
            f"the last plane is {short:.3f} mm short of the last slice ({slices[-1].label}): "
            "planes stop within the data rather than extrapolate past it",
            values={"short_mm": round(float(short), 6)}))
    if g.tilt_deg > tol.tilt_deg:
        tilt = {"tilt_deg": round(g.tilt_deg, 4)}
        decisions.append(
            Decision(DecisionKind.TILT_REMOVED, f"gantry tilt {g.tilt_deg:.2f}° removed: grid along the slice normal",
                     "tilt", "deskew", tilt)
            if options.tilt == TiltPolicy.DESKEW else
            Decision(DecisionKind.TILT_KEPT,
                     f"gantry tilt {g.tilt_deg:.2f}° kept: sheared grid along the stacking direction",
                     "tilt", "keep", tilt))
    if not result.interpolated:
        decisions.append(Decision(DecisionKind.NO_INTERPOLATION,
                                  "no interpolation: every voxel is a copy of an input pixel"))
    return Volume(replace(part, decisions=decisions), result.volume, result.mask, grid, spacing,
                  result.interpolated, verification, dicom_error, result.planes)
