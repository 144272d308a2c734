"""The durable work queue: one SQLite row per version of a source file.

Why SQLite in WAL mode: the daemon must survive SIGKILL at any instant. Every state
change is one committed transaction; rows left ``working`` by a killed process are put
back to ``pending`` at the next start, and outputs only ever reach to-share by an atomic
rename after the file was fully written, so a crash can leave a stray staging file but
never a partial or duplicate output. The schema is versioned (``PRAGMA user_version``)
with forward migrations.

File names are stored losslessly: a name that is not valid UTF-8 (legal on Linux; cameras,
FAT cards and SMB shares make them) is stored as its raw bytes, a BLOB, and read back as
the same ``str`` Python's ``os`` functions use (surrogateescape).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from fawkes_daemon import queue_reads as reads
from fawkes_daemon.people import PeopleStore
from fawkes_daemon.pushes import PushStore
from fawkes_daemon.queue_reads import STATES, TEXT_COLUMNS, decode_row, from_db, to_db
from fawkes_daemon.transaction import write_transaction


@dataclass
class Job:
    id: int
    source: str
    relpath: str
    size: int
    mtime_ns: int
    attempts: int
    release: bool
    mode: str | None = None  # a mode the user asked for this file; None: the configured one


class Queue:
    """The files table: one row per version of a source file. A store of the state database
    (:class:`fawkes_daemon.state_db.StateDB`, which opens it): its connection and lock, shared."""

    def __init__(self, db: sqlite3.Connection, lock: threading.RLock, path: Path, pushes: PushStore, people: PeopleStore) -> None:
        self.db, self.lock, self.path = db, lock, path
        self._lock = lock
        self.pushes = pushes  # the push records written beside a safe copy's row
        self.people = people  # the person directory of the same database (one store, whoever reads it)

    def transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return write_transaction(self.db, self._lock)

    def close(self) -> None:
        """Close the state database's connection (every store of it)."""
        with self._lock:
            self.db.close()

    # -- writes --------------------------------------------------------------------------------
    def requeue_interrupted(self) -> int:
        """Rows a killed or stopped process left in ``working`` go back to ``pending``."""
        with self._lock:
            cur = self.db.execute("UPDATE files SET state='pending', updated=? WHERE state='working'", (time.time(),))
            return cur.rowcount

    def add(self, source: str, relpath: str, size: int, mtime_ns: int) -> bool:
        """Queue a file version unless this exact version is known. Returns True if newly queued."""
        now = time.time()
        with self._lock:
            cur = self.db.execute(
                "INSERT OR IGNORE INTO files (source, relpath, size, mtime_ns, state, created, updated) VALUES (?, ?, ?, ?, 'pending', ?, ?)",
                (source, to_db(relpath), size, mtime_ns, now, now),
            )
            return cur.rowcount == 1

    def supersede(self, job_id: int, source: str, relpath: str, size: int, mtime_ns: int) -> None:
        """A claimed version changed on disk: queue the new version and drop this row (never published, not a failure)."""
        now = time.time()
        with self._lock:
            with self.transaction():
                self.db.execute(
                    "INSERT OR IGNORE INTO files (source, relpath, size, mtime_ns, state, created, updated) VALUES (?, ?, ?, ?, 'pending', ?, ?)",
                    (source, to_db(relpath), size, mtime_ns, now, now),
                )
                self.db.execute("DELETE FROM files WHERE id=? AND output IS NULL", (job_id,))

    def known(self, source: str, relpath: str, size: int, mtime_ns: int) -> bool:
        with self._lock:
            row = self.db.execute(
                "SELECT 1 FROM files WHERE source=? AND relpath=? AND size=? AND mtime_ns=?", (source, to_db(relpath), size, mtime_ns)
            ).fetchone()
            return row is not None

    def claim(self, n: int) -> list[Job]:
        """Move up to ``n`` due pending rows to ``working`` and return them (oldest first)."""
        now = time.time()
        with self._lock:
            with self.transaction():
                rows = self.db.execute(
                    "SELECT id, source, relpath, size, mtime_ns, attempts, release, mode FROM files "
                    "WHERE state='pending' AND next_attempt<=? ORDER BY id LIMIT ?",
                    (now, n),
                ).fetchall()
                self.db.executemany("UPDATE files SET state='working', updated=? WHERE id=?", [(now, r["id"]) for r in rows])
        return [
            Job(r["id"], r["source"], from_db(r["relpath"]) or "", r["size"], r["mtime_ns"], r["attempts"], bool(r["release"]), r["mode"])
            for r in rows
        ]

    def finish(self, job_id: int, state: str, **fields) -> None:
        """Set a row's final state. A ``done`` row supersedes the failed or held rows of older versions of its file."""
        if state not in STATES:
            raise ValueError(state)
        cols = ["state=?", "updated=?"] + [f"{k}=?" for k in fields]
        values = [to_db(v) if k in TEXT_COLUMNS else v for k, v in fields.items()]
        with self._lock:
            with self.transaction():
                self.db.execute(f"UPDATE files SET {', '.join(cols)} WHERE id=?", (state, time.time(), *values, job_id))
                if state == "done":
                    self.db.execute(
                        "DELETE FROM files WHERE id<? AND state IN ('failed', 'held') AND (source, relpath) IN (SELECT source, relpath FROM files WHERE id=?)",
                        (job_id, job_id),
                    )

    def retry_later(self, job_id: int, error: str, max_attempts: int, base_delay: float = 30.0) -> str:
        """A transient failure: back off exponentially, or give up after ``max_attempts``."""
        with self._lock:
            row = self.db.execute("SELECT attempts FROM files WHERE id=?", (job_id,)).fetchone()
            attempts = (row["attempts"] if row else 0) + 1
            state = "failed" if attempts >= max_attempts else "pending"
            delay = base_delay * 2 ** (attempts - 1)
            self.db.execute(
                "UPDATE files SET state=?, attempts=?, next_attempt=?, error=?, updated=? WHERE id=?",
                (state, attempts, time.time() + delay, to_db(error), time.time(), job_id),
            )
            return state

    def retry_failed(self) -> int:
        with self._lock:
            return self.db.execute(
                "UPDATE files SET state='pending', attempts=0, next_attempt=0, error=NULL, updated=? WHERE state='failed'", (time.time(),)
            ).rowcount

    def release(self, source: str, relpath: str) -> int:
        with self._lock:
            return self.db.execute(
                "UPDATE files SET state='pending', release=1, next_attempt=0, updated=? WHERE state='held' AND source=? AND relpath=?",
                (time.time(), source, to_db(relpath)),
            ).rowcount

    # -- one file, by id (the web page's actions) ---------------------------------------------
    def release_id(self, file_id: int) -> int:
        """Let one held file through (as `fawkes release` does by path)."""
        with self._lock:
            return self.db.execute(
                "UPDATE files SET state='pending', release=1, next_attempt=0, updated=? WHERE state='held' AND id=?", (time.time(), file_id)
            ).rowcount

    def retry_id(self, file_id: int) -> int:
        """Queue one failed file again, its attempts reset."""
        with self._lock:
            return self.db.execute(
                "UPDATE files SET state='pending', attempts=0, next_attempt=0, error=NULL, updated=? WHERE state='failed' AND id=?",
                (time.time(), file_id),
            ).rowcount

    def recloak_id(self, file_id: int, mode: str) -> int:
        """Cloak one file again at ``mode`` (done, failed or held; a held file stays subject to its hold)."""
        with self._lock:
            return self.db.execute(
                "UPDATE files SET state='pending', mode=?, attempts=0, next_attempt=0, error=NULL, updated=? "
                "WHERE state IN ('done', 'failed', 'held') AND id=?",
                (mode, time.time(), file_id),
            ).rowcount

    def done_outputs(self) -> list[str]:
        with self._lock:
            return [
                from_db(r["output"]) or "" for r in self.db.execute("SELECT output FROM files WHERE state='done' AND output IS NOT NULL")
            ]

    # -- maintenance ----------------------------------------------------------------------------
    def maintain(self, keep_days: float = 30.0) -> dict[str, object]:
        """Nightly: drop old superseded push rows, check integrity, let SQLite re-plan, truncate the WAL."""
        with self._lock:
            pruned = self.pushes.prune(keep_days)
            check = self.db.execute("PRAGMA quick_check").fetchone()[0]
            self.db.execute("PRAGMA optimize")
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return {"pruned_push_rows": pruned, "integrity": check}

    def due_pending(self) -> int:
        with self._lock:
            return self.db.execute("SELECT COUNT(*) FROM files WHERE state='pending' AND next_attempt<=?", (time.time(),)).fetchone()[0]

    # -- reads ---------------------------------------------------------------------------------
    def done_outputs_for_hash(self, content_hash: str) -> list[tuple[str, str]]:
        """(safe copy, its SHA-256 as written) of every cloaked row with this content, newest first.

        The caller must check that the file still holds those bytes: the path may since have
        received the cloak of another version of its source.
        """
        with self._lock:
            rows = self.db.execute(
                "SELECT output, output_hash FROM files WHERE content_hash=? AND state='done' AND output IS NOT NULL "
                "AND output_hash IS NOT NULL AND faces > 0 ORDER BY id DESC",
                (content_hash,),
            ).fetchall()
            return [(from_db(r["output"]) or "", r["output_hash"]) for r in rows]

    def counts(self) -> dict[str, int]:
        with self._lock:
            return reads.file_counts(self.db)

    def rows(self, state: str | None = None, limit: int = 20, order: str = "updated DESC") -> list[dict]:
        with self._lock:
            q = "SELECT * FROM files" + (" WHERE state=?" if state else "") + f" ORDER BY {order} LIMIT ?"
            args: Iterable = (state, limit) if state else (limit,)
            return [decode_row(r) for r in self.db.execute(q, tuple(args))]

    def throughput(self, window: float = 3600.0) -> float:
        with self._lock:
            return reads.throughput(self.db, window)

    def weak_published(self) -> int:
        with self._lock:
            return reads.weak_published(self.db)
