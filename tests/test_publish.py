"""Publishing safe copies: duplicates, private photos, symlinked folders in to-share, no copy replaced, no failed row left.

On real files, a real SQLite queue and real models; the ones about process behaviour (a restart, an exit
code) run ``fawkes`` as a subprocess.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from fawkes_daemon.cli.cloak_paths import as_private_as, unique
from tests.helpers.worker import FACE, OTHER, Harness, closer_to, small_photo


@pytest.mark.integration
def test_dedup_never_copies_the_cloak_of_another_photo(dev: Path, tmp_path: Path, cloaker) -> None:
    h = Harness(tmp_path, cloaker)
    x, y = dev / FACE, dev / OTHER
    shutil.copyfile(x, h.src / "a.jpg")
    h.add("a.jpg")
    h.run()
    shutil.copyfile(y, h.src / "a.jpg")
    os.utime(h.src / "a.jpg", ns=(1, 10**18))
    h.add("a.jpg")
    h.run()
    shutil.copyfile(x, h.src / "b.jpg")
    h.add("b.jpg")
    h.run()
    assert h.row("b.jpg")["state"] == "done"
    assert closer_to(h.share / "b.jpg", x, y), "b.jpg's safe copy shows another photo"
    assert closer_to(h.share / "a.jpg", y, x)


@pytest.mark.integration
def test_dedup_still_copies_a_verified_safe_copy(dev: Path, tmp_path: Path, cloaker) -> None:
    h = Harness(tmp_path, cloaker)
    shutil.copyfile(dev / FACE, h.src / "a.jpg")
    shutil.copyfile(dev / FACE, h.src / "c.jpg")
    h.add("a.jpg")
    h.run()
    h.add("c.jpg")
    h.run()
    assert (h.share / "c.jpg").read_bytes() == (h.share / "a.jpg").read_bytes()


@pytest.mark.integration
def test_same_bytes_under_another_extension_get_their_own_copy(dev: Path, tmp_path: Path, cloaker) -> None:
    h = Harness(tmp_path, cloaker)
    x, y = dev / FACE, dev / OTHER
    shutil.copyfile(x, h.src / "x.jpg")
    shutil.copyfile(y, h.src / "e4.jpg")
    h.add("x.jpg")
    h.add("e4.jpg")
    h.run()
    shutil.copyfile(x, h.src / "e4.jpeg")
    h.add("e4.jpeg")
    h.run()
    assert (h.share / "e4.jpeg").exists() and closer_to(h.share / "e4.jpeg", x, y)
    assert closer_to(h.share / "e4.jpg", y, x), "e4.jpg's safe copy was overwritten with another photo's"


@pytest.mark.integration
def test_a_symlinked_folder_in_to_share_is_never_written_through(dev: Path, tmp_path: Path, cloaker) -> None:
    h = Harness(tmp_path, cloaker)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    h.share.mkdir(parents=True, exist_ok=True)
    (h.share / "sub").symlink_to(elsewhere)
    (h.src / "sub").mkdir()
    shutil.copyfile(dev / FACE, h.src / "sub" / "p.jpg")
    h.add("sub/p.jpg")
    h.run()
    assert not list(elsewhere.iterdir())
    row = h.row("sub/p.jpg")
    assert row["state"] == "failed" and "symlink" in row["error"]


@pytest.mark.integration
def test_a_private_photo_stays_private(dev: Path, tmp_path: Path, cloaker) -> None:
    h = Harness(tmp_path, cloaker)
    shutil.copyfile(dev / FACE, h.src / "private.jpg")
    (h.src / "private.jpg").chmod(0o600)
    h.add("private.jpg")
    h.run()
    assert (h.share / "private.jpg").stat().st_mode & 0o777 == 0o600


@pytest.mark.integration
def test_a_file_that_got_its_copy_leaves_no_failed_rows(dev: Path, tmp_path: Path, cloaker) -> None:
    h = Harness(tmp_path, cloaker)
    (h.src / "x.jpg").mkdir()
    h.queue.add("cam", "x.jpg", 0, 0)  # as the rescan records a folder named like a photo
    (h.src / "y.jpg").write_bytes((dev / FACE).read_bytes()[:2000])  # truncated while syncing
    h.add("y.jpg")
    h.run()
    assert h.queue.counts()["failed"] == 2
    (h.src / "x.jpg").rmdir()
    shutil.copyfile(dev / FACE, h.src / "x.jpg")
    shutil.copyfile(dev / OTHER, h.src / "y.jpg")
    os.utime(h.src / "y.jpg", ns=(1, 10**18))
    h.add("x.jpg")
    h.add("y.jpg")
    h.run()
    assert h.queue.counts()["failed"] == 0 and h.queue.counts()["done"] == 2


@pytest.mark.unit
def test_outputs_never_replace_and_stay_private(tmp_path: Path) -> None:
    src = small_photo(tmp_path / "private.jpg")
    os.chmod(src, 0o600)
    taken = small_photo(tmp_path / "out" / "private.jpg")
    dst = unique(tmp_path / "out" / "private.jpg")
    assert dst != taken and dst.name == "private-1.jpg"
    small_photo(dst)
    os.chmod(dst, 0o644)
    as_private_as(dst, src)
    assert dst.stat().st_mode & 0o777 == 0o600
