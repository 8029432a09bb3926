"""An assembly candidate (``assembly.py``) to verified volumes: one stack of slices from several
series, under the same rules as stitched sections within one series.

Each station first goes through its own plan (its stitched sections merged, duplicate positions
dropped). Every slice is then mapped onto one in-plane lattice (``inplane.py``): a copy when the
series share their in-plane grid, an in-plane resampling otherwise (rounded into integer types, as
the resampler rounds); an output voxel made from a slice that does not reach it becomes background
with mask 0 rather than being filled from nothing. Where stations overlap, the overlap policy picks the slices:
``middle`` cuts each overlap at its middle, ``first``/``last`` give it to the earlier/later
station, ``blend`` builds the volume both ways on one grid and weights them linearly across the
overlap. The chosen slices form one stack whose gaps between stations follow the gap policy, and
it is resampled and verified like any other; verification is then repeated against every used
slice's own DICOM header, through both mappings. Intensity differences between stations are
measured in each overlap and reported, never corrected.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .assembly import AssemblyCandidate, JunctionKind, Station, find_candidates, requested_candidate
from .decisions import Decision, DecisionKind, Failure
from .geometry import analyze_geometry
from .inplane import SliceMapping, UnionLattice, slice_mapping, union_lattice
from .irregularities import Irregularity, IrregularityKind, StationGap
from .model import Analysis, SeriesAnalysis, SliceHeader, Stack
from .options import ConvertOptions
from .orientation import positions_along
from .pixels import load_pixels, output_dtype
from .planning import Part, plan_stack, slice_id
from .policies import GapPolicy, OverlapPolicy, PositionSource, SectionPolicy
from .resample import PlaneSource, SlicePlacement
from .spacing import SliceSpacing, choose_spacing
from .tolerances import Tolerances
from .verify import verify_placements
from .volume import VerificationError, Volume, build_volume

SliceId = tuple[str, int]

StationSlices = Sequence[tuple[list[SliceHeader], list[Decision]]]
"""Each station's slices after its own plan, with that plan's decisions (``_station_slices``)."""



@dataclass
class AssembledVolume:
    """One verified volume built from several series. ``series`` names it for file names and the
    report; ``record`` is its ``assembly`` entry in the report (sources, overlaps, slices used)."""

    candidate: AssemblyCandidate
    series: SeriesAnalysis
    volume: Volume
    record: dict[str, Any]


def assembly_groups(analysis: Analysis, options: ConvertOptions
                    ) -> tuple[list[AssemblyCandidate], list[AssemblyCandidate], list[Failure]]:
    """The candidates the analysis offers, the groups ``options.assemble`` asks to join, and why a
    named group cannot be joined (one sentence each)."""
    offered = find_candidates(analysis, options.tolerances)
    if options.assemble is True:
        return offered, offered, []
    if not options.assemble:
        return offered, [], []
    try:
        return offered, [requested_candidate(analysis, options.assemble, options.tolerances)], []
    except ValueError as err:
        return offered, [], [Failure(f"assembly of {', '.join(options.assemble)}",
                                     f"{err}; the series were converted one by one")]


def build_assembly(candidate: AssemblyCandidate, options: ConvertOptions,
                   load: Callable[[Sequence[SliceHeader], np.dtype], np.ndarray] | None = None,
                   ) -> list[AssembledVolume]:
    """The verified volumes (one, or one per run between gaps when the gap policy splits) of a
    candidate. Raises ``ValueError`` when the options cannot apply and ``VerificationError`` when
    a volume would misplace a slice; nothing is returned then. ``load`` reads pixels (default
    ``pixels.load_pixels``)."""
    plan = _plan(candidate, options)
    tol, normal, stations, extents, mappings = options.tolerances, plan.normal, plan.stations, plan.extents, plan.mappings
    canvas = _canvas(plan.originals, mappings, plan.lattice, output_dtype(plan.originals), load or _load)
    header_of = {slice_id(s): s for s in plan.originals}
    chosen = plan.spacing
    spacing_mm = chosen.value_mm
    spacing_decision = Decision(DecisionKind.SLICE_SPACING, f"slice spacing: {chosen.reason}", "spacing",
                                str(chosen.rule) if chosen.rule is not None else f"{spacing_mm:g}",
                                {"spacing_mm": spacing_mm, "source": chosen.source})
    fixed = replace(options, spacing=spacing_mm, sections=SectionPolicy.MERGE, positions=PositionSource.DICOM)
    built = []
    for stack in plan.stacks:
        parts = plan_stack(stack, fixed)
        built.append([build_volume(part, fixed, _part_pixels(part, canvas)) for part in parts])
    if len({len(v) for v in built}) != 1:
        raise ValueError("the overlap variants split into different numbers of volumes")

    intensity = _intensity_differences(candidate, stations, canvas, mappings, normal)
    common = _common_decisions(candidate, stations, extents, plan.selections[0] if len(plan.variants) == 1 else None,
                               options, plan.lattice, mappings, intensity)
    results = []
    for n, volumes in enumerate(zip(*built)):
        covered = [_coverage(v, mappings) for v in volumes]
        if len(volumes) == 1:
            volume, valid = volumes[0], covered[0]
        else:
            volume, valid = _blend(volumes, covered, candidate, extents, tol.position_mm)
        volume = _finish(volume, valid, header_of, mappings, options)
        decisions = list(common)
        # build_volume was given the spacing as a number, and says so; and a volume resampled in-plane
        # is not a copy even where the planes are.
        decisions += [spacing_decision if d.kind is DecisionKind.SLICE_SPACING else d for d in volume.part.decisions
                      if not (volume.interpolated and d.kind is DecisionKind.NO_INTERPOLATION)]
        volume = replace(volume, part=replace(volume.part, decisions=decisions))
        series = _pseudo_series(candidate, volume.part.stack)
        results.append(AssembledVolume(candidate, series, volume,
                                       _record(candidate, stations, volume, extents, intensity, mappings, normal)))
    return results


def assembly_spacing(candidate: AssemblyCandidate, options: ConvertOptions) -> SliceSpacing:
    """The slice spacing ``build_assembly`` gives the candidate's volumes under ``options`` (and
    why), from the headers alone: what an offer can state before any pixel is read."""
    return _plan(candidate, options).spacing


@dataclass
class _Plan:
    """What joining decides from the headers: each station's slices (after its own plan), the
    in-plane lattice and every slice's mapping onto it, the stations' extents along the normal,
    the slices each overlap variant selects, their stacks on the lattice, and the slice spacing."""

    normal: np.ndarray
    stations: list[tuple[list[SliceHeader], list[Decision]]]
    originals: list[SliceHeader]
    lattice: UnionLattice
    mappings: dict[SliceId, SliceMapping]
    extents: list[tuple[float, float]]
    variants: list[OverlapPolicy]
    selections: list[list[list[SliceHeader]]]
    stacks: list[Stack]
    spacing: SliceSpacing


def _plan(candidate: AssemblyCandidate, options: ConvertOptions) -> _Plan:
    if options.positions == "nominal":
        raise ValueError("positions replaced by the nominal spacing cannot place series relative to each other")
    tol = options.tolerances
    normal = np.asarray(candidate.normal, float)
    stations = [_station_slices(st, options) for st in candidate.stations]
    originals = [s for slices, _ in stations for s in slices]
    lattice = union_lattice(originals, options.in_plane_spacing_mm, tol.lattice_snap_mm)
    mappings = {slice_id(s): slice_mapping(s, lattice, options.interpolation, tol.lattice_snap_mm) for s in originals}
    extents = [(float(positions_along(sl, normal).min()), float(positions_along(sl, normal).max()))
               for sl, _ in stations]
    variants = [OverlapPolicy.FIRST, OverlapPolicy.LAST] if options.overlap == "blend" else [options.overlap]
    selections = [_select(stations, extents, normal, policy, tol.position_mm) for policy in variants]
    stacks = [_assembled_stack(candidate, [s for run in sel for s in run], lattice, extents, sel, tol)
              for sel in selections]
    return _Plan(normal, stations, originals, lattice, mappings, extents, variants, selections, stacks,
                 choose_spacing(stacks[0], options.spacing, tol))


# --- stations and slices -------------------------------------------------------------------


def _station_slices(station: Station, options: ConvertOptions) -> tuple[list[SliceHeader], list[Decision]]:
    """The station's slices after its own plan (sections merged, duplicates dropped), in spatial
    order, and that plan's decisions in the station's name."""
    own = replace(options, gaps=GapPolicy.INTERPOLATE, sections=SectionPolicy.MERGE, assemble=False)
    parts = plan_stack(station.stack, own)
    slices = [s for p in parts for s in p.slices]
    return slices, [replace(d, message=f"{station.name}: {d.message}") for p in parts for d in p.decisions]


def _load(slices: Sequence[SliceHeader], dtype: np.dtype) -> np.ndarray:
    return load_pixels(slices, dtype=dtype)


def _canvas(slices: Sequence[SliceHeader], mappings: dict[SliceId, SliceMapping], lattice: UnionLattice,
            dtype: np.dtype, load: Callable[[Sequence[SliceHeader], np.dtype], np.ndarray]) -> dict[SliceId, np.ndarray]:
    """Every slice's values on the lattice, in the sources' type (interpolated values rounded
    into integer types); 0 where a slice does not reach (``_coverage`` masks what that touches)."""
    by_size: dict[tuple[int, int], list[SliceHeader]] = defaultdict(list)
    for s in slices:
        by_size[(s.rows, s.columns)].append(s)
    canvas = {}
    for group in by_size.values():
        pixels = load(group, dtype)
        for s, image in zip(group, pixels):
            out = np.empty((lattice.rows, lattice.columns), dtype)
            mappings[slice_id(s)].apply(image, out, 0)
            canvas[slice_id(s)] = out
    return canvas


def _coverage(volume: Volume, mappings: dict[SliceId, SliceMapping]) -> np.ndarray:
    """(K, J, I) True where every slice a voxel is made of (weight not 0) reaches it, and the
    resampler's own mask (if any) says it holds data."""
    valid = np.ones(volume.array.shape, bool) if volume.mask is None else volume.mask.astype(bool)
    # Lattice slices land on the grid at whole-pixel offsets (0 for an untilted lattice stack).
    offsets = [(round(p.j0), round(p.i0)) for p in volume.placements]
    for m, plane in enumerate(volume.planes):
        for k, weight in zip(plane.slice_indices, plane.weights):
            if weight == 0:
                continue
            j_lo, j_hi, i_lo, i_hi = mappings[slice_id(volume.part.slices[k])].rect
            dj, di = offsets[k]
            reach = np.zeros(valid.shape[1:], bool)
            reach[max(j_lo + dj, 0):max(j_hi + dj, 0), max(i_lo + di, 0):max(i_hi + di, 0)] = True
            valid[m] &= reach
    return valid


