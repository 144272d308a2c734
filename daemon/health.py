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
