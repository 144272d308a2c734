"""What a cloak did to each face, measured after it was written: feature shift and distances to the goal.

Why measured on the written pixels: the loop's own figures are on the working copy; what a
tracker meets is the rounded, full-resolution face, so the result reports that.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import torch

from fawkes_engine.align import crop_window
from fawkes_engine.cloak.jobs import FaceJob, FaceResult
from fawkes_engine.models import Extractor


@torch.no_grad()
def measure_results(
    features: Callable[[list[FaceJob]], dict[str, np.ndarray]],
    extractors: Sequence[Extractor],
    jobs: list[FaceJob],
    out_pixels: list[np.ndarray],
    results: list[FaceResult],
    feats: dict[str, np.ndarray],
    goal: list[torch.Tensor],
    regions: list[tuple[int, int, int, int]],
) -> None:
    # each face's cloaked pixels in a copy of only the part of the photo its crops read (a copy of
    # the whole photo was a 48 MP photo's peak): the context window is the same there, so are the crops
    templates = [(e.spec.template, e.spec.input_size) for e in extractors]
    cloaked_jobs = []
    for job, px, (rx0, ry0, rx1, ry1) in zip(jobs, out_pixels, regions):
        cx0, cy0, cx1, cy1 = crop_window(job.face.landmarks, job.image.shape, templates, 1.0)
        x0, y0, x1, y1 = min(cx0, rx0), min(cy0, ry0), max(cx1, rx1), max(cy1, ry1)
        img = job.image[y0:y1, x0:x1].copy()
        img[ry0 - y0 : ry1 - y0, rx0 - x0 : rx1 - x0] = px
        bx, by, bw, bh = job.face.box
        face = replace(
            job.face, box=(bx - x0, by - y0, bw, bh), landmarks=job.face.landmarks - np.array([x0, y0], dtype=job.face.landmarks.dtype)
        )
        cloaked_jobs.append(replace(job, image=img, face=face))
    after = features(cloaked_jobs)
    for e_i, ext in enumerate(extractors):
        g = goal[e_i].cpu().numpy()
        for j, r in enumerate(results):
            r.feature_shift[ext.name] = float(np.linalg.norm(after[ext.name][j] - feats[ext.name][j]))
            if r.target is not None:
                r.target_distance_before[ext.name] = float(np.linalg.norm(feats[ext.name][j] - g[j]))
                r.target_distance_after[ext.name] = float(np.linalg.norm(after[ext.name][j] - g[j]))
