"""Analysed stacks to verified regular volumes on disk, and ``report.json``.

Per series: ``plan_series`` plans every wanted stack (``planning``) and names its parts
(``plan_all`` adds one plan per group of series joined into one volume, ``joining``);
``convert_series`` builds and verifies each part (``volume``) and writes its files; ``report_bytes``
makes the report of them all. ``convert`` runs these over every series found (through ``archive``,
which may spread the series over processes). Nothing is written for a part whose verification
fails, and nothing already in the output folder is replaced without ``force``.

A stack or part that fails for a reason of its input (``STACK_ERRORS``) becomes a ``Failure`` and
the others go on; any other exception is a bug and propagates.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .assembly import AssemblyCandidate, find_candidates
from .decisions import Decision, DecisionKind, Failure, PolicyError
from .joining import assembly_groups, build_assembly
from .limits import LimitExceeded
from .messages import one_line
from .model import Analysis, Role, SeriesAnalysis, Stack, Vec3, as_vec3
from .naming import output_stem
from .options import ConvertOptions
from .outputs import output_path
from .parallel import Execution
from .pixels import PixelDecodeError
from .planning import Part, plan_stack
from .policies import OutputFormat
from .report import analysis_to_dict, json_text, series_title
from .runlog import LOG_NAME, RunLog, WrittenFile, content_digest, size_on_disk
from .series_volumes import SeriesVolumes, VolumeSeriesPlan, build_volume_series, plan_volume_series, series_record
from .timeseries import AxisKind, volume_series
from .volume import Resampled, VerificationError, Volume, build_volume, check_volume, resample_part
from .writers import SeriesAxisHeader, write_volume, write_volume_series

if TYPE_CHECKING:
    from .dicom_writer import DicomSeries

REPORT_NAME = "report.json"

STACK_ERRORS: tuple[type[Exception], ...] = (ValueError, VerificationError, PixelDecodeError, OSError)
"""What a stack's own input can make planning, building or writing its volume raise: a policy
that does not apply or a bad header value (``ValueError``), a volume that fails verification, pixel
data that cannot be decoded, a file that cannot be read or written (``OSError``, which includes
an output that already exists). These end that stack or part only; anything else propagates."""


@dataclass(frozen=True)
class OutputVolume:
    """One volume written by ``convert``. ``shape`` and ``spacing`` are (i, j, k); ``directions_lps``
    the unit i, j, k directions; ``max_error_vs_dicom_mm`` differs from ``max_position_error_mm``
    only when the positions were overridden. ``dicom_series``: what was written for DICOM output
    (``path`` is then its folder). ``to_dict()`` is its ``report.json`` entry."""

    path: Path
    mask_path: Path | None
    series_instance_uid: str
    stack: str
    role: Role
    source_files: tuple[str, ...]
    shape: tuple[int, int, int]
    dtype: str
    spacing: tuple[float, float, float]
    slice_spacing_mm: float
    origin_lps: tuple[float, float, float]
    directions_lps: tuple[Vec3, ...]
    index_to_lps: tuple[tuple[float, ...], ...]
    interpolated: bool
    background: float | None
    """The value of voxels no slice reaches (mask 0); None when every voxel holds data."""
    extrapolated_planes: tuple[dict[str, Any], ...]
    """Planes filled from one slice they lie outside of (``plane``, ``slice``, ``offset_mm``)."""
    content_check: dict[str, Any]
    """The content check's summary (see docs/report-schema.md)."""
    max_position_error_mm: float
    mean_position_error_mm: float
    max_error_vs_dicom_mm: float
    decisions: tuple[Decision, ...]
    dicom_series: DicomSeries | None = None
    assembly: dict[str, Any] | None = None
    """For a volume joined from several series: its sources, junctions and intensity differences
    (``joining.AssembledVolume.record``)."""
    series: dict[str, Any] | None = None
    """For a 4D file of a volume series: its axis and one record per volume (each with its own
    content check and verification; ``timeseries.series_record``). ``shape`` etc. are then those
    of each volume, ``content_check`` and the errors the worst of them."""

    @property
    def positions_overridden(self) -> bool:
        return self.max_error_vs_dicom_mm != self.max_position_error_mm

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "mask_path": str(self.mask_path) if self.mask_path else None,
            "series_instance_uid": self.series_instance_uid,
            "stack": self.stack,
            "role": self.role,
            "source_files": list(self.source_files),
            "shape": list(self.shape),
            "dtype": self.dtype,
            "spacing": list(self.spacing),
            "slice_spacing_mm": self.slice_spacing_mm,
            "origin_lps": list(self.origin_lps),
            "directions_lps": [list(d) for d in self.directions_lps],
            "index_to_lps": [list(row) for row in self.index_to_lps],
            "interpolated": self.interpolated,
            "background": self.background,
            "extrapolated_planes": [dict(p) for p in self.extrapolated_planes],
            "content_check": self.content_check,
            "max_position_error_mm": self.max_position_error_mm,
            "mean_position_error_mm": self.mean_position_error_mm,
            "max_error_vs_dicom_mm": self.max_error_vs_dicom_mm,
            "decisions": [d.to_dict() for d in self.decisions],
            "dicom_series": self.dicom_series.to_dict() if self.dicom_series else None,
        } | ({} if self.assembly is None else {"assembly": self.assembly}) | (
            {} if self.series is None else {"series": self.series})


