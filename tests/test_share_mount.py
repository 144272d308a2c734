"""Disks (issue 39): a to-share that is its own mount point (D2); a state directory that fills up (D7)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from fawkes_daemon.config import STAGING_INSIDE, load_config
from tests.helpers.daemon import DaemonProc, counts, status, wait_for, write_config
from tests.helpers.mounts import fill, tmpfs


@pytest.fixture
def mounted_share(tmp_path: Path):
    with tmpfs(tmp_path / "share", "64m") as share:
        yield share


@pytest.mark.system
def test_d2_a_to_share_on_its_own_filesystem_gets_every_safe_copy(dev: Path, tmp_path: Path, mounted_share: Path) -> None:
    config = write_config(tmp_path)
    cfg = load_config(config)
    assert cfg.staging_dir == mounted_share / STAGING_INSIDE  # its parent is another filesystem
    photos = sorted((dev / "faces" / "Tom_Hanks").glob("*.jpg"))[:3]
    for p in photos:
        shutil.copyfile(p, tmp_path / "src" / p.name)
    d = DaemonProc(config, tmp_path / "log")
    d.start()
    try:
        wait_for(lambda: counts(config)["done"] + counts(config)["failed"] >= 3, 300, "3 photos")
    finally:
        assert d.stop() == 0
    log = (tmp_path / "log").read_text(errors="replace")
    assert counts(config)["failed"] == 0, log
    assert "cross-device" not in log
    assert sorted(p.name for p in mounted_share.rglob("*.jpg") if STAGING_INSIDE not in p.parts) == sorted(p.name for p in photos)
    assert not list((mounted_share / STAGING_INSIDE).iterdir())  # nothing partial left


@pytest.mark.system
def test_d7_a_full_state_directory_is_said_once_shown_in_status_and_recovers(dev: Path, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "state", "3m") as state:
        config = write_config(tmp_path, rescan_interval=2)
        d = DaemonProc(config, tmp_path / "log")
        d.start()
        try:
            wait_for(lambda: "watching " in (tmp_path / "log").read_text(errors="replace"), 120, "the daemon to be up")
            filler = state / "filler"
            fill(filler)  # the state filesystem to the last block
            for i, p in enumerate(sorted((dev / "faces" / "Tom_Hanks").glob("*.jpg"))[:2]):
                shutil.copyfile(p, tmp_path / "src" / f"t{i}.jpg")
            wait_for(lambda: "state directory full" in (tmp_path / "log").read_text(errors="replace"), 60, "the full disk to be said")
            time.sleep(6)  # more gate checks and rescans against the full disk
            log = (tmp_path / "log").read_text(errors="replace")
            assert log.count("state directory full") == 1, log
            assert "raised an exception" not in log
            st = status(config)
            assert st["problem"] and "state directory full" in st["problem"]
            filler.unlink()
            wait_for(lambda: counts(config)["done"] == 2, 300, "both photos once there is space")
            assert status(config)["problem"] is None
        finally:
            assert d.stop() == 0
