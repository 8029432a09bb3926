"""The ``inspect`` report: the JSON document against docs/report-schema.md (whose field tables are
read as the schema), and the plain-words summary.

The documents come from phantoms that between them produce every object and irregularity kind the
schema lists; the test fails if one is documented but never produced, or produced but not
documented.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from irregular_series import analyze
from irregular_series.assembly import find_candidates
from irregular_series.cli import main
from irregular_series.geometry import analyze_geometry
from irregular_series.headers import scan
from irregular_series.irregularities import DETAILS_OF, IrregularityKind
from irregular_series.joining import build_assembly
from irregular_series.model import Stack
from irregular_series.options import ConvertOptions
from irregular_series.report import analysis_to_dict, format_summary, stack_to_dict
from irregular_series.testing.synthetic import uid, write_demo, write_non_image_objects, write_series

import phantoms

SCHEMA_DOC = Path(__file__).resolve().parents[1] / "docs" / "report-schema.md"


# --- the schema, as documented ------------------------------------------------------------------


def documented_objects() -> tuple[dict[str, dict[str, str]], list[str]]:
    """Object name -> {field: type} from the field tables of docs/report-schema.md, and the
    irregularity kinds (the level-4 headings)."""
    objects: dict[str, dict[str, str]] = {}
    kinds: list[str] = []
    current = None
    in_code = False
    for line in SCHEMA_DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
            continue
        if in_code:
            continue
        heading = re.match(r"^(#{3,4}) `([\w ]+)`$", line)
        sub_object = re.match(r"^`([\w ]+)`:$", line)
        if heading or sub_object:
            current = heading.group(2) if heading else sub_object.group(1)
            objects[current] = {}
            if heading and heading.group(1) == "####":
                kinds.append(current)
            continue
        row = re.match(r"^\| `(\w+)` \| ([^|]+) \|", line)
        if row and current is not None:
            objects[current][row.group(1)] = row.group(2).strip()
    return objects, kinds


SCHEMA, KINDS = documented_objects()


class Checker:
    """Validates JSON values against the documented types, remembering which objects it saw."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def value(self, value, type_text: str, where: str) -> None:
        if type_text.endswith(" or null"):
            if value is None:
                return
            type_text = type_text[: -len(" or null")]
        array = re.fullmatch(r"array of (\d+ )?(.+?)s?", type_text)
        if array:
            assert isinstance(value, list), where
            if array.group(1):
                assert len(value) == int(array.group(1)), where
            for k, item in enumerate(value):
                self.value(item, array.group(2), f"{where}[{k}]")
            return
        named = re.fullmatch(r"`([\w ]+)`", type_text)
        if named:
            self.object(value, named.group(1), where)
            return
        expected = {"string": str, "integer": int, "number": (int, float), "boolean": bool}[type_text]
        assert isinstance(value, expected) and (type_text == "boolean" or not isinstance(value, bool)), (where, value)

    def object(self, value, name: str, where: str) -> None:
        assert isinstance(value, dict), where
        self.seen.add(name)
        fields = dict(SCHEMA[name])
        if name == "irregularity":
            kind = value["kind"]
            assert kind in KINDS, f"{where}: undocumented kind {kind!r}"
            self.seen.add(kind)
            fields.update(SCHEMA[kind])
        if name == "candidate_spacings_mm":  # keys present only when the value exists
            assert set(value) <= set(fields), where
        else:
            assert set(value) == set(fields), f"{where}: {sorted(set(value) ^ set(fields))}"
        for key, item in value.items():
            self.value(item, fields[key], f"{where}.{key}")


# --- documents covering every object and kind -------------------------------------------------


@pytest.fixture(scope="module")
def documents(tmp_path_factory) -> list[dict]:
    root = tmp_path_factory.mktemp("reports")
    write_demo(root / "demo")  # stitched, missing slice, localizer
    for case in ("variable_spacing", "gantry_tilt", "duplicate_positions", "mf_time_points"):
        phantoms.CASES[case]().write(root / case)
    write_non_image_objects(root / "others", phantoms.regular().series)
    phantoms.regular().write(root / "others" / "regular")
    # One broken frame: an excluded entry with a frame number.
    base = phantoms.mf_regular()
    frames = [dataclasses.replace(s, omit=("ImagePositionPatient",)) if k == 3 else s
              for k, s in enumerate(base.series.slices)]
    write_series(dataclasses.replace(base.series, slices=frames), root / "frame", multiframe=True)
    # Slices 0.3° apart, and instance numbers in random order.
    wobble = phantoms._stack(10, 2.0)
    wobble[5] = dataclasses.replace(wobble[5], col_cosines=(0.0, 0.99998629, 0.00523596))
    write_series(phantoms._series("wobble", wobble), root / "wobble")
    shuffled = [dataclasses.replace(s, instance_number=n)
                for s, n in zip(phantoms._stack(10, 2.0), (5, 2, 9, 1, 7, 3, 10, 4, 8, 6))]
    write_series(phantoms._series("instance order", shuffled), root / "order")
    # Two series that continue each other (their own frame of reference): an assembly candidate.
    for n, start in enumerate((100.0, 130.0)):
        station = phantoms._series(f"station {n}", phantoms._stack(20, 2.0, start_mm=start), series_number=20 + n)
        write_series(dataclasses.replace(station, frame_of_reference_uid=uid("stations")), root / f"station{n}")
    documents = [analysis_to_dict(analyze([root]))]
    # Offset blocks analysed unsplit (as a caller may): a non_collinear stack.
    slices = sorted(scan([_write(phantoms.parallel_offset_blocks(), root / "blocks")]).slices,
                    key=lambda s: s.position_lps_mm[2])
    documents.append({"stack": stack_to_dict(Stack("1", "volume", ["test"], slices, analyze_geometry(slices)))})
    # Two series 13 mm apart where the step is 2 mm, joined: the assembled stack has a station_gap.
    for n, start in enumerate((300.0, 351.0)):
        station = phantoms._series(f"gap station {n}", phantoms._stack(20, 2.0, start_mm=start), series_number=30 + n)
        write_series(dataclasses.replace(station, frame_of_reference_uid=uid("gap stations")), root / "gap" / str(n))
    (candidate,) = find_candidates(analyze([root / "gap"]))
    (joined,) = build_assembly(candidate, ConvertOptions())
    documents.append({"stack": stack_to_dict(joined.volume.part.stack)})
    return documents


