"""The state database: one SQLite file in the state directory, one connection, every table's schema.

Why SQLite in WAL mode: the daemon must survive SIGKILL at any instant. Every state change is
one committed transaction (:func:`write_transaction`); rows left ``working`` by a killed process
are put back to ``pending`` at the next start. The schema of every table (the queue's files,
the pushes, the people) is a versioned migration in :mod:`fawkes_daemon.schema`
(``PRAGMA user_version``); a database written by a newer version is refused. The stores
(:class:`~fawkes_daemon.queue.Queue`, :class:`~fawkes_daemon.pushes.PushStore`,
:class:`~fawkes_daemon.people.PeopleStore`) share the connection and the lock, so one writer
writes a safe copy's row, its push and its face embeddings. Readers that must never write (the
web page, `fawkes status`) open it read-only (:mod:`fawkes_daemon.ui.store`).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from pathlib import Path

from fawkes_daemon.people import PeopleStore
from fawkes_daemon.pushes import PushStore
from fawkes_daemon.queue import Queue
from fawkes_daemon.schema import MIGRATIONS, statements
from fawkes_daemon.transaction import StateError, state_error, write_transaction


class StateDB:
    """The state database: one connection serialized by one lock, every table's migrations, one
    ``transaction()``, and the stores over it (``queue``, ``pushes``, ``people``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        # the state folder and the database are the owner's alone: rows name private photos, reports
        # hold per-face figures, and with `cloak.people` the database keeps face embeddings
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.path.parent, 0o700)
        try:
            # created 0600 before SQLite opens it, and only when new: closing a descriptor of a file that a
            # connection of this process holds would drop that connection's POSIX locks (and let another
            # connection delete the live WAL as if it were the last one)
            os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600))
        except FileExistsError:
            pass
        os.chmod(self.path, 0o600)  # SQLite gives its -wal and -shm files the database's own mode
        self._lock = self.lock = threading.RLock()
        self.db = sqlite3.connect(str(self.path), timeout=30, check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA busy_timeout=30000")
            self.migrate()
        except sqlite3.DatabaseError as e:  # "file is not a database", "database disk image is malformed"
            self.db.close()
            raise state_error(self.path, e) from None
        self.pushes = PushStore(self.db, self._lock)
        self.people = PeopleStore(self.db, self._lock)
        self.queue = Queue(self.db, self._lock, self.path, self.pushes, self.people)

    # -- schema ------------------------------------------------------------------------------
    @property
    def version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> None:
        with self._lock:
            v = self.version
            if v > len(MIGRATIONS):
                # a newer version's schema: its rows may mean what this version cannot know, and writing to it
                # would break the newer version; refuse rather than guess
                raise StateError(
                    f"{self.path}: the queue database was written by a newer Fawkes Sync (schema {v}; this version knows "
                    f"up to {len(MIGRATIONS)}); run the newer version, or stop the daemon and move the file aside"
                )
            for i, sql in enumerate(MIGRATIONS[v:], start=v + 1):
                with self.transaction():
                    for stmt in statements(sql):
                        self.db.execute(stmt)
                    self.db.execute(f"PRAGMA user_version={i}")

    def transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return write_transaction(self.db, self._lock)

    def close(self) -> None:
        with self._lock:
            self.db.close()
