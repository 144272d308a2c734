"""Photos per minute: the plain worker against a local Ray cluster of 1 and 2 actors, side by side.

    python -m benchmarks.bench_scaleout [--photos 8] [--mode mid]

The same photos (dev photos with a face, copied to a temporary source), the same seeded
configuration, batch size 1 (so that two actors have work to share), each backend from an
empty queue in a fresh process. Ray's time includes starting the cluster and its actors
loading the models, as a user's backfill pays them; ``per-photo overhead`` compares the
steady part only (from the first finished photo to the last). Ratios are to the plain worker
measured in the same run. With ``--gpu-batches`` on a machine with CUDA it adds faces per
minute for batches of aligned faces (the issue's 1, 8, 32, 128).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from benchmarks.common import SHARED, report

PHOTOS = ["lady.jpg", "couple.jpg", "nikon_d700_two_faces.jpg", "nokia_bothie_selfie.heic", "iphone_xsmax_pool.heic", "nikon_d3s_rider.jpg"]

RUN = """
import json, sys, time
from fawkes_daemon.config import load_config
from fawkes_daemon.state_db import StateDB
from fawkes_daemon.walk import backlog, queue_backlog
from fawkes_daemon.pipeline.driver import Pipeline
cfg = load_config(sys.argv[1]); q = StateDB(cfg.db_path).queue
queue_backlog(q, backlog(cfg))
t0 = time.perf_counter(); w = Pipeline(cfg, q); stamps = []
if sys.argv[2] == "plain":
    import torch
    torch.set_num_threads(int(sys.argv[3]))
    while (n := w.run_batch()):
        stamps += [time.perf_counter() - t0] * n
else:
    w.compute_on_ray("local", int(sys.argv[3]))
    while q.due_pending() or w.compute.busy():
        n = w.pump()
        stamps += [time.perf_counter() - t0] * n
    w.close()
print(json.dumps({"total": time.perf_counter() - t0, "stamps": stamps, "counts": q.counts()}))
"""


def run(kind: str, n: int, photos: list[Path], mode: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        (tmp / "src").mkdir()
        for i, p in enumerate(photos):
            shutil.copyfile(p, tmp / "src" / f"{i:02d}_{p.name}")
        cfg = {
            "sources": [{"path": "src", "name": "cam"}],
            "to_share": "share",
            "state_dir": "state",
            "cloak": {"mode": mode},
            "batch_size": 1,
            "compute": {"cpus_per_actor": 1, "local_cpus": 2},
        }
        (tmp / "config.yaml").write_text(yaml.safe_dump(cfg))
        out = subprocess.run(
            [sys.executable, "-c", RUN, str(tmp / "config.yaml"), kind, str(n)], capture_output=True, text=True, check=True
        )
        return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=int, default=8)
    ap.add_argument("--mode", default="mid")
    args = ap.parse_args()
    pool = [SHARED / "dev" / "photos" / p for p in PHOTOS]
    photos = [pool[i % len(pool)] for i in range(args.photos)]
    rows: list[dict[str, object]] = []
    runs = [
        ("plain worker, 2 threads", "plain", 2),
        ("plain worker, 1 thread", "plain", 1),
        ("ray, 1 actor", "ray", 1),
        ("ray, 2 actors", "ray", 2),
    ]
    base_ppm = base_steady = None
    for label, kind, n in runs:
        r = run(kind, n, photos, args.mode)
        s = r["stamps"]
        ppm = 60 * len(s) / r["total"]
        steady = (s[-1] - s[0]) / max(1, len(s) - 1)  # seconds per photo once the first is out
        if label == "plain worker, 1 thread":
            base_ppm, base_steady = ppm, steady
        rows.append(
            {
                "backend": label,
                "photos": len(s),
                "seconds": round(r["total"], 1),
                "photos/min": round(ppm, 2),
                "steady s/photo": round(steady, 2),
            }
        )
    for row in rows:
        row["ratio to plain (1 thread)"] = round(float(row["photos/min"]) / base_ppm, 3) if base_ppm else None  # type: ignore[arg-type]
        row["steady overhead"] = round(float(row["steady s/photo"]) / base_steady - 1, 3) if base_steady else None  # type: ignore[arg-type]
    report(
        "scaleout",
        rows,
        {
            "mode": args.mode,
            "photos": [p.name for p in photos],
            "command": f"python -m benchmarks.bench_scaleout --photos {args.photos} --mode {args.mode}",
        },
    )


if __name__ == "__main__":
    main()