def _part_pixels(part: Part, canvas: dict[SliceId, np.ndarray]) -> np.ndarray:
    return np.stack([canvas[slice_id(s)] for s in part.slices])


def _select(stations: StationSlices, extents: Sequence[tuple[float, float]],
            normal: np.ndarray, policy: OverlapPolicy, position_mm: float) -> list[list[SliceHeader]]:
    """The slices each station supplies under ``policy``: each keeps the positions within its
    bounds [lo, hi) along the normal."""
    bounds = _bounds(extents, policy, position_mm)
    chosen = []
    for (slices, _), (lo, hi) in zip(stations, bounds):
        z = positions_along(slices, normal)
        chosen.append([s for s, p in zip(slices, z) if lo <= p < hi])
    return chosen


def _bounds(extents: Sequence[tuple[float, float]], policy: OverlapPolicy,
            position_mm: float) -> list[tuple[float, float]]:
    bounds = [[-math.inf, math.inf] for _ in extents]
    for k, ((_, a_end), (b_start, _)) in enumerate(zip(extents, extents[1:])):
        if a_end < b_start - position_mm:
            continue  # abutting or a gap: nothing to cut
        if policy == "first":
            bounds[k + 1][0] = a_end + position_mm
        elif policy == "last":
            bounds[k][1] = b_start - position_mm
        else:
            cut = (a_end + b_start) / 2
            bounds[k][1], bounds[k + 1][0] = cut, cut
    return [(lo, hi) for lo, hi in bounds]


