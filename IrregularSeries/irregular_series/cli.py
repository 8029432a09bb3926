"""The ``irregular-series`` command: inspect, convert, demo.

Exit statuses (documented in the README, kept stable for pipelines):

0   everything asked for was done (``inspect``: at least one series found)
1   something was not done: a volume failed or was refused, nothing to convert, no series found,
    an output that exists or cannot be written
2   the command line is wrong (argparse), or an optional dependency is missing
128 + N  interrupted by signal N (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP)
"""

from __future__ import annotations

import argparse
import math
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import Field
from pathlib import Path
from typing import Any

from . import __version__
from .analysis import analyze
from .assembly import candidate_lines, find_candidates
from .content_check import content_summary_text
from .conversion import ConvertResult, convert
from .decisions import OptionName
from .limits import DEFAULT_LIMITS, Limits
from .messages import one_line, printable
from .model import Analysis
from .options import ConvertOptions
from .outfolder import OutputInInputError
from .outputs import atomic_write
from .parallel import Execution
from .policies import (
    GapPolicy,
    Interpolation,
    OutputFormat,
    OverlapPolicy,
    Policy,
    PositionSource,
    SectionPolicy,
    Spacing,
    SpacingRule,
    StackSplit,
    TiltPolicy,
    parse_spacing,
)
from .progress import Progress
from .report import analysis_to_dict, format_summary, json_text, series_title
from .runlog import LOG_NAME, RunLog

PROG = "irregular-series"


def say(text: str = "", *, error: bool = False) -> None:
    """Print one line (header text and file names made ``printable``)."""
    print(printable(text), file=sys.stderr if error else sys.stdout)


def _refuse(command: str, error: BaseException) -> int:
    """One line for an error that stops the command, in words, with the flag that helps."""
    hint = ""
    if isinstance(error, FileExistsError):
        hint = f" ({_use_flag('force', None)})"
    elif isinstance(error, OutputInInputError):
        hint = f" ({_use_flag('allow_output_in_input', None)})"
    say(f"{PROG} {command}: {one_line(error)}{hint}", error=True)
    return 1


def _scanned_files(analysis: Analysis) -> set[str]:
    """Real paths of every file the analysis read or left out."""
    files = {s.path for series in analysis.series for stack in series.stacks for s in stack.slices}
    files |= {e.path for e in analysis.excluded} | {e.path for s in analysis.series for e in s.excluded}
    return {os.path.realpath(f) for f in files}


def _write_json(analysis: Analysis, target: str, force: bool) -> None:
    text = json_text(analysis_to_dict(analysis))
    if target == "-":
        sys.stdout.write(text)
        return
    if os.path.realpath(target) in _scanned_files(analysis):
        raise FileExistsError(f"{target} is one of the input files; not overwriting it")
    atomic_write(Path(target), lambda f: f.write(text.encode("utf-8")), force=force)


def _scan_progress(bar: Progress) -> Callable[[int, int], None]:
    def show(done: int, found: int) -> None:
        bar.total = found
        bar.step(count=done - bar.done)

    return show


def cmd_inspect(args: argparse.Namespace) -> int:
    with Progress(0, "files") as bar:
        analysis = analyze(args.paths, workers=args.workers, progress=_scan_progress(bar), limits=args.limits,
                           keep_together=args.keep_together)
    candidates = find_candidates(analysis)
    if args.summary:
        from .summary import closing_summary, summarize, write_summary

        rows = summarize(analysis)
        try:
            write_summary(rows, args.summary, force=args.force)
        except ImportError:
            say(f"{PROG} inspect: --summary {args.summary}: Parquet needs pyarrow (pip install pyarrow, or name "
                "a .csv file)", error=True)
            return 2
        except (OSError, ValueError) as err:
            return _refuse("inspect", err)
        if args.json != "-":
            sys.stdout.write(closing_summary(analysis, rows))
            say(f"summary: {args.summary} ({len(rows)} stacks)")
    elif args.json != "-":
        sys.stdout.write(format_summary(analysis))
        for candidate in candidates:
            lines = candidate_lines(candidate)
            say()
            say(f"Assembly candidate: {lines[0]}")
            for line in lines[1:]:
                say(f"      {line}")
            say("      (convert --assemble joins every candidate; --assemble UID,UID,... joins the named series)")
        _limit_hint(analysis)
    try:
        if args.json:
            _write_json(analysis, args.json, args.force)
        if args.plot:
            try:
                from .plot import plot_analysis

                for path in plot_analysis(analysis, args.plot, force=args.force):
                    say(f"spacing profile: {path}")
            except ImportError:
                say("--plot needs matplotlib: pip install 'irregular-series[plot]'", error=True)
                return 2
    except (OSError, ValueError) as err:
        return _refuse("inspect", err)
    return 0 if analysis.series else 1


