"""The ``irregular-series`` command: inspect, convert, demo."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .analysis import analyze
from .report import analysis_to_dict, format_summary


def _write_json(document: dict, target: str) -> None:
    text = json.dumps(document, indent=2) + "\n"
    if target == "-":
        sys.stdout.write(text)
    else:
        Path(target).write_text(text, encoding="utf-8")


def cmd_inspect(args: argparse.Namespace) -> int:
    analysis = analyze(args.paths, workers=args.workers)
    if args.json != "-":
        sys.stdout.write(format_summary(analysis))
    if args.json:
        _write_json(analysis_to_dict(analysis), args.json)
    return 0 if analysis.series else 1


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
    inspect.add_argument("--workers", type=int, default=None, help="processes for the header scan (default: all cores)")
    inspect.set_defaults(func=cmd_inspect)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
