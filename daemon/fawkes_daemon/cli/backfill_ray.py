"""`fawkes backfill --ray ADDRESS`: the backlog cloaked on a Ray cluster, with a progress bar."""

from __future__ import annotations

import logging
import sys

from fawkes_daemon.config import Config
from fawkes_daemon.queue import Queue


def run_on_ray(cfg: Config, queue: Queue, address: str, actors: int | None, verbose: bool) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from fawkes_daemon.logs import journald_logging
    from fawkes_daemon.writer_lock import WriterBusy, hold_writer_lock

    try:
        hold_writer_lock(cfg.state_dir, f"fawkes backfill --ray {address}")
    except WriterBusy as e:
        print(f"fawkes: {e} (or set `compute: {{ray: {address}}}` in the config: the daemon then uses Ray itself)", file=sys.stderr)
        return 2
    try:
        from fawkes_daemon.ray_backfill import RayBackfill
    except ImportError:
        print("fawkes: Ray is not installed: pip install 'fawkes-sync[ray]'", file=sys.stderr)
        return 2
    from fawkes_daemon.worker import Worker

    journald_logging(verbose)
    logging.getLogger("fawkes.worker").setLevel(logging.WARNING if not verbose else logging.INFO)
    queue.requeue_interrupted()
    worker = Worker(cfg, queue)
    worker.sweep_staging()
    pending = queue.due_pending()
    columns = [TextColumn("cloaking on Ray"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task("ray", total=pending)
        backend = RayBackfill(cfg, queue, worker, address, actors, on_progress=lambda p: bar.update(task, completed=p.finished))
        try:
            backend.drain()
        except KeyboardInterrupt:
            print("interrupted: what was in flight goes back to the queue", file=sys.stderr)
            return 130
        finally:
            backend.close()
    c = queue.counts()
    print(f"backfill on Ray done: {c['done']} done, {c['held']} held, {c['failed']} failed, {c['pending']} pending (backing off)")
    return 0