@dataclass
class ConvertResult:
    analysis: Analysis
    outputs: list[OutputVolume]
    failures: list[Failure]
    report_path: Path
    resumed_series: list[str] = field(default_factory=list)
    """Series UIDs whose outputs were kept from an earlier run into the same folder."""

    @property
    def ok(self) -> bool:
        return not self.failures


def _wanted(stack: Stack, options: ConvertOptions) -> bool:
    return stack.role == "volume" or (options.include_localizers and stack.role == "localizer")


def _rounded(values: Iterable[float], digits: int) -> tuple[float, ...]:
    return tuple(round(float(v), digits) + 0.0 for v in values)  # + 0.0 turns -0.0 into 0.0


def _record(series: SeriesAnalysis, volume: Volume, path: Path, mask_path: Path | None,
            dicom_series: DicomSeries | None = None) -> OutputVolume:
    grid = volume.grid
    k, j, i = volume.array.shape
    si, sj, sk = _rounded(grid.spacing_mm, 6)
    ox, oy, oz = _rounded(grid.origin_lps, 6)
    return OutputVolume(
        path=path,
        mask_path=mask_path,
        series_instance_uid=series.series_instance_uid,
        stack=volume.part.stack.id,
        role=volume.part.stack.role,
        source_files=tuple(s.label for s in volume.part.slices),
        shape=(i, j, k),
        dtype=str(volume.array.dtype),
        spacing=(si, sj, sk),
        slice_spacing_mm=volume.spacing_mm,
        origin_lps=(ox, oy, oz),
        directions_lps=tuple(as_vec3(_rounded(column, 8)) for column in grid.directions.T),
        index_to_lps=tuple(tuple(float(v) for v in row) for row in grid.index_to_lps),
        interpolated=volume.interpolated,
        background=volume.background,
        extrapolated_planes=tuple(volume.extrapolated),
        content_check=volume.content.summary(),
        max_position_error_mm=round(volume.verification.max_mm, 6),
        mean_position_error_mm=round(volume.verification.mean_mm, 6),
        max_error_vs_dicom_mm=round(volume.dicom_error_mm, 6),
        decisions=tuple(volume.part.decisions),
        dicom_series=dicom_series,
    )


def _replacing(target: Path, options: ConvertOptions, replaceable: frozenset[str]) -> bool:
    """Whether writing ``target`` replaces what is there: with ``force``, or when it is one of the
    ``replaceable`` names (files this tool wrote from the same sources and options, the log
    proves); ``FileExistsError`` when something else is there."""
    if options.force or target.name in replaceable:
        return True
    if os.path.lexists(target):
        raise FileExistsError(f"{target} already exists; not overwriting it")
    return False


@dataclass(frozen=True)
class _Files:
    """Where a volume (and its mask) went, and the ``content_digest`` of each file as it was written."""

    path: Path
    mask_path: Path | None
    digests: dict[Path, str]


