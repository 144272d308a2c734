"""Publish, the last stage: what a photo's outcome puts in to-share and the queue, and what a removal takes out.

Order of operations for each safe copy, chosen so that a kill at any instant is harmless:
encode into a staging file on the same filesystem as to-share → fsync → ``os.replace`` into
``to-share/<source>/<path>`` → record the push → mark the row done. A kill before the rename
leaves only a staging file (swept at start); a kill after it but before the commit re-runs the
photo, and the rename simply replaces the output with an equivalent one: never a second copy,
never a partial file. Every writer goes through here: the plain worker, a Ray backfill, a
duplicate's copy, and a removal's deletion.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from fawkes_daemon.config import Config
from fawkes_daemon.pipeline.compute import Outcome
from fawkes_daemon.pipeline.intake import Duplicate, Fresh
from fawkes_daemon.pipeline.library import Library
from fawkes_daemon.queue import Job, Queue

log = logging.getLogger("fawkes.worker")


class UnsafeDestination(Exception):
    """The safe copy's place in to-share would lead outside to-share: never written."""


def current_umask() -> int:
    """The process umask (reading it means setting it; done once, at start, before any thread writes)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class Publisher:
    def __init__(
        self,
        config: Config,
        queue: Queue,
        src_path: Callable[[Job], Path],
        library: Library | None = None,
        on_published: Callable[[Path, str], None] | None = None,
    ) -> None:
        self.config = config
        self.queue = queue
        self.src_path = src_path  # a photo's source file, for the log and the errors
        self.library = library  # the daemon's people, told of every cloaked face it publishes
        self.on_published = on_published  # (path in to-share, its SHA-256): e.g. record a push
        self.umask = current_umask()
        config.to_share.mkdir(parents=True, exist_ok=True)
        config.staging_dir.mkdir(parents=True, exist_ok=True)  # after to-share: where it goes depends on to-share's filesystem
        self.share_root = Path(os.path.realpath(config.to_share))

    def sweep_staging(self) -> int:
        """Remove staging files a killed process left behind (they were never in to-share)."""
        n = 0
        for f in self.config.staging_dir.glob("*"):
            if f.is_file():
                f.unlink(missing_ok=True)
                n += 1
        return n

    # -- duplicates ----------------------------------------------------------------------------
    def duplicates(self, items: list[Fresh | Duplicate]) -> list[Fresh]:
        """Place the safe copy of every duplicate; returns the rest, to cloak (a duplicate that cannot be placed too)."""
        rest = []
        for entry in items:
            if isinstance(entry, Fresh):
                rest.append(entry)
                continue
            item = entry.item
            try:
                self._place(entry.safe_copy, item.dest, item.permissions)
            except Exception as e:  # the copy could not be placed: cloak it afresh instead
                log.warning("%s: reusing an identical safe copy failed (%s); cloaking it", self.src_path(item.job), e)
                rest.append(item)
                continue
            self._published(item.dest, entry.sha256)
            self.queue.finish(
                item.job.id, "done", content_hash=item.content_hash, output=str(item.dest), output_hash=entry.sha256, faces=None, error=None
            )
            log.info("%s: identical to an already cloaked photo; copied its safe copy", self.src_path(item.job))
        return rest

    # -- outcomes -------------------------------------------------------------------------------
    def batch_failed(self, items: list[Fresh], e: BaseException) -> None:
        log.error("cloaking batch failed: %s: %s", type(e).__name__, e, exc_info=True)
        for i in items:
            self.queue.retry_later(i.job.id, f"{self.src_path(i.job)}: cloaking failed ({type(e).__name__}: {e})", self.config.max_attempts)

    def publish(self, item: Fresh, res: Outcome, per: float) -> None:
        """A computed outcome (from this process or a Ray actor) into to-share and the queue."""
        src = self.src_path(item.job)
        if res.kind != "encoded":
            self._not_published(item, res, per, src)
            return
        assert res.data is not None
        try:
            self._place(res.data, item.dest, item.permissions)
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
        if self.library is not None and res.people:
            self.library.record(item.job.id, res.people)
        asked = item.job.mode or self.config.cloak.mode
        log.info(
            "%s: cloaked %d face(s)%s%s, face DSSIM ≤ %.4f (%s), SSIMULACRA2 ≥ %.1f, %.1f s",
            src,
            res.faces,
            f" ({res.skipped} too small to cloak, released by the user)" if res.skipped else "",
            f"; {res.weak} not carried across (weak_cloak: {self.config.weak_cloak}{f', made at {res.mode}' if res.mode and res.mode != asked else ''})"
            if res.weak
            else "",
            res.dssim,
            res.detail,
            res.ssimulacra2,
            per,
        )

    def _not_published(self, item: Fresh, res: Outcome, per: float, src: Path) -> None:
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

    # -- removals -------------------------------------------------------------------------------
    def withdraw(self, outputs: list[str]) -> None:
        """Delete these safe copies from to-share (``on_source_removed: delete``); anything outside it is left alone."""
        if self.config.on_source_removed != "delete":
            return
        for output in outputs:
            p = Path(output)
            if self.config.to_share in p.parents:
                p.unlink(missing_ok=True)

    # -- the write itself -------------------------------------------------------------------------
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

    def _place(self, data: bytes, dest: Path, source_mode: int) -> None:
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
