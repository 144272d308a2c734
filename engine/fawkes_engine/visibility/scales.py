"""How visible a cloak is on the face itself: DSSIM at every scale the face is seen at, and SSIMULACRA2.

Why several scales: the extractors see a face through a warp down to about 112 px, so the
change that moves their features is smooth at the photo's resolution. An 11-pixel SSIM
window at full resolution sees only fine texture and is nearly blind to such a change,
which a viewer sees at once (blotches, creases). Measured on the face resampled down to
112 px wide, the same change is plain. The budget therefore holds when the *worst* scale
of a pyramid, from the photo's own resolution down to a 112 px face, is within ρ; that is
also the scale at which the paper set and user-tested ρ.

Why on the face box: averaging over a region padded with untouched background dilutes
the mean, so the face itself would carry several times ρ. The box measured here is the
detector's box grown a little (``fawkes_engine.cloak.options.FACE_MARGIN``), and the cloak never changes a pixel
outside it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from fawkes_engine.visibility.ssim import SSIMReference, dssim

SMALLEST_FACE_WIDTH = 112  # the extractors' crop size: the coarsest scale a recognizer sees a face at


def pyramid_widths(width: int, smallest: int = SMALLEST_FACE_WIDTH) -> list[int]:
    """Face widths to measure at: the native one, then ``smallest``·2^k below it, largest first.

    A 884 px face is measured at 884, 448, 224 and 112 px; a face already at or under
    ``smallest`` px only at its own size (nothing is upsampled).
    """
    below = []
    w = smallest
    while w < width:
        below.append(w)
        w *= 2
    return [width] + sorted(below, reverse=True)


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Antialiased bilinear resize of N×C×H×W (area-like when shrinking), differentiable."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)


def scale_size(h: int, w: int, width: int) -> tuple[int, int]:
    """The face box's size when resampled to ``width`` columns (aspect kept)."""
    return max(2, round(h * width / w)), max(2, width)


@dataclass
class ScaleDSSIM:
    """DSSIM of one face at each scale of its pyramid (face width in px → DSSIM)."""

    per_scale: dict[int, float]

    @property
    def worst(self) -> float:
        return max(self.per_scale.values())

    @property
    def binding(self) -> int:
        """The face width whose DSSIM is the worst (the scale that holds the budget)."""
        return max(self.per_scale, key=lambda k: self.per_scale[k])


class FacePyramid:
    """An original face box at every scale of its pyramid, with SSIM statistics computed once.

    Why: the optimizer compares the same original with a new cloak at every step; the
    original's resampled copies and their local moments are half of each evaluation.
    """

    def __init__(self, original: torch.Tensor, smallest: int = SMALLEST_FACE_WIDTH) -> None:
        h, w = original.shape[-2:]
        self.widths = pyramid_widths(w, smallest)
        self.sizes = [scale_size(h, w, width) for width in self.widths]
        with torch.no_grad():
            self.refs = [SSIMReference.of(resize(original, size)) for size in self.sizes]

    def per_scale(self, x: torch.Tensor) -> torch.Tensor:
        """DSSIM of face box ``x`` (1×C×H×W, the original's size) at each scale → shape S (differentiable)."""
        return torch.stack([dssim(resize(x, size), ref)[0] for size, ref in zip(self.sizes, self.refs)])

    def worst(self, x: torch.Tensor) -> torch.Tensor:
        return self.per_scale(x).max()


@torch.no_grad()
def measure_scales(
    cloaked: torch.Tensor, original: torch.Tensor, smallest: int = SMALLEST_FACE_WIDTH, core: tuple[int, int, int, int] | None = None
) -> ScaleDSSIM:
    """Exact (stride 1) DSSIM of a face box at every pyramid scale; full-size tensors, no statistics kept.

    For the final measurement of what will be written: large faces are evaluated in row
    bands (:func:`fawkes_engine.visibility.ssim.dssim`), so a 48 MP photo's face costs no full-size SSIM maps.

    ``core`` (x0, y0, x1, y1 inside the box): the detector's own box, measured too, with its
    own pyramid. Why: the margin around it holds hair and background, where the change is
    small, so a tighter box (another detector's, a viewer's eye on the face) reads a higher
    DSSIM than the grown one. Where a width occurs in both, the worse value is kept.
    """
    out = _pyramid(cloaked, original, smallest)
    if core is not None:
        x0, y0, x1, y1 = core
        if x1 - x0 >= 8 and y1 - y0 >= 8:
            for width, d in _pyramid(cloaked[..., y0:y1, x0:x1], original[..., y0:y1, x0:x1], smallest).items():
                out[width] = max(d, out.get(width, 0.0))
    return ScaleDSSIM(out)


def _pyramid(cloaked: torch.Tensor, original: torch.Tensor, smallest: int) -> dict[int, float]:
    h, w = original.shape[-2:]
    out: dict[int, float] = {}
    for width in pyramid_widths(w, smallest):
        size = scale_size(h, w, width)
        out[width] = float(dssim(resize(cloaked, size), resize(original, size))[0])
    return out


def to_rgb8(pixels: np.ndarray) -> np.ndarray:
    """8-bit RGB of an H×W×3 uint8 or uint16 array (what a viewer's screen shows)."""
    if pixels.dtype == np.uint8:
        return pixels
    return np.clip(np.round(pixels.astype(np.float64) / 257.0), 0, 255).astype(np.uint8)


def ssimulacra2(original: np.ndarray, cloaked: np.ndarray) -> float:
    """SSIMULACRA2 of a cloaked face box against its original (100: identical, 90: visually lossless).

    The JPEG XL project's perceptual metric (multi-scale, XYB colour space, with edge and
    blocking terms), here through the ``ssimulacra2`` package. Why beside DSSIM: SSIM on RGB
    weighs a colour shift (an iris turned brown) little and is easy to satisfy with smooth
    changes; SSIMULACRA2 was fitted to human ratings. For scale: JPEG q75 of a face ≈ 80.
    """
    from PIL import Image
    from ssimulacra2 import compute_ssimulacra2

    a, b = to_rgb8(original), to_rgb8(cloaked)
    if a.shape[0] < 8 or a.shape[1] < 8:
        return 100.0 if np.array_equal(a, b) else float("nan")
    bufs = []
    for arr in (a, b):
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(arr), "RGB").save(buf, format="PNG", compress_level=0)
        buf.seek(0)
        bufs.append(buf)
    return float(compute_ssimulacra2(bufs[0], bufs[1]))
