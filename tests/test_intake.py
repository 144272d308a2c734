"""Reading a photo from a source: names, special files, damaged and huge files, unreadable and swapped folders.

On real files, a real SQLite queue and real models; the ones about process behaviour (a restart, an exit
code) run ``fawkes`` as a subprocess.
"""

from __future__ import annotations

import io
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fawkes_daemon.cli.cloak_paths import collect
from fawkes_daemon.state_db import StateDB
from tests.helpers.daemon import DaemonProc, wait_for
from tests.helpers.worker import FACE, Harness, config_file, small_photo


def _corrupt_jpeg(good: bytes) -> bytes:
    """Complete, but 3 KB of the entropy-coded data replaced: Pillow decodes it without a word."""
    sos = good.index(b"\xff\xda")
    d = bytearray(good)
    pos = sos + (len(good) - sos) // 2
    d[pos : pos + 3000] = np.random.default_rng(1).integers(0, 255, 3000, dtype=np.uint8).tobytes()
    return bytes(d)


def _corrupt_heic(good: bytes) -> bytes:
    d = bytearray(good)
    pos = int(len(d) * 0.3)
    d[pos : pos + 3000] = np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    return bytes(d)


@pytest.mark.unit
def test_non_utf8_names_are_stored_losslessly(tmp_path: Path) -> None:
    q = StateDB(tmp_path / "q.sqlite3").queue
    name = os.fsdecode(b"bad_\xff.jpg")
    assert q.add("cam", name, 3, 4) and q.known("cam", name, 3, 4) and not q.add("cam", name, 3, 4)
    assert not q.known("cam", os.fsdecode(b"bad_\xfe.jpg"), 3, 4)
    job = q.claim(1)[0]
    assert job.relpath == name and os.fsencode(job.relpath) == b"bad_\xff.jpg"
    q.finish(job.id, "failed", error=f"{name}: reason")
    assert q.rows()[0]["relpath"] == name and name in q.rows()[0]["error"]


@pytest.mark.system
def test_a_non_utf8_file_name_is_cloaked_and_survives_a_restart(dev: Path, tmp_path: Path) -> None:
    cfg = config_file(tmp_path, rescan_interval=30)
    src = os.fsencode(tmp_path / "src")
    shutil.copyfile(dev / FACE, os.path.join(src, b"bad_\xff.jpg"))
    share = os.fsencode(tmp_path / "share" / "cam")
    for attempt in range(2):  # the second start reads the name back from the database
        d = DaemonProc(cfg, tmp_path / "log")
        d.start()
        try:
            wait_for(lambda: os.path.exists(os.path.join(share, b"bad_\xff.jpg")), 240, "the safe copy of bad_\\xff.jpg")
            log = tmp_path / "log"
            wait_for(lambda: log.read_text(errors="replace").count("watching ") == attempt + 1, 240, "the daemon to be up")
            assert d.proc and d.proc.poll() is None
        finally:
            assert d.stop() == 0, (tmp_path / "log").read_text(errors="replace")
    out = subprocess.run([sys.executable, "-m", "fawkes_daemon.cli", "status", "--config", str(cfg)], capture_output=True, text=True)
    assert out.returncode == 0 and "UnicodeEncodeError" not in (tmp_path / "log").read_text(errors="replace")
    assert "Traceback" not in (tmp_path / "log").read_text(errors="replace")


@pytest.mark.integration
def test_a_fifo_named_like_a_photo_fails_without_blocking(tmp_path: Path, cloaker) -> None:
    h = Harness(tmp_path, cloaker)
    os.mkfifo(h.src / "x.jpg")
    h.add("x.jpg")
    h.run(timeout=60)
    row = h.row("x.jpg")
    assert row["state"] == "failed" and "not a regular file" in row["error"] and row["attempts"] == 0


@pytest.mark.integration
def test_tiff_with_location_metadata_is_cloaked_not_retried(dev: Path, tmp_path: Path, cloaker) -> None:
    h = Harness(tmp_path, cloaker)
    exif = Image.Exif()
    exif[0x010F] = "Camera"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (48.0, 51.0, 24.0)
    Image.open(dev / FACE).convert("RGB").save(h.src / "t.tif", exif=exif)
    h.add("t.tif")
    h.run()
    row = h.row("t.tif")
    assert row["state"] == "done" and row["attempts"] == 0, row
    assert not dict(Image.open(h.share / "t.tif").getexif().get_ifd(0x8825))


