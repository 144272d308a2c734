"""Where a cloak may put its change: perceptual masking, luminance and chroma apart (kornia-style functions).

The optimizer's variable is not the pixels but a luminance/chroma field ``u`` (3×H×W, in
pixel units). The change written into the face is

    δ = RGB(m_Y · u_Y,  m_C · u_Cb,  m_C · u_Cr)

where ``m_Y`` and ``m_C`` are fixed per-pixel weights of the original face. Adam moves
every element of ``u`` at about the same rate, so the weights decide where δ can grow:

- **contrast masking**: a change hides in texture (hair, brows, beard, shadows' edges) and
  shows on flat skin, so ``m_Y`` follows the local contrast of the original's luminance;
- **chroma apart**: a colour shift over an area reads as a blotch or a changed eye colour,
  so chroma gets a fraction of luminance's weight, and none in the eyes;
- **the eyes**: identity-bearing and where a viewer looks first; less luminance change there;
- **feathered edge**: δ fades to zero at the face box's edge, so no seam can show.
"""

from __future__ import annotations

import numpy as np
import torch

from fawkes_engine.visibility.ssim import gaussian_blur

# BT.601 luma and scaled colour differences; rows: Y, Cb, Cr from R, G, B
_RGB_TO_YCC = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
_YCC_TO_RGB = torch.linalg.inv(_RGB_TO_YCC)


def ycc_to_rgb(u: torch.Tensor) -> torch.Tensor:
    """A luminance/chroma difference field (N×3×H×W: Y, Cb, Cr) as an RGB difference."""
    return torch.einsum("rc,nchw->nrhw", _YCC_TO_RGB.to(u), u)


def rgb_to_ycc(x: torch.Tensor) -> torch.Tensor:
    return torch.einsum("rc,nchw->nrhw", _RGB_TO_YCC.to(x), x)


def local_contrast(luma: torch.Tensor, sigma: float) -> torch.Tensor:
    """Local standard deviation of N×1×H×W luminance under a Gaussian of ``sigma`` px."""
    mean = gaussian_blur(luma, sigma)
    return (gaussian_blur(luma * luma, sigma) - mean * mean).clamp_min(0).sqrt()


def eye_weight(shape: tuple[int, int], eyes: np.ndarray, radius: float, device: torch.device) -> torch.Tensor:
    """1×1×H×W: 1 at each eye centre, falling off as a Gaussian of ``radius`` px (max over the eyes)."""
    h, w = shape
    ys = torch.arange(h, device=device, dtype=torch.float32).view(h, 1)
    xs = torch.arange(w, device=device, dtype=torch.float32).view(1, w)
    out = torch.zeros(h, w, device=device)
    for ex, ey in eyes:
        out = torch.maximum(out, torch.exp(-((xs - float(ex)) ** 2 + (ys - float(ey)) ** 2) / (2 * radius * radius)))
    return out.view(1, 1, h, w)


def edge_feather(shape: tuple[int, int], width: float, device: torch.device) -> torch.Tensor:
    """1×1×H×W: 0 on the border, rising smoothly (smoothstep) to 1 at ``width`` px inside."""
    h, w = shape

    def ramp(n: int) -> torch.Tensor:
        i = torch.arange(n, device=device, dtype=torch.float32)
        d = torch.minimum(i + 0.5, n - 0.5 - i) / max(width, 1e-6)
        t = d.clamp(0, 1)
        return t * t * (3 - 2 * t)

    return (ramp(h).view(h, 1) * ramp(w).view(1, w)).view(1, 1, h, w)


def perceptual_weights(
    original: torch.Tensor,
    eyes: np.ndarray,
    eye_distance: float,
    masking: float = 1.0,
    chroma: float = 0.35,
    eye_luma: float = 0.5,
    feather: float = 0.06,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel weights (m_Y, m_C), each 1×1×H×W, for a face box ``original`` (1×3×H×W in [0, 1]).

    ``eyes``: the two eye centres in the box's pixel coordinates; ``eye_distance`` in px.
    ``masking``: 0 gives uniform weights, 1 weights in proportion to local contrast (clipped
    to [0.35, 2.5] times the face's median, so flat skin keeps some change and texture
    does not take it all). ``chroma``: chroma's weight relative to luminance; 0 in the eyes.
    ``eye_luma``: the luminance weight left at an eye centre. ``feather``: the edge fade, as
    a share of the box's shorter side.
    """
    h, w = original.shape[-2:]
    dev = original.device
    luma = rgb_to_ycc(original)[:, :1]
    sigma = max(1.0, eye_distance / 24.0)  # about a brow's width: texture at the scale of facial detail
    c = local_contrast(luma, sigma)
    floor = 0.01  # contrast that counts as flat (about 2.5 levels)
    rel = (c + floor) / (c.median() + floor)
    m_y = rel.clamp(0.35, 2.5) ** masking
    eye = eye_weight((h, w), eyes, radius=0.22 * eye_distance, device=dev)
    m_y = m_y * (1 - (1 - eye_luma) * eye)
    m_c = chroma * m_y * (1 - eye)
    edge = edge_feather((h, w), feather * min(h, w), dev)
    return m_y * edge, m_c * edge


def shape_change(u: torch.Tensor, m_y: torch.Tensor, m_c: torch.Tensor) -> torch.Tensor:
    """δ in RGB from the optimizer's field ``u`` (N×3×H×W: Y, Cb, Cr) and the weights."""
    return ycc_to_rgb(torch.cat([u[:, :1] * m_y, u[:, 1:] * m_c], dim=1))
