"""One volume from several series in Slicer, on a real MRML scene from the slicer-core wheel: what
the DICOM plugin offers for a selection of several series, the assembled volume it loads, and
volumes loaded separately assembled from the module logic. Every assembled volume is compared,
voxel by voxel and in geometry, with what ``irregular-series convert --assemble`` writes for the
same series and options. Phantoms are the stations of ``test_assembly`` (real DICOM files whose
voxels encode their position).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="needs the slicer-core wheel (requirements/test.txt)")
import slicer.util  # noqa: E402, F811 (the submodule, after the skip)
from vtkmodules.vtkCommonMath import vtkMatrix4x4  # noqa: E402

from irregular_series import analyze  # noqa: E402
from irregular_series.analysis import analyze_slices  # noqa: E402
from irregular_series.conversion import convert  # noqa: E402
from irregular_series.headers import scan  # noqa: E402
from irregular_series.options import ConvertOptions  # noqa: E402
from irregular_series.slicer import assembling  # noqa: E402
from irregular_series.slicer import scene as mrml  # noqa: E402
from irregular_series.slicer.assembly_offers import (  # noqa: E402
    CONFIDENCE_ASSEMBLED,
    OTHER_FRAMES_CHECKBOX,
    assembly_offers,
)
from irregular_series.slicer.examine import examine_series, slicer_series_name  # noqa: E402
from irregular_series.testing.synthetic import uid  # noqa: E402

from phantoms import SAGITTAL  # noqa: E402
from test_assembly import station  # noqa: E402
from volume_checks import ROUNDING, encoding_error, read_nrrd  # noqa: E402

SCALAR_VOLUME_PLUGIN_CONFIDENCE = 0.5


@pytest.fixture
def scene():
    mrml_scene = slicer.vtkMRMLScene()
    yield mrml_scene
    mrml_scene.Clear(1)


def _ijk_to_lps(node) -> np.ndarray:
    matrix = vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ slicer.util.arrayFromVTKMatrix(matrix)


def _assert_as_convert_writes(nodes: list, root: Path, out: Path, **options) -> None:
    """The nodes hold exactly the volumes ``convert`` writes for the assembly of ``root``'s series."""
    result = convert([root], out, ConvertOptions(**options), progress=False)
    assert result.failures == []
    written = [o for o in result.outputs if o.assembly is not None]
    assert len(nodes) == len(written) >= 1
    for node, output in zip(nodes, written):
        volume = read_nrrd(output.path)
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), volume.array)
        np.testing.assert_allclose(_ijk_to_lps(node), volume.index_to_lps, rtol=0, atol=1e-9)


def two_stations(root: Path) -> tuple[str, str]:
    """Series 4 (-25 to 22.5 mm) and 5 (12.5 to 60 mm), 2.5 mm steps: a 10 mm overlap."""
    return station(root, "upper", 20, 2.5, -25.0, 4), station(root, "lower", 20, 2.5, 12.5, 5)


def three_grids(root: Path) -> None:
    """Three stations of different pixel spacing and matrix, overlaps 7.5 and 12.5 mm."""
    station(root, "a", 20, 2.5, -25.0, 4)
    station(root, "b", 20, 2.5, 15.0, 5, size=24, spacing_mm=1.5)
    station(root, "c", 12, 2.5, 50.0, 6, size=40, spacing_mm=0.75)


def gap(root: Path) -> None:
    """Two stations 5 mm further apart than one step."""
    station(root, "a", 10, 2.0, 0.0, 1)
    station(root, "b", 10, 2.0, 25.0, 2)


def one_series_per_slice(root: Path) -> None:
    for n, k in enumerate(np.random.default_rng(5).permutation(8)):
        station(root, f"s{n}", 1, 1.5, -6.0 + 1.5 * float(k), 100 + n)


# --- what the plugin offers for several selected series ---------------------------------------------


