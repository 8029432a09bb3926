"""Splits of a series into stacks that can be undone (``ConvertOptions.keep_together``, CLI
``--keep-together``): for a series the image-type, storage or collinearity split parts wrongly,
the group stays whole, its reasons say what it was kept together despite, and the geometry
analysis then reports what is irregular about it. Phantoms are real DICOM files (pydicom)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from irregular_series import analyze
from irregular_series.cli import main
from irregular_series.irregularities import IrregularityKind
from irregular_series.model import SeriesAnalysis
from irregular_series.options import ConvertOptions
from irregular_series.policies import StackSplit
from irregular_series.testing.synthetic import SyntheticSeries, SyntheticSlice, write_series


def _series(folder: Path, *keep: str) -> SeriesAnalysis:
    (series,) = analyze([folder], workers=1, keep_together=[StackSplit.parse(k) for k in keep]).series
    return series


def _axial(count: int, step_mm: float, start_mm: float = 0.0, **fields) -> list[SyntheticSlice]:
    return [SyntheticSlice(position_lps_mm=(0.0, 0.0, start_mm + k * step_mm), instance_number=k + 1, **fields)
            for k in range(count)]


def test_blocks_on_different_lines_kept_together_are_one_stack_reported_off_one_line(write_phantom):
    folder = write_phantom("parallel_offset_blocks")
    assert [(s.role, s.slice_count) for s in _series(folder).stacks] == [("volume", 10), ("volume", 10)]
    (stack,) = _series(folder, "line").stacks
    assert stack.role == "volume" and stack.slice_count == 20
    assert "20 images kept in one stack despite positions on different lines (2 groups), as chosen" in stack.reasons
    assert IrregularityKind.NON_COLLINEAR in {i.kind for i in stack.geometry.irregularities}


def test_image_types_kept_together_leave_the_localizer_apart(tmp_path):
    derived = ("DERIVED", "PRIMARY", "AXIAL")
    slices = _axial(10, 2.0) + [dataclasses.replace(s, image_type=derived, instance_number=s.instance_number + 10)
                                for s in _axial(10, 2.0, start_mm=20.0)]
    localizer = SyntheticSlice(position_lps_mm=(0.0, 0.0, 10.0), col_cosines=(0.0, 0.0, -1.0), instance_number=0,
                               image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))
    write_series(SyntheticSeries(slices + [localizer]), tmp_path)
    assert [(s.role, s.slice_count) for s in _series(tmp_path).stacks] == [("volume", 10), ("volume", 10),
                                                                          ("localizer", 1)]
    volume, kept_apart = _series(tmp_path, "image-type").stacks
    assert (volume.role, volume.slice_count, kept_apart.role, kept_apart.slice_count) == ("volume", 20, "localizer", 1)
    assert "20 images kept in one stack despite different image types (2 groups), as chosen" in volume.reasons
    assert not volume.geometry.irregularities  # one regular run of 20 slices 2 mm apart


def test_multi_frame_stacks_kept_together_are_one_stack(tmp_path):
    slices = _axial(8, 2.0, stack_id="1") + [dataclasses.replace(s, stack_id="2", instance_number=s.instance_number + 8)
                                             for s in _axial(8, 2.0, start_mm=16.0)]
    write_series(SyntheticSeries(slices, modality="MR"), tmp_path, multiframe=True)
    assert [s.slice_count for s in _series(tmp_path).stacks] == [8, 8]
    (stack,) = _series(tmp_path, "storage").stacks
    assert stack.slice_count == 16 and not stack.geometry.irregularities
    assert "16 images kept in one stack despite different storage (2 groups), as chosen" in stack.reasons


def test_a_split_that_parts_nothing_adds_no_reason(write_phantom):
    folder = write_phantom("regular")
    assert _series(folder, "image-type", "storage", "line").stacks[0].reasons == _series(folder).stacks[0].reasons


def test_keep_together_is_validated_and_kept_in_a_fixed_order():
    options = ConvertOptions(keep_together=["line", "IMAGE-TYPE", StackSplit.LINE])
    assert options.keep_together == (StackSplit.IMAGE_TYPE, StackSplit.LINE)
    assert options.to_dict()["keep_together"] == ["image-type", "line"]
    with pytest.raises(ValueError, match="stack split must be one of image-type, storage, line; got 'orientation'"):
        ConvertOptions(keep_together=["orientation"])
    with pytest.raises(ValueError, match="keep_together must be a list of image-type, storage, line; got 'line'"):
        ConvertOptions(keep_together="line")


def test_convert_keeps_the_blocks_together_and_reports_it(write_phantom, tmp_path, capsys):
    folder = write_phantom("parallel_offset_blocks")
    assert main(["inspect", str(folder), "--keep-together", "line"]) == 0
    assert "kept in one stack despite positions on different lines" in capsys.readouterr().out
    out = tmp_path / "out"
    status = main(["convert", str(folder), "-o", str(out), "--keep-together", "line"])
    report = json.loads((out / "report.json").read_text())
    assert report["options"]["keep_together"] == ["line"]
    assert len(report["series"][0]["stacks"]) == 1
    assert status == 0, capsys.readouterr()
    assert len(list(out.glob("*.nrrd"))) == 1
    with pytest.raises(SystemExit):
        main(["convert", str(folder), "-o", str(out), "--keep-together", "size"])
    assert "stack split must be one of image-type, storage, line; got 'size'" in capsys.readouterr().err
