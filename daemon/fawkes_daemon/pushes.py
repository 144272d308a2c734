"""The pushes table: which safe copy (to-share path and content) must still reach the remote.

It lives in the queue's database, and shares the queue's connection and lock, so that a safe
copy's row and its push are written by one writer; this class only keeps its SQL apart.
"""

from __future__ import annotations

import sqlite3
import threading
import time

from fawkes_daemon import queue_reads as reads
from fawkes_daemon.queue_reads import PUSH_STATES, decode_row, from_db, to_db


class PushStore:
    def __init__(self, db: sqlite3.Connection, lock: threading.RLock) -> None:
        self.db, self._lock = db, lock

    def add(self, relpath: str, sha256: str) -> bool:
        """Record that this content at this to-share path must reach the remote (once)."""
        now = time.time()
        with self._lock:
            cur = self.db.execute(
                "INSERT OR IGNORE INTO pushes (relpath, sha256, state, created, updated) VALUES (?, ?, 'pending', ?, ?)",
                (to_db(relpath), sha256, now, now),
            )
            return cur.rowcount == 1

    def due(self, n: int) -> list[dict]:
        with self._lock:
            rows = self.db.execute(
                "SELECT id, relpath, sha256, attempts FROM pushes WHERE state='pending' AND next_attempt<=? ORDER BY id LIMIT ?",
                (time.time(), n),
            )
            return [decode_row(r) for r in rows]

    def next_due(self) -> float | None:
        with self._lock:
            row = self.db.execute("SELECT MIN(next_attempt) FROM pushes WHERE state='pending'").fetchone()
            return row[0]

    def finish(self, push_id: int, state: str, error: str | None = None) -> None:
        if state not in PUSH_STATES:
            raise ValueError(state)
        with self._lock:
            self.db.execute("UPDATE pushes SET state=?, error=?, updated=? WHERE id=?", (state, error, time.time(), push_id))

    def retry_later(self, push_id: int, error: str, base: float, cap: float) -> float:
        """Back off exponentially (capped); a push is never given up. Returns the delay."""
        with self._lock:
            row = self.db.execute("SELECT attempts FROM pushes WHERE id=?", (push_id,)).fetchone()
            attempts = (row["attempts"] if row else 0) + 1
            delay = min(cap, base * 2 ** (attempts - 1))
            self.db.execute(
                "UPDATE pushes SET attempts=?, next_attempt=?, error=?, updated=? WHERE id=?",
                (attempts, time.time() + delay, error, time.time(), push_id),
            )
            return delay

    def counts(self) -> dict[str, int]:
        with self._lock:
            return reads.push_counts(self.db)

    def last_error(self) -> str | None:
        with self._lock:
            return reads.last_push_error(self.db)

    def paths(self) -> set[str]:
        """Every to-share path that ever had a push row."""
        with self._lock:
            return {from_db(r[0]) or "" for r in self.db.execute("SELECT DISTINCT relpath FROM pushes")}

    def prune(self, keep_days: float) -> int:
        """Drop old superseded and gone rows; ``done`` rows stay: they are the memory of what the remote already has."""
        with self._lock:
            return self.db.execute(
                "DELETE FROM pushes WHERE state IN ('superseded', 'gone') AND updated<?", (time.time() - keep_days * 86400,)
            ).rowcount
