"""What the web page reads: the queue database opened read-only, the daemon's heartbeat.

Why a separate read-only connection: the page must never be able to change the queue by
accident or block the daemon's writer. SQLite's WAL lets this reader run beside the daemon
without either waiting. The three actions go through :class:`fawkes_daemon.queue.Queue`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from fawkes_daemon.queue import PUSH_STATES, STATES, from_db

LIST_COLUMNS = "id, source, relpath, state, faces, skipped, dssim, ssimulacra2, seconds, error, updated, output, mode"


@dataclass
class DaemonState:
    running: bool
    pid: int | None
    since: float | None  # when it started
    seen: float | None  # its last heartbeat
    waiting: str | None  # why work waits (active hours, battery), as the daemon reported it


def daemon_state(heartbeat: Path, stale_after: float = 60.0) -> DaemonState:
    """Running means: a heartbeat younger than ``stale_after`` from a process that still exists."""
    try:
        beat = json.loads(heartbeat.read_text())
        pid, updated = int(beat["pid"]), float(beat["updated"])
    except (OSError, ValueError, KeyError, TypeError):
        return DaemonState(False, None, None, None, None)
    alive = time.time() - updated < stale_after
    if alive:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            alive = False
        except PermissionError:
            pass  # it exists, under another user
    return DaemonState(alive, pid, beat.get("started"), updated, beat.get("waiting") if alive else None)


def _clean(row: sqlite3.Row) -> dict:
    d = dict(row)
    for k in ("relpath", "output", "error"):
        if k in d:
            d[k] = from_db(d[k])
    return d


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

    def has_table(self, name: str) -> bool:
        return bool(self._all("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)))

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in STATES}
        for r in self._all("SELECT state, COUNT(*) FROM files GROUP BY state"):
            out[r[0]] = r[1]
        return out

    def push_counts(self) -> dict[str, int] | None:
        if not self.has_table("pushes"):
            return None
        out = {s: 0 for s in PUSH_STATES}
        for r in self._all("SELECT state, COUNT(*) FROM pushes GROUP BY state"):
            out[r[0]] = r[1]
        return out

    def last_push_error(self) -> str | None:
        if not self.has_table("pushes"):
            return None
        rows = self._all("SELECT error FROM pushes WHERE state='pending' AND error IS NOT NULL ORDER BY updated DESC LIMIT 1")
        return from_db(rows[0][0]) if rows else None

    def weak_published(self) -> int:
        """Safe copies holding a face the cloak did not carry across (weak_cloak: publish, or escalated to the top)."""
        rows = self._all("SELECT COUNT(*) FROM files WHERE state='done' AND report IS NOT NULL AND json_extract(report, '$.weak') > 0")
        return int(rows[0][0]) if rows else 0

    def throughput(self, window: float = 3600.0) -> float:
        """Files finished per hour over the last ``window`` seconds."""
        rows = self._all("SELECT COUNT(*) FROM files WHERE state='done' AND updated>=?", (time.time() - window,))
        return (rows[0][0] if rows else 0) * 3600.0 / window

    def recent(self, limit: int = 48, offset: int = 0) -> list[dict]:
        """Safe copies, newest first."""
        rows = self._all(
            f"SELECT {LIST_COLUMNS} FROM files WHERE state='done' AND output IS NOT NULL ORDER BY updated DESC LIMIT ? OFFSET ?",
            (limit, offset),
        )
        return [_clean(r) for r in rows]

    def attention(self, limit: int = 200, offset: int = 0) -> list[dict]:
        """Held and failed files, newest first: what waits for the user (a page of them)."""
        rows = self._all(
            f"SELECT {LIST_COLUMNS} FROM files WHERE state IN ('held', 'failed') ORDER BY updated DESC, id DESC LIMIT ? OFFSET ?",
            (limit, offset),
        )
        return [_clean(r) for r in rows]

    def last_errors(self, limit: int = 5) -> list[dict]:
        return [
            _clean(r) for r in self._all(f"SELECT {LIST_COLUMNS} FROM files WHERE state='failed' ORDER BY updated DESC LIMIT ?", (limit,))
        ]

    def file(self, file_id: int) -> dict | None:
        if not 0 <= file_id < 2**63:  # SQLite's integers: a larger id is no row (it raised OverflowError, a 500)
            return None
        rows = self._all("SELECT * FROM files WHERE id=?", (file_id,))
        if not rows:
            return None
        d = _clean(rows[0])
        try:
            d["report_data"] = json.loads(d["report"]) if d.get("report") else None
        except ValueError:
            d["report_data"] = None
        return d
