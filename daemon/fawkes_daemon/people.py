"""The library's people: which faces are one person, and that person's pinned target.

The daemon sees a person's photos over months; a tracker's class for that person is built
from all of them, so every photo must leave the same centroid toward the same target
(fawkes_engine.people). This store keeps what that needs, and nothing more, in the queue database
inside the state directory (0700, the database 0600):

- ``face_features``: each cloaked face's clean embeddings, one row per file row, face and
  extractor. Biometric data: never written to to-share or the logs, deleted with the file's
  row (a trigger) and when the source photo is removed.
- ``people``: each person's key and pinned target identity (a name from the public target
  bank, not biometric).

Centroids are never stored: they are summed from ``face_features`` when the directory is
loaded, so deleting a face's rows removes it from its person too.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections import Counter

import numpy as np

from fawkes_daemon.transaction import write_transaction
from fawkes_engine.people import PersonDirectory

log = logging.getLogger("fawkes.people")


def _expected_lengths(rows: list) -> dict[str, int]:
    """Per extractor, the blob length most of its rows have (every healthy row has the same)."""
    lengths: dict[str, Counter[int]] = {}
    for _person, _file, _face, ext, blob in rows:
        lengths.setdefault(ext, Counter())[len(blob)] += 1
    return {ext: c.most_common(1)[0][0] for ext, c in lengths.items()}


def _bad_embedding(blob: bytes, expected: int) -> str | None:
    """Why a stored embedding cannot be used, or None."""
    if not isinstance(blob, bytes) or len(blob) != expected or len(blob) % 4:
        return f"of {len(blob) if isinstance(blob, bytes) else 0} bytes where {expected} are expected"
    if not np.isfinite(np.frombuffer(blob, dtype=np.float32)).all():
        return "holding NaN or infinite values"
    return None


class PeopleStore:
    """The people tables on the queue's own connection (serialized by the queue's lock)."""

    def __init__(self, db: sqlite3.Connection, lock: threading.RLock) -> None:
        self.db, self.lock = db, lock
        self._reported: set[tuple[int, int, str]] = set()  # damaged rows already logged

    def face_count(self) -> int:
        with self.lock:
            return int(self.db.execute("SELECT COUNT(DISTINCT file_id || ':' || face) FROM face_features").fetchone()[0])

    def directory(self) -> PersonDirectory:
        """The people as they stand: each person's centroid summed from its faces' rows."""
        with self.lock:
            targets = dict(self.db.execute("SELECT key, target FROM people").fetchall())
            rows = self.db.execute("SELECT person, file_id, face, extractor, embedding FROM face_features").fetchall()
        sums: dict[str, dict[str, np.ndarray]] = {}
        faces: dict[str, set[tuple[int, int]]] = {}
        expected = _expected_lengths(rows)
        bad: set[tuple[int, int]] = set()
        for _person, file_id, face, ext, blob in rows:
            problem = _bad_embedding(blob, expected.get(ext, 0))
            if problem:
                # one damaged row must not stop every later batch (D5) nor split a person with NaNs (D10):
                # the whole face is left out, once reported
                bad.add((file_id, face))
                if (file_id, face, ext) not in self._reported:
                    self._reported.add((file_id, face, ext))
                    log.error("people store: skipped face %d of file id %d (%s embedding %s)", face, file_id, ext, problem)
        for person, file_id, face, ext, blob in rows:
            if (file_id, face) in bad:
                continue
            v = np.frombuffer(blob, dtype=np.float32).astype(np.float64)
            per = sums.setdefault(person, {})
            per[ext] = per.get(ext, 0.0) + v
            faces.setdefault(person, set()).add((file_id, face))
        keys = set(targets) | set(sums)
        directory = PersonDirectory(new_key=lambda n: f"p{n + self._next_number(keys)}")
        for key in sorted(keys):
            if key in sums:  # a person whose every face was deleted is gone
                directory.load(key, sums[key], len(faces[key]), targets.get(key))
        return directory

    @staticmethod
    def _next_number(keys: set[str]) -> int:
        nums = [int(k[1:]) for k in keys if k.startswith("p") and k[1:].isdigit()]
        return max(nums, default=-1) + 1

    def record(self, file_id: int, faces: list[tuple[str, str | None, dict[str, np.ndarray]]]) -> None:
        """A cloaked photo's faces: (person key, pinned target, clean embedding per extractor), in face order."""
        with write_transaction(self.db, self.lock):
            self.db.execute("DELETE FROM face_features WHERE file_id=?", (file_id,))
            for i, (person, target, feats) in enumerate(faces):
                if target is not None:
                    self.db.execute(
                        "INSERT INTO people (key, target) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET target=COALESCE(people.target, excluded.target)",
                        (person, target),
                    )
                for ext, v in feats.items():
                    self.db.execute(
                        "INSERT INTO face_features (file_id, face, person, extractor, embedding) VALUES (?, ?, ?, ?, ?)",
                        (file_id, i, person, ext, np.asarray(v, np.float32).tobytes()),
                    )

    def forget_all(self) -> int:
        """Delete every stored face and person (`people: false` keeps none); returns how many faces went."""
        with write_transaction(self.db, self.lock):
            n = self.face_count()
            self.db.execute("DELETE FROM face_features")
            self.db.execute("DELETE FROM people")
        return n
