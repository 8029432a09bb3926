"""The ``irregular-series`` command line: convert and demo, their output and exit codes.

Commands run in-process through ``cli.main`` (output captured by pytest), and once as a real
process, as a pipeline would run them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pydicom
import pytest

from irregular_series.__main__ import PROCESS_SETTINGS
from irregular_series.cli import main
from irregular_series.runlog import LOG_NAME
from irregular_series.testing.synthetic import micro_ct_demo_series, write_demo

from volume_checks import ENCODING, encoded, encoding_error, read_nrrd, recompress_as_mpeg2


def test_demo_converts_the_stitched_series_at_exactly_0_6_mm(tmp_path, capsys):
    root = tmp_path / "demo"
    assert main(["demo", str(root)]) == 0
    out = capsys.readouterr().out
    assert "wrote a synthetic stitched micro-CT series (120 files)" in out
    assert "converting at exactly 0.6 mm" in out and "FAILED" not in out
    (path,) = (root / "volumes").glob("*.nrrd")  # the localizer is left out
    volume = read_nrrd(path)
    assert volume.header["sizes"] == "64 64 109"
    assert volume.header["space directions"] == "(0.1,0.0,0.0) (0.0,0.1,0.0) (0.0,0.0,0.6)"
    assert encoding_error(volume, micro_ct_demo_series().encoding) <= 1.0  # int16 rounding in and out
    report = json.loads((root / "volumes" / "report.json").read_text())
    (output,) = report["outputs"]
    assert output["slice_spacing_mm"] == 0.6 and output["max_position_error_mm"] <= 0.01 and not report["failures"]
    # Again: the series it wrote is reused and its volume is done already; replaced only with --force.
    written = path.stat().st_mtime_ns
    assert main(["demo", str(root)]) == 0
    captured = capsys.readouterr()
    assert "using the demo series already in" in captured.out and "already done: " in captured.out
    assert path.stat().st_mtime_ns == written
    assert main(["demo", str(root), "--spacing", "0.3"]) == 1  # another volume by the same name: refused
    assert "already exists; not overwriting it (use --force)" in capsys.readouterr().err
    assert main(["demo", str(root), "--force"]) == 0
    assert "FAILED" not in capsys.readouterr().err


def test_demo_at_another_spacing(tmp_path, capsys):
    assert main(["demo", str(tmp_path), "--spacing", "0.25"]) == 0
    assert "converting at exactly 0.25 mm (the nominal spacing is 0.6 mm)" in capsys.readouterr().out
    (path,) = (tmp_path / "volumes").glob("*.nrrd")
    assert read_nrrd(path).header["space directions"].endswith("(0.0,0.0,0.25)")


def test_convert_with_spacing_0_6_writes_0_6_in_the_header(tmp_path, capsys):
    write_demo(tmp_path / "dicom")
    assert main(["convert", str(tmp_path / "dicom"), "-o", str(tmp_path / "out"), "--spacing", "0.6"]) == 0
    (path,) = (tmp_path / "out").glob("*.nrrd")
    assert read_nrrd(path).header["space directions"].split()[2] == "(0.0,0.0,0.6)"
    out = capsys.readouterr().out
    assert f"wrote {path}  64x64x109 voxels of 0.1x0.1x0.6 mm, interpolated, max position error 0.0000 mm" in out
    assert "    - slice spacing: 0.6 mm as requested" in out


def test_existing_outputs_are_kept_without_force(tmp_path, capsys):
    encoded("regular").write(tmp_path / "in")
    args = ["convert", str(tmp_path / "in"), "-o", str(tmp_path / "out")]
    assert main(args) == 0
    capsys.readouterr()
    written = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").iterdir() if p.suffix == ".nrrd"}
    assert main(args) == 0  # the same again: done already, nothing rewritten
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out.count("already done: ") == 1 and "wrote " not in captured.out
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").iterdir() if p.suffix == ".nrrd"} == written
    assert main(args + ["--force"]) == 0


def test_failures_exit_non_zero_with_one_line_each(tmp_path, capsys):
    encoded("regular").write(tmp_path / "in" / "good")
    for path in encoded("missing_slices", series_number=2).write(tmp_path / "in" / "bad"):
        recompress_as_mpeg2(path)
    assert main(["convert", str(tmp_path / "in"), "-o", str(tmp_path / "out")]) == 1
    captured = capsys.readouterr()
    (failure,) = captured.err.splitlines()
    assert failure.startswith("FAILED #2 CT missing slices stack 1: ") and "cannot decode" in failure
    assert "wrote " in captured.out and (tmp_path / "out" / "1_regular_stack1.nrrd").is_file()


def test_nothing_to_convert_says_why(tmp_path, capsys):
    encoded("ge_three_plane_localizer").write(tmp_path / "in")
    assert main(["convert", str(tmp_path / "in"), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "no volume stacks found: nothing to convert" in err
    assert "#1 MR 3-Plane Localizer stack 1: localizer (--include-localizers writes it)" in err
    assert main(["convert", str(tmp_path / "in"), "-o", str(tmp_path / "out")]) == 1  # again: not "already done"
    captured = capsys.readouterr()
    assert "no volume stacks found: nothing to convert" in captured.err and "already done" not in captured.out
    assert main(["convert", str(tmp_path / "in"), "-o", str(tmp_path / "all"), "--include-localizers"]) == 0
    assert len(list((tmp_path / "all").glob("*.nrrd"))) == 3


def test_missing_input_is_named(tmp_path, capsys):
    assert main(["convert", str(tmp_path / "nowhere"), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "no volume stacks found" in err and "nowhere" in err


@pytest.mark.parametrize("spacing", ["-1", "0", "abc", "inf", "nan"])
def test_bad_spacing_is_a_usage_error(tmp_path, capsys, spacing):
    with pytest.raises(SystemExit) as exit_info:
        main(["convert", str(tmp_path), "-o", str(tmp_path / "out"), "--spacing", spacing])
    assert exit_info.value.code == 2 and "spacing" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_positions_override_and_blank_mask_are_printed(tmp_path, capsys):
    encoded("missing_slices").write(tmp_path / "in")
    code = main(["convert", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--positions", "nominal"])
    out = capsys.readouterr().out
    assert code == 0 and "(against the overridden positions; 6.0000 mm from the DICOM positions)" in out
    (overridden,) = [line for line in out.splitlines() if line.startswith("    - POSITIONS OVERRIDDEN: ")]
    assert overridden.endswith(" from their DICOM positions (--positions nominal)")
    code = main(["convert", str(tmp_path / "in"), "-o", str(tmp_path / "blank"), "--gaps", "blank"])
    out = capsys.readouterr().out
    assert code == 0 and f"  mask {tmp_path / 'blank' / '1_missing_slices_stack1_mask.nrrd'}" in out
    # The command line names its flags; report.json keeps the library's neutral words and the fields.
    assert "    - 3 plane(s) inside missing-slice gaps left blank: no slice reaches them, mask 0 there (--gaps blank)" in out
    report = json.loads((tmp_path / "blank" / "report.json").read_text())
    (blank,) = [d for d in report["outputs"][0]["decisions"] if d["kind"] == "gaps_blank"]
    assert blank == {"kind": "gaps_blank",
                     "message": "3 plane(s) inside missing-slice gaps left blank: no slice reaches them, mask 0 there",
                     "option": "gaps", "choice": "blank", "values": {"planes": 3}}


def test_failure_lines_name_the_flag_that_helps(tmp_path, capsys):
    encoded("regular").write(tmp_path / "in")
    assert main(["convert", str(tmp_path / "in"), "-o", str(tmp_path / "out")]) == 0
    (tmp_path / "out" / "report.json").unlink()
    (tmp_path / "out" / LOG_NAME).unlink()
    assert main(["convert", str(tmp_path / "in"), "-o", str(tmp_path / "out")]) == 1
    (failure,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("FAILED")]
    assert failure.endswith("already exists; not overwriting it (use --force)")
    (tmp_path / "out" / "report.json").write_text("{}")  # a report the log does not prove
    assert main(["convert", str(tmp_path / "in"), "-o", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err.strip().endswith(
        "proves this tool wrote; choose another output folder, or replace it (use --force to replace it)")


@pytest.mark.parametrize(("fmt", "suffix"), [("nii", ".nii"), ("nii.gz", ".nii.gz")])
def test_format_option_names_the_files(tmp_path, capsys, fmt, suffix):
    encoded("gantry_tilt").write(tmp_path / "in")
    assert main(["convert", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--format", fmt]) == 0
    assert [p.name for p in (tmp_path / "out").iterdir() if p.name not in ("report.json", LOG_NAME)] == [
        f"1_gantry_tilt_stack1{suffix}"]


def test_runs_as_a_process_without_terminal_codes(tmp_path):
    encoded("stitched_sections").write(tmp_path / "in")
    command = [sys.executable, "-m", "irregular_series", "convert", str(tmp_path / "in"), "-o",
               str(tmp_path / "out"), "--spacing", "0.6", "--sections", "split", "--tilt", "keep",
               "--interpolation", "cubic"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stderr and "\r" not in done.stderr  # no progress line when not a terminal
    assert done.stdout.count("wrote ") == 3
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [o["slice_spacing_mm"] for o in report["outputs"]] == [0.6] * 3
    assert report["options"]["sections"] == "split" and report["options"]["interpolation"] == "cubic"
    for output in report["outputs"]:
        assert encoding_error(read_nrrd(output["path"]), ENCODING) <= 1.0


PROBE_SETTINGS = """
import json, os, sys
from irregular_series.__main__ import PROCESS_SETTINGS, main
sys.argv = ["irregular-series", "--help"]
try:
    main()
