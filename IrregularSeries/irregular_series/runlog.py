"""The per-series log of a conversion: one JSON line per series as it finishes, beside ``report.json``.

Each line is written with one ``write`` call on a file opened for appending, then flushed to disk
(fsync), so after an interruption of any kind the log holds every series that finished before it,
whole, and at most one cut-off last line, which ``read`` drops (and ``RunLog`` removes before
appending). A line names what the series was made from (its *fingerprint*: the source images'
SOP Instance UIDs, paths, sizes and modification times, the planned output names, the options
and the tool version) and the files written with their sizes, so that a later run can tell
whether those files are still what this run would write.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

LOG_NAME = "report.series.jsonl"

_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)  # never append through a planted link


@dataclass(frozen=True)
class LogEntry:
    """One finished series: ``files`` maps each written file's name (in the output folder) to its
    size in bytes; ``outputs`` and ``failures`` are its ``report.json`` entries."""

    series_instance_uid: str
    fingerprint: str
    files: dict[str, int]
    outputs: list[dict[str, Any]]
    failures: list[str]

    def still_on_disk(self, outdir: Path) -> bool:
        """Every file the series wrote is there, with the size it had when written."""
        try:
            return all(size_on_disk(outdir / name) == size for name, size in self.files.items())
        except OSError:
            return False


def size_on_disk(path: Path) -> int:
    """The size of a file, or of the files in a folder (a series written as DICOM files)."""
    if path.is_dir() and not path.is_symlink():
        return sum(f.stat().st_size for f in sorted(path.iterdir()))
    return path.stat().st_size


def fingerprint(sources: Iterable[tuple[str, str, int]], names: Iterable[str], settings: dict[str, Any]) -> str:
    """A digest of what a series' outputs are made from: ``sources`` as (SOP Instance UID, path,
    frame), ``names`` the planned output stems, ``settings`` everything else that shapes the output."""
    digest = hashlib.sha256()
    for uid, path, frame in sources:
        try:
            stat = os.stat(path)
            size, mtime_ns = stat.st_size, stat.st_mtime_ns
        except OSError:
            size, mtime_ns = -1, -1
        digest.update(json.dumps([uid, path, frame, size, mtime_ns]).encode("utf-8", "surrogateescape"))
    digest.update(json.dumps([list(names), settings], sort_keys=True, default=str).encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


class RunLog:
    """The log file at ``path`` (``LOG_NAME`` in the output folder)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def exists(self) -> bool:
        return os.path.lexists(self.path)

    def read(self) -> dict[str, LogEntry]:
        """The entries by series UID (a later line for a series replaces an earlier one)."""
        entries: dict[str, LogEntry] = {}
        for line in self._whole_lines():
            try:
                entry = LogEntry(**json.loads(line))
            except (ValueError, TypeError):
                continue  # not a line this version wrote: the series is converted again
            entries[entry.series_instance_uid] = entry
        return entries

    def start(self, *, keep: bool) -> None:
        """Begin appending: ``keep`` the finished lines (a cut-off last line is removed), else remove
        the log (the first ``append`` makes a new one, so a run that finished nothing leaves none)."""
        if not self.exists():
            return
        if not keep:
            os.unlink(self.path)
            return
        whole = b"".join(line + b"\n" for line in self._whole_lines())
        if len(whole) != self.path.stat().st_size:
            with open(self.path, "r+b") as f:
                f.truncate(len(whole))
                os.fsync(f.fileno())

    def append(self, entry: LogEntry) -> None:
        line = (json.dumps(asdict(entry), separators=(",", ":")) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NO_FOLLOW, 0o666)
        try:
            written = os.write(fd, line)
            if written != len(line):  # a full disk; the cut-off line is dropped when read
                raise OSError(f"{self.path}: only {written} of {len(line)} bytes written (disk full?)")
            os.fsync(fd)
        finally:
            os.close(fd)

    def _whole_lines(self) -> list[bytes]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        lines = data.split(b"\n")
        return lines[:-1]  # the last piece is empty after a final newline, or a cut-off line
