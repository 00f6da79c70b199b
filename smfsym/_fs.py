"""Output files and folders: what a path is, and temporaries that respect the umask.

Standard library only (the command line imports it before anything heavy).
``tempfile.mkstemp`` and ``mkdtemp`` create 0600 files and 0700 folders whatever the
umask, and a rename keeps that mode: an output written through them would be private
while its neighbours written with ``open`` are not. The temporaries here are created
with the modes of ``open`` and ``mkdir`` (0666 and 0777, less the umask, applied by the
kernel: the umask is never read nor changed, so no other thread sees it altered).
"""
from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path
from typing import Callable

__all__ = ["path_kind", "temp_file", "temp_dir", "atomic_write_text", "check_new_file", "write_new_file"]

_KINDS = ((stat.S_ISREG, "regular file"), (stat.S_ISDIR, "directory"), (stat.S_ISLNK, "symbolic link"),
          (stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
          (stat.S_ISSOCK, "socket"))


def path_kind(path: str | os.PathLike) -> str | None:
    """What is at ``path`` itself (a final symbolic link is not followed), or None if nothing is.

    Returns one of "regular file", "directory", "symbolic link", "FIFO", "character device",
    "block device", "socket" or "special file".

    >>> path_kind("/"), path_kind("/no/such/path")
    ('directory', None)
    """
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    return next((name for test, name in _KINDS if test(mode)), "special file")


def _create(parent: Path, prefix: str, suffix: str, make: Callable[[Path], object]):
    # Random names as tempfile's, exclusive creation by ``make``; a clash (1 in 2**64) tries again.
    for _ in range(100):
        path = parent / f"{prefix}{secrets.token_hex(8)}{suffix}"
        try:
            return path, make(path)
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name {prefix}*{suffix} in {str(parent)!r}")


def temp_file(parent: str | os.PathLike, prefix: str, suffix: str = ".tmp") -> tuple[Path, int]:
    """Create a new file in ``parent`` opened for writing, mode 0666 less the umask; return (path, fd)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    return _create(Path(parent), prefix, suffix, lambda p: os.open(p, flags, 0o666))


def temp_dir(parent: str | os.PathLike, prefix: str, suffix: str = ".tmp") -> Path:
    """Create a new folder in ``parent``, mode 0777 less the umask; return its path."""
    return _create(Path(parent), prefix, suffix, lambda p: os.mkdir(p, 0o777))[0]


def atomic_write_text(path: str | os.PathLike, text: str | bytes) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename.

    A reader never sees a half-written file, and an interrupted write leaves the old one.
    """

    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    # not tempfile.mkstemp: its 0600 would survive the rename; this file gets 0666 less the umask like open()
    tmp, fd = temp_file(parent, "." + path.name + ".")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(text.encode() if isinstance(text, str) else text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_new_file(path, *, overwrite: bool = False, argument: str = "path") -> Path:
    """``path`` as a Path a file may be written to: new, or (with ``overwrite=True``) a regular file; a
    directory, a link or a device is refused, as by the CLI's ``--force``. The convention of every output of
    the Python API (``StudyIO.save``, ``export_tex``).

    >>> check_new_file("/")
    Traceback (most recent call last):
    ...
    IsADirectoryError: `path` '/' is a directory; give the path of a file to write.
    """
    if isinstance(path, bool) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"`{argument}` must be a file path (str or os.PathLike); got {type(path).__name__}.")
    path = Path(path)
    kind = path_kind(path)
    if kind == "directory":
        raise IsADirectoryError(f"`{argument}` {str(path)!r} is a directory; give the path of a file to write.")
    if kind not in (None, "regular file"):
        raise FileExistsError(f"`{argument}` {str(path)!r} is a {kind}; refused (only a regular file is ever "
                              "replaced, with overwrite=True).")
    if kind == "regular file" and not overwrite:
        raise FileExistsError(f"`{argument}` {str(path)!r} exists; pass overwrite=True to replace it.")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(f"`{argument}` {str(path)!r}: the folder {str(parent)!r} does not exist.")
    return path


def write_new_file(path, text: str | bytes, *, overwrite: bool = False, argument: str = "path") -> Path:
    """Write ``text`` to ``path`` atomically (:func:`atomic_write_text`) after :func:`check_new_file`."""
    path = check_new_file(path, overwrite=overwrite, argument=argument)
    atomic_write_text(path, text)
    return path
