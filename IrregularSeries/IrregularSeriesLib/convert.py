"""Stacks to verified regular volumes: policies, spacing choice, resampling, verification, files.

``plan_stack`` turns one analysed stack into one or more *parts* (after the gap, section and
duplicate policies), each with the slices it uses and a sentence per decision. ``build_volume``
loads, resamples and verifies one part; ``convert`` does it for every stack and writes the files
and ``report.json``. Nothing is written for a part whose verification fails.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .analysis import analyze
from .grid import OutputGrid, build_grid
from .model import Analysis, SeriesAnalysis, SliceHeader, Stack
from .outputs import atomic_write, output_path, safe_stem
from .pixels import load_pixels
from .report import analysis_to_dict, series_title
from .resample import resample_stack
from .tolerances import DEFAULT, Tolerances
from .verify import VerificationResult, verify_placements
from .writers import write_volume

SpacingChoice = str | float
GapPolicy = Literal["interpolate", "blank", "split"]
SectionPolicy = Literal["merge", "split"]

SUFFIXES = {"nrrd": ".nrrd", "nii": ".nii", "nii.gz": ".nii.gz"}


@dataclass(frozen=True)
class ConvertOptions:
    """Every choice ``convert`` makes on the user's behalf; defaults are the documented ones."""

    spacing: SpacingChoice = "auto"
    gaps: GapPolicy = "interpolate"
    sections: SectionPolicy = "merge"
    tilt: Literal["deskew", "keep"] = "deskew"
    interpolation: Literal["linear", "nearest", "cubic"] = "linear"
    format: Literal["nrrd", "nii", "nii.gz"] = "nrrd"
    positions: Literal["dicom", "nominal"] = "dicom"
    include_localizers: bool = False
    force: bool = False
    tolerances: Tolerances = DEFAULT


@dataclass
class Part:
    """The slices (spatial order) one output volume is built from, and why."""

    stack: Stack
    slices: list[SliceHeader]
    label: str
    decisions: list[str] = field(default_factory=list)


@dataclass
class Volume:
    """One verified output volume, not yet written."""

    part: Part
    array: np.ndarray
    mask: np.ndarray | None
    grid: OutputGrid
    spacing_mm: float
    interpolated: bool
    verification: VerificationResult
    dicom_error_mm: float
    """Residual against the headers' own positions; differs from ``verification.max_mm`` only when
    positions were overridden (``--positions nominal``)."""


class VerificationError(RuntimeError):
    """An output volume would put input slices away from where their headers say they are."""


# ---------------------------------------------------------------------------------------------
# Spacing
# ---------------------------------------------------------------------------------------------


def choose_spacing(stack: Stack, choice: SpacingChoice, tol: Tolerances = DEFAULT) -> tuple[float, str]:
    """Slice spacing (mm, along the normal) for ``choice`` and a sentence saying where it comes from.

    ``auto``: the nominal spacing (SpacingBetweenSlices, else SliceThickness) when the positions
    support it — the usual step, or every stitched section's step, agrees with it within
    ``tol.nominal_mm`` — else the median step. ``nominal``, ``median``, ``min``: that value (an
    error when the stack lacks it). A number: exactly that many mm.
    """
    g = stack.geometry
    if g is None:
        raise ValueError(f"stack {stack.id} has no geometry")
    if isinstance(choice, (int, float)) or _is_number(choice):
        value = float(choice)
        if not value > 0 or not math.isfinite(value):
            raise ValueError(f"spacing must be a positive number of mm, got {choice!r}")
        return value, f"{value:g} mm as requested"
    candidates = g.candidate_spacings_mm
    if choice == "auto":
        nominal = candidates.get("nominal")
        if nominal is not None and _nominal_supported(stack, nominal, tol):
            return nominal, f"nominal spacing {nominal:g} mm (the positions agree with it)"
        median = candidates["median"]
        why = "no nominal spacing in the headers" if nominal is None else (
            f"nominal {nominal:g} mm disagrees with the positions")
        return median, f"median step {median:.4g} mm ({why})"
    if choice not in ("nominal", "median", "min"):
        raise ValueError(f"spacing must be auto, nominal, median, min or a number of mm, got {choice!r}")
    if choice not in candidates:
        raise ValueError(f"stack {stack.id} has no {choice} spacing (no such value in its headers)")
    return candidates[choice], f"{choice} spacing {candidates[choice]:.4g} mm"


