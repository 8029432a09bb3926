"""What the Slicer DICOM plugin offers for one series: one loadable per stack, and how sure it is.

Slicer's DICOM browser selects, per series, every loadable whose confidence equals the highest any
plugin offers; its scalar-volume plugin offers 0.5. We offer more than 0.5 exactly when the series
holds something that plugin gets wrong or only warns about (a localizer mixed in, several stacks,
gaps, variable spacing, tilt, stitched sections, repeated positions, multi-frame geometry), and less
otherwise, so a plain series keeps loading the way it always has.

The browser also keeps, per plugin, only one selected loadable per set of files, so the stacks of
one multi-frame object that would all be selected are offered together (``offers``): one loadable
that loads each of them.

Pure: no Slicer, no files. The plugin turns each ``Offer`` into a ``DICOMLoadable``.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from typing import Literal

from ..irregularities import IrregularityKind as Kind
from ..model import Role, SeriesAnalysis, Stack
from ..options import ConvertOptions
from ..orientation import plane_name
from ..policies import SpacingRule
from ..spacing import choose_spacing
from ..timeseries import VolumeSeries, common_positions, volume_series
from ..tolerances import DEFAULT, Tolerances

CONFIDENCE_CORRECTS = 0.6
"""We load this series right where Slicer's scalar-volume plugin (0.5) does not: ours is chosen."""

CONFIDENCE_PLAIN = 0.4
"""Slicer's scalar-volume plugin loads this just as well: it stays the default."""

CONFIDENCE_ALTERNATIVE = 0.3
"""Offered next to our volume loadables (a localizer, say) and never chosen by default."""

CONFIDENCE_CORRECTS_SEQUENCE = 1.1
"""A volume series with volumes a regular-grid loader gets wrong (gaps, tilt, variable spacing…):
above MultiVolumeImporter (0.9–1.0, which loads each volume with the scalar-volume plugin) and
Slicer's image-sequence plugin (up to 1.05), so ours is chosen. A regular volume series offers
its volumes' confidence (at most ``CONFIDENCE_CORRECTS``) and keeps loading as it always has."""

LoadMode = Literal["transform", "harden"]
"""What loading does to a stack with irregular geometry: keep the acquired slices and add an
acquisition (grid) transform that puts each at its DICOM position, or resample onto a regular grid."""

Action = Literal["load", "transform", "harden"]
"""What loading one stack does: ``load`` as acquired (its geometry is already a regular grid), or
the ``LoadMode`` chosen for irregular stacks."""

@dataclass(frozen=True)
class LoadableSpec:
    """One way to load part of a series, in the terms of Slicer's ``DICOMLoadable``.

    ``files`` are in slice order (a multi-frame file appears once). ``name`` is what the DICOM
    browser lists: the series label, then ``details`` (what was found, what loading does);
    ``node_name`` the shorter name of the volume node loading makes. ``spacing_mm`` is the slice
    spacing loading resamples to when ``action`` is ``harden``, else ``None``.
    """

    files: tuple[str, ...]
    name: str
    details: tuple[str, ...]
    node_name: str
    tooltip: str
    warning: str
    selected: bool
    confidence: float
    stack_id: str
    role: Role
    action: Action
    spacing_mm: float | None = None