def _assembled_stack(candidate: AssemblyCandidate, slices: list[SliceHeader], lattice: UnionLattice,
                     extents: Sequence[tuple[float, float]], selection: Sequence[list[SliceHeader]],
                     tol: Tolerances) -> Stack:
    """The chosen slices as one stack on the lattice, with the gaps between stations marked."""
    order = np.argsort(positions_along(slices, lattice.normal), kind="stable")
    mapped = [lattice.header(slices[int(i)], rank + 1) for rank, i in enumerate(order)]
    geometry = analyze_geometry(mapped, tol)
    index_of = {slice_id(s): k for k, s in enumerate(mapped)}
    flagged = {i.after_index for i in geometry.irregularities if i.kind is IrregularityKind.MISSING_SLICES}
    for junction in candidate.junctions:
        step_mm = junction.step_mm  # (a gap is judged against a step: it has one)
        if junction.kind is not JunctionKind.GAP or step_mm is None or not selection[junction.index]:
            continue
        after = index_of[slice_id(selection[junction.index][-1])]
        if after in flagged:
            continue
        a, b = candidate.stations[junction.index], candidate.stations[junction.index + 1]
        gap = extents[junction.index + 1][0] - extents[junction.index][1]
        geometry.irregularities.append(Irregularity(
            IrregularityKind.STATION_GAP,
            f"gap of {gap:.2f} mm between {a.name} and {b.name} where the step is {step_mm:.2f} mm",
            after_index=after, details=StationGap(round(gap, 4), round(step_mm, 4))))
    return Stack("1", "volume", list(candidate.reasons), mapped, geometry)


