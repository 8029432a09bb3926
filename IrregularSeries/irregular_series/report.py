"""The analysis in two forms: a JSON-ready dict (schema in docs/report-schema.md) and plain words."""

from __future__ import annotations

import json
import math
from typing import Any

from . import __version__
from .assembly import AssemblyCandidate, candidate_to_dict, find_candidates
from .messages import printable
from .model import Analysis, Excluded, SeriesAnalysis, Stack
from .orientation import plane_name

SCHEMA_VERSION = 1

NON_FINITE_KEY = "non_finite_values"
"""Where ``json_text`` lists the numbers it replaced by null: JSON has no NaN or infinity."""


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


def excluded_to_dict(e: Excluded) -> dict[str, Any]:
    return {"file": e.path, "frame": e.frame, "reason": e.reason, "error_type": e.error_type or None}


def stack_to_dict(stack: Stack) -> dict[str, Any]:
    g = stack.geometry
    out: dict[str, Any] = {
        "id": stack.id,
        "name": stack.name,
        "volume_set": stack.volume_set,
        "role": stack.role,
        "reasons": list(stack.reasons),
        "slice_count": stack.slice_count,
        "files": [
            {
                "path": s.path,
                "frame": s.frame if s.number_of_frames > 1 else None,
                "instance_number": s.instance_number,
                "sop_instance_uid": s.sop_instance_uid,
            }
            for s in stack.slices
        ],
        "rows": stack.slices[0].rows,
        "columns": stack.slices[0].columns,
        "pixel_spacing_mm": list(stack.slices[0].pixel_spacing_mm or ()),
    }
    if g is None:
        return out
    out.update(
        plane=plane_name(g.normal),
        orientation=[_round(v, 6) for v in g.orientation],
        normal=[_round(v, 6) for v in g.normal],
        stacking_direction=[_round(v, 6) for v in g.stacking_direction],
        positions_mm=[_round(p) for p in g.positions_mm],
        steps_mm=[_round(s) for s in g.steps_mm],
        spacing={
            "nominal": _round(g.spacing.nominal),
            "median": _round(g.spacing.median),
            "min": _round(g.spacing.min),
            "max": _round(g.spacing.max),
        },
        candidate_spacings_mm={k: _round(v) for k, v in g.candidate_spacings_mm.items()},
        regular=g.regular,
        tilt_deg=_round(g.tilt_deg),
        tilt_tag_deg=g.tilt_tag_deg,
        irregularities=[i.to_dict() for i in g.irregularities],
        sections=[
            {
                "index": s.index,
                "start_mm": _round(s.start_mm),
                "end_mm": _round(s.end_mm),
                "slice_indices": list(s.slice_indices),
                "step_mm": _round(s.step_mm),
                "evidence": s.evidence,
            }
            for s in g.sections
        ],
    )
    return out


def series_to_dict(series: SeriesAnalysis) -> dict[str, Any]:
    return {
        "series_instance_uid": series.series_instance_uid,
        "series_number": series.series_number,
        "series_description": series.series_description,
        "modality": series.modality,
        "stacks": [stack_to_dict(s) for s in series.stacks],
        "excluded": [excluded_to_dict(e) for e in series.excluded],
    }


def json_text(document: dict[str, Any]) -> str:
    """``document`` as strict JSON text (RFC 8259, which strict parsers read): a number that is not
    finite becomes ``null``, and ``document[NON_FINITE_KEY]`` maps its place (``$.series[0]...``)
    to what it was (``"inf"``), so that nothing is dropped silently."""
    replaced: dict[str, str] = {}
    clean = _finite(document, "$", replaced)
    if replaced:
        clean[NON_FINITE_KEY] = replaced
    return json.dumps(clean, indent=2, allow_nan=False) + "\n"


def _finite(value: Any, where: str, replaced: dict[str, str]) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        replaced[where] = repr(value)
        return None
    if isinstance(value, dict):
        return {k: _finite(v, f"{where}.{k}", replaced) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v, f"{where}[{i}]", replaced) for i, v in enumerate(value)]
    return value


def analysis_to_dict(analysis: Analysis, candidates: list[AssemblyCandidate] | None = None) -> dict[str, Any]:
    """The ``inspect --json`` document. ``candidates``: the series groups offered for assembly
    (default: ``find_candidates`` at the default tolerances)."""
    return {
        "tool": "irregular-series",
        "version": __version__,
        "schema_version": SCHEMA_VERSION,
        "series": [series_to_dict(s) for s in analysis.series],
        "excluded": [excluded_to_dict(e) for e in analysis.excluded],
        "assembly_candidates": [candidate_to_dict(c) for c in
                                (find_candidates(analysis) if candidates is None else candidates)],
    }


# ---------------------------------------------------------------------------------------------
# Plain words
# ---------------------------------------------------------------------------------------------


def series_title(series: SeriesAnalysis) -> str:
    number = f"#{series.series_number} " if series.series_number is not None else ""
    description = series.series_description or "(no description)"
    return f"{number}{series.modality} {description}".strip()


def stack_line(stack: Stack) -> str:
    """One line: what the stack is, its spacing and what is irregular about it."""
    g = stack.geometry
    head = f"stack {stack.id}{' (' + stack.name + ')' if stack.name else ''}: {stack.role}, {stack.slice_count} slice(s)"
    if g is None or not g.positions_mm:
        return head
    head += f", {plane_name(g.normal)}"
    spacing = g.spacing
    if spacing.median is not None:
        if g.regular:
            head += f", regular {spacing.median:.3g} mm"
        elif f"{spacing.min:.3g}" == f"{spacing.max:.3g}":
            head += f", irregular, steps of {spacing.median:.3g} mm"
        else:
            head += f", steps {spacing.min:.3g}–{spacing.max:.3g} mm (median {spacing.median:.3g})"
    if g.spacing.nominal is not None:
        head += f", nominal {g.spacing.nominal:g} mm"
    return head


def format_summary(analysis: Analysis) -> str:
    """The default ``inspect`` output: per series, its stacks, why, and what is irregular.

    Header text and file names may hold control characters: each line is made ``printable``, so
    that it stays one line and cannot rewrite the terminal."""
    lines: list[str] = []
    for series in analysis.series:
        lines.append(f"Series {series_title(series)}  [{series.series_instance_uid}]")
        for stack in series.stacks:
            lines.append("  " + stack_line(stack))
            for reason in stack.reasons:
                lines.append(f"      why: {reason}")
            for irregularity in stack.geometry.irregularities if stack.geometry else []:
                lines.append(f"      ! {irregularity.message}")
        if series.excluded:
            lines.append(f"  excluded {len(series.excluded)} file(s):")
            lines.extend(f"      {_excluded_line(e)}" for e in series.excluded)
        lines.append("")
    if analysis.excluded:
        lines.append(f"Left out, in no series with images: {len(analysis.excluded)} file(s)")
        lines.extend(f"  {_excluded_line(e)}" for e in analysis.excluded)
    if not analysis.series:
        lines.append("No DICOM images found.")
    return "\n".join(printable(line) for line in lines).rstrip() + "\n"


def _excluded_line(e: Excluded) -> str:
    frame = f" frame {e.frame}" if e.frame is not None else ""
    return f"{e.path}{frame}: {e.reason}"