def examine_series(
    analysis: SeriesAnalysis,
    series_label: str,
    *,
    load_mode: LoadMode = "harden",
    options: ConvertOptions = ConvertOptions(),
) -> list[LoadableSpec]:
    """The loadables for one series (as ``analyze`` makes it: every stack has its geometry): its
    volume stacks first, then its other stacks.

    ``series_label`` names the series in loadable names (Slicer uses "<number>: <description>").
    Hardening takes the slice spacing ``options.spacing`` (see ``spacing.choose_spacing``), applied
    with ``options.tolerances`` (those the analysis used). ``options.include_localizers`` selects
    the localizers next to the volumes.
    """
    volumes = [s for s in analysis.stacks if s.role == "volume"]
    others = [s for s in analysis.stacks if s.role != "volume"]
    left_out = _left_out_phrase(others) if volumes and others else ""
    series_corrects = len(volumes) > 1 or bool(volumes and others)
    excluded_note = _excluded_note(analysis)

    specs = []
    for index, stack in enumerate(volumes, start=1):
        findings = _findings(stack)
        action = _action(stack, load_mode)
        chosen = choose_spacing(stack, options.spacing, options.tolerances) if action == "harden" else None
        spacing_mm = chosen.value_mm if chosen else None
        spacing_reason = chosen.reason if chosen else ""
        which = [] if len(volumes) == 1 else [f"volume {index} of {len(volumes)}" + (f", {stack.name}" if stack.name else "")]
        details = [f"{which[0]} ({_slices_phrase(stack)})"] if which else []
        details += findings + ([_action_phrase(action, spacing_mm)] if action != "load" else [])
        details += [left_out] if left_out else []
        specs.append(
            LoadableSpec(
                files=_files(stack),
                name=_join(series_label, details),
                details=tuple(details),
                node_name=_join(series_label, which),
                tooltip=_tooltip(stack, action, spacing_mm, spacing_reason, excluded_note),
                warning=_warning(stack, excluded_note),
                selected=True,
                confidence=CONFIDENCE_CORRECTS if series_corrects or findings else CONFIDENCE_PLAIN,
                stack_id=stack.id,
                role=stack.role,
                action=action,
                spacing_mm=spacing_mm,
            )
        )
    for index, stack in enumerate(others, start=1):
        what = _role_word(stack.role) if len(others) == 1 else f"{_role_word(stack.role)} {index} of {len(others)}"
        details = [what + (" (excluded from volume)" if volumes else "")]
        # Included localizers load next to the volumes: selected, and as sure as them, since the
        # browser loads only the most confident loadables of a series.
        included = not volumes or (options.include_localizers and stack.role == "localizer")
        specs.append(
            LoadableSpec(
                files=_files(stack),
                name=_join(series_label, details),
                details=tuple(details),
                node_name=f"{series_label} — {what}",
                tooltip=_tooltip(stack, "load", None, "", excluded_note),
                warning="",
                selected=included,
                confidence=CONFIDENCE_PLAIN if not volumes else CONFIDENCE_CORRECTS if included else CONFIDENCE_ALTERNATIVE,
                stack_id=stack.id,
                role=stack.role,
                action="load",
            )
        )
    return specs


@dataclass(frozen=True)
class Offer:
    """One loadable the plugin offers the browser: the stacks it loads (``parts``; more than one
    only for stacks that share their files and would be selected together) and its fields."""

    files: tuple[str, ...]
    name: str
    tooltip: str
    warning: str
    selected: bool
    confidence: float
    parts: tuple[LoadableSpec, ...]
    sequence: VolumeSeries | None = None
    """Set for a volume series loaded as one sequence (``with_sequences``); ``parts`` are then the
    loadables of its volumes."""


def offers(specs: list[LoadableSpec], series_label: str) -> list[Offer]:
    """``specs`` as the browser can take them: Slicer's loadable table unselects a plugin's
    selected loadable whose set of files another selected one already has, so it would never be
    loaded. Specs with the same files and confidence (the stacks of one multi-frame object) become
    one offer, named after each of them, in the order of ``specs``."""
    groups: dict[tuple[frozenset[str], float], list[LoadableSpec]] = {}
    for spec in specs:
        groups.setdefault((frozenset(spec.files), spec.confidence), []).append(spec)
    found = []
    for parts in groups.values():
        first = parts[0]
        name = first.name if len(parts) == 1 else _join(
            series_label, [f"{len(parts)} stacks of one file: " + "; ".join(", ".join(p.details) for p in parts)])
        found.append(
            Offer(
                files=first.files,
                name=name,
                tooltip="\n\n".join(p.tooltip for p in parts),
                warning=" ".join(p.warning for p in parts if p.warning),
                selected=any(p.selected for p in parts),
                confidence=first.confidence,
                parts=tuple(parts),
            )
        )
    return found