@pytest.mark.integration
def test_corrupt_but_complete_files_are_refused(dev: Path, tmp_path: Path, cloaker) -> None:
    h = Harness(tmp_path, cloaker)
    jpeg = _corrupt_jpeg((dev / "photos" / "couple.jpg").read_bytes())
    Image.open(io.BytesIO(jpeg)).load()  # the defect: Pillow alone accepts it
    (h.src / "garbled.jpg").write_bytes(jpeg)
    (h.src / "garbled.heic").write_bytes(_corrupt_heic((dev / "photos" / "nokia_crowd.heic").read_bytes()))
    # a HEIC whose faces can all be cloaked (nokia_crowd.heic also holds a 9×11 px face, which holds the photo)
    shutil.copyfile(dev / "photos" / "nokia_bothie_selfie.heic", h.src / "fine.heic")
    for rel in ("garbled.jpg", "garbled.heic", "fine.heic"):
        h.add(rel)
    h.run()
    assert h.row("garbled.jpg")["state"] == "failed" and "corrupt JPEG data" in h.row("garbled.jpg")["error"]
    assert h.row("garbled.heic")["state"] == "failed" and "damaged HEVC data" in h.row("garbled.heic")["error"]
    assert h.row("fine.heic")["state"] == "done"
    assert sorted(p.name for p in h.share.iterdir()) == ["fine.heic"]


@pytest.mark.integration
def test_huge_and_non_image_files_are_refused_unread(tmp_path: Path, cloaker) -> None:
    h = Harness(tmp_path, cloaker)
    with open(h.src / "huge.jpg", "wb") as f:  # sparse: 3 GB on paper, no disk used
        f.write(b"\xff\xd8\xff\xe0")
        f.truncate(3 * 2**30)
    with open(h.src / "big.jpg", "wb") as f:
        f.write(b"\x00" * 64)
        f.truncate(100 * 2**20)
    h.add("huge.jpg")
    h.add("big.jpg")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    h.run(timeout=120)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert h.row("huge.jpg")["state"] == "failed" and "over the 512 MB limit" in h.row("huge.jpg")["error"]
    assert h.row("big.jpg")["state"] == "failed" and "unrecognized header" in h.row("big.jpg")["error"]
    assert grown_mb < 100, f"peak memory grew by {grown_mb:.0f} MB"


@pytest.mark.unit
def test_each_file_once_and_huge_files_refused_unread(tmp_path: Path) -> None:
    a = small_photo(tmp_path / "a.jpg")
    (tmp_path / "link.jpg").symlink_to(a)
    huge = tmp_path / "huge.jpg"
    with open(huge, "wb") as f:
        f.truncate(600 * 2**20)  # sparse: 600 MB that are never read
    files, problems = collect([str(a), str(a), str(tmp_path / "link.jpg"), str(tmp_path), str(a)], max_bytes=512 * 2**20)
    assert files == [a]
    assert [(p.name, "over the 512 MB limit" in why) for p, why in problems] == [("huge.jpg", True)]


@pytest.mark.unit
def test_unreadable_folder_is_reported(tmp_path: Path, monkeypatch) -> None:
    small_photo(tmp_path / "ok" / "a.jpg")
    small_photo(tmp_path / "locked" / "b.jpg")
    if os.geteuid() != 0:
        os.chmod(tmp_path / "locked", 0)
    else:  # root reads any folder: make the walk meet the refusal it would meet as a user
        real = os.scandir

        def scandir(path="."):
            if Path(path).name == "locked":
                raise PermissionError(13, "Permission denied", str(path))
            return real(path)

        monkeypatch.setattr(os, "scandir", scandir)
    try:
        files, problems = collect([str(tmp_path)])
    finally:
        os.chmod(tmp_path / "locked", 0o755)
    assert [f.name for f in files] == ["a.jpg"]
    assert len(problems) == 1 and problems[0][0].name == "locked" and "cannot be read" in problems[0][1]


@pytest.mark.integration
def test_a_folder_swapped_for_a_symlink_publishes_nothing_from_outside(dev: Path, tmp_path: Path) -> None:
    """R2: `mv src/dir src/.old && ln -s ~/private src/dir` after x.jpg was queued: refused, nothing published."""
    import shutil

    from tests.helpers.worker import FACE, Harness, fast_cloaker

    h = Harness(tmp_path, fast_cloaker())
    (h.src / "dir").mkdir()
    shutil.copyfile(dev / FACE, h.src / "dir" / "x.jpg")
    h.add("dir/x.jpg")
    private = tmp_path / "private"
    private.mkdir()
    shutil.copyfile(dev / FACE, private / "x.jpg")  # the same size and mtime: only the folder link can give it away
    st = os.stat(h.src / "dir" / "x.jpg")
    os.utime(private / "x.jpg", ns=(st.st_atime_ns, st.st_mtime_ns))
    os.rename(h.src / "dir", h.src / ".old")
    os.symlink(private, h.src / "dir")
    h.run(timeout=120)
    row = h.row("dir/x.jpg")
    assert row["state"] == "failed" and "symlink" in row["error"] and "'dir'" in row["error"]
    assert not any(h.share.rglob("*")) if h.share.exists() else True
