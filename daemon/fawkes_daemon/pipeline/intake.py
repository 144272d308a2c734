"""Intake, the first stage: claim queue rows and read their files, each into what the next stage needs.

A claimed row becomes one of:

- :class:`Fresh`: the file's bytes, read through the descriptor that was checked (never a link,
  never a FIFO, never over ``max_file_mb``), decoded unless the bytes travel to another machine;
- :class:`Duplicate`: content already cloaked, with the safe copy it got (the publish stage places it);
- nothing, recorded in the queue: a file that will never work fails, a file that changed after it
  was queued is superseded by its new version, a transient read error backs off.

Intake writes nothing to to-share. Files that vanished from their source arrive through
:mod:`fawkes_daemon.pipeline.removals`, which hands them to the publish stage too.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from fawkes_daemon.config import Config, SourceConfig
from fawkes_daemon.queue import Job, Queue
from fawkes_daemon.source_files import Changed, Refused, open_queued
from fawkes_engine.photo_io import Photo, PhotoError, decode_photo, sniff_format

log = logging.getLogger("fawkes.worker")


class Superseded(Exception):
    """The file changed after this version was queued: the new version has its own row, this one is dropped."""


class PermanentError(Exception):
    """A file that will never work (bad data, a symlink out of the source): fail without retrying."""


@dataclass
class Fresh:
    """A photo read from its source, to be cloaked."""

    job: Job
    photo: Photo | None  # None when the bytes travel to another machine to be decoded there (Ray)
    content_hash: str
    dest: Path  # its safe copy's place in to-share
    permissions: int  # the source's permission bits: the safe copy is no more readable than the original
    data: bytes = b""  # the file as read (kept only for a remote backend)


@dataclass
class Duplicate:
    """A photo whose content was already cloaked: its safe copy is that one's bytes."""

    item: Fresh
    safe_copy: bytes
    sha256: str


class Intake:
    def __init__(self, config: Config, queue: Queue) -> None:
        self.config = config
        self.queue = queue
        self.sources = {s.label: s for s in config.sources}

    def claim(self, n: int) -> list[Job]:
        return self.queue.claim(n)

    def src_path(self, job: Job) -> Path:
        return self.sources[job.source].path / job.relpath

    def read(self, jobs: list[Job], decode: bool = True) -> list[Fresh | Duplicate]:
        """Read the claimed files, in queue order; record the ones that cannot be read (see the module's docstring)."""
        out: list[Fresh | Duplicate] = []
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
            out.append(self._already_cloaked(item) or item)
        return out

    def _dest(self, job: Job) -> Path:
        """The safe copy's path: to-share/<source>/<relpath>, keeping the source's own suffix."""
        rel = Path(job.relpath)
        return self.config.to_share / job.source / (rel if rel.suffix else rel.with_suffix(".jpg"))

    def _load(self, job: Job, decode: bool = True) -> Fresh:
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
        data, permissions = self._read_regular(path, fd, st)
        if not decode:
            return Fresh(job, None, hashlib.sha256(data).hexdigest(), self._dest(job), permissions, data)
        try:
            photo = decode_photo(data, path)
        except PhotoError as e:
            raise PermanentError(str(e)) from e
        if photo.dropped:  # also in the photo's report (fawkes_daemon.pipeline.compute.face_report)
            log.info("%s: %s", path, photo.dropped)
        return Fresh(job, photo, hashlib.sha256(data).hexdigest(), self._dest(job), permissions)

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

    def _already_cloaked(self, item: Fresh) -> Duplicate | None:
        """Identical content already cloaked: that safe copy, if it still holds exactly the bytes written for it.

        Its path may since hold the cloak of a newer version of its own source, so the bytes read
        are hashed, and those same bytes are what the publish stage writes.
        """
        if item.job.release or item.job.mode:  # the user asked for a new cloak of this very file
            return None
        for prev, prev_hash in self.queue.done_outputs_for_hash(item.content_hash):
            try:
                data = Path(prev).read_bytes()
            except OSError:
                continue
            if hashlib.sha256(data).hexdigest() == prev_hash:
                return Duplicate(item, data, prev_hash)
        return None
