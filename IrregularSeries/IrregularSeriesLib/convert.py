"""Stacks to verified regular volumes: policies, spacing choice, resampling, verification, files.

``plan_stack`` turns one analysed stack into one or more *parts* (after the gap, section and
duplicate policies), each with the slices it uses and a sentence per decision. ``build_volume``
loads, resamples and verifies one part; ``convert`` does it for every stack and writes the files
and ``report.json``. Nothing is written for a part whose verification fails, and nothing already
in the output folder is replaced without ``force``.
"""

from __future__ import annotations

import hashlib
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
from .geometry import dominant_step
from .grid import OutputGrid, build_grid
from .model import Analysis, SeriesAnalysis, SliceHeader, Stack
from .outputs import atomic_write, output_path, safe_stem
from .pixels import load_pixels
from .report import analysis_to_dict, series_title
from .resample import ResampleResult, resample_stack
from .tolerances import DEFAULT, Tolerances
from .verify import VerificationResult, verify_placements
from .writers import write_volume

SpacingChoice = str | float
GapPolicy = Literal["interpolate", "blank", "split"]
SectionPolicy = Literal["merge", "split"]

SUFFIXES = {"nrrd": ".nrrd", "nii": ".nii", "nii.gz": ".nii.gz"}

REPORT_NAME = "report.json"

SINGLE_SLICE_SPACING_MM = 1.0
"""The k spacing given to a one-slice volume (a localizer) whose headers state no spacing or
thickness: any value places its one plane correctly; 1 mm keeps viewers' defaults sensible."""


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
    ``tol.nominal_mm``, and on a tilted stack it is not the table step — else the median step.
    A single slice gets its nominal spacing, else ``SINGLE_SLICE_SPACING_MM``. ``nominal``,
    ``median``, ``min``: that value (an error when the stack lacks it). A number: exactly that
    many mm.
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
        if "median" not in candidates:  # one position: no step to measure
            if nominal is not None:
                return nominal, f"nominal spacing {nominal:g} mm (one position: no step to measure)"
            return SINGLE_SLICE_SPACING_MM, (f"{SINGLE_SLICE_SPACING_MM:g} mm (one position, and no "
                                             "SpacingBetweenSlices or SliceThickness)")
        why = "no nominal spacing in the headers" if nominal is None else _nominal_disagreement(stack, nominal, tol)
        if why is None:
            return nominal, f"nominal spacing {nominal:g} mm (the positions agree with it)"
        return candidates["median"], f"median step {candidates['median']:.4g} mm ({why})"
    if choice not in ("nominal", "median", "min"):
        raise ValueError(f"spacing must be auto, nominal, median, min or a number of mm, got {choice!r}")
    if choice not in candidates:
        what = "no such value in its headers" if choice == "nominal" else "one position: no steps"
        raise ValueError(f"stack {stack.id} has no {choice} spacing ({what})")
    return candidates[choice], f"{choice} spacing {candidates[choice]:.4g} mm"


def _is_number(text: object) -> bool:
    try:
        float(str(text))
    except ValueError:
        return False
    return True


def _nominal_disagreement(stack: Stack, nominal: float, tol: Tolerances) -> str | None:
    """Why the positions do not support ``nominal`` as the slice spacing; None when they do."""
    g = stack.geometry
    steps = [s.step_mm for s in g.sections if s.step_mm] or [dominant_step(np.asarray(g.steps_mm), tol)]
    if any(step is None or abs(step - nominal) > tol.nominal_mm for step in steps):
        return f"nominal {nominal:g} mm disagrees with the positions"
    if _nominal_along_table(stack, nominal, tol):
        return f"nominal {nominal:g} mm is the table step of this {g.tilt_deg:.1f}° tilted stack"
    return None


def _nominal_along_table(stack: Stack, nominal: float, tol: Tolerances) -> bool:
    """Tilted stacks: is ``nominal`` closer to the step along the stacking line (the table step,
    which CT scanners write there) than to the step along the normal?"""
    g = stack.geometry
    step = dominant_step(np.asarray(g.steps_mm), tol)
    if g.tilt_deg <= tol.tilt_deg or step is None:
        return False
    return abs(nominal - step / math.cos(math.radians(g.tilt_deg))) < abs(nominal - step)


