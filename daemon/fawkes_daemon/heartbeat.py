"""The state files a running process rewrites (the daemon's heartbeat, a Ray backfill's progress), and the one rule
that decides from them whether that process still runs.

Why one rule: ``fawkes status`` and the web page must never disagree on "running". A state file
counts while its process exists and, when a staleness limit is given, while it is younger than
that (a process that hangs stops rewriting it).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

STALE_AFTER = 60.0  # the daemon rewrites its heartbeat every 10 s


def write_state(path: Path, data: dict) -> None:
    """Replace the file atomically: a reader never sees half of it. Raises OSError."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    return True


def read_state(path: Path, stale_after: float | None = STALE_AFTER) -> tuple[dict | None, bool]:
    """(the file's content or None, whether its process runs): alive, and fresh when ``stale_after`` is given."""
    try:
        state = json.loads(path.read_text())
        pid = int(state["pid"])
        updated = float(state.get("updated", 0.0))
    except (OSError, ValueError, KeyError, TypeError):
        return None, False
    fresh = stale_after is None or time.time() - updated < stale_after
    return state, fresh and _exists(pid)
