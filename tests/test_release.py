"""`fawkes release`: it acts on the version and the path it was asked about.

On real files, a real SQLite queue and real models; the ones about process behaviour (a restart, an exit
code) run ``fawkes`` as a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fawkes_daemon.config import load_config
from fawkes_daemon.state_db import StateDB
from tests.helpers.worker import small_photo


@pytest.mark.integration  # a real cloaker
def test_release_acts_on_the_version_it_was_asked_for(tmp_path: Path) -> None:
    """R4: a held file replaced before its release is not published under that release; the new version is decided afresh."""
    from tests.helpers.ui import landscape
    from tests.helpers.worker import Harness, fast_cloaker

    h = Harness(tmp_path, fast_cloaker(), no_face="hold")
    landscape(h.src / "park.jpg")
    h.add("park.jpg")
    h.run(timeout=120)
    assert h.row("park.jpg")["state"] == "held"
    held_id = h.row("park.jpg")["id"]
    landscape(h.src / "park.jpg", seed=7)  # replaced by other content
    os.utime(h.src / "park.jpg", ns=(1, 1_000_000_000))
    assert h.queue.release_id(held_id) == 1
    h.run(timeout=120)
    rows = sorted((r for r in h.queue.rows(limit=100) if r["relpath"] == "park.jpg"), key=lambda r: r["id"])
    assert not any(r["id"] == held_id for r in rows)  # superseded by the new version (D8), not a failure
    assert rows[-1]["id"] != held_id and rows[-1]["state"] == "held", "the new version must be held again, not published"
    assert not h.share.exists() or not any(h.share.rglob("*.jpg"))


@pytest.mark.system
def test_release_of_a_link_is_about_the_link_not_its_target(tmp_path: Path) -> None:
    """R20: `fawkes release src/link.png` released the link's target and said it succeeded."""

    (tmp_path / "src").mkdir()
    small_photo(tmp_path / "src" / "a.jpg")
    (tmp_path / "src" / "link.jpg").symlink_to(tmp_path / "src" / "a.jpg")
    cfg_path = tmp_path / "config.yaml"
    cfg_path.write_text(yaml.safe_dump({"sources": [{"path": "src", "name": "cam"}], "to_share": "share", "state_dir": "state"}))
    q = StateDB(load_config(cfg_path).db_path).queue
    q.add("cam", "a.jpg", 1, 1)
    (job,) = q.claim(1)
    q.finish(job.id, "held", error="held for the test")
    r = subprocess.run(
        [sys.executable, "-m", "fawkes_daemon.cli", "release", str(tmp_path / "src" / "link.jpg"), "--config", str(cfg_path)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1 and "not held" in r.stdout + r.stderr
    assert q.counts()["held"] == 1
    r = subprocess.run(
        [sys.executable, "-m", "fawkes_daemon.cli", "release", str(tmp_path / "src" / "a.jpg"), "--config", str(cfg_path)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0 and q.counts()["held"] == 0
