"""``inspect --plot``: one spacing-profile PNG per stack, with irregularities marked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from irregular_series.cli import main

pyplot = pytest.importorskip("matplotlib.pyplot", reason="--plot needs matplotlib (the 'plot' extra)")

MISSING_RED = np.array([0xD6, 0x27, 0x28]) / 255  # matplotlib's tab:red, the missing-slice marker


def _plots(tmp_path: Path, folder: Path) -> list[Path]:
    out = tmp_path / "plots"
    assert main(["inspect", str(folder), "--plot", str(out)]) == 0
    return sorted(out.glob("*.png"))


def _red_pixels(png: Path) -> int:
    image = pyplot.imread(png)[..., :3]
    return int(np.all(np.abs(image - MISSING_RED) < 0.02, axis=-1).sum())


def test_one_picture_per_stack_of_two_or_more_slices(tmp_path, write_phantom):
    pngs = _plots(tmp_path, write_phantom("two_orientations"))
    assert [p.name for p in pngs] == ["1_two_orientations_stack1_spacing.png", "1_two_orientations_stack2_spacing.png"]
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert pyplot.imread(png).shape[:2] == (360, 800)


def test_missing_slices_are_marked_and_regular_stacks_are_not(tmp_path, write_phantom):
    (missing,) = _plots(tmp_path / "a", write_phantom("missing_slices"))
    (regular,) = _plots(tmp_path / "b", write_phantom("regular"))
    assert _red_pixels(missing) > 20
    assert _red_pixels(regular) == 0


def test_single_image_stacks_get_no_picture(tmp_path, write_phantom):
    pngs = _plots(tmp_path, write_phantom("localizer_inside_siemens"))
    assert len(pngs) == 1 and "stack1" in pngs[0].name
