"""The worker under trouble: a face too small to cloak, a failed batch in the log, a full disk.

On real files, a real SQLite queue and real models; the ones about process behaviour (a restart, an exit
code) run ``fawkes`` as a subprocess.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

from tests.helpers.daemon import DaemonProc, wait_for
from tests.helpers.mounts import fill, tmpfs
from tests.helpers.worker import FACE, Harness, config_file


@pytest.mark.integration
def test_a_face_too_small_to_cloak_holds_the_photo(dev: Path, tmp_path: Path) -> None:
    from fawkes_engine.cloak import CloakOptions
    from fawkes_engine.faces import FaceDetector
    from fawkes_engine.pipeline import PhotoCloaker

    # every detected face counts as too small: the daemon's rule is tested on a real detection
    tiny = PhotoCloaker(CloakOptions.of(mode="low", steps=2), detector=FaceDetector(min_face=10_000))
    h = Harness(tmp_path, tiny, no_face="pass")
    shutil.copyfile(dev / "photos" / "couple.jpg", h.src / "group.jpg")
    h.add("group.jpg")
    h.run()
    row = h.row("group.jpg")
    assert row["state"] == "held" and "too small to cloak" in row["error"] and row["skipped"] >= 2
    assert not h.share.exists() or not list(h.share.iterdir())


@pytest.mark.integration
def test_the_journald_log_gives_the_reason_of_a_failed_batch(tmp_path: Path, cloaker, caplog: pytest.LogCaptureFixture, dev: Path) -> None:
    h = Harness(tmp_path, cloaker)
    shutil.copyfile(dev / FACE, h.src / "a.jpg")
    h.add("a.jpg")

    class Broken:
        def cloak(self, photos, **kw):
            raise RuntimeError("CUDA error: no kernel image is available")

    h.pipeline.use(h.config.cloak.mode, Broken())  # type: ignore[arg-type]
    with caplog.at_level("ERROR"):
        h.pipeline.run_batch()
    assert any("no kernel image" in r.getMessage() for r in caplog.records)
    assert "no kernel image" in h.row("a.jpg")["error"]


@pytest.mark.system
def test_a_full_disk_loses_nothing_and_publishes_nothing_partial(dev: Path, tmp_path: Path) -> None:
    """to-share on a real 2 MB tmpfs, filled up: writes fail with ENOSPC, then succeed once space is back."""
    with tmpfs(tmp_path / "vol", "2M") as vol:
        cfg = config_file(tmp_path, to_share=str(vol / "share"), schedule={"retry_interval": 1})
        filler = vol / "filler"
        fill(filler)
        names = ["a.jpg", "b.jpg", "c.jpg"]
        for n, person in zip(names, ["Tom_Hanks", "Will_Smith", "Angelina_Jolie"]):
            shutil.copyfile(dev / "faces" / person / "1.jpg", tmp_path / "src" / n)
        d = DaemonProc(cfg, tmp_path / "log")
        d.start()
        try:
            log = tmp_path / "log"
            wait_for(lambda: "No space left on device" in log.read_text(errors="replace"), 240, "a write to fail for lack of space")
            assert d.proc and d.proc.poll() is None
            share = vol / "share" / "cam"
            assert not share.exists() or not list(share.iterdir()), "a partial file reached to-share"
            filler.unlink()
            wait_for(lambda: share.exists() and sorted(p.name for p in share.iterdir()) == names, 240, "every safe copy once space is back")
        finally:
            assert d.stop() == 0
        for n in names:
            Image.open(share / n).load()  # complete files
            assert (share / n).read_bytes() != (tmp_path / "src" / n).read_bytes()
        staging = [p for p in vol.iterdir() if p.name.endswith("fawkes-staging")]
        assert all(not list(s.iterdir()) for s in staging)
