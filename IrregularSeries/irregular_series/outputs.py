"""Output file names and atomic writes.

Names come from header text (series descriptions, UIDs) that anyone can fill in, so a stem is
reduced to a portable alphabet and a joined path is checked to stay inside the output folder.
Files are written to a temporary sibling and renamed into place, so a reader never sees half a
volume and an interrupted run leaves no partial file under the final name.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import secrets
import shutil
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Callable

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

FALLBACK_STEM = "unnamed"
"""The stem used when nothing of the header text survives sanitising."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_SEPARATOR_RUN = re.compile(r"[._-]{2,}")
_SUFFIX = re.compile(r"(\.[A-Za-z0-9]+)+")
_HASH_CHARS = 8
_MAX_NAME_BYTES = 255  # the file-name limit of common file systems (ext4, NTFS, APFS)

# Device names that Windows refuses as file names, with or without an extension.
_WINDOWS_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL"] + [f"{dev}{n}" for dev in ("COM", "LPT") for n in "123456789"]
)


def safe_stem(text: str, max_len: int = 80) -> str:
    """A portable file-name stem made from arbitrary header text.

    The result uses only ``[A-Za-z0-9._-]``: accents are dropped (``é`` -> ``e``), any other run
    of characters becomes ``_``, runs of separators collapse to one ``_`` (so ``..`` never
    survives), separators are stripped from both ends (no hidden files, nothing that looks like a
    command-line option), Windows device names get a ``_`` (``CON.x`` -> ``CON_.x``). Text longer
    than ``max_len`` (at least 16) is cut and ends with ``_`` plus 8 hex digits of its SHA-256, so
    two long descriptions that differ only at the end still give different stems. Never empty:
    ``"unnamed"`` when nothing is left.
    """
    if max_len < 2 * _HASH_CHARS:
        raise ValueError(f"max_len must be at least {2 * _HASH_CHARS}, got {max_len}")
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    stem = _SEPARATOR_RUN.sub("_", _UNSAFE.sub("_", ascii_text)).strip("._-")
    if not stem:
        return FALLBACK_STEM
    device, dot, rest = stem.partition(".")
    if device.upper() in _WINDOWS_RESERVED:
        stem = device + "_" + dot + rest
    if len(stem) > max_len:
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_CHARS]
        stem = stem[: max_len - _HASH_CHARS - 1].rstrip("._-") + "_" + digest
    return stem


def output_path(outdir: Path, stem: str, suffix: str) -> Path:
    """``outdir / (stem + suffix)``, refusing anything that would land outside ``outdir``.

    ``stem`` must be one plain path component (use :func:`safe_stem` for header text) and
    ``suffix`` a dotted extension such as ``.nrrd`` or ``.nii.gz``, or ``""`` for a folder. ``outdir`` is resolved, and a
    symbolic link planted under the target name is refused. Raises
    ``ValueError`` for NUL bytes, separators, ``.``/``..``, absolute stems, bad suffixes, over-long
    names, or a result outside ``outdir``. Returns the path under the resolved ``outdir``.
    """
    outdir_text = os.fspath(outdir)
    for label, value in (("output folder", outdir_text), ("stem", stem), ("suffix", suffix)):
        if "\x00" in value:
            raise ValueError(f"{label} contains a NUL byte: {value!r}")
    if not stem or stem in (".", "..") or any(sep in stem for sep in ("/", "\\", os.sep)):
        raise ValueError(f"file-name stem must be a single plain name, got {stem!r}")
    if suffix and not _SUFFIX.fullmatch(suffix):
        raise ValueError(f"suffix must look like '.nrrd' or '.nii.gz', got {suffix!r}")
    name = stem + suffix
    if len(name.encode("utf-8", "surrogateescape")) > _MAX_NAME_BYTES:
        raise ValueError(f"file name longer than {_MAX_NAME_BYTES} bytes: {name[:40]!r}...")
    try:
        root = Path(outdir_text).resolve()
    except (OSError, RuntimeError) as error:  # symlink loops: RuntimeError before Python 3.13
        raise ValueError(f"cannot resolve the output folder {outdir_text!r}: {error}") from None
    candidate = root / name
    # ``name`` is one plain component, so only a link planted under it can lead elsewhere (and a
    # looping link no longer raises when resolved since Python 3.13): refuse any link there.
    if candidate.is_symlink():
        raise ValueError(
            f"{name!r} in {root} is a symbolic link (to {os.readlink(candidate)!r}); it could lead outside "
            "the output folder, so it is refused"
        )
    return candidate


