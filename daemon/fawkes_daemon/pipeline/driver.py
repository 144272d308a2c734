"""The stages driven in order, for the daemon, `fawkes backfill` and the Ray backfill alike.

``pump()`` claims as many batches as the compute stage has room for; for each: intake reads
the files (``Fresh`` or ``Duplicate``), publish places the duplicates, compute takes the rest
one mode at a time, and publish writes every outcome that is back. Nothing returns to a stage
already left, and only the publish stage writes to to-share.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from fawkes_daemon.config import Config
from fawkes_daemon.pipeline.compute import Compute, Computed, LocalCompute, Progress
from fawkes_daemon.pipeline.intake import Intake
from fawkes_daemon.pipeline.library import Library
from fawkes_daemon.pipeline.publish import Publisher
from fawkes_daemon.queue import Queue

if TYPE_CHECKING:
    from fawkes_engine.pipeline import PhotoCloaker


class Pipeline:
    def __init__(
        self,
        config: Config,
        queue: Queue,
        on_published: Callable[[Path, str], None] | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> None:
        self.config = config
        self.queue = queue
        self.intake = Intake(config, queue)
        # the library's people (one direction per person): embeddings in the state directory only
        self.library = Library(queue.people) if config.cloak.people else None
        self.publisher = Publisher(config, queue, self.intake.src_path, self.library, on_published)
        local = LocalCompute(config, self.library)  # torch is imported on first use
        self.local: LocalCompute | None = local
        self.compute: Compute = local
        self.progress = Progress()
        self.on_progress = on_progress

    def compute_on_ray(self, address: str, actors: int | None = None) -> None:
        """From now on the compute stage is a pool of Ray actors (connects, and starts them)."""
        from fawkes_daemon.pipeline.compute_ray import RayCompute

        self.compute = RayCompute(self.config, self.queue, self.intake.src_path, address, actors)
        self.local = None

    def use(self, mode: str, photo_cloaker: PhotoCloaker) -> None:
        """Cloak ``mode`` with a photo cloaker already built (tests, a shared model); this process's compute only."""
        if self.local is None:
            raise RuntimeError("a Ray compute stage builds its cloakers on its actors")
        self.local.batches.use(mode, photo_cloaker)

    def pump(self, timeout: float = 1.0) -> int:
        """Claim, read and compute as far as there is room, and publish what is back; returns the photos finished."""
        finished = 0
        for _ in range(self.compute.room()):
            jobs = self.intake.claim(self.config.batch_size)
            if not jobs:
                break
            self.progress.total += len(jobs)
            fresh = self.publisher.duplicates(self.intake.read(jobs, decode=self.compute.decodes))
            finished += len(jobs) - len(fresh)  # failed to read, superseded, or copied from identical content
            for mode in dict.fromkeys(i.job.mode for i in fresh):  # one optimization batch per mode, in queue order
                self.compute.submit([i for i in fresh if i.job.mode == mode], mode)
                finished += self._publish(self.compute.collect(0.0))
        if self.compute.busy():
            finished += self._publish(self.compute.collect(timeout))
        self.progress.finished += finished
        if finished and self.on_progress:
            self.on_progress(self.progress)
        self.compute.report(self.progress)
        return finished

    def run_batch(self) -> int:
        """One pump; 0 when there was nothing to do."""
        return self.pump()

    def drain(self) -> None:
        """Until nothing is pending (now due) and nothing is in flight."""
        while True:
            self.pump()
            if not self.compute.busy() and not self.queue.due_pending():
                return

    def close(self) -> None:
        self.compute.close()

    def _publish(self, batches: list[Computed]) -> int:
        n = 0
        for b in batches:
            n += len(b.items)
            if b.outcomes is None:
                self.publisher.batch_failed(b.items, b.error or RuntimeError("no outcome"))
                continue
            for item, res in zip(b.items, b.outcomes):
                self.publisher.publish(item, res, b.seconds)
        return n
