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

__all__ = ["path_kind", "temp_file", "temp_dir"]

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
