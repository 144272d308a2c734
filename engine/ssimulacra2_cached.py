"""SSIMULACRA2 of many candidates against one original, the original's side computed once.

Why: the floor search (:mod:`fawkes_engine.cloak.budget`) scores up to nine scalings of one
face's change against the same original, and on a large face each score through the
``ssimulacra2`` package took seconds, most of it spent again on the original (its colour
conversion, two of the five blurs per scale, and its parts of the SSIM and edge maps), on a
PNG round trip, and on temporaries. Here the original's side is kept, sRGB decoding is a
table (the input is 8-bit), and the candidate's maps are formed in place.

The score is the package's to the last bit: the same functions where they are the package's,
and the same floating-point operations in the same order where they are not (a test checks
equality on real and random faces). The package itself stays the independent measure
(:mod:`fawkes_engine.evaluate.visibility_check`).
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from ssimulacra2 import ssimulacra2 as ref  # the package's module: its colour maths, blur, pyramid and weights


def _srgb_table() -> np.ndarray:
    return np.asarray(ref.srgb_to_linear(np.arange(256, dtype=np.float64)[None, :, None].repeat(3, 2))[0, :, 0])


_SRGB_TO_LINEAR = _srgb_table()


def _linear(rgb8: np.ndarray) -> np.ndarray:
    """The package's ``srgb_to_linear`` of an 8-bit image, by table: the same value for every byte."""
    return _SRGB_TO_LINEAR[rgb8]


def _xyb(linear: np.ndarray) -> np.ndarray:
    return np.asarray(ref.make_positive_xyb(ref.linear_rgb_to_xyb(linear)))


class _Blur:
    """The package's ``blur_image`` into buffers kept between candidates (the same call, so the same result).

    Why: at a large face's full resolution each blur's padded copy and output are tens of MB,
    and fresh ones are fresh pages every time; page faults were a third of a score.
    """

    def __init__(self, shape: tuple[int, ...]) -> None:
        h, w, c = shape
        self.r = int(round(3.2795 * 1.5 + 0.2546))  # the package's radius for σ 1.5 (zero rows above and below)
        self.h = h
        self.padded = np.zeros((h + 2 * self.r, w, c))
        self.out = np.empty_like(self.padded)

    def apply(self, image: np.ndarray) -> np.ndarray:
        self.padded[self.r : self.r + self.h] = image
        ndimage.gaussian_filter(self.padded, sigma=1.5, truncate=3.33, mode="reflect", cval=0.0, axes=(0, 1), output=self.out)
        return self.out[self.r : self.r + self.h]


@dataclass
class _Scale:
    img: np.ndarray  # the original in positive XYB at this scale
    mu: np.ndarray  # its blur
    var: np.ndarray  # blur(img²) − mu², the original's term of the SSIM denominator
    edge: np.ndarray  # 1 + |img − mu|, the original's edge strength
    blurs: list[_Blur]  # one per blur of a candidate (mean, square, product), run side by side


