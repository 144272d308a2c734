"""SHA-256 of the daemon worker's safe copies of 8 dev photos, seeded: the before/after proof of a `Review:` commit.

    python scripts/review_outputs.py                      # this checkout
    python scripts/review_outputs.py people=false         # this checkout, with cloak keys set (keys an older checkout lacks)
    PYTHONPATH=/tmp/old/engine:/tmp/old/daemon python scripts/review_outputs.py   # another checkout
    PYTHONPATH=/tmp/old-links python scripts/review_outputs.py   # a checkout from before engine/fawkes_engine:
                                                                 # links fawkes_engine, fawkes_daemon to its engine/, daemon/

Runs the real worker (queue, batches of 4, default mid cloak, seed 0) on 6 dev photos and 2
face photos; the lines must be identical before and after a change that claims not to alter output.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import tempfile
from pathlib import Path

import yaml

import fawkes_daemon
from fawkes_daemon.config import load_config
from fawkes_daemon.queue import Queue
from fawkes_daemon.walk import backlog, queue_backlog

try:  # the pipeline package and the state database (issue 40); an older checkout has the worker and the queue
    from fawkes_daemon.pipeline.driver import Pipeline as Worker
    from fawkes_daemon.state_db import StateDB

    def open_queue(path: Path) -> Queue:
        return StateDB(path).queue
except ImportError:
    from fawkes_daemon.worker import Worker  # type: ignore[no-redef]

    def open_queue(path: Path) -> Queue:
        return Queue(path)  # type: ignore[call-arg]


PHOTOS = ["lady.jpg", "couple.jpg", "group_2.jpg", "park_noface.jpg", "nokia_bothie_selfie.heic", "nikon_d700_two_faces.jpg"]


def main() -> None:
    print("code:", Path(fawkes_daemon.__file__).resolve().parent, file=sys.stderr)
    dev = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "dev"
    tmp = Path(tempfile.mkdtemp())
    (tmp / "src").mkdir()
    for n in PHOTOS:
        shutil.copyfile(dev / "photos" / n, tmp / "src" / n)
    for d in sorted((dev / "faces").iterdir())[:2]:
        shutil.copyfile(sorted(d.iterdir())[0], tmp / "src" / f"{d.name}.jpg")
    cfg_path = tmp / "config.yaml"
    cloak = {k: yaml.safe_load(v) for k, _, v in (a.partition("=") for a in sys.argv[1:])}
    base = {"sources": [{"path": "src", "name": "cam"}], "to_share": "share", "state_dir": "state", "batch_size": 4}
    cfg_path.write_text(yaml.safe_dump({**base, **({"cloak": cloak} if cloak else {})}))
    cfg = load_config(cfg_path)
    q = open_queue(cfg.db_path)
    queue_backlog(q, backlog(cfg))
    w = Worker(cfg, q)
    while w.run_batch():
        pass
    for p in sorted((tmp / "share" / "cam").iterdir()):
        print(p.name, hashlib.sha256(p.read_bytes()).hexdigest()[:16])
    print(q.counts())
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
