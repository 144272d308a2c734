"""Local blemishes: the largest change in a small window of the face, in levels and in units the eye can see.

Why: DSSIM and SSIMULACRA2 average over the face, so a change concentrated in a few spots
(a nostril darkened by 30 levels, an eye corner deepened) passes both while a viewer who
looks there sees it. Two measures, plain functions on N×3×H×W tensors in [0, 1]:

- :func:`largest_patch_change`: the largest 3×3 mean of |Δluma| in 0–255 levels, the number
  anyone can recompute (BT.601 luma);
- :func:`jnd_map` and :func:`largest_jnd_ratio`: the same windows divided by a just-noticeable
  difference map of the original (Yang et al. 2005, "NAMM": Chou and Li's luminance
  adaptation plus texture masking by the local gradient, less their overlap), with the
  masking of edges damped, because a change along a feature's edge reads as a changed
  feature (the darker nostril), not as noise hidden in texture.

:func:`blemish_excess` is the differentiable form the loop holds: every window over its
allowance contributes, not only the worst (a max has a gradient in one window only).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_LUMA = (0.299, 0.587, 0.114)
WINDOW = 3


def luma(x: torch.Tensor) -> torch.Tensor:
    """N×1×H×W BT.601 luma of N×3×H×W RGB (same units as the input)."""
    r, g, b = _LUMA
    return r * x[:, 0:1] + g * x[:, 1:2] + b * x[:, 2:3]


def patch_change(original: torch.Tensor, candidate: torch.Tensor, window: int = WINDOW) -> torch.Tensor:
    """N×1×H'×W': the mean |Δluma| of every ``window``×``window`` patch, in 0–255 levels."""
    d = (luma(candidate) - luma(original)).abs() * 255.0
    return F.avg_pool2d(d, window, stride=1)


def largest_patch_change(original: torch.Tensor, candidate: torch.Tensor, window: int = WINDOW) -> torch.Tensor:
    """Per image: the largest 3×3 mean of |Δluma| (0–255)."""
    return patch_change(original, candidate, window).flatten(1).amax(1)


def _sobel_magnitude(y: torch.Tensor) -> torch.Tensor:
    k = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=y.dtype, device=y.device) / 4.0
    p = F.pad(y, (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(p, k.view(1, 1, 3, 3))
    gy = F.conv2d(p, k.t().contiguous().view(1, 1, 3, 3))
    return (gx * gx + gy * gy).sqrt()


def jnd_map(original: torch.Tensor, edge_damping: float = 0.7) -> torch.Tensor:
    """N×1×H×W: the luma change (levels) just noticeable at each pixel of ``original``.

    Luminance adaptation (Chou and Li): about 3 levels on mid-grey and bright skin, more in
    the dark. Texture masking: 0.117 × the local gradient (Yang et al.), damped by
    ``edge_damping`` where the gradient is an isolated edge rather than texture (the gradient
    much larger than its neighbourhood's mean gradient). Combined as T_l + T_t − 0.3·min.
    """
    with torch.no_grad():
        y = luma(original) * 255.0
        bg = F.avg_pool2d(F.pad(y, (2, 2, 2, 2), mode="replicate"), 5, stride=1)
        t_l = torch.where(bg <= 127, 17.0 * (1 - (bg / 127).clamp_min(0).sqrt()) + 3.0, 3.0 / 128.0 * (bg - 127) + 3.0)
        g = _sobel_magnitude(y)
        g_mean = F.avg_pool2d(F.pad(g, (3, 3, 3, 3), mode="replicate"), 7, stride=1)
        edge = (g / (2.0 * g_mean + 1.0)).clamp(0, 1)  # about 1 on a lone edge, under ½ in busy texture
        t_t = 0.117 * g * (1 - edge_damping * edge)
        return t_l + t_t - 0.3 * torch.minimum(t_l, t_t)


def window_allowance(original: torch.Tensor, jnd_units: float, ceiling: float, window: int = WINDOW) -> torch.Tensor:
    """N×1×H'×W': each window's allowed mean |Δluma| (levels): ``jnd_units`` × its mean JND, at most ``ceiling``."""
    return (jnd_units * F.avg_pool2d(jnd_map(original), window, stride=1)).clamp_max(ceiling)


def largest_jnd_ratio(original: torch.Tensor, candidate: torch.Tensor, window: int = WINDOW) -> torch.Tensor:
    """Per image: the largest ratio of a window's mean |Δluma| to its mean JND (1: just noticeable)."""
    jnd = F.avg_pool2d(jnd_map(original), window, stride=1)
    return (patch_change(original, candidate, window) / jnd).flatten(1).amax(1)


def blemish_excess(original: torch.Tensor, candidate: torch.Tensor, allowance: torch.Tensor, window: int = WINDOW) -> torch.Tensor:
    """Per image: Σ over windows of (change / allowance − 1)₊², differentiable in ``candidate``; 0 when every window is within."""
    over = torch.relu(patch_change(original, candidate, window) / allowance - 1.0)
    return (over * over).flatten(1).sum(1)


def worst_window_ratio(original: torch.Tensor, candidate: torch.Tensor, allowance: torch.Tensor, window: int = WINDOW) -> torch.Tensor:
    """Per image: the largest window change as a share of its allowance (≤ 1: within)."""
    return (patch_change(original, candidate, window) / allowance).flatten(1).amax(1)
