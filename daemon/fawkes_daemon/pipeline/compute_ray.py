"""The compute stage on a Ray cluster (`fawkes backfill --ray`, ``compute: {ray: ...}``); the daemon stays the single writer.

Actors each load the models once (and pin a GPU where the cluster has one); photos travel as
the bytes the intake stage read, and come back as encoded safe copies plus their report
(:class:`fawkes_daemon.pipeline.compute.Outcome`). Only this process touches the queue, staging
and to-share, through the same publish stage the plain worker uses, so every crash-safety
guarantee holds unchanged. A bounded number of batches is in flight. A batch whose actor
dies is sent again to a live actor (a fresh one replaces the dead): nothing is lost, and as a
batch is published only once, by this process, nothing is written twice.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fawkes_daemon.config import Config
from fawkes_daemon.heartbeat import write_state
from fawkes_daemon.pipeline.compute import BatchCloaker, Computed, Outcome, Progress
from fawkes_daemon.pipeline.decide import NoFacePolicy, WeakPolicy
from fawkes_daemon.pipeline.intake import Fresh
from fawkes_daemon.queue import Job, Queue
from fawkes_engine.photo_io import MetadataPolicy

log = logging.getLogger("fawkes.ray")
MAX_RESENDS = 3  # a batch that kills this many actors is given back to the queue's own backoff


class CloakActor:
    """One model-holding worker process (Ray makes it remote; plain Python here, so it can be tested)."""

    def __init__(
        self, cloak_json: str, device: str, metadata: MetadataPolicy, no_face: NoFacePolicy, threads: int, weak: WeakPolicy = "publish"
    ) -> None:
        import torch

        from fawkes_daemon.config import CloakConfig

        if threads > 0:
            torch.set_num_threads(threads)
        # the batch's people are grouped within the batch (no library store on an actor)
        self.batches = BatchCloaker(CloakConfig.model_validate_json(cloak_json).to_options(device), metadata, no_face, weak)

    def run(self, batch: list[tuple[str, bytes, bool]], mode: str | None) -> list[Outcome]:
        """Decode, cloak (one optimization batch, as the plain worker would), encode."""
        from pathlib import Path

        from fawkes_engine.photo_io import PhotoError, decode_photo

        results: list[Outcome | None] = []
        photos, releases = [], []
        for name, data, release in batch:
            try:
                photos.append(decode_photo(data, Path(name)))
                releases.append(release)
                results.append(None)
            except PhotoError as e:
                results.append(Outcome("bad", reason=str(e)))
        done = iter(self.batches.run(photos, releases, mode) if photos else [])
        return [r if r is not None else next(done) for r in results]


@dataclass
class InFlight:
    items: list[Fresh]
    actor: Any
    sent: float
    resends: int = 0


class RayCompute:
    """A pool of Ray actors with a bounded number of batches in flight (:class:`fawkes_daemon.pipeline.compute.Compute`)."""

    decodes = False  # the bytes travel; each actor decodes

    def __init__(self, config: Config, queue: Queue, src_path: Callable[[Job], Path], address: str, actors: int | None = None) -> None:
        import ray

        self.ray = ray
        self.config, self.queue, self.src_path = config, queue, src_path
        self.address = address
        self._connect()
        cpus = config.compute.cpus_per_actor
        gpus = 1.0 if config.compute.gpus and ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
        n = actors or config.compute.actors or max(1, int(ray.cluster_resources().get("CPU", 1) // cpus))
        self.remote_cls = ray.remote(num_cpus=cpus, num_gpus=gpus)(CloakActor)
        self.device = "cuda" if gpus else "cpu"
        self.actors = [self._new_actor() for _ in range(n)]
        self.limit = max(1, config.compute.in_flight or 2 * n)  # batches in flight: back-pressure
        self.inflight: dict[Any, InFlight] = {}
        log.info(
            "ray %s: %d actor(s), %s CPU each%s, up to %d batch(es) in flight", address, n, cpus, " and a GPU" if gpus else "", self.limit
        )

    def _connect(self) -> None:
        ray = self.ray
        if ray.is_initialized():
            return
        kw: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": False}
        if self.address == "local":  # a cluster of this machine alone, started and stopped with us
            ray.init(num_cpus=self.config.compute.local_cpus or None, **kw)
            return
        try:
            ray.init(address=self.address, **kw)
        except ConnectionError:
            if self.address != "auto":
                raise
            log.info("ray: no running cluster on this machine; starting a local one")
            ray.init(num_cpus=self.config.compute.local_cpus or None, **kw)

    def _new_actor(self) -> Any:
        c = self.config
        return self.remote_cls.remote(
            c.cloak.model_dump_json(), self.device, c.metadata, c.no_face, int(c.compute.cpus_per_actor), c.weak_cloak
        )

    def _idle_actor(self) -> Any:
        """The actor with the fewest batches in flight (ties: the first)."""
        load = {id(a): 0 for a in self.actors}
        for f in self.inflight.values():
            if id(f.actor) in load:
                load[id(f.actor)] += 1
        return min(self.actors, key=lambda a: load[id(a)])

    def room(self) -> int:
        return max(0, self.limit - len(self.inflight))

    def busy(self) -> bool:
        return bool(self.inflight)

    def submit(self, items: list[Fresh], mode: str | None, resends: int = 0) -> None:
        actor = self._idle_actor()
        batch = [(str(self.src_path(i.job)), i.data, i.job.release) for i in items]
        ref = actor.run.remote(batch, mode)
        self.inflight[ref] = InFlight(items, actor, time.perf_counter(), resends)

    def collect(self, timeout: float) -> list[Computed]:
        """The batches back within ``timeout`` s (at least one if any is in flight and one comes back in time)."""
        if not self.inflight:
            return []
        ready, _ = self.ray.wait(list(self.inflight), num_returns=1, timeout=timeout)
        out = []
        for ref in ready:
            f = self.inflight.pop(ref)
            try:
                results: list[Outcome] = self.ray.get(ref)
            except (self.ray.exceptions.RayActorError, self.ray.exceptions.WorkerCrashedError) as e:
                if (lost := self._actor_died(f, e)) is not None:
                    out.append(lost)
                continue
            except Exception as e:  # the batch itself failed (out of memory, a model error): the queue's backoff
                out.append(Computed(f.items, None, e))
                continue
            out.append(Computed(f.items, results, None, (time.perf_counter() - f.sent) / len(f.items)))
        return out

    def _actor_died(self, f: InFlight, e: BaseException) -> Computed | None:
        """Send the batch again to a live actor, or give it back (as failed) after ``MAX_RESENDS`` deaths."""
        names = ", ".join(i.job.relpath for i in f.items)
        if f.actor in self.actors:  # its other batches fail on their own and are sent again the same way
            self.actors[self.actors.index(f.actor)] = self._new_actor()
        if f.resends + 1 >= MAX_RESENDS:
            log.error("ray: a batch (%s) lost %d actors; back to the queue", names, MAX_RESENDS)
            return Computed(f.items, None, e)
        log.warning("ray: an actor died with a batch (%s) in hand; sending it to another (%s)", names, type(e).__name__)
        self.submit(f.items, f.items[0].job.mode, f.resends + 1)
        return None

    def report(self, p: Progress) -> None:
        """The backfill's state file, which `fawkes status` and the page read."""
        state = {
            "pid": os.getpid(),
            "address": self.address,
            "actors": len(self.actors),
            "in_flight": sum(len(f.items) for f in self.inflight.values()),
            "finished": p.finished,
            "claimed": p.total,
            "started": p.started,
            "updated": time.time(),
        }
        write_state(self.config.backfill_state_path, state)

    def close(self) -> None:
        self.config.backfill_state_path.unlink(missing_ok=True)
        for ref in list(self.inflight):
            self.ray.cancel(ref, force=True)
        self.inflight.clear()
        self.queue.requeue_interrupted()  # what was in flight goes back to pending
        if self.address in ("local", "auto") and self.ray.is_initialized():
            self.ray.shutdown()
