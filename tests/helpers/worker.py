"""The daemon's pipeline over a real queue file, and small photos: what the intake, publish and worker tests share."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from fawkes_daemon.config import load_config
from fawkes_daemon.pipeline.driver import Pipeline
from fawkes_daemon.state_db import StateDB
from tests.helpers.daemon import FAST


def fast_cloaker():
    """A cloaker at low mode and 2 steps: the worker tests are about files, not protection."""
    from fawkes_engine.cloak import CloakOptions
    from fawkes_engine.pipeline import PhotoCloaker

    return PhotoCloaker(CloakOptions.of(mode="low", steps=2))


FACE = "faces/Tom_Hanks/1.jpg"
OTHER = "faces/Will_Smith/1.jpg"


def config_file(tmp: Path, **extra) -> Path:
    (tmp / "src").mkdir(exist_ok=True)
    cfg = {
        "sources": [{"path": str(tmp / "src"), "name": "cam"}],
        "to_share": str(tmp / "share"),
        "cloak": FAST,
        "state_dir": str(tmp / "state"),
        "quiet_period": 0,
        **extra,
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


class Harness:
    """The pipeline over a real queue file; ``add`` queues a file as the stability gate would."""

    def __init__(self, tmp: Path, cloaker, **extra) -> None:
        self.tmp = tmp
        self.config = load_config(config_file(tmp, **extra))
        self.queue = StateDB(self.config.db_path).queue
        self.pipeline = Pipeline(self.config, self.queue)
        self.pipeline.use(self.config.cloak.mode, cloaker)
        self.src = tmp / "src"
        self.share = tmp / "share" / "cam"

    def add(self, rel: str) -> None:
        st = os.lstat(self.src / rel)
        self.queue.add("cam", rel, st.st_size, st.st_mtime_ns)

    def run(self, timeout: float = 300) -> None:
        """Work until nothing is due; in a thread, so a worker that blocks fails the test instead of hanging it."""
        done = threading.Event()

        def work() -> None:
            while self.pipeline.run_batch():
                pass
            done.set()

        threading.Thread(target=work, daemon=True).start()
        assert done.wait(timeout), "the worker blocked"

    def row(self, rel: str) -> dict:
        rows = [r for r in self.queue.rows(limit=1000) if r["relpath"] == rel]
        return max(rows, key=lambda r: r["id"])


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB").resize((128, 128)), np.float32)


def closer_to(out: Path, a: Path, b: Path) -> bool:
    """The safe copy shows photo a, not photo b."""
    o = pixels(out)
    return float(np.abs(o - pixels(a)).mean()) < float(np.abs(o - pixels(b)).mean())


def small_photo(path: Path) -> Path:
    """A small plain JPEG at ``path`` (no face): for tests about files, not faces."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 48), (120, 90, 60)).save(path, quality=90)
    return path