def with_sequences(analysis: SeriesAnalysis, series_label: str, found: list[Offer],
                   options: ConvertOptions = ConvertOptions()) -> list[Offer]:
    """``found`` (the series' offers) with one sequence offer first per volume series of the
    series (``timeseries.volume_series``): selected, as sure as its volumes were, or above the
    other plugins' volume series (``CONFIDENCE_CORRECTS_SEQUENCE``) when a volume has what a
    regular-grid loader gets wrong; the offers of
    those volumes one by one stay, unselected and never chosen by default. A sequence's volumes
    are resampled onto the series' common grid whatever the load mode, since a sequence shows
    its volumes on one grid."""
    sequences = volume_series(analysis, options.tolerances)
    if not sequences:
        return found
    members = {st.id for series in sequences for st in series.stacks}
    specs = {spec.stack_id: spec for offer in found for spec in offer.parts}
    made = []
    for series in sequences:
        parts = tuple(specs[st.id] for st in series.stacks)
        details = [_sequence_phrase(series), _slices_phrase(common_positions(series.stacks, options.tolerances)) + " each"]
        made.append(Offer(
            files=tuple(dict.fromkeys(f for spec in parts for f in spec.files)),
            name=_join(series_label, details),
            tooltip=sequence_tooltip(series, options),
            warning=" ".join(dict.fromkeys(spec.warning for spec in parts if spec.warning)),
            selected=True,
            confidence=(CONFIDENCE_CORRECTS_SEQUENCE if any(_findings(st) for st in series.stacks)
                        else max(spec.confidence for spec in parts)),
            parts=parts,
            sequence=series,
        ))
    demoted = [dataclasses.replace(o, selected=False, confidence=CONFIDENCE_ALTERNATIVE)
               if all(spec.stack_id in members for spec in o.parts) else o for o in found]
    return made + demoted


def _sequence_phrase(series: VolumeSeries) -> str:
    """"sequence of 5 time points (time 0–4 s)"."""
    axis = series.axis
    unit = f" {axis.unit}" if axis.unit else ""
    return f"sequence of {series.title} ({axis.name} {axis.values[0]:g}–{axis.values[-1]:g}{unit})"


def sequence_tooltip(series: VolumeSeries, options: ConvertOptions) -> str:
    """Why these volumes are one sequence, what its index is, and the common grid they are put on."""
    tol = options.tolerances
    reference = common_positions(series.stacks, tol)
    chosen = choose_spacing(reference, options.spacing, tol)
    held = reference.slice_count
    lines = list(series.reasons)
    lines.append(f"Loading resamples every volume onto one common grid, the {held} positions the volumes hold "
                 f"together at {chosen.value_mm:.4g} mm (slice spacing: {chosen.reason}), and checks each "
                 "volume against its own slices, as for any volume.")
    for stack, value in zip(series.stacks, series.axis.values):
        if stack.slice_count < held:
            lines.append(f"{series.axis.value_text(value)} has {stack.slice_count} of the {held} positions: its "
                         f"missing slices follow the gap policy ({options.gaps}); planes beyond its own ends are "
                         "background.")
    return "\n".join(lines)


def spacing_presets(stack: Stack, tolerances: Tolerances = DEFAULT) -> str:
    """The spacing presets with their values, for the module panel:
    "auto = nominal 0.6 mm · nominal 0.6 mm · median 0.6 mm · smallest 0.3 mm"."""
    candidates = stack.known_geometry.candidate_spacings_mm
    auto = choose_spacing(stack, SpacingRule.AUTO, tolerances)
    names = {"nominal": "nominal", "median": "median", "min": "smallest"}
    sources = {**names, "finest_run": "finest run"}
    source = f"{sources[auto.source]} " if auto.source in sources else ""
    parts = [f"auto = {source}{auto.value_mm:.4g} mm"]
    parts += [f"{names[key]} {candidates[key]:.4g} mm" for key in names if key in candidates]
    return " · ".join(parts)


def slicer_series_name(analysis: SeriesAnalysis) -> str:
    """Slicer's name for a series' nodes: "<SeriesNumber>: <SeriesDescription>"."""
    description = analysis.series_description or "Unnamed Series"
    return f"{analysis.series_number}: {description}" if analysis.series_number is not None else description


def _action(stack: Stack, load_mode: LoadMode) -> Action:
    kinds = {irr.kind for irr in stack.known_geometry.irregularities}
    if not any(kind.misplaced_by_regular_grid for kind in kinds):
        return "load"
    # A kind a grid transform cannot represent is hardened even when the load mode is transform.
    return "harden" if any(kind.untransformable for kind in kinds) else load_mode


def _is_multiframe(stack: Stack) -> bool:
    return any(s.number_of_frames > 1 for s in stack.slices)


