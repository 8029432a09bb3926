"""Converting a whole archive: headers scanned and every series planned and named once, here; the
series converted in this process, in worker processes or on a Dask cluster; each logged as it
finishes; the series an earlier run finished kept when nothing they depend on has changed.

Run again into the same folder, a conversion resumes: the series its log proves finished from the
same sources and options, with their files unchanged (``runlog``), are kept and reported as done;
the others are converted, replacing only files the log proves this tool wrote for them from the
same sources and options (what an interrupted run left). Anything else in the folder is never
touched without ``force``: a file at an output name fails that output, and a ``report.json`` the
log does not prove its own stops the conversion before it starts.

Whichever way the series are converted, the files and ``report.json`` are the same, byte for byte:
output names are decided before any series is converted, and the report lists series in the
order of the analysis, not the order in which they finished.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__
from .analysis import analyze
from .conversion import (
    REPORT_NAME,
    ConvertResult,
    OutputVolume,
    SeriesOutcome,
    SeriesPlan,
    convert_series,
    plan_all,
    report_bytes,
)
from .decisions import Failure
from .model import Analysis, SeriesAnalysis
from .options import ConvertOptions
from .outfolder import claim_output_folder
from .outputs import atomic_write
from .parallel import Execution, run_all
from .progress import Progress
from .report import series_title
from .runlog import LOG_NAME, LogEntry, RunLog, content_digest, fingerprint, unchanged

WORKING_COPIES = 3
"""Arrays of a part's size that building it holds at once (the pixels read, the resampled volume,
its mask and working rows): the memory estimate of a series is this many times the float32 size of
its largest part, since its parts are built one after another."""


@dataclass(frozen=True)
class SeriesResult:
    """One series of a conversion, as it finished: ``index`` is its place in the report; ``entry``
    its log line (with its ``report.json`` entries). ``resumed`` when its outputs were kept from an
    earlier run instead of being converted again: then ``outputs`` and ``failures`` (the records of
    this run) are empty and only ``entry`` tells what the earlier run wrote."""

    index: int
    series: SeriesAnalysis
    entry: LogEntry
    outputs: list[OutputVolume] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    resumed: bool = False


def estimated_bytes(plan: SeriesPlan) -> int:
    """Memory converting the series takes, by ``WORKING_COPIES``."""
    return WORKING_COPIES * 4 * plan.largest_voxels


class ArchiveConversion:
    """A conversion into ``outdir``: made, it has scanned and planned (``analysis``, ``plans``);
    iterated, it converts and yields a ``SeriesResult`` per series as each finishes, and writes
    ``report.json`` once all have; ``result()`` runs it to the end.

    Raises ``FileExistsError`` when made, before anything is written, if ``outdir`` holds a
    ``report.json`` that its log does not prove an earlier conversion wrote, unless
    ``options.force``; ``OutputInInputError``, ``FolderBusyError`` and ``OSError`` as
    ``claim_output_folder`` says. The folder stays locked until the conversion has written its
    report (or stopped).
    """

    def __init__(
        self,
        paths: Iterable[str | os.PathLike[str]],
        outdir: str | os.PathLike[str],
        options: ConvertOptions = ConvertOptions(),
        *,
        execution: Execution = Execution(),
        progress: bool | None = None,
    ):
        self.outdir = Path(outdir)
        self.options = options
        self.execution = execution
        self.report_path = self.outdir / REPORT_NAME
        self.log = RunLog(self.outdir / LOG_NAME)
        paths = list(paths)
        self._lock = claim_output_folder(self.outdir, paths, allow_output_in_input=options.allow_output_in_input)
        try:
            if not options.force and os.path.lexists(self.report_path) and not self._report_is_ours():
                raise FileExistsError(
                    f"{self.report_path} already exists and is not a report its log ({LOG_NAME}) proves this tool "
                    "wrote; choose another output folder, or replace it")
            self._progress = progress
            self.analysis: Analysis = analyze(paths, tolerances=options.tolerances, limits=options.limits,
                                              skip=[self.outdir], keep_together=options.keep_together)
            self.plans = [dataclasses.replace(plan, fingerprint=self._fingerprint(plan))
                          for plan in plan_all(self.analysis, options)]
        except BaseException:
            self._lock.release()
            raise
        self.results: list[SeriesResult] = []
        self._finished_all = False

    def _report_is_ours(self) -> bool:
        digest = self.log.report_digest()
        try:
            return digest is not None and not self.report_path.is_symlink() and content_digest(self.report_path) == digest
        except OSError:  # unreadable, or a folder that cannot be read: not ours
            return False

    def _fingerprint(self, plan: SeriesPlan) -> str:
        sources = [(s.sop_instance_uid, s.path, s.frame) for stack in plan.series.stacks for s in stack.slices]
        settings = {k: v for k, v in self.options.to_dict().items() if k != "force"}
        settings.update(version=__version__, outdir=str(self.outdir.resolve()))
        return fingerprint(sources, plan.stems, settings)

    def _entry(self, plan: SeriesPlan, outcome: SeriesOutcome) -> LogEntry:
        outputs, failures = outcome.report_entries()
        return LogEntry(plan.series.series_instance_uid, plan.fingerprint,
                        {f.written: f.size for f in outcome.written}, {f.written: f.digest for f in outcome.written},
                        outputs, failures)

    def __iter__(self) -> Iterator[SeriesResult]:
        if self._finished_all:
            yield from sorted(self.results, key=lambda r: r.index)
            return
        try:
            yield from self._convert()
        finally:
            self._lock.release()

    def _convert(self) -> Iterator[SeriesResult]:
        resume = not self.options.force
        earlier = self.log.read() if resume else {}
        written = self.log.written() if resume else {}
        self.log.start(keep=resume)
        todo: list[int] = []
        with Progress(len(self.plans), "series", self._progress) as bar:
            for i, plan in enumerate(self.plans):
                entry = earlier.get(plan.fingerprint)
                # Kept: what the log proves finished, written and unchanged (a series that writes
                # nothing costs nothing to do again, and is not reported as done).
                if (entry is not None and entry.series_instance_uid == plan.series.series_instance_uid
                        and entry.digests and not entry.failures and entry.proven_on_disk(self.outdir)):
                    yield self._finished(SeriesResult(i, plan.series, entry, resumed=True), bar)
                else:
                    todo.append(i)
            plans = [self.plans[i] for i in todo]
            # What an interrupted run wrote for a series, from the same sources and options, is
            # written again; nothing else at an output name is replaced.
            again = {plan.fingerprint for plan in plans}
            replaceable = frozenset(name for name, file in written.items() if file.fingerprint in again
                                    and unchanged(self.outdir / name, file.size, file.digest))
            for k, outcome in run_all(convert_series, plans, [estimated_bytes(p) for p in plans], self.execution,
                                      self.outdir, self.options, replaceable):
                i = todo[k]
                entry = self._entry(self.plans[i], outcome)
                self.log.append(entry)
                yield self._finished(SeriesResult(i, self.plans[i].series, entry, outcome.outputs, outcome.failures), bar)
        ordered = sorted(self.results, key=lambda r: r.index)
        text = report_bytes(self.analysis, self.options, [o for r in ordered for o in r.entry.outputs],
                            [f for r in ordered for f in r.entry.failures])
        atomic_write(self.report_path, lambda f: f.write(text), force=True)
        self.log.append_report(content_digest(self.report_path))
        self._finished_all = True

    def _finished(self, result: SeriesResult, bar: Progress) -> SeriesResult:
        self.results.append(result)
        bar.step(series_title(result.series))
        return result

    def result(self) -> ConvertResult:
        """Convert what is left and return the conversion, series in report order (the outputs and
        failures of this run; ``resumed_series`` names those kept from an earlier one)."""
        for _ in self:
            pass
        ordered = sorted(self.results, key=lambda r: r.index)
        return ConvertResult(
            self.analysis,
            [o for r in ordered for o in r.outputs],
            [f for r in ordered for f in r.failures],
            self.report_path,
            [r.series.series_instance_uid for r in ordered if r.resumed],
        )
