"""The volumes of a volume series on one common grid, each verified like any volume.

The *common grid* is the grid of every position the series' volumes hold together (one slice per
position, from any of them: ``timeseries.common_positions``), at the spacing the options choose for
those positions: a time point that lost slices is resampled onto the same grid as the others, and
its missing slices follow the gap policy (interpolated or blank within that time point, never
across time); planes beyond its own ends are background (mask 0). A volume the split policies cut
into several parts cannot be one volume on the grid: it is left out of the series and converted
on its own, as without a series.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .decisions import Decision, DecisionKind, PolicyError
from .grid import OutputGrid, build_grid
from .grouping import count
from .options import ConvertOptions
from .pixels import load_pixels
from .planning import Part, override_positions, plan_stack
from .policies import PositionSource
from .spacing import SliceSpacing, choose_spacing
from .timeseries import SeriesAxis, VolumeSeries, common_positions
from .volume import Volume, build_volume


@dataclass
class VolumeSeriesPlan:
    """What building one volume series does: ``members`` (one part per volume on the grid, axis
    order) with their index ``values``; ``apart``: the parts of volumes the split policies cut,
    which are converted on their own; the common ``grid``, the ``spacing`` it was made with, and
    the series-level ``decisions`` (axis, grid, volumes left apart)."""

    series: VolumeSeries
    members: list[Part]
    values: tuple[float, ...]
    apart: list[Part]
    grid: OutputGrid
    spacing: SliceSpacing
    decisions: list[Decision] = field(default_factory=list)

    @property
    def axis(self) -> SeriesAxis:
        """The series' axis with the index values of the members on the grid."""
        return replace(self.series.axis, values=self.values)


def plan_volume_series(series: VolumeSeries, options: ConvertOptions) -> VolumeSeriesPlan:
    """The common grid and the part of every volume of ``series`` on it (see the module text); a
    plan of fewer than two members is no series (its volumes are converted on their own). Raises
    ``ValueError`` (``PolicyError``) when the options cannot apply to the series."""
    tol = options.tolerances
    reference = common_positions(series.stacks, tol)
    members, values, apart, decisions = [], [], [], []
    held = len(reference.slices)
    for stack, value in zip(series.stacks, series.axis.values):
        parts = plan_stack(stack, options)
        which = series.axis.value_text(value)
        if len(parts) > 1:
            note = Decision(DecisionKind.SERIES_APART,
                            f"{which} is not in the volume series: the policies make it {len(parts)} volumes, "
                            "which cannot be one volume on the series' common grid", values={"value": value})
            apart += [replace(p, decisions=p.decisions + [note]) for p in parts]
            decisions.append(note)
            continue
        (part,) = parts
        if options.positions == PositionSource.NOMINAL and len(part.slices) < held:
            raise PolicyError(f"{which} has {len(part.slices)} of the series' {held} positions: positions from the "
                              "nominal spacing would place its slices as if none were missing",
                              remedy=("positions", "dicom"))
        members.append(part)
        values.append(value)
    if options.positions == PositionSource.NOMINAL:
        slices, _ = override_positions(Part(reference, list(reference.slices), ""), tol)
    else:
        slices = reference.slices
    chosen = choose_spacing(reference, options.spacing, tol)
    grid = build_grid(slices, chosen.value_mm, options.tilt, tolerances=tol)
    k, j, i = grid.shape_kji
    decisions.insert(0, Decision(DecisionKind.SERIES_AXIS, series.axis.reason, values={"volumes": len(members)}))
    decisions.insert(1, Decision(
        DecisionKind.SERIES_GRID,
        f"common grid of the {count(held, 'position')} the volumes hold together: {i}x{j}x{k} voxels, slice "
        f"spacing {chosen.reason}; every volume is resampled onto it and verified on its own",
        values={"positions": held, "spacing_mm": chosen.value_mm}))
    return VolumeSeriesPlan(series, members, tuple(values), apart, grid, chosen, decisions)


@dataclass
class SeriesVolumes:
    """The built volumes of one series plan, each verified on the common grid; ``array_tkji`` and
    ``mask_tkji`` stack them (axis first), in one value type that holds every volume's values."""

    plan: VolumeSeriesPlan
    volumes: list[Volume]

    @property
    def dtype(self) -> np.dtype:
        return np.result_type(*(v.array.dtype for v in self.volumes))

    def array_tkji(self) -> np.ndarray:
        return np.stack([v.array.astype(self.dtype, copy=False) for v in self.volumes])

    def mask_tkji(self) -> np.ndarray | None:
        """1 where a voxel holds data; None when every voxel of every volume does."""
        if all(v.mask is None for v in self.volumes):
            return None
        return np.stack([np.ones(v.array.shape, np.uint8) if v.mask is None else v.mask for v in self.volumes])


def build_volume_series(plan: VolumeSeriesPlan, options: ConvertOptions,
                        pixels: Sequence[np.ndarray] | None = None) -> SeriesVolumes:
    """Every member of ``plan`` built on the common grid and verified (``build_volume``); ``pixels``:
    each member's slices in order (read from the files when not given). Raises what
    ``build_volume`` raises for the first volume that fails."""
    volumes = []
    for k, part in enumerate(plan.members):
        data = load_pixels(part.slices) if pixels is None else pixels[k]
        volume = build_volume(part, options, data, grid=plan.grid, chosen_spacing=plan.spacing)
        note = _coverage(volume, plan.series.axis.value_text(plan.values[k]))
        if note is not None:
            volume.part.decisions.append(note)
        volumes.append(volume)
    return SeriesVolumes(plan, volumes)


def _coverage(volume: Volume, which: str) -> Decision | None:
    """Planes of the common grid beyond the ends of this volume's own slices that no slice reaches."""
    blank = [p.blank for p in volume.planes]
    before = next((m for m, b in enumerate(blank) if not b), len(blank))
    after = next((m for m, b in enumerate(reversed(blank)) if not b), len(blank))
    if not before and not after:
        return None
    where = " and ".join(f"{n} plane(s) at its {end}" for n, end in ((before, "start"), (after, "end")) if n)
    return Decision(DecisionKind.SERIES_COVERAGE,
                    f"{which} lacks the series' positions there: {where} of the common grid are background, mask 0",
                    values={"planes_before": before, "planes_after": after})


def series_record(built: SeriesVolumes, volume_records: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``series`` entry of a volume series output in ``report.json``: its axis, its reasons,
    and one record per volume (``volume_records``, in axis order, each with its index value)."""
    plan = built.plan
    return {
        "axis": plan.axis.to_dict(),
        "label": plan.series.label,
        "reasons": list(plan.series.reasons),
        "volumes": [record | {"index_value": round(float(value), 6)}
                    for record, value in zip(volume_records, plan.values)],
        "apart": sorted({p.stack.id for p in plan.apart}),
    }
