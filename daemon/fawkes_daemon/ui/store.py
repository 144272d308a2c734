"""What the web page reads: the queue database opened read-only, the daemon's heartbeat.

Why a separate read-only connection: the page must never be able to change the queue by
accident or block the daemon's writer. SQLite's WAL lets this reader run beside the daemon
without either waiting. The three actions go through :class:`fawkes_daemon.queue.Queue`.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from fawkes_daemon import queue_reads as reads
from fawkes_daemon.heartbeat import read_state
from fawkes_daemon.queue_reads import STATES, decode_row

LIST_COLUMNS = "id, source, relpath, state, faces, skipped, dssim, ssimulacra2, seconds, error, updated, output, mode"


@dataclass
class DaemonState:
    running: bool
    pid: int | None
    since: float | None  # when it started
    seen: float | None  # its last heartbeat
    waiting: str | None  # why work waits (active hours, battery), as the daemon reported it


def daemon_state(heartbeat: Path) -> DaemonState:
    """Running or not, by the rule `fawkes status` uses too (:func:`fawkes_daemon.heartbeat.read_state`)."""
    beat, alive = read_state(heartbeat)
    if beat is None:
        return DaemonState(False, None, None, None, None)
    updated = beat.get("updated")
    seen = float(updated) if isinstance(updated, (int, float)) else None  # a heartbeat without it is stale, not an error
    return DaemonState(alive, int(beat["pid"]), beat.get("started"), seen, beat.get("waiting") if alive else None)


class Store:
    """Read-only queries for the pages; each call opens nothing new (one connection per store)."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self._db: sqlite3.Connection | None = None

    def _conn(self) -> sqlite3.Connection | None:
        if self._db is None:
            if not self.db_path.exists():
                return None  # the daemon has not run yet
            db = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=5, check_same_thread=False)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA query_only=1")
            self._db = db
        return self._db

    def _all(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        db = self._conn()
        return [] if db is None else db.execute(sql, args).fetchall()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def counts(self) -> dict[str, int]:
        db = self._conn()
        return {s: 0 for s in STATES} if db is None else reads.file_counts(db)

    def push_counts(self) -> dict[str, int] | None:
        db = self._conn()
        return None if db is None or not reads.has_table(db, "pushes") else reads.push_counts(db)

    def last_push_error(self) -> str | None:
        db = self._conn()
        return None if db is None or not reads.has_table(db, "pushes") else reads.last_push_error(db)

    def weak_published(self) -> int:
        db = self._conn()
        return 0 if db is None else reads.weak_published(db)

    def throughput(self, window: float = 3600.0) -> float:
        db = self._conn()
        return 0.0 if db is None else reads.throughput(db, window)

    def recent(self, limit: int = 48, offset: int = 0) -> list[dict]:
        """Safe copies, newest first."""
        rows = self._all(
            f"SELECT {LIST_COLUMNS} FROM files WHERE state='done' AND output IS NOT NULL ORDER BY updated DESC LIMIT ? OFFSET ?",
            (limit, offset),
        )
        return [decode_row(r) for r in rows]

    def attention(self, limit: int = 200, offset: int = 0) -> list[dict]:
        """Held and failed files, newest first: what waits for the user (a page of them)."""
        rows = self._all(
            f"SELECT {LIST_COLUMNS} FROM files WHERE state IN ('held', 'failed') ORDER BY updated DESC, id DESC LIMIT ? OFFSET ?",
            (limit, offset),
        )
        return [decode_row(r) for r in rows]

    def last_errors(self, limit: int = 5) -> list[dict]:
        return [
            decode_row(r)
            for r in self._all(f"SELECT {LIST_COLUMNS} FROM files WHERE state='failed' ORDER BY updated DESC LIMIT ?", (limit,))
        ]

    def in_state(self, state: str, limit: int) -> list[dict]:
        """Files in ``state``, newest first (``fawkes status``'s failed and held lists)."""
        return [
            decode_row(r)
            for r in self._all(f"SELECT {LIST_COLUMNS} FROM files WHERE state=? ORDER BY updated DESC, id DESC LIMIT ?", (state, limit))
        ]

    def file(self, file_id: int) -> dict | None:
        if not 0 <= file_id < 2**63:  # SQLite's integers: a larger id is no row (it raised OverflowError, a 500)
            return None
        rows = self._all("SELECT * FROM files WHERE id=?", (file_id,))
        if not rows:
            return None
        d = decode_row(rows[0])
        try:
            d["report_data"] = json.loads(d["report"]) if d.get("report") else None
        except ValueError:
            d["report_data"] = None
        return d