def _is_number(text: object) -> bool:
    try:
        float(str(text))
    except ValueError:
        return False
    return True


def _nominal_supported(stack: Stack, nominal: float, tol: Tolerances) -> bool:
    g = stack.geometry
    steps = [s.step_mm for s in g.sections if s.step_mm] or [_usual_step(g.steps_mm, tol)]
    return all(step is not None and abs(step - nominal) <= tol.nominal_mm for step in steps)


def _usual_step(steps: Sequence[float], tol: Tolerances) -> float | None:
    moving = [s for s in steps if s > tol.position_mm]
    if not moving:
        return None
    counts = [sum(abs(s - t) <= max(tol.step_mm, tol.step_relative * t) for t in moving) for s in moving]
    best = [s for s, c in zip(moving, counts) if c == max(counts)]
    return float(np.median(best))


# ---------------------------------------------------------------------------------------------
# Policies: which slices make which volume
# ---------------------------------------------------------------------------------------------


def _positions(slices: Sequence[SliceHeader], normal: Sequence[float]) -> np.ndarray:
    return np.array([s.position_lps_mm for s in slices], float) @ np.asarray(normal, float)


def _drop_duplicates(part: Part, normal: Sequence[float], tol: Tolerances) -> Part:
    """Keep one slice per position: the first in instance order; say which were dropped."""
    d = _positions(part.slices, normal)
    kept: list[SliceHeader] = []
    last = -math.inf
    for s, p in zip(part.slices, d):
        if p - last <= tol.position_mm:
            part.decisions.append(
                f"duplicate position {p:.2f} mm: kept {kept[-1].label}, dropped {s.label}"
            )
            continue
        kept.append(s)
        last = p
    part.slices = kept
    return part


def _merge_sections(stack: Stack) -> Part:
    """One volume from stitched sections: each section owns its range up to the middle of each
    overlap, so no section's edge slices are used where its neighbour has data too."""
    g = stack.geometry
    positions = np.asarray(g.positions_mm)
    sections = g.sections
    cuts = [(a.end_mm + b.start_mm) / 2 for a, b in zip(sections, sections[1:])]
    bounds = [-math.inf] + cuts + [math.inf]
    keep: list[int] = []
    decisions = []
    for k, section in enumerate(sections):
        lo, hi = bounds[k], bounds[k + 1]
        owned = [i for i in section.slice_indices if lo <= positions[i] < hi]
        keep.extend(owned)
        dropped = len(section.slice_indices) - len(owned)
        where = []
        if k > 0:
            where.append(f"from {lo:.2f} mm")
        if k < len(sections) - 1:
            where.append(f"up to {hi:.2f} mm")
        decisions.append(
            f"section {k + 1} ({section.start_mm:.2f}–{section.end_mm:.2f} mm) used {' '.join(where) or 'whole'}: "
            f"{len(owned)} slice(s), {dropped} left out in overlaps (cut at the middle of each overlap)"
        )
    keep.sort(key=lambda i: positions[i])
    return Part(stack, [stack.slices[i] for i in keep], "", decisions)


def _split_sections(stack: Stack) -> list[Part]:
    return [
        Part(stack, [stack.slices[i] for i in sorted(s.slice_indices, key=lambda i: stack.geometry.positions_mm[i])],
             f"section{s.index + 1}", [f"section {s.index + 1} of {len(stack.geometry.sections)} on its own (--sections split)"])
        for s in stack.geometry.sections
    ]


def _split_gaps(part: Part, normal: Sequence[float], gap_after: set[int]) -> list[Part]:
    """One part per contiguous run between missing-slice gaps (``gap_after`` holds slice ids)."""
    runs: list[list[SliceHeader]] = [[]]
    for s in part.slices:
        runs[-1].append(s)
        if (s.path, s.frame) in gap_after:
            runs.append([])
    runs = [r for r in runs if r]
    if len(runs) == 1:
        return [part]
    return [
        Part(part.stack, run, f"{part.label}run{k + 1}".strip(),
             part.decisions + [f"run {k + 1} of {len(runs)} between missing slices (--gaps split)"])
        for k, run in enumerate(runs)
    ]