# --- volumes -------------------------------------------------------------------------------


def _blend(volumes: Sequence[Volume], covered: Sequence[np.ndarray], candidate: AssemblyCandidate,
           extents: Sequence[tuple[float, float]], position_mm: float) -> tuple[Volume, np.ndarray]:
    """The ``first`` and ``last`` volumes (one grid) weighted linearly across each overlap: the
    earlier station's weight falls from 1 at the later station's first slice to 0 at its own last.
    Outside overlaps each plane comes from the variant whose slices are nearer (they agree there)."""
    first, last = volumes
    if first.grid.shape_kji != last.grid.shape_kji or not np.allclose(first.grid.index_to_lps, last.grid.index_to_lps):
        raise ValueError("blending needs both overlap variants on one grid, and they differ")
    n_planes = first.grid.shape_kji[0]
    z = first.grid.origin_lps @ np.asarray(candidate.normal) + np.arange(n_planes) * first.spacing_mm
    overlaps = [(b_start, a_end) for (_, a_end), (b_start, _) in zip(extents, extents[1:])
                if a_end >= b_start - position_mm]
    w_last = np.array([_later_weight(float(zm), overlaps, position_mm) for zm in z])
    a, b = first.array.astype(np.float64), last.array.astype(np.float64)
    valid_a, valid_b = covered
    w = np.broadcast_to(w_last[:, None, None], a.shape).copy()
    w[~valid_a] = 1.0  # where one variant has no data, the other alone
    w[~valid_b] = 0.0
    values = np.where(w >= 1.0, b, np.where(w <= 0.0, a, (1.0 - w) * a + w * b))
    if first.array.dtype.kind in "iu":
        info = np.iinfo(first.array.dtype)
        values = np.clip(np.rint(values), info.min, info.max)
    used = {slice_id(s): s for s in first.part.slices + last.part.slices}
    placements = {slice_id(s): p for v in volumes for s, p in zip(v.part.slices, v.placements)}
    slices = sorted(used.values(), key=lambda s: float(np.dot(s.pose.position_lps_mm, candidate.normal)))
    index = {slice_id(s): k for k, s in enumerate(slices)}
    planes = []
    for plane_first, plane_last, w_plane in zip(first.planes, last.planes, w_last):
        weights: dict[int, float] = defaultdict(float)
        for volume, plane, share in ((first, plane_first, 1.0 - w_plane), (last, plane_last, w_plane)):
            for i, weight in zip(plane.slice_indices, plane.weights):
                if share:
                    weights[index[slice_id(volume.part.slices[i])]] += share * weight
        planes.append(PlaneSource(plane_first.position_mm, tuple(weights), tuple(weights.values())))
    part = replace(first.part, slices=slices)
    blended = replace(first, part=part, array=values.astype(first.array.dtype), interpolated=True,
                      placements=tuple(placements[slice_id(s)] for s in slices), planes=planes)
    return blended, valid_a | valid_b


