"""Splitting one series into stacks, and deciding what each stack is.

A series is split, in this order, by image-type class, by orientation, by image size, by storage
(single-frame images, or the stacks of multi-frame objects), by collinearity (positions off the
stack line), by image kind (magnitude, phase, real, imaginary: never duplicates of each other) and
by repeated positions (time points, echoes). Every split adds one sentence to the reasons of each
part it makes, saying what the part is and what it was kept apart from. The volumes that the last
two splits make of one group form a *volume set*: each is named by what tells it apart
("phase echo 2"), and a slice one of them lacks is seen against the positions of the others. Roles
are then given on the whole series
at once, because what makes an image a localizer is mostly how it differs from the others: a
minority orientation, one or few images, a huge slice thickness, instance number 0 — ImageType
often just says OTHER or AXIAL.

The image-type, storage and collinearity splits can be undone (``StackSplit``, for a series one of
them parts wrongly): the group is then kept whole, with a reason saying what it was kept together
despite. The others cannot: what they part cannot be one volume.
"""

from __future__ import annotations

import itertools
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .model import Role, SliceHeader, Stack
from .mosaic import unpack_summary
from .orientation import format_cosines, normal_of, orientation_difference_deg, plane_name
from .policies import StackSplit
from .tolerances import DEFAULT, Tolerances

LOCALIZER_WORDS = ("LOCALIZER", "SCOUT", "SURVIEW", "TOPOGRAM", "REF_SURVIEW")
"""ImageType values that make an image a localizer."""

LOCALIZER_DESCRIPTION_WORDS = ("LOCALIZER", "LOCALISER", "SCOUT", "SURVEY", "SURVIEW", "TOPOGRAM", "PILOT")
"""SeriesDescription words that name a localizer. Only used for stacks that cannot be volumes (one
image, one position): a 3D volume may well be called "scout" (e.g. Siemens AutoAlign Scout)."""

SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"

_NOT_SLICES = ("localizer", "projection", "secondary capture")
"""Image-type classes that are never slices of a volume: kept apart even when image types are kept together."""


@dataclass
class Group:
    """Slices on their way to becoming a stack, with the reasons collected so far."""

    slices: list[SliceHeader]
    reasons: list[str] = field(default_factory=list)
    family: int = -1
    """Index of the group the kind and repeated-position splits started from (its volume set)."""
    names: list[str] = field(default_factory=list)
    """What the kind and repeated-position splits tell this group apart by ("phase", "echo number 2")."""

    @property
    def normal(self) -> np.ndarray:
        pose = self.slices[0].pose
        return normal_of(pose.row_cosines, pose.col_cosines)

    def positions(self) -> np.ndarray:
        """Positions along this group's normal (mm)."""
        ipp = np.array([s.position_lps_mm for s in self.slices], float)
        return ipp @ self.normal


