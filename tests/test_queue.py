"""The state database: migrations, a newer schema refused, interrupted rows re-queued, superseded versions, what goes with a row."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from fawkes_daemon.config import load_config
from fawkes_daemon.schema import MIGRATIONS
from fawkes_daemon.state_db import StateDB
from fawkes_daemon.transaction import StateError
from tests.helpers.daemon import write_config


@pytest.mark.unit
def test_queue_migrates_and_requeues_interrupted(tmp_path: Path) -> None:
    import sqlite3

    from fawkes_daemon.schema import MIGRATIONS

    # a database written by the first schema version, with a row in it
    old = sqlite3.connect(tmp_path / "old.sqlite3")
    old.executescript(MIGRATIONS[0] + "; PRAGMA user_version=1;")
    old.execute("INSERT INTO files (source, relpath, size, mtime_ns, state, created, updated) VALUES ('cam', 'x.jpg', 1, 1, 'done', 0, 0)")
    old.commit()
    old.close()
    state = StateDB(tmp_path / "old.sqlite3")
    migrated = state.queue
    assert state.version == len(MIGRATIONS) == 6
    assert {"people", "face_features"} <= {r[0] for r in migrated.db.execute("SELECT name FROM sqlite_master")}
    assert migrated.counts()["done"] == 1 and migrated.pushes.counts()["pending"] == 0
    assert {"ssimulacra2", "output_hash", "skipped"} <= {r[1] for r in migrated.db.execute("PRAGMA table_info(files)")}
    migrated.close()

    q = StateDB(tmp_path / "q.sqlite3").queue
    assert q.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert q.add("cam", "a.jpg", 10, 1) and not q.add("cam", "a.jpg", 10, 1)
    assert q.add("cam", "a.jpg", 11, 2)  # a new version of the same file is a new row
    jobs = q.claim(5)
    assert len(jobs) == 2 and q.counts()["working"] == 2
    q.close()
    q2 = StateDB(tmp_path / "q.sqlite3").queue
    assert q2.requeue_interrupted() == 2 and q2.counts()["pending"] == 2
    assert q2.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.unit
def test_a_queue_from_a_newer_version_is_refused_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "state" / "queue.sqlite3"
    StateDB(path).queue.close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    db.commit()
    db.close()
    with pytest.raises(StateError) as e:
        StateDB(path)
    assert "newer Fawkes Sync" in str(e.value) and str(path) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.unit
def test_a_file_changed_after_it_was_queued_is_superseded_not_failed(tmp_path: Path) -> None:
    from fawkes_daemon.pipeline.driver import Pipeline

    cfg = load_config(write_config(tmp_path))
    photo = tmp_path / "src" / "a.jpg"
    photo.write_bytes(b"\xff\xd8 first version")
    st = photo.stat()
    q = StateDB(cfg.db_path).queue
    try:
        q.add("cam", "a.jpg", st.st_size, st.st_mtime_ns)
        jobs = q.claim(1)
        photo.write_bytes(b"\xff\xd8 the second, longer version")  # changed between queueing and reading
        assert Pipeline(cfg, q).intake.read(jobs) == []
        assert q.counts() == {"pending": 1, "working": 0, "done": 0, "failed": 0, "held": 0}
        (row,) = q.rows()
        assert row["size"] == photo.stat().st_size and row["id"] != jobs[0].id
    finally:
        q.close()


@pytest.mark.unit
def test_the_pages_crops_of_a_row_gone_by_any_route_are_pruned(tmp_path: Path) -> None:
    """A superseded version's row (D8) goes without a removal event: its uncloaked crops go at the next check."""
    from fawkes_daemon.pipeline.driver import Pipeline
    from fawkes_daemon.pipeline.removals import Removals

    cfg = load_config(write_config(tmp_path))
    q = StateDB(cfg.db_path).queue
    try:
        q.add("cam", "a.jpg", 1, 1)
        q.add("cam", "b.jpg", 2, 2)
        a, b = q.claim(2)
        q.supersede(a.id, "cam", "a.jpg", 3, 3)  # a's row is gone, a new one queued
        cache = cfg.state_dir / "ui-cache"
        cache.mkdir()
        for i in (a.id, b.id):
            (cache / f"thumb-{i}-0123abcd.jpg").write_bytes(b"crop")
            (cache / f"face-{i}-0123abcd-0-original.png").write_bytes(b"crop")
        assert Removals(cfg, q, Pipeline(cfg, q).publisher).check_all() == 0  # nothing vanished from disk: only the orphaned crops go
        assert sorted(p.name for p in cache.iterdir()) == sorted([f"thumb-{b.id}-0123abcd.jpg", f"face-{b.id}-0123abcd-0-original.png"])
    finally:
        q.close()
