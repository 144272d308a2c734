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
import stat
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fawkes_daemon.config import Config, SourceConfig
from fawkes_daemon.outcome import BatchCloaker, Outcome
from fawkes_daemon.people import PeopleStore
from fawkes_daemon.queue import Job, Queue
from fawkes_daemon.source_files import Changed, Refused, open_queued
from fawkes_engine.people import PersonDirectory
from fawkes_engine.photo_io import Photo, PhotoError, decode_photo, sniff_format

log = logging.getLogger("fawkes.worker")


class Superseded(Exception):
    """The file changed after this version was queued: the new version has its own row, this one is dropped."""


class PermanentError(Exception):
    """A file that will never work (bad data, a symlink out of the source): fail without retrying."""


class UnsafeDestination(Exception):
    """The safe copy's place in to-share would lead outside to-share: never written."""


@dataclass
class Loaded:
    job: Job
    photo: Photo | None  # None when the bytes travel to another machine to be decoded there (Ray)
    content_hash: str
    dest: Path
    mode: int  # the source's permission bits: the safe copy is no more readable than the original
    data: bytes = b""  # the file as read (kept only for a remote backend)


def mode_asked(item: Loaded, config: Config) -> str:
    return item.job.mode or config.cloak.mode


def current_umask() -> int:
    """The process umask (reading it means setting it; done once, at start, before any thread writes)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class Worker:
    def __init__(self, config: Config, queue: Queue, on_published: Callable[[Path, str], None] | None = None) -> None:
        self.config = config
        self.queue = queue
        self.on_published = on_published  # (path in to-share, its SHA-256): e.g. record a push
        self.sources = {s.label: s for s in config.sources}
        c = config
        self.batches = BatchCloaker(c.cloak, c.device, c.metadata, c.no_face, c.weak_cloak)  # torch is imported on first use
        self.umask = current_umask()
        config.to_share.mkdir(parents=True, exist_ok=True)
        config.staging_dir.mkdir(parents=True, exist_ok=True)  # after to-share: where it goes depends on to-share's filesystem
        self.share_root = Path(os.path.realpath(config.to_share))
        # the library's people (one direction per person): embeddings in the state directory only
        self.people_store = PeopleStore(queue.db, queue.lock) if config.cloak.people else None
        self._people: PersonDirectory | None = None
        self._people_faces = 0

    def people(self) -> PersonDirectory | None:
        """The person directory, loaded once and again whenever faces were deleted from the store."""
        if self.people_store is None:
            return None
        stored = self.people_store.face_count()
        if self._people is None or stored < self._people_faces:
            self._people = self.people_store.directory()
        self._people_faces = stored
        return self._people

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
        loaded = self.publish_duplicates(self.load_batch(jobs))
        for mode in dict.fromkeys(i.job.mode for i in loaded):  # one optimization batch per mode, in queue order
            self._cloak_and_write([i for i in loaded if i.job.mode == mode])
        return len(jobs)

    def load_batch(self, jobs: list[Job], decode: bool = True) -> list[Loaded]:
        """Read the claimed files; fail or back off the ones that cannot be read. Writes nothing to to-share.

        What is left is in queue order: the same composition whatever backend cloaks it.
        """
        loaded: list[Loaded] = []
        for job in jobs:
            try:
                item = self._load(job, decode)
            except Superseded as e:
                log.info("%s", e)
                continue
            except PermanentError as e:
                log.warning("%s", e)
                self.queue.finish(job.id, "failed", error=str(e))
                continue
            except Exception as e:  # transient (I/O): retry with backoff
                state = self.queue.retry_later(job.id, f"{self.src_path(job)}: {e}", self.config.max_attempts)
                log.warning("%s: %s (%s)", self.src_path(job), e, state)
                continue
            loaded.append(item)
        return loaded

    def publish_duplicates(self, loaded: list[Loaded]) -> list[Loaded]:
        """The publish stage for content already cloaked: place that safe copy; returns the rest, to cloak."""
        rest = []
        for item in loaded:
            try:
                copied = self._reuse_identical(item)
            except Exception as e:  # the copy could not be placed: cloak it afresh instead
                log.warning("%s: reusing an identical safe copy failed (%s); cloaking it", self.src_path(item.job), e)
                copied = False
            if not copied:
                rest.append(item)
        return rest

    def src_path(self, job: Job) -> Path:
        return self.sources[job.source].path / job.relpath

    def _dest(self, job: Job) -> Path:
        """The safe copy's path: to-share/<source>/<relpath>, keeping the source's own suffix."""
        rel = Path(job.relpath)
        return self.config.to_share / job.source / (rel if rel.suffix else rel.with_suffix(".jpg"))

    def _load(self, job: Job, decode: bool = True) -> Loaded:
        src_cfg: SourceConfig | None = self.sources.get(job.source)
        if src_cfg is None:
            raise PermanentError(f"{job.source}/{job.relpath}: source is no longer configured")
        path = src_cfg.path / job.relpath
        try:
            fd, st = open_queued(src_cfg.path, job.relpath, job.size, job.mtime_ns)
        except Changed as e:
            # the new version is its own row, decided afresh; this one was never published and is not a failure
            self.queue.supersede(job.id, job.source, job.relpath, e.size, e.mtime_ns)
            raise Superseded(str(e)) from e
        except Refused as e:
            raise PermanentError(str(e)) from e
        except FileNotFoundError as e:
            raise PermanentError(f"{path}: deleted before it was processed") from e
        except PermissionError as e:
            raise PermanentError(f"{path}: cannot be read (permission denied)") from e
        except OSError as e:
            raise OSError(f"cannot be read ({e.strerror or e})") from e
        data, mode = self._read_regular(path, fd, st)
        if not decode:
            return Loaded(job, None, hashlib.sha256(data).hexdigest(), self._dest(job), mode, data)
        try:
            photo = decode_photo(data, path)
        except PhotoError as e:
            raise PermanentError(str(e)) from e
        if photo.dropped:  # also in the photo's report (fawkes_daemon.outcome.face_report)
            log.info("%s: %s", path, photo.dropped)
        return Loaded(job, photo, hashlib.sha256(data).hexdigest(), self._dest(job), mode)

    def _read_regular(self, path: Path, fd: int, st: os.stat_result) -> tuple[bytes, int]:
        """Read the opened file (``source_files.open_queued``), refusing anything but a regular file before reading a byte.

        A FIFO or device named like a photo was opened non-blocking and is refused here; the size
        and the header are checked before the body is read, so a huge non-photo never reaches memory.
        """
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            if stat.S_ISDIR(st.st_mode):
                raise PermanentError(f"{path}: is a directory, not a photo")
            raise PermanentError(f"{path}: is not a regular file (a FIFO, socket or device); not read")
        with os.fdopen(fd, "rb", buffering=0) as f:
            limit = int(self.config.max_file_mb * 1024 * 1024)
            if st.st_size > limit:
                raise PermanentError(f"{path}: is {st.st_size / 2**20:.0f} MB, over the {self.config.max_file_mb:g} MB limit (max_file_mb)")
            if st.st_size == 0:
                raise PermanentError(f"{path}: is empty (0 bytes)")
            try:
                head = f.read(32)
                if sniff_format(head) is None:
                    raise PermanentError(f"{path}: is not a supported image (unrecognized header)")
                rest = f.read(limit + 1 - len(head))
            except OSError as e:
                raise OSError(f"cannot be read ({e.strerror or e})") from e
        data = head + rest
        if len(data) > limit:  # grew while being read
            raise PermanentError(f"{path}: is over the {self.config.max_file_mb:g} MB limit (max_file_mb)")
        return data, stat.S_IMODE(st.st_mode)

    def _reuse_identical(self, item: Loaded) -> bool:
        """Identical content already cloaked: copy that safe copy instead of cloaking again.

        Only a file that still holds exactly the bytes written for this content is copied
        (its path may since hold the cloak of a newer version of its own source): the bytes
        read are hashed, and those same bytes are what is written.
        """
        if item.job.release or item.job.mode:  # the user asked for a new cloak of this very file
            return False
        for prev, prev_hash in self.queue.done_outputs_for_hash(item.content_hash):
            try:
                data = Path(prev).read_bytes()
            except OSError:
                continue
            if hashlib.sha256(data).hexdigest() != prev_hash:
                continue
            self._atomic_place(data, item.dest, item.mode)
            self._published(item.dest, prev_hash)
            self.queue.finish(
                item.job.id, "done", content_hash=item.content_hash, output=str(item.dest), output_hash=prev_hash, faces=None, error=None
            )
            log.info("%s: identical to an already cloaked photo; copied its safe copy", self.src_path(item.job))
            return True
        return False

    def _cloak_and_write(self, items: list[Loaded]) -> None:
        t0 = time.perf_counter()
        try:
            photos = [i.photo for i in items if i.photo is not None]
            results = self.batches.run(photos, [i.job.release for i in items], items[0].job.mode, self.people())
        except Exception as e:  # a batch-level failure (e.g. out of memory): retry each later
            self.batch_failed(items, e)
            return
        per = (time.perf_counter() - t0) / len(items)
        for item, res in zip(items, results):
            self.publish(item, res, per)

    def batch_failed(self, items: list[Loaded], e: BaseException) -> None:
        log.error("cloaking batch failed: %s: %s", type(e).__name__, e, exc_info=True)
        for i in items:
            self.queue.retry_later(i.job.id, f"{self.src_path(i.job)}: cloaking failed ({type(e).__name__}: {e})", self.config.max_attempts)

    def publish(self, item: Loaded, res: Outcome, per: float) -> None:
        """The writing half: a computed outcome (from this process or a Ray actor) into to-share and the queue."""
        src = self.src_path(item.job)
        if res.kind != "encoded":
            self._not_published(item, res, per, src)
            return
        assert res.data is not None
        try:
            self._atomic_place(res.data, item.dest, item.mode)
        except UnsafeDestination as e:
            self.queue.finish(item.job.id, "failed", content_hash=item.content_hash, error=f"{src}: {e}")
            log.error("%s: %s", src, e)
            return
        except OSError as e:  # disk full, to-share unmounted: transient
            state = self.queue.retry_later(item.job.id, f"{src}: writing the safe copy failed: {e}", self.config.max_attempts)
            log.warning("%s: writing failed: %s (%s)", src, e, state)
            return
        digest = hashlib.sha256(res.data).hexdigest()
        self._published(item.dest, digest)
        common = {
            "content_hash": item.content_hash,
            "output": str(item.dest),
            "output_hash": digest,
            "seconds": per,
            "error": None,
            "report": res.report,
        }
        if not res.faces:
            self.queue.finish(item.job.id, "done", faces=0, skipped=0, **common)
            log.info("%s: no face; passed through with metadata policy %s", src, self.config.metadata)
            return
        self.queue.finish(item.job.id, "done", faces=res.faces, skipped=res.skipped, dssim=res.dssim, ssimulacra2=res.ssimulacra2, **common)
        if self.people_store is not None and res.people:
            self.people_store.record(item.job.id, res.people)
            self._people_faces += len(res.people)
        log.info(
            "%s: cloaked %d face(s)%s%s, face DSSIM ≤ %.4f (%s), SSIMULACRA2 ≥ %.1f, %.1f s",
            src,
            res.faces,
            f" ({res.skipped} too small to cloak, released by the user)" if res.skipped else "",
            f"; {res.weak} not carried across (weak_cloak: {self.config.weak_cloak}{f', made at {res.mode}' if res.mode and res.mode != mode_asked(item, self.config) else ''})"
            if res.weak
            else "",
            res.dssim,
            res.detail,
            res.ssimulacra2,
            per,
        )

    def _not_published(self, item: Loaded, res: Outcome, per: float, src: Path) -> None:
        """A held photo, a face that would not change (retried later), or a photo that failed."""
        if res.kind == "held":
            self.queue.finish(
                item.job.id,
                "held",
                content_hash=item.content_hash,
                faces=res.faces,
                skipped=res.skipped,
                seconds=per,
                error=res.reason,
                report=res.report,
            )
            log.info("%s: %s", src, res.reason)
        elif res.kind == "unchanged":
            state = self.queue.retry_later(item.job.id, f"{src}: {res.reason}", self.config.max_attempts)
            log.warning("%s: a face could not be cloaked; %s", src, state)
        else:
            reason = res.reason if res.kind == "bad" else f"{src}: {res.reason}"
            self.queue.finish(item.job.id, "failed", content_hash=item.content_hash, error=reason)
            log.warning("%s", reason)

    def _published(self, dest: Path, sha256: str) -> None:
        if self.on_published is not None:
            try:
                self.on_published(dest, sha256)
            except Exception:  # a push bookkeeping error must not fail the cloak that succeeded
                log.exception("%s: recording the push failed", dest)

    def _make_parents(self, dest: Path) -> None:
        """Create dest's folders inside to-share one by one, refusing any that is a symlink.

        A link inside to-share (``ln -s /elsewhere to-share/camera/sub``) would make the
        daemon write outside it; such a destination is refused, never followed.
        """
        try:
            rel = dest.parent.relative_to(self.config.to_share)
        except ValueError as e:
            raise UnsafeDestination(f"the safe copy's path {dest} is outside to-share") from e
        current = self.config.to_share
        for part in rel.parts:
            current = current / part
            try:
                os.mkdir(current)
            except FileExistsError:
                pass
            if current.is_symlink() or not current.is_dir():
                raise UnsafeDestination(f"{current} in to-share is a symlink or not a folder; refusing to write through it")
        real = Path(os.path.realpath(dest.parent))
        if real != self.share_root and self.share_root not in real.parents:
            raise UnsafeDestination(f"the safe copy's folder resolves outside to-share ({real})")

    def _atomic_place(self, data: bytes, dest: Path, source_mode: int) -> None:
        """Write via a staging file (same filesystem), fsync, then rename into to-share.

        The copy gets the source's read and write bits, less the umask: a private original
        stays private.
        """
        self._make_parents(dest)
        if dest.is_symlink():
            dest.unlink()  # replaced by the rename anyway; never written through
        fd, tmp = tempfile.mkstemp(prefix="out-", suffix=".part", dir=self.config.staging_dir)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fchmod(f.fileno(), source_mode & 0o666 & ~self.umask)
                os.fsync(f.fileno())
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
