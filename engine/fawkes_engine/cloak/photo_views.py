"""A large face's clean crops as trackers cut them from the photo (:mod:`fawkes_engine.cloak.tracker_views` says why).

OpenCV does the cutting, as the trackers themselves do: ``warpAffine`` bilinear without
antialiasing, an area resize first, or dlib-style pyramid halving first.
"""

from __future__ import annotations

import cv2
import numpy as np

from fawkes_engine.align import DOWNSCALE_BELOW, transform_scale
from fawkes_engine.photo_io import max_value


def _full(m: np.ndarray) -> np.ndarray:
    return np.vstack([m, [0.0, 0.0, 1.0]])


def _resampled(sx: float, sy: float) -> np.ndarray:
    """The 3×3 map from an image's pixels to those of its resize by (sx, sy), pixel centres kept."""
    return np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1.0]])


def _level(image: np.ndarray, kind: str, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """The source a resampler warps from (contiguous, made once), and the 3×3 map from ``image``'s pixels to it.

    ``bilinear`` warps the image itself; ``area`` first resizes it to the crop's scale by area
    averaging; ``pyramid`` halves it (Gaussian 5-tap, as dlib's ``pyramid_down<2>``) until the
    crop is at most 2× smaller, as dlib's chip extraction does.
    """
    if kind not in ("bilinear", "area", "pyramid"):
        raise ValueError(f"no tracker resampler {kind!r}")
    h, w = image.shape[:2]
    if kind == "area":
        pw, ph = max(2, round(w * scale)), max(2, round(h * scale))
        src = cv2.resize(np.ascontiguousarray(image), (pw, ph), interpolation=cv2.INTER_AREA)
        return src, _resampled(pw / w, ph / h)
    to_src = np.eye(3)
    src = np.ascontiguousarray(image)
    if kind == "pyramid":
        while scale < 0.5 and min(src.shape[:2]) > 4:
            src = cv2.pyrDown(src)
            to_src = np.diag([0.5, 0.5, 1.0]) @ to_src  # pyrDown's pixel i is centred on its source's 2i
            scale *= 2
    return src, to_src


class PhotoViews:
    """One large face's clean crops as trackers cut them from the photo (module docstring).

    Holds the photo's part the working copy shows (a view, not a copy), and for each extractor
    the area-resized and pyramid sources at that extractor's scale, made on first use.
    """

    def __init__(self, image: np.ndarray, area: tuple[int, int, int, int], sx: float, sy: float) -> None:
        ax0, ay0, ax1, ay1 = area
        self.image = image[ay0:ay1, ax0:ax1]
        self.max_value = float(max_value(image))
        # copy pixel centres: photo x ↦ (x − ax0 + 0.5)·sx − 0.5, so the area's pixel x ↦ (x + 0.5)·sx − 0.5
        self._area_to_copy = _resampled(sx, sy)
        self._sx = sx
        self._sources: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}

    @staticmethod
    def needed(mats: list[np.ndarray], sx: float) -> bool:
        """Whether a tracker sees this face downscaled (the copy's alignments ``mats``, copy px per photo px ``sx``)."""
        return min(transform_scale(m) for m in mats) * sx < DOWNSCALE_BELOW

    def crop(self, m_copy: np.ndarray, size: int, kind: str, key: int) -> tuple[np.ndarray, float | None]:
        """The clean ``size``² crop (H×W×C, unit scale, float32) that resampler ``kind`` cuts for
        the alignment ``m_copy`` (2×3, copy pixels → crop pixels); ``key`` names the extractor,
        whose scale the pre-resized sources are made at.

        Also how that resampler shrinks the working copy's scale before its bilinear step (the
        ``prescale`` of :func:`fawkes_engine.align.warp_faces`), so that the loop sees the change
        as the tracker does: 1 for plain bilinear, the pyramid level's scale for dlib's, None
        (to the crop's scale) for an area resize.
        """
        m_area = _full(m_copy) @ self._area_to_copy  # area pixels → crop pixels
        if (kind, key) not in self._sources:
            self._sources[(kind, key)] = _level(self.image, kind, transform_scale(m_area[:2]))
        src, to_src = self._sources[(kind, key)]
        m_src = (m_area @ np.linalg.inv(to_src))[:2]
        out = cv2.warpAffine(src, m_src, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        out = out.astype(np.float32) / self.max_value
        prescale = None if kind == "area" else min(1.0, float(to_src[0, 0]) / self._sx)
        return (out[..., None] if out.ndim == 2 else out), prescale
