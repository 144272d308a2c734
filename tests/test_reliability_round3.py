"""Reliability round 3 (issue 29): `fawkes cloak` never destroys an original (R8), takes each file once (R23), refuses
huge files unread (R22), reports unreadable folders (R19), keeps private photos private (R13); a corrupt queue is one line (R9)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fawkes_daemon.cli.cloak_paths import as_private_as, collect, out_inside_input, unique


def _photo(path: Path) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 48), (120, 90, 60)).save(path, quality=90)
    return path


def test_out_inside_an_input_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "in"
    _photo(src / "park.jpg")
    assert out_inside_input(src, [str(src)]) is not None
    assert out_inside_input(src / "safe", [str(src)]) is not None
    assert out_inside_input(tmp_path / "elsewhere", [str(src)]) is None
    assert out_inside_input(src / "park.jpg", [str(src / "park.jpg")]) is not None


@pytest.mark.system
def test_fawkes_cloak_refuses_out_inside_the_input_and_leaves_originals(tmp_path: Path) -> None:
    src = tmp_path / "in"
    park = _photo(src / "park.jpg")
    mine = _photo(src / "safe" / "holiday.jpg")
    before = park.read_bytes(), mine.read_bytes()
    for out in (src, src / "safe"):
        r = subprocess.run(
            [sys.executable, "-m", "fawkes_daemon.cli", "cloak", str(src), "--out", str(out)], capture_output=True, text=True
        )
        assert r.returncode == 2, r.stderr
        assert "inside the input folder" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert (park.read_bytes(), mine.read_bytes()) == before
    assert sorted(p.name for p in src.rglob("*")) == ["holiday.jpg", "park.jpg", "safe"]


def test_each_file_once_and_huge_files_refused_unread(tmp_path: Path) -> None:
    a = _photo(tmp_path / "a.jpg")
    (tmp_path / "link.jpg").symlink_to(a)
    huge = tmp_path / "huge.jpg"
    with open(huge, "wb") as f:
        f.truncate(600 * 2**20)  # sparse: 600 MB that are never read
    files, problems = collect([str(a), str(a), str(tmp_path / "link.jpg"), str(tmp_path), str(a)], max_bytes=512 * 2**20)
    assert files == [a]
    assert [(p.name, "over the 512 MB limit" in why) for p, why in problems] == [("huge.jpg", True)]


def test_unreadable_folder_is_reported(tmp_path: Path, monkeypatch) -> None:
    _photo(tmp_path / "ok" / "a.jpg")
    _photo(tmp_path / "locked" / "b.jpg")
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


def test_outputs_never_replace_and_stay_private(tmp_path: Path) -> None:
    src = _photo(tmp_path / "private.jpg")
    os.chmod(src, 0o600)
    taken = _photo(tmp_path / "out" / "private.jpg")
    dst = unique(tmp_path / "out" / "private.jpg")
    assert dst != taken and dst.name == "private-1.jpg"
    _photo(dst)
    os.chmod(dst, 0o644)
    as_private_as(dst, src)
    assert dst.stat().st_mode & 0o777 == 0o600


@pytest.mark.system
def test_a_corrupt_queue_database_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """R9: status, run and ui say which file is broken and what to do, and exit 2 (the unit does not restart on 2)."""
    import yaml

    (tmp_path / "src").mkdir()
    state = tmp_path / "state"
    state.mkdir()
    (state / "queue.sqlite3").write_bytes(b"this is not a database, it was damaged" * 100)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"sources": [{"path": "src", "name": "cam"}], "to_share": "share", "state_dir": "state"}))
    for cmd in (["status"], ["run"], ["ui", "--port", "0"]):
        r = subprocess.run(
            [sys.executable, "-m", "fawkes_daemon.cli", *cmd, "--config", str(cfg)], capture_output=True, text=True, timeout=120
        )
        lines = [ln for ln in r.stderr.splitlines() if ln.strip() and "WARNING" not in ln]
        assert r.returncode == 2, (cmd, r.stderr)
        assert len(lines) == 1 and "queue.sqlite3" in lines[0] and "move the file aside" in lines[0], (cmd, r.stderr)


@pytest.mark.system
def test_opt_in_extractors_without_their_weights_are_refused_at_start(tmp_path: Path) -> None:
    """R10: `extractors: [sface, faceres]` without the opt-in weights (or with a tampered file) stops at start in one line."""
    import yaml

    (tmp_path / "src").mkdir()
    _photo(tmp_path / "src" / "a.jpg")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "sources": [{"path": "src", "name": "cam"}],
                "to_share": "share",
                "state_dir": "state",
                "cloak": {"extractors": ["sface", "faceres"]},
            }
        )
    )
    tampered = tmp_path / "models"
    tampered.mkdir()
    for name in ("faceres.json", "faceres.bin"):
        (tampered / name).write_bytes(b"not the pinned weights")
    for env in (
        {"XDG_DATA_HOME": str(tmp_path / "empty")},
        {"XDG_DATA_HOME": str(tmp_path / "empty"), "FAWKES_HUMAN_MODELS": str(tampered)},
    ):
        for cmd in (
            ["run", "--config", str(cfg)],
            ["cloak", str(tmp_path / "src" / "a.jpg"), "--extractors", "sface,faceres"],
        ):
            r = subprocess.run(
                [sys.executable, "-m", "fawkes_daemon.cli", *cmd], capture_output=True, text=True, timeout=120, env={**os.environ, **env}
            )
            lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
            assert r.returncode == 2, (cmd, r.stderr)
            assert len(lines) == 1 and "faceres" in lines[0] and ("human-models" in lines[0] or "pinned" in lines[0]), (cmd, r.stderr)
    assert not (tmp_path / "share").exists() or not any((tmp_path / "share").rglob("*.jpg"))


def test_r2_a_folder_swapped_for_a_symlink_publishes_nothing_from_outside(dev: Path, tmp_path: Path) -> None:
    """R2: `mv src/dir src/.old && ln -s ~/private src/dir` after x.jpg was queued: refused, nothing published."""
    import shutil

    from tests.test_reliability import FACE, Harness

    h = Harness(tmp_path, _fast_cloaker())
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


@pytest.mark.integration  # a real cloaker
def test_r4_release_acts_on_the_version_it_was_asked_for(tmp_path: Path) -> None:
    """R4: a held file replaced before its release is not published under that release; the new version is decided afresh."""
    from tests.helpers.ui import landscape
    from tests.test_reliability import Harness

    h = Harness(tmp_path, _fast_cloaker(), no_face="hold")
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


def _fast_cloaker():
    from fawkes_engine.cloak import CloakOptions
    from fawkes_engine.pipeline import PhotoCloaker

    return PhotoCloaker(CloakOptions.of(mode="low", steps=2))


@pytest.mark.system
def test_r20_release_of_a_link_is_about_the_link_not_its_target(tmp_path: Path) -> None:
    """R20: `fawkes release src/link.png` released the link's target and said it succeeded."""
    import yaml

    from fawkes_daemon.config import load_config
    from fawkes_daemon.queue import Queue

    (tmp_path / "src").mkdir()
    _photo(tmp_path / "src" / "a.jpg")
    (tmp_path / "src" / "link.jpg").symlink_to(tmp_path / "src" / "a.jpg")
    cfg_path = tmp_path / "config.yaml"
    cfg_path.write_text(yaml.safe_dump({"sources": [{"path": "src", "name": "cam"}], "to_share": "share", "state_dir": "state"}))
    q = Queue(load_config(cfg_path).db_path)
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
