"""One-line messages from operating-system errors, and text made safe for a terminal.

Python's own error text (``[Errno 13] Permission denied: '/x'``) is not for users: ``os_reason``
says what happened in words, the caller names the path. Header text and file names can hold
control characters that would retitle a terminal or rewrite earlier lines; ``printable`` shows
them as escapes instead.
"""

from __future__ import annotations

import errno
import os
import re

__all__ = ["os_reason", "one_line", "printable"]

_OS_REASONS = {
    errno.ENOENT: "does not exist",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ELOOP: "symbolic link loop",
    errno.ENAMETOOLONG: "path or name too long for the file system",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "is a folder, not a file",
    errno.EEXIST: "already exists",
    errno.ENOSPC: "no space left on the device",
    errno.EROFS: "read-only file system",
    errno.EIO: "input/output error (the device failed)",
    errno.EXDEV: "on another device",
    errno.EBUSY: "busy",
    errno.ENOTEMPTY: "folder not empty",
}
if hasattr(errno, "EDQUOT"):
    _OS_REASONS[errno.EDQUOT] = "disk quota exceeded"


def os_reason(error: OSError) -> str:
    """What an operating-system error means, without the path or Python's wording."""
    if error.errno in _OS_REASONS:
        return _OS_REASONS[error.errno]
    if error.errno:
        return os.strerror(error.errno).lower()
    return " ".join(str(error).split()) or type(error).__name__


def one_line(error: BaseException) -> str:
    """An exception's message on one line (OS errors as ``os_reason`` with the path they name)."""
    if isinstance(error, OSError) and error.errno:
        where = f"{error.filename}: " if error.filename is not None else ""
        return f"{where}{os_reason(error)}"
    return " ".join(str(error).split()) or type(error).__name__


# C0 and C1 controls, DEL, and the bidirectional overrides and isolates that reorder what a
# terminal shows (U+202A-202E, U+2066-2069), plus line and paragraph separators.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with every control or reordering character shown as an escape (``\\x1b``,
    ``\\u202e``), so that one line stays one line and shows what it holds."""
    return _UNPRINTABLE.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), text)