class Ssimulacra2Reference:
    """One original (H×W×3 uint8); :meth:`score` rates a candidate of the same size against it."""

    def __init__(self, original: np.ndarray) -> None:
        if original.dtype != np.uint8 or original.ndim != 3 or original.shape[2] != 3:
            raise ValueError("Ssimulacra2Reference takes an H×W×3 uint8 image")
        self.shape = original.shape
        self.scales: list[_Scale] = []
        # under 8 px a side the metric is undefined; like fawkes_engine.visibility.ssimulacra2: 100 if unchanged
        self.tiny = original.copy() if min(original.shape[:2]) < 8 else None
        if self.tiny is not None:
            return
        linear = _linear(original)
        img = _xyb(linear)
        for scale in range(ref.kNumScales):
            if img.shape[0] < 8 or img.shape[1] < 8:
                break
            mu_f, sq_f = _pool().submit(ref.blur_image, img), _pool().submit(ref.blur_image, img * img)
            mu = mu_f.result()
            var = sq_f.result() - mu * mu
            self.scales.append(_Scale(img, mu, var, 1.0 + np.abs(img - mu), [_Blur(img.shape) for _ in range(3)]))
            if scale < ref.kNumScales - 1:
                linear = ref.downsample(linear, 2, 2)
                img = _xyb(linear)

    def score(self, candidate: np.ndarray) -> float:
        """SSIMULACRA2 of ``candidate`` (uint8, the original's shape): 100 identical, 90 visually lossless."""
        if candidate.shape != self.shape or candidate.dtype != np.uint8:
            raise ValueError(f"candidate must be uint8 of shape {self.shape}, got {candidate.dtype} {candidate.shape}")
        if self.tiny is not None:
            return 100.0 if np.array_equal(self.tiny, candidate) else float("nan")
        ms = ref.Msssim()
        linear = _linear(candidate)
        pool = _pool()
        for i, s in enumerate(self.scales):
            img2 = _xyb(linear)
            data = ref.MsssimScale()
            # the blurs and the two maps are independent, and scipy and numpy release the GIL: on two
            # cores they run side by side (each result is the same as computed alone)
            blurs = [pool.submit(blur.apply, a) for blur, a in zip(s.blurs, (img2, img2 * img2, s.img * img2))]
            mu2, s22, s12 = (f.result() for f in blurs)
            edges = pool.submit(_edge_diff_map, s, img2, mu2)
            data.avg_ssim = _ssim_map(s, mu2, s22, s12)
            data.avg_edgediff = edges.result()
            ms.scales.append(data)
            if i < len(self.scales) - 1:
                linear = ref.downsample(linear, 2, 2)
        return float(ms.score())


@functools.cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=min(3, os.cpu_count() or 1), thread_name_prefix="ssimulacra2")


def _l4_mean(x: np.ndarray) -> np.ndarray:
    """The package's 4-norm of each plane: mean of x⁴ to the ¼, as (x·x)·(x·x)."""
    x4 = x * x
    np.multiply(x4, x4, out=x4)
    return np.asarray(x4.mean((0, 1)) ** 0.25)


def _ssim_map(s: _Scale, mu2: np.ndarray, s22: np.ndarray, s12: np.ndarray) -> np.ndarray:
    """The package's ``ssim_map`` with the original's terms taken from ``s``, in place."""
    out = np.zeros(6)
    num_m = s.mu - mu2
    np.multiply(num_m, num_m, out=num_m)
    np.subtract(1.0, num_m, out=num_m)  # 1 − (m1 − m2)²
    m12 = s.mu * mu2
    np.subtract(s12, m12, out=s12)
    np.multiply(2.0, s12, out=s12)
    np.add(s12, ref.kC2, out=s12)  # num_s = 2 (s12 − m1 m2) + C2
    np.multiply(mu2, mu2, out=m12)
    np.subtract(s22, m12, out=s22)
    np.add(s.var, s22, out=s22)
    np.add(s22, ref.kC2, out=s22)  # denom_s = (s11 − m1²) + (s22 − m2²) + C2
    np.multiply(num_m, s12, out=num_m)
    np.divide(num_m, s22, out=num_m)
    np.subtract(1.0, num_m, out=num_m)
    d = np.maximum(num_m, 0.0, out=num_m)
    out[::2] = d.mean((0, 1))
    out[1::2] = _l4_mean(d)
    return out


def _edge_diff_map(s: _Scale, img2: np.ndarray, mu2: np.ndarray) -> np.ndarray:
    """The package's ``edge_diff_map`` with the original's edge strength taken from ``s``, in place."""
    out = np.zeros(12)
    d1 = np.subtract(img2, mu2)
    np.abs(d1, out=d1)
    np.add(1.0, d1, out=d1)
    np.divide(d1, s.edge, out=d1)
    np.subtract(d1, 1.0, out=d1)
    part = np.maximum(d1, 0.0)  # artifacts: edges where the original is smooth
    out[::4] = part.mean((0, 1))
    out[1::4] = _l4_mean(part)
    np.negative(d1, out=d1)
    np.maximum(d1, 0.0, out=part)  # detail lost: edges the original had
    out[2::4] = part.mean((0, 1))
    out[3::4] = _l4_mean(part)
    return out
