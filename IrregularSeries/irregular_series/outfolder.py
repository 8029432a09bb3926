"""The output folder of a conversion: kept apart from the inputs, and claimed under a lock.

Two conversions into one folder would race on its report and its files, so a conversion holds an
exclusive lock on ``OUTDIR/.irregular-series.lock`` (``flock``; an exclusively created file where
there is no ``flock``) from before it looks at the folder until it has written its report; a
second one is refused. While the lock is held no other run can be writing there, so temporary
files and folders (``.*.partial``) in the folder are leftovers of a run that was killed outright,
and are removed (``remove_partial_files`` says which, safely).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from .outputs import remove_partial_files
from .walk import is_inside

__all__ = ["LOCK_NAME", "FolderBusyError", "OutputInInputError", "OutputLock", "claim_output_folder"]

LOCK_NAME = ".irregular-series.lock"


class FolderBusyError(OSError):
    """Another conversion is writing into the output folder."""


class OutputInInputError(ValueError):
    """The output folder is inside an input folder, or an input inside the output folder."""


def _check_apart(outdir: Path, inputs: Iterable[str | os.PathLike[str]]) -> None:
    for p in inputs:
        if os.path.isdir(p) and is_inside(outdir, p):
            raise OutputInInputError(
                f"the output folder {outdir} is inside the input folder {os.fspath(p)}: its outputs could replace "
                "input files and be read as input by a later scan; choose an output folder outside the input, "
                "or allow it explicitly (the scan then leaves the output folder out)")
        if os.path.lexists(p) and is_inside(p, outdir):
            raise OutputInInputError(
                f"the input {os.fspath(p)} is inside the output folder {outdir}: outputs could replace it; choose an "
                "output folder outside the input, or allow it explicitly")


def _make_folder(outdir: Path) -> None:
    if os.path.lexists(outdir) and not os.path.isdir(outdir):
        raise OSError(f"{outdir}: is a file, not a folder")
    outdir.mkdir(parents=True, exist_ok=True)


class OutputLock:
    """The exclusive claim on one output folder; ``release()`` (idempotent) gives it up."""

    def __init__(self, outdir: Path) -> None:
        self.path = outdir / LOCK_NAME
        self._fd: int | None = None
        self._flock = True
        try:
            import fcntl
        except ImportError:  # no flock (Windows): an exclusively created file, removed at the end
            self._flock = False
            try:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                raise FolderBusyError(f"{outdir} is locked by another conversion ({self.path} exists; remove it "
                                      "if no conversion is running)") from None
            return
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise FolderBusyError(f"{outdir} is being written by another conversion; wait for it to finish or "
                                      "choose another output folder") from None
            # The holder before us may have removed the file after we opened it: then lock again.
            try:
                same = os.stat(self.path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self._fd = fd
                return
            os.close(fd)

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.unlink(self.path)  # while still locked: a run waiting on the old file sees another inode
        except FileNotFoundError:
            pass
        os.close(fd)


def claim_output_folder(
    outdir: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str]], *, allow_output_in_input: bool
) -> OutputLock:
    """Check ``outdir`` against the inputs, create it if needed, lock it and clear the temporary
    files a killed run left there.

    Raises ``OutputInInputError`` when it overlaps an input (unless ``allow_output_in_input``),
    ``FolderBusyError`` when another conversion holds it, and ``OSError`` (naming the path) when it
    cannot be made.
    """
    outdir = Path(outdir)
    if not allow_output_in_input:
        _check_apart(outdir, inputs)
    _make_folder(outdir)
    lock = OutputLock(outdir)
    try:
        remove_partial_files(outdir)
    except BaseException:
        lock.release()
        raise
    return lock
