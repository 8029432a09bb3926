"""Analysed stacks to verified regular volumes on disk, and ``report.json``.

``convert`` plans every wanted stack (``planning``), builds and verifies each part (``volume``),
writes the files and the report. Nothing is written for a part whose verification fails, and
nothing already in the output folder is replaced without ``force``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .analysis import analyze
from .model import Analysis, SeriesAnalysis, Stack
from .naming import output_stem
from .options import ConvertOptions
from .policies import OutputFormat
from .outputs import atomic_write, output_path
from .planning import plan_stack
from .report import analysis_to_dict, series_title
from .tolerances import Tolerances
from .volume import Volume, build_volume
from .writers import write_volume

REPORT_NAME = "report.json"


@dataclass
class ConvertResult:
    analysis: Analysis
    outputs: list[dict[str, Any]]
    failures: list[str]
    report_path: Path

    @property
    def ok(self) -> bool:
        return not self.failures


def _wanted(stack: Stack, options: ConvertOptions) -> bool:
    return stack.role == "volume" or (options.include_localizers and stack.role == "localizer")


def _rounded(values: Iterable[float], digits: int) -> list[float]:
    return [round(float(v), digits) + 0.0 for v in values]  # + 0.0 turns -0.0 into 0.0


def _record(series: SeriesAnalysis, volume: Volume, path: Path, mask_path: Path | None) -> dict[str, Any]:
    grid = volume.grid
    return {
        "path": str(path),
        "mask_path": str(mask_path) if mask_path else None,
        "series_instance_uid": series.series_instance_uid,
        "stack": volume.part.stack.id,
        "role": volume.part.stack.role,
        "source_files": [s.label for s in volume.part.slices],
        "shape": list(volume.array.shape[::-1]),
        "dtype": str(volume.array.dtype),
        "spacing": _rounded(grid.spacing_mm, 6),
        "slice_spacing_mm": volume.spacing_mm,
        "origin_lps": _rounded(grid.origin_lps, 6),
        "directions_lps": [_rounded(column, 8) for column in grid.directions.T],
        "index_to_lps": [[float(v) for v in row] for row in grid.index_to_lps],
        "interpolated": volume.interpolated,
        "max_position_error_mm": round(volume.verification.max_mm, 6),
        "mean_position_error_mm": round(volume.verification.mean_mm, 6),
        "max_error_vs_dicom_mm": round(volume.dicom_error_mm, 6),
        "decisions": volume.part.decisions,
    }


def _write(volume: Volume, outdir: Path, stem: str, options: ConvertOptions) -> tuple[Path, Path | None]:
    """Write the volume (and its mask under ``--gaps blank``); neither when either name is taken."""
    suffix = OutputFormat(options.format).suffix
    path = output_path(outdir, stem, suffix)
    mask_path = None
    if volume.mask is not None and options.gaps == "blank":
        mask_path = output_path(outdir, stem + "_mask", suffix)
    if not options.force:
        for target in (path, mask_path):
            if target is not None and os.path.lexists(target):
                raise FileExistsError(f"{target} already exists; not overwriting it (use --force to replace it)")
    write_volume(path, volume.array, volume.grid.index_to_lps, force=options.force)
    if mask_path is not None:
        write_volume(mask_path, volume.mask, volume.grid.index_to_lps, force=options.force)
    return path, mask_path


def _progress(enabled: bool) -> Callable[[str], None]:
    if not enabled:
        return lambda message: None

    def show(message: str) -> None:
        sys.stderr.write("\r\x1b[K" + message[:100])
        sys.stderr.flush()

    return show


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def convert(
    paths: Iterable[str | os.PathLike],
    outdir: str | os.PathLike,
    options: ConvertOptions = ConvertOptions(),
    *,
    progress: bool | None = None,
) -> ConvertResult:
    """Analyse ``paths``, write one verified volume per part of every wanted stack into ``outdir``,
    and ``outdir/report.json`` (the inspect report plus ``options``, ``outputs`` and ``failures``).

    A stack or part that cannot be converted becomes a one-line entry in ``failures`` and the
    others go on. Raises ``FileExistsError`` before doing anything when ``outdir`` already holds a
    report and ``options.force`` is not set. ``progress``: a status line on stderr (default: when
    stderr is a terminal).
    """
    outdir = Path(outdir)
    report_path = outdir / REPORT_NAME
    if not options.force and os.path.lexists(report_path):
        raise FileExistsError(
            f"{report_path} already exists: {outdir} holds an earlier conversion; use --force to replace it "
            "or choose another output folder")
    outdir.mkdir(parents=True, exist_ok=True)
    analysis = analyze(paths, tolerances=options.tolerances)
    show = _progress(sys.stderr.isatty() if progress is None else progress)
    outputs: list[dict[str, Any]] = []
    failures: list[str] = []
    used: set[str] = set()
    work = [(series, stack) for series in analysis.series for stack in series.stacks if _wanted(stack, options)]
    for n, (series, stack) in enumerate(work, start=1):
        title = f"{series_title(series)} stack {stack.id}"
        show(f"[{n}/{len(work)}] {title}")
        try:
            parts = plan_stack(stack, options)
        except Exception as err:
            failures.append(f"{title}: {_one_line(err)}; nothing written")
            continue
        for part in parts:
            name = f"{title}{' ' + part.label if part.label else ''}"
            try:
                volume = build_volume(part, options)
                path, mask_path = _write(volume, outdir, output_stem(series, stack, part, used), options)
                outputs.append(_record(series, volume, path, mask_path))
            except Exception as err:  # one bad stack must not stop the others
                failures.append(f"{name}: {_one_line(err)}")
    show("")
    document = analysis_to_dict(analysis)
    document["options"] = options.to_dict()
    document["outputs"] = outputs
    document["failures"] = failures
    text = (json.dumps(document, indent=2) + "\n").encode("utf-8")
    atomic_write(report_path, lambda f: f.write(text), force=True)
    return ConvertResult(analysis, outputs, failures, report_path)
