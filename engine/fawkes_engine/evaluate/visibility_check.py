"""An independent measurement of how visible a cloak is, sharing no code with the optimizer's.

Why independent: the cloak is optimized and held to its budget by :mod:`fawkes_engine.visibility.scales`
(torch SSIM, YuNet boxes, torch's antialiased resize). A bug or a blind spot there would
pass its own check. This module measures the written pixels with other code for every
step: dlib's HOG detector for the face box (grown by 20 %), Pillow's Lanczos filter for
resampling the box to 224 and 112 px wide, scikit-image's SSIM (Gaussian window σ 1.5,
RGB), the ``ssimulacra2`` package, and SciPy's box filter for the largest 3×3 mean |Δluma|. Faces HOG does not find (small faces, aligned crops)
are measured on the engine's own box grown the same way, and marked so.

Needs the ``eval`` extra (dlib-bin, scikit-image).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fawkes_engine.visibility.scales import ssimulacra2, to_rgb8

CHECK_WIDTHS = (224, 112)  # face widths of the measurement, besides the photo's own
GROW = 0.2  # the measured box: HOG's box grown by this share of its size on each side


@dataclass
class FaceVisibility:
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 of the measured box
    source: str  # "hog" or "engine" (HOG found no matching face)
    dssim: dict[str, float] = field(default_factory=dict)  # "native", "224", "112" → DSSIM
    ssimulacra2: float = 100.0
    blemish: float = 0.0  # the largest 3×3 mean |Δluma| (BT.601, 0–255) in the box


def largest_window_change(a: np.ndarray, b: np.ndarray, size: int = 3) -> float:
    """The largest ``size``×``size`` mean of |Δluma| (BT.601 on 8-bit RGB), by SciPy's box filter (valid windows only)."""
    from scipy.ndimage import uniform_filter

    w = np.array([0.299, 0.587, 0.114])
    d = np.abs(a.astype(np.float64) @ w - b.astype(np.float64) @ w)
    if min(d.shape) < size:
        return float(d.max(initial=0.0))
    m = uniform_filter(d, size=size, mode="constant")
    r = size // 2
    return float(m[r : d.shape[0] - r, r : d.shape[1] - r].max())


def _grow(box: tuple[float, float, float, float], frac: float, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    return (
        max(0, int(round(x0 - frac * w))),
        max(0, int(round(y0 - frac * h))),
        min(shape[1], int(round(x1 + frac * w))),
        min(shape[0], int(round(y1 + frac * h))),
    )


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def hog_boxes(rgb8: np.ndarray) -> list[tuple[float, float, float, float]]:
    """dlib's frontal-face HOG boxes (x0, y0, x1, y1), upsampling once for faces under ~80 px."""
    import dlib

    det = dlib.get_frontal_face_detector()
    upsample = 1 if max(rgb8.shape[:2]) < 2000 else 0
    return [(r.left(), r.top(), r.right(), r.bottom()) for r in det(np.ascontiguousarray(rgb8), upsample)]


def skimage_dssim(a: np.ndarray, b: np.ndarray) -> float:
    """(1 − SSIM) / 2 by scikit-image: Gaussian window σ 1.5, RGB, population covariance, 8-bit range."""
    from skimage.metrics import structural_similarity

    win = min(11, a.shape[0], a.shape[1])
    win = win if win % 2 else win - 1
    s = structural_similarity(
        a, b, channel_axis=2, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255, win_size=win
    )
    return (1.0 - float(s)) / 2.0


def _lanczos(a: np.ndarray, width: int) -> np.ndarray:
    from PIL import Image

    h = max(2, round(a.shape[0] * width / a.shape[1]))
    return np.asarray(Image.fromarray(a).resize((width, h), Image.Resampling.LANCZOS))


def measure_face(original: np.ndarray, cloaked: np.ndarray, box: tuple[int, int, int, int], source: str) -> FaceVisibility:
    """DSSIM of one box natively and at each of :data:`CHECK_WIDTHS` narrower than it, and SSIMULACRA2."""
    x0, y0, x1, y1 = box
    a, b = to_rgb8(original[y0:y1, x0:x1]), to_rgb8(cloaked[y0:y1, x0:x1])
    out = FaceVisibility(box, source)
    out.dssim["native"] = skimage_dssim(a, b)
    for width in CHECK_WIDTHS:
        if width < a.shape[1]:
            out.dssim[str(width)] = skimage_dssim(_lanczos(a, width), _lanczos(b, width))
    if len(out.dssim) == 1:
        out.dssim[str(a.shape[1])] = out.dssim["native"]
    out.ssimulacra2 = ssimulacra2(a, b)
    out.blemish = largest_window_change(a, b)
    return out


def measure_photo(original: np.ndarray, cloaked: np.ndarray, engine_boxes: list[tuple[float, float, float, float]]) -> list[FaceVisibility]:
    """One measurement per face the engine cloaked (``engine_boxes``: x, y, w, h), on HOG's matching box if any."""
    hog = hog_boxes(to_rgb8(original))
    out = []
    for bx, by, bw, bh in engine_boxes:
        mine = (bx, by, bx + bw, by + bh)
        best = max(hog, key=lambda h: _iou(h, mine), default=None)
        if best is not None and _iou(best, mine) > 0.3:
            out.append(measure_face(original, cloaked, _grow(best, GROW, original.shape), "hog"))
        else:
            out.append(measure_face(original, cloaked, _grow(mine, GROW, original.shape), "engine"))
    return out
