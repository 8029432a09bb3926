"""One part to one verified output volume: load, resample, verify geometry and content, and the
decisions that says. In two halves (``resample_part``, then ``check_volume``; ``build_volume`` is
both), so that a writer can write the voxels to a temporary file while their content is checked.

Raises ``VerificationError`` when the volume would put an input slice away from where its
headers say it is, and ``ContentCheckError`` (a ``VerificationError``) when its voxels are not
what the input slices give or lose input; nothing is written for such a volume.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .content_check import ContentCheck, check_content
from .decisions import Decision, DecisionKind
from .grid import OutputGrid, build_grid
from .model import SliceHeader
from .options import ConvertOptions
from .orientation import VectorLike, normal_of, positions_along
from .pixels import load_pixels, value_dtype, value_range
from .planning import Part, missing_after, override_positions, slice_id
from .policies import GapPolicy, Interpolation, PositionSource, TiltPolicy
from .resample import PlaneSource, ResampleResult, SlicePlacement, resample_stack, slice_reach_mm
from .spacing import SliceSpacing, choose_spacing
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
    content: ContentCheck
    background: float | None
    """The value of voxels no slice reaches (None when every voxel holds data)."""
    extrapolated: list[dict[str, Any]]
    """Planes filled from one slice they lie outside of: plane index, the slice's label and the
    plane's signed distance from it along the normal (mm)."""
    placements: tuple[SlicePlacement, ...] = ()
    """Where the resampler put each of ``part.slices`` (output voxel indices)."""


class VerificationError(RuntimeError):
    """An output volume would put input slices away from where their headers say they are."""


class ContentCheckError(VerificationError):
    """An output volume whose voxels are not what its input slices give, or that loses input."""


def _plane_notes(result: ResampleResult, slices: Sequence[SliceHeader], normal: VectorLike,
                 options: ConvertOptions, reach_mm: np.ndarray) -> list[Decision]:
    """What the planes are made of: planes filled from a slice past the ends and in blank gaps,
    planes left blank, nearest-neighbour distances."""
    notes = []
    positions = positions_along(slices, normal)
    last = len(slices) - 1
    for m in (0, len(result.planes) - 1):
        p = result.planes[m]
        if p.extrapolated_mm > 0:
            s = p.slice_indices[0]
            notes.append(Decision(
                DecisionKind.PLANE_EXTRAPOLATED,
                f"plane {m} lies {p.extrapolated_mm:.3f} mm past the {'last' if s == last else 'first'} slice "
                f"({slices[s].label}): filled from it by constant extrapolation along the stack, within its reach "
                f"of {reach_mm[s]:.3g} mm ({_reach_words(slices[s])})",
                values={"plane": m, "slice": slices[s].label, "distance_mm": round(p.extrapolated_mm, 6),
                        "reach_mm": round(float(reach_mm[s]), 6)}))
    end = result.planes[-1]
    if end.blank and len(result.planes) > 1:
        beyond = float(end.position_mm - positions[-1])
        notes.append(Decision(
            DecisionKind.END_BEYOND_REACH,
            f"the last plane lies {beyond:.3f} mm past the last slice ({slices[-1].label}), beyond its reach of "
            f"{reach_mm[-1]:.3g} mm ({_reach_words(slices[-1])}): background, mask 0",
            values={"distance_mm": round(beyond, 6), "reach_mm": round(float(reach_mm[-1]), 6)}))
    inner = result.planes[1:-1]
    reached = [p for p in inner if p.extrapolated_mm > 0]
    blank = [p for p in inner if p.blank]
    if reached:
        farthest = max(p.extrapolated_mm for p in reached)
        notes.append(Decision(
            DecisionKind.GAP_PLANES_REACHED,
            f"{len(reached)} plane(s) inside missing-slice gaps lie within the reach of a slice and copy it "
            f"(up to {farthest:.3f} mm away; a slice reaches half its thickness, else half its local step)",
            "gaps", "blank", {"planes": len(reached), "max_distance_mm": round(farthest, 6)}))
    if blank and options.gaps == GapPolicy.BLANK:
        notes.append(Decision(DecisionKind.GAPS_BLANK,
                              f"{len(blank)} plane(s) inside missing-slice gaps left blank: no slice reaches them, "
                              "mask 0 there", "gaps", "blank", {"planes": len(blank)}))
    if options.interpolation == Interpolation.NEAREST:
        far = max((abs(p.position_mm - positions[p.slice_indices[0]]) for p in result.planes if not p.blank),
                  default=0.0)
        if far > options.tolerances.verify_mm:
            notes.append(Decision(
                DecisionKind.NEAREST_DISTANCE,
                f"nearest neighbour: planes copy the closest slice, up to {far:.3f} mm away along the normal",
                "interpolation", "nearest", {"max_distance_mm": round(float(far), 6)}))
    return notes


def _extrapolated(result: ResampleResult, slices: Sequence[SliceHeader], normal: VectorLike) -> list[dict[str, Any]]:
    positions = positions_along(slices, normal)
    return [{"plane": m, "slice": slices[p.slice_indices[0]].label,
             "offset_mm": round(p.position_mm - float(positions[p.slice_indices[0]]), 6)}
            for m, p in enumerate(result.planes) if p.extrapolated_mm > 0]


def _reach_words(s: SliceHeader) -> str:
    return (f"half its {s.slice_thickness_mm:g} mm thickness" if s.slice_thickness_mm
            else "half its local step: no SliceThickness")


def _background(options: ConvertOptions, slices: Sequence[SliceHeader], lowest: float) -> tuple[float, str]:
    """The background value and where it comes from, in words."""
    if options.background is not None:
        return options.background, f"{options.background:g} as requested"
    padding = {s.rescaled_padding_value for s in slices if s.rescaled_padding_value is not None}
    if len(padding) == 1:
        value = padding.pop()
        return value, f"{value:g}, the rescaled PixelPaddingValue"
    return lowest, f"{lowest:g}, the lowest value in the data"


