"""Open a queued photo inside its source folder, and only the version that was queued.

Why: checking a path and then opening it leaves a gap. A folder on the path swapped for a
symlink (``mv src/dir src/.old && ln -s ~/private src/dir``) made the worker publish files
from outside every source, and a file replaced after it was queued (or after the user chose
to release it) was published as if it were the version the row describes. So every folder
on the path is opened with ``O_NOFOLLOW`` from the source root (``openat``), the file itself
too, and the opened file's size and mtime must still be the row's.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path


class Refused(Exception):
    """The file cannot be taken (a link out of its source, a link on its path, a changed file): never retried."""


class Changed(Refused):
    """The file is not the version the row describes (its new version is queued as its own row)."""

    def __init__(self, message: str, size: int, mtime_ns: int) -> None:
        super().__init__(message)
        self.size, self.mtime_ns = size, mtime_ns


_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def _open_dirs(root: Path, parts: tuple[str, ...], shown: Path) -> int:
    """A descriptor of the folder ``root/parts...``, no folder on the way followed if it is a link."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    try:
        for part in parts:
            try:
                nxt = os.open(part, _FLAGS | os.O_DIRECTORY, dir_fd=fd)
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise Refused(f"{shown}: the folder {part!r} on its path is a symlink (or not a folder); not followed") from e
                if e.errno == errno.ENOENT:
                    raise FileNotFoundError(e.errno, "deleted before it was processed", str(shown)) from e
                raise
            os.close(fd)
            fd = nxt
        return fd
    except BaseException:
        os.close(fd)
        raise


def open_queued(root: Path, relpath: str, size: int, mtime_ns: int) -> tuple[int, os.stat_result]:
    """Open ``root/relpath`` for reading as the row (size, mtime) describes it; a descriptor and its stat.

    A symlink as the last component is followed only to a file inside the source (itself
    opened the same way); the row then describes the link, as the stability gate saw it.
    """
    shown = root / relpath
    parts = Path(relpath).parts
    dir_fd = _open_dirs(root, parts[:-1], shown)
    try:
        try:
            lst = os.lstat(parts[-1], dir_fd=dir_fd)
        except FileNotFoundError as e:
            raise FileNotFoundError(e.errno, "deleted before it was processed", str(shown)) from e
        if stat.S_ISLNK(lst.st_mode):
            _check_version(shown, lst, size, mtime_ns)
            real_root = Path(os.path.realpath(root))
            target = Path(os.path.realpath(shown))
            if real_root not in target.parents:
                raise Refused(f"{shown}: symlink points outside the source folder ({target}); not followed")
            fd, st = _open_file(real_root, target.relative_to(real_root).as_posix(), shown)
            return fd, st
        fd = _open_leaf(dir_fd, parts[-1], shown)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return fd, st  # a folder, FIFO or device named like a photo: refused for what it is, whatever its version
        try:
            _check_version(shown, st, size, mtime_ns)
        except Refused:
            os.close(fd)
            raise
        return fd, st
    finally:
        os.close(dir_fd)


def _open_file(root: Path, relpath: str, shown: Path) -> tuple[int, os.stat_result]:
    parts = Path(relpath).parts
    dir_fd = _open_dirs(root, parts[:-1], shown)
    try:
        fd = _open_leaf(dir_fd, parts[-1], shown)
        return fd, os.fstat(fd)
    finally:
        os.close(dir_fd)


def _open_leaf(dir_fd: int, name: str, shown: Path) -> int:
    """The file itself, never a link; non-blocking, so a FIFO named like a photo cannot stall the worker."""
    try:
        return os.open(name, _FLAGS | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.EMLINK):
            raise Refused(f"{shown}: became a symlink while being read; not followed") from e
        raise


def _check_version(shown: Path, st: os.stat_result, size: int, mtime_ns: int) -> None:
    if size < 0 or mtime_ns < 0:  # a row without a recorded version
        return
    if (st.st_size, st.st_mtime_ns) != (size, mtime_ns):
        raise Changed(
            f"{shown}: changed since it was queued ({size} → {st.st_size} bytes); this version is not published, the new one is queued",
            st.st_size,
            st.st_mtime_ns,
        )
