"""Progress and cancellation of the scene functions, on a real MRML scene (slicer-core wheel).

Every operation is run once to record its reports, then cancelled at each of them in turn: the
reports never go back, and a cancelled operation leaves the scene exactly as it was (the same
nodes, subject hierarchy items, voxels and transforms).
"""

from __future__ import annotations

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="needs the slicer-core wheel (requirements/test.txt)")
import slicer.util  # noqa: E402, F811 (the submodule, after the skip)
from vtkmodules.vtkCommonCore import vtkIdList  # noqa: E402

from irregular_series import analyze  # noqa: E402
from irregular_series.options import ConvertOptions  # noqa: E402
from irregular_series.pixels import load_pixels  # noqa: E402
from irregular_series.slicer import assembling  # noqa: E402
from irregular_series.slicer import scene as mrml  # noqa: E402
from irregular_series.slicer.assembly_offers import assembly_offers  # noqa: E402
from irregular_series.slicer.progress import Cancelled, Progress, all_or_nothing  # noqa: E402

from test_assembling import gap, three_grids  # noqa: E402


class Recorder:
    """A progress callback that records its reports and asks to stop at report number ``stop_at``."""

    def __init__(self, stop_at: int | None = None) -> None:
        self.stop_at = stop_at
        self.reports: list[tuple[float, str]] = []

    def __call__(self, fraction: float, message: str) -> bool:
        self.reports.append((fraction, message))
        return len(self.reports) == self.stop_at


def _state(scene, *volumes) -> dict:
    """What must not change when an operation is cancelled."""
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    items = vtkIdList()
    sh.GetItemChildren(sh.GetSceneItemID(), items, True)
    return {
        "nodes": sorted(scene.GetNthNode(n).GetID() for n in range(scene.GetNumberOfNodes())),
        "items": sorted(items.GetId(n) for n in range(items.GetNumberOfIds())),
        "volumes": [(v.GetTransformNodeID(), v.GetImageData().GetDimensions(), slicer.util.arrayFromVolume(v).tobytes(),
                     v.GetAttribute(mrml.SPACING_ATTRIBUTE)) for v in volumes],
    }


def _volume_stack(folder):
    return next(s for s in analyze([folder]).series[0].stacks if s.role == "volume")


def _check_reports(reports: list[tuple[float, str]]) -> None:
    fractions = [f for f, _ in reports]
    assert fractions == sorted(fractions), fractions
    assert 0.0 <= fractions[0] and fractions[-1] == 1.0
    assert all(message for _, message in reports)


def _cancel_at_every_report(scene, operation, *volumes) -> int:
    """Run ``operation(progress)`` once to count its reports, then in a fresh state cancel it at
    each report but the last (the results are in the scene by then): each time ``Cancelled`` is
    raised and the scene is as before. Returns the number of reports."""
    before = _state(scene, *volumes)
    counting = Recorder()
    with pytest.raises(Cancelled, match="counted"), all_or_nothing(scene):  # its nodes are removed again
        operation(counting)
        raise Cancelled("counted")
    _check_reports(counting.reports)
    assert _state(scene, *volumes) == before
    for stop_at in range(1, len(counting.reports)):
        recorder = Recorder(stop_at)
        with pytest.raises(Cancelled):
            operation(recorder)
        assert len(recorder.reports) == stop_at
        assert _state(scene, *volumes) == before, f"cancelled at report {stop_at}: {recorder.reports[-1]}"
    return len(counting.reports)


def test_progress_shares_never_go_back_and_the_end_cannot_be_cancelled():
    recorder = Recorder(stop_at=3)
    progress = Progress(recorder)
    first, second = progress.part(0.0, 0.5), progress.part(0.5, 1.0)
    first(0.5, "Reading")
    first.part(0.0, 0.5)(1.0, "Reading more")  # 0.25: already passed, reported as 0.25 again
    with pytest.raises(Cancelled, match="cancelled while reading"):
        second(0.0, "Reading the rest")
    progress.finished("Done")  # asks to stop too, but nothing is left to cancel
    assert recorder.reports == [(0.25, "Reading"), (0.25, "Reading more"), (0.5, "Reading the rest"), (1.0, "Done")]
    Progress()(0.5, "nobody listens")  # no callback: nothing happens


