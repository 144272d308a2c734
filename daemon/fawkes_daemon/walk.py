"""One walk over a source folder, shared by the periodic rescan and `fawkes backfill`.

It yields every entry a user would expect to be looked at: files that match the source's
include and exclude patterns (regular or not: a FIFO or a symlink named like a photo gets
a state and a reason, never silence), and folders named like photos (``x.jpg/``), which
get one too. Sync-tool temporaries and their folders are skipped. Symlinked folders are
not followed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fawkes_daemon.config import Config, SourceConfig
from fawkes_daemon.ignore import is_ignored, matches

if TYPE_CHECKING:
    from fawkes_daemon.queue import Queue


@dataclass(frozen=True)
class Entry:
    path: Path
    rel: str  # POSIX path relative to the source: the queue's key
    size: int  # 0 for a folder; -1 when it could not be stat'ed
    mtime_ns: int
    is_dir: bool


def walk_source(source: SourceConfig) -> Iterator[Entry]:
    if not source.path.is_dir():
        return
    for dirpath, dirs, files in os.walk(source.path):
        rel_dir = Path(dirpath).relative_to(source.path)
        dirs[:] = [d for d in dirs if not is_ignored(rel_dir / d / "x")]
        for name in files:
            rel = rel_dir / name
            if is_ignored(rel) or not matches(rel, source.include, source.exclude):
                continue
            p = Path(dirpath) / name
            try:
                st = p.lstat() if p.is_symlink() else p.stat()
                size, mtime = st.st_size, st.st_mtime_ns
            except OSError:
                size, mtime = -1, -1
            yield Entry(p, rel.as_posix(), size, mtime, False)
        for d in dirs:
            rel = rel_dir / d
            if matches(rel, source.include, source.exclude):
                yield Entry(Path(dirpath) / d, rel.as_posix(), 0, 0, True)


def backlog(config: Config) -> list[tuple[SourceConfig, Entry]]:
    """Every matching file of every source, as `fawkes backfill` queues them."""
    return [(s, e) for s in config.sources for e in walk_source(s)]


def queue_backlog(queue: Queue, files: list[tuple[SourceConfig, Entry]], advance: Callable[[], object] | None = None) -> int:
    """Queue each file version not yet known; returns how many were new."""
    added = 0
    for s, e in files:
        added += queue.add(s.label, e.rel, max(e.size, 0), e.mtime_ns)
        if advance is not None:
            advance()
    return added
