"""SSIMULACRA2 of many candidates against one original, the original's side computed once.

Why: the floor search (:mod:`fawkes_engine.cloak.rounding`) scores up to nine scalings of one
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

_WORKERS = min(3, os.cpu_count() or 1)  # the three blurs of a scale at once, where the cores allow


def _srgb_table() -> np.ndarray:
    return np.asarray(ref.srgb_to_linear(np.arange(256, dtype=np.float64)[None, :, None].repeat(3, 2))[0, :, 0])


_SRGB_TO_LINEAR = _srgb_table()


def _linear(rgb8: np.ndarray) -> np.ndarray:
    """The package's ``srgb_to_linear`` of an 8-bit image, by table: the same value for every byte."""
    return _SRGB_TO_LINEAR[rgb8]


def _xyb(linear: np.ndarray) -> np.ndarray:
    """The package's ``make_positive_xyb(linear_rgb_to_xyb(linear))``, the same operations in the
    same order, in four plane buffers instead of its dozen temporaries (the peak of a large face's
    score). Like the package's, the result is the transposed image (W×H×3).

    Every operation is per pixel, so the rows are split between the pool's threads (numpy
    releases the GIL), each writing its own part of the result with buffers of its part's size.
    """
    h = linear.shape[0]
    out = np.empty((linear.shape[1], h, 3))
    parts = max(1, min(_WORKERS, h // 64))
    bounds = [h * k // parts for k in range(parts + 1)]
    done = [_pool().submit(_xyb_into, linear[a:b], out[:, a:b]) for a, b in zip(bounds, bounds[1:])]
    for f in done:
        f.result()
    return out


def _xyb_into(linear: np.ndarray, out: np.ndarray) -> None:
    r, g, b = linear.T
    matrix = ref.kOpsinAbsorbanceMatrix.reshape(3, 3)
    bias = ref.kOpsinAbsorbanceBias
    tmp = np.empty(r.shape, order="F")  # F order: the planes' memory runs as the source's rows do
    mixed = []
    for i in range(3):
        m = np.multiply(matrix[i, 0], r, out=np.empty(r.shape, order="F"))
        np.add(m, np.multiply(matrix[i, 1], g, out=tmp), out=m)
        np.add(m, np.multiply(matrix[i, 2], b, out=tmp), out=m)
        np.add(m, bias[i], out=m)
        np.maximum(m, 0, out=m)
        np.cbrt(m, out=m)
        np.subtract(m, np.cbrt(bias[i]), out=m)
        mixed.append(m)
    m0, m1, m2 = mixed
    x = np.multiply(0.5, np.subtract(m0, m1, out=tmp), out=tmp)
    out[:, :, 0] = np.add(np.multiply(x, 14.0, out=x), 0.42, out=x)
    y = np.multiply(0.5, np.add(m0, m1, out=m0), out=m0)
    out[:, :, 2] = np.add(np.subtract(m2, y, out=m2), 0.55, out=m2)  # (B − Y) + 0.55, from Y before its offset
    out[:, :, 1] = np.add(y, 0.01, out=y)


def _blur(image: np.ndarray, out: np.ndarray) -> np.ndarray:
    """The package's ``blur_image`` into ``out``, the same values to the bit.

    The package pads five zero rows above and below and filters with ``reflect``; its kernel's
    radius is also five, so no output row it keeps ever reaches a reflected row, and a zero
    (``constant``) edge on that axis gives the same sums without the padded copy (a test checks).
    """
    ndimage.gaussian_filter(image, sigma=1.5, truncate=3.33, mode=("constant", "reflect"), cval=0.0, axes=(0, 1), output=out)
    return out


class _Buffers:
    """A candidate's full-resolution arrays, kept between candidates and shared by the scales.

    Why: at a large face's full resolution each is tens of MB, and fresh ones are fresh pages
    every time (page faults were a third of a score); a smaller scale uses the top-left corner.
    Two hold the inputs of the square and product blurs and, once those have run, the scratch of
    the SSIM and edge maps; three hold the blurs' outputs.
    """

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.inputs = [np.empty(shape) for _ in range(2)]
        self.outputs = [np.empty(shape) for _ in range(3)]

    @staticmethod
    def at(arrays: list[np.ndarray], shape: tuple[int, ...]) -> list[np.ndarray]:
        h, w = shape[:2]
        return [a[:h, :w] for a in arrays]


@dataclass
class _Scale:
    img: np.ndarray  # the original in positive XYB at this scale
    mu: np.ndarray  # its blur
    var: np.ndarray  # blur(img²) − mu², the original's term of the SSIM denominator
    edge: np.ndarray  # 1 + |img − mu|, the original's edge strength


class Ssimulacra2Reference:
    """One original (H×W×3 uint8); :meth:`score` rates a candidate of the same size against it."""

    def __init__(self, original: np.ndarray) -> None:
        if original.dtype != np.uint8 or original.ndim != 3 or original.shape[2] != 3:
            raise ValueError("Ssimulacra2Reference takes an H×W×3 uint8 image")
        self.shape = original.shape
        self.scales: list[_Scale] = []
        self.buffers: _Buffers | None = None
        # under 8 px a side the metric is undefined; like fawkes_engine.visibility.scales.ssimulacra2: 100 if unchanged
        self.tiny = original.copy() if min(original.shape[:2]) < 8 else None
        if self.tiny is not None:
            return
        linear = _linear(original)
        img = _xyb(linear)
        for scale in range(ref.kNumScales):
            if img.shape[0] < 8 or img.shape[1] < 8:
                break
            mu_f = _pool().submit(_blur, img, np.empty(img.shape))
            sq_f = _pool().submit(_blur, img * img, np.empty(img.shape))
            mu = mu_f.result()
            var = sq_f.result() - mu * mu
            self.scales.append(_Scale(img, mu, var, 1.0 + np.abs(img - mu)))
            if scale < ref.kNumScales - 1:
                linear = ref.downsample(linear, 2, 2)
                img = _xyb(linear)
        self.buffers = _Buffers(self.scales[0].img.shape) if self.scales else None

    def score(self, candidate: np.ndarray) -> float:
        """SSIMULACRA2 of ``candidate`` (uint8, the original's shape): 100 identical, 90 visually lossless."""
        if candidate.shape != self.shape or candidate.dtype != np.uint8:
            raise ValueError(f"candidate must be uint8 of shape {self.shape}, got {candidate.dtype} {candidate.shape}")
        if self.tiny is not None:
            return 100.0 if np.array_equal(self.tiny, candidate) else float("nan")
        ms = ref.Msssim()
        linear = _linear(candidate)
        pool = _pool()
        buffers = self.buffers
        assert buffers is not None  # built with the scales
        for i, s in enumerate(self.scales):
            img2 = _xyb(linear)
            if i < len(self.scales) - 1:
                linear = ref.downsample(linear, 2, 2)
            data = ref.MsssimScale()
            square_in, product_in = _Buffers.at(buffers.inputs, img2.shape)
            np.multiply(img2, img2, out=square_in)
            np.multiply(s.img, img2, out=product_in)
            # the blurs and the two maps are independent, and scipy and numpy release the GIL: on two
            # cores they run side by side (each result is the same as computed alone)
            outs = _Buffers.at(buffers.outputs, img2.shape)
            blurs = [pool.submit(_blur, a, o) for a, o in zip((img2, square_in, product_in), outs)]
            mu2, s22, s12 = (f.result() for f in blurs)
            # the blurs' inputs are free now: scratch for the SSIM map and the edge map (one each,
            # so the two threads share none; the edge map also overwrites img2)
            edges = pool.submit(_edge_diff_map, s, img2, mu2, product_in)
            data.avg_ssim = _ssim_map(s, mu2, s22, s12, square_in)
            data.avg_edgediff = edges.result()
            ms.scales.append(data)
        return float(ms.score())


@functools.cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="ssimulacra2")


def _l4_mean(x: np.ndarray) -> np.ndarray:
    """The package's 4-norm of each plane: mean of x⁴ to the ¼, as (x·x)·(x·x); ``x`` is overwritten."""
    np.multiply(x, x, out=x)
    np.multiply(x, x, out=x)
    return np.asarray(x.mean((0, 1)) ** 0.25)


def _ssim_map(s: _Scale, mu2: np.ndarray, s22: np.ndarray, s12: np.ndarray, num_m: np.ndarray) -> np.ndarray:
    """The package's ``ssim_map`` with the original's terms taken from ``s``, in place (``num_m`` is
    scratch of the maps' shape, first for m1·m2 and m2², then for the map; ``s22`` and ``s12`` are
    overwritten)."""
    out = np.zeros(6)
    np.multiply(s.mu, mu2, out=num_m)
    np.subtract(s12, num_m, out=s12)
    np.multiply(2.0, s12, out=s12)
    np.add(s12, ref.kC2, out=s12)  # num_s = 2 (s12 − m1 m2) + C2
    np.multiply(mu2, mu2, out=num_m)
    np.subtract(s22, num_m, out=s22)
    np.add(s.var, s22, out=s22)
    np.add(s22, ref.kC2, out=s22)  # denom_s = (s11 − m1²) + (s22 − m2²) + C2
    np.subtract(s.mu, mu2, out=num_m)
    np.multiply(num_m, num_m, out=num_m)
    np.subtract(1.0, num_m, out=num_m)  # num_m = 1 − (m1 − m2)²
    np.multiply(num_m, s12, out=num_m)
    np.divide(num_m, s22, out=num_m)
    np.subtract(1.0, num_m, out=num_m)
    d = np.maximum(num_m, 0.0, out=num_m)
    out[::2] = d.mean((0, 1))
    out[1::2] = _l4_mean(d)
    return out


def _edge_diff_map(s: _Scale, img2: np.ndarray, mu2: np.ndarray, d1: np.ndarray) -> np.ndarray:
    """The package's ``edge_diff_map`` with the original's edge strength taken from ``s``, in place
    (``d1`` is scratch of the maps' shape; ``img2`` is overwritten)."""
    out = np.zeros(12)
    np.subtract(img2, mu2, out=d1)
    np.abs(d1, out=d1)
    np.add(1.0, d1, out=d1)
    np.divide(d1, s.edge, out=d1)
    np.subtract(d1, 1.0, out=d1)
    part = np.maximum(d1, 0.0, out=img2)  # artifacts: edges where the original is smooth
    out[::4] = part.mean((0, 1))
    out[1::4] = _l4_mean(part)
    np.negative(d1, out=d1)
    np.maximum(d1, 0.0, out=part)  # detail lost: edges the original had
    out[2::4] = part.mean((0, 1))
    out[3::4] = _l4_mean(part)
    return out
