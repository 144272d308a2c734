"""Face data leaves with its photo (issue 39, P1–P3, D3, D4): a real daemon, a real SQLite file, a real filesystem.

20 photos of 4 people are cloaked; then (a) a photo with a non-UTF-8 name is removed, (b) a folder is moved out
of the source, (c) three photos are deleted while the daemon is stopped, (d) `people` is switched off. After each,
the database holds no embedding, row or push record of a removed photo, the web page's cache no crop of it, and
(with ``on_source_removed: delete``) to-share no safe copy of it.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest
import yaml

from fawkes_daemon.config import load_config
from fawkes_daemon.ui.images import ImageCache
from fawkes_daemon.ui.store import Store
from tests.helpers.daemon import DaemonProc, counts, wait_for, wait_for_progress, write_config
from tests.test_service import fawkes, file_keyring_env

NON_UTF8 = os.fsdecode(b"caf\xe9.jpg")


def _db(config: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{load_config(config).db_path}?mode=ro", uri=True)


def _text(v: str | bytes | None) -> str | None:
    """A name as the queue stores it: invalid UTF-8 as its raw bytes (fawkes_daemon.queue_reads.to_db)."""
    return v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else v


def _rows(config: Path) -> dict[str, tuple[int, str | None]]:
    """relpath → (id, safe copy) of every row."""
    with _db(config) as db:
        return {_text(r[1]) or "": (r[0], _text(r[2])) for r in db.execute("SELECT id, relpath, output FROM files")}


def _embedded_ids(config: Path) -> set[int]:
    with _db(config) as db:
        if db.execute("SELECT 1 FROM sqlite_master WHERE name='face_features'").fetchone() is None:
            return set()
        return {r[0] for r in db.execute("SELECT DISTINCT file_id FROM face_features")}


def _pushed(config: Path) -> set[str]:
    with _db(config) as db:
        return {_text(r[0]) or "" for r in db.execute("SELECT relpath FROM pushes")}


def _cache_ids(config: Path) -> set[str]:
    root = load_config(config).state_dir / "ui-cache"
    return {f.name.split("-")[1] for f in root.iterdir()} if root.is_dir() else set()


def _show_on_page(config: Path) -> None:
    """What the web page caches when a user looks: each photo's thumbnail and each face's before/after crops."""
    cfg = load_config(config)
    cache, store = ImageCache(cfg), Store(cfg.db_path)
    for r in store.recent(limit=100):
        row = store.file(r["id"])
        assert row is not None
        cache.thumbnail(row)
        cache.face(row, 0, "original")
    store.close()


def _assert_forgotten(config: Path, removed: dict[str, tuple[int, str | None]], share: Path) -> None:
    rows = _rows(config)
    ids = {str(i) for i, _ in removed.values()}
    assert not set(removed) & set(rows), "a removed photo still has a row"
    assert not {i for i, _ in removed.values()} & _embedded_ids(config), "a removed photo's embeddings stayed"
    assert not ids & _cache_ids(config), "the page's cache kept a crop of a removed photo"
    outs = [Path(o) for _, o in removed.values() if o]
    assert outs and not any(o.exists() for o in outs), "a safe copy of a removed photo stayed in to-share"
    assert not {o.relative_to(share).as_posix() for o in outs} & _pushed(config), "a push record of a removed photo stayed"


@pytest.mark.system
def test_removal_scenarios_leave_no_face_data_behind(dev: Path, tmp_path: Path) -> None:
    people = ["Tom_Hanks", "Angelina_Jolie", "Barack_Obama", "Keanu_Reeves"]
    config = write_config(
        tmp_path,
        on_source_removed="delete",
        rescan_interval=5,
        # pushes to a closed loopback port: their records stay pending, which is what must go with a photo
        push={"kind": "webdav", "url": "http://127.0.0.1:9/dav", "user": "me", "secret": "dav", "retry_base": 3600},
    )
    env = file_keyring_env(tmp_path)
    assert fawkes("secret", "set", "dav", env=env, stdin="app-password\n").returncode == 0
    src, share = tmp_path / "src", tmp_path / "share"
    (src / "trip").mkdir()
    for name in people:
        for i, f in enumerate(sorted((dev / "faces" / name).glob("*.jpg"))[:5]):
            dest = src / "trip" / f"{name}_{i}.jpg" if name == "Keanu_Reeves" else src / f"{name}_{i}.jpg"
            shutil.copyfile(f, dest)
    os.rename(src / "Tom_Hanks_0.jpg", src / NON_UTF8)  # on disk the name's bytes are b"caf\xe9.jpg"
    d = DaemonProc(config, tmp_path / "log", env)
    d.start()
    try:
        wait_for_progress(lambda: counts(config)["done"], 20, 300, "all 20 photos")
        wait_for(lambda: len(_pushed(config)) == 20, 60, "20 push records")
        assert counts(config)["failed"] == 0
        _show_on_page(config)
        assert len(_embedded_ids(config)) == 20 and len(_cache_ids(config)) == 20
        before = _rows(config)

        # (a) a non-UTF-8 name, removed while the daemon runs
        os.unlink(src / NON_UTF8)
        gone = {NON_UTF8: before[NON_UTF8]}
        wait_for(lambda: NON_UTF8 not in _rows(config), 30, "the non-UTF-8 photo to be forgotten")
        _assert_forgotten(config, gone, share)

        # (b) a folder moved out of the source
        shutil.move(src / "trip", tmp_path / "outside-trip")
        gone = {r: v for r, v in before.items() if r.startswith("trip/")}
        assert len(gone) == 5
        wait_for(lambda: not any(r.startswith("trip/") for r in _rows(config)), 30, "the moved folder's photos to be forgotten")
        _assert_forgotten(config, gone, share)
    finally:
        assert d.stop() == 0

    # (c) three photos deleted while the daemon is stopped
    gone = {f"Barack_Obama_{i}.jpg": before[f"Barack_Obama_{i}.jpg"] for i in range(3)}
    for rel in gone:
        (src / rel).unlink()
    d.start()
    try:
        wait_for(lambda: not set(gone) & set(_rows(config)), 60, "photos deleted during downtime to be forgotten")
        _assert_forgotten(config, gone, share)
        assert len(_embedded_ids(config)) == 11 and len(_rows(config)) == 11  # the other photos keep theirs
    finally:
        assert d.stop() == 0

    # (d) people switched off: the store is deleted at start, said once in the log
    cfg = yaml.safe_load(config.read_text())
    cfg["cloak"]["people"] = False
    config.write_text(yaml.safe_dump(cfg))
    log_size = (tmp_path / "log").stat().st_size
    d.start()
    try:
        wait_for(lambda: "watching " in (tmp_path / "log").read_bytes()[log_size:].decode(errors="replace"), 120, "the daemon to be up")
        assert _embedded_ids(config) == set()
        with _db(config) as db:
            assert db.execute("SELECT COUNT(*) FROM people").fetchone()[0] == 0
        said = (tmp_path / "log").read_bytes()[log_size:].decode(errors="replace")
        assert said.count("people: false: deleted the 11 stored face embedding(s)") == 1
        # and with it off, removing a photo still takes everything of it
        gone = {"Angelina_Jolie_0.jpg": before["Angelina_Jolie_0.jpg"]}
        (src / "Angelina_Jolie_0.jpg").unlink()
        wait_for(lambda: "Angelina_Jolie_0.jpg" not in _rows(config), 30, "a removal with people off")
        _assert_forgotten(config, gone, share)
    finally:
        assert d.stop() == 0
