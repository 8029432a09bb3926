"""The ``irregular-series`` command: inspect, convert, demo."""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from . import __version__
from .analysis import analyze
from .conversion import ConvertResult, convert
from .decisions import OptionName
from .options import ConvertOptions
from .parallel import Execution
from .progress import Progress
from .policies import (
    GapPolicy,
    Interpolation,
    OutputFormat,
    Policy,
    PositionSource,
    SectionPolicy,
    Spacing,
    SpacingRule,
    TiltPolicy,
    parse_spacing,
)
from .report import analysis_to_dict, format_summary, series_title


def _write_json(document: dict, target: str) -> None:
    text = json.dumps(document, indent=2) + "\n"
    if target == "-":
        sys.stdout.write(text)
    else:
        Path(target).write_text(text, encoding="utf-8")


def _scan_progress(bar: Progress) -> Callable[[int, int], None]:
    def show(done: int, found: int) -> None:
        bar.total = found
        bar.step(count=done - bar.done)

    return show


def cmd_inspect(args: argparse.Namespace) -> int:
    with Progress(0, "files") as bar:
        analysis = analyze(args.paths, workers=args.workers, progress=_scan_progress(bar))
    if args.summary:
        from .summary import closing_summary, summarize, write_summary

        rows = summarize(analysis)
        try:
            write_summary(rows, args.summary)
        except (FileExistsError, ImportError) as err:
            hint = " (pip install pyarrow, or name a .csv file)" if isinstance(err, ImportError) else ""
            print(f"irregular-series inspect: --summary {args.summary}: {err}{hint}", file=sys.stderr)
            return 2
        if args.json != "-":
            sys.stdout.write(closing_summary(analysis, rows))
            print(f"summary: {args.summary} ({len(rows)} stacks)")
    elif args.json != "-":
        sys.stdout.write(format_summary(analysis))
    if args.json:
        _write_json(analysis_to_dict(analysis), args.json)
    if args.plot:
        try:
            from .plot import plot_analysis

            for path in plot_analysis(analysis, args.plot):
                print(f"spacing profile: {path}")
        except ImportError:
            print("--plot needs matplotlib: pip install 'irregular-series[plot]'", file=sys.stderr)
            return 2
    return 0 if analysis.series else 1