def plan_stack(stack: Stack, options: ConvertOptions) -> list[Part]:
    """The parts (output volumes) one stack becomes under the gap and section policies."""
    g = stack.geometry
    tol = options.tolerances
    if g.sections and options.sections == "split":
        parts = _split_sections(stack)
    elif g.sections:
        parts = [_merge_sections(stack)]
    else:
        parts = [Part(stack, list(stack.slices), "")]
    parts = [_drop_duplicates(p, g.normal, tol) for p in parts]
    gap_after = {
        (stack.slices[i.after_index].path, stack.slices[i.after_index].frame)
        for i in g.irregularities
        if i.kind == "missing_slices" and i.after_index is not None
    }
    if options.gaps == "split" and gap_after:
        parts = [q for p in parts for q in _split_gaps(p, g.normal, gap_after)]
    return [p for p in parts if len(p.slices) >= 2]


def override_positions(part: Part, spacing_mm: float) -> list[SliceHeader]:
    """``--positions nominal``: slice k placed at k x spacing from the first along the stacking
    line (its tilt kept), replacing ImagePositionPatient."""
    g = part.stack.geometry
    normal = np.asarray(g.normal)
    direction = np.asarray(g.stacking_direction)
    step = direction * spacing_mm / float(direction @ normal)
    origin = np.asarray(part.slices[0].position_lps_mm)
    return [
        replace(s, position_lps_mm=tuple(float(v) for v in origin + k * step)) for k, s in enumerate(part.slices)
    ]


# ---------------------------------------------------------------------------------------------
# One volume
# ---------------------------------------------------------------------------------------------


def build_volume(part: Part, options: ConvertOptions, pixels: np.ndarray | None = None) -> Volume:
    """Load, resample and verify one part. Raises ``VerificationError`` above tolerance."""
    tol = options.tolerances
    spacing, why = choose_spacing(part.stack, options.spacing, tol)
    part.decisions.append(f"slice spacing: {why}")
    slices = part.slices
    if options.positions == "nominal":
        slices = override_positions(part, spacing)
        shift = float(np.max(np.linalg.norm(
            np.array([s.position_lps_mm for s in slices]) - np.array([s.position_lps_mm for s in part.slices]), axis=1)))
        part.decisions.append(
            f"POSITIONS OVERRIDDEN (--positions nominal): ImagePositionPatient replaced by equal steps of "
            f"{spacing:g} mm in spatial order; slices moved by up to {shift:.3f} mm from their DICOM positions"
        )
    if pixels is None:
        pixels = load_pixels(part.slices)
    grid = build_grid(slices, spacing, options.tilt)
    gaps = "blank" if options.gaps == "blank" else "interpolate"
    result = resample_stack(pixels, slices, grid, interpolation=options.interpolation, gaps=gaps)
    verification = verify_placements(slices, result.placements, grid, tol.verify_mm)
    dicom_error = verification.max_mm
    if options.positions == "nominal":
        dicom_error = verify_placements(part.slices, result.placements, grid, tol.verify_mm).max_mm
    if not verification.ok:
        worst = slices[verification.worst_slice]
        raise VerificationError(
            f"verification failed: {worst.label} would be {verification.max_mm:.4f} mm from its DICOM position "
            f"(tolerance {tol.verify_mm} mm, directions off by up to {verification.max_direction_deg:.3f}°); "
            "nothing written"
        )
    positions = _positions(slices, part.stack.geometry.normal)
    short = positions[-1] - (positions[0] + (grid.shape_kji[0] - 1) * spacing)
    if short > tol.verify_mm:
        part.decisions.append(
            f"the last plane is {short:.3f} mm short of the last slice ({slices[-1].label}): "
            "planes stop within the data rather than extrapolate past it"
        )
    if options.tilt == "deskew" and part.stack.geometry.tilt_deg > tol.tilt_deg:
        part.decisions.append(
            f"gantry tilt {part.stack.geometry.tilt_deg:.2f}° removed (deskew): grid along the slice normal")
    if not result.interpolated:
        part.decisions.append("no interpolation: every voxel is a copy of an input pixel")
    return Volume(part, result.volume, result.mask, grid, spacing, result.interpolated, verification, dicom_error)


# ---------------------------------------------------------------------------------------------
# Whole conversion
# ---------------------------------------------------------------------------------------------


