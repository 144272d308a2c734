"""`fawkes run`: the foreground daemon loop (systemd and launchd run exactly this).

Threads: watchdog observers feed the stability gate; the main thread runs the pipeline
(:mod:`fawkes_daemon.pipeline`); an optional push thread uploads safe copies. An APScheduler 3
background scheduler (4.x is alpha) runs the periodic jobs, each with ``coalesce`` and one
instance at a time:

- ``gate`` (1 s): promote files whose size and mtime have been stable;
- ``removals`` (1 s): forget files that vanished under a subtree a removal event named (``pipeline/removals.py``);
- ``rescan`` (``rescan_interval``): catch events the OS dropped, and forget every file that vanished;
- ``observers`` (10 s): restart a watcher that died (a source unmounted and came back);
- ``policy`` (30 s): active hours and battery; work waits, watching never does;
- ``retries`` (``schedule.retry_interval``): wake the worker and the pusher for backed-off work;
- ``status`` (10 s): a STATUS line to systemd (queue counts), shown by ``systemctl status``, and the
  heartbeat file the web page reads to tell whether the daemon runs;
- ``maintenance`` (daily at ``schedule.maintenance_at``): SQLite integrity check, optimize, WAL truncate.

SIGTERM/SIGINT set a stop flag: the batch in hand is finished, then everything stops; a
batch cut short by SIGKILL is re-queued at the next start.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from apscheduler.schedulers.background import BackgroundScheduler

from fawkes_daemon import health
from fawkes_daemon.config import Config
from fawkes_daemon.heartbeat import write_state
from fawkes_daemon.notify import notify
from fawkes_daemon.pipeline.driver import Pipeline
from fawkes_daemon.pipeline.removals import Removals
from fawkes_daemon.push import Pusher, make_remote
from fawkes_daemon.schedule import WorkPolicy
from fawkes_daemon.state_db import StateDB
from fawkes_daemon.watch import StabilityGate, Watcher

if TYPE_CHECKING:
    from fawkes_daemon.ui.server import UIServer

log = logging.getLogger("fawkes.daemon")


class Daemon:
    def __init__(self, config: Config, config_path: Path | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.state = StateDB(config.db_path)
        self.queue = self.state.queue
        self.gate = StabilityGate(config, self.queue)
        self.policy = WorkPolicy(config.schedule)
        self.pause_reason: str | None = self.policy.reason_to_wait()
        self.pusher: Pusher | None = None
        if config.push is not None:  # raises SecretError (named secret, the fix) before anything starts
            self.pusher = Pusher(
                config.push, config.to_share, self.queue, make_remote(config.push), may_run=lambda: self.pause_reason is None
            )
        self.pipeline = Pipeline(config, self.queue, on_published=self.pusher.record if self.pusher else None)
        self.removals = Removals(config, self.queue, self.pipeline.publisher)
        self.watcher = Watcher(config, self.queue, self.gate, on_removed=self.removals.suspect)
        self.stop_event = threading.Event()
        self.scheduler = BackgroundScheduler(job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60})
        self.started = time.time()
        self.ui: UIServer | None = None

    def _rescan(self) -> None:
        with self.gate.when_full_say_so():  # the next rescan tries again
            n = self.watcher.rescan()
            if n:
                log.info("rescan offered %d file(s)", n)
            self.removals.check_all()  # files that vanished: any name, any folder move, any downtime

    def _check_removals(self) -> None:
        with self.gate.when_full_say_so():  # the rescan after space is freed forgets them
            self.removals.check_suspects()

    def _update_policy(self) -> None:
        reason = self.policy.reason_to_wait()
        if reason != self.pause_reason:
            log.info("work %s", f"paused: {reason}" if reason else "resumed")
            self.pause_reason = reason
            self.gate.wake.set()
            if self.pusher:
                self.pusher.wake()

    def _retries(self) -> None:
        if self.queue.due_pending():
            self.gate.wake.set()
        if self.pusher:
            self.pusher.wake()

    def status_line(self) -> str:
        c = self.queue.counts()
        line = "queue: " + ", ".join(f"{v} {k}" for k, v in c.items())
        if self.pusher:
            p = self.queue.pushes.counts()
            line += f"; push: {p['pending']} pending, {p['done']} done"
        if self.pause_reason:
            line += f"; waiting: {self.pause_reason}"
        return line

    def _status(self) -> None:
        notify(f"STATUS={self.status_line()}")
        self._heartbeat()

    def _heartbeat(self) -> None:
        """Pid, start time and the current wait reason, replaced atomically: a reader never sees half a file."""
        path = self.config.heartbeat_path
        beat = {
            "pid": os.getpid(),
            "started": self.started,
            "updated": time.time(),
            "waiting": self.pause_reason,
            "ui": self.ui.base_url if self.ui is not None else None,  # never the token: that stays in its 0600 file
        }
        try:
            write_state(path, beat)
        except OSError as e:
            log.warning("heartbeat %s: %s", path, e.strerror or e)

    def _maintenance(self) -> None:
        info = self.queue.maintain()
        log.info("maintenance: %s", ", ".join(f"{k} {v}" for k, v in info.items()))
        if info.get("integrity") != "ok":
            log.error("state database integrity check failed: %s", info.get("integrity"))

    def start(self) -> None:
        for problem in health.problems(self.config):
            log.warning("health: %s", problem)
        if not self.config.cloak.people and (gone := self.state.people.forget_all()):
            log.info("people: false: deleted the %d stored face embedding(s) an earlier configuration kept", gone)
        n = self.queue.requeue_interrupted()
        swept = self.pipeline.publisher.sweep_staging()
        if n or swept:
            log.info("re-queued %d interrupted file(s); removed %d stale staging file(s)", n, swept)
        self.watcher.start()
        self.scheduler.add_job(self.gate.check, "interval", seconds=1, id="gate")
        self.scheduler.add_job(self._check_removals, "interval", seconds=1, id="removals")
        self.scheduler.add_job(self._rescan, "interval", seconds=self.config.rescan_interval, id="rescan")
        self.scheduler.add_job(self.watcher.ensure_alive, "interval", seconds=10, id="observers")
        self.scheduler.add_job(self._update_policy, "interval", seconds=30, id="policy")
        self.scheduler.add_job(self._retries, "interval", seconds=self.config.schedule.retry_interval, id="retries")
        self.scheduler.add_job(self._status, "interval", seconds=10, id="status")
        hh, mm = (int(x) for x in self.config.schedule.maintenance_at.split(":"))
        self.scheduler.add_job(self._maintenance, "cron", hour=hh, minute=mm, id="maintenance", misfire_grace_time=3600)
        self.scheduler.start()
        if self.pusher:
            self.pusher.start()
        if self.config.ui.enabled:
            from fawkes_daemon.ui.server import UIServer

            try:
                self.ui = UIServer(self.config, self.config_path)
                self.ui.start_thread()
                log.info("web page: %s (token in %s)", self.ui.base_url, self.ui.token_path)
            except OSError as e:  # the port is taken: the page is a convenience, cloaking goes on without it
                log.error("web page: cannot listen on %s:%d: %s", self.config.ui.host, self.config.ui.port, e.strerror or e)
        self._heartbeat()
        self._rescan()  # catch up with whatever arrived while we were down
        notify("READY=1", f"STATUS={self.status_line()}")

    def run_forever(self) -> None:
        self.start()
        log.info("watching %s → %s", ", ".join(str(s.path) for s in self.config.sources), self.config.to_share)
        if self.config.compute.ray:  # the backlog goes to a Ray cluster; this process stays the only writer
            self.pipeline.compute_on_ray(self.config.compute.ray)
        try:
            while not self.stop_event.is_set():
                done = 0 if self.pause_reason is not None else self.pipeline.pump()
                if self.pause_reason is None and self.pipeline.compute.busy():
                    continue  # pump waited for a result already
                if not done:
                    self.gate.wake.wait(timeout=1.0)
                    self.gate.wake.clear()
        finally:
            self.pipeline.close()
            self.shutdown()

    def shutdown(self) -> None:
        notify("STOPPING=1")
        if self.ui is not None:
            self.ui.stop()
        self.config.heartbeat_path.unlink(missing_ok=True)
        if self.pusher:
            self.pusher.stop()
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
