"""Splitting one series into stacks, and deciding what each stack is.

A series is split, in this order, by image-type class, by orientation, by image size, by multi-frame
stack, by collinearity (positions off the stack line) and by repeated positions (time points,
echoes, magnitude/phase). Every split appends a sentence to the reasons of the parts it makes.
Roles are then given on the whole series at once, because what makes an image a localizer is
mostly how it differs from the others: a minority orientation, one or few images, a huge slice
thickness, instance number 0 — ImageType often just says OTHER or AXIAL.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .model import Role, SliceHeader, Stack
from .orientation import format_cosines, normal_of, orientation_difference_deg, plane_name
from .tolerances import DEFAULT, Tolerances

LOCALIZER_WORDS = ("LOCALIZER", "SCOUT", "SURVIEW", "TOPOGRAM", "REF_SURVIEW")
SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"

THREE_PLANE_MAX_SLICES = 16
"""A series of 3 or more orientations, none with more than this many images and none dominant, is
read as a multi-plane localizer (GE's 3-plane localizer has 7 images per plane)."""

MINORITY_FRACTION = 0.1
"""An orientation group with at most this fraction of the dominant group's images (or at most 2
images) is a minority: a localizer candidate."""

THICK_SLICE_FACTOR = 5.0
"""Slice thickness above this multiple of the dominant stack's step is localizer evidence (CT
scouts carry thicknesses of hundreds of mm)."""


@dataclass
class Group:
    """Slices on their way to becoming a stack, with the reasons collected so far."""

    slices: list[SliceHeader]
    reasons: list[str] = field(default_factory=list)

    @property
    def normal(self) -> np.ndarray:
        return normal_of(self.slices[0].row_cosines, self.slices[0].col_cosines)

    def positions(self) -> np.ndarray:
        """Positions along this group's normal (mm)."""
        ipp = np.array([s.position_lps_mm for s in self.slices], float)
        return ipp @ self.normal


def image_class(s: SliceHeader) -> tuple[str, str]:
    """(class, plain description) from ImageType and SOP class."""
    words = set(s.image_type)
    if any(w in words for w in LOCALIZER_WORDS):
        return "localizer", "ImageType " + "\\".join(s.image_type)
    if "PROJECTION IMAGE" in words:
        return "projection", "ImageType " + "\\".join(s.image_type)
    if s.sop_class_uid.startswith(SECONDARY_CAPTURE_PREFIX):
        return "secondary capture", "Secondary Capture SOP class"
    kind = "\\".join(s.image_type[:2]) if s.image_type else "image"
    return kind, f"ImageType {kind}"


def split_by(
    groups: list[Group], key: Callable[[SliceHeader], Hashable], describe: Callable[[Hashable, int], str]
) -> list[Group]:
    """Split every group by ``key``; parts get ``describe(value, number_of_parts)`` as a reason."""
    out: list[Group] = []
    for g in groups:
        parts: dict[Hashable, list[SliceHeader]] = defaultdict(list)
        for s in g.slices:
            parts[key(s)].append(s)
        if len(parts) == 1:
            out.append(g)
            continue
        for value, slices in parts.items():
            out.append(Group(slices, g.reasons + [describe(value, len(parts))]))
    return out


def cluster_orientations(slices: Sequence[SliceHeader], tolerance_deg: float) -> list[list[SliceHeader]]:
    """Greedy clustering: a slice joins the first cluster whose first slice is within tolerance."""
    clusters: list[list[SliceHeader]] = []
    for s in slices:
        for c in clusters:
            if orientation_difference_deg(c[0], s) <= tolerance_deg:
                c.append(s)
                break
        else:
            clusters.append([s])
    return clusters


def split_orientation(groups: list[Group], tol: Tolerances) -> list[Group]:
    out: list[Group] = []
    for g in groups:
        clusters = cluster_orientations(g.slices, tol.orientation_deg)
        if len(clusters) == 1:
            out.append(g)
            continue
        for c in clusters:
            n = normal_of(c[0].row_cosines, c[0].col_cosines)
            out.append(
                Group(
                    c,
                    g.reasons
                    + [
                        f"orientation {plane_name(n)} {format_cosines(c[0].orientation)}: "
                        f"one of {len(clusters)} orientations in the series"
                    ],
                )
            )
    return out


def split_collinear(groups: list[Group], tol: Tolerances) -> list[Group]:
    """Split parallel blocks whose IPPs lie on different lines (offset blocks, table-move stacks).

    In-plane IPP coordinates of one stack are a linear function of the position along the normal
    (constant, or drifting with gantry tilt). The drift rate is taken robustly from consecutive
    slices; the intercepts that remain then cluster by block.
    """
    out: list[Group] = []
    for g in groups:
        if len(g.slices) < 2:
            out.append(g)
            continue
        s0 = g.slices[0]
        ipp = np.array([s.position_lps_mm for s in g.slices], float)
        inplane = np.stack([ipp @ np.asarray(s0.row_cosines), ipp @ np.asarray(s0.col_cosines)], axis=1)
        d = ipp @ g.normal
        order = np.argsort(d, kind="stable")
        dd = np.diff(d[order])
        du = np.diff(inplane[order], axis=0)
        moving = dd > max(tol.position_mm, 1e-6)
        slope = np.median(du[moving] / dd[moving, None], axis=0) if moving.any() else np.zeros(2)
        intercept = inplane - d[:, None] * slope
        labels = _cluster_points(intercept, tol.collinear_mm)
        if labels.max() == 0:
            out.append(g)
            continue
        centre = np.array([np.median(intercept[labels == k], axis=0) for k in range(labels.max() + 1)])
        main = int(np.argmax(np.bincount(labels)))
        for k in range(labels.max() + 1):
            offset = float(np.linalg.norm(centre[k] - centre[main]))
            members = [s for s, lab in zip(g.slices, labels) if lab == k]
            note = (
                "on the main stack line"
                if k == main
                else f"{len(members)} image(s) {offset:.1f} mm off the main stack line (a parallel offset block)"
            )
            out.append(Group(members, g.reasons + [f"positions not collinear: {note}"]))
    return out


def _cluster_points(points: np.ndarray, radius: float) -> np.ndarray:
    """Single-linkage clusters of 2D points within ``radius``; labels ordered by first appearance."""
    n = len(points)
    labels = -np.ones(n, int)
    current = 0
    for i in range(n):
        if labels[i] >= 0:
            continue
        labels[i] = current
        frontier = [i]
        while frontier:
            j = frontier.pop()
            near = np.where((labels < 0) & (np.linalg.norm(points - points[j], axis=1) <= radius))[0]
            labels[near] = current
            frontier.extend(near.tolist())
        current += 1
    return labels


def position_ids(d: np.ndarray, tolerance_mm: float) -> np.ndarray:
    """Integer id per position; positions closer than the tolerance share an id."""
    order = np.argsort(d, kind="stable")
    ids = np.empty(len(d), int)
    current = 0
    for rank, idx in enumerate(order):
        if rank and d[idx] - d[order[rank - 1]] > tolerance_mm:
            current += 1
        ids[idx] = current
    return ids


_REPEAT_KEYS: tuple[tuple[str, Callable[[SliceHeader], Hashable]], ...] = (
    ("TemporalPositionIdentifier", lambda s: s.temporal_position),
    ("EchoNumbers", lambda s: s.echo_number),
    ("EchoTime", lambda s: s.echo_time_ms),
    ("complex image component", lambda s: s.complex_component),
    ("TriggerTime", lambda s: s.trigger_time_ms),
    ("AcquisitionNumber", lambda s: s.acquisition_number),
    ("file", lambda s: s.path),
)


def _max_repeats(slices: Sequence[SliceHeader], tol: Tolerances) -> int:
    g = Group(list(slices))
    return int(np.bincount(position_ids(g.positions(), tol.position_mm)).max())


def split_repeated_positions(groups: list[Group], tol: Tolerances) -> list[Group]:
    """Several volumes at the same positions (time points, echoes, magnitude/phase) become stacks.

    A tag is used when it parts the slices into groups of at least 2 with fewer repeats; otherwise,
    when every position occurs exactly m times, the k-th occurrence (in instance order) of each
    position goes to volume k. Anything else stays together and is reported as duplicates.
    """
    out: list[Group] = []
    for g in groups:
        out.extend(_split_repeats(g, tol))
    return out


def _split_repeats(g: Group, tol: Tolerances) -> list[Group]:
    repeats = _max_repeats(g.slices, tol)
    if repeats <= 1:
        return [g]
    for name, key in _REPEAT_KEYS:
        parts: dict[Hashable, list[SliceHeader]] = defaultdict(list)
        for s in g.slices:
            parts[key(s)].append(s)
        if len(parts) < 2 or min(len(p) for p in parts.values()) < 2:
            continue
        if max(_max_repeats(p, tol) for p in parts.values()) >= repeats:
            continue
        out: list[Group] = []
        for value, members in sorted(parts.items(), key=lambda kv: _sortable(kv[0])):
            label = f"{name} {value}" if name != "file" else f"file {value}"
            reason = f"repeated positions: volume {label} (one of {len(parts)} told apart by {name})"
            out.extend(_split_repeats(Group(members, g.reasons + [reason]), tol))
        return out
    ids = position_ids(g.positions(), tol.position_mm)
    counts = np.bincount(ids)
    if len(counts) >= 2 and counts.min() == counts.max():
        order = sorted(range(len(g.slices)), key=lambda i: _instance_order(g.slices[i]))
        seen: Counter[int] = Counter()
        volumes: list[list[SliceHeader]] = [[] for _ in range(repeats)]
        for i in order:
            volumes[seen[ids[i]]].append(g.slices[i])
            seen[ids[i]] += 1
        return [
            Group(
                v,
                g.reasons
                + [
                    f"repeated positions: volume {k + 1} of {repeats}, each of {len(counts)} positions; "
                    "told apart by instance order (no time, echo or other tag differs)"
                ],
            )
            for k, v in enumerate(volumes)
        ]
    return [g]


def _sortable(value: Hashable) -> tuple:
    return (value is None, str(type(value)), value if value is not None else 0)


def _instance_order(s: SliceHeader) -> tuple:
    return (s.instance_number is None, s.instance_number or 0, s.path, s.frame)


# ---------------------------------------------------------------------------------------------
# Roles
# ---------------------------------------------------------------------------------------------


def _distinct_positions(g: Group, tol: Tolerances) -> int:
    return int(position_ids(g.positions(), tol.position_mm).max()) + 1


def _localizer_evidence(g: Group, main: Group, main_step: float | None) -> list[str]:
    """Signs, other than ImageType, that a small group is a localizer."""
    evidence: list[str] = []
    if any(s.instance_number == 0 for s in g.slices):
        evidence.append("instance number 0")
    thickness = [s.slice_thickness_mm for s in g.slices if s.slice_thickness_mm]
    if thickness and main_step and max(thickness) > THICK_SLICE_FACTOR * main_step:
        evidence.append(f"slice thickness {max(thickness):g} mm")
    m0, s0 = main.slices[0], g.slices[0]
    if (s0.rows, s0.columns) != (m0.rows, m0.columns):
        evidence.append(f"{s0.columns}x{s0.rows} pixels vs {m0.columns}x{m0.rows}")
    return evidence


def assign_roles(groups: list[Group], tol: Tolerances) -> list[tuple[Group, Role, list[str]]]:
    """Role and role reasons for every group of one series."""
    result: list[tuple[Group, Role, list[str]]] = []
    candidates: list[Group] = []
    for g in groups:
        kind, description = image_class(g.slices[0])
        if kind == "localizer":
            result.append((g, "localizer", [f"{description}"]))
        elif kind == "projection":
            result.append((g, "other", [f"{description}: projections, not slices of a volume"]))
        elif kind == "secondary capture":
            result.append((g, "other", [f"{description}: a picture, not slices of a volume"]))
        else:
            candidates.append(g)
    if not candidates:
        return result

    by_size = sorted(candidates, key=lambda g: len(g.slices), reverse=True)
    main = by_size[0]
    main_steps = np.diff(np.sort(main.positions()))
    main_steps = main_steps[main_steps > tol.position_mm]
    main_step = float(np.median(main_steps)) if len(main_steps) else None
    orientations = cluster_orientations([g.slices[0] for g in candidates], tol.orientation_deg)

    if _is_multi_plane_localizer(by_size, orientations):
        for g in candidates:
            result.append(
                (
                    g,
                    "localizer",
                    [
                        f"multi-plane localizer: {len(orientations)} orientations of at most "
                        f"{len(main.slices)} images each, none dominant"
                    ],
                )
            )
        return result

    for g in candidates:
        if g is main:
            result.append((g, *_volume_or_other(g, tol)))
            continue
        other_orientation = orientation_difference_deg(g.slices[0], main.slices[0]) > tol.orientation_deg
        minority = len(g.slices) <= max(2, MINORITY_FRACTION * len(main.slices)) and len(main.slices) >= 5
        evidence = _localizer_evidence(g, main, main_step)
        if minority and other_orientation:
            plane = plane_name(g.normal)
            why = [f"{len(g.slices)} {plane} image(s) beside {len(main.slices)} {plane_name(main.normal)} ones"]
            result.append((g, "localizer", why + evidence))
        elif minority and evidence:
            result.append((g, "localizer", [f"{len(g.slices)} image(s) apart from the main stack"] + evidence))
        else:
            result.append((g, *_volume_or_other(g, tol)))
    return result


def _is_multi_plane_localizer(by_size: list[Group], orientations: list[list[SliceHeader]]) -> bool:
    if len(orientations) < 3 or len(by_size[0].slices) > THREE_PLANE_MAX_SLICES:
        return False
    sizes = [len(g.slices) for g in by_size]
    return sizes[0] <= 2 * sizes[1]


def _volume_or_other(g: Group, tol: Tolerances) -> tuple[Role, list[str]]:
    if len(g.slices) == 1:
        return "other", ["a single image: not a volume"]
    if _distinct_positions(g, tol) == 1:
        return "other", [f"all {len(g.slices)} images at one position: not a volume"]
    return "volume", []


# ---------------------------------------------------------------------------------------------
# Whole series
# ---------------------------------------------------------------------------------------------


def group_series(slices: Sequence[SliceHeader], tol: Tolerances = DEFAULT) -> list[Stack]:
    """Stacks of one series (slices must carry geometry), volumes first, slices in spatial order."""
    groups = [Group(list(slices))]
    groups = split_by(groups, lambda s: image_class(s), lambda v, n: f"{v[1]}: one of {n} image-type classes")
    groups = split_orientation(groups, tol)
    groups = split_by(
        groups,
        lambda s: (s.rows, s.columns, s.pixel_spacing_mm),
        lambda v, n: f"{v[1]}x{v[0]} pixels of {v[2][0]:g}x{v[2][1]:g} mm: one of {n} image sizes",
    )
    groups = split_by(groups, lambda s: s.stack_id, lambda v, n: f"multi-frame StackID {v!r}: one of {n} stacks")
    groups = split_collinear(groups, tol)
    groups = split_repeated_positions(groups, tol)
    roles = assign_roles(groups, tol)
    rank = {"volume": 0, "localizer": 1, "other": 2}
    roles.sort(key=lambda item: (rank[item[1]], -len(item[0].slices)))
    stacks = []
    for number, (g, role, why) in enumerate(roles, start=1):
        order = np.argsort(g.positions(), kind="stable")
        ordered = [g.slices[i] for i in order]
        reasons = g.reasons + why or ["all images of the series form one stack"]
        stacks.append(Stack(id=str(number), role=role, reasons=reasons, slices=ordered))
    return stacks
