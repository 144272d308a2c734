"""Health checks run by `fawkes service install|status` and at daemon start.

Why: a service that starts fine but cannot read the camera roll looks healthy and
protects nothing. On macOS the usual cause is privacy permissions (TCC): a launchd
agent's interpreter needs Full Disk Access (or Files and Folders access) before it may
list ~/Pictures, and the only symptom is "Operation not permitted".
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from fawkes_daemon.config import Config


def _readable_dir(path: Path) -> str | None:
    if not path.exists():
        return "does not exist"
    if not path.is_dir():
        return "is not a folder"
    try:
        with os.scandir(path) as it:
            next(it, None)
    except PermissionError as e:
        why = f"cannot be read ({e.strerror or 'permission denied'})"
        if sys.platform == "darwin":
            why += (
                f"; macOS privacy settings: allow {sys.executable} under System Settings → Privacy & Security → "
                "Full Disk Access (or Files and Folders)"
            )
        return why
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    return None


def problems(config: Config) -> list[str]:
    """One line per problem, each naming the path or key; empty when healthy."""
    out = []
    for s in config.sources:
        why = _readable_dir(s.path)
        if why:
            out.append(f"source folder {s.path}: {why}")
    share_parent = config.to_share if config.to_share.exists() else config.to_share.parent
    if share_parent.exists() and not os.access(share_parent, os.W_OK | os.X_OK):
        out.append(f"to_share {config.to_share}: not writable")
    if config.push is not None and config.push.secret:
        from fawkes_daemon.secrets import SecretError, lookup

        try:
            if lookup(config.push.secret) is None:
                out.append(f"push.secret {config.push.secret!r}: not set; run `fawkes secret set {config.push.secret}`")
        except SecretError as e:
            out.append(f"push.secret: {e}")
    return out


FULL_BELOW = 1 << 20  # free bytes under which the state directory counts as full (SQLite cannot grow its WAL)


def state_dir_full(config: Config) -> str | None:
    """One line when the state directory's filesystem is (about) full; None otherwise or when it cannot be told.

    Why here and not in the daemon's heartbeat: on a full disk the heartbeat cannot be written
    either, so `fawkes status` and the page look for themselves.
    """
    import shutil

    path = config.state_dir if config.state_dir.exists() else config.state_dir.parent
    try:
        free = shutil.disk_usage(path).free
    except OSError:
        return None
    if free >= FULL_BELOW:
        return None
    return f"state directory full: {config.state_dir} has {free // 1024} KB free; new photos are not queued until space is freed (then the daemon goes on by itself)"
