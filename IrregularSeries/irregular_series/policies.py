"""The choices a conversion makes, each defined once: the CLI, the Python API, the Slicer scene
logic and the module's parameter node all take their values (and words) from here.

Every policy is a ``str`` enum, so a member compares equal to its value (``GapPolicy.BLANK ==
"blank"``) and is written to JSON as that value; ``parse`` turns user text into a member or raises
``ValueError`` naming the allowed values.
"""

from __future__ import annotations

import math
from enum import Enum
from typing import TypeVar

P = TypeVar("P", bound="Policy")


class Policy(str, Enum):
    """Base of every policy enum: the value is the word users type; ``help`` says what it does."""

    help: str

    def __new__(cls, value: str, help: str = "") -> Policy:
        member = str.__new__(cls, value)
        member._value_ = value
        member.help = help
        return member

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    @classmethod
    def values(cls) -> tuple[str, ...]:
        return tuple(m.value for m in cls)

    @classmethod
    def parse(cls: type[P], value: object) -> P:
        """The member named by ``value`` (a member or its text); ``ValueError`` otherwise."""
        if isinstance(value, cls):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            raise ValueError(f"{cls.title()} must be one of {', '.join(cls.values())}; got {value!r}") from None

    @classmethod
    def title(cls) -> str:
        return cls.__doc__.split(":")[0] if cls.__doc__ else cls.__name__


class SpacingRule(Policy):
    """slice spacing: how the spacing between output planes is chosen when no number is given."""

    AUTO = "auto", "the nominal spacing when the positions agree with it, else the median step"
    NOMINAL = "nominal", "SpacingBetweenSlices, else SliceThickness"
    MEDIAN = "median", "the median step between slice positions"
    MIN = "min", "the smallest step between slice positions"


class GapPolicy(Policy):
    """gap policy: what happens where slices are missing."""

    INTERPOLATE = "interpolate", "interpolate across the gap"
    BLANK = "blank", "leave planes inside missing-slice gaps at the background value, with a mask"
    SPLIT = "split", "one volume per contiguous run of slices"


class SectionPolicy(Policy):
    """section policy: what happens to stitched sections."""

    MERGE = "merge", "one volume; each overlap is cut at its middle"
    SPLIT = "split", "one volume per section"


class OverlapPolicy(Policy):
    """overlap policy: which series supplies the slices where assembled series overlap."""

    MIDDLE = "middle", "each overlap is cut at its middle: each series keeps the half nearer its own interior"
    FIRST = "first", "the series earlier along the stack (lower position along the normal) keeps the overlap"
    LAST = "last", "the series later along the stack keeps the overlap"
    BLEND = "blend", "across the overlap, weights go linearly from the earlier series to the later one"


class StackSplit(Policy):
    """stack split: a split of a series into stacks that can be undone for a series it parts wrongly."""

    IMAGE_TYPE = "image-type", ("images whose ImageType differs stay in one stack (localizers, projections and "
                                "secondary captures still apart)")
    STORAGE = "storage", "single-frame images and the stacks of multi-frame objects (StackID) stay in one stack"
    LINE = "line", "parallel blocks whose positions lie on different lines (a table moved in-plane) stay in one stack"


class TiltPolicy(Policy):
    """tilt policy: what happens to a gantry-tilted stack."""

    DESKEW = "deskew", "resample onto an orthogonal grid along the slice normal"
    KEEP = "keep", "a sheared grid along the stacking direction, no in-plane resampling"


class Interpolation(Policy):
    """interpolation: how values between slices (and in-plane when deskewing) are made."""

    LINEAR = "linear", "linear"
    NEAREST = "nearest", "the nearest slice (no new values)"
    CUBIC = "cubic", "cubic (Catmull-Rom)"


class OutputFormat(Policy):
    """output format: the file format volumes are written in."""

    NRRD = "nrrd", "NRRD in LPS space (what Slicer reads natively)"
    NII = "nii", "NIfTI-1 with a RAS affine"
    NII_GZ = "nii.gz", "gzipped NIfTI-1 with a RAS affine"
    DICOM = "dicom", "a new single-frame DICOM series per volume, one file per plane, in a folder"

    @property
    def suffix(self) -> str:
        """The file-name suffix; "" for DICOM, which is a folder of files."""
        return "" if self is OutputFormat.DICOM else "." + self.value


class PositionSource(Policy):
    """positions: where slice positions come from."""

    DICOM = "dicom", "ImagePositionPatient"
    NOMINAL = "nominal", "the nominal spacing in spatial order (overrides the DICOM geometry)"


Spacing = SpacingRule | float
"""A spacing choice: a rule, or exactly that many mm along the slice normal."""


def parse_spacing(value: object) -> Spacing:
    """A ``SpacingRule`` or a positive, finite number of mm; ``ValueError`` otherwise."""
    if isinstance(value, SpacingRule):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        text = str(value).strip().lower()
        if text in SpacingRule.values():
            return SpacingRule(text)
        try:
            number = float(text)
        except ValueError:
            raise ValueError(
                f"slice spacing must be one of {', '.join(SpacingRule.values())} or a number of mm; got {value!r}"
            ) from None
    if not (number > 0 and math.isfinite(number)):
        raise ValueError(f"slice spacing must be a positive number of mm; got {value!r}")
    return number
