"""The state database's one schema: every table, the queue's and the people store's, as numbered migrations.

Why one list: the version (``PRAGMA user_version``) then says everything about a database's
tables; a database of a newer version is refused (:class:`fawkes_daemon.queue.Queue`).
"""

from __future__ import annotations

import sqlite3

MIGRATIONS: list[str] = [
    # v1
    """
    CREATE TABLE files (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        relpath TEXT NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        content_hash TEXT,
        state TEXT NOT NULL CHECK (state IN ('pending', 'working', 'done', 'failed', 'held')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt REAL NOT NULL DEFAULT 0,
        release INTEGER NOT NULL DEFAULT 0,
        output TEXT,
        faces INTEGER,
        dssim REAL,
        seconds REAL,
        error TEXT,
        created REAL NOT NULL,
        updated REAL NOT NULL,
        UNIQUE (source, relpath, size, mtime_ns)
    );
    CREATE INDEX files_state ON files (state, next_attempt);
    CREATE INDEX files_hash ON files (content_hash);
    CREATE INDEX files_path ON files (source, relpath);
    """,
    # v2: pushes of safe copies to a remote, one row per (to-share path, content)
    """
    CREATE TABLE pushes (
        id INTEGER PRIMARY KEY,
        relpath TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'done', 'superseded', 'gone')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt REAL NOT NULL DEFAULT 0,
        error TEXT,
        created REAL NOT NULL,
        updated REAL NOT NULL,
        UNIQUE (relpath, sha256)
    );
    CREATE INDEX pushes_state ON pushes (state, next_attempt);
    """,
    # v3: the perceptual figure beside DSSIM (the photo's worst face); dssim is now the face box's worst scale
    """
    ALTER TABLE files ADD COLUMN ssimulacra2 REAL;
    """,
    # v4: the SHA-256 of the safe copy as written (deduplication copies an output only while the file
    # still holds exactly those bytes), and the faces detected but too small to cloak
    """
    ALTER TABLE files ADD COLUMN output_hash TEXT;
    ALTER TABLE files ADD COLUMN skipped INTEGER;
    """,
    # v5: the per-face report of a cloaked photo (JSON, for the web page's before/after view), a mode the
    # user asked for one file (cloak again at a higher mode), and an index for "recent" and throughput
    """
    ALTER TABLE files ADD COLUMN report TEXT;
    ALTER TABLE files ADD COLUMN mode TEXT;
    CREATE INDEX files_updated ON files (state, updated);
    """,
    # v6: the people store (fawkes_daemon.people), whatever the configuration: one schema for the whole database
    # (IF NOT EXISTS: a database of v5 may hold these tables already, made by the store itself then)
    """
    CREATE TABLE IF NOT EXISTS people (key TEXT PRIMARY KEY, target TEXT);
    CREATE TABLE IF NOT EXISTS face_features (
        file_id INTEGER NOT NULL,
        face INTEGER NOT NULL,
        person TEXT NOT NULL,
        extractor TEXT NOT NULL,
        embedding BLOB NOT NULL,
        PRIMARY KEY (file_id, face, extractor)
    );
    CREATE INDEX IF NOT EXISTS face_features_person ON face_features (person);
    CREATE TRIGGER IF NOT EXISTS files_forget_faces AFTER DELETE ON files
    BEGIN
        DELETE FROM face_features WHERE file_id = old.id;
    END;
    """,
]


def statements(sql: str) -> list[str]:
    """A migration's statements, split where SQLite says a statement is complete (a trigger's body holds ';')."""
    out, current = [], ""
    for line in sql.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    if current.strip():
        out.append(current.strip())
    return out
