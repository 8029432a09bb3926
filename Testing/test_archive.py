"""Whole archives: many small series in nested folders with a few broken files, converted in one
process, in two, on a Dask cluster, and killed midway then resumed: always the same files."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from irregular_series.analysis import analyze
from irregular_series.archive import ArchiveConversion, SeriesResult
from irregular_series.cli import main
from irregular_series.conversion import ConvertOptions, convert
from irregular_series.parallel import Execution
from irregular_series.runlog import LOG_NAME, RunLog, content_digest
from irregular_series.summary import COLUMNS, Action, StackSummary, summarize, write_summary
from irregular_series.testing.synthetic import uid

from phantoms import CASES

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "IrregularSeries"


def write_archive(root: Path, copies: int = 1) -> Path:
    """Every phantom case ``copies`` times (distinct UIDs and series numbers), two folder levels
    deep, plus files that are not images: a cut-off copy of a slice, a text file, an empty file."""
    number = 0
    for copy in range(copies):
        for name, case in CASES.items():
            number += 1
            phantom = case()
            series = dataclasses.replace(phantom.series, series_instance_uid=uid("archive", name, copy),
                                         series_number=number)
            dataclasses.replace(phantom, series=series).write(root / f"site{copy % 2}" / f"patient{number % 3}" / name)
    some_slice = next(p for p in sorted((root / "site0").rglob("*")) if p.is_file())
    broken = root / "site0" / "broken"
    broken.mkdir()
    (broken / "cut_off.dcm").write_bytes(some_slice.read_bytes()[:300])
    (broken / "notes.txt").write_text("not an image\n")
    (broken / "empty.dcm").write_bytes(b"")
    return root


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    return write_archive(tmp_path_factory.mktemp("archive") / "in")


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every visible file the conversion wrote (the log's order may differ with the schedule)."""
    return {p.name: p.read_bytes() for p in folder.iterdir() if not p.name.startswith(".") and p.name != LOG_NAME}


def converted(archive: Path, out: Path, execution: Execution) -> dict[str, bytes]:
    """Convert into ``out`` (emptied first, so that paths in the reports agree) and snapshot it."""
    shutil.rmtree(out, ignore_errors=True)
    result = convert([archive], out, ConvertOptions(), execution=execution, progress=False)
    assert result.outputs and not result.failures
    return snapshot(out)


@pytest.fixture(scope="module")
def serial(archive, tmp_path_factory) -> tuple[Path, dict[str, bytes]]:
    out = tmp_path_factory.mktemp("serial") / "out"
    return out, converted(archive, out, Execution(jobs=1))


def test_two_processes_write_what_one_writes_byte_for_byte(archive, serial):
    out, expected = serial
    assert len(expected) > len(CASES)
    assert converted(archive, out, Execution(jobs=2)) == expected


def test_memory_bound_changes_the_schedule_not_the_files(archive, serial):
    out, expected = serial
    assert converted(archive, out, Execution(jobs=2, max_memory_bytes=1)) == expected


def test_the_log_holds_each_series_once_with_its_files(archive, serial):
    out, expected = serial
    entries = RunLog(out / LOG_NAME).read()
    report = json.loads(expected["report.json"])
    assert sorted(e.series_instance_uid for e in entries.values()) == sorted(
        s["series_instance_uid"] for s in report["series"])
    logged = sorted(name for e in entries.values() for name in e.files)
    assert logged == sorted(name for name in expected if name != "report.json")
    assert all(e.proven_on_disk(out) for e in entries.values())
    log = RunLog(out / LOG_NAME)
    assert sorted(log.written()) == logged  # each file was logged as soon as it was written, too
    assert log.report_digest() == content_digest(out / "report.json")
    assert sorted(json.dumps(o) for e in entries.values() for o in e.outputs) == sorted(
        json.dumps(o) for o in report["outputs"])


