"""The irregularity kinds and their typed details: what each kind means downstream, and that a
details field can never take the place of a common field in the report."""

from __future__ import annotations

import dataclasses

import pytest

from irregular_series.irregularities import (
    COMMON_FIELDS,
    DETAILS_OF,
    DuplicatePositions,
    Irregularity,
    IrregularityKind,
    MissingSlices,
)


def test_every_kind_has_a_details_record_whose_fields_never_shadow_the_common_ones():
    assert set(DETAILS_OF) == set(IrregularityKind)
    for record in DETAILS_OF.values():
        assert not {f.name for f in dataclasses.fields(record)} & set(COMMON_FIELDS), record


def test_details_must_be_the_kinds_own_record():
    with pytest.raises(TypeError, match="missing_slices details must be MissingSlices"):
        Irregularity(IrregularityKind.MISSING_SLICES, "gap", 3, details=DuplicatePositions((3,), (1.0,)))


def test_kind_words_and_meanings():
    kind = IrregularityKind("gantry_tilt")
    assert kind == "gantry_tilt" and f"{kind}" == "gantry_tilt" and str(kind) == "gantry_tilt"
    # Gantry tilt is a sheared but regular grid, which a regular-grid loader still misplaces.
    assert not kind.blocks_regular and kind.misplaced_by_regular_grid
    assert {k for k in IrregularityKind if k.untransformable} == {IrregularityKind.DUPLICATE_POSITIONS}
    assert {k for k in IrregularityKind if not k.misplaced_by_regular_grid} == {
        IrregularityKind.NOMINAL_MISMATCH, IrregularityKind.INSTANCE_ORDER}


def test_report_object_is_common_fields_then_details():
    irregularity = Irregularity(
        "missing_slices", "1 slice(s) missing", 4,
        details=MissingSlices(gap_mm=2.0, local_step_mm=1.0, missing_count=1, instance_numbers=(6,), at_mm=4.0))
    assert irregularity.kind is IrregularityKind.MISSING_SLICES and irregularity.after_indices == (4,)
    assert irregularity.to_dict() == {
        "kind": "missing_slices", "message": "1 slice(s) missing", "after_index": 4, "gap_mm": 2.0,
        "local_step_mm": 1.0, "missing_count": 1, "instance_numbers": [6], "at_mm": 4.0}
