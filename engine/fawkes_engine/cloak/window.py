"""One face's pixels as the optimizer holds them, and the crops each extractor cuts from them.

The optimizer works on a working copy of the face (:mod:`fawkes_engine.working_scale`); the
variable is a luminance/chroma field over the face box (:mod:`fawkes_engine.visibility.masking`), and every
extractor's crop is cut from a canvas that shows the current step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from fawkes_engine.align import warp_faces
from fawkes_engine.cloak.options import Perception
from fawkes_engine.photo_io import max_value
from fawkes_engine.visibility.masking import perceptual_weights, shape_change
from fawkes_engine.visibility.scales import FacePyramid
from fawkes_engine.visibility.ssim import gaussian_blur
from fawkes_engine.working_scale import WorkingCopy


def extractor_view(
    patch: torch.Tensor, m: np.ndarray, size: int, sigma: float, on_cpu: bool, prescale: float | None = None
) -> torch.Tensor:
    """The crop an extractor sees (:func:`warp_faces`, then the diversity blur), computed on the
    CPU and moved back when ``on_cpu`` (a seeded CUDA cloak).

    Why: on CUDA the backward passes of ``grid_sample``, of the antialiased resize and of the
    blur's edge padding add with atomics in no fixed order, and PyTorch has no deterministic
    version of them; the differences grow over the steps (docs/decisions.md, "Seeded CUDA cloaks").
    They are deterministic on the CPU, and only the crop's footprint travels.
    """
    x = patch.cpu() if on_cpu and patch.device.type != "cpu" else patch
    crop = warp_faces(x, m, size, prescale)
    if sigma > 0:
        crop = gaussian_blur(crop, sigma)
    return crop.to(patch.device)


def to_unit(a: np.ndarray, max_value: int, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).to(device=device, dtype=torch.float32).unsqueeze(0) / max_value


@dataclass
class VisibleWindow:
    """One face's pixels as the optimizer holds them: its working copy, and the face box it may change.

    The variable is a luminance/chroma field over the face box (``fawkes_engine.visibility.masking``); the
    canvas is the copy as the current step shows it, from which each extractor's crop is cut.
    The face box's DSSIM is the worst over its scales (``fawkes_engine.visibility.scales``).
    """

    base: torch.Tensor  # the working copy's original pixels (1×C×H×W, in [0, 1])
    ox: tuple[int, int]  # the face box's columns and rows in the copy: the optimized pixels
    oy: tuple[int, int]
    pyramid: FacePyramid
    m_y: torch.Tensor  # perceptual weights of luminance and chroma over the face box
    m_c: torch.Tensor
    canvas: torch.Tensor = field(init=False)  # the copy as the current step shows it (no graph)

    def __post_init__(self) -> None:
        self.canvas = self.base.clone()

    @classmethod
    def build(cls, wc: WorkingCopy, device: torch.device, o: Perception) -> VisibleWindow:
        base = to_unit(wc.image, max_value(wc.image), device)
        x0, y0, x1, y1 = wc.copy_region
        original = base[..., y0:y1, x0:x1]
        lm = wc.face.landmarks
        eyes = lm[:2] - np.array([x0, y0])
        m_y, m_c = perceptual_weights(original, eyes, float(np.linalg.norm(lm[0] - lm[1])), o.masking, o.chroma, o.eye_luma)
        return cls(base, (x0, x1), (y0, y1), FacePyramid(original), m_y, m_c)

    @property
    def original(self) -> torch.Tensor:
        return self.base[..., self.oy[0] : self.oy[1], self.ox[0] : self.ox[1]]

    def pixels(self, u: torch.Tensor) -> torch.Tensor:
        """The face box's pixels for the optimizer's field ``u`` (differentiable when ``u`` is)."""
        return (self.original + shape_change(u, self.m_y, self.m_c)).clamp(0, 1)

    def region_dssim(self, x: torch.Tensor) -> torch.Tensor:
        """The worst-scale DSSIM of face-box pixels ``x`` (differentiable when ``x`` is)."""
        return self.pyramid.worst(x)

    @property
    def obox(self) -> tuple[int, int, int, int]:
        return self.ox[0], self.oy[0], self.ox[1], self.oy[1]

    def show(self, x: torch.Tensor) -> None:
        """Put the optimized pixels ``x`` on the canvas (what :meth:`patches` reads)."""
        self.canvas[..., self.oy[0] : self.oy[1], self.ox[0] : self.ox[1]] = x.detach()

    def patches(self, x: torch.Tensor, boxes: list[tuple[int, int, int, int]]) -> list[torch.Tensor]:
        """Rectangles of the canvas (x0, y0, x1, y1), differentiable w.r.t. ``x`` when it needs a gradient.

        ``x`` must be what :meth:`show` last put on the canvas.
        """
        if not (torch.is_grad_enabled() and x.requires_grad):
            return [self.canvas[..., y0:y1, x0:x1] for x0, y0, x1, y1 in boxes]
        return list(CanvasPatches.apply(x, self.canvas, self.obox, *boxes))


class CanvasPatches(torch.autograd.Function):
    """Crops' source rectangles of the window canvas, with the gradient routed to the optimized pixels.

    Why not slice a window tensor that carries the graph: autograd gives every slice of it
    a window-sized zero gradient and the composition two more copies — about 13 passes over
    the window per step, 0.6 s of a 12 MP photo's cloak. Here the backward pass is one
    zero-filled gradient of the optimized pixels and a copy per rectangle.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, canvas: torch.Tensor, obox: tuple[int, int, int, int], *boxes: tuple[int, int, int, int]):  # type: ignore[override]
        ctx.geometry = (x.shape, obox, boxes)
        return tuple(canvas[..., y0:y1, x0:x1].clone() for x0, y0, x1, y1 in boxes)

    @staticmethod
    def backward(ctx, *grads: torch.Tensor):  # type: ignore[override]
        shape, (ox0, oy0, ox1, oy1), boxes = ctx.geometry
        gx = grads[0].new_zeros(shape)
        for (x0, y0, x1, y1), g in zip(boxes, grads):
            ix0, iy0, ix1, iy1 = max(x0, ox0), max(y0, oy0), min(x1, ox1), min(y1, oy1)
            if g is not None and ix1 > ix0 and iy1 > iy0:
                gx[..., iy0 - oy0 : iy1 - oy0, ix0 - ox0 : ix1 - ox0] += g[..., iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0]
        return (gx, None, None) + (None,) * len(boxes)
