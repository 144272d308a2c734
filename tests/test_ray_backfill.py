"""`fawkes backfill --ray`: a real local Ray cluster, 20 dev photos, one actor killed mid-run.

Each source must end with exactly one safe copy (or be held), none partial, and every safe
copy must equal, byte for byte, what the plain single-machine worker writes for the same
seeded configuration at the same torch thread count.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.helpers.daemon import counts
from tests.helpers.ui import wait_for

REFERENCE = """
import sys, torch
torch.set_num_threads(1)  # an actor's thread count (compute.cpus_per_actor): oneDNN's sums depend on it
from fawkes_daemon.config import load_config
from fawkes_daemon.state_db import StateDB
from fawkes_daemon.walk import backlog, queue_backlog
from fawkes_daemon.pipeline.driver import Pipeline
cfg = load_config(sys.argv[1]); q = StateDB(cfg.db_path).queue
queue_backlog(q, backlog(cfg))
w = Pipeline(cfg, q)
while w.run_batch():
    pass
"""


SMALL_PHOTOS = ("lady.jpg", "group_2.jpg", "park_noface.jpg", "bush_dog_group.jpg")


def library(root: Path, dev: Path) -> Path:
    """20 dev photos (4 full photos, one of each of 16 people), shrunk to 640 px, under one source, for a fast seeded cloak.

    Shrunk because the test is about who writes what, not about cloaking 12 MP photos: the
    same bytes go to both backends.
    """
    from PIL import Image

    src = root / "src"
    src.mkdir(parents=True)
    picks = [dev / "photos" / n for n in SMALL_PHOTOS] + [sorted(d.iterdir())[0] for d in sorted((dev / "faces").iterdir())[:16]]
    for p in picks:
        im = Image.open(p).convert("RGB")
        im.thumbnail((640, 640))
        name = p.name if p.parent.name == "photos" else f"{p.parent.name}.jpg"
        im.save(src / name, quality=92)
    assert len(list(src.iterdir())) == 20
    cfg = {
        "sources": [{"path": "src", "name": "cam"}],
        "to_share": "share",
        "state_dir": "state",
        # people: false: a Ray backfill groups faces by person within each batch only, the daemon across its library
        "cloak": {"mode": "low", "steps": 2, "people": False},
        "batch_size": 2,
        "compute": {"cpus_per_actor": 1, "local_cpus": 2},
    }
    (root / "config.yaml").write_text(yaml.safe_dump(cfg))
    return root / "config.yaml"


def actor_pids() -> list[int]:
    out = subprocess.run(["pgrep", "-f", "ray::CloakActor"], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out if int(p) != os.getpid()]


def busiest_actor() -> int:
    """The actor that used the most CPU over the last second: the one with a batch in hand (an idle actor's
    death is not what the test is about, and on a loaded machine the first actor is often between batches)."""
    import psutil

    procs = [psutil.Process(p) for p in actor_pids()]
    before = {p.pid: sum(p.cpu_times()[:2]) for p in procs}
    time.sleep(1.0)
    return max(procs, key=lambda p: sum(p.cpu_times()[:2]) - before[p.pid]).pid


@pytest.mark.system
def test_ray_backfill_survives_a_killed_actor_and_equals_the_plain_worker(tmp_path: Path, dev: Path) -> None:
    ray_cfg = library(tmp_path / "ray", dev)
    ref_cfg = library(tmp_path / "plain", dev)
    subprocess.run([sys.executable, "-c", REFERENCE, str(ref_cfg)], check=True, timeout=900)

    log = open(tmp_path / "backfill.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "fawkes_daemon.cli", "backfill", "--config", str(ray_cfg), "--ray", "local", "--actors", "2"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: len(actor_pids()) >= 2 and counts(ray_cfg)["done"] >= 1, 600, "two actors and a first safe copy")
        left = counts(ray_cfg)
        assert left["pending"] + left["working"] > 0, f"nothing left to interrupt: {left}"
        victim = busiest_actor()
        os.kill(victim, signal.SIGKILL)
        assert proc.wait(timeout=900) == 0, (tmp_path / "backfill.log").read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    text = (tmp_path / "backfill.log").read_text()
    assert "actor died" in text, "the kill did not hit a batch in hand; the test proved nothing"

    final = counts(ray_cfg)
    assert final["pending"] == final["working"] == final["failed"] == 0 and final["done"] + final["held"] == 20, final
    assert counts(ref_cfg) == final
    ray_share, ref_share = tmp_path / "ray" / "share" / "cam", tmp_path / "plain" / "share" / "cam"
    written = sorted(p.name for p in ray_share.iterdir())
    assert written == sorted(p.name for p in ref_share.iterdir()) and len(written) == final["done"]
    for name in written:
        assert (ray_share / name).read_bytes() == (ref_share / name).read_bytes(), f"{name}: not the plain worker's bytes"
    staging = tmp_path / "ray" / ".share.fawkes-staging"
    assert not list(staging.glob("*")), "a partial file was left in staging"
    assert not (tmp_path / "ray" / "state" / "backfill.json").exists()


@pytest.mark.unit
def test_the_daemon_and_a_backfill_never_write_one_state_dir_together(tmp_path: Path) -> None:
    from fawkes_daemon.writer_lock import WriterBusy, hold_writer_lock

    code = f"from fawkes_daemon.writer_lock import hold_writer_lock; import time; hold_writer_lock(__import__('pathlib').Path({str(tmp_path)!r}), 'fawkes run'); print('held', flush=True); time.sleep(60)"
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(WriterBusy, match="fawkes run"):
            hold_writer_lock(tmp_path, "fawkes backfill --ray auto")
    finally:
        holder.kill()
        holder.wait()
    os.close(hold_writer_lock(tmp_path, "fawkes backfill --ray auto"))  # a killed holder leaves no stale lock
