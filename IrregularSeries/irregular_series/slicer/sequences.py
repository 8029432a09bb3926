"""Scene logic for volume series: one sequence node of verified volumes on one common grid, and a
sequence browser to step through it.

A volume series (``irregular_series.timeseries``, ``series_volumes``: time points, cardiac phases, echoes of one stack)
loads as a ``vtkMRMLSequenceNode`` whose data nodes are its volumes, each built on the series'
common grid and verified as ``convert --4d`` does, indexed by the series' axis ("time", s; "trigger
time", ms; "echo time", ms; "volume"), with a ``vtkMRMLSequenceBrowserNode`` whose proxy volume
shows the selected one. Every data node carries what a hardened volume carries (``scene``'s
attributes: its stack, decisions, content check, options) and ``SEQUENCE_ATTRIBUTE``, the series'
axis and reasons; the browser copies a data node's attributes onto the proxy whenever it shows it,
so the module panel sees the proxy as the hardened volume of the time point it shows.

The browser's proxy node is made and updated by Slicer's Sequences module logic, which observes the
scene (in Slicer from start-up, without its module panel ever being opened; headless, a
``vtkSlicerSequencesLogic`` given the scene does the same). Without it the browser node class is not
even registered, and ``add_sequence`` says so.

Needs ``slicer`` (the application or the slicer-core wheel), never Qt; every function takes the scene.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import slicer

from ..geometry import analyze_geometry
from ..grouping import count
from ..model import Stack
from ..options import ConvertOptions
from ..orientation import LPS_TO_RAS
from ..series_volumes import SeriesVolumes, build_volume_series, plan_volume_series
from ..timeseries import AxisKind, SeriesAxis, VolumeSeries
from .progress import Progress, ReportProgress, all_or_nothing, progress_of
from .scene import STACK_ATTRIBUTE, _stack_record, add_stack_volume, harden, mark_hardened, stack_pixels

SEQUENCE_ATTRIBUTE = "IrregularSeries.sequence"
"""Data node (and so proxy node) and sequence node attribute: JSON with the series' axis
(``SeriesAxis.to_dict``), its label and reasons."""


@dataclass(frozen=True)
class LoadedSequence:
    """What loading a volume series made: the sequence, its browser, the proxy volume node that shows
    the selected item, and the volume nodes of volumes converted on their own (``apart``: the split
    policies cut them, so they are not on the grid)."""

    sequence: object
    browser: object
    proxy: object
    apart: tuple[object, ...] = ()


def load_sequence(scene, series: VolumeSeries, options: ConvertOptions, name: str,
                  pixels: Callable[[Stack], np.ndarray] = stack_pixels,
                  progress: ReportProgress | Progress | None = None) -> LoadedSequence:
    """Build every volume of ``series`` on its common grid (each verified; ``VerificationError``
    for the first that fails), and add them to ``scene`` as one sequence named ``name`` with a
    browser. Volumes the split policies cut are loaded as hardened volumes of their own
    (``LoadedSequence.apart``). ``pixels(stack)`` reads a stack's slices. ``progress`` as in
    ``irregular_series.slicer.progress``: when it asks to stop, or anything fails, no node made
    here stays in the scene."""
    report = progress_of(progress)
    with all_or_nothing(scene):
        plan = plan_volume_series(series, options)
        by_stack = {}
        for n, st in enumerate(series.stacks):
            report(0.5 * n / len(series.stacks), f"Reading {series.axis.value_text(series.axis.values[n])}")
            by_stack[st.id] = pixels(st)
        rows = {st.id: {(s.path, s.sop_instance_uid, s.frame): k for k, s in enumerate(st.slices)}
                for st in series.stacks}
        member_pixels = [by_stack[p.stack.id][[rows[p.stack.id][(s.path, s.sop_instance_uid, s.frame)] for s in p.slices]]
                         for p in plan.members]
        report(0.5, f"Resampling and verifying {count(len(plan.members), 'volume')} on the common grid")
        built = build_volume_series(plan, options, member_pixels)
        report(0.9, "Making the sequence")
        loaded = add_sequence(scene, built, options, name)
        apart = []
        for stack in {p.stack.id: p.stack for p in plan.apart}.values():
            node = add_stack_volume(scene, stack, by_stack[stack.id], f"{name} — {series.axis.name} apart, stack {stack.id}")
            apart += harden(scene, node, stack, by_stack[stack.id], options, replace=True)
    report.finished("Loaded")
    return LoadedSequence(loaded.sequence, loaded.browser, loaded.proxy, tuple(apart))


def add_sequence(scene, built: SeriesVolumes, options: ConvertOptions, name: str) -> LoadedSequence:
    """The built volumes of a series as a sequence node named ``name`` (index: the series' axis),
    its browser and its proxy volume node, placed in the subject hierarchy."""
    axis = built.plan.axis
    sequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode", scene.GenerateUniqueName(name))
    sequence.SetIndexName(axis.name)
    sequence.SetIndexUnit(axis.unit)
    sequence.SetIndexType(slicer.vtkMRMLSequenceNode.NumericIndex)
    record = json.dumps(_sequence_record(built.plan.series, axis))
    sequence.SetAttribute(SEQUENCE_ATTRIBUTE, record)
    for volume, value in zip(built.volumes, axis.values):
        node = slicer.vtkMRMLScalarVolumeNode()
        node.SetName(f"{name} {axis.value_text(value)}")
        node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(LPS_TO_RAS @ volume.grid.index_to_lps))
        slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(volume.array))
        node.SetAttribute(STACK_ATTRIBUTE, json.dumps(_stack_record(volume.part.stack)))
        node.SetAttribute(SEQUENCE_ATTRIBUTE, record)
        mark_hardened(node, volume, options)
        sequence.SetDataNodeAtValue(node, f"{value:.9g}")  # the sequence keeps its own copy
    browser = scene.AddNewNodeByClass("vtkMRMLSequenceBrowserNode", scene.GenerateUniqueName(f"{name} browser"))
    if browser is None:
        scene.RemoveNode(sequence)
        raise RuntimeError("no sequence browser can be added to this scene: Slicer's Sequences module logic "
                           "(vtkSlicerSequencesLogic) must observe it")
    browser.SetAndObserveMasterSequenceNodeID(sequence.GetID())
    browser.SetSelectedItemNumber(0)
    proxy = browser.GetProxyNode(sequence)
    if proxy is None:
        scene.RemoveNode(browser)
        scene.RemoveNode(sequence)
        raise RuntimeError("the sequence browser made no proxy volume: Slicer's Sequences module logic "
                           "(vtkSlicerSequencesLogic) must observe the scene")
    proxy.SetName(name)
    browser.SetOverwriteProxyName(sequence, False)
    proxy.CreateDefaultDisplayNodes()
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    for node in (sequence, browser, proxy):
        if not sh.GetItemByDataNode(node):
            sh.CreateItem(sh.GetSceneItemID(), node)
    return LoadedSequence(sequence, browser, proxy)


def _sequence_record(series: VolumeSeries, axis: SeriesAxis) -> dict[str, Any]:
    return {"axis": axis.to_dict(), "label": series.label, "reasons": list(series.reasons)}


def sequence_of(scene, node):
    """The sequence node ``node`` is (a sequence made by ``add_sequence``), or whose browser shows
    it as its proxy; ``None`` when neither."""
    if node.IsA("vtkMRMLSequenceNode"):
        return node if node.GetAttribute(SEQUENCE_ATTRIBUTE) else None
    browsers = scene.GetNodesByClass("vtkMRMLSequenceBrowserNode")
    for index in range(browsers.GetNumberOfItems()):
        browser = browsers.GetItemAsObject(index)
        sequence = browser.GetMasterSequenceNode()
        if sequence is not None and browser.GetProxyNode(sequence) is node and sequence.GetAttribute(SEQUENCE_ATTRIBUTE):
            return sequence
    return None


def series_of(sequence, stack_of: Callable[[object], Stack], options: ConvertOptions) -> VolumeSeries:
    """The volume series a sequence was made of, rebuilt from the instances its volumes remember
    (``stack_of(volume_node)``, e.g. ``StackCache.stack``), each volume's geometry analysed again
    against the positions of all of them (so a volume that lost slices is seen against the others)."""
    record = json.loads(sequence.GetAttribute(SEQUENCE_ATTRIBUTE))
    rebuilt = [stack_of(sequence.GetNthDataNode(k)) for k in range(sequence.GetNumberOfDataNodes())]
    every = [s for st in rebuilt for s in st.slices]
    stacks = []
    for st in rebuilt:
        again = Stack(st.id, st.role, st.reasons, st.slices, name=st.name, volume_set=st.volume_set or "set")
        again.geometry = analyze_geometry(st.slices, options.tolerances, every)
        stacks.append(again)
    axis = record["axis"]
    series_axis = SeriesAxis(AxisKind(axis["kind"]), axis["name"], axis["unit"], tuple(axis["values"]), axis["reason"])
    return VolumeSeries(stacks, series_axis, record["label"], record["reasons"])


def harden_sequence(scene, node, stack_of: Callable[[object], Stack], options: ConvertOptions,
                    progress: ReportProgress | Progress | None = None) -> LoadedSequence:
    """The sequence ``node`` is (or shows, as its browser's proxy) built again from its source
    slices with ``options`` (spacing and policies), as a new sequence with its own browser next to
    it; the original is left as it is. ``ValueError`` when ``node`` belongs to no sequence made here."""
    sequence = sequence_of(scene, node)
    if sequence is None:
        raise ValueError(f"{node.GetName()} is not a sequence loaded by IrregularSeries, nor its proxy volume")
    series = series_of(sequence, stack_of, options)
    spacing = options.spacing
    label = f"{spacing:g} mm" if isinstance(spacing, float) else str(spacing)
    return load_sequence(scene, series, options, f"{sequence.GetName()} {label}", progress=progress)