@dataclass
class Resampled:
    """A part resampled onto its grid and verified geometrically, its content not yet checked:
    what ``check_volume`` needs, and the voxels a caller may already write to a temporary file while
    the check runs (``array``, ``mask``, ``grid``)."""

    part: Part
    decisions: list[Decision]
    slices: Sequence[SliceHeader]
    """``part.slices``, or the same with their positions overridden."""
    pixels: np.ndarray
    grid: OutputGrid
    spacing_mm: float
    result: ResampleResult
    verification: VerificationResult
    dicom_error_mm: float
    reach_mm: np.ndarray
    gap_after: np.ndarray
    background: float
    value_range: tuple[float, float]

    @property
    def array(self) -> np.ndarray:
        return self.result.volume

    @property
    def mask(self) -> np.ndarray | None:
        return self.result.mask


def build_volume(part: Part, options: ConvertOptions, pixels: np.ndarray | None = None, *,
                 grid: OutputGrid | None = None, chosen_spacing: SliceSpacing | None = None) -> Volume:
    """Load (unless ``pixels``, the part's slices in order, are given), resample and verify one
    part, geometry and content. Raises ``VerificationError`` (``ContentCheckError`` for content)
    above tolerance; ``part`` itself is left unchanged.

    ``grid`` and ``chosen_spacing`` (given together): the grid to resample onto and the spacing it
    was chosen with, instead of the part's own (the common grid of a volume series,
    ``series_volumes``)."""
    return check_volume(resample_part(part, options, pixels, grid=grid, chosen_spacing=chosen_spacing), options)


def resample_part(part: Part, options: ConvertOptions, pixels: np.ndarray | None = None, *,
                  grid: OutputGrid | None = None, chosen_spacing: SliceSpacing | None = None) -> Resampled:
    """The first half of ``build_volume``: load, resample and verify where the slices are. Raises
    ``VerificationError`` above tolerance."""
    if (grid is None) != (chosen_spacing is None):
        raise ValueError("a grid and the spacing it was made with are given together")
    tol = options.tolerances
    stack = part.stack
    g = stack.known_geometry
    chosen = chosen_spacing or choose_spacing(stack, options.spacing, tol)
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
    # Limits first, so that a corrupt position or a tiny spacing costs a message, not the memory.
    options.limits.check_slice_spacing(spacing)
    first = part.slices[0]
    options.limits.check_voxels((len(part.slices), first.rows, first.columns), "the input slices")
    if grid is None:
        grid = build_grid(slices, spacing, options.tilt, tolerances=tol)
    options.limits.check_voxels(grid.shape_kji, "the output volume")
    if pixels is None:
        pixels = load_pixels(part.slices)
    gap_after = missing_after(stack)
    blank = options.gaps == GapPolicy.BLANK
    blank_flags = np.array([blank and slice_id(s) in gap_after for s in slices[:-1]], bool)
    reach = slice_reach_mm(slices, positions_along(slices, g.normal), blank_flags)
    lo, hi = value_range(pixels)
    background, background_why = _background(options, slices, lo)
    out_dtype = value_dtype(min(lo, background), max(hi, background), pixels.dtype, slices)
    result = resample_stack(pixels, slices, grid, interpolation=options.interpolation,
                            gaps="blank" if blank else "interpolate", blank_after=list(np.flatnonzero(blank_flags)),
                            background=background, out_dtype=out_dtype, reach_mm=reach,
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
    # Compared with the grid's planes, so along the grid's normal (its first slice's).
    first_pose = slices[0].pose
    grid_normal = normal_of(first_pose.row_cosines, first_pose.col_cosines)
    decisions += _plane_notes(result, slices, grid_normal, options, reach)
    if result.mask is not None:
        decisions.append(Decision(DecisionKind.BACKGROUND, f"background (voxels no slice reaches, mask 0): {background_why}",
                                  "background", None, {"value": background}))
    if out_dtype != pixels.dtype:
        decisions.append(Decision(DecisionKind.OUTPUT_TYPE,
                                  f"output type {out_dtype}: it holds the data's actual values {lo:g} to {hi:g}",
                                  values={"dtype": str(out_dtype), "min": lo, "max": hi}))
    return Resampled(part, decisions, slices, pixels, grid, spacing, result, verification, dicom_error, reach,
                     blank_flags, background, (lo, hi))


def check_volume(r: Resampled, options: ConvertOptions) -> Volume:
    """The second half of ``build_volume``: check the content of ``r``'s voxels against its input
    slices. Raises ``ContentCheckError`` when they are not what the slices give or lose input."""
    result, slices, decisions = r.result, r.slices, list(r.decisions)
    g = r.part.stack.known_geometry
    tol = options.tolerances
    background = r.background if result.mask is not None else None
    content = check_content(result.volume, result.mask, r.grid, slices, r.pixels,
                            interpolation=options.interpolation, gap_after=r.gap_after, reach_mm=r.reach_mm,
                            background=background, spacing_mm=r.spacing_mm, left_out=r.part.left_out,
                            value_range=r.value_range, snap_mm=tol.lattice_snap_mm)
    if not content.ok:
        raise ContentCheckError(f"{content.failure}; nothing written")
    decisions += [Decision(DecisionKind.CONTENT_WARNING, f"WARNING: {w}") for w in content.warnings]
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
    return Volume(replace(r.part, decisions=decisions), result.volume, result.mask, r.grid, r.spacing_mm,
                  result.interpolated, r.verification, r.dicom_error_mm, result.planes, content, background,
                  _extrapolated(result, slices, g.normal), tuple(result.placements))
