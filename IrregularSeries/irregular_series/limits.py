"""Named limits on what the tool accepts, so that hostile or broken input costs bounded memory and time.

Tolerances (``tolerances.py``) say what counts as *equal*; limits say what counts as *plausible*:
values beyond them are not measurements of a patient but corruption, and would make a scan or a
conversion run out of memory or time. Each limit has a name, a unit and a default; a refusal
names the limit it hit (``LimitExceeded.limit``), so that a user who really has such data can
raise exactly that one (``Limits(output_voxels=4e9)``, or the command line's ``--limit``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields, replace
from typing import Any

__all__ = ["DEFAULT_LIMITS", "LimitExceeded", "Limits", "available_memory_bytes"]

VOXEL_BUDGET_BYTES = 16
"""Bytes of memory counted per output voxel when the voxel limit comes from the available memory:
the input slices and the output volume both held, at up to 8 bytes (float64) each."""


class LimitExceeded(ValueError):
    """A value beyond one of the named ``Limits``; ``limit`` is the field's name."""

    def __init__(self, message: str, limit: str) -> None:
        super().__init__(message)
        self.limit = limit


@dataclass(frozen=True)
class Limits:
    """What the scan and the conversion accept. Every field is a named, documented limit.

    Coordinates and spacings are millimetres; counts are plain numbers. ``output_voxels`` 0 means
    "from the memory available when a volume is built" (see ``voxel_limit``).
    """

    coordinate_mm: float = 10_000.0
    """Largest absolute value of any ImagePositionPatient coordinate (mm): a box of ±10 m holds
    any patient on any table; positions beyond it are corrupt headers."""

    min_pixel_spacing_mm: float = 1e-4
    """Smallest PixelSpacing (mm), 0.1 µm: below any microscope-CT voxel."""

    max_pixel_spacing_mm: float = 1_000.0
    """Largest PixelSpacing (mm): a metre per pixel is no image of a patient."""

    min_slice_spacing_mm: float = 1e-3
    """Smallest output slice spacing (mm)."""

    output_voxels: int = 0
    """Most voxels in one output volume; 0: as many as the available memory holds
    (``VOXEL_BUDGET_BYTES`` per voxel)."""

    header_bytes: int = 64 * 1024 * 1024
    """Most bytes of a file's header (everything before its pixel data) read by the header scan,
    and the most a deflated data set may inflate to for it; for a file read with pydicom, the most
    it may hold (element headers, values read, the contents of the sequences it parses)."""

    sequence_items: int = 100_000
    """Most items in one sequence (e.g. one per frame in PerFrameFunctionalGroupsSequence)."""

    header_items: int = 1_000_000
    """Most sequence items, all sequences together, in a header read with pydicom, which makes an
    object of each (about 0.7 kB even when empty): a 100,000-frame object with ten per frame fits."""

    sequence_depth: int = 16
    """Deepest nesting of sequences in a header."""

    folder_depth: int = 256
    """Deepest folder below a folder named on the command line."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"limit {f.name} must be a finite number >= 0, got {value!r}")
        if self.min_pixel_spacing_mm <= 0 or self.min_slice_spacing_mm <= 0:
            raise ValueError("the smallest pixel and slice spacings must be positive")
        for f in fields(self):
            if f.type in ("int", int):
                object.__setattr__(self, f.name, int(getattr(self, f.name)))

    def with_values(self, text: dict[str, str]) -> Limits:
        """A copy with the named limits set from text (``{"output_voxels": "4e9"}``); ``ValueError``
        naming the known limits for an unknown name or a value that is not a number."""
        known = {f.name for f in fields(self)}
        values: dict[str, Any] = {}  # floats, for the int limits too: ``__post_init__`` makes those whole
        for name, value in text.items():
            if name not in known:
                raise ValueError(f"unknown limit {name!r}; the limits are {', '.join(sorted(known))}")
            try:
                values[name] = float(value)
            except ValueError:
                raise ValueError(f"limit {name} must be a number, got {value!r}") from None
        return replace(self, **values)

    def voxel_limit(self) -> int:
        """``output_voxels``, or when it is 0 the voxels the available memory holds."""
        if self.output_voxels:
            return self.output_voxels
        return max(1, available_memory_bytes() // VOXEL_BUDGET_BYTES)

    # --- checks, each raising LimitExceeded with the limit's name -----------------------------

    def check_position(self, position_mm: tuple[float, ...], what: str) -> None:
        if any(abs(v) > self.coordinate_mm for v in position_mm):
            raise LimitExceeded(
                f"{what} {_numbers(position_mm)} lies outside the ±{self.coordinate_mm:g} mm box any patient fits "
                f"in (limit coordinate_mm)", "coordinate_mm")

    def check_pixel_spacing(self, spacing_mm: tuple[float, ...], what: str) -> None:
        for v in spacing_mm:
            if v < self.min_pixel_spacing_mm:
                raise LimitExceeded(f"{what} {_numbers(spacing_mm)} is below {self.min_pixel_spacing_mm:g} mm "
                                    "(limit min_pixel_spacing_mm)", "min_pixel_spacing_mm")
            if v > self.max_pixel_spacing_mm:
                raise LimitExceeded(f"{what} {_numbers(spacing_mm)} is above {self.max_pixel_spacing_mm:g} mm "
                                    "(limit max_pixel_spacing_mm)", "max_pixel_spacing_mm")

    def check_slice_spacing(self, spacing_mm: float) -> None:
        if spacing_mm < self.min_slice_spacing_mm:
            raise LimitExceeded(f"slice spacing {spacing_mm:g} mm is below {self.min_slice_spacing_mm:g} mm "
                                "(limit min_slice_spacing_mm)", "min_slice_spacing_mm")

    def check_voxels(self, shape: tuple[int, ...], what: str) -> None:
        voxels = math.prod(int(v) for v in shape)
        limit = self.voxel_limit()
        if voxels > limit:
            source = "" if self.output_voxels else f", from {available_memory_bytes() / 2**30:.1f} GiB of available memory"
            raise LimitExceeded(
                f"{what} of {' x '.join(str(int(v)) for v in shape[::-1])} = {voxels:.3g} voxels exceeds "
                f"{limit:.3g} voxels (limit output_voxels{source})", "output_voxels")


def _numbers(values: tuple[float, ...]) -> str:
    return "\\".join(f"{v:g}" for v in values)


def available_memory_bytes() -> int:
    """Memory this process may still use: the smaller of the system's available memory and the
    address-space limit (``ulimit -v``), where known; 4 GiB when neither can be read."""
    candidates = []
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    candidates.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    if not candidates and hasattr(os, "sysconf"):
        try:
            candidates.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (OSError, ValueError):
            pass
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            candidates.append(max(0, soft - _address_space_bytes()))
    except (ImportError, OSError, ValueError):
        pass
    return min(candidates) if candidates else 4 * 2**30


def _address_space_bytes() -> int:
    """Address space this process already uses (VmSize), 0 where unknown."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


DEFAULT_LIMITS = Limits()
