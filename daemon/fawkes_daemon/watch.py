"""Watching source folders: events are hints, a periodic rescan is the truth (as in Syncthing).

watchdog delivers created / moved-into-place / closed-after-write events; each names a
*candidate*. A candidate enters the queue only after its size and mtime have stayed the
same for the quiet period (sync tools and cameras write slowly, then rename). The rescan
walks every source and offers every file whose exact version the queue does not know, so
nothing missed by the observer (overflow, downtime, network shares) is lost.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from fawkes_daemon.config import Config, SourceConfig
from fawkes_daemon.ignore import is_ignored, matches
from fawkes_daemon.queue import Queue
from fawkes_daemon.walk import walk_source

log = logging.getLogger("fawkes.watch")

INOTIFY_HELP = (
    "the inotify watch limit is reached; raise it with "
    "`echo fs.inotify.max_user_watches=524288 | sudo tee /etc/sysctl.d/90-fawkes.conf && sudo sysctl --system`, "
    "or set `polling: true` on this source"
)


@dataclass
class _Seen:
    size: int
    mtime_ns: int
    since: float


class StabilityGate:
    """Holds candidates until their size and mtime are unchanged for ``quiet`` seconds."""

    def __init__(self, config: Config, queue: Queue) -> None:
        self.config = config
        self.queue = queue
        self.sources = {s.label: s for s in config.sources}
        self._pending: dict[tuple[str, str], _Seen] = {}
        self._lock = threading.Lock()
        self.wake = threading.Event()
        self.full: str | None = None  # "state directory full" while the queue cannot grow (said once, cleared on success)

    def offer(self, source: SourceConfig, path: Path) -> None:
        try:
            rel = path.relative_to(source.path)
        except ValueError:
            return
        if is_ignored(rel) or not matches(rel, source.include, source.exclude):
            return
        key = (source.label, rel.as_posix())
        with self._lock:
            self._pending.setdefault(key, _Seen(-1, -1, time.monotonic()))

    def check(self) -> int:
        """Promote stable candidates to the queue; returns how many were queued."""
        now = time.monotonic()
        queued = 0
        with self._lock:
            items = list(self._pending.items())
        for (label, rel), seen in items:
            path = self.sources[label].path / rel
            try:
                st = path.lstat() if path.is_symlink() else path.stat()
            except FileNotFoundError:
                with self._lock:
                    self._pending.pop((label, rel), None)
                continue
            except OSError:
                st = None
            if st is None:
                size, mtime = -2, -2
            else:
                size, mtime = st.st_size, st.st_mtime_ns
            if (size, mtime) != (seen.size, seen.mtime_ns):
                with self._lock:
                    self._pending[(label, rel)] = _Seen(size, mtime, now)
                continue
            if now - seen.since >= self.config.quiet_period:
                added = None
                with self.when_full_say_so():
                    added = self.queue.add(label, rel, max(size, 0), mtime)
                if added is None:
                    return queued  # the disk is full: the file stays a candidate, queued once there is space again
                with self._lock:
                    self._pending.pop((label, rel), None)
                if self.full is not None:
                    log.info("state directory has space again: queueing goes on")
                    self.full = None
                queued += added
        if queued:
            self.wake.set()
        return queued

    @contextlib.contextmanager
    def when_full_say_so(self) -> Iterator[None]:
        """Run a block of queue writes; a full state disk ends it quietly, said once (any other error is raised)."""
        try:
            yield
        except sqlite3.OperationalError as e:
            if "full" not in str(e):
                raise
            self._full_disk(e)

    def _full_disk(self, e: Exception) -> None:
        """The queue cannot grow: say so once (the log, and `fawkes status` and the page from the disk itself)."""
        if self.full is None:
            self.full = f"state directory full: {self.config.state_dir} ({e}); new photos are not queued until space is freed"
            log.error("%s", self.full)

    def waiting(self) -> int:
        with self._lock:
            return len(self._pending)


class _Handler(FileSystemEventHandler):
    def __init__(self, source: SourceConfig, gate: StabilityGate, on_removed) -> None:
        self.source = source
        self.gate = gate
        self.on_removed = on_removed

    def on_created(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self.gate.offer(self.source, Path(os.fsdecode(event.src_path)))
        else:  # a folder moved or copied in: its files may not each raise an event
            self._offer_tree(Path(os.fsdecode(event.src_path)))

    def on_modified(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self.gate.offer(self.source, Path(os.fsdecode(event.src_path)))

    def on_closed(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self.gate.offer(self.source, Path(os.fsdecode(event.src_path)))

    def on_moved(self, event: FileSystemEvent) -> None:
        dest = Path(os.fsdecode(event.dest_path))
        if event.is_directory:
            self._offer_tree(dest)
        else:
            self.gate.offer(self.source, dest)
        self.on_removed(self.source, Path(os.fsdecode(event.src_path)))

    def on_deleted(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self.on_removed(self.source, Path(os.fsdecode(event.src_path)))

    def _offer_tree(self, root: Path) -> None:
        for dirpath, _dirs, files in os.walk(root):
            for f in files:
                self.gate.offer(self.source, Path(dirpath) / f)


class Watcher:
    """One watchdog observer per source (so a dead one can be restarted alone), plus rescans."""

    def __init__(self, config: Config, queue: Queue, gate: StabilityGate, on_removed=None) -> None:
        self.config = config
        self.queue = queue
        self.gate = gate
        self.on_removed = on_removed or (lambda source, path: None)
        self.observers: dict[str, BaseObserver] = {}
        self.errors: dict[str, str] = {}

    def start(self) -> None:
        for s in self.config.sources:
            self._start_one(s)

    def _start_one(self, source: SourceConfig) -> None:
        if not source.path.is_dir():
            self.errors[source.label] = f"{source.path}: source folder is missing or not a folder"
            log.error("%s", self.errors[source.label])
            return
        obs = PollingObserver(timeout=5) if source.polling else Observer()
        obs.schedule(_Handler(source, self.gate, self.on_removed), str(source.path), recursive=True)
        try:
            obs.start()
        except OSError as e:
            if e.errno == errno.ENOSPC:
                msg = f"{source.path}: {INOTIFY_HELP}"
            else:
                msg = f"{source.path}: cannot watch ({e.strerror or e}); relying on periodic rescans"
            self.errors[source.label] = msg
            log.error("%s", msg)
            return
        self.errors.pop(source.label, None)
        self.observers[source.label] = obs

    def ensure_alive(self) -> None:
        """Restart any observer whose thread died (network share dropped, inotify error …)."""
        for s in self.config.sources:
            obs = self.observers.get(s.label)
            if obs is None or not obs.is_alive():
                if obs is not None:
                    log.warning("observer for %s died; restarting it", s.path)
                    try:
                        obs.stop()
                    except Exception:
                        pass
                self.observers.pop(s.label, None)
                self._start_one(s)

    def stop(self) -> None:
        for obs in self.observers.values():
            obs.stop()
        for obs in self.observers.values():
            obs.join(timeout=5)

    def rescan(self) -> int:
        """Offer every matching file whose exact version is not yet in the queue."""
        offered = 0
        for s in self.config.sources:
            for e in walk_source(s):
                if e.is_dir:  # folders named like photos (x.jpg/) are queued so they get a clear state
                    if not self.queue.known(s.label, e.rel, 0, 0):
                        self.queue.add(s.label, e.rel, 0, 0)
                    continue
                if e.size >= 0 and self.queue.known(s.label, e.rel, e.size, e.mtime_ns):
                    continue
                self.gate.offer(s, e.path)
                offered += 1
        return offered
