"""Derived model files (fp32 / exported ONNX), built on first use into the user's cache.

Why a cache: conversion takes seconds and needs the source packages' files, which never
change for a given hash. Files are keyed by the source file's SHA-256, written atomically,
and rebuilt when missing or unreadable, so a crash mid-write or a corrupted cache never
breaks cloaking.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import onnx
import platformdirs


def cache_dir() -> Path:
    """``$FAWKES_CACHE_DIR`` or the platform cache directory (XDG on Linux, ~/Library/Caches on macOS)."""
    override = os.environ.get("FAWKES_CACHE_DIR")
    base = Path(override) if override else Path(platformdirs.user_cache_dir("fawkes-sync"))
    path = base / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def onnx_is_valid(path: Path) -> bool:
    try:
        onnx.checker.check_model(str(path))
        return True
    except Exception:
        return False


def cached_path(name: str, source_sha: str, suffix: str = ".onnx") -> Path:
    return cache_dir() / f"{name}-{source_sha[:16]}{suffix}"


def _record(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def verified(target: Path) -> bool:
    """The file is there, is the one this cache built (its SHA-256 as recorded then) and passes the ONNX checker.

    Why the record: sign-flipped weights pass the checker, and cloaks made with them were ten
    times weaker against the real model; a file that is not the one built is rebuilt.
    """
    try:
        recorded = _record(target).read_text().strip()
    except OSError:
        return False
    return target.exists() and sha256_file(target) == recorded and onnx_is_valid(target)


def build_cached(name: str, source_sha: str, build: Callable[[Path], None]) -> Path:
    """Return the cached derived file, building it with ``build(tmp_path)`` if missing, corrupt or changed since built."""
    target = cached_path(name, source_sha)
    if verified(target):
        return target
    if target.exists():
        import logging

        logging.getLogger(__name__).warning("%s: not the file this cache built (or its record is missing); rebuilding it", target)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}-", suffix=".onnx.tmp", dir=target.parent)
    os.close(fd)
    try:
        build(Path(tmp))
        if not onnx_is_valid(Path(tmp)):
            raise RuntimeError(f"built model {name} failed the ONNX checker")
        record = _record(target).with_suffix(".tmp")
        record.write_text(sha256_file(tmp) + "\n")
        os.replace(tmp, target)
        os.replace(record, _record(target))
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def is_cached(name: str, source_sha: str) -> bool:
    return verified(cached_path(name, source_sha))