# ---------------------------------------------------------------------------------------------
# Policies: which slices make which volume
# ---------------------------------------------------------------------------------------------


def _positions(slices: Sequence[SliceHeader], normal: Sequence[float]) -> np.ndarray:
    return np.array([s.position_lps_mm for s in slices], float) @ np.asarray(normal, float)


def _slice_id(s: SliceHeader) -> tuple[str, int]:
    return s.path, s.frame


def _drop_duplicates(part: Part, normal: Sequence[float], tol: Tolerances) -> Part:
    """Keep one slice per position, the lowest instance number (then label); say which were
    dropped."""
    d = _positions(part.slices, normal)
    runs: list[list[SliceHeader]] = []
    last = -math.inf
    for s, p in zip(part.slices, d):
        if p - last <= tol.position_mm:
            runs[-1].append(s)
        else:
            runs.append([s])
            last = p
    kept = []
    for run in runs:
        keep = min(run, key=lambda s: (s.instance_number is None, s.instance_number or 0, s.label))
        kept.append(keep)
        for s in run:
            if s is not keep:
                part.decisions.append(
                    f"duplicate position {float(_positions([s], normal)[0]):.2f} mm: kept {keep.label}, dropped {s.label}")
    part.slices = kept
    return part


def _merge_sections(stack: Stack) -> Part:
    """One volume from stitched sections: each overlap is cut at its middle and each section
    supplies the slices on its side of the cuts, so that in an overlap the data come from the
    section whose interior is nearer (section ends are where stitching artefacts live).

    Sections must follow each other along the stack (each starts and ends after the previous one);
    nested or shuffled sections have no such cut, and merging them is refused.
    """
    g = stack.geometry
    positions = np.asarray(g.positions_mm)
    sections = g.sections
    for k, (a, b) in enumerate(zip(sections, sections[1:]), start=1):
        if not (b.start_mm > a.start_mm and b.end_mm > a.end_mm):
            raise ValueError(
                f"sections {k} ({a.start_mm:.2f}–{a.end_mm:.2f} mm) and {k + 1} ({b.start_mm:.2f}–{b.end_mm:.2f} mm) "
                "do not follow each other along the stack, so there is no place to cut between them; "
                "use --sections split")
    cuts = [(a.end_mm + b.start_mm) / 2 for a, b in zip(sections, sections[1:])]
    bounds = [-math.inf] + cuts + [math.inf]
    keep: list[int] = []
    decisions = []
    for k, section in enumerate(sections):
        lo, hi = bounds[k], bounds[k + 1]
        owned = [i for i in section.slice_indices if lo <= positions[i] < hi]
        keep.extend(owned)
        where = ([f"from {lo:.2f} mm"] if k > 0 else []) + ([f"up to {hi:.2f} mm"] if k < len(sections) - 1 else [])
        decisions.append(
            f"section {k + 1} ({section.start_mm:.2f}–{section.end_mm:.2f} mm) used {' '.join(where) or 'whole'}: "
            f"{len(owned)} slice(s), {len(section.slice_indices) - len(owned)} left out in overlaps "
            "(each overlap is cut at its middle: every section keeps the half nearer its own interior)"
        )
    keep.sort(key=lambda i: positions[i])
    return Part(stack, [stack.slices[i] for i in keep], "", decisions)


def _split_sections(stack: Stack) -> list[Part]:
    positions = stack.geometry.positions_mm
    count = len(stack.geometry.sections)
    return [
        Part(stack, [stack.slices[i] for i in sorted(s.slice_indices, key=lambda i: positions[i])],
             f"section{s.index + 1}", [f"section {s.index + 1} of {count} on its own (--sections split)"])
        for s in stack.geometry.sections
    ]


def _missing_after(stack: Stack) -> set[tuple[str, int]]:
    """Ids of the slices that a missing-slice gap follows (from the geometry analysis)."""
    return {
        _slice_id(stack.slices[i.after_index])
        for i in stack.geometry.irregularities
        if i.kind == "missing_slices" and i.after_index is not None
    }


