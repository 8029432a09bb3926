"""Header scan of a large folder: ``irregular-series inspect`` versus SimpleITK's GDCM series scan.

Data: one flat folder of 10,000 single-frame CT files, 20 series of 500 slices of 64x64 int16
(written with the project's synthetic writer), a quarter of them irregular in some way: a missing
slice, every 7th step 1.5 mm instead of 1.0 mm, 15 degrees of gantry tilt, a localizer mixed in.
The folder is flat because SimpleITK's ``GetGDCMSeriesIDs`` does not recurse.

Contenders (each a child process, so both pay interpreter start-up and imports):
* ours: ``irregular-series inspect DIR --json OUT.json`` (header-only, all cores);
* SimpleITK: ``GetGDCMSeriesIDs(DIR)`` then ``GetGDCMSeriesFileNames(DIR, sid)`` per series, the
  usual recipe; each call scans the folder again, so "IDs only" (one scan) is timed as well.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

from benchlib import BIN, MB, OUT, cached_data, fresh_dir, interleaved, machine, run_child, table, verdict

from irregular_series.testing.synthetic import SyntheticSeries, SyntheticSlice, uid, write_series

SERIES = 20
SLICES = 500
SIZE = 64
KINDS = ("regular", "missing slice", "every 7th step 1.5 mm", "gantry tilt 15 deg", "localizer mixed in")
IDS_TARGET = 0.5  # issue 14: inspect at most 0.5x the wall time of one GetGDCMSeriesIDs scan

SITK_SCAN = """
import json, sys
import SimpleITK as sitk
folder, all_series = sys.argv[1], sys.argv[2] == "all"
ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(folder)
files = [len(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder, sid)) for sid in ids] if all_series else []
print(json.dumps({"series": len(ids), "files": sum(files)}))
"""


def series_slices(k: int) -> list[SyntheticSlice]:
    """Series ``k``: 500 axial 64x64 slices, 0.5 mm pixels, irregular after the kind ``k % 5``."""
    kind = KINDS[k % len(KINDS)]
    steps = [1.0] * (SLICES - 1)
    if kind == "every 7th step 1.5 mm":
        steps = [1.5 if i % 7 == 6 else 1.0 for i in range(SLICES - 1)]
    z = [-250.0]
    for step in steps:
        z.append(z[-1] + step)
    if kind == "missing slice":  # 501 planned, slice 250 lost: 500 files, one 2 mm step
        z = z + [z[-1] + 1.0]
        del z[250]
    tilt = math.radians(15.0) if kind == "gantry tilt 15 deg" else 0.0
    col = (0.0, math.cos(tilt), -math.sin(tilt))
    common = dict(rows=SIZE, columns=SIZE, pixel_spacing_mm=(0.5, 0.5), slice_thickness_mm=1.0,
                  col_cosines=col, gantry_tilt_tag_deg=15.0 if tilt else None)
    slices = [SyntheticSlice(position_lps_mm=(-16.0, -16.0, zk), instance_number=i + 1, **common)
              for i, zk in enumerate(z)]
    if kind == "localizer mixed in":  # a coronal scout replaces the last slice, same series
        slices[-1] = SyntheticSlice(position_lps_mm=(-16.0, 0.0, 0.0), col_cosines=(0.0, 0.0, -1.0),
                                    rows=SIZE, columns=SIZE, pixel_spacing_mm=(0.5, 0.5),
                                    instance_number=SLICES, image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))
    return slices


def make_folder(folder: Path) -> None:
    staging = folder.parent / (folder.name + ".staging")
    for k in range(SERIES):
        series = SyntheticSeries(series_slices(k), series_instance_uid=uid("bench-inspect", k),
                                 study_instance_uid=uid("bench-inspect-study", k // 5),
                                 frame_of_reference_uid=uid("bench-inspect-for", k // 5),
                                 series_number=k + 1, series_description=KINDS[k % len(KINDS)])
        paths = write_series(series, fresh_dir(staging))
        for p in paths:  # write_series names files IM00001.dcm...: prefix them to share one folder
            p.rename(folder / f"S{k + 1:02d}_{p.name}")
    shutil.rmtree(staging)


def main() -> int:
    print(f"bench_inspect: {SERIES} series x {SLICES} slices of {SIZE}x{SIZE} int16 in one folder; {machine()}")
    folder = cached_data("inspect_10k", {"series": SERIES, "slices": SLICES, "size": SIZE, "kinds": KINDS},
                         make_folder)
    files = sum(1 for p in folder.iterdir() if p.suffix == ".dcm")
    report = fresh_dir(OUT / "inspect") / "report.json"
    python = sys.executable
    def ours():
        report.unlink(missing_ok=True)  # inspect refuses to replace a file it did not make this run
        return run_child([BIN / "irregular-series", "inspect", folder, "--json", report])

    timings = interleaved({
        "ours: inspect --json": ours,
        "SimpleITK: IDs + file names": lambda: run_child([python, "-c", SITK_SCAN, folder, "all"]),
        "SimpleITK: IDs only": lambda: run_child([python, "-c", SITK_SCAN, folder, "ids"]),
    })
    ours, sitk_all, sitk_ids = timings.values()

    document = json.loads(report.read_text())
    our_series = len(document["series"])
    our_files = sum(len(st["files"]) for s in document["series"] for st in s["stacks"])
    sitk_found = json.loads(sitk_all.last.stdout)
    found_ok = our_series == SERIES and sitk_found["series"] == SERIES
    print(f"\n{files} files. Series found: ours {our_series} ({our_files} files in stacks), "
          f"SimpleITK {sitk_found['series']} ({sitk_found['files']} files) -> "
          f"{'both found ' + str(SERIES) if found_ok else 'MISMATCH'}")
    rows = [(t.name, f"{t.best:.2f}", " / ".join(f"{w:.2f}" for w in t.walls), f"{t.cpu:.2f}",
             f"{t.peak_rss / MB:.0f}", f"{ours.best / t.best:.2f}") for t in timings.values()]
    print(table(rows, ("contender", "best wall s", "runs s", "least CPU s", "peak RSS MB", "ours / this")))
    print(f"\nratio ours/SimpleITK (IDs + file names per series): {ours.best / sitk_all.best:.2f} "
          f"({sitk_all.best / ours.best:.1f}x faster)")
    print(f"ratio ours/SimpleITK (IDs only, one folder scan):   {verdict(ours.best / sitk_ids.best, IDS_TARGET)}")
    return 0 if found_ok else 1


if __name__ == "__main__":
    sys.exit(main())
