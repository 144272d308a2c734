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
        import ray  # noqa: F401
    except ImportError:
        print("fawkes: Ray is not installed: pip install 'fawkes-sync[ray]'", file=sys.stderr)
        return 2
    from fawkes_daemon.pipeline.driver import Pipeline

    journald_logging(verbose)
    logging.getLogger("fawkes.worker").setLevel(logging.WARNING if not verbose else logging.INFO)
    queue.requeue_interrupted()
    pending = queue.due_pending()
    columns = [TextColumn("cloaking on Ray"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task("ray", total=pending)
        pipeline = Pipeline(cfg, queue, on_progress=lambda p: bar.update(task, completed=p.finished))
        pipeline.publisher.sweep_staging()
        pipeline.compute_on_ray(address, actors)
        try:
            pipeline.drain()
        except KeyboardInterrupt:
            print("interrupted: what was in flight goes back to the queue", file=sys.stderr)
            return 130
        finally:
            pipeline.close()
    c = queue.counts()
    print(f"backfill on Ray done: {c['done']} done, {c['held']} held, {c['failed']} failed, {c['pending']} pending (backing off)")
    return 0