def test_the_iterator_yields_every_series_once_and_the_report_in_analysis_order(archive, tmp_path):
    run = ArchiveConversion([archive], tmp_path / "out", execution=Execution(jobs=2), progress=False)
    assert not (tmp_path / "out" / "report.json").exists()
    seen = []
    for result in run:
        assert isinstance(result, SeriesResult) and not result.resumed
        assert len(RunLog(tmp_path / "out" / LOG_NAME).read()) == len(seen) + 1
        seen.append(result.index)
    assert sorted(seen) == list(range(len(run.analysis.series)))
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [s["series_instance_uid"] for s in report["series"]] == [p.series.series_instance_uid for p in run.plans]


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(PACKAGE_ROOT), os.environ.get("PYTHONPATH", "")]))


def test_a_run_killed_midway_then_resumed_writes_what_an_uninterrupted_run_writes(archive, serial):
    out, expected = serial
    shutil.rmtree(out)
    process = subprocess.Popen([sys.executable, "-m", "irregular_series.cli", "convert", str(archive), "-o", str(out),
                                "--jobs", "1"], env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = out / LOG_NAME
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        if log.exists() and RunLog(log).read():  # a series finished
            break
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (out / "report.json").exists(), "the run finished before it could be killed"
    done = RunLog(log).read()
    assert 1 <= len(done) < len(json.loads(expected["report.json"])["series"])
    kept = {name: (out / name).stat().st_mtime_ns for e in done.values() for name in e.files}

    assert main(["convert", str(archive), "-o", str(out), "--jobs", "2", "--resume"]) == 0
    assert snapshot(out) == expected
    assert {name: (out / name).stat().st_mtime_ns for name in kept} == kept  # kept, not written again
    assert not [p for p in out.iterdir() if p.name.endswith(".partial")]
    assert main(["convert", str(archive), "-o", str(out)]) == 0  # running again without --resume: all kept
    assert snapshot(out) == expected


def test_resume_needs_an_earlier_run_and_contradicts_force(archive, tmp_path, capsys):
    fresh = tmp_path / "fresh"
    assert main(["convert", str(archive), "-o", str(fresh), "--resume"]) == 1
    assert "nothing to resume" in capsys.readouterr().err and not fresh.exists()
    assert main(["convert", str(archive), "-o", str(fresh), "--resume", "--force"]) == 2
    assert "choose one" in capsys.readouterr().err and not fresh.exists()


def test_a_rerun_converts_again_what_changed_and_replaces_only_its_own_files(archive, serial):
    out, expected = serial
    converted(archive, out, Execution(jobs=1))
    victim = next(name for name in expected if name.endswith(".nrrd"))
    (out / victim).write_bytes(b"changed")
    result = convert([archive], out, execution=Execution(jobs=1), progress=False)
    # Its series is converted again, but the changed file is not this tool's any more: refused.
    (failure,) = result.failures
    assert victim in failure.message and failure.remedy == ("force", None)
    assert (out / victim).read_bytes() == b"changed"
    writing = {o["series_instance_uid"] for o in json.loads(expected["report.json"])["outputs"]}
    assert len(result.resumed_series) == len(writing) - 1  # series that write nothing are not "done"
    result = convert([archive], out, ConvertOptions(force=True), execution=Execution(jobs=1), progress=False)
    assert result.resumed_series == [] and not result.failures  # forced: everything written again
    again = convert([archive], out, execution=Execution(jobs=1), progress=False)
    assert set(again.resumed_series) == writing  # then all done: the report says so as before
    assert snapshot(out) == expected
    other = convert([archive], out, ConvertOptions(spacing=1.0), execution=Execution(jobs=1), progress=False)
    assert other.resumed_series == [] and other.failures  # other options: other volumes, not over these
    volumes = {name: data for name, data in expected.items() if name != "report.json"}
    assert {name: data for name, data in snapshot(out).items() if name != "report.json"} == volumes


def test_a_dask_cluster_writes_what_one_process_writes(archive, serial):
    distributed = pytest.importorskip("distributed")
    out, expected = serial
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, protocol="tcp", host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        assert converted(archive, out, Execution(scheduler=cluster.scheduler_address)) == expected


def test_summary_rows_match_the_analysis_and_the_terminal_counts(archive, tmp_path, capsys):
    target = tmp_path / "summary.csv"
    assert main(["inspect", str(archive), "--summary", str(target)]) == 0
    out, err = capsys.readouterr()
    assert err == ""  # no progress bar when stderr is not a terminal
    rows = list(csv.DictReader(target.open(newline="", encoding="utf-8")))
    analysis = analyze([archive])
    stacks = [(series, stack) for series in analysis.series for stack in series.stacks]
    assert len(rows) == len(stacks) > len(CASES)
    kinds: Counter[str] = Counter()
    for row, (series, stack) in zip(rows, stacks):
        g = stack.geometry
        counts = Counter(str(i.kind) for i in g.irregularities)
        kinds.update(counts)
        assert (row["series_instance_uid"], row["stack"], row["role"], int(row["slice_count"])) == (
            series.series_instance_uid, stack.id, stack.role, stack.slice_count)
        assert row["patient_id"] == stack.slices[0].patient_id and row["patient_id"]
        assert row["study_instance_uid"] == stack.slices[0].study_instance_uid
        assert dict(item.split("=") for item in row["irregularities"].split(";") if item) == {
            k: str(n) for k, n in counts.items()}
        for column, value in (("spacing_median_mm", g.spacing.median), ("spacing_min_mm", g.spacing.min),
                              ("spacing_max_mm", g.spacing.max), ("tilt_deg", g.tilt_deg)):
            assert (row[column] == "") if value is None else float(row[column]) == pytest.approx(value, abs=0.01)
        assert int(row["excluded_files"]) == len({e.path for e in series.excluded})
        kinds_here = {i.kind for i in g.irregularities}
        expected = ("skip" if stack.role != "volume"
                    else "load_as_is" if not any(k.misplaced_by_regular_grid for k in kinds_here)
                    else "convert_and_review" if any(k.approximate for k in kinds_here) else "convert")
        assert row["action"] == expected
    for kind, n in kinds.items():
        assert f"  {kind}: {n} in " in out
    left_out = sum(len(s.excluded) for s in analysis.series) + len(analysis.excluded)
    assert left_out >= 3 and f"files left out: {left_out}" in out
    assert main(["inspect", str(archive), "--summary", str(target)]) == 1  # never replaced silently
    err = capsys.readouterr().err
    assert "already exists" in err and "use --force" in err
    assert main(["inspect", str(archive), "--summary", str(target), "--force"]) == 0


def test_summary_records_are_the_api_of_the_table(archive):
    rows = summarize(analyze([archive]))
    assert all(isinstance(r, StackSummary) for r in rows)
    regular = next(r for r in rows if r.series_description == "regular")
    assert regular.action == Action.LOAD_AS_IS and regular.irregularities == "" and regular.orientation == "axial"
    gaps = next(r for r in rows if r.series_description == "missing slices")
    assert gaps.action == Action.CONVERT_AND_REVIEW and "missing_slices=" in gaps.irregularities


def test_parquet_summary_when_pyarrow_is_installed(archive, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    rows = summarize(analyze([archive]))
    write_summary(rows, tmp_path / "s.parquet")
    table = pq.read_table(tmp_path / "s.parquet")
    assert table.column_names == list(COLUMNS) and table.num_rows == len(rows)


def test_scan_progress_reaches_every_file(archive):
    calls = []
    analyze([archive], progress=lambda done, found: calls.append((done, found)))
    assert calls and calls[-1][0] == calls[-1][1] and [d for d, _ in calls] == sorted(d for d, _ in calls)
