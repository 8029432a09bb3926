"""Assembling several series in Slicer, before any pixel is read: what the DICOM plugin offers when
several series are selected, and whether volumes picked in the module panel form one stack.

Pure, like ``examine``: headers and analyses in, words out. ``assembling`` builds the volumes.

Slicer's DICOM browser groups loadables by the series of their first file and selects, in each
group, the loadables of the highest confidence. An assembled loadable's first file belongs to its
first series, whose own loadables always offer more, so it is never selected by default; it is
also offered unselected. Only groups the core offers (``assembly.find_candidates``: one frame of
reference, study and modality) are offered: series in different frames of reference are joined
only when asked for, in the module panel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..assembly import AssemblyCandidate, find_candidates, series_candidate
from ..joining import assembly_spacing
from ..model import Analysis, SeriesAnalysis, Stack
from ..options import ConvertOptions
from ..policies import GapPolicy, OverlapPolicy

CONFIDENCE_ASSEMBLED = 0.2
"""Below every loadable offered for one series (ours 0.3 to 0.6, Slicer's scalar-volume plugin's
0.5): the browser never selects an assembled loadable by default."""

OTHER_FRAMES_CHECKBOX = "Allow different frames of reference"
"""The module panel's check box that lets volumes in different frames of reference be assembled."""


@dataclass(frozen=True)
class AssemblyOffer:
    """One "assembled from N series" loadable, in the terms of Slicer's ``DICOMLoadable``.

    ``files``: every file of the stations, station by station. ``options``: what loading joins
    with (those the offer was made with). ``spacing_mm``: the slice spacing loading gives the
    volume (``None`` when the options cannot apply; ``warning`` says why).
    """

    candidate: AssemblyCandidate
    options: ConvertOptions
    files: tuple[str, ...]
    name: str
    node_name: str
    tooltip: str
    warning: str
    spacing_mm: float | None
    selected: bool = False
    confidence: float = CONFIDENCE_ASSEMBLED


def assembly_offers(analysis: Analysis, options: ConvertOptions) -> list[AssemblyOffer]:
    """One offer per group of the analysed series (the series selected in the browser) that the
    core offers to assemble, joined under ``options`` (its spacing rule, overlap and gap policy)."""
    return [_offer(candidate, options) for candidate in find_candidates(analysis, options.tolerances)]


def _offer(candidate: AssemblyCandidate, options: ConvertOptions) -> AssemblyOffer:
    try:
        spacing = assembly_spacing(candidate, options)
    except ValueError as err:
        spacing, problem = None, f"Cannot be assembled with these settings: {err}."
    else:
        problem = ""
    details = [candidate.layout] + (["in-plane grids differ"] if candidate.in_plane_grids_differ else [])
    details += [f"harden at {spacing.value_mm:.4g} mm"] if spacing is not None else []
    lines = [f"{candidate.title}."] + [f"{_capitalised(r)}." for r in candidate.reasons]
    lines += [f"{s.name}: {s.stack.slice_count} slice(s), {s.start_mm:.2f} to {s.end_mm:.2f} mm along the normal, "
              f"{s.grid_phrase}." for s in candidate.stations]
    if spacing is not None:
        lines.append(loading_sentence(spacing.value_mm, spacing.reason, options))
    return AssemblyOffer(
        candidate=candidate,
        options=options,
        files=tuple(dict.fromkeys(s.path for station in candidate.stations for s in station.stack.slices)),
        name=f"{candidate.title} — {', '.join(details)}",
        node_name=candidate.title,
        tooltip="\n".join(lines + ([problem] if problem else [])),
        warning=problem,
        spacing_mm=None if spacing is None else spacing.value_mm,
    )


def loading_sentence(spacing_mm: float, reason: str, options: ConvertOptions) -> str:
    """What assembling does, in the words of a loadable's tooltip and the module panel."""
    overlap, gaps = OverlapPolicy(options.overlap), GapPolicy(options.gaps)
    return (f"Assembling joins the series into one volume on a regular {spacing_mm:.4g} mm grid (slice spacing: "
            f"{reason}); overlaps: {overlap.help}; gaps between series: {gaps.help}. Every slice is checked to land "
            "where its header says and the volume's content against the slices; intensity differences in the "
            "overlaps are measured and shown in the Irregular Series module, not corrected.")


@dataclass(frozen=True)
class VolumesAssembly:
    """Whether volumes picked in the module panel form one stack: the ``candidate`` and what
    assembling it does (``lines``), or ``refusal``, why not."""

    candidate: AssemblyCandidate | None
    lines: tuple[str, ...]
    refusal: str = ""


def volumes_assembly(stacks: Sequence[Stack], options: ConvertOptions, *, names: Sequence[str] = (),
                     allow_other_frames: bool = False) -> VolumesAssembly:
    """Whether the stacks of volumes loaded separately (named ``names``) form one stack
    (``assembly.series_candidate``: parallel, one after the other along the normal, one study), and
    what assembling them under ``options`` does. Stacks in different frames of reference (or with
    none) are refused unless ``allow_other_frames``: their positions are then taken as given."""
    names = list(names) or [f"volume {k + 1}" for k in range(len(stacks))]
    if len(stacks) < 2:
        return _refused("Pick two or more volumes loaded by the Irregular Series DICOM plugin.")
    seen: dict[tuple[tuple[str, int], ...], int] = {}
    for k, stack in enumerate(stacks):
        images = tuple((s.sop_instance_uid, s.frame) for s in stack.slices)
        if images in seen:
            return _refused(f"{names[seen[images]]} and {names[k]} were loaded from the same images.")
        seen[images] = k
    try:
        candidate = series_candidate([_as_series(stack) for stack in stacks], options.tolerances)
    except ValueError as err:
        return _refused(f"They do not form one stack: {err}.")
    if not candidate.shares_frame_of_reference and not allow_other_frames:
        return _refused(f"They do not share one frame of reference (or have none), so their positions are not known "
                        f"to be in one patient coordinate system. Tick \"{OTHER_FRAMES_CHECKBOX}\" to assemble them "
                        "anyway, with their positions taken as given.")
    lines = [f"{_capitalised(r)}." for r in candidate.reasons]
    try:
        spacing = assembly_spacing(candidate, options)
    except ValueError as err:
        return VolumesAssembly(None, tuple(lines), f"Cannot be assembled with these settings: {err}.")
    return VolumesAssembly(candidate, tuple(lines + [loading_sentence(spacing.value_mm, spacing.reason, options)]))


def _as_series(stack: Stack) -> SeriesAnalysis:
    """A loaded volume's stack as the only stack of its series (a station of its own)."""
    first = stack.slices[0]
    return SeriesAnalysis(first.series_instance_uid, first.series_number, first.series_description, first.modality,
                          [stack], [])


def _refused(why: str) -> VolumesAssembly:
    return VolumesAssembly(None, (), why)


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]
