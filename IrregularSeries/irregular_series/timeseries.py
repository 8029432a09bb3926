"""Volume series: the volumes of one volume set along one axis (time, cardiac phase, echo), and
the positions their common grid is made for. Pure: headers only (``series_volumes`` builds them).

Grouping splits a stack with repeated positions into the volumes of a *volume set* (``grouping``):
the time points of an fMRI run, the phases of a cine, the echoes of a multi-echo scan, magnitude and
phase. Here the set's volumes of one image kind become a *volume series*, ordered along the one
header value that tells them apart; magnitude and phase never share a series (different
quantities), and where two values vary (echoes of a multi-echo time series) each echo gets its own
series along time.

The axis and its index values (``SeriesAxis``):

- time points (TemporalPositionIdentifier, repeated acquisitions, or instance order alone): time in
  seconds from the first volume: TemporalResolution times the temporal positions when the headers
  give it; else the acquisition times of the volumes (their earliest slice) when they increase; else
  RepetitionTime times the temporal positions (one volume per repetition, as in 2D multi-slice
  EPI); else the volume number, unitless, and the reason says the headers hold no timing;
- cardiac phases (TriggerTime): the trigger delay in ms;
- echoes: the echo time in ms, else the echo number.

The *common grid* of a series is made for every position its volumes hold together
(``common_positions``); ``series_volumes`` says how each volume is put on it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

import numpy as np

from .geometry import analyze_geometry
from .grouping import count, position_ids
from .model import SeriesAnalysis, SliceHeader, Stack
from .orientation import positions_along
from .tolerances import DEFAULT, Tolerances

EQUAL_STEP_RELATIVE = 0.01
"""Index steps that differ by at most this fraction of the mean step are equal: the axis then has
one step (what a NIfTI header's pixdim[4] can hold)."""


class AxisKind(str, Enum):
    """What the members of a volume series differ by."""

    TIME = "time"
    """Time points, cardiac phases, repeated acquisitions: the fourth axis of a 4D file."""
    ECHO = "echo"
    """Echoes of one acquisition: a sequence in Slicer, but one file each on disk (as dcm2niix and
    BIDS keep echoes, multi-echo time series as one 4D file per echo)."""

    def __str__(self) -> str:
        return str(self.value)


@dataclass(frozen=True)
class SeriesAxis:
    """The axis of a volume series: ``name`` ("time", "trigger time", "echo time", "echo number",
    "volume"), ``unit`` ("s", "ms" or ""), one ``values`` entry per member (increasing), and
    ``reason``: where the values come from, in words."""

    kind: AxisKind
    name: str
    unit: str
    values: tuple[float, ...]
    reason: str

    @property
    def step(self) -> float | None:
        """The step between consecutive values when they are equally spaced (within
        ``EQUAL_STEP_RELATIVE``), else ``None``."""
        steps = np.diff(self.values)
        if not len(steps):
            return None
        mean = float(steps.mean())
        return mean if np.abs(steps - mean).max() <= EQUAL_STEP_RELATIVE * abs(mean) else None

    def value_text(self, value: float) -> str:
        """"time 2 s", "echo time 7.001 ms", "volume 3"."""
        return f"{self.name} {value:g}" + (f" {self.unit}" if self.unit else "")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "name": self.name, "unit": self.unit,
                "values": [round(float(v), 6) for v in self.values], "step": self.step, "reason": self.reason}


@dataclass
class VolumeSeries:
    """Stacks of one volume set and image kind, in axis order, with the axis and why they form one
    series (``reasons``, for reports and tooltips). ``label``: what tells this series apart from
    others of its set ("" when it is the only one; e.g. "magnitude", "echo number 2")."""

    stacks: list[Stack]
    axis: SeriesAxis
    label: str
    reasons: list[str]

    @property
    def title(self) -> str:
        """"5 time points", "magnitude: 2 echoes"."""
        what = {"time": "time point", "trigger time": "cardiac phase", "echo time": "echo",
                "echo number": "echo", "volume": "volume"}.get(self.axis.name, self.axis.name)
        return (f"{self.label}: " if self.label else "") + count(len(self.stacks), what)


# ---------------------------------------------------------------------------------------------
# Finding the series of an analysed DICOM series
# ---------------------------------------------------------------------------------------------

_KEYS: tuple[tuple[str, AxisKind, Callable[[SliceHeader], Hashable]], ...] = (
    # (what differs, axis kind, value); the first that tells the volumes apart is the axis
    ("time point", AxisKind.TIME, lambda s: s.temporal_position),
    ("trigger time", AxisKind.TIME, lambda s: s.trigger_time_ms),
    ("acquisition number", AxisKind.TIME, lambda s: s.acquisition_number),
    ("echo time", AxisKind.ECHO, lambda s: s.echo_time_ms),
    ("echo number", AxisKind.ECHO, lambda s: s.echo_number),
)


