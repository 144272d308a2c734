"""Where each face stands in the optimization: one object per face instead of parallel lists.

Every face runs its own schedule (a cosine step size over its current phase), keeps the
best step judged so far, and may be extended when it ends its steps short of crossing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from fawkes_engine.cloak.constraints import FaceLimits
from fawkes_engine.cloak.photo_views import PhotoViews
from fawkes_engine.cloak.window import VisibleWindow
from fawkes_engine.working_scale import WorkingCopy


def judge_from(n_steps: int, stop_fraction: float | None) -> int:
    """The first step whose result can be kept ("best step"), for a phase of ``n_steps``.

    "Best step" is judged on the clean (undiversified) objective, over the last twentieth of
    the steps and the state after the last one (at least two steps): the diversified loss is
    too noisy to rank steps (it picked early ones). With the decaying step size the last
    steps win, so judging earlier (two extra forward passes a step) buys nothing
    (docs/decisions.md).
    """
    if stop_fraction:
        # with a stop, every step past it scores 0 and the first judged one wins; momentum keeps
        # moving the face after the stop, so judging from the last third keeps the §8 mitigation
        # near its stop (judged over the last tenth it overshot: docs/decisions.md)
        return max(1, (2 * n_steps) // 3)
    return max(1, n_steps - max(1, n_steps // 20))


@dataclass
class Phase:
    start: int  # the loop step the phase begins at
    length: int
    top: float  # the top of the cosine, as a share of the learning rate
    by_margin: bool  # steps ranked by crossing margin (extension rounds) rather than by loss

    def step_size(self, step: int, learning_rate: float) -> float:
        """Cosine decay to 10 % over the phase: big early moves, fine steps near the budget."""
        k = min(step - self.start, self.length) / max(self.length, 1)
        return learning_rate * (0.1 + (self.top - 0.1) * 0.5 * (1 + math.cos(math.pi * k)))

    def over(self, step: int) -> bool:
        return step >= self.start + self.length


@dataclass
class FaceState:
    region: tuple[int, int, int, int]  # the face box in the photo: the only pixels changed
    copy: WorkingCopy
    window: VisibleWindow
    u: torch.Tensor  # the optimized luminance/chroma field over the face box
    mats: list[np.ndarray]  # per extractor: the alignment to its template, in copy coordinates
    seen_downscaled: bool  # the extractors see this face smaller than the copy holds it
    budget: float  # the DSSIM budget it is held to (raised to the ceiling when cloaked again to cross)
    phase: Phase
    judge_from: int  # the first step whose result can be kept
    extend_left: int  # extension steps it may still take
    n_extractors: int
    best_loss: float = math.inf
    best_step: int = 0
    best_margins: list[float] = field(default_factory=list)  # per extractor, at the best step (the face's is their minimum)
    best_pixels: torch.Tensor | None = None  # the best judged step inside the budget, else the last one
    steps_taken: int = 0  # set when done: its Adam steps were 0 .. that step − 1
    idle: int = 0  # loop steps in which it took no Adam step (the step it was restarted in)
    done: bool = False
    floor_checked: bool = False  # its change was checked against the SSIMULACRA2 floor in the loop (floor_refine)
    adv: torch.Tensor | None = None  # this step's face-box pixels
    d: torch.Tensor | None = None  # and their DSSIM (no graph)
    limits: FaceLimits | None = None  # the perceptual limits held in the loop, if any (fawkes_engine.cloak.constraints)
    photo_views: PhotoViews | None = None  # trackers' clean crops of a large face, when asked for (fawkes_engine.cloak.tracker_views)

    def __post_init__(self) -> None:
        if not self.best_margins:
            self.best_margins = [-math.inf] * self.n_extractors

    @property
    def margin(self) -> float:
        return min(self.best_margins)

    def keep(self, step: int, loss: float, margins: list[float]) -> None:
        """Record this step as the best so far."""
        assert self.adv is not None
        self.best_loss = loss
        self.best_step = step - self.idle
        self.best_margins = margins
        self.best_pixels = self.adv.detach().clone()

    def restart(self, step: int, budget: float, more: int, judge_from: int) -> None:
        """Start again from the original face at a higher budget (its Adam moments reset by the caller)."""
        self.budget = budget
        self.extend_left -= more
        # the new phase's first step is the next one, from the original: this step's loss moves nothing
        self.phase = Phase(step + 1, more, 1.0, False)
        self.judge_from = judge_from
        with torch.no_grad():
            self.u.zero_()
        self.best_loss, self.best_step, self.best_pixels = math.inf, 0, None
        self.best_margins = [-math.inf] * self.n_extractors
        self.idle += 1

    def finish(self, step: int) -> None:
        if self.best_step == 0:  # no judged step was inside the budget: take the last one,
            assert self.adv is not None
            self.best_step = step - self.idle  # quantization shrinks it into the budget
            self.best_pixels = self.adv.detach().clone()
        self.done = True
        self.steps_taken = step - self.idle

    def change(self) -> torch.Tensor:
        """The kept change on the working copy."""
        assert self.best_pixels is not None
        return self.best_pixels - self.window.original
