"""Reliability round 4 (issue 39), small items: duplicate YAML keys (D12), a newer queue schema (D11), a status that
creates nothing (S1), `fawkes cloak` with no photos (D14) or an --out it cannot create (D15b)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fawkes_daemon.config import ConfigError, load_config
from fawkes_daemon.schema import MIGRATIONS
from fawkes_daemon.state_db import StateDB
from fawkes_daemon.transaction import StateError


def _config(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir(exist_ok=True)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"sources": [{"path": "src", "name": "cam"}], "to_share": "share", "state_dir": "state"}))
    return cfg


def _fawkes(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fawkes_daemon.cli", *args], capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}
    )


@pytest.mark.unit
def test_d12_a_key_given_twice_stops_the_config_naming_it_and_its_lines(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    cfg = tmp_path / "config.yaml"
    cfg.write_text("sources:\n  - {path: src, name: cam}\nto_share: share\nstate_dir: state\nto_share: elsewhere\n")
    with pytest.raises(ConfigError) as e:
        load_config(cfg)
    assert "'to_share' appears twice" in str(e.value) and "lines 3 and 5" in str(e.value) and str(cfg) in str(e.value)
    nested = tmp_path / "nested.yaml"
    nested.write_text("sources:\n  - {path: src, name: cam}\nto_share: share\ncloak:\n  mode: mid\n  mode: high\n")
    with pytest.raises(ConfigError, match="'mode' appears twice"):
        load_config(nested)
    assert load_config(_config(tmp_path)).to_share.name == "share"  # the same keys once each load


@pytest.mark.unit
def test_d11_a_queue_from_a_newer_version_is_refused_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "state" / "queue.sqlite3"
    StateDB(path).queue.close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    db.commit()
    db.close()
    with pytest.raises(StateError) as e:
        StateDB(path)
    assert "newer Fawkes Sync" in str(e.value) and str(path) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.system
def test_s1_status_on_a_fresh_config_creates_nothing(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    r = _fawkes("status", "--json", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert '"pending": 0' in r.stdout
    assert not (tmp_path / "state").exists()


@pytest.mark.system
def test_d14_cloak_on_an_empty_folder_says_so_before_loading_models(tmp_path: Path) -> None:
    empty, cache = tmp_path / "empty", tmp_path / "cache"
    empty.mkdir()
    cache.mkdir()
    r = _fawkes("cloak", str(empty), env={"FAWKES_CACHE_DIR": str(cache)})
    assert r.returncode == 1
    assert f"no photos found in {empty}" in r.stderr
    assert not any(cache.iterdir())  # no model was built or loaded


@pytest.mark.system
def test_d15b_an_out_that_cannot_be_created_is_one_line(tmp_path: Path) -> None:
    """--out below a file (as a read-only or full disk, the folder cannot be made; this holds for root too)."""
    from PIL import Image

    src = tmp_path / "in"
    src.mkdir()
    Image.new("RGB", (64, 64), (120, 90, 80)).save(src / "a.png")
    (tmp_path / "a-file").write_text("not a folder")
    r = _fawkes("cloak", str(src), "--out", str(tmp_path / "a-file" / "out"))
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 1 and len(lines) == 1 and "cannot create --out" in lines[0], r.stderr


@pytest.mark.unit
def test_d8_a_file_changed_after_it_was_queued_is_superseded_not_failed(tmp_path: Path) -> None:
    from fawkes_daemon.pipeline.driver import Pipeline
    from tests.helpers.daemon import write_config

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
    from tests.helpers.daemon import write_config

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