def _split_gaps(part: Part, gap_after: set[tuple[str, int]]) -> list[Part]:
    """One part per contiguous run between missing-slice gaps."""
    runs: list[list[SliceHeader]] = [[]]
    for s in part.slices[:-1]:
        runs[-1].append(s)
        if _slice_id(s) in gap_after:
            runs.append([])
    runs[-1].append(part.slices[-1])
    if len(runs) == 1:
        return [part]
    label = f"{part.label}_" if part.label else ""
    return [
        Part(part.stack, run, f"{label}run{k + 1}",
             part.decisions + [f"run {k + 1} of {len(runs)} between missing slices (--gaps split)"])
        for k, run in enumerate(runs)
    ]


def plan_stack(stack: Stack, options: ConvertOptions) -> list[Part]:
    """The parts (output volumes) one stack becomes under the gap and section policies.

    Raises ``ValueError`` when the policies cannot be applied (sections that cannot be merged).
    """
    g = stack.geometry
    if g is None:
        raise ValueError(f"stack {stack.id} has no geometry")
    if g.sections and options.sections == "split":
        parts = _split_sections(stack)
    elif g.sections:
        parts = [_merge_sections(stack)]
    else:
        parts = [Part(stack, list(stack.slices), "")]
    parts = [_drop_duplicates(p, g.normal, options.tolerances) for p in parts if p.slices]
    gap_after = _missing_after(stack)
    if options.gaps == "split" and gap_after:
        parts = [q for p in parts for q in _split_gaps(p, gap_after)]
    return parts


def override_positions(part: Part, tol: Tolerances = DEFAULT) -> tuple[list[SliceHeader], str]:
    """``--positions nominal``: slice k placed k nominal steps from the first along the stacking
    line (its tilt kept), replacing ImagePositionPatient. Returns the slices and what the step is.

    The nominal spacing is the stack's SpacingBetweenSlices (else SliceThickness), taken along the
    normal, or along the stacking line when it is a tilted stack's table step.
    """
    stack = part.stack
    g = stack.geometry
    nominal = g.candidate_spacings_mm.get("nominal")
    if nominal is None:
        raise ValueError("--positions nominal needs SpacingBetweenSlices or SliceThickness, and this stack has neither")
    normal = np.asarray(g.normal)
    direction = np.asarray(g.stacking_direction)
    if _nominal_along_table(stack, nominal, tol):
        step, what = direction * nominal, f"{nominal:g} mm along the tilted table"
    else:
        step, what = direction * nominal / float(direction @ normal), f"{nominal:g} mm along the normal"
    origin = np.asarray(part.slices[0].position_lps_mm)
    slices = [
        replace(s, position_lps_mm=tuple(float(v) for v in origin + k * step)) for k, s in enumerate(part.slices)
    ]
    return slices, what


# ---------------------------------------------------------------------------------------------
# One volume
# ---------------------------------------------------------------------------------------------


def _plane_notes(result: ResampleResult, slices: Sequence[SliceHeader], normal: Sequence[float],
                 options: ConvertOptions) -> list[str]:
    """What the planes are made of, in words: blank gap planes, nearest-neighbour distances."""
    notes = []
    blank = [p.position_mm for p in result.planes if p.blank]
    if blank and options.gaps == "blank":
        notes.append(f"{len(blank)} plane(s) inside missing-slice gaps left blank (mask 0, --gaps blank)")
    if options.interpolation == "nearest":
        positions = _positions(slices, normal)
        far = max((abs(p.position_mm - positions[p.slice_indices[0]]) for p in result.planes if not p.blank),
                  default=0.0)
        if far > options.tolerances.verify_mm:
            notes.append(f"nearest neighbour: planes copy the closest slice, up to {far:.3f} mm away along the normal")
    return notes