def atomic_write(path: Path, write: Callable[[BinaryIO], object], *, force: bool,
                 before_rename: Callable[[], object] | None = None) -> None:
    """Write a file through ``write(stream)`` so that it appears complete or not at all.

    The data goes to a temporary file in the same folder (same file system, so the final rename is
    atomic), is fsynced, then moved to ``path``. ``before_rename()``, when given, is called between
    the two: an exception from it (say, a check of the data that ran while it was written) leaves
    no file. Without ``force`` an existing ``path`` raises
    ``FileExistsError``; the check is atomic (a hard link, which fails if the name appeared in the
    meantime) where the file system supports hard links. The temporary file is removed on any error,
    including KeyboardInterrupt. The file gets the usual permissions (umask), not mkstemp's 0600.
    A link at ``path`` is never followed: with ``force`` the link itself is replaced. Operating-
    system errors are raised naming ``path`` (not the temporary file).
    """
    path = Path(path)
    if not force and os.path.lexists(path):
        raise _exists_error(path)
    try:
        tmp, fd = _create_temporary_sibling(path)
    except OSError as error:
        raise _naming(error, path) from None
    try:
        with _WritingBack(io.FileIO(fd, "wb")) as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        if before_rename is not None:
            before_rename()
        if force:
            os.replace(tmp, path)
        else:
            _move_no_clobber(tmp, path)
        _fsync_folder(path.parent)
    except FileExistsError:
        raise
    except OSError as error:
        raise _naming(error, path) from None
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


_PARTIAL = re.compile(r"\.[0-9a-f]{16}\.partial")


def remove_partial_files(folder: Path) -> list[Path]:
    """Delete the temporary files and folders that writes killed before their rename left in
    ``folder`` (only when no other run can be writing into it); returns what was deleted.

    Only entries named as ``atomic_write`` and ``atomic_folder`` name them are touched, never
    through a link: a temporary folder is emptied only when it holds nothing but regular files (what
    ``atomic_folder`` writes into one), and every name is resolved inside the opened folder, so a
    link swapped in meanwhile leads nowhere else. Anything else by such a name is left alone.
    """
    removed = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if not _PARTIAL.fullmatch(entry.name):
                continue
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
            elif entry.is_dir(follow_symlinks=False) and _remove_partial_folder(Path(folder), entry.name):
                removed.append(Path(entry.path))
    return removed


_OPEN_FOLDER = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)


def _remove_partial_folder(parent: Path, name: str) -> bool:
    """Remove the temporary folder ``parent/name`` when it holds only regular files; whether it did.
    Where folders cannot be opened by descriptor (Windows), it is left for the user."""
    if not {os.open, os.unlink, os.rmdir} <= os.supports_dir_fd or os.scandir not in os.supports_fd:
        return False
    parent_fd = os.open(parent, _OPEN_FOLDER)
    try:
        try:
            fd = os.open(name, _OPEN_FOLDER, dir_fd=parent_fd)
        except OSError:  # not a folder any more (a link swapped in): not ours to remove
            return False
        try:
            with os.scandir(fd) as entries:
                names = [(e.name, e.is_file(follow_symlinks=False)) for e in entries]
            if not all(regular for _, regular in names):
                return False
            for entry_name, _ in names:
                os.unlink(entry_name, dir_fd=fd)
        finally:
            os.close(fd)
        os.rmdir(name, dir_fd=parent_fd)
        return True
    finally:
        os.close(parent_fd)