def _later_weight(z: float, overlaps: Sequence[tuple[float, float]], position_mm: float) -> float:
    """The later station's weight at ``z``: a linear ramp across each overlap (lo, hi); between
    overlaps, 0 or 1 for the nearer variant."""
    for k, (lo, hi) in enumerate(overlaps):
        if z < lo:
            return 0.0 if k == 0 or lo - z <= z - overlaps[k - 1][1] else 1.0
        if z <= hi:
            return 1.0 if hi - lo <= position_mm else (z - lo) / (hi - lo)
    return 1.0


def _finish(volume: Volume, valid: np.ndarray, header_of: dict[SliceId, SliceHeader],
            mappings: dict[SliceId, SliceMapping], options: ConvertOptions) -> Volume:
    """The background (mask 0) wherever a series does not reach, and the volume verified against
    every used slice's own header (through its in-plane mapping and the resampler's placement)."""
    array, mask, background, notes = volume.array, volume.mask, volume.background, []
    if not valid.all():
        if background is None:
            background = float(np.min(array[valid])) if valid.any() else 0.0
            notes.append(Decision(DecisionKind.BACKGROUND, f"background (voxels no series reaches, mask 0): "
                                  f"{background:g}, the lowest value in the data", "background", None,
                                  {"value": background}))
        array = array.copy()
        array[~valid] = background
        mask = valid.astype(np.uint8)
    originals = [header_of[slice_id(s)] for s in volume.part.slices]
    placements = [_compose(mappings[slice_id(s)], p, k) for k, (s, p) in enumerate(zip(originals, volume.placements))]
    tol = options.tolerances
    check = verify_placements(originals, placements, volume.grid, tol.verify_mm,
                              direction_tolerance_deg=tol.orientation_deg)
    if not check.ok:
        worst = originals[check.worst_slice]
        raise VerificationError(
            f"verification failed: {worst.label} would be {check.max_mm:.4f} mm from its DICOM position "
            f"(tolerance {tol.verify_mm} mm, directions off by up to {check.max_direction_deg:.3f}°); nothing written")
    copied = not volume.interpolated and all(mappings[slice_id(s)].copied for s in originals)
    part = replace(volume.part, slices=originals, decisions=list(volume.part.decisions) + notes)
    return replace(volume, part=part, array=array, mask=mask, background=background,
                   verification=check, dicom_error_mm=check.max_mm, interpolated=not copied,
                   placements=tuple(placements))


def _compose(mapping: SliceMapping, placed: SlicePlacement, index: int) -> SlicePlacement:
    """Where the source slice's own pixel lattice ended up: its in-plane mapping onto the lattice,
    then the resampler's placement of the lattice slice."""
    inner = mapping.placement
    return SlicePlacement(index, placed.i0 + inner.i0, placed.j0 + inner.j0, placed.k, inner.axis_i, inner.axis_j)


# --- words and records ---------------------------------------------------------------------


def _pseudo_series(candidate: AssemblyCandidate, stack: Stack) -> SeriesAnalysis:
    """A series record naming the assembled volume (file names, report titles)."""
    first = candidate.stations[0].series
    return SeriesAnalysis("+".join(candidate.series_uids), None, candidate.title, first.modality, [stack], [])


def _span(slices: Sequence[SliceHeader], normal: np.ndarray) -> str:
    if not slices:
        return "none"
    z = positions_along(slices, normal)
    return f"{z.min():.2f}–{z.max():.2f} mm"