def _write(volume: Volume | Resampled, outdir: Path, stem: str, options: ConvertOptions,
           replaceable: frozenset[str], before_rename: Callable[[], object] | None = None) -> _Files:
    """Write the volume and its mask (when asked for, or under the blank gap policy when some voxel
    is background); neither when either name is taken. ``before_rename``: see ``atomic_write``."""
    suffix = OutputFormat(options.format).suffix
    path = output_path(outdir, stem, suffix)
    mask_path = None
    if options.mask or (volume.mask is not None and options.gaps == "blank"):
        mask_path = output_path(outdir, stem + "_mask", suffix)
    replacing = [_replacing(target, options, replaceable) for target in (path, mask_path) if target is not None]
    digests = {path: write_volume(path, volume.array, volume.grid.index_to_lps, force=replacing[0],
                                  before_rename=before_rename)}
    if mask_path is not None:
        mask = volume.mask if volume.mask is not None else np.ones(volume.array.shape, np.uint8)
        digests[mask_path] = write_volume(mask_path, mask, volume.grid.index_to_lps, force=replacing[1],
                                          before_rename=before_rename)
    return _Files(path, mask_path, digests)


def _build_and_write(part: Part, outdir: Path, stem: str, options: ConvertOptions,
                     replaceable: frozenset[str]) -> tuple[Volume, _Files]:
    """Build ``part``'s volume and write it. The content check, which needs the CPU, runs on a thread
    while the files are written, which mostly waits for the disk; they take their names only once
    it has passed. A failed check is the error raised, whatever else went wrong beside it."""
    resampled = resample_part(part, options)
    with ThreadPoolExecutor(1) as pool:
        checked = pool.submit(check_volume, resampled, options)
        try:
            files = _write(resampled, outdir, stem, options, replaceable, before_rename=checked.result)
        except BaseException:
            checked.result()
            raise
        return checked.result(), files


def _write_series(built: SeriesVolumes, outdir: Path, stem: str, options: ConvertOptions,
                  replaceable: frozenset[str]) -> _Files:
    """Write a volume series as one 4D file (and its 4D mask, as ``_write`` decides for volumes)."""
    suffix = OutputFormat(options.format).suffix
    path = output_path(outdir, stem, suffix)
    found = built.mask_tkji()
    mask_path = output_path(outdir, stem + "_mask", suffix) if options.mask or (
        found is not None and options.gaps == "blank") else None
    replacing = [_replacing(target, options, replaceable) for target in (path, mask_path) if target is not None]
    axis = built.plan.axis
    header = SeriesAxisHeader(axis.name, axis.unit, axis.values, axis.step or _mean_step(axis.values))
    matrix = built.plan.grid.index_to_lps
    digests = {path: write_volume_series(path, built.array_tkji(), matrix, header, force=replacing[0])}
    if mask_path is not None:
        mask = np.ones((len(built.volumes),) + built.plan.grid.shape_kji, np.uint8) if found is None else found
        digests[mask_path] = write_volume_series(mask_path, mask, matrix, header, force=replacing[1])
    return _Files(path, mask_path, digests)


def _mean_step(values: tuple[float, ...]) -> float:
    return float(np.diff(values).mean())


def _series_output(series: SeriesAnalysis, built: SeriesVolumes, path: Path, mask_path: Path | None) -> OutputVolume:
    """The ``report.json`` entry of a 4D file: the first volume's grid fields, the worst checks,
    the series-level decisions, and one record per volume."""
    records = [_record(series, v, path, mask_path) for v in built.volumes]
    members = [{"stack": r.stack, "source_files": list(r.source_files), "dtype": r.dtype, "interpolated": r.interpolated,
                "background": r.background, "extrapolated_planes": [dict(p) for p in r.extrapolated_planes],
                "content_check": r.content_check, "max_position_error_mm": r.max_position_error_mm,
                "mean_position_error_mm": r.mean_position_error_mm, "max_error_vs_dicom_mm": r.max_error_vs_dicom_mm,
                "decisions": [d.to_dict() for d in r.decisions]} for r in records]
    worst = max(records, key=lambda r: (not r.content_check.get("ok", True), r.max_position_error_mm))
    backgrounds = {r.background for r in records}
    axis = built.plan.axis
    decisions = list(built.plan.decisions)
    if axis.step is None and len(axis.values) > 1:
        decisions.append(Decision(DecisionKind.SERIES_AXIS,
                                  f"the {axis.name} values are not equally spaced: a NIfTI header's one step "
                                  f"(pixdim[4]) is their mean, {_mean_step(axis.values):g} {axis.unit}; the NRRD "
                                  "axis and this report list every value", values={"mean_step": _mean_step(axis.values)}))
    return replace(
        records[0],
        stack=",".join(r.stack for r in records),
        source_files=tuple(f for r in records for f in r.source_files),
        dtype=str(built.dtype),
        interpolated=any(r.interpolated for r in records),
        background=backgrounds.pop() if len(backgrounds) == 1 else None,
        extrapolated_planes=(),
        content_check=worst.content_check,
        max_position_error_mm=max(r.max_position_error_mm for r in records),
        mean_position_error_mm=round(float(np.mean([r.mean_position_error_mm for r in records])), 6),
        max_error_vs_dicom_mm=max(r.max_error_vs_dicom_mm for r in records),
        decisions=tuple(decisions),
        series=series_record(built, members),
    )


