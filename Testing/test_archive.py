"""Whole archives: many small series in nested folders with a few broken files, converted in one
process, in two, on a Dask cluster, and killed midway then resumed: always the same files."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from phantoms import CASES
from irregular_series.archive import ArchiveConversion, SeriesResult
from irregular_series.cli import main
from irregular_series.conversion import ConvertOptions, convert
from irregular_series.parallel import Execution
from irregular_series.runlog import LOG_NAME, RunLog
from irregular_series.testing.synthetic import uid

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
    assert set(entries) == {s["series_instance_uid"] for s in report["series"]}
    logged = sorted(name for e in entries.values() for name in e.files)
    assert logged == sorted(name for name in expected if name != "report.json")
    assert sorted(json.dumps(o) for e in entries.values() for o in e.outputs) == sorted(
        json.dumps(o) for o in report["outputs"])


def test_the_iterator_yields_every_series_once_and_the_report_in_analysis_order(archive, tmp_path):
    run = ArchiveConversion([archive], tmp_path / "out", execution=Execution(jobs=2), progress=False)
    assert not (tmp_path / "out" / "report.json").exists()
    seen = []
    for result in run:
        assert isinstance(result, SeriesResult) and not result.resumed
        assert (tmp_path / "out" / LOG_NAME).read_text().count("\n") == len(seen) + 1
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
        if log.exists() and log.read_bytes().count(b"\n") >= 1:
            break
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (out / "report.json").exists(), "the run finished before it could be killed"
    done = RunLog(log).read()
    assert 1 <= len(done) < len(json.loads(expected["report.json"])["series"])
    kept = {name: (out / name).stat().st_mtime_ns for e in done.values() for name in e.files}

    assert main(["convert", str(archive), "-o", str(out)]) == 1  # refused: the folder holds a run
    assert not (out / "report.json").exists()
    assert main(["convert", str(archive), "-o", str(out), "--resume", "--jobs", "2"]) == 0
    assert snapshot(out) == expected
    assert {name: (out / name).stat().st_mtime_ns for name in kept} == kept  # kept, not written again
    assert not [p for p in out.iterdir() if p.name.endswith(".partial")]
    assert main(["convert", str(archive), "-o", str(out), "--resume"]) == 0  # all kept
    assert snapshot(out) == expected


def test_resume_converts_again_what_changed(archive, serial):
    out, expected = serial
    converted(archive, out, Execution(jobs=1))
    victim = next(name for name in expected if name.endswith(".nrrd"))
    (out / victim).write_bytes(b"changed")
    result = convert([archive], out, execution=Execution(resume=True), progress=False)
    assert victim in [Path(o.path).name for o in result.outputs]  # its series converted again; the rest kept
    assert len({o.series_instance_uid for o in result.outputs}) == 1
    assert len(result.resumed_series) == len(json.loads(expected["report.json"])["series"]) - 1
    assert snapshot(out) == expected
    other = convert([archive], out, ConvertOptions(spacing=1.0), execution=Execution(resume=True), progress=False)
    assert other.resumed_series == []  # other options: every series is converted again


def test_a_dask_cluster_writes_what_one_process_writes(archive, serial):
    distributed = pytest.importorskip("distributed")
    out, expected = serial
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, protocol="tcp", host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        assert converted(archive, out, Execution(scheduler=cluster.scheduler_address)) == expected