def _common_decisions(candidate: AssemblyCandidate, stations: StationSlices, extents: Sequence[tuple[float, float]],
                      selection: Sequence[list[SliceHeader]] | None, options: ConvertOptions,
                      lattice: UnionLattice, mappings: dict[SliceId, SliceMapping],
                      intensity: list[dict[str, Any]]) -> list[Decision]:
    """What joining decided, for every volume of the candidate: what the series form, which slices
    each supplied, the in-plane lattice, tilt, gaps and intensity differences."""
    policy = OverlapPolicy(options.overlap)
    normal = np.asarray(candidate.normal, float)
    choice = ",".join(candidate.series_uids) if candidate.requested else None
    decisions = [Decision(DecisionKind.ASSEMBLED, f"{candidate.title}: " + "; ".join(candidate.reasons), "assemble",
                          choice, {"series": len(candidate.stations)})]
    for station, (slices, own), extent, k in zip(candidate.stations, stations, extents, range(len(stations))):
        decisions += own
        values: dict[str, float | int | str | None] = {"series_instance_uid": station.series.series_instance_uid,
                  "start_mm": round(extent[0], 4), "end_mm": round(extent[1], 4)}
        if selection is None:
            decisions.append(Decision(
                DecisionKind.STATION_USED, f"{station.name} ({extent[0]:.2f}–{extent[1]:.2f} mm, {len(slices)} "
                "slice(s)): weighted linearly across its overlaps", "overlap", policy.value, values))
        else:
            used = selection[k]
            decisions.append(Decision(
                DecisionKind.STATION_USED, f"{station.name} ({extent[0]:.2f}–{extent[1]:.2f} mm): used "
                f"{_span(used, normal)}, {len(used)} slice(s), {len(slices) - len(used)} left out in overlaps",
                "overlap", policy.value, values | {"used": len(used), "left_out": len(slices) - len(used)}))
    if any(j.kind is JunctionKind.OVERLAP for j in candidate.junctions):
        decisions.append(Decision(DecisionKind.OVERLAPS_RESOLVED, f"overlaps: {policy.help}", "overlap", policy.value))
    copied = sum(mappings[slice_id(s)].copied for sl, _ in stations for s in sl)
    total = sum(len(sl) for sl, _ in stations)
    if candidate.in_plane_grids_differ or copied < total:
        where = ("the finest pixel spacing among the series" if options.in_plane_spacing_mm is None
                 else "the requested pixel spacing")
        decisions.append(Decision(
            DecisionKind.IN_PLANE_LATTICE,
            f"in-plane: one lattice of {lattice.columns}x{lattice.rows} pixels of {lattice.step_i_mm:.4g}x"
            f"{lattice.step_j_mm:.4g} mm at {where}; {copied} of {total} slices copied onto it, the others "
            f"resampled in-plane ({options.interpolation}); pixels a series does not reach are masked out",
            "in_plane_spacing_mm", None if options.in_plane_spacing_mm is None else f"{options.in_plane_spacing_mm:g}",
            {"columns": lattice.columns, "rows": lattice.rows, "step_i_mm": lattice.step_i_mm,
             "step_j_mm": lattice.step_j_mm, "copied": int(copied), "slices": total}))
    tilted = [st for st in candidate.stations if st.stack.known_geometry.tilt_deg > options.tolerances.tilt_deg]
    if tilted:
        decisions.append(Decision(
            DecisionKind.TILT_REMOVED,
            "gantry tilt removed (" + ", ".join(f"{st.name} {st.stack.known_geometry.tilt_deg:.2f}°" for st in tilted)
            + "): every slice is placed on one lattice across the normal, so assembled volumes are always "
            "on an orthogonal grid", values={"tilt_deg": round(max(st.stack.known_geometry.tilt_deg for st in tilted), 4)}))
    for junction in candidate.junctions:
        if junction.kind is JunctionKind.GAP:
            a, b = candidate.stations[junction.index], candidate.stations[junction.index + 1]
            gaps = GapPolicy(options.gaps)
            decisions.append(Decision(DecisionKind.STATION_GAP, f"{junction.phrase} between {a.name} and {b.name}: "
                                      f"{gaps.help}", "gaps", gaps.value,
                                      {"gap_mm": round(junction.gap_mm, 4)}))
    decisions += [Decision(DecisionKind.INTENSITY_DIFFERENCE, d["sentence"],
                           values={"median_difference": d["median_difference"], "pixels": d["pixels"]})
                  for d in intensity]
    return decisions