def test_pixels_read_in_groups_of_files_are_the_same(write_phantom):
    stack = _volume_stack(write_phantom("stitched_sections"))
    recorder = Recorder()
    pixels = mrml.stack_pixels(stack, recorder)
    np.testing.assert_array_equal(pixels, load_pixels(stack.slices))
    assert pixels.dtype == load_pixels(stack.slices).dtype
    assert len(recorder.reports) == 1 + -(-stack.slice_count // 16)  # the start, then every 16 files
    _check_reports(recorder.reports)


@pytest.mark.parametrize("replace", [True, False])
def test_harden_cancelled_at_any_report_changes_nothing(scene, write_phantom, replace):
    stack = _volume_stack(write_phantom("missing_slices"))
    raw = mrml.add_stack_volume(scene, stack, mrml.stack_pixels(stack), "raw")
    mrml.create_acquisition_transform(scene, raw, stack)
    options = ConvertOptions(spacing=1.0, gaps="split")  # two parts, each reported

    def operation(progress):
        return mrml.harden(scene, raw, stack, None, options, replace=replace, progress=progress)

    # Replacing changes the raw volume itself, so only the cancelled runs may touch it.
    count = _cancel_at_every_report(scene, operation, raw) if not replace else None
    if replace:
        before = _state(scene, raw)
        for stop_at in range(1, 6):
            with pytest.raises(Cancelled):
                operation(Recorder(stop_at))
            assert _state(scene, raw) == before
        recorder = Recorder()
        nodes = operation(recorder)
        count = len(recorder.reports)
        _check_reports(recorder.reports)
        assert nodes[0] is raw and raw.GetAttribute(mrml.SPACING_ATTRIBUTE) == "1"
    assert count >= 5  # reading starts and ends, each of the two parts, the end


@pytest.mark.parametrize("load_mode", ["harden", "transform"])
def test_load_series_cancelled_at_any_report_leaves_no_node(scene, write_phantom, load_mode):
    folders = [write_phantom("gantry_tilt"), write_phantom("variable_spacing")]
    existing = mrml.add_volume(scene, np.zeros((2, 3, 4), np.int16), np.eye(4), "already there")

    def operation(progress):
        return mrml.load_series(scene, folders, ConvertOptions(spacing=2.0), load_mode=load_mode, progress=progress)

    count = _cancel_at_every_report(scene, operation, existing)
    assert count >= 6  # headers, then reading and regularizing each of the two series
    nodes = operation(None)
    assert len(nodes) == 2 and all(n.GetAttribute(mrml.STACK_ATTRIBUTE) for n in nodes)


@pytest.mark.parametrize(("write", "options", "volumes"), [
    (gap, {"gaps": "split", "spacing": 1.0}, 2),  # two volumes: each added is a report
    (three_grids, {}, 1),  # three in-plane grids: pixels are read in three calls
])
def test_an_assembled_load_cancelled_at_any_report_leaves_no_node(scene, tmp_path, write, options, volumes):
    write(tmp_path)
    chosen = ConvertOptions(**options)
    (offer,) = assembly_offers(analyze([tmp_path]), chosen)
    existing = mrml.add_volume(scene, np.zeros((2, 3, 4), np.int16), np.eye(4), "already there")

    def operation(progress):
        return assembling.load_assembly(scene, offer.candidate, chosen, offer.node_name, progress=progress)

    count = _cancel_at_every_report(scene, operation, existing)
    assert count >= 2 + volumes  # reading starts and ends, each volume added, the end
    assert len(operation(None)) == volumes


def test_a_failure_part_way_leaves_no_node_either(scene, write_phantom):
    folders = [write_phantom("gantry_tilt"), write_phantom("variable_spacing")]
    before = _state(scene)

    def fail_in_the_second_series(fraction: float, message: str) -> bool:
        if fraction > 0.6:
            raise RuntimeError("the disk went away")
        return False

    with pytest.raises(RuntimeError, match="disk went away"):
        mrml.load_series(scene, folders, ConvertOptions(spacing=2.0), load_mode="harden",
                         progress=fail_in_the_second_series)
    assert _state(scene) == before
