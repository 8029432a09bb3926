"""An archive at a glance: one record per stack (what it is, how irregular, what to do with it),
written as CSV (or Parquet when pyarrow is installed), and the counts per irregularity kind."""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import asdict, dataclass, fields
from enum import Enum
from pathlib import Path

from .irregularities import IrregularityKind
from .model import Analysis, SeriesAnalysis, Stack
from .orientation import plane_name
from .outputs import atomic_write


class Action(str, Enum):
    """What to do with a stack; the value is the word in the table."""

    SKIP = "skip"
    LOAD_AS_IS = "load_as_is"
    CONVERT = "convert"
    CONVERT_AND_REVIEW = "convert_and_review"

    def __str__(self) -> str:
        return str(self.value)


@dataclass(frozen=True)
class StackSummary:
    """One row of the archive table. Spacings are mm (``None`` where a stack has one slice or the
    headers no nominal value); ``irregularities`` is ``kind=count`` joined by ``;`` in the kinds'
    order; ``excluded_files`` and ``exclusion_reasons`` (distinct reasons) are the stack's series'."""

    patient_id: str
    study_instance_uid: str
    series_instance_uid: str
    series_number: int | None
    series_description: str
    modality: str
    stack: str
    role: str
    slice_count: int
    orientation: str
    spacing_nominal_mm: float | None
    spacing_median_mm: float | None
    spacing_min_mm: float | None
    spacing_max_mm: float | None
    irregularities: str
    irregularity_count: int
    tilt_deg: float | None
    excluded_files: int
    exclusion_reasons: int
    action: Action
    action_reason: str


def kind_counts(stack: Stack) -> Counter[IrregularityKind]:
    return Counter(i.kind for i in stack.geometry.irregularities) if stack.geometry else Counter()


def recommend(stack: Stack) -> tuple[Action, str]:
    """The action for a stack and why, from its role and its irregularities' kinds."""
    if stack.role != "volume":
        return Action.SKIP, f"a {stack.role} stack, not a volume"
    kinds = list(kind_counts(stack))
    misplaced = [k for k in kinds if k.misplaced_by_regular_grid]
    if not misplaced:
        return Action.LOAD_AS_IS, "a regular-grid loader places every slice where it belongs"
    approximate = [k for k in kinds if k.approximate]
    if approximate:
        return (Action.CONVERT_AND_REVIEW,
                f"a regular-grid loader misplaces slices, and the volume fills in data ({', '.join(map(str, approximate))})")
    return Action.CONVERT, f"a regular-grid loader misplaces slices ({', '.join(map(str, misplaced))})"


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits) + 0.0


def stack_summary(series: SeriesAnalysis, stack: Stack) -> StackSummary:
    g = stack.geometry
    counts = kind_counts(stack)
    first = stack.slices[0]
    action, why = recommend(stack)
    return StackSummary(
        patient_id=first.patient_id,
        study_instance_uid=first.study_instance_uid,
        series_instance_uid=series.series_instance_uid,
        series_number=series.series_number,
        series_description=series.series_description,
        modality=series.modality,
        stack=stack.id,
        role=stack.role,
        slice_count=stack.slice_count,
        orientation=plane_name(g.normal) if g else "",
        spacing_nominal_mm=_round(g.spacing.nominal) if g else None,
        spacing_median_mm=_round(g.spacing.median) if g else None,
        spacing_min_mm=_round(g.spacing.min) if g else None,
        spacing_max_mm=_round(g.spacing.max) if g else None,
        irregularities=";".join(f"{kind}={counts[kind]}" for kind in IrregularityKind if kind in counts),
        irregularity_count=sum(counts.values()),
        tilt_deg=_round(g.tilt_deg, 2) if g else None,
        excluded_files=len({e.path for e in series.excluded}),
        exclusion_reasons=len({e.reason for e in series.excluded}),
        action=action,
        action_reason=why,
    )


def summarize(analysis: Analysis) -> list[StackSummary]:
    """One record per stack of every series, in the order of the analysis."""
    return [stack_summary(series, stack) for series in analysis.series for stack in series.stacks]


COLUMNS = tuple(f.name for f in fields(StackSummary))


def _cell(value: object) -> object:
    return "" if value is None else str(value) if isinstance(value, Enum) else value


def csv_bytes(rows: list[StackSummary]) -> bytes:
    text = io.StringIO(newline="")
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([_cell(v) for v in asdict(row).values()])
    return text.getvalue().encode("utf-8")


def write_summary(rows: list[StackSummary], path: str | Path, *, force: bool = False) -> Path:
    """The table as CSV, or as Parquet when ``path`` ends in ``.parquet`` (needs pyarrow); written
    atomically, and an existing file is replaced only with ``force``."""
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        import pyarrow as pa  # only this format needs it
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist([{k: _cell(v) if isinstance(v, Enum) else v for k, v in asdict(r).items()}
                                      for r in rows])
        atomic_write(path, lambda f: pq.write_table(table, f), force=force)
    else:
        data = csv_bytes(rows)
        atomic_write(path, lambda f: f.write(data), force=force)
    return path


def closing_summary(analysis: Analysis, rows: list[StackSummary]) -> str:
    """A few lines: stacks, actions, counts per irregularity kind, files left out."""
    actions = Counter(r.action for r in rows)
    kinds: Counter[IrregularityKind] = Counter()
    stacks_with: Counter[IrregularityKind] = Counter()
    for series in analysis.series:
        for stack in series.stacks:
            counts = kind_counts(stack)
            kinds.update(counts)
            stacks_with.update(counts.keys())
    excluded = sum(len(s.excluded) for s in analysis.series) + len(analysis.excluded)
    lines = [f"{len(analysis.series)} series, {len(rows)} stacks: "
             + ", ".join(f"{actions[a]} {a}" for a in Action if actions[a])]
    for kind in IrregularityKind:
        if kinds[kind]:
            lines.append(f"  {kind}: {kinds[kind]} in {stacks_with[kind]} stack(s)")
    lines.append(f"  files left out: {excluded}")
    return "\n".join(lines) + "\n"