def _write(phantom, folder: Path) -> Path:
    phantom.write(folder)
    return folder


def test_documents_follow_the_documented_schema(documents):
    checker = Checker()
    checker.object(documents[0], "document", "document")
    checker.object(documents[1]["stack"], "stack", "stack")
    checker.object(documents[2]["stack"], "stack", "stack")
    assert set(SCHEMA) - checker.seen == set(), "documented but never produced"


def test_the_checker_rejects_what_the_schema_does_not_say(documents):
    stack = json.loads(json.dumps(documents[1]["stack"]))
    for broken in ({**stack, "extra": 1}, {**stack, "regular": "yes"}, {**stack, "normal": [0.0, 1.0]},
                   {k: v for k, v in stack.items() if k != "tilt_deg"}):
        with pytest.raises(AssertionError):
            Checker().object(broken, "stack", "stack")


def test_every_kind_in_the_model_is_documented_with_its_details_fields():
    assert {kind.value for kind in IrregularityKind} == set(KINDS)
    for kind, record in DETAILS_OF.items():
        assert [f.name for f in dataclasses.fields(record)] == list(SCHEMA[kind.value]), kind


def test_documents_are_strict_json(documents):
    for document in documents:
        assert json.loads(json.dumps(document, allow_nan=False)) == document


def test_files_and_positions_are_in_spatial_order(documents):
    for series in documents[0]["series"]:
        for stack in series["stacks"]:
            assert len(stack["files"]) == len(stack["positions_mm"]) == stack["slice_count"]
            assert stack["positions_mm"] == sorted(stack["positions_mm"])
            assert len(stack["steps_mm"]) == stack["slice_count"] - 1


# --- plain words --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_summary(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("demo")
    write_demo(folder)
    return format_summary(analyze([folder])).replace(str(folder), "DIR")


def test_summary_explains_the_demo(demo_summary):
    lines = demo_summary.splitlines()
    assert lines[0].startswith("Series #3 CT micro-CT stitched 0.6 mm (synthetic)  [")
    assert lines[1] == "  stack 1: volume, 119 slice(s), axial, steps 0.3–1.2 mm (median 0.6), nominal 0.6 mm"
    assert ("      why: 119 images with ImageType ORIGINAL\\PRIMARY\\AXIAL, kept apart from 1 image with ImageType "
            "ORIGINAL\\PRIMARY\\LOCALIZER") in lines
    assert any(line.startswith("      ! 3 sections stitched, overlapping 2.7 mm at 0.7 mm and 2.7 mm at 21.4 mm; "
                               "sections -20.0 to 3.4 mm (40 slices)") for line in lines)
    assert ("      ! 1 slice(s) missing after slice 58 (instance number 60): gap 1.20 mm where the step is 0.60 mm"
            in lines)
    assert "  stack 2: localizer, 1 slice(s), coronal, nominal 100 mm" in lines
    assert "      why: localizer: ImageType says LOCALIZER" in lines


def test_summary_of_tilt_and_left_out_files(tmp_path):
    phantoms.gantry_tilt().write(tmp_path / "tilt")
    objects = write_non_image_objects(tmp_path, phantoms.gantry_tilt().series)
    analysis = analyze([tmp_path])
    text = format_summary(analysis)
    assert "      ! gantry tilt 18.50° from geometry; tag says 18.5" in text.splitlines()
    assert f"      {objects['raw_data']}: no pixel data: Raw Data Storage, not an image" in text.splitlines()
    assert f"Left out, in no series with images: {len(analysis.excluded)} file(s)" in text
    assert f"  {objects['not_dicom']}: not a DICOM file (no DICM marker, and it does not begin like a DICOM data set)" in text


def test_inspect_command(tmp_path, capsys):
    phantoms.missing_slices().write(tmp_path / "series")
    assert main(["inspect", "--workers", "1", "--json", "-", str(tmp_path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == analysis_to_dict(analyze([tmp_path]))
    (stack,) = printed["series"][0]["stacks"]
    assert [i["message"] for i in stack["irregularities"]] == [
        "1 slice(s) missing after slice 7 (instance number 9): gap 4.00 mm = 2 acquisition steps of 2.00 mm "
        "(the instance numbers and SpacingBetweenSlices 2 mm agree on it)",
        "2 slice(s) missing after slice 13 (instance numbers 16, 17): gap 6.00 mm = 3 acquisition steps of 2.00 mm "
        "(the instance numbers and SpacingBetweenSlices 2 mm agree on it)",
    ]
    assert main(["inspect", str(tmp_path)]) == 0
    assert capsys.readouterr().out == format_summary(analyze([tmp_path]))


def test_inspect_without_images(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("no images here\n")
    assert main(["inspect", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "No DICOM images found." in out and "notes.txt: not a DICOM file" in out
