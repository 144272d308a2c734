"""Daemon overheads: idle CPU while watching 10,000 files, and landing-to-safe-copy latency.

    python -m benchmarks.bench_daemon [--files 10000] [--idle-seconds 60]

Idle: a source holding N photos the queue already knows as done (as after a backfill long
ago); the daemon is started, its startup rescan allowed to finish, then its CPU time is
read from /proc over the idle window. Latency: photos dropped one at a time; we report
(time the safe copy appeared − time the photo landed) − the cloak seconds the daemon
recorded, i.e. the quiet period plus queueing, I/O and rename overhead.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks.common import SHARED, report
from fawkes_daemon.state_db import StateDB


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def start(cfg: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "fawkes_daemon.cli", "run", "--config", str(cfg)], stdout=subprocess.DEVNULL, stderr=open(log, "ab")
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--idle-seconds", type=float, default=60)
    ap.add_argument("--latency-photos", type=int, default=5)
    args = ap.parse_args()
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="fawkes-bench-"))
    src = tmp / "src"
    sample = next((SHARED / "dev" / "faces" / "Tom_Hanks").glob("*.jpg")).read_bytes()
    q = StateDB(tmp / "state" / "queue.sqlite3").queue
    for i in range(args.files):
        d = src / f"{i // 500:03d}"
        d.mkdir(parents=True, exist_ok=True)
        p = d / f"img{i:05d}.jpg"
        p.write_bytes(sample)
        st = p.stat()
        q.add("cam", p.relative_to(src).as_posix(), st.st_size, st.st_mtime_ns)
    q.db.execute("UPDATE files SET state='done'")
    q.close()
    cfg = tmp / "config.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "sources": [{"path": str(src), "name": "cam"}],
                "to_share": str(tmp / "share"),
                "state_dir": str(tmp / "state"),
                "quiet_period": 1,
                "cloak": {"mode": "mid"},
            }
        )
    )
    proc = start(cfg, tmp / "log")
    time.sleep(15)  # start-up: imports, observers on 20 folders, the start-up rescan
    t0, c0 = time.monotonic(), cpu_seconds(proc.pid)
    time.sleep(args.idle_seconds)
    t1, c1 = time.monotonic(), cpu_seconds(proc.pid)
    rows.append(
        {"what": f"idle CPU watching {args.files} files", "value": 100 * (c1 - c0) / (t1 - t0), "unit": "% of one core", "goal": "< 1"}
    )
    # latency beyond the cloak itself
    faces = sorted((SHARED / "dev" / "faces" / "Keanu_Reeves").glob("*.jpg"))[: args.latency_photos]
    extra = []
    for i, f in enumerate(faces):
        dest = src / f"new{i}.jpg"
        landed = time.time()
        shutil.copyfile(f, dest)
        out = tmp / "share" / "cam" / dest.name
        while not out.exists():
            time.sleep(0.05)
        appeared = time.time()
        time.sleep(0.5)
        qq = StateDB(tmp / "state" / "queue.sqlite3").queue
        row = qq.db.execute("SELECT seconds FROM files WHERE relpath=?", (dest.name,)).fetchone()
        qq.close()
        extra.append(appeared - landed - (row["seconds"] or 0))
    rows.append(
        {
            "what": "landing → safe copy, beyond cloak time (quiet period 1 s)",
            "value": statistics.median(extra),
            "unit": "s (median)",
            "goal": "",
        }
    )
    proc.terminate()
    proc.wait(timeout=120)
    shutil.rmtree(tmp, ignore_errors=True)
    report("daemon", rows)


if __name__ == "__main__":
    main()
