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
from fawkes_daemon.source_files import Changed, Refused, open_queued
from fawkes_engine.photo_io import decode_photo

THUMB_PX = 360
KINDS = ("original", "cloaked", "diff")


class NotServed(Exception):
    """The file behind an id cannot be shown (gone, moved, outside its folder); the message says why."""


Where = tuple[Path, str]  # a folder (a source, or to-share) and a path inside it


def _read(where: Where, limit_mb: float, version: tuple[int, int] = (-1, -1)) -> bytes:
    """The file's bytes through the descriptor that was checked: opened folder by folder without following
    links (``source_files.open_queued``), so a link swapped in while the page serves is never followed."""
    root, rel = where
    try:
        fd, st = open_queued(root, rel, *version)
    except Changed as e:
        raise NotServed(f"{root / rel} changed since it was cloaked; its new version is queued") from e
    except Refused as e:
        raise NotServed(str(e)) from e
    except OSError as e:
        raise NotServed(f"{root / rel}: {e.strerror or e}") from e
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(st.st_mode):
            raise NotServed(f"{root / rel}: not a regular file")
        if st.st_size > limit_mb * 2**20:
            raise NotServed(f"{root / rel}: over max_file_mb")
        return f.read()


class ImageCache:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.root = config.state_dir / "ui-cache"
        self.sources = {s.label: s.path for s in config.sources}
        self._lock = threading.Lock()  # one decode at a time: a grid of 48 full-size photos must not take 48× the memory

    def original_path(self, row: dict) -> Where:
        root = self.sources.get(row["source"])
        if root is None:
            raise NotServed(f"source {row['source']!r} is no longer configured")
        if Path(row["relpath"]).is_absolute() or ".." in Path(row["relpath"]).parts:
            raise NotServed(f"{row['relpath']} leads outside its source")
        return root, row["relpath"]

    def output_path(self, row: dict) -> Where:
        if not row.get("output"):
            raise NotServed("no safe copy")
        try:
            rel = Path(row["output"]).relative_to(self.config.to_share)
        except ValueError as e:
            raise NotServed(f"{row['output']} is not inside to-share") from e
        if ".." in rel.parts:
            raise NotServed(f"{row['output']} is not inside to-share")
        return self.config.to_share, rel.as_posix()

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

    def _decode(self, where: Where, version: tuple[int, int] = (-1, -1)) -> np.ndarray:
        path = where[0] / where[1]
        try:
            return decode_photo(_read(where, self.config.max_file_mb, version), path).rgb8()
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

        def crop(where: Where) -> np.ndarray:
            # the original only as the version that was cloaked (the row's size and mtime)
            version = (-1, -1) if where == self.output_path(row) else (row["size"], row["mtime_ns"])
            rgb = self._decode(where, version)
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
