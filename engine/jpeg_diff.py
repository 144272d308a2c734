"""A differentiable approximation of JPEG compression, as a plain function (kornia style).

Why: trackers re-encode photos (every upload does), and JPEG's quantization removes the
high-frequency part of a cloak. Showing the extractors a JPEG'd face during optimization
(one more input-diversity transform) lets the optimizer put the perturbation where JPEG
keeps it. Colour conversion, 4:2:0 chroma subsampling, 8×8 DCT and the standard
quality-scaled tables are exact; only rounding is replaced by the cubic approximation
``r(x) = round(x) + (x − round(x))³`` (Shin & Song, 2017), whose gradient is nowhere zero.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

_LUMA = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
]  # fmt: skip
_CHROMA = [
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99, *([99] * 32),
]  # fmt: skip


def quant_table(quality: float, chroma: bool, device=None, dtype=torch.float32) -> torch.Tensor:
    """The IJG (libjpeg) table for ``quality`` in [1, 100], 8×8, in 0–255 pixel units."""
    q = max(1.0, min(100.0, float(quality)))
    scale = 5000.0 / q if q < 50 else 200.0 - 2.0 * q
    base = torch.tensor(_CHROMA if chroma else _LUMA, dtype=dtype, device=device).view(8, 8)
    return ((base * scale + 50) / 100).floor().clamp(1, 255)


def _dct_matrix(device, dtype) -> torch.Tensor:
    k = torch.arange(8, dtype=dtype, device=device)
    m = torch.cos((2 * k[None, :] + 1) * k[:, None] * math.pi / 16)
    m[0] *= 1 / math.sqrt(2)
    return m * 0.5


def soft_round(x: torch.Tensor) -> torch.Tensor:
    r = torch.round(x)
    return r + (x - r) ** 3


def _blocks(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    """N×H×W (H, W multiples of 8) → N×(H/8·W/8)×8×8."""
    n, h, w = x.shape
    b = x.view(n, h // 8, 8, w // 8, 8).permute(0, 1, 3, 2, 4).reshape(n, -1, 8, 8)
    return b, (h, w)


def _unblocks(b: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    h, w = hw
    n = b.shape[0]
    return b.view(n, h // 8, w // 8, 8, 8).permute(0, 1, 3, 2, 4).reshape(n, h, w)


def _code_plane(p: torch.Tensor, table: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    blocks, hw = _blocks(p - 128.0)
    coef = d @ blocks @ d.T
    coef = soft_round(coef / table) * table
    return _unblocks(d.T @ coef @ d, hw) + 128.0


def jpeg_approx(x: torch.Tensor, quality: float) -> torch.Tensor:
    """JPEG-compress N×3×H×W RGB in [0, 1] (4:2:0, baseline tables), differentiably. Same size out."""
    n, _, h, w = x.shape
    ph, pw = (-h) % 16, (-w) % 16
    y = F.pad(x, (0, pw, 0, ph), mode="replicate") * 255.0
    r, g, b = y[:, 0], y[:, 1], y[:, 2]
    lum = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 128
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 128
    d = _dct_matrix(x.device, x.dtype)
    lum = _code_plane(lum, quant_table(quality, False, x.device, x.dtype), d)
    chroma = []
    for c in (cb, cr):
        small = F.avg_pool2d(c[:, None], 2)[:, 0]
        sh, sw = (-small.shape[1]) % 8, (-small.shape[2]) % 8
        small = F.pad(small[:, None], (0, sw, 0, sh), mode="replicate")[:, 0]
        coded = _code_plane(small, quant_table(quality, True, x.device, x.dtype), d)
        coded = coded[:, : (h + ph) // 2, : (w + pw) // 2]
        chroma.append(F.interpolate(coded[:, None], scale_factor=2, mode="bilinear", align_corners=False)[:, 0])
    cb, cr = chroma
    r = lum + 1.402 * (cr - 128)
    g = lum - 0.344136 * (cb - 128) - 0.714136 * (cr - 128)
    b = lum + 1.772 * (cb - 128)
    out = torch.stack([r, g, b], 1)[:, :, :h, :w] / 255.0
    return out.clamp(0, 1)
