"""The queue database's reads, written once: the daemon's :class:`~fawkes_daemon.queue.Queue`, ``fawkes status``
and the web page's read-only store all call these on their own connection.

Why plain functions on a connection: the daemon reads under its writer's lock, the page through
a separate read-only connection; the SQL and the row decoding must not differ between them.
"""

from __future__ import annotations

import sqlite3
import time

STATES = ("pending", "working", "done", "failed", "held")
PUSH_STATES = ("pending", "done", "superseded", "gone")
TEXT_COLUMNS = ("relpath", "output", "error")


def to_db(text: str | None) -> str | bytes | None:
    """A name or message as SQLite can store it without loss: invalid UTF-8 becomes its raw bytes."""
    if text is None:
        return None
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape")


def from_db(value: str | bytes | None) -> str | None:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


def decode_row(r: sqlite3.Row) -> dict:
    """A row as a dict, its names and messages back as ``str`` (see :func:`to_db`)."""
    d = dict(r)
    for k in TEXT_COLUMNS:
        if k in d:
            d[k] = from_db(d[k])
    return d


def has_table(db: sqlite3.Connection, name: str) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone() is not None


def state_counts(db: sqlite3.Connection, table: str, states: tuple[str, ...]) -> dict[str, int]:
    """Rows per state, every state present (zero when none)."""
    out = {s: 0 for s in states}
    for state, n in db.execute(f"SELECT state, COUNT(*) FROM {table} GROUP BY state"):
        out[state] = n
    return out


def file_counts(db: sqlite3.Connection) -> dict[str, int]:
    return state_counts(db, "files", STATES)


def push_counts(db: sqlite3.Connection) -> dict[str, int]:
    return state_counts(db, "pushes", PUSH_STATES)


def last_push_error(db: sqlite3.Connection) -> str | None:
    row = db.execute("SELECT error FROM pushes WHERE state='pending' AND error IS NOT NULL ORDER BY updated DESC LIMIT 1").fetchone()
    return from_db(row[0]) if row else None


def throughput(db: sqlite3.Connection, window: float = 3600.0) -> float:
    """Files finished per hour over the last ``window`` seconds."""
    n = db.execute("SELECT COUNT(*) FROM files WHERE state='done' AND updated>=?", (time.time() - window,)).fetchone()[0]
    return n * 3600.0 / window


def weak_published(db: sqlite3.Connection) -> int:
    """Safe copies holding a face the cloak did not carry across (weak_cloak: publish, or escalated to the top)."""
    row = db.execute(
        "SELECT COUNT(*) FROM files WHERE state='done' AND report IS NOT NULL AND json_extract(report, '$.weak') > 0"
    ).fetchone()
    return int(row[0])
