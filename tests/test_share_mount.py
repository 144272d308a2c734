"""D2 (issue 39): a to-share that is its own mount point receives safe copies (staging on its filesystem)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from fawkes_daemon.config import STAGING_INSIDE, load_config
from tests.helpers.daemon import DaemonProc, counts, wait_for, write_config


@pytest.fixture
def mounted_share(tmp_path: Path):
    """to-share as a tmpfs mount of its own (root, or a user allowed to mount); skipped where the machine allows neither."""
    share = tmp_path / "share"
    share.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(share)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or r.returncode}): the separate-filesystem case is untested")
    try:
        yield share
    finally:
        subprocess.run(["umount", "-l", str(share)], check=False)


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
