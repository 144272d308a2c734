"""What each extractor sees of a face at one step: the aligned crop, on diversified steps a random view.

A random view is input diversity's rescale, shift and blur (:mod:`fawkes_engine.cloak.diversity`)
and, when asked for, a tracker's view (:mod:`fawkes_engine.cloak.tracker_views`): the alignment
from jittered landmarks, and for large faces the photo's clean crop as another resampler cuts it,
plus the change as the loop's own warp sees it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fawkes_engine.align import footprint, with_origin
from fawkes_engine.cloak.options import Optimizer
from fawkes_engine.cloak.state import FaceState
from fawkes_engine.cloak.window import extractor_view
from fawkes_engine.visibility.ssim import gaussian_blur


def _tracker_crop(
    f: FaceState,
    patch: torch.Tensor,
    m: np.ndarray,
    box: tuple[int, int, int, int],
    size: int,
    sigma: float,
    clean: tuple[np.ndarray, float | None],
    on_cpu: bool,
) -> torch.Tensor:
    """A tracker's clean crop plus the change as the loop's warp sees it (``warp(x) − warp(clean copy)``), then the blur.

    The change is resampled as the tracker resamples it (``clean``'s prescale): the copy's
    change has detail finer than the crop (contrast masking puts it there), which a tracker
    without antialiasing aliases.
    """
    image, prescale = clean
    bx0, by0, bx1, by1 = box
    mm = with_origin(m, bx0, by0)[None]
    with torch.no_grad():
        before = extractor_view(f.window.base[..., by0:by1, bx0:bx1], mm, size, 0.0, on_cpu, prescale)
    crop = extractor_view(patch, mm, size, 0.0, on_cpu, prescale) - before
    crop = crop + torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].to(crop)
    return gaussian_blur(crop, sigma) if sigma > 0 else crop


def face_crops(
    faces: list[FaceState], rows: list[int], extractors: list[Any], o: Optimizer, diverse: bool, on_cpu: bool, rng: np.random.Generator
) -> list[torch.Tensor]:
    """Each extractor's view of faces ``rows`` (their canvases must show their ``adv``), one batch per extractor.

    ``on_cpu``: make the crops on the CPU (a seeded CUDA cloak; :func:`extractor_view` says why).
    """
    tv = o.tracker_views
    per_ext: list[list[torch.Tensor]] = [[] for _ in extractors]
    for j in rows:
        f = faces[j]
        h, w = f.window.canvas.shape[-2:]
        views: list[tuple[np.ndarray, float, tuple[np.ndarray, float | None] | None, tuple[int, int, int, int]]] = []
        for e_i, ext in enumerate(extractors):
            size = ext.spec.input_size
            m, sigma = f.mats[e_i], 0.0
            clean: tuple[np.ndarray, float | None] | None = None
            if diverse:
                m = tv.alignment(f.copy.face.landmarks, ext.spec.template, m, rng)
                m, sigma = o.diversity.sample_view(m, size, rng)
                kind = tv.pick(rng) if f.photo_views is not None else "antialiased"
                if kind != "antialiased":
                    assert f.photo_views is not None
                    clean = f.photo_views.crop(m, size, kind, e_i)
            views.append((m, sigma, clean, footprint(m, size, h, w)))
        patches = f.window.patches(f.adv, [v[3] for v in views])  # type: ignore[arg-type]
        for e_i, (ext, (m, sigma, clean, box), patch) in enumerate(zip(extractors, views, patches)):
            size = ext.spec.input_size
            if clean is None:
                crop = extractor_view(patch, with_origin(m, box[0], box[1])[None], size, sigma, on_cpu)
            else:
                crop = _tracker_crop(f, patch, m, box, size, sigma, clean, on_cpu)
            per_ext[e_i].append(crop)
    return [torch.cat(c) for c in per_ext]
