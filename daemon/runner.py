"""`fawkes run`: the foreground daemon loop (systemd and launchd run exactly this).

Threads: watchdog observers feed the stability gate; an APScheduler 3 background
scheduler promotes stable candidates (every second), rescans (``rescan_interval``) and
restarts dead observers; the main thread runs the worker. SIGTERM/SIGINT set a stop flag:
the batch in hand is finished, then everything stops; a batch cut short by SIGKILL is
re-queued at the next start.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler

from daemon.config import Config
from daemon.queue import Queue
from daemon.watch import StabilityGate, Watcher
from daemon.worker import Worker

log = logging.getLogger("fawkes.daemon")


class Daemon:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.queue = Queue(config.db_path)
        self.gate = StabilityGate(config, self.queue)
        self.worker = Worker(config, self.queue)
        self.watcher = Watcher(config, self.queue, self.gate, on_removed=self._source_removed)
        self.stop_event = threading.Event()
        self.scheduler = BackgroundScheduler(job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60})

    def _source_removed(self, source, path: Path) -> None:
        if self.config.on_source_removed != "delete":
            return  # default: the safe copy stays (the user may be freeing phone space)
        try:
            rel = path.relative_to(source.path).as_posix()
        except ValueError:
            return
        self.worker.remove_output(source.label, rel)

    def _rescan(self) -> None:
        n = self.watcher.rescan()
        if n:
            log.info("rescan offered %d file(s)", n)

    def start(self) -> None:
        n = self.queue.requeue_interrupted()
        swept = self.worker.sweep_staging()
        if n or swept:
            log.info("re-queued %d interrupted file(s); removed %d stale staging file(s)", n, swept)
        self.watcher.start()
        self.scheduler.add_job(self.gate.check, "interval", seconds=1, id="gate")
        self.scheduler.add_job(self._rescan, "interval", seconds=self.config.rescan_interval, id="rescan")
        self.scheduler.add_job(self.watcher.ensure_alive, "interval", seconds=10, id="observers")
        self.scheduler.start()
        self._rescan()  # catch up with whatever arrived while we were down

    def run_forever(self) -> None:
        self.start()
        log.info("watching %s → %s", ", ".join(str(s.path) for s in self.config.sources), self.config.to_share)
        try:
            while not self.stop_event.is_set():
                done = self.worker.run_batch()
                if not done:
                    self.gate.wake.wait(timeout=1.0)
                    self.gate.wake.clear()
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        try:
            self.scheduler.shutdown(wait=False)
        except Exception:
            pass
        self.watcher.stop()
        self.queue.requeue_interrupted()
        self.queue.close()
        log.info("stopped")

    def install_signal_handlers(self) -> None:
        def handle(signum, _frame) -> None:
            log.info("received %s: finishing the current batch, then stopping", signal.Signals(signum).name)
            self.stop_event.set()
            self.gate.wake.set()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

