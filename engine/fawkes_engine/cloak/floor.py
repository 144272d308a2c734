"""The SSIMULACRA2 floor inside the optimization (``floor_refine``).

Why: on a large face the optimizer works on a downscaled copy, and its change, carried back to
the photo's resolution, often reads as shading to SSIMULACRA2 although DSSIM is within ρ. The
floor then shrinks the whole change uniformly after the loop, to a share c that clears it, and
every part of the change loses the same share of its effect. Instead, at the end of the face's
first phase the floor is measured exactly as it will be when written (:mod:`fawkes_engine.cloak.rounding`),
and a face that would be shrunk goes on from the shrunk change, held to the DSSIM that shrink
leaves (about c² ρ): the optimizer then looks for the change with the most effect that the floor
lets through.
"""

from __future__ import annotations

import math

import torch

from fawkes_engine.cloak.jobs import FaceJob
from fawkes_engine.cloak.rounding import Rounding, core_of, kept_within_budget
from fawkes_engine.cloak.state import FaceState, Phase
from fawkes_engine.cloak.window import to_unit
from fawkes_engine.photo_io import max_value
from fawkes_engine.working_scale import lift

REFINE_BELOW = 0.9  # a face kept at more than this share of its change is left as it is


@torch.no_grad()
def floor_scale(job: FaceJob, f: FaceState, floor: float, dev: torch.device) -> float:
    """The share c of the face's current best change that the written face may keep (budget and floor)."""
    pixels = f.best_pixels if f.best_pixels is not None else f.adv
    if pixels is None:
        return 1.0
    mv = max_value(job.image)
    rx0, ry0, rx1, ry1 = f.region
    original = job.image[ry0:ry1, rx0:rx1]
    orig = to_unit(original, mv, dev)
    x = (orig + lift(pixels - f.window.original, f.copy, orig)).clamp_(0, 1)
    return kept_within_budget(Rounding(x, orig.clone(), mv, original, core_of(job.face.box, f.region)), f.budget, floor)


@torch.no_grad()
def refine_within(f: FaceState, c: float, step: int, more: int, judge_from: int) -> None:
    """Go on from the change shrunk to ``c``, held to the DSSIM that leaves, for ``more`` steps."""
    f.u.mul_(c)  # the field maps linearly to the change (fawkes_engine.cloak.window)
    f.budget = f.budget * c * c
    f.phase = Phase(step, more, 0.5, False)
    f.judge_from = judge_from
    f.best_loss, f.best_step, f.best_pixels = math.inf, 0, None
    f.best_margins = [-math.inf] * f.n_extractors
