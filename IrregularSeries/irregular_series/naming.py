"""Output file names: a safe stem per volume from its series number, description and stack."""

from __future__ import annotations

import hashlib

from .model import SeriesAnalysis, Stack
from .outputs import safe_stem
from .planning import Part


def output_stem(series: SeriesAnalysis, stack: Stack, part: Part, used: set[str]) -> str:
    """A file-name stem from the series number and description, unique within one run whatever
    the letter case (``used`` holds the stems in lower case: on macOS and Windows file systems
    ``HEAD`` and ``head`` are one file): series that share number and description get a digest of
    their UID."""
    number = f"{series.series_number}_" if series.series_number is not None else ""
    base = f"{number}{series.series_description or series.modality or 'series'}"
    tail = f"_stack{stack.id}" + (f"_{stack.name}" if stack.name else "") + (f"_{part.label}" if part.label else "")
    stem = safe_stem(base + tail)
    if stem.lower() in used:
        digest = hashlib.sha256(series.series_instance_uid.encode()).hexdigest()[:8]
        stem = safe_stem(f"{base}_{digest}{tail}")
    while stem.lower() in used:
        stem = safe_stem(f"{stem}_{len(used)}")
    used.add(stem.lower())
    return stem
