"""The web page's speed with a large queue: each page's render time over real HTTP, and the thumbnail cache.

Goal (issue 22): the overview renders in under 200 ms with 10,000 files in the queue.
A queue of ``--rows`` files (mostly done, some pending, held and failed, spread over two
days) is written to a real SQLite file; the page is served by uvicorn in a thread, exactly
as the daemon serves it, and fetched with httpx. Medians of ``--repeats`` requests.

    python -m benchmarks.bench_ui --rows 10000
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import yaml
from PIL import Image

from benchmarks.common import report
from fawkes_daemon.config import load_config
from fawkes_daemon.queue import Queue
from fawkes_daemon.state_db import StateDB
from fawkes_daemon.ui.server import UIServer

GOAL_MS = 200.0


def fill(queue: Queue, n: int, src: Path, seed: int = 0) -> int:
    """n rows in a realistic mix; returns the id of a held row whose photo (12 MP) exists, for the thumbnail timing."""
    rng = random.Random(seed)
    now = time.time()
    report = json.dumps({"mode": "mid", "faces": [], "skipped": []})
    rows = []
    for i in range(n):
        r = rng.random()
        state = "done" if r < 0.9 else "pending" if r < 0.95 else "held" if r < 0.98 else "failed"
        updated = now - rng.uniform(0, 48 * 3600)
        error = {"held": "no face found; held (no_face: hold) until `fawkes release`", "failed": "cloaking failed (test)"}.get(state)
        output = f"/nonexistent/share/cam/IMG_{i:05d}.jpg" if state == "done" else None
        rows.append(("cam", f"2026/IMG_{i:05d}.jpg", 3_000_000 + i, i, state, error, output, report, updated - 5, updated))
    queue.db.execute("BEGIN")
    queue.db.executemany(
        "INSERT INTO files (source, relpath, size, mtime_ns, state, error, output, report, created, updated) VALUES (?,?,?,?,?,?,?,?,?,?)",
        rows,
    )
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (3000, 4000, 3), dtype=np.uint8)).save(src / "big.jpg", quality=90)
    st = (src / "big.jpg").stat()
    queue.db.execute(
        "INSERT INTO files (source, relpath, size, mtime_ns, state, error, created, updated) VALUES ('cam', 'big.jpg', ?, ?, 'held', 'x', ?, ?)",
        (st.st_size, st.st_mtime_ns, now, now),
    )
    queue.db.execute("COMMIT")
    return int(queue.db.execute("SELECT id FROM files WHERE relpath='big.jpg'").fetchone()[0])


def timed(client: httpx.Client, url: str, repeats: int) -> list[float]:
    client.get(url).raise_for_status()  # warm-up
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        r = client.get(url)
        out.append((time.perf_counter() - t) * 1000)
        r.raise_for_status()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=50)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        (tmp / "src").mkdir()
        (tmp / "config.yaml").write_text(
            yaml.safe_dump({"sources": [{"path": "src", "name": "cam"}], "to_share": "share", "state_dir": "state"})
        )
        cfg = load_config(tmp / "config.yaml")
        q = StateDB(cfg.db_path).queue
        big = fill(q, args.rows, tmp / "src")
        counts = q.counts()
        q.close()
        server = UIServer(cfg, tmp / "config.yaml", port=0)
        server.start_thread()
        time.sleep(0.5)
        rows = []
        with httpx.Client(base_url=server.base_url, timeout=30) as c:
            c.get(f"/?token={server.token}")
            c.base_url = httpx.URL(server.base_url.rstrip("/") + server.prefix + "/")  # the session's pages live under the run's prefix
            for name, url in (("overview", "/"), ("recent", "/recent"), ("held & failed", "/attention"), ("settings", "/settings")):
                ms = timed(c, url, args.repeats)
                rows.append(
                    {
                        "page": name,
                        "rows": args.rows,
                        "median_ms": round(statistics.median(ms), 1),
                        "p95_ms": round(sorted(ms)[int(0.95 * len(ms)) - 1], 1),
                        "goal_ms": GOAL_MS if name == "overview" else None,
                        "ratio_to_goal": round(statistics.median(ms) / GOAL_MS, 3) if name == "overview" else None,
                    }
                )
            t = time.perf_counter()
            c.get(f"/thumb/{big}").raise_for_status()
            first = (time.perf_counter() - t) * 1000
            cached = statistics.median(timed(c, f"/thumb/{big}", args.repeats))
            rows.append(
                {"page": "thumbnail of a 12 MP photo", "rows": args.rows, "first_ms": round(first, 1), "median_ms": round(cached, 1)}
            )
        server.stop()
    report("ui", rows, {"queue": counts, "command": f"python -m benchmarks.bench_ui --rows {args.rows} --repeats {args.repeats}"})


if __name__ == "__main__":
    main()