def _write_dicom(volume: Volume, series: SeriesAnalysis, outdir: Path, stem: str, options: ConvertOptions,
                 n: int, replaceable: frozenset[str]) -> DicomSeries:
    """The volume as the ``n``-th DICOM series derived from ``series`` in this run, in the folder
    ``outdir/stem``; background voxels (the mask's zeros) are the series' PixelPaddingValue, so no
    mask is written beside it."""
    from .dicom_writer import derived_series_number, write_dicom_series  # pydicom's writer: DICOM output only

    folder = output_path(outdir, stem, "")
    if _replacing(folder, options, replaceable) and not options.force:
        options = replace(options, force=True)
    label = f" {volume.part.label}" if volume.part.label else ""
    description = f"{series.series_description or series.modality} regular {volume.spacing_mm:g} mm{label}"
    return write_dicom_series(volume, folder, options, series_number=derived_series_number(series.series_number, n),
                              series_description=description)


def _failure(subject: str, error: Exception, tail: str = "") -> Failure:
    remedy = error.remedy if isinstance(error, PolicyError) else None
    if isinstance(error, FileExistsError):
        remedy = ("force", None)
    elif isinstance(error, LimitExceeded):
        remedy = ("limits", error.limit)
    return Failure(subject, one_line(error) + tail, remedy)


@dataclass(frozen=True)
class PlannedPart:
    """One output volume to build, named before any is built, so that names (and the report) do
    not depend on which part finishes first or in which process."""

    part: Part
    stem: str
    name: str


@dataclass(frozen=True)
class PlannedSeries:
    """A volume series to build and write as one 4D file, named before any is built."""

    plan: VolumeSeriesPlan
    stem: str
    name: str


@dataclass
class SeriesPlan:
    """What converting one series does: its parts, and the failures of planning, in stack order."""

    series: SeriesAnalysis
    steps: list[PlannedPart | PlannedSeries | Failure]
    assembly: AssemblyCandidate | None = None
    """Set for the plan of series joined into one volume (``series`` then names the group, and
    its stacks are the stations): converting it builds the assembly, named ``assembly_stem``."""
    assembly_stem: str = ""
    fingerprint: str = ""
    """What the series' outputs are made from (``runlog.fingerprint``), set by a conversion that
    logs them: each file written is then logged with it as soon as it is in place."""

    @property
    def parts(self) -> list[PlannedPart]:
        return [step for step in self.steps if isinstance(step, PlannedPart)]

    @property
    def stems(self) -> list[str]:
        """The stem of every output the plan writes (volumes and 4D files)."""
        return [step.stem for step in self.steps if not isinstance(step, Failure)]

    @property
    def largest_voxels(self) -> int:
        """The input voxels of its largest output (a 4D file counts all its volumes)."""
        sizes = [len(p.part.slices) * p.part.slices[0].rows * p.part.slices[0].columns for p in self.parts
                 if p.part.slices]
        sizes += [sum(len(m.slices) * m.slices[0].rows * m.slices[0].columns for m in s.plan.members)
                  for s in self.steps if isinstance(s, PlannedSeries)]
        return max(sizes, default=0)