def _limit_hint(analysis: Analysis) -> None:
    """Files refused by a limit: how to raise it."""
    excluded = analysis.excluded + [e for s in analysis.series for e in s.excluded]
    if any(e.error_type == "LimitExceeded" for e in excluded):
        say("some files were refused by a limit (named in their reasons); raise one with --limit NAME=VALUE",
            error=True)


def _limits(values: list[str] | None) -> Limits:
    pairs = {}
    for text in values or []:
        name, equals, value = text.partition("=")
        if not equals:
            raise argparse.ArgumentTypeError(f"--limit expects NAME=VALUE, got {text!r}")
        pairs[name.strip()] = value.strip()
    try:
        return DEFAULT_LIMITS.with_values(pairs)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


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
        overlap=args.overlap,
        assemble=args.assemble,
        in_plane_spacing_mm=args.in_plane_spacing_mm,
        include_localizers=args.include_localizers,
        keep_together=args.keep_together,
        force=args.force,
        background=args.background,
        mask=args.mask,
        four_d=args.four_d,
        allow_output_in_input=args.allow_output_in_input,
        limits=args.limits,
    )


def flag(option: OptionName, choice: str | None) -> str:
    """The command-line words for an option setting: ``--gaps split``, ``--force``,
    ``--limit output_voxels=VALUE``."""
    if option == "limits":
        return f"--limit {choice}=VALUE"
    if option == "four_d":
        return "--4d"
    return f"--{option.replace('_', '-')}" + (f" {choice}" if choice is not None else "")


def _use_flag(option: OptionName, choice: str | None) -> str:
    return f"use {flag(option, choice)}"


def print_outputs(result: ConvertResult) -> None:
    titles = {s.series_instance_uid: series_title(s) for s in result.analysis.series}
    for uid in result.resumed_series:
        say(f"already done: {titles.get(uid, uid)}, finished by an earlier run from the same files and options "
            "(its outputs unchanged, kept)")
    for output in result.outputs:
        shape = "x".join(map(str, output.shape))
        spacing = "x".join(f"{v:.4g}" for v in output.spacing)
        say(
            f"wrote {output.path}  {shape} voxels of {spacing} mm, "
            f"{'interpolated' if output.interpolated else 'copied bit for bit'}, "
            f"max position error {output.max_position_error_mm:.4f} mm"
            + (f" (against the overridden positions; {output.max_error_vs_dicom_mm:.4f} mm from the DICOM "
               "positions)" if output.positions_overridden else "")
        )
        if output.mask_path:
            say(f"  mask {output.mask_path}")
        if output.series:
            axis = output.series["axis"]
            say(f"  4D: {len(axis['values'])} volumes along {axis['name']}"
                + (f" ({axis['unit']})" if axis["unit"] else "") + f": {', '.join(f'{v:g}' for v in axis['values'])}")
            for volume in output.series["volumes"]:
                say(f"    {axis['name']} {volume['index_value']:g}: stack {volume['stack']}, "
                    f"{content_summary_text(volume['content_check'])}")
        elif output.content_check:
            say(f"  {content_summary_text(output.content_check)}")
        for decision in output.decisions:
            say(f"    - {decision.in_words(flag)}")
    for failure in result.failures:
        say(f"FAILED {failure.in_words(_use_flag)}", error=True)
    say(f"report: {result.report_path}")


def _nothing_found(result: ConvertResult) -> None:
    """Why there was nothing to convert: the stacks that are not volumes, the files left out."""
    say("no volume stacks found: nothing to convert", error=True)
    for series in result.analysis.series:
        for stack in series.stacks:
            hint = " (--include-localizers writes it)" if stack.role == "localizer" else ""
            say(f"  {series_title(series)} stack {stack.id}: {stack.role}{hint}", error=True)
    excluded = result.analysis.excluded + [e for s in result.analysis.series for e in s.excluded]
    for e in excluded[:10]:
        say(f"  left out {e.path}: {e.reason}", error=True)
    if len(excluded) > 10:
        say(f"  ... and {len(excluded) - 10} more (see {result.report_path})", error=True)
    _limit_hint(result.analysis)


