"""Scene logic for one volume from several series: the DICOM plugin's "assembled from N series"
loadable, and volumes loaded separately assembled from the module panel.

Both join as ``irregular-series convert --assemble`` does (``joining.build_assembly``, the same
options give the same voxels and geometry), and the result is a verified volume node with the
attributes of hardened volumes (``scene.record_verified``) plus ``ASSEMBLY_ATTRIBUTE``. Every
function takes the scene (or nodes of it); what is decided before pixels are read is in
``assembly_offers``. Slicer itself is reached only through ``scene``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..assembly import AssemblyCandidate
from ..joining import build_assembly
from ..model import SliceHeader, Stack
from ..options import ConvertOptions
from . import scene as irregularScene
from .assembly_offers import VolumesAssembly, volumes_assembly
from .progress import Progress, ReportProgress, all_or_nothing, progress_of

ASSEMBLY_ATTRIBUTE = "IrregularSeries.assembly"
"""Volume node attribute of an assembled volume: JSON with its ``title``, the candidate's
``reasons``, the ``options`` it was joined with and the report's ``assembly`` entry (every
source's range, the files used and left out, junctions, intensity differences in overlaps)."""

_ASSEMBLY_OPTIONS = ("spacing", "gaps", "overlap", "interpolation", "in_plane_spacing_mm", "tolerances")
"""The options that decide an assembled volume, recorded in ``ASSEMBLY_ATTRIBUTE``."""

StackOf = Callable[[object], Stack]
"""``stack_of(volume_node)``: the stack a volume was loaded from (``scene.stack_of``, or a
``scene.StackCache``'s ``stack``)."""


def load_assembly(scene, candidate: AssemblyCandidate, options: ConvertOptions, name: str = "",
                  progress: ReportProgress | Progress | None = None) -> list[Any]:
    """The candidate joined under ``options`` into verified volume nodes named ``name`` (default
    the candidate's title): one, or one per part when the gap policy splits at a gap between
    series. Raises ``ValueError`` when the options cannot apply and ``VerificationError`` when a
    slice would not land where its header says; ``progress`` (see ``progress``) is told as the
    pixels are read and as each node is added, and ``Cancelled`` stops it. The scene is
    unchanged when it raises."""
    report = progress_of(progress)
    total = sum(len(station.stack.slices) for station in candidate.stations)
    read = [0]

    def load(slices: Sequence[SliceHeader], dtype: np.dtype) -> np.ndarray:
        # Called once per in-plane size: each call's share of the reading is its share of the slices.
        share = report.part(0.8 * read[0] / total, 0.8 * min(1.0, (read[0] + len(slices)) / total))
        read[0] += len(slices)
        return _pixels(slices, dtype, share)

    with all_or_nothing(scene):
        joined = build_assembly(candidate, options, load=load)
        nodes = []
        for one in joined:
            volume = one.volume
            label = f" {volume.part.label}" if volume.part.label else ""
            node = irregularScene.add_volume(scene, volume.array, volume.grid.index_to_lps,
                                             f"{name or candidate.title}{label}")
            irregularScene.record_verified(node, volume)
            node.SetAttribute(ASSEMBLY_ATTRIBUTE, json.dumps({
                "title": candidate.title,
                "reasons": list(candidate.reasons),
                "options": {key: options.to_dict()[key] for key in _ASSEMBLY_OPTIONS},
                "assembly": one.record,
            }))
            node.SetAttribute(irregularScene.INSTANCE_UIDS_ATTRIBUTE,
                              " ".join(dict.fromkeys(s.sop_instance_uid for s in volume.part.slices)))
            nodes.append(node)
            report(0.8 + 0.2 * len(nodes) / len(joined), f"Adding {node.GetName()}")
    report.finished("Loaded")
    return nodes


def examine_volumes(volume_nodes: Sequence[Any], options: ConvertOptions, *, allow_other_frames: bool = False,
                    stack_of: StackOf = irregularScene.stack_of) -> VolumesAssembly:
    """Whether volumes loaded separately by the DICOM plugin form one stack, and what assembling
    them under ``options`` does (``assembly_offers.volumes_assembly``); a volume whose stack cannot
    be rebuilt (not loaded by the plugin, images gone) is the refusal's reason."""
    stacks = []
    for node in volume_nodes:
        try:
            stacks.append(stack_of(node))
        except ValueError as err:
            return VolumesAssembly(None, (), f"{err}.")
    return volumes_assembly(stacks, options, names=[node.GetName() for node in volume_nodes],
                            allow_other_frames=allow_other_frames)


def assemble_volumes(scene, volume_nodes: Sequence[Any], options: ConvertOptions, *, allow_other_frames: bool = False,
                     stack_of: StackOf = irregularScene.stack_of,
                     progress: ReportProgress | Progress | None = None) -> list[Any]:
    """Volumes loaded separately by the DICOM plugin joined into one (``load_assembly``, with its
    ``progress``), placed in the subject hierarchy next to the first; ``ValueError`` says why when
    they do not form one stack (``examine_volumes``)."""
    assembly = examine_volumes(volume_nodes, options, allow_other_frames=allow_other_frames, stack_of=stack_of)
    if assembly.candidate is None:
        raise ValueError(assembly.refusal)
    nodes = load_assembly(scene, assembly.candidate, options, progress=progress)
    sh = scene.GetSubjectHierarchyNode()
    folder = sh.GetItemParent(sh.GetItemByDataNode(volume_nodes[0]))
    for node in nodes:
        sh.SetItemParent(sh.GetItemByDataNode(node), folder)
    return nodes


def assembly_heading(volume_node) -> str:
    """The module panel's first line for an assembled volume ("" for any other volume)."""
    text = volume_node.GetAttribute(ASSEMBLY_ATTRIBUTE)
    if not text:
        return ""
    record = json.loads(text)
    return f"{record['title']}: one volume from {len(record['assembly']['sources'])} series"


def _pixels(slices: Sequence[SliceHeader], dtype: np.dtype, progress: Progress) -> np.ndarray:
    """The slices' rescaled pixels in ``dtype``, read as loading a stack reads them (headers from
    Slicer's DICOM database included)."""
    return irregularScene.stack_pixels(Stack("", "volume", [], list(slices)), progress, dtype=dtype)
