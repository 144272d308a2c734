"""Labelled face folders (one sub-folder per identity) and their faces, for evaluation and tests.

Why here and not in tests: `fawkes eval`, the target-bank builder and the tests all need
the same answer to "where is this person's face in this photo": pre-aligned 112×112 crops
are used as they are, other photos go through YuNet and the face nearest the centre (the
labelled person in LFW-style photos) is taken.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from fawkes_engine.align import align_numpy, is_aligned_crop
from fawkes_engine.faces import Face, FaceDetector
from fawkes_engine.faces import central_face as find_central_face
from fawkes_engine.photo_io import EXTENSIONS, PhotoError, read_photo

log = logging.getLogger(__name__)


@dataclass
class LabelledFace:
    path: Path
    identity: str
    rgb: np.ndarray  # the whole (upright) photo
    landmarks: np.ndarray  # 5×2 in photo pixels
    pre_aligned: bool
    face: Face  # the detection (box and landmarks) the cloak starts from


Order = Literal["natural", "name"]


def list_identities(root: str | Path, min_images: int = 1, order: Order = "natural") -> dict[str, list[Path]]:
    """Identity folder → its photos, in natural order (2.jpg before 10.jpg) or by name.

    ``fawkes eval`` uses name order: its seeded train/test split is defined on that order.
    """
    root = Path(root)
    out: dict[str, list[Path]] = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted((f for f in d.iterdir() if f.suffix.lower() in EXTENSIONS), key=_natural if order == "natural" else None)
        if len(files) >= min_images:
            out[d.name] = files
    return out


def _natural(p: Path) -> tuple:
    stem = p.stem
    return (0, int(stem), "") if stem.isdigit() else (1, 0, stem)


def central_face(path: Path, detector: FaceDetector) -> LabelledFace | None:
    """The labelled person's face: the whole crop if pre-aligned, else the detected face nearest the centre."""
    try:
        photo = read_photo(path)
    except PhotoError as e:
        log.warning("%s", e)
        return None
    rgb = photo.rgb8()
    face = find_central_face(rgb, detector)
    if face is None:
        return None
    return LabelledFace(path, path.parent.name, rgb, face.landmarks, is_aligned_crop(rgb.shape), face)


def load_faces(
    root: str | Path, min_images: int = 1, per_identity: int | None = None, detector: FaceDetector | None = None, order: Order = "natural"
) -> list[LabelledFace]:
    """Every labelled face under ``root`` (one folder per identity): the one loader of tests, eval and the bank."""
    detector = detector or FaceDetector(min_face=16)
    out: list[LabelledFace] = []
    for files in list_identities(root, min_images, order).values():
        for f in files[:per_identity]:
            face = central_face(f, detector)
            if face is not None:
                out.append(face)
    return out


def crops_for(faces: list[LabelledFace], template: np.ndarray, size: int) -> np.ndarray:
    """Aligned N×size×size×3 uint8 crops of the labelled faces for one extractor's template."""
    return np.stack([align_numpy(f.rgb, f.landmarks, template, size) for f in faces]) if faces else np.zeros((0, size, size, 3), np.uint8)