def plan_all(analysis: Analysis, options: ConvertOptions) -> list[SeriesPlan]:
    """One plan per series, in report order, then one per group of series ``options.assemble``
    joins (those series' volume stacks are left out of their own plans), and one holding the
    failure of a named group that cannot be joined."""
    _, groups, failures = assembly_groups(analysis, options)
    joined = {uid for group in groups for uid in group.series_uids}
    used: set[str] = set()
    plans = [plan_series(series, options, used, volumes=series.series_instance_uid not in joined)
             for series in analysis.series]
    for group in groups:
        series = SeriesAnalysis("+".join(group.series_uids), None, group.title,
                                group.stations[0].series.modality, [st.stack for st in group.stations], [])
        stem = output_stem(series, Stack("1", "volume", [], []), Part(group.stations[0].stack, [], ""), used)
        plans.append(SeriesPlan(series, [], group, stem))
    named = options.assemble if isinstance(options.assemble, tuple) else ()  # the only groups that can fail
    for failure in failures:
        plans.append(SeriesPlan(SeriesAnalysis("assembly:" + ",".join(named), None, "assembly", "", [], []),
                                [failure]))
    return plans


@dataclass
class SeriesOutcome:
    """The outputs written for one series and its failures, in the order of its plan, and every
    file (or DICOM folder) written, with its size and digest."""

    outputs: list[OutputVolume]
    failures: list[Failure]
    written: list[WrittenFile] = field(default_factory=list)

    def report_entries(self) -> tuple[list[dict[str, Any]], list[str]]:
        """Its ``outputs`` and ``failures`` entries in ``report.json``."""
        return [o.to_dict() for o in self.outputs], [str(f) for f in self.failures]


def plan_series(series: SeriesAnalysis, options: ConvertOptions, used: set[str], *,
                volumes: bool = True) -> SeriesPlan:
    """The parts of every wanted stack of ``series``, each with its output stem (``used``: the stems
    taken so far in this run, updated); without its volume stacks when ``volumes`` is false (they
    are joined with other series')."""
    steps: list[PlannedPart | PlannedSeries | Failure] = []
    in_series: set[str] = set()
    if options.four_d and volumes:
        for found in volume_series(series, options.tolerances):
            if found.axis.kind != AxisKind.TIME:
                continue  # echoes stay one file each (see ``timeseries``)
            ids = "-".join(st.id for st in found.stacks) if len(found.stacks) <= 3 else \
                f"{found.stacks[0].id}-{found.stacks[-1].id}"
            title = f"{series_title(series)} {found.title} (stacks {', '.join(st.id for st in found.stacks)})"
            try:
                plan = plan_volume_series(found, options)
            except STACK_ERRORS as err:
                in_series |= {st.id for st in found.stacks}
                steps.append(_failure(title, err, "; nothing written"))
                continue
            if len(plan.members) < 2:
                continue  # no two volumes share the grid: each is converted on its own
            in_series |= {st.id for st in found.stacks}
            label = f"{found.label}_4d" if found.label else "4d"
            steps.append(PlannedSeries(plan, output_stem(series, Stack(ids, "volume", [], []), Part(found.stacks[0], [], label),
                                                         used), title))
            for part in plan.apart:
                name = f"{series_title(series)} stack {part.stack.id} {part.label}"
                steps.append(PlannedPart(part, output_stem(series, part.stack, part, used), name))
    for stack in series.stacks:
        if not _wanted(stack, options) or (not volumes and stack.role == "volume") or stack.id in in_series:
            continue
        title = f"{series_title(series)} stack {stack.id}"
        try:
            parts = plan_stack(stack, options)
        except STACK_ERRORS as err:
            steps.append(_failure(title, err, "; nothing written"))
            continue
        for part in parts:
            name = f"{title}{' ' + part.label if part.label else ''}"
            steps.append(PlannedPart(part, output_stem(series, stack, part, used), name))
    return SeriesPlan(series, steps)


