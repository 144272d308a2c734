"""Files that are never photos to cloak: sync tools' temporary and metadata files, sidecars.

Sync clients write a temporary name and rename it into place; cloaking the temporary
would cloak half a photo. Patterns are matched on the file name and on every folder of the
relative path.
"""

from __future__ import annotations

import fnmatch
from pathlib import PurePath

IGNORED_NAMES = [
    ".syncthing.*.tmp",
    "~syncthing~*.tmp",  # Syncthing
    ".~*",
    ".sync_*.db*",
    "*.part",  # Nextcloud / ownCloud
    "*.partial",  # rclone
    "*.crdownload",
    "*.download",
    "*.tmp",  # browsers and generic
    ".*.icloud",  # iCloud placeholders
    "._*",
    ".DS_Store",
    "Thumbs.db",
    "desktop.ini",  # AppleDouble, Finder, Windows
    "*.json",  # Google Takeout sidecars
    ".fawkes-*",  # our own temporaries
]
IGNORED_DIRS = [".stversions", ".stfolder", ".dropbox.cache", ".Trash*", "@eaDir", ".fawkes*"]


def is_ignored(relative: str | PurePath) -> bool:
    p = PurePath(relative)
    name = p.name
    if any(fnmatch.fnmatch(name, pat) for pat in IGNORED_NAMES):
        return True
    return any(fnmatch.fnmatch(part, pat) for part in p.parts[:-1] for pat in IGNORED_DIRS)


def matches(relative: str | PurePath, include: list[str], exclude: list[str]) -> bool:
    """Include/exclude globs, case-insensitive, tried on the name and on the relative path."""
    p = PurePath(relative)
    cands = [p.name.lower(), str(p).lower()]
    if include and not any(fnmatch.fnmatch(c, pat.lower()) for c in cands for pat in include):
        return False
    return not any(fnmatch.fnmatch(c, pat.lower()) for c in cands for pat in exclude)