def test_a_selection_of_stations_offers_an_unselected_assembled_loadable_with_its_reasons(tmp_path):
    two_stations(tmp_path)
    analysis = analyze([tmp_path])
    per_series = [spec for series in analysis.series
                  for spec in examine_series(series, slicer_series_name(series), options=ConvertOptions())]
    (offer,) = assembly_offers(analysis, ConvertOptions())
    assert not offer.selected and offer.confidence == CONFIDENCE_ASSEMBLED
    # Grouped with its first file's series, it loses to that series' own loadables and Slicer's.
    assert offer.confidence < min(min(s.confidence for s in per_series), SCALAR_VOLUME_PLUGIN_CONFIDENCE)
    assert offer.name == "assembled from series 4 and 5 — 2 stations, overlap 10.0 mm, harden at 2.5 mm"
    assert offer.node_name == "assembled from series 4 and 5" and offer.spacing_mm == 2.5
    assert "Series 4 and 5 form one axial stack along the normal: 2 stations, overlap 10.0 mm." in offer.tooltip
    assert "They share one frame of reference and have parallel slices." in offer.tooltip
    assert "each overlap is cut at its middle" in offer.tooltip and "intensity differences" in offer.tooltip
    assert offer.warning == ""
    assert sorted(offer.files) == sorted(str(p) for p in tmp_path.rglob("*") if p.is_file())


def test_differing_in_plane_grids_and_gaps_are_named(tmp_path):
    three_grids(tmp_path / "grids")
    gap(tmp_path / "gap")
    (grids,) = assembly_offers(analyze([tmp_path / "grids"]), ConvertOptions())
    assert grids.name == ("assembled from series 4, 5 and 6 — 3 stations, overlaps 7.5 mm and 12.5 mm, "
                          "in-plane grids differ, harden at 2.5 mm")
    assert "Their in-plane grids differ (series 4: 32x32 pixels of 1x1 mm" in grids.tooltip
    (gapped,) = assembly_offers(analyze([tmp_path / "gap"]), ConvertOptions(spacing="median"))
    assert gapped.name == "assembled from series 1 and 2 — 2 stations, gap 5.0 mm, harden at 2 mm"
    assert "gaps between series: interpolate across the gap" in gapped.tooltip


def test_one_series_alone_and_series_of_other_frames_are_not_offered(tmp_path):
    a, _ = two_stations(tmp_path / "pair")
    (series,) = [s for s in analyze([tmp_path / "pair"]).series if s.series_instance_uid == a]
    assert assembly_offers(dataclasses.replace(analyze([tmp_path / "pair"]), series=[series]), ConvertOptions()) == []
    station(tmp_path / "frames", "a", 10, 2.0, 0.0, 1)
    station(tmp_path / "frames", "b", 10, 2.0, 16.0, 2, series_fields={"frame_of_reference_uid": uid("another frame")})
    assert assembly_offers(analyze([tmp_path / "frames"]), ConvertOptions()) == []


def test_options_that_cannot_apply_say_so_on_the_offer(tmp_path):
    station(tmp_path, "a", 10, 2.0, 0.0, 1, spacing_between_slices_mm=None, slice_thickness_mm=None)
    station(tmp_path, "b", 10, 2.0, 20.0, 2, spacing_between_slices_mm=None, slice_thickness_mm=None)
    (offer,) = assembly_offers(analyze([tmp_path]), ConvertOptions(spacing="nominal"))
    assert offer.spacing_mm is None and "harden at" not in offer.name
    assert offer.warning.startswith("Cannot be assembled with these settings:") and "no nominal" in offer.warning


# --- loading the offer --------------------------------------------------------------------------------