def volume_series(series: SeriesAnalysis, tol: Tolerances = DEFAULT) -> list[VolumeSeries]:
    """Every volume series of ``series``: per volume set (``Stack.volume_set``) and image kind, the
    volume stacks along the first header value that tells them apart (see the module text); two
    or more volumes each."""
    sets: dict[tuple[str, str], list[Stack]] = defaultdict(list)
    for stack in series.stacks:
        if stack.volume_set and stack.role == "volume":
            sets[(stack.volume_set, stack.slices[0].complex_component)].append(stack)
    kinds_per_set = defaultdict(set)
    for set_id, kind in sets:
        kinds_per_set[set_id].add(kind)
    found = []
    for (set_id, kind), stacks in sets.items():
        if len(stacks) < 2:
            continue
        label = kind.lower() if len(kinds_per_set[set_id]) > 1 and kind else ""
        found += _series_of(stacks, label, tol)
    return found


def _constant(stack: Stack, key: Callable[[SliceHeader], Hashable]) -> Hashable:
    """The key's value when every slice of the stack has the same one, else None."""
    values = {key(s) for s in stack.slices}
    return values.pop() if len(values) == 1 else None


def _series_of(stacks: list[Stack], label: str, tol: Tolerances) -> list[VolumeSeries]:
    values = {name: [_constant(st, key) for st in stacks] for name, _, key in _KEYS}
    varying = [name for name, _, _ in _KEYS
               if None not in values[name] and len(set(values[name])) > 1]
    positions = len(set(int(i) for i in position_ids(
        positions_along([s for st in stacks for s in st.slices], _normal(stacks[0])), tol.position_mm)))
    for name, kind, _ in _KEYS:
        if name not in varying:
            continue
        # The other varying values (an echo of a multi-echo time series) make separate series.
        others = [other for other in varying if other != name and _KEYS_BY_NAME[other][1] != kind]
        groups: dict[tuple[Hashable, ...], list[int]] = defaultdict(list)
        for k in range(len(stacks)):
            groups[tuple(values[other][k] for other in others)].append(k)
        if any(len({values[name][k] for k in members}) < len(members) for members in groups.values()):
            continue  # this value repeats within a group: it does not order the volumes
        out = []
        for group_key, members in groups.items():
            if len(members) < 2:
                continue
            members.sort(key=lambda k: _sortable(values[name][k]))
            ordered = [stacks[k] for k in members]
            sub = " ".join(f"{other} {v:g}" if isinstance(v, float) else f"{other} {v}"
                           for other, v in zip(others, group_key))
            axis = _axis(name, kind, ordered, [values[name][k] for k in members])
            out.append(_described(ordered, axis, " ".join(w for w in (label, sub) if w), name, positions))
        return out
    ordered = sorted(stacks, key=lambda st: min(_instance_order(s) for s in st.slices))
    return [_described(ordered, _time_axis(ordered, list(range(1, len(ordered) + 1)), by_number=False),
                       label, "instance order", positions)]


_KEYS_BY_NAME = {name: (name, kind, key) for name, kind, key in _KEYS}


def _sortable(value: Hashable) -> float:
    """A header value the volumes are ordered by (an int or a float: ``_KEYS`` holds no other)."""
    assert isinstance(value, (int, float)), value
    return float(value)


def _normal(stack: Stack) -> tuple[float, float, float]:
    if stack.geometry is None:
        raise ValueError(f"stack {stack.id} has no geometry")
    return stack.geometry.normal


def _instance_order(s: SliceHeader) -> tuple[bool, int, str, int]:
    return (s.instance_number is None, s.instance_number or 0, s.path, s.frame)


def _described(stacks: list[Stack], axis: SeriesAxis, label: str, told_by: str, positions: int) -> VolumeSeries:
    values = ", ".join(f"{v:g}" for v in axis.values[:8]) + (", …" if len(axis.values) > 8 else "")
    what = {AxisKind.TIME: "times of one acquisition", AxisKind.ECHO: "echoes of one acquisition"}[axis.kind]
    reasons = [
        f"{count(len(stacks), 'volume')} at the same {count(positions, 'position')}, told apart by {told_by}: "
        f"{what}, {axis.name} {values}{' ' + axis.unit if axis.unit else ''}",
        axis.reason,
    ]
    return VolumeSeries(stacks, axis, label, reasons)