def _execution(args: argparse.Namespace) -> Execution:
    return Execution(jobs=args.jobs, scheduler=args.dask, max_memory_bytes=args.max_memory)


def _convert(command: str, paths: Iterable[str | os.PathLike[str]], output: str | os.PathLike[str],
             options: ConvertOptions, execution: Execution = Execution()) -> int:
    try:
        result = convert(list(paths), output, options, execution=execution)
    except FileExistsError as err:
        say(f"{PROG} {command}: {one_line(err)} ({_use_flag('force', None)} to replace it)", error=True)
        return 1
    except (OSError, OutputInInputError) as err:  # FolderBusyError included
        return _refuse(command, err)
    print_outputs(result)
    if not result.outputs and not result.failures and not result.resumed_series:
        _nothing_found(result)
        return 1
    return 0 if result.ok else 1


def cmd_convert(args: argparse.Namespace) -> int:
    if args.resume:
        # Running again resumes anyway; --resume also says that an earlier run must be there.
        if args.force:
            say(f"{PROG} convert: --resume keeps what an earlier run finished, --force replaces it: choose one",
                error=True)
            return 2
        if not RunLog(Path(args.output) / LOG_NAME).exists():
            say(f"{PROG} convert: nothing to resume: {printable(str(args.output))} holds no run log ({LOG_NAME}) "
                "of an earlier run", error=True)
            return 1
    return _convert("convert", args.paths, args.output, _options(args), _execution(args))


def cmd_demo(args: argparse.Namespace) -> int:
    from .testing import write_demo  # the writer is only needed here

    root = Path(args.dir)
    dicom_dir = root / "dicom"
    marker = root / DEMO_MARKER
    try:
        listed = sorted(os.listdir(dicom_dir)) if os.path.isdir(dicom_dir) else []
        if listed and (not marker.is_file() or marker.read_text(encoding="utf-8").split() != listed):
            raise FileExistsError(f"{dicom_dir} holds files the demo did not write; not using or replacing them "
                                  "(choose an empty or new folder)")
        if listed:
            say(f"using the demo series already in {dicom_dir}")
        else:
            files = write_demo(dicom_dir)
            names = "\n".join(sorted(p.name for p in files)) + "\n"
            atomic_write(marker, lambda f: f.write(names.encode("utf-8")), force=True)
            say(f"wrote a synthetic stitched micro-CT series ({len(files)} files) to {dicom_dir}")
    except OSError as err:
        return _refuse("demo", err)
    say()
    print(format_summary(analyze([dicom_dir])))
    say(f"converting at exactly {args.spacing:g} mm (the nominal spacing is 0.6 mm) into {root / 'volumes'}")
    return _convert("demo", [dicom_dir], root / "volumes", ConvertOptions(spacing=args.spacing, force=args.force))


DEMO_MARKER = ".irregular-series-demo"
"""The file in the demo folder listing the files the demo wrote into ``dicom`` (so it reuses only
those, and never takes a user's folder for its own)."""


def _series_uids(text: str) -> tuple[str, ...]:
    uids = tuple(u.strip() for u in text.split(",") if u.strip())
    if len(uids) < 2:
        raise argparse.ArgumentTypeError(f"--assemble needs at least two SeriesInstanceUIDs separated by commas; got {text!r}")
    return uids


