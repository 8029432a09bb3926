"""Finding the files to scan: named files, and every regular file below named folders.

The walk is iterative (any depth of folders costs no recursion) and sorted (the same tree always
gives the same order: a folder's files, then its subfolders, as ``os.walk`` lists them). Anything
that is not scanned is said so with its reason: folders that cannot be read, symbolic links to
folders (never followed, so no folder is read twice and no link leads outside what was named),
dangling links and link loops, named pipes, devices and sockets (opening a pipe would wait
forever), folders deeper than the limit, and the folders the caller asks to skip (a conversion's
own output folder).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .limits import DEFAULT_LIMITS, Limits
from .messages import os_reason
from .model import Excluded

__all__ = ["Found", "find_files", "is_inside"]

_SPECIAL = (
    (stat.S_ISFIFO, "a named pipe (FIFO), not a file"),
    (stat.S_ISCHR, "a character device, not a file"),
    (stat.S_ISBLK, "a block device, not a file"),
    (stat.S_ISSOCK, "a socket, not a file"),
)


@dataclass
class Found:
    """The regular files to scan, in order, and everything passed over with its reason."""

    files: list[str] = field(default_factory=list)
    excluded: list[Excluded] = field(default_factory=list)


def _kind_reason(mode: int) -> str | None:
    """Why a file of this type is not scanned; None for regular files and folders."""
    for test, reason in _SPECIAL:
        if test(mode):
            return reason
    return None


def _link_reason(path: str) -> str:
    """Why a symbolic link whose target cannot be reached is not scanned."""
    try:
        target = os.readlink(path)
    except OSError as error:
        return f"symbolic link that cannot be read ({os_reason(error)})"
    try:
        os.stat(path)
    except OSError as error:
        if error.errno == errno.ELOOP:
            return f"symbolic link loop (to {target!r})"
        return f"dangling symbolic link: its target {target!r} {os_reason(error)}"
    return f"symbolic link to {target!r}"


def find_files(
    paths: Iterable[str | os.PathLike[str]], *, limits: Limits = DEFAULT_LIMITS, skip: Iterable[str | os.PathLike[str]] = ()
) -> Found:
    """Files named directly (links followed: the user named them), plus the regular files below
    named folders, excluding what cannot or must not be read, each with its reason. Folders in
    ``skip`` (compared by their real path) are not entered."""
    skipped = {os.path.realpath(p) for p in skip}
    found = Found()
    for p in paths:
        path = os.fspath(p)
        try:
            info = os.stat(path)
        except OSError as error:
            reason = _link_reason(path) if os.path.islink(path) else os_reason(error)
            found.excluded.append(Excluded(path, reason))
            continue
        if stat.S_ISDIR(info.st_mode):
            _walk(path, limits, skipped, found)
        elif stat.S_ISREG(info.st_mode):
            found.files.append(path)
        else:
            found.excluded.append(Excluded(path, _kind_reason(info.st_mode) or "not a regular file"))
    return found


def _walk(top: str, limits: Limits, skipped: set[str], found: Found) -> None:
    """Depth-first, iterative: a folder's files, then its subfolders, each in sorted order."""
    pending: list[tuple[str, int]] = [(top, 0)]
    while pending:
        folder, depth = pending.pop()
        if skipped and os.path.realpath(folder) in skipped:
            found.excluded.append(Excluded(folder, "folder not scanned: it is the output folder"))
            continue
        if depth > limits.folder_depth:
            found.excluded.append(Excluded(folder, f"folder not scanned: more than {limits.folder_depth} levels below "
                                                   f"{top} (limit folder_depth)"))
            continue
        try:
            with os.scandir(folder) as entries:
                listed = sorted(entries, key=lambda e: e.name)
        except OSError as error:
            found.excluded.append(Excluded(folder, f"folder cannot be read: {os_reason(error)}"))
            continue
        subfolders = []
        for entry in listed:
            path = entry.path
            try:
                if entry.is_symlink():
                    _linked(path, found)
                    continue
                mode = entry.stat(follow_symlinks=False).st_mode
            except OSError as error:
                found.excluded.append(Excluded(path, f"cannot be examined: {os_reason(error)}"))
                continue
            if stat.S_ISDIR(mode):
                subfolders.append(path)
            elif stat.S_ISREG(mode):
                found.files.append(path)
            else:
                found.excluded.append(Excluded(path, _kind_reason(mode) or "not a regular file"))
        pending.extend((sub, depth + 1) for sub in reversed(subfolders))


def _linked(path: str, found: Found) -> None:
    """A symbolic link met inside a folder: a link to a regular file is read as that file; links
    to folders are not followed; others say what they are."""
    try:
        info = os.stat(path)
    except OSError:
        found.excluded.append(Excluded(path, _link_reason(path)))
        return
    if stat.S_ISREG(info.st_mode):
        found.files.append(path)
    elif stat.S_ISDIR(info.st_mode):
        found.excluded.append(Excluded(
            path, f"{_link_reason(path)}, a folder: links to folders are not followed (name the folder itself to "
                  "scan it)"))
    else:
        found.excluded.append(Excluded(path, f"{_link_reason(path)}: {_kind_reason(info.st_mode) or 'not a regular file'}"))


def is_inside(inner: str | os.PathLike[str], outer: str | os.PathLike[str]) -> bool:
    """Whether ``inner`` is ``outer`` or lies below it, by their real paths."""
    a, b = Path(os.path.realpath(inner)), Path(os.path.realpath(outer))
    return a == b or b in a.parents
