"""SSIMULACRA2 as a differentiable torch function (kornia style), so the loop can hold it as a constraint.

Why: the floor was held by shrinking the whole change after the fact, which keeps the change's
shape; with the score and its gradient inside the loop the optimizer can move the change to
where the score (fitted to human ratings) does not charge for it. This follows the
``ssimulacra2`` package step by step (sRGB → linear → XYB made positive; six scales of a 2×2
box pyramid in linear light; at each scale the 1.5 px Gaussian blur, the SSIM map and the
edge maps of added and lost detail, each averaged as a 1-norm and a 4-norm; the 108 weights;
the final mapping), including two of its quirks that change the score:

- the package works on the transposed image, so its blur pads with zeros along the photo's
  x axis and reflects (edge sample included) along its y axis;
- with fewer than six scales (a face under 256 px) the weights are read in order over the
  scales present, as the package reads them.

A test checks the score against the package on real faces. The package (and its bit-exact
copy, :mod:`fawkes_engine.visibility.ssimulacra2`) stays what the written file is measured with.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

_NUM_SCALES = 6
_C2 = 0.0009
_OPSIN = torch.tensor([[0.30, 0.622, 0.078], [0.23, 0.692, 0.078], [0.24342268924547819, 0.20476744424496821, 0.5518098665095536]])
_BIAS = 0.0037930732552754493
_RADIUS = 5  # scipy's int(3.33 · 1.5 + 0.5) taps each side


@functools.cache
def _weights() -> np.ndarray:
    from ssimulacra2 import ssimulacra2 as ref  # the package's 108 weights, not copied by hand

    return np.asarray(ref.weights, dtype=np.float64)


def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1] to linear light (the standard two-part curve)."""
    return torch.where(x <= 0.04045, x / 12.92, ((x.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4)


def linear_to_xyb(linear: torch.Tensor) -> torch.Tensor:
    """N×3×H×W linear RGB to SSIMULACRA2's positive XYB (X·14 + 0.42, Y + 0.01, B − Y + 0.55)."""
    m = torch.einsum("rc,nchw->nrhw", _OPSIN.to(linear), linear) + _BIAS
    cube = m.clamp_min(1e-12) ** (1.0 / 3.0) - _BIAS ** (1.0 / 3.0)
    x = 0.5 * (cube[:, 0] - cube[:, 1])
    y = 0.5 * (cube[:, 0] + cube[:, 1])
    return torch.stack([x * 14.0 + 0.42, y + 0.01, cube[:, 2] - y + 0.55], dim=1)


def _kernel(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    t = torch.arange(-_RADIUS, _RADIUS + 1, device=device, dtype=torch.float64)
    k = torch.exp(-0.5 * t * t / (1.5 * 1.5))
    return (k / k.sum()).to(dtype)


def blur(x: torch.Tensor) -> torch.Tensor:
    """The package's blur: σ 1.5, radius 5; zeros beyond the x edges, a mirror (edge included) beyond y."""
    n, c, h, w = x.shape
    k = _kernel(x.device, x.dtype)
    r = _RADIUS
    # scipy's "reflect": d c b a | a b c d; r < 8 ≤ h, so one reflection suffices
    top = x[..., :r, :].flip(-2)
    bottom = x[..., h - r :, :].flip(-2)
    xp = torch.cat([top, x, bottom], dim=-2)
    xp = F.pad(xp, (r, r, 0, 0))
    flat = xp.reshape(n * c, 1, h + 2 * r, w + 2 * r)
    flat = F.conv2d(flat, k.view(1, 1, 1, -1))
    flat = F.conv2d(flat, k.view(1, 1, -1, 1))
    return flat.reshape(n, c, h, w)


def downsample(x: torch.Tensor) -> torch.Tensor:
    """2×2 box average; an odd last row or column is averaged over what it has, as the package does."""
    return F.avg_pool2d(x, 2, stride=2, ceil_mode=True, count_include_pad=False)


def _norms(d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image and plane: the mean, and the 4-norm (mean of d⁴)^¼ (its gradient kept finite at 0)."""
    one = d.mean((-2, -1))
    m4 = (d**4).mean((-2, -1))
    four = torch.where(m4 > 0, m4.clamp_min(1e-30) ** 0.25, torch.zeros_like(m4))
    return one, four


def _scale_terms(img1: torch.Tensor, img2: torch.Tensor, mu1: torch.Tensor, s11: torch.Tensor) -> torch.Tensor:
    """N×3×6: per plane, (SSIM 1-norm, artifact 1-norm, detail-lost 1-norm, the same three as 4-norms)."""
    mu2 = blur(img2)
    s22 = blur(img2 * img2)
    s12 = blur(img1 * img2)
    num_m = 1.0 - (mu1 - mu2) ** 2
    num_s = 2.0 * (s12 - mu1 * mu2) + _C2
    denom_s = (s11 - mu1 * mu1) + (s22 - mu2 * mu2) + _C2
    ssim = torch.relu(1.0 - num_m * num_s / denom_s)
    d1 = (1.0 + (img2 - mu2).abs()) / (1.0 + (img1 - mu1).abs()) - 1.0
    s1, s4 = _norms(ssim)
    a1, a4 = _norms(torch.relu(d1))
    l1, l4 = _norms(torch.relu(-d1))
    return torch.stack([s1, a1, l1, s4, a4, l4], dim=-1)


def _score(terms: list[torch.Tensor]) -> torch.Tensor:
    """The weighted sum over planes, scales and norms in the package's order, and its final mapping."""
    w = torch.from_numpy(_weights()).to(terms[0])
    total = torch.zeros(terms[0].shape[0], dtype=terms[0].dtype, device=terms[0].device)
    i = 0
    for c in range(3):
        for t in terms:
            for n in range(2):
                # per (plane, scale, norm): SSIM, artifact, detail lost
                total = total + w[i] * t[:, c, 3 * n] + w[i + 1] * t[:, c, 3 * n + 1] + w[i + 2] * t[:, c, 3 * n + 2]
                i += 3
    s = total * 0.9562382616834844
    s = 2.326765642916932 * s - 0.020884521182843837 * s * s + 6.248496625763138e-05 * s * s * s
    return torch.where(s > 0, 100.0 - 10.0 * s.clamp_min(1e-12) ** 0.6276336467831387, torch.full_like(s, 100.0))


class Ssimulacra2Torch:
    """One original's side computed once (N×3×H×W sRGB in [0, 1]); :meth:`score` is differentiable.

    ``scales`` limits the pyramid to its first scales when a caller has measured that the
    others cannot bind; the default is the package's six.
    """

    def __init__(self, original: torch.Tensor, scales: int = _NUM_SCALES) -> None:
        h, w = original.shape[-2:]
        if h < 8 or w < 8:
            raise ValueError("SSIMULACRA2 needs at least 8×8 pixels")
        self.sides: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        with torch.no_grad():
            lin = srgb_to_linear(original)
            for s in range(min(scales, _NUM_SCALES)):
                if lin.shape[-2] < 8 or lin.shape[-1] < 8:
                    break
                img = linear_to_xyb(lin)
                mu = blur(img)
                self.sides.append((img, mu, blur(img * img)))
                if s < _NUM_SCALES - 1:
                    lin = downsample(lin)

    def score(self, candidate: torch.Tensor) -> torch.Tensor:
        """SSIMULACRA2 per image of ``candidate`` (same shape as the original, or broadcast over N)."""
        lin = srgb_to_linear(candidate.clamp(0, 1))
        terms = []
        for i, (img1, mu1, s11) in enumerate(self.sides):
            terms.append(_scale_terms(img1, linear_to_xyb(lin), mu1, s11))
            if i < len(self.sides) - 1:
                lin = downsample(lin)
        return _score(terms)


def ssimulacra2(original: torch.Tensor, candidate: torch.Tensor) -> torch.Tensor:
    """SSIMULACRA2 of ``candidate`` against ``original`` (N×3×H×W sRGB in [0, 1]), differentiable in ``candidate``."""
    return Ssimulacra2Torch(original).score(candidate)


def scale_count(h: int, w: int) -> int:
    """How many scales the package uses for an h×w image (each halves, rounding up, while ≥ 8 px)."""
    n = 0
    while n < _NUM_SCALES and h >= 8 and w >= 8:
        n += 1
        h, w = math.ceil(h / 2), math.ceil(w / 2)
    return n
