"""Thumbnails and face crops for the page, made once and cached under the state directory.

Why here and not in the photo folders: the sources are never written, and anything put in
to-share would be synced to the cloud. Files are found by queue id only: the original
must resolve inside its configured source folder and the safe copy inside to-share, both as
regular files, so no URL can name any other file on the machine.
"""

from __future__ import annotations

import io
import os
import stat
import threading
from pathlib import Path

import numpy as np
from PIL import Image

from fawkes_daemon.config import Config
from fawkes_engine.photo_io import decode_photo

THUMB_PX = 360
KINDS = ("original", "cloaked", "diff")


class NotServed(Exception):
    """The file behind an id cannot be shown (gone, moved, outside its folder); the message says why."""


def _inside(path: Path, root: Path) -> Path:
    real, top = Path(os.path.realpath(path)), Path(os.path.realpath(root))
    if real != top and top not in real.parents:
        raise NotServed(f"{path} resolves outside {root}")
    return real


def _read(path: Path, limit_mb: float) -> bytes:
    try:
        st = os.stat(path)
    except OSError as e:
        raise NotServed(f"{path}: {e.strerror or e}") from e
    if not stat.S_ISREG(st.st_mode):
        raise NotServed(f"{path}: not a regular file")
    if st.st_size > limit_mb * 2**20:
        raise NotServed(f"{path}: over max_file_mb")
    return path.read_bytes()


class ImageCache:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.root = config.state_dir / "ui-cache"
        self.sources = {s.label: s.path for s in config.sources}
        self._lock = threading.Lock()  # one decode at a time: a grid of 48 full-size photos must not take 48× the memory

    def original_path(self, row: dict) -> Path:
        root = self.sources.get(row["source"])
        if root is None:
            raise NotServed(f"source {row['source']!r} is no longer configured")
        return _inside(root / row["relpath"], root)

    def output_path(self, row: dict) -> Path:
        if not row.get("output"):
            raise NotServed("no safe copy")
        return _inside(Path(row["output"]), self.config.to_share)

    def _key(self, row: dict) -> str:
        # a new version of the file (or a new cloak of it) gets a new key: a stale image is never shown
        return f"{row['id']}-{(row.get('output_hash') or row.get('content_hash') or str(row['mtime_ns']))[:16]}"

    def _cached(self, name: str, make) -> bytes:
        path = self.root / name
        try:
            return path.read_bytes()
        except FileNotFoundError:
            pass
        with self._lock:
            data = make()
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{threading.get_ident()}")
        # crops of private originals, before cloaking: the owner's alone, whatever the umask
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        return data

    def _decode(self, path: Path) -> np.ndarray:
        try:
            return decode_photo(_read(path, self.config.max_file_mb), path).rgb8()
        except NotServed:
            raise
        except Exception as e:  # a damaged or vanished file: the page says so instead of failing
            raise NotServed(f"{path}: {e}") from e

    def thumbnail(self, row: dict) -> bytes:
        """A small JPEG of the safe copy (of the original while there is none: a held or failed file)."""
        path = self.output_path(row) if row.get("output") and row["state"] == "done" else self.original_path(row)

        def make() -> bytes:
            im = Image.fromarray(self._decode(path))
            im.thumbnail((THUMB_PX, THUMB_PX), Image.Resampling.LANCZOS)
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=85)
            return buf.getvalue()

        return self._cached(f"thumb-{self._key(row)}.jpg", make)

    def face(self, row: dict, index: int, kind: str) -> bytes:
        """One face's region at 100 %: the original, the safe copy, or their difference amplified ×10 around grey."""
        if kind not in KINDS:
            raise NotServed(f"unknown image kind {kind!r}")
        faces = (row.get("report_data") or {}).get("faces") or []
        if not 0 <= index < len(faces):
            raise NotServed(f"no face {index}")
        x0, y0, x1, y1 = (int(v) for v in faces[index]["region"])

        def crop(path: Path) -> np.ndarray:
            if path != self.output_path(row) and os.stat(path).st_mtime_ns != row["mtime_ns"]:
                raise NotServed(f"{path} changed since it was cloaked; its new version is queued")
            rgb = self._decode(path)
            return rgb[max(0, y0) : y1, max(0, x0) : x1]

        def make() -> bytes:
            if kind == "original":
                px = crop(self.original_path(row))
            elif kind == "cloaked":
                px = crop(self.output_path(row))
            else:
                a, b = crop(self.original_path(row)).astype(np.int16), crop(self.output_path(row)).astype(np.int16)
                if a.shape != b.shape:
                    raise NotServed("the original and its safe copy differ in size (edited since?)")
                px = np.clip((b - a) * 10 + 128, 0, 255).astype(np.uint8)
            buf = io.BytesIO()
            Image.fromarray(px).save(buf, format="PNG")
            return buf.getvalue()

        return self._cached(f"face-{self._key(row)}-{index}-{kind}.png", make)
