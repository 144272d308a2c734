"""Derived model files (fp32 / exported ONNX), built on first use into the user's cache.

Why a cache: conversion takes seconds and needs the source packages' files, which never
change for a given hash. Files are keyed by the source file's SHA-256, written atomically,
and rebuilt when missing or unreadable, so a crash mid-write or a corrupted cache never
breaks cloaking.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
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


@functools.cache
def pinned_digests() -> dict[str, str]:
    """The SHA-256 of every derived file as this package's build makes it (``engine/fawkes_engine/data/model_digests.json``,
    written by ``scripts/pin_model_digests.py``): the builds are byte-identical, so the expected bytes ship with the code."""
    if os.environ.get("FAWKES_NO_MODEL_PINS"):  # scripts/pin_model_digests.py measures the builds
        return {}
    path = Path(__file__).resolve().parents[1] / "data" / "model_digests.json"
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def verified(target: Path) -> bool:
    """The file is there, is the one this package builds (its pinned SHA-256; the one recorded when it was built
    for a file without a pin) and passes the ONNX checker.

    Why: sign-flipped weights pass the checker, and cloaks made with them were ten times weaker
    against the real model; a file that is not the one built is rebuilt. The record beside the
    file lives in the same writable folder, so rewriting both would pass it: where a digest is
    pinned in the package, only the pin counts.
    """
    if not target.exists():
        return False
    expected = pinned_digests().get(target.name)
    if expected is None:
        try:
            expected = _record(target).read_text().strip()
        except OSError:
            return False
    return sha256_file(target) == expected and onnx_is_valid(target)


def build_cached(name: str, source_sha: str, build: Callable[[Path], None]) -> Path:
    """Return the cached derived file, building it with ``build(tmp_path)`` if missing, corrupt or changed since built."""
    target = cached_path(name, source_sha)
    if verified(target):
        return target
    if target.exists():
        logging.getLogger(__name__).warning("%s: not the file this cache built (or its record is missing); rebuilding it", target)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}-", suffix=".onnx.tmp", dir=target.parent)
    os.close(fd)
    try:
        build(Path(tmp))
        if not onnx_is_valid(Path(tmp)):
            raise RuntimeError(f"built model {name} failed the ONNX checker")
        digest = sha256_file(tmp)
        pinned = pinned_digests().get(target.name)
        if pinned is not None and digest != pinned:
            # built just now from the package's own source, so it is used; but this platform's build differs from
            # the pin, so the next start builds it again rather than trust a file it cannot check
            logging.getLogger(__name__).warning("%s: this build differs from the digest pinned in the package", target.name)
        record = _record(target).with_suffix(".tmp")
        record.write_text(digest + "\n")
        os.replace(tmp, target)
        os.replace(record, _record(target))
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def is_cached(name: str, source_sha: str) -> bool:
    return verified(cached_path(name, source_sha))
