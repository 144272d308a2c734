"""Differentiable image-similarity and filtering functions (kornia style: plain functions on tensors).

DSSIM follows the Fawkes paper: ``(1 − SSIM) / 2`` with SSIM's usual 11-tap Gaussian
window (σ = 1.5) on images in [0, 1], averaged over channels and positions. It is
computed at whatever resolution it is given — the cloak gives it the full-resolution face
region, so the budget describes what a viewer of the photo actually sees.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

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


def ssim_map(x: torch.Tensor, y: torch.Tensor, window: int = 11, sigma: float = 1.5, stride: int = 1) -> torch.Tensor:
    """Per-position SSIM (valid positions only) of two N×C×H×W images in [0, 1].

    ``stride`` > 1 evaluates the full-resolution windows at every ``stride``-th position
    only: an unbiased estimate of the mean that still involves every pixel (windows of 11
    overlap for strides up to 5), at 1/stride² of the cost — for the optimizer's inner loop
    on multi-megapixel faces. Final measurements use stride 1.
    """
    window = min(window, x.shape[-1], x.shape[-2])
    window = window if window % 2 == 1 else window - 1
    k = gaussian_kernel1d(sigma, radius=window // 2, device=x.device, dtype=x.dtype)
    x = x.contiguous(memory_format=torch.channels_last)
    y = y.contiguous(memory_format=torch.channels_last)
    mu_x = _separable(x, k, "valid", stride)
    mu_y = _separable(y, k, "valid", stride)
    sxx = _separable(x * x, k, "valid", stride) - mu_x * mu_x
    syy = _separable(y * y, k, "valid", stride) - mu_y * mu_y
    sxy = _separable(x * y, k, "valid", stride) - mu_x * mu_y
    num = (2 * mu_x * mu_y + _C1) * (2 * sxy + _C2)
    den = (mu_x * mu_x + mu_y * mu_y + _C1) * (sxx + syy + _C2)
    return num / den


BAND_POSITIONS = 1 << 18  # input pixels per row band of a banded SSIM evaluation
CHECKPOINT_PIXELS = 2_000_000  # with gradients, only regions above this trade a recomputation for memory


def dssim(x: torch.Tensor, y: torch.Tensor, stride: int = 1, checkpoint: bool = False) -> torch.Tensor:
    """Structural dissimilarity per image: ``(1 − mean SSIM) / 2`` → shape N.

    Large images are evaluated in row bands that overlap by the window, which gives the
    same mean over the same positions with bounded memory: the SSIM map's intermediates
    are ~8 full-size tensors (products, first blur pass), and for a face on a 48 MP photo
    they were the process's peak. With ``checkpoint`` (the optimizer's loop) each band is
    recomputed in backward instead of kept, so only one band's intermediates live at once.
    """
    h, w = x.shape[-2:]
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or y.requires_grad)
    if (checkpoint and h * w > CHECKPOINT_PIXELS) or (not needs_grad and h * w > 2 * BAND_POSITIONS):
        return _dssim_banded(x, y, stride, checkpoint)
    return (1.0 - ssim_map(x, y, stride=stride).mean(dim=(1, 2, 3))) / 2.0


def _band_sum(x: torch.Tensor, y: torch.Tensor, stride: int, window: int) -> torch.Tensor:
    return ssim_map(x, y, window=window, stride=stride).sum(dim=(1, 2, 3))


def _dssim_banded(x: torch.Tensor, y: torch.Tensor, stride: int, checkpoint: bool, window: int = 11) -> torch.Tensor:
    from torch.utils.checkpoint import checkpoint as ckpt

    h, w = x.shape[-2:]
    win = min(window, h, w)
    win = win if win % 2 == 1 else win - 1
    out_rows = h - win + 1
    rows = max(stride, (BAND_POSITIONS // max(w, 1)) // stride * stride)  # band starts stay on the stride grid
    total = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    count = 0
    for r0 in range(0, out_rows, rows):
        r1 = min(out_rows, r0 + rows)
        xb, yb = x[..., r0 : r1 + win - 1, :], y[..., r0 : r1 + win - 1, :]
        if checkpoint and torch.is_grad_enabled() and (x.requires_grad or y.requires_grad):
            total = total + ckpt(_band_sum, xb, yb, stride, window, use_reentrant=False)
        else:
            total = total + _band_sum(xb, yb, stride, window)
        count += ((r1 - r0 + stride - 1) // stride) * ((w - win) // stride + 1) * x.shape[1]
    return (1.0 - total / count) / 2.0


def loop_stride(h: int, w: int, positions: int = 160_000) -> int:
    """The SSIM stride that keeps an inner-loop evaluation near ``positions`` window positions (max 5)."""
    return int(min(5, max(1, math.floor(math.sqrt(h * w / positions)))))