def _spacing(text: str) -> Spacing:
    try:
        return parse_spacing(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _positive_mm(text: str) -> float:
    value = _spacing(text)
    if isinstance(value, SpacingRule):
        raise argparse.ArgumentTypeError(f"expected a number of mm, got {text!r}")
    return value


def _options(args: argparse.Namespace) -> ConvertOptions:
    return ConvertOptions(
        spacing=args.spacing,
        gaps=args.gaps,
        sections=args.sections,
        tilt=args.tilt,
        interpolation=args.interpolation,
        format=args.format,
        positions=args.positions,
        include_localizers=args.include_localizers,
        force=args.force,
        background=args.background,
        mask=args.mask,
    )


def flag(option: OptionName, choice: str | None) -> str:
    """The command-line words for an option setting: ``--gaps split``, ``--force``."""
    return f"--{option.replace('_', '-')}" + (f" {choice}" if choice is not None else "")


def _use_flag(option: OptionName, choice: str | None) -> str:
    return f"use {flag(option, choice)}"


def print_outputs(result: ConvertResult) -> None:
    if result.resumed_series:
        print(f"kept the outputs of {len(result.resumed_series)} series finished by an earlier run")
    for output in result.outputs:
        shape = "x".join(map(str, output.shape))
        spacing = "x".join(f"{v:.4g}" for v in output.spacing)
        print(
            f"wrote {output.path}  {shape} voxels of {spacing} mm, "
            f"{'interpolated' if output.interpolated else 'copied bit for bit'}, "
            f"max position error {output.max_position_error_mm:.4f} mm"
            + (f" (against the overridden positions; {output.max_error_vs_dicom_mm:.4f} mm from the DICOM "
               "positions)" if output.positions_overridden else "")
        )
        if output.mask_path:
            print(f"  mask {output.mask_path}")
        content = output.content_check
        if content:
            print(f"  content check: {content['slices']} slices, footprint min {content['footprint_min']:.3f}, "
                  f"NCC min {content['ncc_min']:.3f} (median {content['ncc_median']:.3f}), "
                  f"{content['exact_slices']} bit-exact, reference error {content['reference_max_error']:.3g} "
                  f"over {content['voxels_checked']} voxels")
            for warning in content["warnings"]:
                print(f"  WARNING: {warning}")
        for decision in output.decisions:
            print(f"    - {decision.in_words(flag)}")
    for failure in result.failures:
        print(f"FAILED {failure.in_words(_use_flag)}", file=sys.stderr)
    print(f"report: {result.report_path}")


def _nothing_found(result: ConvertResult) -> None:
    """Why there was nothing to convert: the stacks that are not volumes, the files left out."""
    print("no volume stacks found: nothing to convert", file=sys.stderr)
    for series in result.analysis.series:
        for stack in series.stacks:
            hint = " (--include-localizers writes it)" if stack.role == "localizer" else ""
            print(f"  {series_title(series)} stack {stack.id}: {stack.role}{hint}", file=sys.stderr)
    excluded = result.analysis.excluded + [e for s in result.analysis.series for e in s.excluded]
    for e in excluded[:10]:
        print(f"  left out {e.path}: {e.reason}", file=sys.stderr)
    if len(excluded) > 10:
        print(f"  ... and {len(excluded) - 10} more (see {result.report_path})", file=sys.stderr)


def _execution(args: argparse.Namespace) -> Execution:
    return Execution(jobs=args.jobs, scheduler=args.dask, max_memory_bytes=args.max_memory, resume=args.resume)


def cmd_convert(args: argparse.Namespace) -> int:
    try:
        result = convert(args.paths, args.output, _options(args), execution=_execution(args))
    except FileExistsError as err:
        print(f"irregular-series convert: {err} ({_use_flag('force', None)} to replace it, or --resume to keep "
              "what it finished)", file=sys.stderr)
        return 1
    print_outputs(result)
    if not result.outputs and not result.failures and not result.resumed_series:
        _nothing_found(result)
        return 1
    return 0 if result.ok else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from .testing import write_demo  # the writer is only needed here

    root = Path(args.dir)
    dicom_dir = root / "dicom"
    if dicom_dir.exists() and any(dicom_dir.iterdir()):
        print(f"using the demo series already in {dicom_dir}")
    else:
        files = write_demo(dicom_dir)
        print(f"wrote a synthetic stitched micro-CT series ({len(files)} files) to {dicom_dir}")
    print()
    print(format_summary(analyze([dicom_dir])))
    print(f"converting at exactly {args.spacing:g} mm (the nominal spacing is 0.6 mm) into {root / 'volumes'}")
    options = ConvertOptions(spacing=args.spacing, force=True)
    result = convert([dicom_dir], root / "volumes", options)
    print_outputs(result)
    return 0 if result.ok and result.outputs else 1


def _policy_parser(policy: type[Policy]) -> Callable[[str], Policy]:
    def parse(text: str) -> Policy:
        try:
            return policy.parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    return parse


def _choices(policy: type[Policy]) -> str:
    return "; ".join(f"{m.value}: {m.help}" for m in policy) + " (default: %(default)s)"


def add_convert_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--spacing", type=_spacing, default=SpacingRule.AUTO,
                        help=f"slice spacing: a number of mm (honoured exactly) or {_choices(SpacingRule)}")
    for flag, policy in (("--gaps", GapPolicy), ("--sections", SectionPolicy), ("--tilt", TiltPolicy),
                         ("--interpolation", Interpolation), ("--format", OutputFormat),
                         ("--positions", PositionSource)):
        parser.add_argument(flag, type=_policy_parser(policy), default=list(policy)[0],
                            metavar="{" + ",".join(policy.values()) + "}", help=f"{policy.title()}: {_choices(policy)}")
    parser.add_argument("--include-localizers", action="store_true", help="also write localizer stacks")
    parser.add_argument("--background", type=_number, default=None, metavar="VALUE",
                        help="value of voxels no slice reaches (default: the rescaled PixelPaddingValue, "
                             "else the lowest value in the data)")
    parser.add_argument("--mask", action="store_true",
                        help="also write each volume's data mask (1 where a voxel holds data; always written "
                             "with --gaps blank)")
    parser.add_argument("--force", action="store_true", help="overwrite existing output files")