def build_volume(part: Part, options: ConvertOptions, pixels: np.ndarray | None = None) -> Volume:
    """Load (unless ``pixels``, the part's slices in order, are given), resample and verify one
    part. Raises ``VerificationError`` above tolerance; ``part`` itself is left unchanged."""
    tol = options.tolerances
    stack = part.stack
    g = stack.geometry
    spacing, why = choose_spacing(stack, options.spacing, tol)
    decisions = list(part.decisions) + [f"slice spacing: {why}"]
    slices = part.slices
    if options.positions == "nominal":
        slices, what = override_positions(part, tol)
        moved = np.linalg.norm(np.array([s.position_lps_mm for s in slices])
                               - np.array([s.position_lps_mm for s in part.slices]), axis=1)
        decisions.append(
            f"POSITIONS OVERRIDDEN (--positions nominal): ImagePositionPatient replaced by equal steps of "
            f"{what} in spatial order; slices moved by up to {float(moved.max()):.3f} mm from their DICOM positions"
        )
    if pixels is None:
        pixels = load_pixels(part.slices)
    grid = build_grid(slices, spacing, options.tilt)
    gap_after = _missing_after(stack)
    blank_after = [k for k, s in enumerate(slices[:-1]) if _slice_id(s) in gap_after]
    result = resample_stack(pixels, slices, grid, interpolation=options.interpolation,
                            gaps="blank" if options.gaps == "blank" else "interpolate", blank_after=blank_after)
    verification = verify_placements(slices, result.placements, grid, tol.verify_mm)
    if not verification.ok:
        worst = slices[verification.worst_slice]
        hint = ""
        if options.interpolation == "nearest" and options.tilt == "deskew" and g.tilt_deg > tol.tilt_deg:
            hint = (" (nearest neighbour moves tilted slices by whole pixels in-plane: use linear or cubic "
                    "interpolation, or --tilt keep)")
        raise VerificationError(
            f"verification failed: {worst.label} would be {verification.max_mm:.4f} mm from its "
            f"{'overridden' if slices is not part.slices else 'DICOM'} position (tolerance {tol.verify_mm} mm, "
            f"directions off by up to {verification.max_direction_deg:.3f}°){hint}; nothing written"
        )
    dicom_error = verification.max_mm
    if slices is not part.slices:
        dicom_error = verify_placements(part.slices, result.placements, grid, tol.verify_mm).max_mm
    if options.gaps == "interpolate" and any(_slice_id(s) in gap_after for s in slices[:-1]):
        decisions.append("missing slices: interpolated across the gaps (--gaps interpolate)")
    decisions += _plane_notes(result, slices, g.normal, options)
    positions = _positions(slices, g.normal)
    short = positions[-1] - (positions[0] + (grid.shape_kji[0] - 1) * spacing)
    if short > tol.verify_mm:
        decisions.append(
            f"the last plane is {short:.3f} mm short of the last slice ({slices[-1].label}): "
            "planes stop within the data rather than extrapolate past it"
        )
    if g.tilt_deg > tol.tilt_deg:
        decisions.append(
            f"gantry tilt {g.tilt_deg:.2f}° removed (deskew): grid along the slice normal" if options.tilt == "deskew"
            else f"gantry tilt {g.tilt_deg:.2f}° kept (--tilt keep): sheared grid along the stacking direction")
    if not result.interpolated:
        decisions.append("no interpolation: every voxel is a copy of an input pixel")
    return Volume(replace(part, decisions=decisions), result.volume, result.mask, grid, spacing,
                  result.interpolated, verification, dicom_error)


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


def _stem(series: SeriesAnalysis, stack: Stack, part: Part, used: set[str]) -> str:
    """A file-name stem from the series number and description, unique within one run: series
    that share number and description get a digest of their UID."""
    number = f"{series.series_number}_" if series.series_number is not None else ""
    base = f"{number}{series.series_description or series.modality or 'series'}"
    tail = f"_stack{stack.id}" + (f"_{part.label}" if part.label else "")
    stem = safe_stem(base + tail)
    if stem in used:
        digest = hashlib.sha256(series.series_instance_uid.encode()).hexdigest()[:8]
        stem = safe_stem(f"{base}_{digest}{tail}")
    while stem in used:
        stem = safe_stem(f"{stem}_{len(used)}")
    used.add(stem)
    return stem