def convert_series(plan: SeriesPlan, outdir: Path, options: ConvertOptions,
                   replaceable: frozenset[str] = frozenset()) -> SeriesOutcome:
    """Build, verify and write every part of ``plan`` (its pixels are read here, by whoever runs this).

    Files already at an output name are replaced only with ``options.force`` or when their name is
    ``replaceable``; every file written is logged at once when ``plan.fingerprint`` is set.
    """
    outcome = SeriesOutcome([], [])
    series = plan.series
    derived = 0  # DICOM series derived from this one so far
    if plan.assembly is not None:
        try:
            for joined in build_assembly(plan.assembly, options):
                label = joined.volume.part.label
                stem = plan.assembly_stem + (f"_{label}" if label else "")
                if options.format == OutputFormat.DICOM:
                    derived += 1
                    dicom = _write_dicom(joined.volume, series, outdir, stem, options, derived, replaceable)
                    record, files = _record(series, joined.volume, dicom.folder, None, dicom), _dicom_files(dicom)
                else:
                    files = _write(joined.volume, outdir, stem, options, replaceable)
                    record = _record(series, joined.volume, files.path, files.mask_path)
                _written(plan, outcome, replace(record, assembly=joined.record), files)
        except STACK_ERRORS as err:  # a group that cannot be joined must not stop the others
            outcome.failures.append(_failure(plan.assembly.title, err, "; nothing written"))
    for step in plan.steps:
        if isinstance(step, Failure):
            outcome.failures.append(step)
            continue
        if isinstance(step, PlannedSeries):
            try:
                if options.format == OutputFormat.DICOM:
                    raise ValueError("a 4D file is NRRD or NIfTI: DICOM output is one series per volume")
                built = build_volume_series(step.plan, options)
                files = _write_series(built, outdir, step.stem, options, replaceable)
                _written(plan, outcome, _series_output(series, built, files.path, files.mask_path), files)
            except STACK_ERRORS as err:  # one bad series must not stop the others
                outcome.failures.append(_failure(step.name, err))
            continue
        try:
            if options.format == OutputFormat.DICOM:
                volume = build_volume(step.part, options)
                derived += 1
                dicom = _write_dicom(volume, series, outdir, step.stem, options, derived, replaceable)
                _written(plan, outcome, _record(series, volume, dicom.folder, None, dicom), _dicom_files(dicom))
            else:
                volume, files = _build_and_write(step.part, outdir, step.stem, options, replaceable)
                _written(plan, outcome, _record(series, volume, files.path, files.mask_path), files)
        except STACK_ERRORS as err:  # one bad stack must not stop the others
            outcome.failures.append(_failure(step.name, err))
    return outcome


def _dicom_files(dicom: DicomSeries) -> _Files:
    """A DICOM series' folder, digested once it is in place (its files are written one by one)."""
    return _Files(dicom.folder, None, {dicom.folder: content_digest(dicom.folder)})


def _written(plan: SeriesPlan, outcome: SeriesOutcome, output: OutputVolume, files: _Files) -> None:
    """Add ``output`` to the outcome with the ``files`` it wrote, logged at once when the plan says so."""
    outcome.outputs.append(output)
    for path, digest in files.digests.items():
        file = WrittenFile(path.name, size_on_disk(path), digest, plan.fingerprint)
        outcome.written.append(file)
        if plan.fingerprint:
            RunLog(path.parent / LOG_NAME).append(file)


def report_bytes(analysis: Analysis, options: ConvertOptions, outputs: list[dict[str, Any]],
                 failures: list[str]) -> bytes:
    """``report.json``: the inspect report plus ``options``, the ``outputs`` and the ``failures``."""
    document = analysis_to_dict(analysis, find_candidates(analysis, options.tolerances))
    document["options"] = options.to_dict()
    document["outputs"] = outputs
    document["failures"] = failures
    return json_text(document).encode("utf-8")


def convert(
    paths: Iterable[str | os.PathLike[str]],
    outdir: str | os.PathLike[str],
    options: ConvertOptions = ConvertOptions(),
    *,
    progress: bool | None = None,
    execution: Execution = Execution(),
) -> ConvertResult:
    """Analyse ``paths``, write one verified volume per part of every wanted stack into ``outdir``,
    and ``outdir/report.json`` (the inspect report plus ``options``, ``outputs`` and ``failures``).

    A stack or part that cannot be converted (``STACK_ERRORS``) becomes a ``Failure`` and the
    others go on. Run again into the same folder, it resumes: the series an earlier run finished
    from the same sources and options, their files unchanged, are kept (``resumed_series``), the
    rest converted (``archive`` says what is replaced). Raises ``FileExistsError`` before doing
    anything when ``outdir`` holds a report its log does not prove this tool wrote, unless
    ``options.force``. ``progress``: a progress bar on stderr (default: when stderr is a terminal).
    ``execution``: where the series are converted (this process, worker processes, a Dask
    cluster); the files written are the same whichever is chosen.
    """
    from .archive import ArchiveConversion  # the archive runner is built on this module's steps

    return ArchiveConversion(paths, outdir, options, execution=execution, progress=progress).result()
