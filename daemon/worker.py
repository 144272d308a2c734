"""The worker: queue rows in, safe copies in to-share out.

Order of operations for each photo, chosen so that a kill at any instant is harmless:
read the source (never opened for writing) → cloak → encode into a staging file on the
same filesystem as to-share → fsync → ``os.replace`` into ``to-share/<source>/<path>`` →
mark the row done. A kill before the rename leaves only a staging file (swept at start);
a kill after it but before the commit re-runs the photo, and the rename simply replaces
the output with an equivalent one — never a second copy, never a partial file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from daemon.config import Config, SourceConfig
from daemon.queue import Job, Queue
from engine.photo_io import Photo, PhotoError, decode_photo, encode_photo, output_format

log = logging.getLogger("fawkes.worker")


class PermanentError(Exception):
    """A file that will never work (bad data, a symlink out of the source): fail without retrying."""


@dataclass
class Loaded:
    job: Job
    photo: Photo
    content_hash: str
    dest: Path


class Worker:
    def __init__(self, config: Config, queue: Queue, on_published: Callable[[Path, str], None] | None = None) -> None:
        self.config = config
        self.queue = queue
        self.on_published = on_published  # (path in to-share, its SHA-256): e.g. record a push
        self.sources = {s.label: s for s in config.sources}
        self._cloaker = None
        config.staging_dir.mkdir(parents=True, exist_ok=True)
        config.to_share.mkdir(parents=True, exist_ok=True)

    @property
    def cloaker(self):
        if self._cloaker is None:
            from engine.cloak import CloakOptions
            from engine.pipeline import PhotoCloaker

            c = self.config.cloak
            self._cloaker = PhotoCloaker(
                CloakOptions(
                    mode=c.mode, dssim_budget=c.dssim_budget, steps=c.steps, extend_steps=c.extend_steps, max_budget=c.max_budget, ssimulacra2_floor=c.ssimulacra2_floor, extractors=tuple(c.extractors), seed=c.seed, deterministic=c.deterministic, device=self.config.device,
                    target_mode=c.target_mode, stop_fraction=c.stop_fraction,
                )
            )
        return self._cloaker

    def sweep_staging(self) -> int:
        """Remove staging files a killed process left behind (they were never in to-share)."""
        n = 0
        for f in self.config.staging_dir.glob("*"):
            if f.is_file():
                f.unlink(missing_ok=True)
                n += 1
        return n

    # -- one batch ---------------------------------------------------------------------------
    def run_batch(self) -> int:
        jobs = self.queue.claim(self.config.batch_size)
        if not jobs:
            return 0
        loaded: list[Loaded] = []
        for job in jobs:
            try:
                item = self._load(job)
            except PermanentError as e:
                log.warning("%s", e)
                self.queue.finish(job.id, "failed", error=str(e))
                continue
            except Exception as e:  # transient (I/O): retry with backoff
                state = self.queue.retry_later(job.id, f"{self._src_path(job)}: {e}", self.config.max_attempts)
                log.warning("%s: %s (%s)", self._src_path(job), e, state)
                continue
            copied = self._reuse_identical(item)
            if not copied:
                loaded.append(item)
        if loaded:
            self._cloak_and_write(loaded)
        return len(jobs)

    def _src_path(self, job: Job) -> Path:
        return self.sources[job.source].path / job.relpath

    def _load(self, job: Job) -> Loaded:
        src_cfg: SourceConfig | None = self.sources.get(job.source)
        if src_cfg is None:
            raise PermanentError(f"{job.source}/{job.relpath}: source is no longer configured")
        path = src_cfg.path / job.relpath
        if path.is_symlink():
            target = path.resolve()
            root = src_cfg.path.resolve()
            if root not in target.parents:
                raise PermanentError(f"{path}: symlink points outside the source folder ({target}); not followed")
        if not path.exists():
            raise PermanentError(f"{path}: deleted before it was processed")
        if path.is_dir():
            raise PermanentError(f"{path}: is a directory, not a photo")
        try:
            with open(path, "rb") as f:  # read-only: originals are never opened for writing
                data = f.read()
        except PermissionError as e:
            raise PermanentError(f"{path}: cannot be read (permission denied)") from e
        except OSError as e:
            raise OSError(f"cannot be read ({e.strerror or e})") from e
        try:
            photo = decode_photo(data, path)
        except PhotoError as e:
            raise PermanentError(str(e)) from e
        digest = hashlib.sha256(data).hexdigest()
        dest = self.config.to_share / job.source / job.relpath
        return Loaded(job, photo, digest, dest)

    def _reuse_identical(self, item: Loaded) -> bool:
        """Identical content already cloaked: copy that output instead of cloaking again."""
        prev = self.queue.done_output_for_hash(item.content_hash)
        if not prev or not Path(prev).exists() or item.job.release:
            return False
        dest = item.dest.with_suffix(Path(prev).suffix)
        self._atomic_place(lambda tmp: shutil.copyfile(prev, tmp), dest)
        self._published(dest, hashlib.sha256(dest.read_bytes()).hexdigest())
        self.queue.finish(item.job.id, "done", content_hash=item.content_hash, output=str(dest), faces=None, error=None)
        log.info("%s: identical to an already cloaked photo; copied its safe copy", self._src_path(item.job))
        return True

    def _cloak_and_write(self, items: list[Loaded]) -> None:
        t0 = time.perf_counter()
        try:
            results = self.cloaker.cloak([i.photo for i in items])
        except Exception as e:  # a batch-level failure (e.g. out of memory): retry each later
            log.exception("cloaking batch failed")
            for i in items:
                self.queue.retry_later(i.job.id, f"{self._src_path(i.job)}: cloaking failed: {e}", self.config.max_attempts)
            return
        per = (time.perf_counter() - t0) / len(items)
        for item, res in zip(items, results):
            src = self._src_path(item.job)
            try:
                if res.faces and min(f.dssim for f in res.faces) <= 0.0:
                    # a face the optimizer left untouched must never be published as "cloaked"
                    state = self.queue.retry_later(item.job.id, f"{src}: a face could not be cloaked (no change within budget)", self.config.max_attempts)
                    log.warning("%s: a face could not be cloaked; %s", src, state)
                elif res.faces:
                    ext = Path(item.job.relpath).suffix or ".jpg"
                    dest = item.dest.with_suffix(ext)
                    data = encode_photo(res.photo, self.config.metadata, fmt=output_format(res.photo))  # type: ignore[arg-type]
                    self._atomic_place(lambda tmp: Path(tmp).write_bytes(data), dest)
                    self._published(dest, hashlib.sha256(data).hexdigest())
                    dssim = max(f.dssim for f in res.faces)
                    self.queue.finish(
                        item.job.id, "done", content_hash=item.content_hash, output=str(dest), faces=len(res.faces), dssim=dssim,
                        ssimulacra2=min(f.ssimulacra2 for f in res.faces), seconds=per, error=None,
                    )
                    worst = max(res.faces, key=lambda f: f.dssim)
                    log.info(
                        "%s: cloaked %d face(s), face DSSIM ≤ %.4f (worst scale: %d px wide; %s), SSIMULACRA2 ≥ %.1f, %.1f s",
                        src, len(res.faces), dssim, worst.binding_width,
                        ", ".join(f"{w} px {d:.4f}" for w, d in worst.dssim_scales.items()), min(f.ssimulacra2 for f in res.faces), per,
                    )
                elif self.config.no_face == "hold" and not item.job.release:
                    reason = "no face found; held (no_face: hold) until `fawkes release`"
                    if res.skipped:
                        reason = f"{len(res.skipped)} face(s) too small to cloak; held until `fawkes release`"
                    self.queue.finish(item.job.id, "held", content_hash=item.content_hash, faces=0, seconds=per, error=reason)
                    log.info("%s: %s", src, reason)
                else:
                    data = encode_photo(item.photo, self.config.metadata, fmt=output_format(item.photo))  # type: ignore[arg-type]
                    self._atomic_place(lambda tmp: Path(tmp).write_bytes(data), item.dest)
                    self._published(item.dest, hashlib.sha256(data).hexdigest())
                    self.queue.finish(item.job.id, "done", content_hash=item.content_hash, output=str(item.dest), faces=0, seconds=per, error=None)
                    log.info("%s: no face; passed through with metadata policy %s", src, self.config.metadata)
            except Exception as e:
                state = self.queue.retry_later(item.job.id, f"{src}: writing the safe copy failed: {e}", self.config.max_attempts)
                log.warning("%s: writing failed: %s (%s)", src, e, state)

    def _published(self, dest: Path, sha256: str) -> None:
        if self.on_published is not None:
            try:
                self.on_published(dest, sha256)
            except Exception:  # a push bookkeeping error must not fail the cloak that succeeded
                log.exception("%s: recording the push failed", dest)

    def _atomic_place(self, write, dest: Path) -> None:
        """Write via a staging file (same filesystem), fsync, then rename into to-share."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="out-", suffix=".part", dir=self.config.staging_dir)
        os.close(fd)
        try:
            write(tmp)
            os.chmod(tmp, 0o644)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def remove_output(self, source: str, relpath: str) -> None:
        for out in self.queue.outputs_for(source, relpath):
            p = Path(out)
            if self.config.to_share in p.parents:
                p.unlink(missing_ok=True)
