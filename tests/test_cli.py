"""The command line as a user meets it: one-line errors and exit codes, `fawkes cloak`'s --out, no stray warnings.

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

from fawkes_daemon.cli.cloak_paths import out_inside_input
from tests.helpers.daemon import fawkes_cli, minimal_config
from tests.helpers.worker import FACE, config_file, small_photo


@pytest.mark.system
def test_an_impossible_to_share_is_a_one_line_error_and_exit_2(tmp_path: Path) -> None:
    cfg = config_file(tmp_path)
    raw = yaml.safe_load(cfg.read_text())
    raw["to_share"] = "/proc/fawkes-x/share"
    cfg.write_text(yaml.safe_dump(raw))
    out = subprocess.run(
        [sys.executable, "-m", "fawkes_daemon.cli", "run", "--config", str(cfg)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and "cannot create" in out.stderr


@pytest.mark.system
def test_fawkes_cloak_prints_no_opencv_warning(dev: Path, tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "fawkes_daemon.cli",
            "cloak",
            str(dev / FACE),
            "--out",
            str(tmp_path / "out"),
            "--mode",
            "low",
            "--steps",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    assert "WARN" not in out.stderr and "setPreferableTarget" not in out.stderr


@pytest.mark.unit
def test_out_inside_an_input_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "in"
    small_photo(src / "park.jpg")
    assert out_inside_input(src, [str(src)]) is not None
    assert out_inside_input(src / "safe", [str(src)]) is not None
    assert out_inside_input(tmp_path / "elsewhere", [str(src)]) is None
    assert out_inside_input(src / "park.jpg", [str(src / "park.jpg")]) is not None


@pytest.mark.system
def test_fawkes_cloak_refuses_out_inside_the_input_and_leaves_originals(tmp_path: Path) -> None:
    src = tmp_path / "in"
    park = small_photo(src / "park.jpg")
    mine = small_photo(src / "safe" / "holiday.jpg")
    before = park.read_bytes(), mine.read_bytes()
    for out in (src, src / "safe"):
        r = subprocess.run(
            [sys.executable, "-m", "fawkes_daemon.cli", "cloak", str(src), "--out", str(out)], capture_output=True, text=True
        )
        assert r.returncode == 2, r.stderr
        assert "inside the input folder" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert (park.read_bytes(), mine.read_bytes()) == before
    assert sorted(p.name for p in src.rglob("*")) == ["holiday.jpg", "park.jpg", "safe"]


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
    small_photo(tmp_path / "src" / "a.jpg")
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


@pytest.mark.system
def test_status_on_a_fresh_config_creates_nothing(tmp_path: Path) -> None:
    cfg = minimal_config(tmp_path)
    r = fawkes_cli("status", "--json", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert '"pending": 0' in r.stdout
    assert not (tmp_path / "state").exists()


@pytest.mark.system
def test_cloak_on_an_empty_folder_says_so_before_loading_models(tmp_path: Path) -> None:
    empty, cache = tmp_path / "empty", tmp_path / "cache"
    empty.mkdir()
    cache.mkdir()
    r = fawkes_cli("cloak", str(empty), env={"FAWKES_CACHE_DIR": str(cache)})
    assert r.returncode == 1
    assert f"no photos found in {empty}" in r.stderr
    assert not any(cache.iterdir())  # no model was built or loaded


@pytest.mark.system
def test_an_out_that_cannot_be_created_is_one_line(tmp_path: Path) -> None:
    """--out below a file (as a read-only or full disk, the folder cannot be made; this holds for root too)."""
    from PIL import Image

    src = tmp_path / "in"
    src.mkdir()
    Image.new("RGB", (64, 64), (120, 90, 80)).save(src / "a.png")
    (tmp_path / "a-file").write_text("not a folder")
    r = fawkes_cli("cloak", str(src), "--out", str(tmp_path / "a-file" / "out"))
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 1 and len(lines) == 1 and "cannot create --out" in lines[0], r.stderr