def _stack_splits(text: str) -> tuple[StackSplit, ...]:
    try:
        return tuple(StackSplit.parse(word) for word in text.split(",") if word.strip())
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_keep_together_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keep-together", type=_stack_splits, default=(), metavar="SPLIT,...",
                        help="splits of a series into stacks not to make, for a series one of them parts wrongly: "
                             + _choices(StackSplit).replace(" (default: %(default)s)", ""))


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
                         ("--positions", PositionSource), ("--overlap", OverlapPolicy)):
        parser.add_argument(flag, type=_policy_parser(policy), default=list(policy)[0],
                            metavar="{" + ",".join(policy.values()) + "}", help=f"{policy.title()}: {_choices(policy)}")
    parser.add_argument("--assemble", nargs="?", const=True, default=False, type=_series_uids, metavar="UID,UID,...",
                        help="join several series into one volume: every candidate 'inspect' lists, or exactly the "
                             "named series (which may also span frames of reference within one study)")
    parser.add_argument("--in-plane-spacing-mm", type=_positive_mm, default=None, metavar="MM",
                        help="pixel spacing of assembled volumes whose series differ in-plane (default: the finest)")
    parser.add_argument("--include-localizers", action="store_true", help="also write localizer stacks")
    add_keep_together_option(parser)
    parser.add_argument("--background", type=_number, default=None, metavar="VALUE",
                        help="value of voxels no slice reaches (default: the rescaled PixelPaddingValue, "
                             "else the lowest value in the data)")
    parser.add_argument("--mask", action="store_true",
                        help="also write each volume's data mask (1 where a voxel holds data; always written "
                             "with --gaps blank)")
    parser.add_argument("--4d", dest="four_d", action="store_true",
                        help="write each time series (volumes of one stack at the same positions: time points, "
                             "cardiac phases) as one 4D file on a common grid, time last, each volume verified; "
                             "echoes and magnitude/phase stay separate files")
    parser.add_argument("--force", action="store_true", help="overwrite existing output files")
    parser.add_argument("--allow-output-in-input", action="store_true",
                        help="allow an output folder inside an input folder (the scan then leaves it out)")
    add_limit_option(parser)


def add_limit_option(parser: argparse.ArgumentParser) -> None:
    names = ", ".join(f.name for f in _limit_fields())
    parser.add_argument("--limit", dest="limits", action="append", metavar="NAME=VALUE", type=_limit_pair,
                        help=f"raise or lower a named limit (repeatable): {names}; see the README")
    parser.set_defaults(limits=None)


def _limit_fields() -> tuple[Field[Any], ...]:
    from dataclasses import fields

    return fields(Limits)


def _limit_pair(text: str) -> str:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return text


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
    inspect.add_argument("--force", action="store_true",
                         help="replace an existing --json or --summary file or --plot pictures")
    add_limit_option(inspect)
    add_keep_together_option(inspect)
    inspect.set_defaults(func=cmd_inspect)

    conv = sub.add_parser("convert", help="write each volume stack as a verified regular NRRD/NIfTI volume")
    conv.add_argument("paths", nargs="+", help="DICOM files or folders (searched recursively)")
    conv.add_argument("-o", "--output", required=True,
                      help="output folder (created if needed); nothing in it is replaced without --force")
    add_convert_options(conv)
    add_run_options(conv)
    conv.add_argument("--resume", action="store_true",
                      help="finish an interrupted run into OUT: what running again does anyway, but refused "
                           "when OUT holds no run log of an earlier run")
    conv.set_defaults(func=cmd_convert)

    demo = sub.add_parser("demo", help="write a built-in stitched micro-CT series, inspect it and convert it at 0.6 mm")
    demo.add_argument("dir", nargs="?", default="irregular-series-demo", help="folder for the demo (default: %(default)s)")
    demo.add_argument("--spacing", type=_positive_mm, default=0.6, help="output slice spacing in mm (default: %(default)s)")
    demo.add_argument("--force", action="store_true", help="replace the volumes of an earlier demo run")
    demo.set_defaults(func=cmd_demo)
    return parser


class Interrupted(BaseException):
    """A termination signal, raised where the program is so that every ``finally`` runs (temporary
    files are removed, the output folder is unlocked) before the process ends."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_interrupted(signum: int, frame: object) -> None:
    raise Interrupted(signum)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.limits = _limits(getattr(args, "limits", None))
    except argparse.ArgumentTypeError as err:
        parser.error(str(err))
    for stream in (sys.stdout, sys.stderr):
        # Header text in any script must not crash printing to a console that cannot show it.
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    handled = [s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None]
    if threading.current_thread() is not threading.main_thread():
        handled = []  # only the main thread may handle signals
    previous = {s: signal.signal(s, _raise_interrupted) for s in handled}
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return _interrupted(signal.SIGINT)
    except Interrupted as stop:
        return _interrupted(stop.signum)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _interrupted(signum: int) -> int:
    name = signal.Signals(signum).name
    say(f"{PROG}: interrupted ({name}); nothing was left half-written (a conversion run again the same way keeps "
        "what it finished)", error=True)
    return 128 + signum


if __name__ == "__main__":
    sys.exit(main())