def _findings(stack: Stack) -> list[str]:
    """Short phrases for what a regular-grid loader gets wrong about this stack (empty if nothing)."""
    found = []
    geometry = stack.known_geometry
    kinds = Counter(irr.kind for irr in geometry.irregularities)
    sections = len(geometry.sections)
    if kinds[Kind.STITCHED_SECTIONS] or sections > 1:
        found.append(f"{sections} sections stitched" if sections > 1 else "stitched sections")
    if kinds[Kind.MISSING_SLICES]:
        found.append(_count(kinds[Kind.MISSING_SLICES], "gap", "gaps"))
    if kinds[Kind.VARIABLE_SPACING]:
        low, high = geometry.spacing.min, geometry.spacing.max
        found.append("variable spacing" if low is None or high is None else f"spacing {low:.3g}–{high:.3g} mm")
    if kinds[Kind.DUPLICATE_POSITIONS]:
        found.append("repeated positions")
    if kinds[Kind.GANTRY_TILT]:
        found.append(f"tilt {geometry.tilt_deg:.1f}°")
    if kinds[Kind.NON_PARALLEL]:
        found.append("non-parallel slices")
    if kinds[Kind.NON_COLLINEAR]:
        found.append("slices off one line")
    if _is_multiframe(stack):
        # Slicer's scalar plugin reads one position per file, not the per-frame ones.
        found.append("multi-frame")
    return found


def _action_phrase(action: Action, spacing_mm: float | None) -> str:
    return f"harden at {spacing_mm:.4g} mm" if action == "harden" else "acquisition transform"


def _slices_phrase(stack: Stack) -> str:
    plane = plane_name(stack.known_geometry.normal)
    return _count(stack.slice_count, f"{plane} slice", f"{plane} slices")


def _role_word(role: Role) -> str:
    return "localizer" if role == "localizer" else "other images"


def _left_out_phrase(others: list[Stack]) -> str:
    images = sum(s.slice_count for s in others)
    kind = "localizer" if all(s.role == "localizer" for s in others) else "other"
    return _count(images, f"{kind} image", f"{kind} images") + " left out"


def _excluded_note(analysis: SeriesAnalysis) -> str:
    if not analysis.excluded:
        return ""
    reasons = Counter(e.reason for e in analysis.excluded)
    reason, _ = reasons.most_common(1)[0]
    more = f" (and {len(reasons) - 1} other reasons)" if len(reasons) > 1 else ""
    return f"{_count(len(analysis.excluded), 'file', 'files')} of this series not used: {reason}{more}."


def _files(stack: Stack) -> tuple[str, ...]:
    return tuple(dict.fromkeys(s.path for s in stack.slices))


def _warning(stack: Stack, excluded_note: str) -> str:
    messages = [irr.message for irr in stack.known_geometry.irregularities if irr.kind.approximate]
    return " ".join(messages + ([excluded_note] if excluded_note else []))


def _tooltip(stack: Stack, action: Action, spacing_mm: float | None, spacing_reason: str, excluded_note: str) -> str:
    lines = []
    geometry = stack.known_geometry
    if stack.slice_count == 1:
        lines.append(f"1 {plane_name(geometry.normal)} image.")
    else:
        span = geometry.positions_mm[-1] - geometry.positions_mm[0]
        lines.append(
            f"{stack.slice_count} {plane_name(geometry.normal)} slices spanning {span:.4g} mm along the slice normal."
        )
        lines.append(_spacing_line(stack))
        lines += [irr.message for irr in geometry.irregularities]
    lines += stack.reasons
    if excluded_note:
        lines.append(excluded_note)
    if action == "harden":
        lines.append(f"Loading resamples onto a regular {spacing_mm:.4g} mm grid and checks that every slice "
                     f"lands where its header says. Slice spacing: {spacing_reason}.")
        if any(irr.kind.untransformable for irr in geometry.irregularities):
            lines.append("(Repeated positions cannot be kept under an acquisition transform.)")
    elif action == "transform":
        lines.append("Loading keeps the slices as acquired and adds an acquisition transform that puts "
                     "every slice at its DICOM position.")
    else:
        lines.append("Loading keeps the images as acquired.")
    return "\n".join(lines)


def _spacing_line(stack: Stack) -> str:
    spacing = stack.known_geometry.spacing
    parts = []
    if spacing.min is not None and spacing.max is not None:
        same = abs(spacing.max - spacing.min) < 1e-9
        parts.append(f"step {spacing.min:.4g} mm" if same else f"steps {spacing.min:.4g}–{spacing.max:.4g} mm")
    if spacing.median is not None:
        parts.append(f"median {spacing.median:.4g} mm")
    if spacing.nominal is not None:
        parts.append(f"nominal {spacing.nominal:g} mm")
    return "Spacing: " + (", ".join(parts) if parts else "all slices at one position") + "."


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _join(head: str, details: list[str]) -> str:
    return f"{head} — {', '.join(details)}" if details else head
