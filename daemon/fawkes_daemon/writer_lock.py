"""One writer per state directory: the daemon or a Ray backfill, never both.

Why: the writer re-queues rows it finds ``working`` at start; a second writer would take
back the rows the first is cloaking. An advisory ``flock`` on ``<state_dir>/writer.lock`` is
released by the kernel when the process dies, however it dies, so a SIGKILL never leaves a
stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class WriterBusy(Exception):
    """Another process writes this state directory; ``str()`` says which."""


def hold_writer_lock(state_dir: Path, what: str) -> int:
    """Take the lock (kept until the process exits) and return its descriptor."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / "writer.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise WriterBusy(f"{holder} is already writing {state_dir}; stop it first") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{what} (pid {os.getpid()})".encode(), 0)
    return fd
