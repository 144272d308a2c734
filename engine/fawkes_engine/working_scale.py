"""The face at the scale the optimizer works at, and the way back to the photo's resolution.

Why a working scale: the extractors see a face through a warp down to 112–150 px, so a
cloak's effective change is smooth at the photo's resolution, and optimizing every pixel of
an 800 px face spends most of each step on detail no extractor sees. The optimizer instead
works on a copy of the part of the photo around the face, resampled so that the face box is
at most ``width`` px wide (faces already smaller keep their pixels as they are). Its change
is then carried back to the photo by bilinear interpolation at exact pixel-centre
coordinates, confined to the face box, and measured there at every scale
(:mod:`fawkes_engine.visibility.scales`). A step's cost no longer grows with the face's pixel count.

A bilinear lift carries the change up as smooth blobs, which on a large face read as shading
across the photo's own edges. ``Upsampling("guided")`` carries it up the way a fast guided
filter does (He and Sun, 2015): on the copy the change is explained, window by window, as a
linear function of the copy's own luma, and those coefficients, lifted bilinearly, are applied
to the photo's full-resolution luma, so the change follows the photo's edges and textures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np
import torch

from fawkes_engine.faces import Face

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (end exclusive)
_LUMA = (0.299, 0.587, 0.114)  # BT.601 weights: the guide is the photo's luma


@dataclass(frozen=True)
class Upsampling:
    """How a working-scale change is carried up to the photo (see the module's docstring)."""

    kind: Literal["bilinear", "guided"] = "bilinear"
    radius: int = 1  # the guided filter's window on the copy: (2r + 1)² pixels
    eps: float = 1e-4  # its regularizer, in unit luma²: windows flatter than √eps get a plain smooth lift


@dataclass
class WorkingCopy:
    """A face on a working-scale copy of the part of its photo that the extractors' crops read."""

    image: np.ndarray  # the copy (same dtype as the photo)
    face: Face  # the face in the copy's pixel coordinates
    area: Box  # the part of the photo the copy shows (photo pixels)
    sx: float  # copy pixels per photo pixel, across and down
    sy: float
    region: Box  # the face box in the photo: the only pixels the cloak changes
    copy_region: Box  # the face box in the copy: the pixels the optimizer changes
    upsampling: Upsampling = field(default_factory=Upsampling)

    @property
    def resampled(self) -> bool:
        return (self.sx, self.sy) != (1.0, 1.0)


def working_copy(image: np.ndarray, face: Face, region: Box, context: Box, width: int, upsampling: Upsampling | None = None) -> WorkingCopy:
    """The copy of ``context ∪ region`` in which ``region`` (the face box) is at most ``width`` px wide."""
    rx0, ry0, rx1, ry1 = region
    ax0, ay0 = min(context[0], rx0), min(context[1], ry0)
    ax1, ay1 = max(context[2], rx1), max(context[3], ry1)
    aw, ah = ax1 - ax0, ay1 - ay0
    s = min(1.0, width / max(rx1 - rx0, 1))
    if s >= 1.0:
        copy = image[ay0:ay1, ax0:ax1]
        sx = sy = 1.0
    else:
        pw, ph = max(2, round(aw * s)), max(2, round(ah * s))
        # area averaging: each copy pixel is the mean of the photo pixels it covers (what a viewer's
        # downscale and the extractors' antialiased warp both see)
        copy = cv2.resize(np.ascontiguousarray(image[ay0:ay1, ax0:ax1]), (pw, ph), interpolation=cv2.INTER_AREA)
        sx, sy = pw / aw, ph / ah
    # pixel centres: photo x ↦ copy (x − ax0 + 0.5)·sx − 0.5
    lm = (face.landmarks - np.array([ax0, ay0]) + 0.5) * np.array([sx, sy]) - 0.5
    bx, by, bw, bh = face.box
    box = ((bx - ax0) * sx, (by - ay0) * sy, bw * sx, bh * sy)
    ch, cw = copy.shape[:2]
    # the face box's edges in the copy, rounded inward (its change must stay inside the photo's box)
    cr = (
        max(0, math.ceil((rx0 - ax0) * sx - 1e-6)),
        max(0, math.ceil((ry0 - ay0) * sy - 1e-6)),
        min(cw, math.floor((rx1 - ax0) * sx + 1e-6)),
        min(ch, math.floor((ry1 - ay0) * sy + 1e-6)),
    )
    return WorkingCopy(copy, Face(box, lm, face.score), (ax0, ay0, ax1, ay1), sx, sy, region, cr, upsampling or Upsampling())


def _interpolation(n_out: int, start: int, origin: int, scale: float, p0: int, p1: int, device: torch.device) -> torch.Tensor:
    """n_out × (p1 − p0): bilinear weights from copy pixels p0..p1 to photo pixels start..start+n_out.

    Photo pixel i sits at copy coordinate (i − origin + 0.5)·scale − 0.5; copy pixels outside
    p0..p1 hold no change, so their weights are dropped (the change fades to zero there).
    """
    i = torch.arange(start, start + n_out, dtype=torch.float64)
    xp = (i - origin + 0.5) * scale - 0.5
    j0 = torch.floor(xp)
    t = xp - j0
    m = torch.zeros(n_out, p1 - p0, dtype=torch.float64)
    for j, wgt in ((j0, 1 - t), (j0 + 1, t)):
        col = j.long() - p0
        ok = (col >= 0) & (col < p1 - p0)
        m[torch.nonzero(ok).flatten(), col[ok]] += wgt[ok]
    return m.to(device=device, dtype=torch.float32)


def _luma(x: torch.Tensor) -> torch.Tensor:
    """1×1×H×W luma of a 1×C×H×W unit image (a grey image is its own luma)."""
    if x.shape[1] < 3:
        return x[:, :1]
    w = x.new_tensor(_LUMA).view(1, 3, 1, 1)
    return (x[:, :3] * w).sum(1, keepdim=True)


def _box_mean(x: torch.Tensor, r: int) -> torch.Tensor:
    """Mean over each (2r + 1)² window, windows cut short at the border."""
    return torch.nn.functional.avg_pool2d(x, 2 * r + 1, stride=1, padding=r, count_include_pad=False)


def guided_coefficients(delta: torch.Tensor, guide: torch.Tensor, r: int, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(a, b), window-averaged, such that a·guide + b is ``delta`` explained by ``guide`` (a guided filter)."""
    mean_i, mean_p = _box_mean(guide, r), _box_mean(delta, r)
    cov = _box_mean(guide * delta, r) - mean_i * mean_p
    var = _box_mean(guide * guide, r) - mean_i * mean_i
    a = cov / (var + eps)
    b = mean_p - a * mean_i
    return _box_mean(a, r), _box_mean(b, r)


def _bilinear(x: torch.Tensor, wc: WorkingCopy) -> torch.Tensor:
    rx0, ry0, rx1, ry1 = wc.region
    cx0, cy0, cx1, cy1 = wc.copy_region
    wy = _interpolation(ry1 - ry0, ry0, wc.area[1], wc.sy, cy0, cy1, x.device)
    wx = _interpolation(rx1 - rx0, rx0, wc.area[0], wc.sx, cx0, cx1, x.device)
    return torch.einsum("yh,nchw,xw->ncyx", wy, x, wx)


def lift(delta: torch.Tensor, wc: WorkingCopy, original: torch.Tensor | None = None) -> torch.Tensor:
    """The change ``delta`` (1×C×h×w over the copy's face box) at the photo's resolution over its face box.

    ``original``: the photo's face box (1×C×H×W, unit scale), the guide of a guided upsampling
    (a bilinear lift without it).
    """
    rx0, ry0, rx1, ry1 = wc.region
    cx0, cy0, cx1, cy1 = wc.copy_region
    if not wc.resampled:
        out = delta.new_zeros(delta.shape[0], delta.shape[1], ry1 - ry0, rx1 - rx0)
        ax0, ay0 = wc.area[:2]
        out[..., cy0 + ay0 - ry0 : cy1 + ay0 - ry0, cx0 + ax0 - rx0 : cx1 + ax0 - rx0] = delta
        return out
    up = wc.upsampling
    if up.kind == "bilinear" or original is None:
        return _bilinear(delta, wc)
    mv = 65535.0 if wc.image.dtype == np.uint16 else 255.0
    low = torch.from_numpy(np.ascontiguousarray(wc.image[cy0:cy1, cx0:cx1], dtype=np.float32) / mv).to(delta.device)
    low = low.permute(2, 0, 1)[None] if low.ndim == 3 else low[None, None]
    a, b = guided_coefficients(delta, _luma(low), up.radius, up.eps)
    return _bilinear(a, wc) * _luma(original) + _bilinear(b, wc)
