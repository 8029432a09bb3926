"""Fuzzing the whole command: damaged real and synthetic files, hostile header values and paths.

Deterministic (fixed seeds) and bounded (a few seconds each). Every run is a real process under a
memory limit (``RLIMIT_AS``), and checks what issue 17 asks of any input: no traceback, a
documented exit status, every file analysed or excluded with a reason, nothing written outside the
output folder, the input tree unchanged (hashed before and after).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pydicom.datadict
import pytest
from pydicom.uid import ExplicitVRLittleEndian

from irregular_series.testing.synthetic import save_dataset

import phantoms

PACKAGE = Path(__file__).resolve().parents[1] / "IrregularSeries"
MEMORY_LIMIT_BYTES = 3 * 2**30
"""Address space allowed to one run: the tool's own limits must keep it far below this."""

EXIT_STATUSES = {0, 1}
"""What a run on any input may end with (2 is for usage errors, 128 + N for signals)."""

_RUN = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
from irregular_series.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _tree_hash(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def _run(tmp_path: Path, inputs: Path) -> tuple[subprocess.CompletedProcess, dict]:
    """``convert`` on ``inputs`` in a process under the memory limit; the checks every run passes."""
    out = tmp_path / "out"
    before = _tree_hash(inputs)
    outside_before = {p for p in tmp_path.iterdir()}
    env = {**os.environ, "PYTHONPATH": str(PACKAGE)}
    done = subprocess.run(
        [sys.executable, "-c", _RUN.format(limit=MEMORY_LIMIT_BYTES), "convert", str(inputs), "-o", str(out),
         "--jobs", "1"],
        capture_output=True, text=True, env=env, timeout=120)
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout, done.stderr
    assert done.returncode in EXIT_STATUSES, done.stderr
    assert _tree_hash(inputs) == before, "the input tree changed"
    assert {p for p in tmp_path.iterdir()} - outside_before <= {out}, "something was written outside -o"
    report = json.loads((out / "report.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    accounted = {f["path"] for s in report["series"] for st in s["stacks"] for f in st["files"]}
    excluded = report["excluded"] + [e for s in report["series"] for e in s["excluded"]]
    assert all(e["reason"] and "internal error" not in e["reason"] for e in excluded)
    accounted |= {e["file"] for e in excluded}
    files = {str(p) for p in inputs.rglob("*") if p.is_file()}
    assert files <= accounted, sorted(files - accounted)[:5]
    return done, report


def _mutations(data: bytes, rng: np.random.Generator) -> list[bytes]:
    """Truncations, bit flips, byte insertions and deletions of one file."""
    n = len(data)
    out = [data[: int(rng.integers(0, n))] for _ in range(3)]
    for _ in range(4):
        flipped = bytearray(data)
        for i in rng.integers(128, n, size=int(rng.integers(1, 20))):
            flipped[i] ^= 1 << int(rng.integers(0, 8))
        out.append(bytes(flipped))
    for _ in range(3):
        at = int(rng.integers(132, n))
        out.append(data[:at] + rng.bytes(int(rng.integers(1, 64))) + data[at:])
        out.append(data[:at] + data[at + int(rng.integers(1, 64)):])
    return out


def _sources(realdata_root: Path | None, tmp_path: Path) -> list[Path]:
    files = phantoms.regular().write(tmp_path / "synthetic", names="instance")[:3]
    files += phantoms.mf_regular().write(tmp_path / "synthetic_mf", names="instance")[:1]
    if realdata_root is not None:
        real = sorted(p for p in realdata_root.rglob("*") if p.is_file() and p.stat().st_size < 2**20
                      and p.read_bytes()[128:132] == b"DICM")
        files += real[:: max(1, len(real) // 6)][:6]
    return files


def test_mutated_real_and_synthetic_files(tmp_path):
    root = Path(os.environ.get("IRREGULAR_SERIES_REALDATA") or Path(__file__).resolve().parents[2] / "shared" / "realdata")
    rng = np.random.default_rng(17)
    inputs = tmp_path / "in"
    inputs.mkdir()
    sources = _sources(root if root.is_dir() else None, tmp_path / "sources")
    for k, source in enumerate(sources):
        for m, data in enumerate(_mutations(source.read_bytes(), rng)):
            (inputs / f"{k:02d}_{m:02d}.dcm").write_bytes(data)
    for source in sources:  # and the originals, which still convert
        (inputs / f"ok_{source.parent.name}_{source.name}").write_bytes(source.read_bytes())
    _run(tmp_path, inputs)


HOSTILE_VALUES = {
    "ImagePositionPatient": ["nan\\0\\0", "inf\\0\\0", "-inf\\0\\0", "1e308\\1e308\\1e308", "0\\0\\-1e6", "\x00\\0\\0"],
    "PixelSpacing": ["0\\0", "-1\\-1", "1e-300\\1e-300", "1e308\\1", "nan\\1", "\x1b[2J\\1"],
    "ImageOrientationPatient": ["0\\0\\0\\0\\0\\0", "1\\0\\0\\1\\0\\0", "nan\\0\\0\\0\\1\\0"],
    "RescaleSlope": ["1e308", "nan", "-inf", "0"],
    "RescaleIntercept": ["1e308", "-1e308"],
    "SliceThickness": ["-5", "1e308", "nan"],
    "SeriesDescription": ["\x1b]0;owned\x07", "\u202eevil", "a" * 60, "\x00\x00"],
    "SpecificCharacterSet": ["\x00", "ISO_IR 999", "\\\\\\"],
}


def _set_stored(path: Path, tag: int, value: bytes) -> None:
    """Replace the stored value of a top-level explicit-VR element with a short length (as a broken
    writer would store it: no validation)."""
    data = path.read_bytes()
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF)
    at = data.index(head, 132)
    length = struct.unpack_from("<H", data, at + 6)[0]
    value += b" " * (len(value) % 2)
    path.write_bytes(data[:at + 6] + struct.pack("<H", len(value)) + value + data[at + 8 + length:])


def test_hostile_header_values(tmp_path):
    inputs = tmp_path / "in"
    paths = phantoms.regular().write(inputs, names="instance")
    k = 0
    for keyword, values in HOSTILE_VALUES.items():
        for value in values:
            target = inputs / f"hostile_{k:02d}.dcm"
            ds = pydicom.dcmread(paths[k % len(paths)])
            if keyword not in ds:
                ds.add_new(keyword, pydicom.datadict.dictionary_VR(keyword), "1")
            save_dataset(ds, target, ExplicitVRLittleEndian)
            _set_stored(target, pydicom.datadict.tag_for_keyword(keyword), value.encode("utf-8"))
            k += 1
    for rows, columns, bits in ((0, 0, 16), (65535, 65535, 16), (4, 4, 0), (4, 4, 65535)):
        ds = pydicom.dcmread(paths[0])
        ds.Rows, ds.Columns, ds.BitsStored = rows, columns, bits
        save_dataset(ds, inputs / f"size_{k:02d}.dcm", ExplicitVRLittleEndian)
        k += 1
    done, report = _run(tmp_path, inputs)
    assert report["outputs"], done.stderr  # the undamaged slices still make their volume


def test_path_attacks(tmp_path):
    inputs = tmp_path / "in"
    paths = phantoms.regular().write(inputs / "plain", names="instance")
    odd = inputs / "odd\x1b[31m \u202e"
    odd.mkdir()
    os.symlink(paths[0], odd / "link_to_file.dcm")
    os.symlink(tmp_path, odd / "link_to_outside")
    os.symlink(odd / "nowhere", odd / "dangling")
    os.symlink(odd / "loop", odd / "loop")
    os.mkfifo(odd / "fifo")
    (odd / ("n" * 250)).write_bytes(b"x")
    (odd / "\udcff-undecodable".encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape")).write_bytes(b"")
    _run(tmp_path, inputs)
