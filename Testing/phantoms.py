"""Catalogue of synthetic test series: one function per case, each with the truth a correct analysis
must find.

Every case is small (16–32 pixels, at most 40 images) and deterministic: UIDs are derived from
the case name. ``Phantom.write`` writes the files (shuffled names by default, so nothing can rely
on file order). Voxel values encode LPS position (see ``irregular_series.testing.synthetic``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from irregular_series.model import Vec3
from irregular_series.testing.synthetic import SyntheticSeries, SyntheticSlice, uid, write_series

Orientation = tuple[Vec3, Vec3]
AXIAL: Orientation = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0))
CORONAL: Orientation = ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0))
SAGITTAL: Orientation = ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0))
LOCALIZER_TYPE = ("ORIGINAL", "PRIMARY", "LOCALIZER")


@dataclass(frozen=True)
class Truth:
    """What a correct analysis finds. ``None`` (and empty ``irregularities``) means "not asserted".

    ``stacks``: images per stack, largest first, each localizer image counted as its own stack.
    ``localizers``: images that must get the localizer role (never part of a volume).
    ``positions_mm``: distinct positions along the normal (IPP · n, ascending) of the first volume,
    the stack of the first non-localizer slice in ``series.slices``.
    ``irregularities``: ``Irregularity.kind`` values that must be reported (others may be too).
    ``regular``: whether the first volume is a regular grid.
    """

    stacks: tuple[int, ...] | None = None
    localizers: int | None = 0
    regular: bool | None = None
    missing_instance_numbers: tuple[int, ...] = ()
    tilt_deg: float = 0.0
    positions_mm: tuple[float, ...] = ()
    irregularities: frozenset[str] = frozenset()
    sections: int | None = None
    note: str = ""


@dataclass(frozen=True)
class Phantom:
    """A case: the series, how it is written (multi-frame, names that sort first), and its truth."""

    name: str
    series: SyntheticSeries
    truth: Truth
    multiframe: bool = False
    first_names: tuple[int, ...] = ()

    def write(
        self,
        outdir: str | Path,
        *,
        names: str = "shuffled",
        transfer_syntax: str = "explicit_le",
        seed: int = 0,
    ) -> list[Path]:
        return write_series(
            self.series,
            outdir,
            names=names,
            transfer_syntax=transfer_syntax,
            multiframe=self.multiframe,
            seed=seed,
            first_names=self.first_names,
        )


# --- building blocks -------------------------------------------------------------------------


def _normal(orientation: Orientation) -> np.ndarray:
    return np.cross(*orientation)


def _centred_corner(orientation: Orientation, size: int, spacing_mm: float) -> np.ndarray:
    """IPP offset that puts the image centre on the line through the origin along the normal."""
    row, col = (np.asarray(v, float) for v in orientation)
    return -(size - 1) / 2 * spacing_mm * (row + col)


def _vec(v: np.ndarray) -> Vec3:
    return tuple(round(float(x), 9) + 0.0 for x in v)  # + 0.0 turns -0.0 into 0.0


def _slices_at(
    positions_mm: list[float],
    *,
    orientation: Orientation = AXIAL,
    first_instance: int = 1,
    size: int = 32,
    spacing_mm: float = 1.0,
    offset_lps_mm: Vec3 = (0.0, 0.0, 0.0),
    **fields,
) -> list[SyntheticSlice]:
    """One slice per position along the normal of ``orientation``, instance numbers counting up."""
    corner = _centred_corner(orientation, size, spacing_mm) + np.asarray(offset_lps_mm, float)
    normal = _normal(orientation)
    return [
        SyntheticSlice(
            position_lps_mm=_vec(corner + t * normal),
            row_cosines=orientation[0],
            col_cosines=orientation[1],
            rows=size,
            columns=size,
            pixel_spacing_mm=(spacing_mm, spacing_mm),
            instance_number=first_instance + k,
            **fields,
        )
        for k, t in enumerate(positions_mm)
    ]


def _steps(count: int, step_mm: float, start_mm: float = 0.0) -> list[float]:
    return [round(start_mm + k * step_mm, 6) for k in range(count)]


def _stack(count: int, step_mm: float, start_mm: float = 0.0, **kwargs) -> list[SyntheticSlice]:
    kwargs.setdefault("slice_thickness_mm", step_mm)
    kwargs.setdefault("spacing_between_slices_mm", step_mm)
    return _slices_at(_steps(count, step_mm, start_mm), **kwargs)


def _tilted_stack(
    count: int, table_step_mm: float, tilt_deg: float, *, start_mm: float = -20.0, **fields
) -> list[SyntheticSlice]:
    """A CT stack acquired with gantry tilt: IOP column (0, cos t, -sin t), IPP stepping along z
    (the table), so positions along the normal step by table_step · cos t."""
    t = math.radians(tilt_deg)
    orientation: Orientation = ((1.0, 0.0, 0.0), (0.0, math.cos(t), -math.sin(t)))
    corner = _centred_corner(orientation, 32, 1.0)  # SyntheticSlice's default 32×32 pixels of 1 mm
    return [
        SyntheticSlice(
            position_lps_mm=_vec(corner + (0.0, 0.0, start_mm + k * table_step_mm)),
            row_cosines=orientation[0],
            col_cosines=_vec(np.asarray(orientation[1])),
            instance_number=k + 1,
            slice_thickness_mm=table_step_mm,
            **fields,
        )
        for k in range(count)
    ]


def _localizer(
    orientation: Orientation, instance_number: int, image_type: tuple[str, ...] = LOCALIZER_TYPE
) -> SyntheticSlice:
    """A projection-like image: its own orientation, size and pixel spacing, huge SliceThickness."""
    return _slices_at(
        [0.0],
        orientation=orientation,
        first_instance=instance_number,
        size=24,
        spacing_mm=4.0,
        image_type=image_type,
        slice_thickness_mm=500.0,
    )[0]


def _without(slices: list[SyntheticSlice], instance_numbers: tuple[int, ...]) -> list[SyntheticSlice]:
    return [s for s in slices if s.instance_number not in instance_numbers]


def _positions(slices: list[SyntheticSlice]) -> tuple[float, ...]:
    return tuple(sorted({round(s.position_along_normal_mm, 6) + 0.0 for s in slices}))


def _series(name: str, slices: list[SyntheticSlice], **kwargs) -> SyntheticSeries:
    kwargs.setdefault("series_description", name.replace("_", " "))
    return SyntheticSeries(
        slices=slices,
        series_instance_uid=uid("phantom", name, "series"),
        study_instance_uid=uid("phantom", "study"),
        frame_of_reference_uid=uid("phantom", "frame of reference"),
        **kwargs,
    )


# --- single-frame cases ----------------------------------------------------------------------


def regular() -> Phantom:
    """20 axial slices, 2.5 mm apart."""
    slices = _stack(20, 2.5, start_mm=-25.0)
    truth = Truth(stacks=(20,), regular=True, positions_mm=_positions(slices), sections=1)
    return Phantom("regular", _series("regular", slices), truth)


def missing_slices() -> Phantom:
    """24 positions 2 mm apart with instances 9 (a gap of 2 steps) and 16–17 (3 steps) missing."""
    missing = (9, 16, 17)
    slices = _without(_stack(24, 2.0, start_mm=-24.0), missing)
    return Phantom(
        "missing_slices",
        _series("missing_slices", slices),
        Truth(
            stacks=(21,),
            regular=False,
            missing_instance_numbers=missing,
            positions_mm=_positions(slices),
            irregularities=frozenset({"missing_slices"}),
            sections=1,
        ),
    )


def variable_spacing() -> Phantom:
    """14 slices 4 mm apart, then 14 slices 7 mm apart (like the GE head CT in the real data)."""
    slices = _slices_at(_steps(14, 4.0), slice_thickness_mm=4.0) + _slices_at(
        _steps(14, 7.0, start_mm=59.0), first_instance=15, slice_thickness_mm=7.0
    )
    truth = Truth(
        stacks=(28,),
        regular=False,
        positions_mm=_positions(slices),
        irregularities=frozenset({"variable_spacing"}),
    )
    return Phantom("variable_spacing", _series("variable_spacing", slices), truth)


def gantry_tilt(tilt_deg: float = 18.5) -> Phantom:
    """20 slices, table step 2.5 mm, tilted by ``tilt_deg``; GantryDetectorTilt holds the angle."""
    slices = _tilted_stack(20, 2.5, tilt_deg, gantry_tilt_tag_deg=tilt_deg)
    truth = Truth(
        stacks=(20,),
        tilt_deg=tilt_deg,
        positions_mm=_positions(slices),
        irregularities=frozenset({"gantry_tilt"}),
    )
    return Phantom("gantry_tilt", _series("gantry_tilt", slices), truth)


def tilt_with_missing() -> Phantom:
    """15.5° tilt, 0.75 mm table step, instance 9 missing, no tilt tag (as in dicom2nifti's data)."""
    slices = _without(_tilted_stack(16, 0.75, 15.5), (9,))
    return Phantom(
        "tilt_with_missing",
        _series("tilt_with_missing", slices),
        Truth(
            stacks=(15,),
            regular=False,
            missing_instance_numbers=(9,),
            tilt_deg=15.5,
            positions_mm=_positions(slices),
            irregularities=frozenset({"gantry_tilt", "missing_slices"}),
        ),
    )


def localizer_inside_siemens() -> Phantom:
    """20 axial slices plus one coronal LOCALIZER (InstanceNumber 0) in the same series."""
    axial = _stack(20, 2.5, start_mm=-25.0)
    slices = [_localizer(CORONAL, 0)] + axial
    return Phantom(
        "localizer_inside_siemens",
        _series("localizer_inside_siemens", slices),
        Truth(stacks=(20, 1), localizers=1, regular=True, positions_mm=_positions(axial)),
    )


def two_localizers() -> Phantom:
    """A coronal and a sagittal LOCALIZER (instances 1, 2), then 20 axial slices (3–22)."""
    axial = _stack(20, 2.5, start_mm=-25.0, first_instance=3)
    slices = [_localizer(CORONAL, 1), _localizer(SAGITTAL, 2)] + axial
    return Phantom(
        "two_localizers",
        _series("two_localizers", slices),
        Truth(stacks=(20, 1, 1), localizers=2, regular=True, positions_mm=_positions(axial)),
    )


def ge_three_plane_localizer() -> Phantom:
    """GE MR 3-plane localizer: coronal, sagittal, axial × 7 images at -45…45 mm (15 mm), one
    series, ImageType ORIGINAL\\PRIMARY\\OTHER (not LOCALIZER)."""
    name = "ge_three_plane_localizer"
    slices = []
    for k, orientation in enumerate((CORONAL, SAGITTAL, AXIAL)):
        slices += _stack(
            7,
            15.0,
            start_mm=-45.0,
            orientation=orientation,
            first_instance=1 + 7 * k,
            size=24,
            spacing_mm=10.0,
            image_type=("ORIGINAL", "PRIMARY", "OTHER"),
        )
    return Phantom(
        name,
        _series(name, slices, modality="MR", series_description="3-Plane Localizer"),
        Truth(
            stacks=(7, 7, 7),
            localizers=None,
            positions_mm=_positions(slices[:7]),
            note="three 7-image stacks, one per orientation; whether they are localizers is open",
        ),
    )


def localizer_sorts_first() -> Phantom:
    """A coronal image whose ImageType says AXIAL, first by file name and by InstanceNumber (1)."""
    axial = _stack(20, 2.5, start_mm=-25.0, first_instance=2)
    slices = [_localizer(CORONAL, 1, image_type=("ORIGINAL", "PRIMARY", "AXIAL"))] + axial
    return Phantom(
        "localizer_sorts_first",
        _series("localizer_sorts_first", slices),
        Truth(stacks=(20, 1), localizers=1, regular=True, positions_mm=_positions(axial)),
        first_names=(0,),
    )


def unflagged_localizer() -> Phantom:
    """20 axial slices and one coronal image with ImageType ORIGINAL\\PRIMARY\\OTHER (instance 21)."""
    axial = _stack(20, 2.5, start_mm=-25.0)
    slices = axial + [_localizer(CORONAL, 21, image_type=("ORIGINAL", "PRIMARY", "OTHER"))]
    return Phantom(
        "unflagged_localizer",
        _series("unflagged_localizer", slices),
        Truth(stacks=(20, 1), localizers=1, regular=True, positions_mm=_positions(axial)),
    )


def stitched_sections() -> Phantom:
    """Three acquisitions of 12 slices at 1 mm; each overlaps the previous by 2.5 mm, offset by
    0.5 mm so that their slices interleave. InstanceNumbers run on (1–36)."""
    slices = []
    for k, start in enumerate((0.0, 8.5, 17.0)):
        slices += _stack(
            12,
            1.0,
            start_mm=start,
            first_instance=1 + 12 * k,
            acquisition_number=k + 1,
            content_time=f"1{k}0000",
        )
    return Phantom(
        "stitched_sections",
        _series("stitched_sections", slices),
        Truth(
            stacks=(36,),
            regular=False,
            positions_mm=_positions(slices),
            irregularities=frozenset({"stitched_sections"}),
            sections=3,
        ),
    )


def two_orientations() -> Phantom:
    """20 axial and 20 sagittal slices in one series."""
    axial = _stack(20, 2.0, start_mm=-20.0, size=24)
    sagittal = _stack(
        20,
        2.0,
        start_mm=-20.0,
        size=24,
        orientation=SAGITTAL,
        first_instance=21,
        image_type=("ORIGINAL", "PRIMARY", "OTHER"),
    )
    return Phantom(
        "two_orientations",
        _series("two_orientations", axial + sagittal),
        Truth(stacks=(20, 20), regular=True, positions_mm=_positions(axial)),
    )


def _time_series(name: str, tagged: bool) -> Phantom:
    positions, times = 8, 5
    slices = []
    for t in range(times):
        # InstanceNumber is time-major: 1–8 the first volume, 9–16 the second, …
        fields = {"temporal_position": t + 1, "trigger_time_ms": 2000.0 * t} if tagged else {}
        slices += _stack(
            positions,
            3.0,
            start_mm=-12.0,
            size=16,
            spacing_mm=4.0,
            first_instance=1 + positions * t,
            content_time=f"1200{2 * t:02d}" if tagged else "",
            **fields,
        )
    return Phantom(
        name,
        _series(name, slices, modality="MR"),
        Truth(stacks=(positions,) * times, regular=True, positions_mm=_positions(slices)),
    )


def repeated_positions_temporal() -> Phantom:
    """8 positions × 5 time points (TemporalPositionIdentifier 1–5), an fMRI-like series."""
    return _time_series("repeated_positions_temporal", tagged=True)


def repeated_positions_untagged() -> Phantom:
    """8 positions × 5 time points without any time tag; InstanceNumbers are time-major."""
    return _time_series("repeated_positions_untagged", tagged=False)


def echoes() -> Phantom:
    """12 positions × 2 echoes (EchoNumbers 1, 2), instance numbers alternating between echoes."""
    slices = []
    for k, t in enumerate(_steps(12, 3.0, start_mm=-18.0)):
        for echo in (1, 2):
            slices += _slices_at(
                [t],
                size=16,
                spacing_mm=4.0,
                first_instance=2 * k + echo,
                echo_number=echo,
                slice_thickness_mm=3.0,
            )
    return Phantom(
        "echoes",
        _series("echoes", slices, modality="MR"),
        Truth(stacks=(12, 12), regular=True, positions_mm=_positions(slices)),
    )


def duplicate_positions() -> Phantom:
    """20 slices; the 8th is written twice (same header and pixels, different SOP Instance UIDs)."""
    slices = _stack(20, 2.5, start_mm=-25.0)
    slices.insert(8, slices[7])
    return Phantom(
        "duplicate_positions",
        _series("duplicate_positions", slices),
        Truth(
            positions_mm=_positions(slices),
            irregularities=frozenset({"duplicate_positions"}),
            note="21 images at 20 positions",
        ),
    )


def parallel_offset_blocks() -> Phantom:
    """Two blocks of 10 slices with the same orientation, the second continuing along z but shifted
    60 mm in x (across the normal): the IPPs do not lie on one line."""
    shifted = _stack(10, 2.0, start_mm=20.0, first_instance=11, offset_lps_mm=(60.0, 0.0, 0.0))
    slices = _stack(10, 2.0) + shifted
    return Phantom(
        "parallel_offset_blocks",
        _series("parallel_offset_blocks", slices),
        Truth(
            positions_mm=_positions(slices),
            note="not one regular volume: either two stacks of 10, or one stack reported non_collinear",
        ),
    )


def all_one_position() -> Phantom:
    """4 axial images at the same position, acquisitions 12–15 (not a volume)."""
    slices = [
        dataclasses.replace(s, acquisition_number=12 + k)
        for k, s in enumerate(_slices_at([61.5] * 4, slice_thickness_mm=5.0))
    ]
    return Phantom(
        "all_one_position",
        _series("all_one_position", slices),
        Truth(positions_mm=(61.5,), note="4 images at one position: no volume along a normal"),
    )


def magnitude_phase_classic() -> Phantom:
    r"""Philips-style classic dual echo: 10 positions x 2 echoes x magnitude and phase, 40 single-frame
    images in one series; ImageType tells magnitude (``…\M_FFE\M\FFE``) from phase
    (``…\PHASE MAP\P\FFE``), which also has another rescale."""
    slices = []
    kinds = ((("ORIGINAL", "PRIMARY", "M_FFE", "M", "FFE"), 1.0, 0.0),
             (("ORIGINAL", "PRIMARY", "PHASE MAP", "P", "FFE"), 2.0, -100.0))
    for kind, (image_type, slope, intercept) in enumerate(kinds):
        for k, t in enumerate(_steps(10, 4.0, start_mm=-20.0)):
            for echo in (1, 2):
                slices += _slices_at([t], size=16, spacing_mm=3.0, first_instance=1 + 20 * kind + 2 * k + echo - 1,
                                     echo_number=echo, image_type=image_type, rescale_slope=slope,
                                     rescale_intercept=intercept, slice_thickness_mm=4.0)
    return Phantom(
        "magnitude_phase_classic",
        _series("magnitude_phase_classic", slices, modality="MR"),
        Truth(stacks=(10, 10, 10, 10), regular=True, positions_mm=_positions(slices)),
    )


def interrupted_time_series() -> Phantom:
    """3 time points of 12 slices 3 mm apart; the last lost 4 interleaved slices (its gaps are
    exactly two steps, so only the other time points tell they are missing slices)."""
    slices = []
    for t in range(3):
        volume = _stack(12, 3.0, start_mm=-18.0, size=16, spacing_mm=4.0, first_instance=1 + 12 * t,
                        temporal_position=t + 1)
        if t == 2:
            volume = [s for k, s in enumerate(volume) if k not in (3, 5, 7, 9)]
        slices += volume
    return Phantom(
        "interrupted_time_series",
        _series("interrupted_time_series", slices, modality="MR"),
        Truth(stacks=(12, 12, 8), regular=True, positions_mm=_positions(slices)),
    )


def stopped_time_series() -> Phantom:
    """3 time points of 10 slices 3 mm apart, acquired 2 s apart; the last stopped after 7 slices
    (it lacks the set's 3 highest positions: no gap inside it, its end is short)."""
    slices = []
    for t in range(3):
        volume = _stack(10, 3.0, start_mm=-15.0, size=16, spacing_mm=4.0, first_instance=1 + 10 * t,
                        temporal_position=t + 1, content_time=f"1200{2 * t:02d}")
        slices += volume[:7] if t == 2 else volume
    return Phantom(
        "stopped_time_series",
        _series("stopped_time_series", slices, modality="MR"),
        Truth(stacks=(10, 10, 7), regular=True, positions_mm=_positions(slices)),
    )


def sparse_series() -> Phantom:
    """10 CT slices kept from a 2.5 mm series of 120 (instance numbers 1–120, with holes), gaps from
    7.5 to 110 mm; SliceThickness 2.5 mm and a wrong SpacingBetweenSlices 0.625 mm, as GE writes it."""
    kept = (1, 4, 11, 18, 23, 67, 70, 84, 103, 120)
    slices = [
        dataclasses.replace(s, spacing_between_slices_mm=0.625)
        for s in _stack(120, 2.5, start_mm=-150.0, size=16, spacing_mm=2.0, slice_thickness_mm=2.5)
        if s.instance_number in kept
    ]
    return Phantom(
        "sparse_series",
        _series("sparse_series", slices),
        Truth(stacks=(10,), regular=False, positions_mm=_positions(slices),
              irregularities=frozenset({"missing_slices"}), missing_instance_numbers=tuple(
                  n for n in range(1, 121) if n not in kept)),
    )


PEPOLAR_PRIVATE = ((0x00190010, "LO", "GEMS_ACQU_01"), (0x0019109C, "LO", "epi_pepolar"))


def ge_pepolar() -> Phantom:
    """GE epi_pepolar, two volumes of 8 slices: UserData12 2 (reversed then forward), so volume 1
    (odd TemporalPositionIdentifier) is stored with its rows upside down, volume 2 as usual."""
    slices = []
    for t in (1, 2):
        slices += _stack(8, 3.0, start_mm=-12.0, size=16, spacing_mm=4.0, first_instance=1 + 8 * (t - 1),
                         temporal_position=t, manufacturer="GE MEDICAL SYSTEMS",
                         private_elements=PEPOLAR_PRIVATE + ((0x001910B3, "DS", "2"),), rows_stored_flipped=t == 1)
    return Phantom(
        "ge_pepolar",
        _series("ge_pepolar", slices, modality="MR"),
        Truth(stacks=(8, 8), regular=True, positions_mm=_positions(slices)),
    )


# --- multi-frame cases (one Enhanced CT / MR object each) ------------------------------------


def _multiframe(name: str, base: Phantom, slices: list[SyntheticSlice] | None = None) -> Phantom:
    """``base``'s slices (or ``slices``) and truth, as one multi-frame object."""
    frames = base.series.slices if slices is None else slices
    series = _series(name, frames, modality=base.series.modality)
    return Phantom(name, series, base.truth, multiframe=True)


def mf_regular() -> Phantom:
    """``regular`` as one Enhanced CT object."""
    return _multiframe("mf_regular", regular())


def mf_irregular() -> Phantom:
    """8 frames 4 mm apart then 8 frames 7 mm apart; the rescale differs per frame."""
    slices = _slices_at(_steps(8, 4.0), slice_thickness_mm=4.0) + _slices_at(
        _steps(8, 7.0, start_mm=35.0), first_instance=9, slice_thickness_mm=7.0
    )
    slices = [
        dataclasses.replace(s, rescale_slope=1.0 + k % 2, rescale_intercept=-8.0 * (k % 3))
        for k, s in enumerate(slices)
    ]
    truth = Truth(
        stacks=(16,),
        regular=False,
        positions_mm=_positions(slices),
        irregularities=frozenset({"variable_spacing"}),
    )
    return Phantom("mf_irregular", _series("mf_irregular", slices), truth, multiframe=True)


def mf_tilted() -> Phantom:
    """``gantry_tilt`` (18.5°) as one Enhanced CT object."""
    return _multiframe("mf_tilted", gantry_tilt(18.5))


def mf_two_stacks() -> Phantom:
    """12 axial frames in StackID 1 and 12 sagittal frames in StackID 2 (orientation per frame)."""
    axial = _stack(12, 2.0, start_mm=-12.0, size=24, stack_id="1")
    sagittal = _stack(
        12, 2.0, start_mm=-12.0, size=24, orientation=SAGITTAL, first_instance=13, stack_id="2"
    )
    truth = Truth(stacks=(12, 12), regular=True, positions_mm=_positions(axial))
    return Phantom("mf_two_stacks", _series("mf_two_stacks", axial + sagittal), truth, multiframe=True)


def mf_shuffled() -> Phantom:
    """``regular`` as one Enhanced CT object whose frames are stored in a random order."""
    base = regular()
    slices = list(base.series.slices)
    order = np.random.default_rng(1).permutation(len(slices))
    return _multiframe("mf_shuffled", base, [slices[k] for k in order])


def mf_time_points() -> Phantom:
    """8 positions × 4 time points (TemporalPositionIndex 1–4) in one Enhanced CT object."""
    slices = []
    for t in range(4):
        slices += _stack(
            8,
            5.0,
            start_mm=-20.0,
            size=16,
            spacing_mm=2.0,
            first_instance=1 + 8 * t,
            temporal_position=t + 1,
            content_time=f"1200{5 * t:02d}",
        )
    truth = Truth(stacks=(8, 8, 8, 8), regular=True, positions_mm=_positions(slices))
    return Phantom("mf_time_points", _series("mf_time_points", slices), truth, multiframe=True)


def mf_mr_magnitude_phase() -> Phantom:
    """10 positions × magnitude and phase frames, interleaved, in one Enhanced MR object
    (ComplexImageComponent MIXED). Phase frames use another rescale, so stored values differ."""
    slices = []
    for t in _steps(10, 3.0, start_mm=-15.0):
        for component, slope in (("MAGNITUDE", 1.0), ("PHASE", 2.0)):
            slices += _slices_at(
                [t],
                size=16,
                spacing_mm=4.0,
                image_type=("ORIGINAL", "PRIMARY", "T1", "NONE"),
                complex_component=component,
                rescale_slope=slope,
                slice_thickness_mm=3.0,
            )
    truth = Truth(stacks=(10, 10), regular=True, positions_mm=_positions(slices))
    series = _series("mf_mr_magnitude_phase", slices, modality="MR")
    return Phantom("mf_mr_magnitude_phase", series, truth, multiframe=True)


CASES: dict[str, Callable[[], Phantom]] = {
    f.__name__: f
    for f in (
        regular,
        missing_slices,
        variable_spacing,
        gantry_tilt,
        tilt_with_missing,
        localizer_inside_siemens,
        two_localizers,
        ge_three_plane_localizer,
        localizer_sorts_first,
        unflagged_localizer,
        stitched_sections,
        two_orientations,
        repeated_positions_temporal,
        repeated_positions_untagged,
        echoes,
        duplicate_positions,
        parallel_offset_blocks,
        all_one_position,
        magnitude_phase_classic,
        interrupted_time_series,
        stopped_time_series,
        sparse_series,
        ge_pepolar,
        mf_regular,
        mf_irregular,
        mf_tilted,
        mf_two_stacks,
        mf_shuffled,
        mf_time_points,
        mf_mr_magnitude_phase,
    )
}
"""Every case by name, for parametrised tests: ``CASES[name]()`` builds the phantom."""
