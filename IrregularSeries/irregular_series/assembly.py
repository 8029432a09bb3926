"""Several series that together make one volume: multi-station scans, a long specimen scanned in
parts, split fields of view, one series per slice.

Pure: headers and analyses only. ``find_candidates`` offers groups of series whose volume stacks
share a frame of reference, a study and a modality, have parallel slices, and follow each other
along the common normal (overlapping, abutting or with gaps); ``requested_candidate`` checks a
group the user names, which may also span frames of reference within one study. Nothing here
joins anything: ``joining.py`` does, when asked.

Each series contributes one *station*: its single volume stack. Stations follow each other when
each starts and ends further along the normal than the one before, so every overlap has a middle
to cut at; series that cover the same range (a T1 and a T2 of one region, a repeated scan) never
follow each other and are never offered.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

import numpy as np

from .geometry import steps_agree
from .model import Analysis, SeriesAnalysis, Stack, Vec3, as_vec3
from .orientation import normal_of, orientation_difference_deg, pixel_centre_range_mm, plane_name
from .tolerances import DEFAULT, Tolerances

MAX_OFFERED_OVERLAP = 0.5
"""Stations are offered for assembly only when each overlap is at most this fraction of the
shorter station's extent along the normal: series that share more are more likely two scans of
one region than the parts of one. A named group may overlap more."""


class JunctionKind(str, Enum):
    """How one station meets the next along the normal."""

    OVERLAP = "overlap"
    ABUT = "abut"
    GAP = "gap"


@dataclass(frozen=True, eq=False)
class Station:
    """One series' part of an assembly: its volume stack, and its extent along the assembly's
    normal (positions of its first and last slice, mm)."""

    series: SeriesAnalysis
    stack: Stack
    start_mm: float
    end_mm: float
    name: str = ""
    """How sentences name the series: "series 4"; with the end of its UID when the number is
    missing or not unique among the stations ("series 301 (UID …4411.2)")."""

    @property
    def grid_phrase(self) -> str:
        """In-plane grid in words: "320x256 pixels of 0.8x0.8 mm"."""
        first = self.stack.slices[0]
        step_i, step_j = first.pixel_steps_mm
        return f"{first.columns}x{first.rows} pixels of {step_i:.4g}x{step_j:.4g} mm"


@dataclass(frozen=True)
class Junction:
    """Where station ``index`` meets station ``index + 1``. ``overlap_mm`` is the first one's last
    position minus the second one's first position: positive for an overlap, zero or negative
    otherwise. ``step_mm`` is the slice step the junction is judged against (the stations' median
    step), ``None`` for stations of one slice each."""

    index: int
    kind: JunctionKind
    overlap_mm: float
    step_mm: float | None

    @property
    def phrase(self) -> str:
        if self.kind is JunctionKind.OVERLAP:
            return f"overlap {self.overlap_mm:.1f} mm"
        if self.kind is JunctionKind.GAP:
            return f"gap {self.gap_mm:.1f} mm"
        return "abutting"

    @property
    def gap_mm(self) -> float:
        """The space a gap leaves beyond one slice step (0 at other junctions)."""
        if self.kind is not JunctionKind.GAP or self.step_mm is None:  # a gap has a step: see ``_junction``
            return 0.0
        return -self.overlap_mm - self.step_mm


@dataclass(frozen=True, eq=False)
class AssemblyCandidate:
    """Series whose stations form one stack along ``normal``, in order along it, and why.

    ``requested``: the user named the series (rather than the analysis offering them).
    ``reasons``: sentences for the report, the first of which says what the stations form.
    """

    stations: tuple[Station, ...]
    junctions: tuple[Junction, ...]
    normal: Vec3
    requested: bool
    reasons: tuple[str, ...]

    @property
    def series_uids(self) -> tuple[str, ...]:
        return tuple(s.series.series_instance_uid for s in self.stations)

    @property
    def shares_frame_of_reference(self) -> bool:
        return _share_frame(self.stations)

    @property
    def layout(self) -> str:
        """The stations and how they meet, in words: "3 stations, overlaps 7.5 mm and 12.5 mm"."""
        return _layout(self.stations, self.junctions)

    @property
    def in_plane_grids_differ(self) -> bool:
        return len({s.grid_phrase for s in self.stations}) > 1

    @property
    def title(self) -> str:
        """A short name for outputs and loadables: "assembled from series 4, 5 and 6"."""
        return f"assembled from {_names(self.stations)}"


def find_candidates(analysis: Analysis, tol: Tolerances = DEFAULT) -> list[AssemblyCandidate]:
    """Every group of two or more series the analysis offers to assemble (see the module text).

    Series are considered when they hold exactly one volume stack (or one image and nothing
    else); their groups are the maximal
    runs, in order along the normal, of stations that follow each other with overlaps no larger
    than ``MAX_OFFERED_OVERLAP`` of the shorter station.
    """
    groups: dict[tuple[str, str, str], list[Station]] = defaultdict(list)
    for series in analysis.series:
        stack = _single_volume(series)
        if stack is None or not stack.slices[0].frame_of_reference_uid:
            continue
        first = stack.slices[0]
        groups[(first.study_instance_uid, first.frame_of_reference_uid, series.modality)].append(
            _station(series, stack, None))
    candidates = []
    for members in groups.values():
        for parallel in _parallel_groups(members, tol):
            for run in _runs(parallel, tol):
                candidates.append(_candidate(run, requested=False, tol=tol))
    candidates.sort(key=lambda c: [(s.series.series_number is None, s.series.series_number or 0)
                                   for s in c.stations])
    return candidates


def requested_candidate(analysis: Analysis, series_uids: Sequence[str],
                        tol: Tolerances = DEFAULT) -> AssemblyCandidate:
    """The assembly of exactly the named series (two or more SeriesInstanceUIDs), or
    ``ValueError`` saying why they cannot form one stack.

    The series must share a frame of reference, or else a study (positions are then taken as
    given, which is right only when the scanner kept one patient coordinate system); hold one
    volume stack each; have parallel slices; and follow each other along the normal.
    """
    uids = list(dict.fromkeys(u.strip() for u in series_uids if u.strip()))
    if len(uids) < 2:
        raise ValueError(f"assembly needs at least two series; got {len(uids)}")
    by_uid = {s.series_instance_uid: s for s in analysis.series}
    missing = [u for u in uids if u not in by_uid]
    if missing:
        raise ValueError(f"no series with SeriesInstanceUID {', '.join(missing)} among the files read")
    return series_candidate([by_uid[u] for u in uids], tol)


def series_candidate(series: Sequence[SeriesAnalysis], tol: Tolerances = DEFAULT) -> AssemblyCandidate:
    """The assembly of exactly these series (``requested_candidate``'s rules), or ``ValueError``
    saying why they cannot form one stack. Each must hold one volume stack (or one image)."""
    if len(series) < 2:
        raise ValueError(f"assembly needs at least two series; got {len(series)}")
    stations = []
    for one in series:
        stack = _single_volume(one)
        if stack is None:
            volumes = sum(s.role == "volume" for s in one.stacks)
            raise ValueError(f"series {one.series_instance_uid} holds {volumes} volume stacks, not one: "
                             "it cannot be one station")
        stations.append(_station(one, stack, None))
    first = stations[0].stack.slices[0]
    for station in stations[1:]:
        other = station.stack.slices[0]
        angle = orientation_difference_deg(first, other)
        if angle >= tol.orientation_deg:
            raise ValueError(f"{station.name} is not parallel to {stations[0].name} (orientations differ by "
                             f"{angle:.2f}°, tolerance {tol.orientation_deg}°): slices that are not parallel "
                             "never form one stack")
    studies = {s.stack.slices[0].study_instance_uid for s in stations}
    if not _share_frame(stations) and len(studies) > 1:
        raise ValueError("the series neither share a frame of reference nor a study: their positions are "
                         "not known to be in one patient coordinate system")
    normal = _normal(stations[0])
    stations = sorted((_station(s.series, s.stack, normal) for s in stations), key=lambda s: (s.start_mm, s.end_mm))
    for a, b in zip(stations, stations[1:]):
        why = _not_following(a, b, tol)
        if why:
            raise ValueError(why)
    candidate = _candidate(stations, requested=True, tol=tol)
    if not candidate.shares_frame_of_reference:
        note = ("their frames of reference differ or are missing: positions are taken as given, which is "
                "right only when the scanner kept one patient coordinate system for the whole study")
        candidate = AssemblyCandidate(candidate.stations, candidate.junctions, candidate.normal, True,
                                      candidate.reasons + (note,))
    return candidate


def candidate_to_dict(candidate: AssemblyCandidate) -> dict[str, Any]:
    """The JSON record of a candidate (``assembly_candidates`` in the report)."""
    return {
        "series_instance_uids": list(candidate.series_uids),
        "requested": candidate.requested,
        "normal": [round(v, 6) for v in candidate.normal],
        "stations": [
            {
                "series_instance_uid": s.series.series_instance_uid,
                "series_number": s.series.series_number,
                "stack": s.stack.id,
                "slice_count": s.stack.slice_count,
                "start_mm": round(s.start_mm, 4),
                "end_mm": round(s.end_mm, 4),
                "rows": s.stack.slices[0].rows,
                "columns": s.stack.slices[0].columns,
                "pixel_spacing_mm": list(s.stack.slices[0].pixel_spacing_mm or ()),
            }
            for s in candidate.stations
        ],
        "junctions": [
            {"after_station": j.index, "kind": j.kind.value, "overlap_mm": round(j.overlap_mm, 4),
             "step_mm": None if j.step_mm is None else round(j.step_mm, 4)}
            for j in candidate.junctions
        ],
        "reasons": list(candidate.reasons),
    }


def candidate_lines(candidate: AssemblyCandidate) -> list[str]:
    """The candidate in plain words: its reasons, then its series' UIDs."""
    return list(candidate.reasons) + [f"series UIDs: {','.join(candidate.series_uids)}"]


# ---------------------------------------------------------------------------------------------


def _single_volume(series: SeriesAnalysis) -> Stack | None:
    """The series' one volume stack; or its only image, when that is all it holds (a series of one
    slice is "other" on its own, but a station of a stack of such series)."""
    placed = [s for s in series.stacks if s.geometry is not None]
    volumes = [s for s in placed if s.role == "volume"]
    if len(volumes) == 1:
        return volumes[0]
    if not volumes and len(placed) == 1 and placed[0].role == "other" and placed[0].slice_count == 1:
        return placed[0]
    return None


def _normal(station: Station) -> np.ndarray:
    first = station.stack.slices[0].pose
    return normal_of(first.row_cosines, first.col_cosines)


def _station(series: SeriesAnalysis, stack: Stack, normal: np.ndarray | None) -> Station:
    """A station with its extent along ``normal`` (default: its own normal), named by its series
    number (``_named`` tells apart stations that share one)."""
    n = _normal(Station(series, stack, 0.0, 0.0)) if normal is None else normal
    positions = np.array([s.position_lps_mm for s in stack.slices], float) @ n
    number = series.series_number
    name = f"series {number}" if number is not None else f"series UID …{series.series_instance_uid[-8:]}"
    return Station(series, stack, float(positions.min()), float(positions.max()), name)


def _parallel_groups(stations: Sequence[Station], tol: Tolerances) -> Iterable[list[Station]]:
    """Stations split by orientation (each joins the first group whose first station it is parallel
    to), each group's extents measured along that first station's normal."""
    groups: list[list[Station]] = []
    for station in stations:
        for group in groups:
            if orientation_difference_deg(group[0].stack.slices[0], station.stack.slices[0]) < tol.orientation_deg:
                group.append(station)
                break
        else:
            groups.append([station])
    for group in groups:
        normal = _normal(group[0])
        yield [_station(s.series, s.stack, normal) for s in group]


def _runs(stations: Sequence[Station], tol: Tolerances) -> Iterable[list[Station]]:
    """Maximal runs of two or more stations (sorted along the normal) that follow each other and
    overlap little enough to be offered."""
    ordered = sorted(stations, key=lambda s: (s.start_mm, s.end_mm))
    run: list[Station] = []
    for station in ordered:
        if run and (_not_following(run[-1], station, tol) or not _offerable_overlap(run[-1], station)
                    or not _in_plane_overlap(run[-1], station)):
            if len(run) > 1:
                yield run
            run = []
        run.append(station)
    if len(run) > 1:
        yield run


def _not_following(a: Station, b: Station, tol: Tolerances) -> str:
    """Why ``b`` does not follow ``a`` along the normal ("" when it does)."""
    if b.start_mm > a.start_mm + tol.position_mm and b.end_mm > a.end_mm + tol.position_mm:
        return ""
    return (f"{a.name} ({a.start_mm:.2f}–{a.end_mm:.2f} mm) and {b.name} ({b.start_mm:.2f}–{b.end_mm:.2f} mm) "
            "do not follow each other along the normal (one covers the other's start or end), so there is "
            "no place to cut between them")


def _offerable_overlap(a: Station, b: Station) -> bool:
    overlap = a.end_mm - b.start_mm
    shorter = min(a.end_mm - a.start_mm, b.end_mm - b.start_mm)
    return overlap <= MAX_OFFERED_OVERLAP * shorter or overlap <= 0


def _in_plane_overlap(a: Station, b: Station) -> bool:
    """Whether the two stations' fields of view overlap across the normal (side-by-side fields
    are not one stack)."""
    first = a.stack.slices[0].pose
    for axis in (first.row_cosines, first.col_cosines):
        (a_lo, a_hi), (b_lo, b_hi) = (pixel_centre_range_mm(a.stack.slices, axis),
                                      pixel_centre_range_mm(b.stack.slices, axis))
        if min(a_hi, b_hi) < max(a_lo, b_lo):
            return False
    return True


def _median_step(station: Station) -> float | None:
    return station.stack.known_geometry.spacing.median


def _junction(index: int, a: Station, b: Station, tol: Tolerances) -> Junction:
    overlap = a.end_mm - b.start_mm
    steps = [s for s in (_median_step(a), _median_step(b)) if s is not None]
    step = float(np.median(steps)) if steps else None
    if overlap >= -tol.position_mm:
        # Slices at one position in both count as an overlap (of one plane): the cut resolves it.
        kind, overlap = JunctionKind.OVERLAP, max(overlap, 0.0)
    elif step is None or -overlap <= step or steps_agree(-overlap, step, tol):
        kind = JunctionKind.ABUT
    else:
        kind = JunctionKind.GAP
    return Junction(index, kind, float(overlap), step)


def _named(stations: Sequence[Station]) -> tuple[Station, ...]:
    numbers = [s.series.series_number for s in stations]
    unique = None not in numbers and len(set(numbers)) == len(numbers)
    named = []
    for s, number in zip(stations, numbers):
        tail = f"UID …{s.series.series_instance_uid[-8:]}"
        name = f"series {number}" if unique else f"series {number} ({tail})" if number is not None else f"series {tail}"
        named.append(replace(s, name=name))
    return tuple(named)


def _names(stations: Sequence[Station]) -> str:
    """ "series 4, 5 and 6"; the stations' full names when numbers cannot tell them apart."""
    if all(s.name == f"series {s.series.series_number}" for s in stations):
        words = [str(s.series.series_number) for s in stations]
        words[0] = "series " + words[0]
    else:
        words = [s.name for s in stations]
    return _and(words)


def _candidate(stations: Sequence[Station], *, requested: bool, tol: Tolerances) -> AssemblyCandidate:
    stations = _named(stations)
    junctions = tuple(_junction(k, a, b, tol) for k, (a, b) in enumerate(zip(stations, stations[1:])))
    normal = _normal(stations[0])
    plane = plane_name(normal)
    if all(s.stack.slice_count == 1 for s in stations):
        what = f"{len(stations)} series of one {plane} slice each line up into one stack along the normal"
    else:
        what = f"{_names(stations)} form one {plane} stack along the normal: {_layout(stations, junctions)}"
    reasons = [what]
    if _share_frame(stations):
        reasons.append("they share one frame of reference and have parallel slices")
    grids = [s.grid_phrase for s in stations]
    if len(set(grids)) > 1:
        reasons.append("their in-plane grids differ (" + "; ".join(f"{s.name}: {g}" for s, g in zip(stations, grids))
                       + "): the assembled volume covers them all at the finest pixel spacing")
    return AssemblyCandidate(stations, junctions, as_vec3(normal), requested, tuple(reasons))


def _layout(stations: Sequence[Station], junctions: Sequence[Junction]) -> str:
    """ "3 stations, overlaps 7.5 mm and 12.5 mm"; "12 stations of one slice each"."""
    if all(s.stack.slice_count == 1 for s in stations):
        return f"{len(stations)} stations of one slice each"
    phrases = [j.phrase for j in junctions]
    kinds = {j.kind for j in junctions}
    if len(kinds) == 1 and next(iter(kinds)) is not JunctionKind.ABUT:
        word = "overlaps" if JunctionKind.OVERLAP in kinds else "gaps"
        values = [p.split(" ", 1)[1] for p in phrases]
        detail = f"{word if len(values) > 1 else word[:-1]} " + _and(values)
    else:
        detail = ", ".join(phrases)
    return f"{len(stations)} stations, {detail}"


def _share_frame(stations: Sequence[Station]) -> bool:
    frames = {s.stack.slices[0].frame_of_reference_uid for s in stations}
    return len(frames) == 1 and "" not in frames


def _and(values: Sequence[str]) -> str:
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " and " + values[-1]