except SystemExit:
    pass
import numpy
tasks = "/proc/self/task"
print(json.dumps({"settings": {name: os.environ[name] for name in PROCESS_SETTINGS},
                  "threads": len(os.listdir(tasks)) if os.path.isdir(tasks) else None}))
"""


@pytest.mark.parametrize("given", [None, {"NUMPY_MADVISE_HUGEPAGE": "1", "OPENBLAS_NUM_THREADS": "2"}])
def test_the_command_sets_numpy_process_settings_unless_the_user_chose(given):
    """The console script (``irregular_series.__main__``) turns numpy's huge-page advice off and
    runs OpenBLAS in the calling thread, set before numpy is imported (so no BLAS thread starts);
    a user's own values are kept, and a library import never touches the environment."""
    env = {k: v for k, v in os.environ.items() if k not in PROCESS_SETTINGS} | (given or {})
    done = subprocess.run([sys.executable, "-c", PROBE_SETTINGS], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["settings"] == (given or {"NUMPY_MADVISE_HUGEPAGE": "0", "OPENBLAS_NUM_THREADS": "1"})
    if given is None and seen["threads"] is not None:
        assert seen["threads"] == 1, "the command runs BLAS threads"
    library = subprocess.run([sys.executable, "-c", "import json, os, irregular_series.cli; "
                              f"print(json.dumps([os.environ.get(name) for name in {sorted(PROCESS_SETTINGS)!r}]))"],
                             capture_output=True, text=True, timeout=120, env=env)
    assert json.loads(library.stdout) == [(given or {}).get(name) for name in sorted(PROCESS_SETTINGS)]


def test_descriptions_in_any_script_print_on_an_ascii_console(tmp_path):
    """A console that cannot show the description gets escapes, not a traceback."""
    for path in encoded("regular").write(tmp_path / "in"):
        ds = pydicom.dcmread(path)
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.SeriesDescription = "頭部 Schädel"
        ds.save_as(path)
    command = [sys.executable, "-m", "irregular_series.cli", "inspect", str(tmp_path / "in")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONIOENCODING": "ascii"})
    assert done.returncode == 0, done.stderr
    assert "\\u982d\\u90e8 Sch\\xe4del" in done.stdout
