"""The state database's write transaction and its one-line errors: what every store of it shares.

Why a module of its own: the stores (:mod:`fawkes_daemon.queue`, :mod:`fawkes_daemon.pushes`,
:mod:`fawkes_daemon.people`) and the database that owns them (:mod:`fawkes_daemon.state_db`)
all need these, and none of the stores may import the database that holds it.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def write_transaction(db: sqlite3.Connection, lock: threading.RLock) -> Iterator[sqlite3.Connection]:
    """One write transaction under the lock: committed when the block ends, rolled back if it raises.

    Every multi-statement write of the state database goes through this (the queue's, the
    people store's and the removals'), so none can leave half a change.
    """
    with lock:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


class StateError(Exception):
    """The state database cannot be used (corrupt, or not a database): one line naming it and what to do."""


def state_error(path: Path, e: Exception) -> StateError:
    return StateError(
        f"{path}: the queue database cannot be used ({e}); stop the daemon, move the file aside "
        "(a new one is built at the next start and every source is rescanned; held and failed files are queued again)"
    )


def check_database(path: Path) -> None:
    """Raise :class:`StateError` if the database at ``path`` exists but cannot be read (for readers such as the web page)."""
    if not path.exists():
        return
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        finally:
            db.close()
    except sqlite3.DatabaseError as e:
        raise state_error(path, e) from None
