"""Progress of the long scene operations (load, harden, map back) and how they are cancelled.

A scene function that takes ``progress`` calls it as ``progress(fraction_done, message)``: the
fraction goes from 0 to 1 and never decreases within one call, the message says what is being
done. The callback returns True to ask to stop (as the callbacks of Slicer's ``DICOMUtils`` do);
the function then removes every node it added, leaves the nodes it was given as they were and
raises ``Cancelled``. The request takes effect at the next report (a step between two reports,
such as reading a group of files or resampling one part, runs to its end); only the last report,
made once the results are in the scene, cannot stop the operation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

ReportProgress = Callable[[float, str], "bool | None"]
"""``progress(fraction_done, message)``; returns True to ask the operation to stop."""


class Cancelled(Exception):
    """The operation stopped because its progress callback asked it to; the scene is as it was."""


@dataclass
class _Reported:
    """What one operation has reported so far, shared by all the ranges of its progress."""

    fraction: float = 0.0


@dataclass
class Progress:
    """The share ``start``..``end`` of an operation's progress, reported to ``report`` (or to
    nobody when it is None). ``progress(done, message)`` reports ``done`` (0..1) of this share and
    raises ``Cancelled`` when the callback asks to stop; ``part`` gives a sub-share for a step.
    ``outermost``: this is the whole of the operation the user asked for, not a step of it."""

    report: ReportProgress | None = None
    start: float = 0.0
    end: float = 1.0
    outermost: bool = True
    _reported: _Reported = field(default_factory=_Reported, repr=False)

    def __call__(self, done: float, message: str) -> None:
        if self.report is None:
            return
        fraction = self.start + (self.end - self.start) * min(max(done, 0.0), 1.0)
        # Steps report in order, but a step that ends early must not make the bar go back.
        self._reported.fraction = max(self._reported.fraction, fraction)
        if self.report(self._reported.fraction, message):
            raise Cancelled(f"cancelled while {message[:1].lower()}{message[1:]}")

    def finished(self, message: str) -> None:
        """Report the end of this share. At the end of the whole operation it is too late to stop
        (the results are in the scene); at the end of a step the caller can still undo it."""
        if not self.outermost:
            self(1.0, message)
        elif self.report is not None:
            self._reported.fraction = max(self._reported.fraction, self.end)
            self.report(self._reported.fraction, message)

    def part(self, start: float, end: float) -> Progress:
        """The share ``start``..``end`` (fractions of this share) for one step of the operation."""
        width = self.end - self.start
        return Progress(self.report, self.start + width * start, self.start + width * end, False, self._reported)

    def counting(self, message: str) -> Callable[[int, int], None]:
        """A ``progress(done, total)`` callback for the library's counters (the header scan's)."""
        return lambda done, total: self(done / total if total else 1.0, message)


def progress_of(report: ReportProgress | Progress | None) -> Progress:
    """``report`` as a ``Progress`` over the whole operation (a ``Progress`` is kept as it is, so
    that an operation called by another reports into its caller's share, and the caller undoes
    its scene changes when a later report stops it)."""
    return report if isinstance(report, Progress) else Progress(report)


@contextmanager
def all_or_nothing(scene) -> Iterator[None]:
    """Nodes added to ``scene`` inside the block are removed again when the block raises
    (cancelled or failed), so the scene holds only what it held before."""
    before = {scene.GetNthNode(n).GetID() for n in range(scene.GetNumberOfNodes())}
    try:
        yield
    except BaseException:
        nodes = [scene.GetNthNode(n) for n in range(scene.GetNumberOfNodes())]
        # Newest first: display and storage nodes go before the nodes that refer to them.
        remove_nodes(scene, reversed([node for node in nodes if node.GetID() not in before]))
        raise


def remove_nodes(scene, nodes: Iterable[Any]) -> None:
    """Remove ``nodes`` from ``scene`` with their subject hierarchy items, display and storage
    nodes (a bare scene keeps them; in Slicer its modules' logics would remove them)."""
    hierarchies = [scene.GetNthNode(n) for n in range(scene.GetNumberOfNodes())
                   if scene.GetNthNode(n).IsA("vtkMRMLSubjectHierarchyNode")]
    for node in nodes:
        if not scene.IsNodePresent(node):
            continue
        for sh in hierarchies:
            item = sh.GetItemByDataNode(node)
            if item:
                sh.RemoveItem(item, False, False)
        helpers = []
        if node.IsA("vtkMRMLDisplayableNode"):
            helpers += [node.GetNthDisplayNode(n) for n in range(node.GetNumberOfDisplayNodes())]
        if node.IsA("vtkMRMLStorableNode"):
            helpers += [node.GetNthStorageNode(n) for n in range(node.GetNumberOfStorageNodes())]
        scene.RemoveNode(node)
        for helper in helpers:
            if helper is not None and scene.IsNodePresent(helper):
                scene.RemoveNode(helper)
