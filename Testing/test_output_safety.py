"""Nothing the user has is overwritten or touched without --force, and every output-side problem
is one line (issue 17): inspect --json/--plot, demo, output folders inside inputs, letter case,
concurrent runs, signals and resuming, strict JSON, terminal escapes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from irregular_series.cli import main
from irregular_series.conversion import convert
from irregular_series.options import ConvertOptions
from irregular_series.outfolder import FolderBusyError, OutputInInputError, claim_output_folder
from irregular_series.policies import OutputFormat
from irregular_series.report import json_text

from volume_checks import encoded

PACKAGE = Path(__file__).resolve().parents[1] / "IrregularSeries"


def _input(tmp_path: Path, case: str = "regular", **fields) -> Path:
    encoded(case, **fields).write(tmp_path / "in")
    return tmp_path / "in"


def _strict(text: str) -> dict:
    def refuse(constant: str):
        raise AssertionError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_inspect_json_never_replaces_an_input_file_and_needs_force_for_anything_else(tmp_path, capsys):
    folder = _input(tmp_path)
    victim = sorted(folder.iterdir())[0]
    before = victim.read_bytes()
    for extra in ([], ["--force"]):
        assert main(["inspect", str(folder), "--json", str(victim), *extra]) == 1
        assert "is one of the input files; not overwriting it" in _one_line(capsys.readouterr().err)
    assert victim.read_bytes() == before
    report = tmp_path / "report.json"
    report.write_text("mine")
    assert main(["inspect", str(folder), "--json", str(report)]) == 1
    assert "already exists; not overwriting it (use --force)" in capsys.readouterr().err
    assert report.read_text() == "mine"
    assert main(["inspect", str(folder), "--json", str(report), "--force"]) == 0
    assert _strict(report.read_text())["series"]


def test_inspect_json_through_a_link_replaces_the_link_never_its_target(tmp_path, capsys):
    folder = _input(tmp_path)
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    link = tmp_path / "out.json"
    os.symlink(target, link)
    assert main(["inspect", str(folder), "--json", str(link)]) == 1
    assert main(["inspect", str(folder), "--json", str(link), "--force"]) == 0
    assert target.read_text() == "keep me" and not link.is_symlink() and _strict(link.read_text())


def test_inspect_json_into_a_folder_or_nowhere_is_one_line(tmp_path, capsys):
    folder = _input(tmp_path)
    assert main(["inspect", str(folder), "--json", str(tmp_path), "--force"]) == 1
    assert _one_line(capsys.readouterr().err).endswith("is a folder, not a file")
    assert main(["inspect", str(folder), "--json", str(tmp_path / "no" / "such" / "r.json")]) == 1
    assert _one_line(capsys.readouterr().err).endswith("r.json: does not exist")


def test_plot_pictures_are_not_replaced_without_force(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    folder = _input(tmp_path)
    pictures = tmp_path / "plots"
    assert main(["inspect", str(folder), "--plot", str(pictures)]) == 0
    (png,) = pictures.glob("*.png")
    png.write_bytes(b"mine")
    assert main(["inspect", str(folder), "--plot", str(pictures)]) == 1
    assert "already exists; not overwriting it (use --force)" in capsys.readouterr().err
    assert png.read_bytes() == b"mine"
    assert main(["inspect", str(folder), "--plot", str(pictures), "--force"]) == 0
    assert png.read_bytes().startswith(b"\x89PNG")


def test_demo_never_takes_a_users_folder(tmp_path, capsys):
    mine = tmp_path / "dicom"
    mine.mkdir()
    (mine / "scan.dcm").write_bytes(b"the user's")
    assert main(["demo", str(tmp_path)]) == 1
    assert "holds files the demo did not write" in _one_line(capsys.readouterr().err)
    assert (mine / "scan.dcm").read_bytes() == b"the user's" and not (tmp_path / "volumes").exists()


def test_an_output_folder_inside_the_input_is_refused_unless_allowed(tmp_path, capsys):
    folder = _input(tmp_path)
    names = sorted(p.name for p in folder.iterdir())
    for output in (folder, folder / "out"):
        assert main(["convert", str(folder), "-o", str(output), "--force"]) == 1
        assert "(use --allow-output-in-input)" in _one_line(capsys.readouterr().err)
    assert sorted(p.name for p in folder.iterdir()) == names
    # An input inside the output folder, likewise.
    with pytest.raises(OutputInInputError, match="is inside the output folder"):
        convert([folder], tmp_path)
    # Allowed: the scan leaves the output folder out, also the second time.
    args = ["convert", str(folder), "-o", str(folder / "out"), "--allow-output-in-input"]
    assert main(args) == 0
    assert main([*args, "--force"]) == 0
    report = _strict((folder / "out" / "report.json").read_text())
    excluded = report["excluded"] + [e for s in report["series"] for e in s["excluded"]]
    assert [e["reason"] for e in excluded] == ["folder not scanned: it is the output folder"]


def test_output_names_differ_in_more_than_letter_case(tmp_path):
    a = encoded("regular", series_description="HEAD", series_number=1)
    b = encoded("regular", series_description="head", series_number=1, series_instance_uid="1.2.826.0.1.3680043.8.498.7")
    a.write(tmp_path / "in" / "a")
    b.write(tmp_path / "in" / "b", seed=1)
    result = convert([tmp_path / "in"], tmp_path / "out")
    names = [o.path.name.lower() for o in result.outputs]
    assert len(names) == 2 and len(set(names)) == 2


def test_a_second_conversion_into_a_busy_folder_is_refused(tmp_path, capsys):
    folder = _input(tmp_path)
    lock = claim_output_folder(tmp_path / "out", [folder], allow_output_in_input=False)
    try:
        with pytest.raises(FolderBusyError):
            convert([folder], tmp_path / "out")
        assert main(["convert", str(folder), "-o", str(tmp_path / "out")]) == 1
        assert "is being written by another conversion" in _one_line(capsys.readouterr().err)
    finally:
        lock.release()
    assert main(["convert", str(folder), "-o", str(tmp_path / "out")]) == 0
    assert not (tmp_path / "out" / ".irregular-series.lock").exists()


def test_an_interrupted_run_is_resumed_not_failed(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "in"
    encoded("regular", series_number=1).write(folder / "a")
    encoded("gantry_tilt", series_number=2, series_instance_uid="1.2.826.0.1.3680043.8.498.8").write(folder / "b")
    import irregular_series.conversion as conversion

    real = conversion.resample_part
    calls = []

    def interrupted_on_the_second(part, options):
        calls.append(part)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(part, options)

    monkeypatch.setattr(conversion, "resample_part", interrupted_on_the_second)
    out = tmp_path / "out"
    assert main(["convert", str(folder), "-o", str(out), "--jobs", "1"]) == 130  # in this process
    assert _one_line(capsys.readouterr().err).startswith("irregular-series: interrupted (SIGINT)")
    assert not [p for p in os.listdir(out) if p.endswith(".partial") or p.endswith(".lock")]
    monkeypatch.setattr(conversion, "resample_part", real)
    assert main(["convert", str(folder), "-o", str(out)]) == 0  # run again the same way: it resumes
    captured = capsys.readouterr()
    assert "FAILED" not in captured.err and "already done: " in captured.out and "wrote " in captured.out
    assert len(_strict((out / "report.json").read_text())["outputs"]) == 2
    assert main(["convert", str(folder), "-o", str(out)]) == 0  # and once more: nothing left to do
    captured = capsys.readouterr()
    assert captured.out.count("already done: ") == 2 and "wrote " not in captured.out


def _convert_killed(folder: Path, out: Path, signum: int, at_write: int) -> subprocess.CompletedProcess:
    """``convert`` in a real process that gets ``signum`` while writing its ``at_write``-th file."""
    script = textwrap.dedent(f"""
        import os, sys
        import irregular_series.writers as writers
        real = writers.atomic_write
        writes = []
        def counted(path, write, **kw):
            writes.append(path)
            if len(writes) == {at_write}:
                os.kill(os.getpid(), {int(signum)})
            return real(path, write, **kw)
        writers.atomic_write = counted
        from irregular_series.cli import main
        sys.exit(main(["convert", {str(folder)!r}, "-o", {str(out)!r}, "--jobs", "1"]))
    """)
    env = {**os.environ, "PYTHONPATH": str(PACKAGE)}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_a_plain_rerun_after_a_signal_resumes_and_touches_only_its_own_files(tmp_path, capsys, signum):
    folder = tmp_path / "in"
    encoded("regular", series_number=1).write(folder / "a")
    encoded("echoes", series_number=2, series_instance_uid="1.2.826.0.1.3680043.8.498.9").write(folder / "b")
    encoded("gantry_tilt", series_number=3, series_instance_uid="1.2.826.0.1.3680043.8.498.10").write(folder / "c")
    out = tmp_path / "out"
    # The first series' volume, then the first echo of the second: the signal comes as the second
    # echo is written, so that series is half done.
    done = _convert_killed(folder, out, signum, at_write=3)
    assert done.returncode == (128 + signum if signum != signal.SIGKILL else -signum), done.stderr
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.iterdir() if p.suffix == ".nrrd"}
    assert len(before) == 2 and not (out / "report.json").exists()
    finished = next(name for name in before if name.startswith("1_"))
    leftover = next(name for name in before if name.startswith("2_"))
    (out / "notes.txt").write_text("the user's")
    assert main(["convert", str(folder), "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert "FAILED" not in captured.err and captured.out.count("already done: ") == 1
    assert (out / finished).stat().st_mtime_ns == before[finished][0]  # kept, not written again
    assert (out / leftover).read_bytes() == before[leftover][1]  # its own leftover, written again the same
    report = _strict((out / "report.json").read_text())
    assert len(report["outputs"]) == 4 and not report["failures"]
    assert (out / "notes.txt").read_text() == "the user's"
    assert not [p for p in os.listdir(out) if p.endswith(".partial") or p.endswith(".lock")]


def test_a_rerun_never_replaces_what_it_cannot_prove_its_own(tmp_path, capsys):
    folder = tmp_path / "in"
    encoded("regular", series_number=1).write(folder / "a")
    encoded("gantry_tilt", series_number=2, series_instance_uid="1.2.826.0.1.3680043.8.498.10").write(folder / "b")
    out = tmp_path / "out"
    assert main(["convert", str(folder), "-o", str(out)]) == 0
    first, second = sorted(p for p in out.iterdir() if p.suffix == ".nrrd")
    first.write_bytes(b"edited by the user")  # no longer what this tool wrote
    assert main(["convert", str(folder), "-o", str(out)]) == 1
    captured = capsys.readouterr()
    (failure,) = [line for line in captured.err.splitlines() if line.startswith("FAILED")]
    assert failure.endswith("already exists; not overwriting it (use --force)") and first.name in failure
    assert first.read_bytes() == b"edited by the user" and captured.out.count("already done: ") == 1
    assert main(["convert", str(folder), "-o", str(out), "--spacing", "1"]) == 1  # other options: other volumes
    assert capsys.readouterr().err.count("already exists; not overwriting it") == 2
    report = out / "report.json"
    report.write_text(report.read_text() + " ")  # a report this tool did not write as it is
    assert main(["convert", str(folder), "-o", str(out)]) == 1
    assert "report.json already exists and is not a report its log" in _one_line(capsys.readouterr().err)
    assert main(["convert", str(folder), "-o", str(out), "--force"]) == 0
    assert first.read_bytes() != b"edited by the user"


def test_stale_partial_files_are_removed_by_the_next_run(tmp_path):
    folder = _input(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / ".0123456789abcdef.partial").write_bytes(b"left by kill -9")
    (out / "mine.partial").write_bytes(b"not ours")
    convert([folder], out)
    assert sorted(os.listdir(out))[-1] != ".0123456789abcdef.partial"
    assert not (out / ".0123456789abcdef.partial").exists() and (out / "mine.partial").exists()


def test_stale_partial_folders_are_removed_only_when_they_are_ours(tmp_path):
    folder = _input(tmp_path)
    out = tmp_path / "out"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.dcm").write_bytes(b"the user's")
    killed = out / ".00112233445566ff.partial"  # a DICOM series folder of a run killed outright
    killed.mkdir(parents=True)
    for name in ("0001.dcm", "0002.dcm"):
        (killed / name).write_bytes(b"half a series")
    odd = out / ".aaaaaaaaaaaaaaaa.partial"  # holds a folder and a link: not what a write leaves
    (odd / "sub").mkdir(parents=True)
    (odd / "link").symlink_to(elsewhere / "keep.dcm")
    link = out / ".bbbbbbbbbbbbbbbb.partial"  # a link by a temporary name: not ours, its target untouched
    link.symlink_to(elsewhere, target_is_directory=True)
    convert([folder], out, ConvertOptions(format=OutputFormat.DICOM))
    assert not killed.exists()
    assert (odd / "sub").is_dir() and (odd / "link").is_symlink()
    assert link.is_symlink() and (elsewhere / "keep.dcm").read_bytes() == b"the user's"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_during_a_write_leaves_no_partial_file_and_one_line(tmp_path, signum):
    folder = _input(tmp_path)
    out = tmp_path / "out"
    # A real process and a real signal, delivered while the volume is being written.
    script = textwrap.dedent(f"""
        import os, signal, sys
        import irregular_series.writers as writers
        real = writers.atomic_write
        def slow(path, write, **kw):
            def writing(stream):
                stream.write(b"x" * 1000)
                os.kill(os.getpid(), {int(signum)})
                write(stream)
            return real(path, writing, **kw)
        writers.atomic_write = slow
        from irregular_series.cli import main
        sys.exit(main(["convert", {str(folder)!r}, "-o", {str(out)!r}]))
    """)
    env = {**os.environ, "PYTHONPATH": str(PACKAGE)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 128 + signum, done.stderr
    assert _one_line(done.stderr).startswith(f"irregular-series: interrupted ({signal.Signals(signum).name})")
    assert not [p for p in os.listdir(out) if p.endswith(".partial") or p.endswith(".lock")]


def test_output_side_os_errors_are_one_line(tmp_path, capsys):
    folder = _input(tmp_path)
    plain = tmp_path / "file"
    plain.write_text("x")
    cases = {
        str(plain): "file: is a file, not a folder",
        str(plain / "out"): "a part of the path is a file, not a folder",
        str(tmp_path / ("n" * 300)): "too long",
    }
    for output, expected in cases.items():
        assert main(["convert", str(folder), "-o", output]) == 1
        line = _one_line(capsys.readouterr().err)
        assert line.startswith("irregular-series convert: ") and expected in line, line
    (tmp_path / "out" / "report.json").mkdir(parents=True)
    assert main(["convert", str(folder), "-o", str(tmp_path / "out"), "--force"]) == 1
    line = _one_line(capsys.readouterr().err.replace("FAILED", "").strip().splitlines()[-1])
    assert "report.json: is a folder, not a file" in line


def test_reports_are_strict_json(tmp_path):
    document = {"a": [1.0, float("inf")], "b": {"c": float("nan")}}
    parsed = _strict(json_text(document))
    assert parsed["a"] == [1.0, None] and parsed["b"] == {"c": None}
    assert parsed["non_finite_values"] == {"$.a[1]": "inf", "$.b.c": "nan"}


def test_control_characters_from_headers_and_names_are_escaped_on_the_terminal(tmp_path, capsys):
    folder = _input(tmp_path, series_description="Kopf\x1b]0;owned\x07\nSeries #9 fake")
    os.rename(sorted(folder.iterdir())[0], folder / "evil\x1b[2J\u202ename.dcm")
    (folder / "readme\rLeft out: nothing").write_text("not dicom")
    assert main(["inspect", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\r" not in out and "\u202e" not in out
    assert "Kopf\\x1b]0;owned\\x07\\nSeries #9 fake" in out and "readme\\rLeft out" in out
    assert not any(line.startswith("Series #9") for line in out.splitlines())


def test_inspect_summary_lines_are_escaped_on_the_terminal(tmp_path, capsys):
    folder = _input(tmp_path)
    target = tmp_path / "sum\x1b]0;owned\x07\nFAILED nothing.csv"
    target.write_text("the user's table")
    assert main(["inspect", str(folder), "--summary", str(target)]) == 1
    line = _one_line(capsys.readouterr().err)
    assert "\x1b" not in line and "sum\\x1b]0;owned\\x07" in line and "already exists" in line
    assert target.read_text() == "the user's table"
    assert main(["inspect", str(folder), "--summary", str(target), "--force"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "sum\\x1b]0;owned" in out
    assert not any(line.startswith("FAILED") for line in out.splitlines())