def _rounded(values: Iterable[float], digits: int) -> list[float]:
    return [round(float(v), digits) + 0.0 for v in values]  # + 0.0 turns -0.0 into 0.0


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
        "spacing": _rounded(grid.spacing_mm, 6),
        "slice_spacing_mm": volume.spacing_mm,
        "origin_lps": _rounded(grid.origin_lps, 6),
        "directions_lps": [_rounded(column, 8) for column in grid.directions.T],
        "index_to_lps": [[float(v) for v in row] for row in grid.index_to_lps],
        "interpolated": volume.interpolated,
        "max_position_error_mm": round(volume.verification.max_mm, 6),
        "mean_position_error_mm": round(volume.verification.mean_mm, 6),
        "max_error_vs_dicom_mm": round(volume.dicom_error_mm, 6),
        "decisions": volume.part.decisions,
    }


def _write(volume: Volume, outdir: Path, stem: str, options: ConvertOptions) -> tuple[Path, Path | None]:
    """Write the volume (and its mask under ``--gaps blank``); neither when either name is taken."""
    suffix = SUFFIXES[options.format]
    path = output_path(outdir, stem, suffix)
    mask_path = None
    if volume.mask is not None and options.gaps == "blank":
        mask_path = output_path(outdir, stem + "_mask", suffix)
    if not options.force:
        for target in (path, mask_path):
            if target is not None and os.path.lexists(target):
                raise FileExistsError(f"{target} already exists; not overwriting it (use --force to replace it)")
    write_volume(path, volume.array, volume.grid.index_to_lps, force=options.force)
    if mask_path is not None:
        write_volume(mask_path, volume.mask, volume.grid.index_to_lps, force=options.force)
    return path, mask_path


def _progress(enabled: bool) -> Callable[[str], None]:
    if not enabled:
        return lambda message: None

    def show(message: str) -> None:
        sys.stderr.write("\r\x1b[K" + message[:100])
        sys.stderr.flush()

    return show


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def convert(
    paths: Iterable[str | os.PathLike],
    outdir: str | os.PathLike,
    options: ConvertOptions = ConvertOptions(),
    *,
    progress: bool | None = None,
) -> ConvertResult:
    """Analyse ``paths``, write one verified volume per part of every wanted stack into ``outdir``,
    and ``outdir/report.json`` (the inspect report plus ``options``, ``outputs`` and ``failures``).

    A stack or part that cannot be converted becomes a one-line entry in ``failures`` and the
    others go on. Raises ``FileExistsError`` before doing anything when ``outdir`` already holds a
    report and ``options.force`` is not set. ``progress``: a status line on stderr (default: when
    stderr is a terminal).
    """
    outdir = Path(outdir)
    report_path = outdir / REPORT_NAME
    if not options.force and os.path.lexists(report_path):
        raise FileExistsError(
            f"{report_path} already exists: {outdir} holds an earlier conversion; use --force to replace it "
            "or choose another output folder")
    outdir.mkdir(parents=True, exist_ok=True)
    analysis = analyze(paths, tolerances=options.tolerances)
    show = _progress(sys.stderr.isatty() if progress is None else progress)
    outputs: list[dict[str, Any]] = []
    failures: list[str] = []
    used: set[str] = set()
    work = [(series, stack) for series in analysis.series for stack in series.stacks if _wanted(stack, options)]
    for n, (series, stack) in enumerate(work, start=1):
        title = f"{series_title(series)} stack {stack.id}"
        show(f"[{n}/{len(work)}] {title}")
        try:
            parts = plan_stack(stack, options)
        except Exception as err:
            failures.append(f"{title}: {_one_line(err)}; nothing written")
            continue
        for part in parts:
            name = f"{title}{' ' + part.label if part.label else ''}"
            try:
                volume = build_volume(part, options)
                path, mask_path = _write(volume, outdir, _stem(series, stack, part, used), options)
                outputs.append(_record(series, volume, path, mask_path))
            except Exception as err:  # one bad stack must not stop the others
                failures.append(f"{name}: {_one_line(err)}")
    show("")
    document = analysis_to_dict(analysis)
    document["options"] = {k: (v if not isinstance(v, Tolerances) else v.__dict__) for k, v in options.__dict__.items()}
    document["outputs"] = outputs
    document["failures"] = failures
    text = (json.dumps(document, indent=2) + "\n").encode("utf-8")
    atomic_write(report_path, lambda f: f.write(text), force=True)
    return ConvertResult(analysis, outputs, failures, report_path)