CASES = {
    "two stations, overlap cut at the middle": (two_stations, {}),
    "two stations blended": (two_stations, {"overlap": "blend"}),
    "three in-plane grids": (three_grids, {}),
    "a gap, split": (gap, {"gaps": "split", "spacing": 1.0}),
    "one series per slice": (one_series_per_slice, {}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_loading_the_offer_gives_what_convert_assemble_writes(scene, tmp_path, case):
    write, options = CASES[case]
    root = tmp_path / "in"
    write(root)
    chosen = ConvertOptions(**options)
    (offer,) = assembly_offers(analyze([root]), chosen)
    nodes = assembling.load_assembly(scene, offer.candidate, chosen, offer.node_name)
    _assert_as_convert_writes(nodes, root, tmp_path / "out", assemble=True, **options)
    assert nodes[0].GetName().startswith(offer.node_name)
    assert float(nodes[0].GetSpacing()[2]) == pytest.approx(offer.spacing_mm)


def test_the_assembled_volume_carries_what_the_module_panel_shows(scene, tmp_path):
    two_stations(tmp_path)
    (offer,) = assembly_offers(analyze([tmp_path]), ConvertOptions())
    (node,) = assembling.load_assembly(scene, offer.candidate, ConvertOptions(), offer.node_name)
    assert node.GetAttribute(mrml.SPACING_ATTRIBUTE) == "2.5"
    assert float(node.GetAttribute(mrml.VERIFICATION_ATTRIBUTE)) == 0.0
    decisions = json.loads(node.GetAttribute(mrml.DECISIONS_ATTRIBUTE))
    assert decisions[0].startswith("assembled from series 4 and 5: series 4 and 5 form one axial stack")
    assert any(d.startswith("intensity in the overlap of series 4 and series 5: median difference +0") for d in decisions)
    assert any(d.startswith("series 4 (-25.00–22.50 mm): used -25.00–15.00 mm, 17 slice(s), 3 left out")
               for d in decisions)
    assert any("(Overlap: middle)" in d for d in decisions)
    assert json.loads(node.GetAttribute(mrml.CONTENT_ATTRIBUTE))["ok"] is True
    record = json.loads(node.GetAttribute(assembling.ASSEMBLY_ATTRIBUTE))
    assert record["reasons"] == list(offer.candidate.reasons) and record["options"]["overlap"] == "middle"
    assert [len(s["used_files"]) for s in record["assembly"]["sources"]] == [17, 18]
    assert len(node.GetAttribute(mrml.INSTANCE_UIDS_ATTRIBUTE).split()) == 35
    assert assembling.assembly_heading(node) == "assembled from series 4 and 5: one volume from 2 series"
    assert node.GetAttribute(mrml.STACK_ATTRIBUTE) is None  # no one stack: not hardened or exported as one


def test_headers_from_the_database_load_too(scene, tmp_path):
    """The plugin reads headers from Slicer's DICOM database, which lacks the transfer syntax."""
    two_stations(tmp_path)
    headers = [dataclasses.replace(s, transfer_syntax_uid="") for s in scan([tmp_path], workers=1).slices]
    (offer,) = assembly_offers(analyze_slices(headers), ConvertOptions())
    nodes = assembling.load_assembly(scene, offer.candidate, ConvertOptions())
    _assert_as_convert_writes(nodes, tmp_path, tmp_path.parent / "out", assemble=True)


# --- volumes loaded separately, assembled from the module logic --------------------------------------


def test_separately_loaded_volumes_assemble_into_what_convert_writes(scene, tmp_path):
    a, b = two_stations(tmp_path / "in")
    nodes = mrml.load_series(scene, [tmp_path / "in"])
    assert [n.GetName() for n in nodes] == ["4: upper", "5: lower"]
    options = ConvertOptions(overlap="first", spacing=1.25)
    found = assembling.examine_volumes(nodes[::-1], options)
    assert found.refusal == "" and found.candidate.series_uids == (a, b)
    assert found.lines[0] == "Series 4 and 5 form one axial stack along the normal: 2 stations, overlap 10.0 mm."
    assert "one volume on a regular 1.25 mm grid" in found.lines[-1]
    assert "the series earlier along the stack" in found.lines[-1]
    (joined,) = assembling.assemble_volumes(scene, nodes[::-1], options)
    _assert_as_convert_writes([joined], tmp_path / "in", tmp_path / "out", assemble=(a, b), overlap="first",
                              spacing=1.25)
    sh = scene.GetSubjectHierarchyNode()
    assert sh.GetItemParent(sh.GetItemByDataNode(joined)) == sh.GetItemParent(sh.GetItemByDataNode(nodes[1]))
    assert encoding_error(read_nrrd(next((tmp_path / "out").glob("*assembled*.nrrd")))) <= ROUNDING


def test_other_frames_of_reference_only_when_allowed(scene, tmp_path):
    a = station(tmp_path / "in", "a", 10, 2.0, 0.0, 1)
    b = station(tmp_path / "in", "b", 10, 2.0, 16.0, 2, series_fields={"frame_of_reference_uid": uid("another frame")})
    nodes = mrml.load_series(scene, [tmp_path / "in"])
    refused = assembling.examine_volumes(nodes, ConvertOptions())
    assert refused.candidate is None and f'Tick "{OTHER_FRAMES_CHECKBOX}"' in refused.refusal
    assert "do not share one frame of reference" in refused.refusal
    with pytest.raises(ValueError, match="do not share one frame of reference"):
        assembling.assemble_volumes(scene, nodes, ConvertOptions())
    allowed = assembling.examine_volumes(nodes, ConvertOptions(), allow_other_frames=True)
    assert any("frames of reference differ or are missing" in line for line in allowed.lines)
    joined = assembling.assemble_volumes(scene, nodes, ConvertOptions(), allow_other_frames=True)
    _assert_as_convert_writes(joined, tmp_path / "in", tmp_path / "out", assemble=(a, b))


@pytest.mark.parametrize(
    "second, reason",
    [
        ({"start_mm": 30.0, "orientation": SAGITTAL}, "is not parallel to series 1 (orientations differ by 90.00°"),
        ({"start_mm": 0.0}, "do not follow each other along the normal (one covers the other's start or end)"),
        ({"start_mm": 4.0, "count": 4}, "do not follow each other along the normal"),
    ],
    ids=["two orientations", "same range", "one inside the other"],
)
def test_volumes_that_do_not_form_one_stack_are_refused_with_the_reason(scene, tmp_path, second, reason):
    station(tmp_path, "first", 10, 2.0, 0.0, 1)
    fields = {"count": 10, **second}
    station(tmp_path, "second", fields.pop("count"), 2.0, fields.pop("start_mm"), 2, **fields)
    nodes = mrml.load_series(scene, [tmp_path])
    found = assembling.examine_volumes(nodes, ConvertOptions())
    assert found.candidate is None and found.refusal.startswith("They do not form one stack: ")
    assert reason in found.refusal
    before = scene.GetNumberOfNodes()
    with pytest.raises(ValueError, match="do not form one stack"):
        assembling.assemble_volumes(scene, nodes, ConvertOptions())
    assert scene.GetNumberOfNodes() == before


def test_one_volume_twice_or_volumes_not_from_the_plugin_are_refused(scene, tmp_path):
    two_stations(tmp_path)
    first, _ = mrml.load_series(scene, [tmp_path])
    (hardened,) = mrml.harden(scene, first, mrml.stack_of(first), None, ConvertOptions(spacing=1.0))
    same = assembling.examine_volumes([first, hardened], ConvertOptions())
    assert same.refusal == f"{first.GetName()} and {hardened.GetName()} were loaded from the same images."
    other = mrml.add_volume(scene, np.zeros((2, 2, 2), np.int16), np.eye(4), "other")
    assert "was not loaded by IrregularSeries" in assembling.examine_volumes([first, other], ConvertOptions()).refusal
    assert assembling.examine_volumes([first], ConvertOptions()).refusal.startswith("Pick two or more volumes")