@dataclass
class ConvertResult:
    analysis: Analysis
    outputs: list[dict[str, Any]]
    failures: list[str]
    report_path: Path

    @property
    def ok(self) -> bool:
        return not self.failures


def _wanted(stack: Stack, options: ConvertOptions) -> bool:
    return stack.role == "volume" or (options.include_localizers and stack.role == "localizer")


def _stem(series: SeriesAnalysis, stack: Stack, part: Part) -> str:
    number = f"{series.series_number}_" if series.series_number is not None else ""
    base = f"{number}{series.series_description or series.modality or 'series'}_stack{stack.id}"
    return safe_stem(f"{base}_{part.label}" if part.label else base)


def _record(series: SeriesAnalysis, volume: Volume, path: Path, mask_path: Path | None) -> dict[str, Any]:
    grid = volume.grid
    return {
        "path": str(path),
        "mask_path": str(mask_path) if mask_path else None,
        "series_instance_uid": series.series_instance_uid,
        "stack": volume.part.stack.id,
        "role": volume.part.stack.role,
        "source_files": [s.label for s in volume.part.slices],
        "shape": list(volume.array.shape[::-1]),
        "dtype": str(volume.array.dtype),
        "spacing": [round(v, 6) for v in grid.spacing_mm],
        "slice_spacing_mm": volume.spacing_mm,
        "origin_lps": [round(float(v), 6) for v in grid.origin_lps],
        "directions_lps": [[round(float(v), 8) for v in column] for column in grid.directions.T],
        "index_to_lps": [[float(v) for v in row] for row in grid.index_to_lps],
        "interpolated": volume.interpolated,
        "max_position_error_mm": round(volume.verification.max_mm, 6),
        "mean_position_error_mm": round(volume.verification.mean_mm, 6),
        "max_error_vs_dicom_mm": round(volume.dicom_error_mm, 6),
        "decisions": volume.part.decisions,
    }


def _progress(enabled: bool) -> Callable[[str], None]:
    if not enabled:
        return lambda message: None

    def show(message: str) -> None:
        sys.stderr.write("\r\x1b[K" + message[:100])
        sys.stderr.flush()

    return show


def convert(
    paths: Iterable[str | os.PathLike],
    outdir: str | os.PathLike,
    options: ConvertOptions = ConvertOptions(),
    *,
    progress: bool | None = None,
) -> ConvertResult:
    """Analyse ``paths``, write one verified volume per part of every wanted stack into ``outdir``,
    and ``outdir/report.json`` (the inspect report plus ``outputs`` and ``failures``)."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    analysis = analyze(paths, tolerances=options.tolerances)
    show = _progress(sys.stderr.isatty() if progress is None else progress)
    outputs: list[dict[str, Any]] = []
    failures: list[str] = []
    work = [(series, stack) for series in analysis.series for stack in series.stacks if _wanted(stack, options)]
    for n, (series, stack) in enumerate(work, start=1):
        title = f"{series_title(series)} stack {stack.id}"
        show(f"[{n}/{len(work)}] {title}")
        parts = plan_stack(stack, options)
        if not parts:
            failures.append(f"{title}: fewer than 2 usable slices after the policies; nothing written")
        for part in parts:
            try:
                volume = build_volume(part, options)
                suffix = SUFFIXES[options.format]
                stem = _stem(series, stack, part)
                path = output_path(outdir, stem, suffix)
                write_volume(path, volume.array, volume.grid.index_to_lps, force=options.force)
                mask_path = None
                if volume.mask is not None and options.gaps == "blank":
                    mask_path = output_path(outdir, stem + "_mask", suffix)
                    write_volume(mask_path, volume.mask, volume.grid.index_to_lps, force=options.force)
                outputs.append(_record(series, volume, path, mask_path))
            except Exception as err:  # one bad stack must not stop the others
                failures.append(f"{title}{' ' + part.label if part.label else ''}: {err}")
    show("")
    document = analysis_to_dict(analysis)
    document["options"] = {k: (v if not isinstance(v, Tolerances) else v.__dict__) for k, v in options.__dict__.items()}
    document["outputs"] = outputs
    document["failures"] = failures
    report_path = outdir / "report.json"
    text = (json.dumps(document, indent=2) + "\n").encode("utf-8")
    atomic_write(report_path, lambda f: f.write(text), force=True)
    return ConvertResult(analysis, outputs, failures, report_path)
