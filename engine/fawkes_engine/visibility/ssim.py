"""Differentiable image-similarity and filtering functions (kornia style: plain functions on tensors).

DSSIM follows the Fawkes paper: ``(1 − SSIM) / 2`` with SSIM's usual 11-tap Gaussian
window (σ = 1.5) on images in [0, 1], averaged over channels and positions, at whatever
resolution it is given. The cloak's budget applies it to the face box at every scale of a
pyramid (:mod:`fawkes_engine.visibility.scales`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

SSIM_WINDOW = 11  # the usual Gaussian window (σ = 1.5)
_C1 = 0.01**2
_C2 = 0.03**2


def gaussian_kernel1d(sigma: float, radius: int | None = None, device=None, dtype=torch.float32) -> torch.Tensor:
    radius = radius if radius is not None else max(1, int(math.ceil(3.0 * sigma)))
    x = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    k = torch.exp(-(x**2) / (2 * sigma * sigma))
    return k / k.sum()


def _separable(x: torch.Tensor, k: torch.Tensor, padding: str, stride: int = 1) -> torch.Tensor:
    c = x.shape[1]
    # channels_last: oneDNN's depthwise kernels are several times faster in that layout on CPU
    cl = torch.channels_last
    kx = k.view(1, 1, 1, -1).expand(c, 1, 1, -1).contiguous(memory_format=cl)
    ky = k.view(1, 1, -1, 1).expand(c, 1, -1, 1).contiguous(memory_format=cl)
    if padding == "reflect":
        r = k.numel() // 2
        x = F.pad(x, (r, r, r, r), mode="replicate")
    x = F.conv2d(x.contiguous(memory_format=cl), kx, groups=c, stride=(1, stride))
    return F.conv2d(x, ky, groups=c, stride=(stride, 1))


def gaussian_blur(x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
    """Blur N×C×H×W with a Gaussian; same size out (edges replicated)."""
    s = float(sigma)
    if s <= 0.05:
        return x
    return _separable(x, gaussian_kernel1d(s, device=x.device, dtype=x.dtype), padding="reflect").contiguous()


def _window(x: torch.Tensor, window: int) -> int:
    return _odd_window(x.shape[-2], x.shape[-1], window)


def _odd_window(h: int, w: int, window: int) -> int:
    """The SSIM window for an h×w image: shrunk to fit tiny images, kept odd."""
    window = min(window, h, w)
    return window if window % 2 == 1 else window - 1


def ssim_map(
    x: torch.Tensor,
    y: torch.Tensor,
    window: int = SSIM_WINDOW,
    sigma: float = 1.5,
    stride: int = 1,
    ref: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Per-position SSIM (valid positions only) of two N×C×H×W images in [0, 1].

    ``stride`` > 1 evaluates the full-resolution windows at every ``stride``-th position
    only: an unbiased estimate of the mean that still involves every pixel (windows of 11
    overlap for strides up to 5), at 1/stride² of the cost — for the optimizer's inner loop
    on multi-megapixel faces. Final measurements use stride 1.

    ``ref``: ``y``'s own statistics (local mean and mean of squares, as from
    :class:`SSIMReference`), when ``y`` is compared many times — the cloak's original
    region, once per optimizer step — so that only ``x``'s three blurs are computed.
    """
    window = _window(x, window)
    k = gaussian_kernel1d(sigma, radius=window // 2, device=x.device, dtype=x.dtype)
    x = x.contiguous(memory_format=torch.channels_last)
    y = y.contiguous(memory_format=torch.channels_last)
    mu_x = _separable(x, k, "valid", stride)
    mu_y, e_yy = ref if ref is not None else _moments(y, k, stride)
    sxx = _separable(x * x, k, "valid", stride) - mu_x * mu_x
    syy = e_yy - mu_y * mu_y
    sxy = _separable(x * y, k, "valid", stride) - mu_x * mu_y
    num = (2 * mu_x * mu_y + _C1) * (2 * sxy + _C2)
    den = (mu_x * mu_x + mu_y * mu_y + _C1) * (sxx + syy + _C2)
    return num / den


def _moments(y: torch.Tensor, k: torch.Tensor, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Local mean and local mean of squares of ``y`` (channels-last) at the valid positions."""
    return _separable(y, k, "valid", stride), _separable(y * y, k, "valid", stride)


@dataclass
class SSIMReference:
    """An image that others are compared with again and again, with its SSIM statistics computed once.

    Why: the cloak measures DSSIM against the same original at every optimizer step; the
    original's local means and second moments are two of the five blurs of each evaluation.
    """

    image: torch.Tensor
    stride: int
    mu: torch.Tensor
    e_sq: torch.Tensor

    @classmethod
    def of(cls, y: torch.Tensor, stride: int = 1, window: int = SSIM_WINDOW, sigma: float = 1.5) -> SSIMReference:
        with torch.no_grad():
            k = gaussian_kernel1d(sigma, radius=_window(y, window) // 2, device=y.device, dtype=y.dtype)
            # kept channels-last: ssim_map would otherwise copy it into that layout at every comparison
            yc = y.contiguous(memory_format=torch.channels_last)
            return cls(yc, stride, *_moments(yc, k, stride))

    def rows(self, r0: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The statistics of output rows ``r0 .. r0 + n`` (``r0`` on the stride grid), for banded evaluation."""
        i = r0 // self.stride
        return self.mu[..., i : i + n, :], self.e_sq[..., i : i + n, :]


BAND_POSITIONS = 1 << 18  # input pixels per row band of a banded SSIM evaluation
CHECKPOINT_PIXELS = 1_000_000  # with gradients, only regions above this trade a recomputation for memory (a 2 MP
# region kept ~240 MB of SSIM intermediates for the backward pass)


def dssim(x: torch.Tensor, y: torch.Tensor | SSIMReference, stride: int = 1, checkpoint: bool = False) -> torch.Tensor:
    """Structural dissimilarity per image: ``(1 − mean SSIM) / 2`` → shape N.

    ``y`` may be an :class:`SSIMReference` (its stride then replaces ``stride``).
    Large images are evaluated in row bands that overlap by the window, which gives the
    same mean over the same positions with bounded memory: the SSIM map's intermediates
    are ~8 full-size tensors (products, first blur pass), and for a face on a 48 MP photo
    they were the process's peak. With ``checkpoint`` (the optimizer's loop) each band is
    recomputed in backward instead of kept, so only one band's intermediates live at once.
    """
    ref = y if isinstance(y, SSIMReference) else None
    if ref is not None:
        y, stride = ref.image, ref.stride
    assert isinstance(y, torch.Tensor)
    h, w = x.shape[-2:]
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or y.requires_grad)
    if (checkpoint and h * w > CHECKPOINT_PIXELS) or (not needs_grad and h * w > 2 * BAND_POSITIONS):
        return _dssim_banded(x, y, stride, checkpoint and needs_grad, ref)
    stats = (ref.mu, ref.e_sq) if ref is not None else None
    return (1.0 - ssim_map(x, y, stride=stride, ref=stats).mean(dim=(1, 2, 3))) / 2.0


def _band_sum(
    x: torch.Tensor, y: torch.Tensor, stride: int, window: int, mu: torch.Tensor | None, e_sq: torch.Tensor | None
) -> torch.Tensor:
    stats = (mu, e_sq) if mu is not None and e_sq is not None else None
    return ssim_map(x, y, window=window, stride=stride, ref=stats).sum(dim=(1, 2, 3))


def _dssim_banded(
    x: torch.Tensor, y: torch.Tensor, stride: int, checkpoint: bool, ref: SSIMReference | None, window: int = SSIM_WINDOW
) -> torch.Tensor:
    from torch.utils.checkpoint import checkpoint as ckpt

    h, w = x.shape[-2:]
    win = _window(x, window)
    out_rows = h - win + 1
    rows = max(stride, (BAND_POSITIONS // max(w, 1)) // stride * stride)  # band starts stay on the stride grid
    total = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    count = 0
    for r0 in range(0, out_rows, rows):
        r1 = min(out_rows, r0 + rows)
        n_out = (r1 - r0 + stride - 1) // stride
        mu, e_sq = ref.rows(r0, n_out) if ref is not None else (None, None)
        xb, yb = x[..., r0 : r1 + win - 1, :], y[..., r0 : r1 + win - 1, :]
        if checkpoint:
            total = total + ckpt(_band_sum, xb, yb, stride, window, mu, e_sq, use_reentrant=False)
        else:
            total = total + _band_sum(xb, yb, stride, window, mu, e_sq)
        count += n_out * ((w - win) // stride + 1) * x.shape[1]
    return (1.0 - total / count) / 2.0