def _intensity_differences(candidate: AssemblyCandidate, stations: StationSlices, canvas: dict[SliceId, np.ndarray],
                           mappings: dict[SliceId, SliceMapping], normal: np.ndarray) -> list[dict[str, Any]]:
    """Per overlap: the median of (later - earlier) over the pixels both cover, the earlier
    station interpolated linearly along the normal at each of the later station's slices."""
    found = []
    for junction in candidate.junctions:
        if junction.kind is not JunctionKind.OVERLAP:
            continue
        (a_slices, _), (b_slices, _) = stations[junction.index], stations[junction.index + 1]
        za, zb = positions_along(a_slices, normal), positions_along(b_slices, normal)
        differences = []
        for s, z in zip(b_slices, zb):
            if not za[0] <= z <= za[-1]:
                continue
            hi = min(int(np.searchsorted(za, z)), len(za) - 1)
            lo = max(hi - 1, 0)
            t = 0.0 if za[hi] == za[lo] else (z - za[lo]) / (za[hi] - za[lo])
            earlier = (1 - t) * canvas[slice_id(a_slices[lo])].astype(np.float64) + \
                t * canvas[slice_id(a_slices[hi])].astype(np.float64)
            d = canvas[slice_id(s)].astype(np.float64) - earlier
            rects = [mappings[slice_id(x)].rect for x in (s, a_slices[lo], a_slices[hi])]
            j_lo, i_lo = max(r[0] for r in rects), max(r[2] for r in rects)
            j_hi, i_hi = min(r[1] for r in rects), min(r[3] for r in rects)
            differences.append(d[j_lo:max(j_hi, j_lo), i_lo:max(i_hi, i_lo)].ravel())
        values = np.concatenate(differences) if differences else np.empty(0)
        a, b = candidate.stations[junction.index], candidate.stations[junction.index + 1]
        median = float(np.median(values)) if len(values) else None
        sentence = (f"intensity in the overlap of {a.name} and {b.name}: median difference "
                    f"{median:+.4g} ({b.name} minus {a.name}, {len(values)} pixels); not corrected"
                    if median is not None else
                    f"intensity in the overlap of {a.name} and {b.name}: no pixels both cover; not measured")
        found.append({"after_station": junction.index, "median_difference": median, "pixels": int(len(values)),
                      "sentence": sentence})
    return found


def _record(candidate: AssemblyCandidate, stations: StationSlices, volume: Volume, extents: Sequence[tuple[float, float]],
            intensity: list[dict[str, Any]], mappings: dict[SliceId, SliceMapping], normal: np.ndarray) -> dict[str, Any]:
    """The report's ``assembly`` entry of one output: every source's range and the slices used."""
    used = {slice_id(s) for s in volume.part.slices}
    sources = []
    for station, (slices, _), extent in zip(candidate.stations, stations, extents):
        mine = [s for s in slices if slice_id(s) in used]
        sources.append({
            "series_instance_uid": station.series.series_instance_uid,
            "series_number": station.series.series_number,
            "start_mm": round(extent[0], 4),
            "end_mm": round(extent[1], 4),
            "used_start_mm": round(float(positions_along(mine, normal).min()), 4) if mine else None,
            "used_end_mm": round(float(positions_along(mine, normal).max()), 4) if mine else None,
            "used_files": [s.label for s in mine],
            "left_out_files": [s.label for s in slices if slice_id(s) not in used],
            "copied_in_plane": all(mappings[slice_id(s)].copied for s in mine),
        })
    return {
        "series_instance_uids": list(candidate.series_uids),
        "requested": candidate.requested,
        "sources": sources,
        "junctions": [{"after_station": j.index, "kind": j.kind.value, "overlap_mm": round(j.overlap_mm, 4)}
                      for j in candidate.junctions],
        "intensity_differences": [{k: v for k, v in d.items() if k != "sentence"} for d in intensity],
    }
