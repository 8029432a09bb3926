"""A whole archive: ``convert --jobs 2`` against ``--jobs 1`` and against dcm2niix.

240 small series (64x64 int16, 40 slices each) in nested folders, a fifth each regular, missing a
slice, with variable spacing, gantry-tilted, or with a localizer inside. Contenders (child
processes, interleaved, best of 3):

* ours ``convert ARCHIVE -o OUT --jobs 1`` and ``--jobs 2`` (same files, checked byte for byte);
* dcm2niix ``-z n -b n -o OUT ARCHIVE`` (it recurses and is single-threaded).
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from benchlib import BIN, MB, OUT, cached_data, fresh_dir, interleaved, machine, run_child, table, verdict

from irregular_series.testing.synthetic import SyntheticSeries, SyntheticSlice, uid, write_series

SERIES = 240
SLICES = 40
SIZE = 64
KINDS = ("regular", "missing slice", "variable spacing", "gantry tilt", "localizer inside")
JOBS_TARGET = 0.6  # issue 14: --jobs 2 at most 0.6x the wall time of --jobs 1 on 2 cores


def series_slices(k: int) -> list[SyntheticSlice]:
    kind = KINDS[k % len(KINDS)]
    z = [0.0]
    for n in range(1, SLICES):
        z.append(z[-1] + (1.5 if kind == "variable spacing" and n % 7 == 0 else 1.0))
    if kind == "missing slice":
        del z[SLICES // 2]
    shear = 0.27 if kind == "gantry tilt" else 0.0  # about 15 degrees: y moves with z
    slices = [SyntheticSlice(position_lps_mm=(-16.0, -16.0 + shear * zz, zz), rows=SIZE, columns=SIZE,
                             pixel_spacing_mm=(0.5, 0.5), instance_number=n + 1) for n, zz in enumerate(z)]
    if kind == "localizer inside":
        slices[-1] = SyntheticSlice(position_lps_mm=(-16.0, 0.0, 0.0), col_cosines=(0.0, 0.0, -1.0),
                                    rows=SIZE, columns=SIZE, pixel_spacing_mm=(0.5, 0.5),
                                    instance_number=len(slices), image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))
    return slices


def make_archive(folder: Path) -> None:
    for k in range(SERIES):
        series = SyntheticSeries(series_slices(k), series_instance_uid=uid("bench-archive", k),
                                 study_instance_uid=uid("bench-archive-study", k // 4),
                                 frame_of_reference_uid=uid("bench-archive-for", k // 4),
                                 series_number=k + 1, series_description=KINDS[k % len(KINDS)])
        write_series(series, folder / f"patient{k // 8:03d}" / f"series{k:03d}")


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.iterdir()):
        if p.is_file() and not p.name.endswith(".jsonl"):
            h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


def main() -> int:
    print(f"bench_archive: {SERIES} series x {SLICES} slices of {SIZE}x{SIZE} int16, nested; {machine()}")
    archive = cached_data("archive_240", {"series": SERIES, "slices": SLICES, "size": SIZE, "kinds": KINDS},
                          make_archive)
    out = OUT / "archive"
    digests: dict[int, str] = {}

    def convert(jobs: int):
        def run():
            target = fresh_dir(out / "ours")  # one path for both, so that their report.json can be compared
            child = run_child([BIN / "irregular-series", "convert", archive, "-o", target, "--jobs", str(jobs)])
            digests[jobs] = digest(target)
            return child
        return run

    def dcm2niix():
        target = fresh_dir(out / "dcm2niix")
        return run_child([BIN / "dcm2niix", "-z", "n", "-b", "n", "-o", target, archive])

    timings = interleaved({"ours: convert --jobs 1": convert(1), "ours: convert --jobs 2": convert(2),
                           "dcm2niix": dcm2niix})
    one, two, d2n = timings.values()
    same = digests[1] == digests[2]
    print(f"\n--jobs 2 output equals --jobs 1 byte for byte (volumes and report.json): {same}")
    rows = [(t.name, f"{t.best:.2f}", " / ".join(f"{w:.2f}" for w in t.walls), f"{t.cpu:.2f}",
             f"{t.peak_rss / MB:.0f}") for t in timings.values()]
    print(table(rows, ("contender", "best wall s", "runs s", "least CPU s (all processes)",
                       "peak RSS MB (largest process)")))
    print(f"\nratio --jobs 2 / --jobs 1: {verdict(two.best / one.best, JOBS_TARGET)} on {os.cpu_count()} cores")
    print(f"ratio --jobs 2 / dcm2niix: {two.best / d2n.best:.2f}; --jobs 1 / dcm2niix: {one.best / d2n.best:.2f}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