def _naming(error: OSError, path: Path) -> OSError:
    """The same error, about ``path``."""
    if not error.errno:
        return error
    return type(error)(error.errno, os.strerror(error.errno), str(path))


def _create_temporary_sibling(path: Path) -> tuple[Path, int]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        # Short fixed-length name (_PARTIAL): the target's own name may already be at the length limit.
        tmp = path.with_name(f".{secrets.token_hex(8)}.partial")
        try:
            return tmp, os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue


_WRITEBACK_BYTES = 16 << 20


class _WritingBack(io.BufferedWriter):
    """A file that hands what was written to the disk every ``_WRITEBACK_BYTES`` (Linux starts
    writing back a dirty range it is told will not be needed soon), so that the fsync before the
    rename waits for the last part, not for the whole file, and the disk works while the rest is
    computed. Only advice: where there is no ``posix_fadvise`` it is a plain buffered file."""

    def __init__(self, raw: io.FileIO) -> None:
        super().__init__(raw)
        self._written = 0
        self._handed = 0
        self._advising = hasattr(os, "posix_fadvise")

    def write(self, data: ReadableBuffer, /) -> int:
        n = super().write(data)
        self._written += n
        if self._advising and self._written - self._handed >= _WRITEBACK_BYTES:
            self.flush()
            try:
                os.posix_fadvise(self.fileno(), self._handed, self._written - self._handed, os.POSIX_FADV_DONTNEED)
            except OSError:  # a file system that takes no advice: the fsync does it all
                self._advising = False
            self._handed = self._written
        return n


def _move_no_clobber(tmp: Path, path: Path) -> None:
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise _exists_error(path) from None
    except OSError:
        # No hard links here (some network and FAT file systems): fall back to check-then-rename.
        if os.path.lexists(path):
            raise _exists_error(path) from None
        os.replace(tmp, path)


def _fsync_folder(folder: Path) -> None:
    """Persist the rename itself; not possible on every platform (Windows), so best effort."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _exists_error(path: Path) -> FileExistsError:
    return FileExistsError(f"{path} already exists; not overwriting it")


def atomic_folder(path: Path, fill: Callable[[Path], None], *, force: bool) -> None:
    """Make the folder ``path`` through ``fill(folder)`` so that it appears complete or not at all.

    ``fill`` writes into a hidden temporary folder beside ``path`` (same file system); its files are
    fsynced and the folder is renamed to ``path``. Without ``force`` an existing ``path`` raises
    ``FileExistsError`` (also when it appears meanwhile: renaming onto a non-empty folder fails).
    With ``force`` an existing ``path`` is first renamed aside and removed after the new folder is
    in place, so readers see the old or the new series, never a mix. The temporary folder is removed
    on any error, including KeyboardInterrupt.
    """
    path = Path(path)
    if not force and os.path.lexists(path):
        raise _exists_error(path)
    tmp = _temporary_folder(path)
    old = None
    try:
        fill(tmp)
        for entry in os.scandir(tmp):
            fd = os.open(entry.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_folder(tmp)
        if force and os.path.lexists(path):
            old = _temporary_folder(path, create=False)
            os.rename(path, old)
        try:
            os.rename(tmp, path)
        except OSError:
            if os.path.lexists(path):
                raise _exists_error(path) from None
            raise
        _fsync_folder(path.parent)
    finally:
        for leftover in (tmp, old):
            if leftover is not None and os.path.lexists(leftover):
                if os.path.isdir(leftover) and not os.path.islink(leftover):
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    os.unlink(leftover)


def _temporary_folder(path: Path, *, create: bool = True) -> Path:
    while True:
        tmp = path.with_name(f".{secrets.token_hex(8)}.partial")
        if not create:
            if not os.path.lexists(tmp):
                return tmp
            continue
        try:
            os.mkdir(tmp)
            return tmp
        except FileExistsError:
            continue