def _jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number of processes, got {text!r}")
    return value


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?", re.IGNORECASE)


def _bytes(text: str) -> int:
    match = _SIZE.fullmatch(text.strip())
    if not match or float(match[1]) <= 0:
        raise argparse.ArgumentTypeError(f"expected a size such as 4G or 512M, got {text!r}")
    return int(float(match[1]) * 1024 ** "_KMGT".index(match[2].upper() or "_"))


def add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=_jobs, default=None, metavar="N",
                        help="series converted at once, each in its own process (default: the CPU count); "
                             "memory grows with the series in flight")
    parser.add_argument("--max-memory", type=_bytes, default=None, metavar="SIZE",
                        help="do not start another series while those in flight would take more than SIZE "
                             "(e.g. 4G), by an estimate of 3 float32 copies of each series' largest volume")
    parser.add_argument("--resume", action="store_true",
                        help="keep the series an earlier run into the same folder finished (same files, "
                             "options and outputs, by its log report.series.jsonl) and convert the rest")
    parser.add_argument("--dask", metavar="SCHEDULER_ADDRESS", default=None,
                        help="convert the series on this Dask distributed cluster, whose workers must see "
                             "the same file system (needs irregular-series[distributed])")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="irregular-series",
        description="DICOM series with irregular geometry to exact regular volumes, with a reason for every decision.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    inspect = sub.add_parser("inspect", help="explain what is in DICOM files and folders (headers only)")
    inspect.add_argument("paths", nargs="+", help="DICOM files or folders (searched recursively)")
    inspect.add_argument("--json", metavar="FILE", help="also write the machine-readable report to FILE ('-' for stdout only)")
    inspect.add_argument("--plot", metavar="DIR", help="write one spacing-profile PNG per stack into DIR (needs matplotlib)")
    inspect.add_argument("--summary", metavar="FILE",
                         help="write one row per stack to FILE (CSV; Parquet when FILE ends in .parquet, needs "
                              "pyarrow) and print counts per irregularity kind instead of the full text")
    inspect.add_argument("--workers", type=int, default=None, help="processes for the header scan (default: all cores)")
    inspect.set_defaults(func=cmd_inspect)

    conv = sub.add_parser("convert", help="write each volume stack as a verified regular NRRD/NIfTI volume")
    conv.add_argument("paths", nargs="+", help="DICOM files or folders (searched recursively)")
    conv.add_argument("-o", "--output", required=True,
                      help="output folder (created if needed); nothing in it is replaced without --force")
    add_convert_options(conv)
    add_run_options(conv)
    conv.set_defaults(func=cmd_convert)

    demo = sub.add_parser("demo", help="write a built-in stitched micro-CT series, inspect it and convert it at 0.6 mm")
    demo.add_argument("dir", nargs="?", default="irregular-series-demo", help="folder for the demo (default: %(default)s)")
    demo.add_argument("--spacing", type=_positive_mm, default=0.6, help="output slice spacing in mm (default: %(default)s)")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for stream in (sys.stdout, sys.stderr):
        # Header text in any script must not crash printing to a console that cannot show it.
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
