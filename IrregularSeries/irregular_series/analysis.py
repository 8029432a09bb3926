"""From files to a full analysis: scan, de-duplicate, split series into stacks, analyse geometry."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence

from .geometry import analyze_geometry
from .grouping import group_series
from .headers import scan
from .limits import DEFAULT_LIMITS, Limits
from .model import Analysis, Excluded, SeriesAnalysis, SliceHeader
from .policies import StackSplit
from .tolerances import DEFAULT, Tolerances


def analyze(
    paths: Iterable[str | os.PathLike[str]],
    *,
    tolerances: Tolerances = DEFAULT,
    workers: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
    skip: Iterable[str | os.PathLike[str]] = (),
    progress: Callable[[int, int], None] | None = None,
    keep_together: Collection[StackSplit] = (),
) -> Analysis:
    """Scan files and folders and explain every series found in them. ``limits`` bound what the
    scan accepts (``irregular_series.limits``); folders in ``skip`` are not entered;
    ``progress(files_done, files_found)`` is called as the header scan goes; the splits into
    stacks in ``keep_together`` are not made.

    >>> analysis = analyze(["/data/skull_microct"])          # doctest: +SKIP
    >>> [(s.id, s.role, s.slice_count) for s in analysis.series[0].stacks]  # doctest: +SKIP
    """
    result = scan(paths, workers=workers, limits=limits, skip=skip, progress=progress)
    return analyze_slices(result.slices, result.excluded, tolerances, keep_together)


def _deduplicate(slices: Sequence[SliceHeader]) -> tuple[list[SliceHeader], list[Excluded]]:
    """The same SOP instance (and frame) found twice, e.g. a compressed copy: the first one found wins."""
    seen: dict[tuple[str, int], str] = {}
    kept, dropped = [], []
    for s in slices:
        key = (s.sop_instance_uid, s.frame)
        if s.sop_instance_uid and key in seen:
            dropped.append(
                Excluded(s.path, f"same SOP Instance UID as {seen[key]} (a copy of that image)",
                         s.frame if s.number_of_frames > 1 else None)
            )
            continue
        seen[key] = s.path
        kept.append(s)
    return kept, dropped


def _missing_geometry(s: SliceHeader) -> str:
    missing = [
        name
        for name, value in (
            ("ImagePositionPatient", s.position_lps_mm),
            ("ImageOrientationPatient", s.row_cosines),
            ("PixelSpacing", s.pixel_spacing_mm),
        )
        if value is None
    ]
    return f"no {', '.join(missing)}: the image cannot be placed in space"


def analyze_slices(
    slices: Sequence[SliceHeader],
    excluded: Sequence[Excluded] = (),
    tolerances: Tolerances = DEFAULT,
    keep_together: Collection[StackSplit] = (),
) -> Analysis:
    """Analysis of already-read headers (the Slicer plugin builds them from its database); the
    splits into stacks in ``keep_together`` are not made.

    Excluded files are reported with their series (``Excluded.series_instance_uid``, else the
    series of the file's other frames) when it has images, e.g. a Raw Data object stored in an
    Enhanced MR series; the others stay in ``Analysis.excluded``.
    """
    kept, duplicates = _deduplicate(slices)
    by_series: dict[str, list[SliceHeader]] = defaultdict(list)
    for s in kept:
        by_series[s.series_instance_uid].append(s)
    uid_of_path = {s.path: s.series_instance_uid for s in slices}
    series_excluded: dict[str, list[Excluded]] = defaultdict(list)
    loose: list[Excluded] = []
    for e in list(excluded) + duplicates:
        uid = e.series_instance_uid or uid_of_path.get(e.path)
        (series_excluded[uid] if uid in by_series else loose).append(e)

    series = []
    for uid, members in by_series.items():
        placed = [s for s in members if s.has_geometry]
        series_excluded[uid].extend(
            Excluded(s.path, _missing_geometry(s), s.frame if s.number_of_frames > 1 else None)
            for s in members
            if not s.has_geometry
        )
        stacks = group_series(placed, tolerances, keep_together) if placed else []
        volume_sets: dict[str, list[SliceHeader]] = defaultdict(list)
        for stack in stacks:
            if stack.volume_set:
                volume_sets[stack.volume_set].extend(stack.slices)
        for stack in stacks:
            stack.geometry = analyze_geometry(stack.slices, tolerances, volume_sets.get(stack.volume_set, ()))
        first = members[0]
        series.append(
            SeriesAnalysis(
                series_instance_uid=uid,
                series_number=first.series_number,
                series_description=first.series_description,
                modality=first.modality,
                stacks=stacks,
                excluded=series_excluded[uid],
            )
        )
    series.sort(key=lambda s: (s.series_number is None, s.series_number or 0, s.series_instance_uid))
    return Analysis(series=series, excluded=loose)