def count(n: int, word: str) -> str:
    """"1 image", "3 images"."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# ---------------------------------------------------------------------------------------------
# Splits
# ---------------------------------------------------------------------------------------------


def image_class(s: SliceHeader) -> str:
    """The class a series is split by: ``localizer``, ``projection``, ``secondary capture``, or the
    first two ImageType values (ORIGINAL\\PRIMARY, DERIVED\\SECONDARY…)."""
    words = set(s.image_type)
    if words & set(LOCALIZER_WORDS):
        return "localizer"
    if "PROJECTION IMAGE" in words:
        return "projection"
    if s.sop_class_uid.startswith(SECONDARY_CAPTURE_PREFIX):
        return "secondary capture"
    return "\\".join(s.image_type[:2]) if s.image_type else "image"


def _image_type_label(slices: Sequence[SliceHeader]) -> str:
    """"with ImageType A\\B\\C", or the shared leading values when the images differ."""
    types = {s.image_type for s in slices}
    shared = []
    for values in zip(*types):
        if len(set(values)) > 1:
            break
        shared.append(values[0])
    if len(types) > 1:
        shared.append("…")
    return "with ImageType " + "\\".join(shared) if shared else "without ImageType"


def _orientation_label(slices: Sequence[SliceHeader]) -> str:
    pose = slices[0].pose
    return (f"in {plane_name(normal_of(pose.row_cosines, pose.col_cosines))} orientation "
            f"{format_cosines(pose.orientation)}")


def _size_key(s: SliceHeader) -> tuple[int, int, float, float]:
    """Matrix and pixel spacing; spacings equal to 0.1 µm are equal (decimal strings vary)."""
    step_i, step_j = s.pixel_steps_mm
    return s.rows, s.columns, round(step_j, 4), round(step_i, 4)


def _size_label(slices: Sequence[SliceHeader]) -> str:
    s = slices[0]
    di, dj = s.pixel_steps_mm
    return f"of {s.columns}x{s.rows} pixels of {di:g}x{dj:g} mm"


def _storage_key(s: SliceHeader) -> tuple[bool, str]:
    """Single-frame images (mosaic tiles among them) or frames of a multi-frame object, by StackID."""
    multiframe = s.number_of_frames > 1 and not s.mosaic_columns
    return multiframe, s.stack_id if multiframe else ""


def _storage_label(slices: Sequence[SliceHeader]) -> str:
    multiframe, stack_id = _storage_key(slices[0])
    if not multiframe:
        return "in single-frame (classic) files"
    return f"in multi-frame stack {stack_id} (StackID)" if stack_id else "in a multi-frame object without StackID"


def _kind_label(slices: Sequence[SliceHeader]) -> str:
    kind = slices[0].complex_component
    return f"of kind {kind.lower()}" if kind else "of no stated kind (magnitude, phase…)"


def _kept_apart(parts: Sequence[Sequence[SliceHeader]], labels: Sequence[str], k: int, total: int,
                criterion: str) -> str:
    """"20 images in axial orientation […], kept apart from 1 image in coronal orientation […]", for
    part ``k`` of ``parts`` (``labels`` describe them, ``total`` images in all). Beyond three others
    only their count is said, so the sentence of each part costs the same however many there are."""
    own = parts[k]
    if len(parts) <= 4:
        apart = " and ".join(f"{count(len(q), 'image')} {labels[j]}" for j, q in enumerate(parts) if j != k)
    else:
        apart = f"{count(total - len(own), 'image')} of {len(parts) - 1} other {criterion}s"
    return f"{count(len(own), 'image')} {labels[k]}, kept apart from {apart}"


def split_by(
    groups: list[Group],
    key: Callable[[SliceHeader], Hashable],
    label: Callable[[Sequence[SliceHeader]], str],
    criterion: str,
) -> list[Group]:
    """Split every group by ``key``; each part's reason says what it is and what it was kept apart
    from (``label`` describes a part, ``criterion`` names what differs when listing many)."""
    out: list[Group] = []
    for g in groups:
        parts: dict[Hashable, list[SliceHeader]] = defaultdict(list)
        for s in g.slices:
            parts[key(s)].append(s)
        out.extend(_parts_to_groups(g, list(parts.values()), label, criterion))
    return out


def _parts_to_groups(
    g: Group, parts: list[list[SliceHeader]], label: Callable[[Sequence[SliceHeader]], str], criterion: str
) -> list[Group]:
    if len(parts) == 1:
        return [g]
    labels = [label(p) for p in parts]
    total = sum(len(p) for p in parts)
    return [Group(part, g.reasons + [_kept_apart(parts, labels, k, total, criterion)], g.family, list(g.names))
            for k, part in enumerate(parts)]


def _slice_class(s: SliceHeader) -> str:
    """``image_class`` for the classes that are never slices of a volume, else one class for all."""
    kind = image_class(s)
    return kind if kind in _NOT_SLICES else "slices"


def kept_together(groups: list[Group], split: Callable[[list[Group]], list[Group]], despite: str) -> list[Group]:
    """``groups`` as they are where ``split`` would part them, each such group with a reason:
    "20 images kept in one stack despite different image types (2 groups), as chosen"."""
    out: list[Group] = []
    for g in groups:
        parts = split([g])
        if len(parts) > 1:
            g = Group(g.slices, g.reasons + [f"{count(len(g.slices), 'image')} kept in one stack despite {despite} "
                                             f"({len(parts)} groups), as chosen"], g.family, list(g.names))
        out.append(g)
    return out


def split_kind(groups: list[Group]) -> list[Group]:
    """Magnitude, phase, real and imaginary images apart: at one position they are different
    volumes, never duplicates. Each part is named by its kind."""
    out: list[Group] = []
    for g in groups:
        parts: dict[str, list[SliceHeader]] = defaultdict(list)
        for s in g.slices:
            parts[s.complex_component].append(s)
        split = _parts_to_groups(g, list(parts.values()), _kind_label, "image kind")
        if len(split) > 1:
            for part in split:
                part.names.append(part.slices[0].complex_component.lower() or "no stated kind")
        out.extend(split)
    return out


def cluster_orientations(slices: Sequence[SliceHeader], tolerance_deg: float) -> list[list[SliceHeader]]:
    """Greedy clustering: in the order given, a slice joins the first cluster whose first slice is
    within tolerance (both row and column directions; see ``orientation_difference_deg``), else it
    starts a new one.

    Near-linear in the number of slices, whatever the number of distinct orientations: equal
    orientations are clustered once, and each distinct one is compared only with the first slices
    found near it in ``_OrientationGrid``, which holds every one within tolerance.
    """
    cosines = np.array([s.pose.orientation for s in slices], dtype=np.float64).reshape(-1, 6)
    distinct, first_seen, which = np.unique(cosines, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first_seen, kind="stable")
    limit = float(np.cos(np.radians(tolerance_deg)))
    grid = _OrientationGrid(limit)
    seeds: list[np.ndarray] = []  # the first orientation of each cluster
    cluster_of = np.empty(len(distinct), int)
    for u in order:
        v = distinct[u]
        candidates = grid.near(v)
        if candidates:
            near = np.flatnonzero(_within(v, np.array([seeds[c] for c in candidates]), limit))
            if len(near):
                cluster_of[u] = candidates[near[0]]
                continue
        cluster_of[u] = len(seeds)
        grid.add(v, len(seeds))
        seeds.append(v)
    clusters: list[list[SliceHeader]] = [[] for _ in seeds]
    for s, u in zip(slices, np.ravel(which)):
        clusters[cluster_of[u]].append(s)
    return clusters


def _within(cosines: np.ndarray, seeds: np.ndarray, limit: float) -> np.ndarray:
    """Which ``seeds`` (rows of six cosines) are within tolerance of ``cosines``: row and column
    directions each at a cosine of at least ``limit`` (the tolerance's)."""
    return (seeds[:, :3] @ cosines[:3] >= limit) & (seeds[:, 3:] @ cosines[3:] >= limit)


class _OrientationGrid:
    """The first orientations of clusters, in cells of the six cosines.

    Two unit vectors at a cosine of at least ``limit`` are at most ``chord`` apart, so each of
    their coordinates differs by at most that much: a cell side of twice the chord means every
    orientation within tolerance of a query lies in the 1 or 2 cells each coordinate's interval of
    ± chord touches (at most 64 cells, 11 on average), and each cell holds a bounded number.
    ``near`` lists them in the order they were added.
    """

    _MARGIN = 1e-9
    """Added to the chord, so that rounding never leaves out an orientation just within tolerance."""

    def __init__(self, limit: float) -> None:
        self.reach = float(np.sqrt(max(0.0, 2.0 - 2.0 * limit))) + self._MARGIN
        self.side = 4.0 * self.reach
        self.cells: dict[tuple[int, ...], list[int]] = defaultdict(list)

    def add(self, cosines: np.ndarray, index: int) -> None:
        self.cells[tuple(np.floor(cosines / self.side).astype(int).tolist())].append(index)

    def near(self, cosines: np.ndarray) -> list[int]:
        low = np.floor((cosines - self.reach) / self.side).astype(int).tolist()
        high = np.floor((cosines + self.reach) / self.side).astype(int).tolist()
        found: list[int] = []
        for cell in itertools.product(*({a, b} for a, b in zip(low, high))):
            found.extend(self.cells.get(cell, ()))
        return sorted(found)


def split_orientation(groups: list[Group], tol: Tolerances) -> list[Group]:
    out: list[Group] = []
    for g in groups:
        clusters = cluster_orientations(g.slices, tol.orientation_deg)
        out.extend(_parts_to_groups(g, clusters, _orientation_label, "orientation"))
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
        blocks = labels.max() + 1
        centre = np.array([np.median(intercept[labels == k], axis=0) for k in range(blocks)])
        main = int(np.argmax(np.bincount(labels)))
        members = [[s for s, lab in zip(g.slices, labels) if lab == k] for k in range(blocks)]
        for k in range(blocks):
            if k == main:
                off = [f"{count(len(members[j]), 'image')} {_offset(centre[j], centre[main])}"
                       for j in range(blocks) if j != main]
                reason = f"{count(len(members[k]), 'image')} on the main stack line, kept apart from {' and '.join(off)}"
            else:
                reason = (f"{count(len(members[k]), 'image')} {_offset(centre[k], centre[main])} (a parallel offset "
                          f"block), kept apart from the {count(len(members[main]), 'image')} on the main stack line")
            out.append(Group(members[k], g.reasons + [reason]))
    return out


def _offset(centre: np.ndarray, main: np.ndarray) -> str:
    return f"on a parallel line {float(np.linalg.norm(centre - main)):.1f} mm off the main stack line"


def _cluster_points(points: np.ndarray, radius: float) -> np.ndarray:
    """Single-linkage clusters of 2D points within ``radius``; labels ordered by first appearance."""
    n = len(points)
    if n and np.linalg.norm(points - np.median(points, axis=0), axis=1).max() <= radius / 2:
        return np.zeros(n, int)  # the usual case, one line: every pair is within the radius
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


# ---------------------------------------------------------------------------------------------
# Repeated positions
# ---------------------------------------------------------------------------------------------

_REPEAT_KEYS: tuple[tuple[str, str, Callable[[SliceHeader], Hashable]], ...] = (
    # (what differs, unit, value); tried in this order
    ("time point", "", lambda s: s.temporal_position),
    ("echo number", "", lambda s: s.echo_number),
    ("echo time", " ms", lambda s: s.echo_time_ms),
    ("trigger time", " ms", lambda s: s.trigger_time_ms),
    ("acquisition number", "", lambda s: s.acquisition_number),
    ("file", "", lambda s: s.path),
)


def _repeats(slices: Sequence[SliceHeader], tol: Tolerances) -> np.ndarray:
    """How often each distinct position occurs."""
    return np.bincount(position_ids(Group(list(slices)).positions(), tol.position_mm))


def split_repeated_positions(groups: list[Group], tol: Tolerances) -> list[Group]:
    """Several volumes at the same positions (time points, echoes, magnitude/phase) become stacks.

    A tag is used when it parts the slices into groups of at least 2 with fewer repeats (several
    tags in turn when one is not enough, e.g. echo time then magnitude/phase); otherwise instance
    order is read as ``_split_by_order`` says. Anything else stays together and is reported as
    duplicates.
    """
    out: list[Group] = []
    for g in groups:
        counts = _repeats(g.slices, tol)
        if counts.max() <= 1 or np.mean(counts > 1) < tol.repeated_fraction:
            out.append(g)
            continue
        volumes = _split_by_tags(g.slices, tol)
        if len(volumes) > 1:
            names = sorted({name for _, labels in volumes for name, _ in labels}, key=_key_rank)
            for members, labels in volumes:
                which = " and ".join(text for _, text in labels)
                reason = (f"{count(len(members), 'image')} with {which}: one of {len(volumes)} volumes at the same "
                          f"{count(len(counts), 'position')}, told apart by {' and '.join(names)}")
                out.append(Group(members, g.reasons + [reason], g.family, g.names + [text for _, text in labels]))
            continue
        by_order = _split_by_order(g.slices, tol)
        if by_order is None:
            out.append(g)
            continue
        for k, members in enumerate(by_order):
            reason = (f"volume {k + 1} of {len(by_order)} at the same {count(len(counts), 'position')}, told apart "
                      "by instance order only (no time, echo or other tag differs)")
            out.append(Group(members, g.reasons + [reason], g.family, g.names + [f"volume {k + 1}"]))
    return out


def _key_rank(name: str) -> int:
    return [key[0] for key in _REPEAT_KEYS].index(name)


def _split_by_tags(
    slices: list[SliceHeader], tol: Tolerances
) -> list[tuple[list[SliceHeader], list[tuple[str, str]]]]:
    """Volumes told apart by tags, each with the (tag, "tag value") labels that define it."""
    repeats = _repeats(slices, tol).max()
    if repeats <= 1:
        return [(slices, [])]
    for name, unit, key in _REPEAT_KEYS:
        parts: dict[Hashable, list[SliceHeader]] = defaultdict(list)
        for s in slices:
            parts[key(s)].append(s)
        if len(parts) < 2 or min(len(p) for p in parts.values()) < 2:
            continue
        if max(_repeats(p, tol).max() for p in parts.values()) >= repeats:
            continue
        volumes: list[tuple[list[SliceHeader], list[tuple[str, str]]]] = []
        for value, members in sorted(parts.items(), key=lambda kv: _sortable(kv[0])):
            if isinstance(value, float):
                text = f"{name} {value:g}{unit}"
            else:  # a file by its name: the folder says nothing about what the volume is
                text = f"{name} {os.path.basename(str(value)) if name == 'file' else value}"
            volumes.extend((sub, [(name, text)] + labels) for sub, labels in _split_by_tags(members, tol))
        return volumes
    return [(slices, [])]


def _split_by_order(slices: list[SliceHeader], tol: Tolerances) -> list[list[SliceHeader]] | None:
    """Volumes from instance order alone, or ``None`` when it does not tell them apart.

    Volume after volume (time-major numbering): a new volume starts wherever a position comes back
    within the current one; read so when that gives exactly as many volumes as the most frequent
    position has occurrences, each of at least 2 slices, so a volume that lacks a slice keeps the
    others. Position after position (all occurrences of one position, then the next): volume k is
    the k-th occurrence of every position, which needs every position to occur equally often.
    """
    ids = position_ids(Group(slices).positions(), tol.position_mm)
    counts = np.bincount(ids)
    if len(counts) < 2:
        return None
    order = sorted(range(len(slices)), key=lambda i: _instance_order(slices[i]))
    runs: list[list[int]] = [[]]
    in_run: set[int] = set()
    for i in order:
        if ids[i] in in_run:
            runs.append([])
            in_run.clear()
        runs[-1].append(i)
        in_run.add(ids[i])
    if len(runs) == counts.max() and min(len(run) for run in runs) >= 2:
        return [[slices[i] for i in run] for run in runs]
    if counts.min() != counts.max():
        return None
    seen: Counter[int] = Counter()
    volumes: list[list[SliceHeader]] = [[] for _ in range(int(counts[0]))]
    for i in order:
        volumes[seen[ids[i]]].append(slices[i])
        seen[ids[i]] += 1
    return volumes


def _sortable(value: Hashable) -> tuple[bool, str, Hashable]:
    return (value is None, str(type(value)), value if value is not None else 0)


def _instance_order(s: SliceHeader) -> tuple[bool, int, str, int]:
    return (s.instance_number is None, s.instance_number or 0, s.path, s.frame)


# ---------------------------------------------------------------------------------------------
# Roles
# ---------------------------------------------------------------------------------------------


def _distinct_positions(g: Group, tol: Tolerances) -> int:
    return int(position_ids(g.positions(), tol.position_mm).max()) + 1


def _localizer_evidence(g: Group, main: Group, main_step: float | None, tol: Tolerances) -> list[str]:
    """Signs, other than ImageType, that a small group is a localizer."""
    evidence: list[str] = []
    if any(s.instance_number == 0 for s in g.slices):
        evidence.append("instance number 0")
    thickness = [s.slice_thickness_mm for s in g.slices if s.slice_thickness_mm]
    if thickness and main_step and max(thickness) > tol.thick_slice_factor * main_step:
        evidence.append(f"slice thickness {max(thickness):g} mm against a {main_step:.3g} mm step")
    m0, s0 = main.slices[0], g.slices[0]
    if (s0.rows, s0.columns) != (m0.rows, m0.columns):
        evidence.append(f"{s0.columns}x{s0.rows} pixels against {m0.columns}x{m0.rows}")
    return evidence


def assign_roles(
    groups: list[Group], tol: Tolerances, series_description: str = ""
) -> list[tuple[Group, Role, list[str]]]:
    """Role and role reasons for every group of one series."""
    result: list[tuple[Group, Role, list[str]]] = []
    candidates: list[Group] = []
    for g in groups:
        kind = image_class(g.slices[0])
        if kind == "localizer":
            word = next(w for w in g.slices[0].image_type if w in LOCALIZER_WORDS)
            result.append((g, "localizer", [f"localizer: ImageType says {word}"]))
        elif kind == "projection":
            result.append((g, "other", ["other: projection images (ImageType PROJECTION IMAGE), not slices of a volume"]))
        elif kind == "secondary capture":
            result.append((g, "other", ["other: Secondary Capture images, pictures rather than slices of a volume"]))
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

    if _is_multi_plane_localizer(by_size, orientations, tol):
        why = (f"localizer: a multi-plane localizer, {len(orientations)} orientations of at most "
               f"{count(len(main.slices), 'image')} each, none dominant")
        return result + [(g, "localizer", [why]) for g in candidates]

    for g in candidates:
        if g is main:
            result.append((g, *_volume_or_other(g, tol, series_description)))
            continue
        other_orientation = orientation_difference_deg(g.slices[0], main.slices[0]) > tol.orientation_deg
        minority = len(g.slices) <= max(2, tol.minority_fraction * len(main.slices)) and len(main.slices) >= 5
        evidence = _localizer_evidence(g, main, main_step, tol)
        if minority and other_orientation:
            beside = (f"{count(len(g.slices), plane_name(g.normal) + ' image')} beside "
                      f"{count(len(main.slices), plane_name(main.normal) + ' image')}")
            result.append((g, "localizer", ["localizer: " + "; ".join([beside] + evidence)]))
        elif minority and evidence:
            apart = f"{count(len(g.slices), 'image')} apart from the {len(main.slices)} of the main stack"
            result.append((g, "localizer", ["localizer: " + "; ".join([apart] + evidence)]))
        else:
            result.append((g, *_volume_or_other(g, tol, series_description)))
    return result


def _is_multi_plane_localizer(by_size: list[Group], orientations: list[list[SliceHeader]], tol: Tolerances) -> bool:
    if len(orientations) < 3 or len(by_size[0].slices) > tol.three_plane_max_slices:
        return False
    sizes = [len(g.slices) for g in by_size]
    return sizes[0] <= 2 * sizes[1]


def _volume_or_other(g: Group, tol: Tolerances, series_description: str) -> tuple[Role, list[str]]:
    positions = _distinct_positions(g, tol)
    if len(g.slices) == 1:
        why = "a single image, not a volume"
    elif positions == 1:
        why = f"all {len(g.slices)} images at one position, not a volume"
    else:
        return "volume", [f"volume: {count(len(g.slices), 'image')} at {positions} distinct positions along the normal"]
    named = next((w for w in LOCALIZER_DESCRIPTION_WORDS if w in series_description.upper()), None)
    if named:
        return "localizer", [f"localizer: {why}, in a series described as {series_description!r}"]
    return "other", [f"other: {why}"]


# ---------------------------------------------------------------------------------------------
# Whole series
# ---------------------------------------------------------------------------------------------


def group_series(
    slices: Sequence[SliceHeader], tol: Tolerances = DEFAULT, keep_together: Collection[StackSplit] = ()
) -> list[Stack]:
    """Stacks of one series (slices must carry geometry), volumes first, slices in spatial order;
    the splits in ``keep_together`` are not made."""

    def by_image_type(groups: list[Group]) -> list[Group]:
        return split_by(groups, image_class, _image_type_label, "image type")

    def by_storage(groups: list[Group]) -> list[Group]:
        return split_by(groups, _storage_key, _storage_label, "storage")

    def by_line(groups: list[Group]) -> list[Group]:
        return split_collinear(groups, tol)

    groups = [Group(list(slices))]
    if StackSplit.IMAGE_TYPE in keep_together:
        groups = kept_together(split_by(groups, _slice_class, _image_type_label, "image type"), by_image_type,
                               "different image types")
    else:
        groups = by_image_type(groups)
    groups = split_orientation(groups, tol)
    groups = split_by(groups, _size_key, _size_label, "image size")
    groups = kept_together(groups, by_storage, "different storage") if StackSplit.STORAGE in keep_together \
        else by_storage(groups)
    groups = kept_together(groups, by_line, "positions on different lines") if StackSplit.LINE in keep_together \
        else by_line(groups)
    for family, g in enumerate(groups):
        g.family = family
    groups = split_kind(groups)
    groups = split_repeated_positions(groups, tol)
    description = next((s.series_description for s in slices if s.series_description), "")
    roles = assign_roles(groups, tol, description)
    rank = {"volume": 0, "localizer": 1, "other": 2}
    roles.sort(key=lambda item: (rank[item[1]], -len(item[0].slices)))
    members = Counter(g.family for g, _, _ in roles)
    set_ids: dict[int, str] = {}
    stacks = []
    for number, (g, role, why) in enumerate(roles, start=1):
        positions = g.positions()
        # Ties (repeated positions) in instance order, so that file names never matter.
        order = sorted(range(len(g.slices)), key=lambda i: (positions[i], _instance_order(g.slices[i])))
        ordered = [g.slices[i] for i in order]
        mosaic = unpack_summary(ordered)
        reasons = ([mosaic] if mosaic else []) + (g.reasons or ["all images of the series form one stack"]) + why
        in_set = members[g.family] > 1 and bool(g.names)
        stacks.append(Stack(id=str(number), role=role, reasons=reasons, slices=ordered,
                            name=" ".join(g.names) if in_set else "",
                            volume_set=set_ids.setdefault(g.family, str(number)) if in_set else ""))
    return stacks
