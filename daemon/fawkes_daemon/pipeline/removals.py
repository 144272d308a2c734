"""Photos that left their source, the intake of removals: everything kept about them goes too
(Syncthing style: an event asks, the disk answers).

Why not act on the removal event itself: an event names one path (a folder moved out names
only the folder), events are lost while the daemon is stopped, and the observer's thread is
no place for database work. So a removal event only marks a subtree as *suspect*; the
``removals`` job (every second) and every rescan compare what the queue knows with what is
on disk, and for each known file that is no longer there (any name, any folder move, any
downtime) delete, in this order:

1. its safe copies in to-share, where ``on_source_removed: delete`` says so (the publish stage,
   :meth:`fawkes_daemon.pipeline.publish.Publisher.withdraw`, the one writer of to-share);
2. its rows, their face embeddings and the push records of their safe copies (one transaction);
3. the web page's crops and thumbnails (``ui-cache/``: uncloaked faces) of every row that no
   longer exists, whatever removed the row.

A crash after step 1 leaves the rows, so the next check does the rest; one after step 2 leaves
crops without a row, which every rescan prunes. A source folder
that is missing, or empty while the queue knows files in it, is taken for an unmounted disk:
nothing of it is forgotten, and the log says so once.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from fawkes_daemon.config import Config, SourceConfig
from fawkes_daemon.pipeline.publish import Publisher
from fawkes_daemon.queue import Queue
from fawkes_daemon.queue_reads import from_db, to_db

log = logging.getLogger("fawkes.removals")


class Removals:
    def __init__(self, config: Config, queue: Queue, publisher: Publisher) -> None:
        self.config = config
        self.queue = queue
        self.publisher = publisher
        self._suspects: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._warned: set[str] = set()
        self.sources = {s.label: s for s in config.sources}

    def suspect(self, source: SourceConfig, path: Path) -> None:
        """A removal or move event (watchdog's thread): remember the subtree, do nothing else here."""
        try:
            rel = path.relative_to(source.path).as_posix()
        except ValueError:
            return
        with self._lock:
            self._suspects.add((source.label, rel))

    def check_suspects(self) -> int:
        """The ``removals`` job: forget what vanished under the subtrees events named. Returns files forgotten."""
        with self._lock:
            suspects, self._suspects = self._suspects, set()
        n = 0
        for label, rel in sorted(suspects):
            if label in self.sources:
                n += self.forget_vanished(self.sources[label], rel)
        return n

    def check_all(self) -> int:
        """Every source, every known file (the rescan at start and every ``rescan_interval``)."""
        n = sum(self.forget_vanished(s) for s in self.config.sources)
        self.prune_cache()  # also rows deleted by other routes (a superseded version) and a crash before the last prune
        return n

    def prune_cache(self) -> int:
        """Delete the web page's crops and thumbnails of every row that no longer exists (they show uncloaked faces).

        One rule for every way a row goes (removed, superseded by a new version, a done version
        replacing an older failed one), rather than a deletion beside each of them.
        """
        cache = self.config.state_dir / "ui-cache"
        if not cache.is_dir():
            return 0
        with self.queue.lock:
            ids = {str(r[0]) for r in self.queue.db.execute("SELECT id FROM files")}
        n = 0
        for f in cache.iterdir():
            # names: thumb-<id>-<hash>.jpg, face-<id>-<hash>-<i>-<kind>.png (fawkes_daemon.ui.images)
            parts = f.name.split("-")
            if len(parts) > 2 and parts[1] not in ids:
                f.unlink(missing_ok=True)
                n += 1
        return n

    def forget_vanished(self, source: SourceConfig, under: str | None = None) -> int:
        """Forget every known file of ``source`` (below ``under``, a relative path) that is no longer on disk."""
        known = known_relpaths(self.queue, source.label)
        if under is not None and under not in ("", "."):
            known = {r for r in known if r == under or r.startswith(under.rstrip("/") + "/")}
        if not known:
            return 0
        if not self._looks_mounted(source):
            return 0
        gone = sorted(r for r in known if not os.path.lexists(source.path / r))
        if gone:
            self.forget(source.label, gone)
        return len(gone)

    def _looks_mounted(self, source: SourceConfig) -> bool:
        try:
            mounted = source.path.is_dir() and any(os.scandir(source.path))
        except OSError:
            mounted = False
        if not mounted and source.label not in self._warned:
            self._warned.add(source.label)
            log.warning("%s is missing or empty: taken for an unmounted disk, nothing of it is forgotten", source.path)
        if mounted:
            self._warned.discard(source.label)
        return mounted

    def forget(self, label: str, relpaths: list[str]) -> None:
        """Safe copies (by policy), cached crops, then rows, embeddings and push records of these files."""
        rows = rows_of(self.queue, label, relpaths)
        self.publisher.withdraw([r["output"] for r in rows if r["output"]])
        outputs = [self._share_relpath(r["output"]) for r in rows if r["output"]]
        embeddings = forget_files(self.queue, [r["id"] for r in rows], [o for o in outputs if o is not None])
        self.prune_cache()
        log.info(
            "%d file(s) removed from %s: forgot their rows and %d face embedding(s)%s",
            len(relpaths),
            label,
            embeddings,
            " and deleted their safe copies" if self.config.on_source_removed == "delete" else "",
        )

    def _share_relpath(self, output: str) -> str | None:
        try:
            return Path(output).resolve().relative_to(self.config.to_share.resolve()).as_posix()
        except ValueError:
            return None


# -- the queue's rows of removed files: every name through the codec, as every other query --------------
def known_relpaths(queue: Queue, source: str) -> set[str]:
    with queue.lock:
        return {from_db(r[0]) or "" for r in queue.db.execute("SELECT DISTINCT relpath FROM files WHERE source=?", (source,))}


def rows_of(queue: Queue, source: str, relpaths: list[str]) -> list[dict]:
    """Every row (each version) of these files: id and safe copy."""
    out = []
    with queue.lock:
        for rel in relpaths:
            rows = queue.db.execute("SELECT id, output FROM files WHERE source=? AND relpath=?", (source, to_db(rel)))
            out += [{"id": r[0], "output": from_db(r[1])} for r in rows]
    return out


def forget_files(queue: Queue, ids: list[int], share_relpaths: list[str]) -> int:
    """Delete rows ``ids``, their face embeddings and the push records of their safe copies, in one
    transaction. Returns how many embeddings went."""
    with queue.transaction() as db:
        gone = 0
        for i in ids:
            # the schema's trigger would delete them with the row; deleted here first to count them
            gone += db.execute("DELETE FROM face_features WHERE file_id=?", (i,)).rowcount
            db.execute("DELETE FROM files WHERE id=?", (i,))
        for rel in share_relpaths:
            db.execute("DELETE FROM pushes WHERE relpath=?", (to_db(rel),))
    return gone