def _axis(name: str, kind: AxisKind, stacks: list[Stack], values: list[Any]) -> SeriesAxis:
    if name == "time point":
        return _time_axis(stacks, [int(v) for v in values], by_number=True)
    if name == "acquisition number":
        return _time_axis(stacks, [int(v) for v in values], by_number=False)
    if name == "trigger time":
        return SeriesAxis(kind, "trigger time", "ms", tuple(float(v) for v in values),
                          "index values: TriggerTime, the delay after the cardiac trigger (ms)")
    if name == "echo time":
        return SeriesAxis(kind, "echo time", "ms", tuple(float(v) for v in values), "index values: EchoTime (ms)")
    return SeriesAxis(kind, "echo number", "", tuple(float(v) for v in values), "index values: EchoNumbers")


def _time_axis(stacks: list[Stack], numbers: list[int], *, by_number: bool) -> SeriesAxis:
    """Time in seconds from the first volume (the module text says from which header values), or
    the volume numbers when the headers hold no timing. ``numbers``: temporal positions
    (``by_number``: RepetitionTime and TemporalResolution count in them) or volume ordinals."""
    steps = [n - numbers[0] for n in numbers]
    resolution = _shared(stacks, lambda s: s.temporal_resolution_ms)
    if by_number and resolution:
        return SeriesAxis(AxisKind.TIME, "time", "s", tuple(k * resolution / 1000 for k in steps),
                          f"time from TemporalResolution {resolution:g} ms per temporal position")
    earliest = [_earliest_seconds(st) for st in stacks]
    measured = [t for t in earliest if t is not None]
    if len(measured) == len(stacks) and all(b > a for a, b in zip(measured, measured[1:])):
        start = measured[0]
        return SeriesAxis(AxisKind.TIME, "time", "s", tuple(round(t - start, 6) for t in measured),
                          "time from the acquisition times of the volumes (their earliest slice)")
    repetition = _shared(stacks, lambda s: s.repetition_time_ms)
    if by_number and repetition:
        return SeriesAxis(AxisKind.TIME, "time", "s", tuple(k * repetition / 1000 for k in steps),
                          f"time from RepetitionTime {repetition:g} ms per temporal position (one volume per "
                          "repetition, as in 2D multi-slice imaging; the acquisition times do not tell the volumes apart)")
    return SeriesAxis(AxisKind.TIME, "volume", "", tuple(float(k + 1) for k in range(len(stacks))),
                      "index values: volume numbers (the headers hold no time that tells the volumes apart)")


def _shared(stacks: list[Stack], key: Callable[[SliceHeader], float | None]) -> float | None:
    values = {key(s) for st in stacks for s in st.slices}
    if len(values) != 1:
        return None
    value = values.pop()
    return value if value is not None and value > 0 and math.isfinite(value) else None


def _earliest_seconds(stack: Stack) -> float | None:
    """Seconds of the stack's earliest acquisition (AcquisitionTime, else the content time, which
    holds FrameAcquisitionDateTime for multi-frame images); None when a slice has none."""
    times = [dicom_seconds(s.acquisition_time or s.content_time) for s in stack.slices]
    return None if None in times else min(t for t in times if t is not None)


def dicom_seconds(text: str) -> float | None:
    """A DICOM TM ("HHMMSS.FFFFFF", also "HH:MM:SS") or DT ("YYYYMMDDHHMMSS.FFFFFF") value as
    seconds (of the day for TM, since 1970 for DT); None when it is not one."""
    text = text.strip().replace(":", "")
    whole, _, fraction = text.partition(".")
    if not whole.isdigit() or (fraction and not fraction.isdigit()):
        return None
    part = float(f"0.{fraction}") if fraction else 0.0
    try:
        if len(whole) >= 14:
            stamp = datetime.strptime(whole[:14], "%Y%m%d%H%M%S")
            return (stamp - datetime(1970, 1, 1)).total_seconds() + part
        if len(whole) >= 2 and len(whole) % 2 == 0 and len(whole) <= 6:
            hours, minutes, seconds = (int(whole[k:k + 2]) if k < len(whole) else 0 for k in (0, 2, 4))
            if hours < 24 and minutes < 60 and seconds < 61:
                return hours * 3600 + minutes * 60 + seconds + part
    except ValueError:
        return None
    return None


def common_positions(stacks: Sequence[Stack], tol: Tolerances = DEFAULT) -> Stack:
    """A stack of one slice per distinct position of ``stacks`` (the first volume's that has it),
    in spatial order, with its geometry: the positions the common grid is made for."""
    slices = [s for st in stacks for s in st.slices]
    normal = _normal(stacks[0])
    ids = position_ids(positions_along(slices, normal), tol.position_mm)
    first: dict[int, SliceHeader] = {}
    for s, i in zip(slices, ids):
        first.setdefault(int(i), s)
    chosen = [first[i] for i in sorted(first)]
    reference = Stack("+".join(st.id for st in stacks), "volume", [], chosen)
    reference.geometry = analyze_geometry(chosen, tol)
    return reference
