"""The perceptual limits held inside the loop as constraints: SSIMULACRA2's floor and the blemish limit.

Why constraints and not shrinks: a uniform shrink keeps the change's shape, so the spots that
carry it (feature edges) keep carrying it. Here each limit enters the loss with its own
multiplier, updated after every step as in an augmented Lagrangian (ALMA, Rony et al. 2021):
the multiplier grows while the face breaks the limit and relaxes while it keeps it, so the
optimizer is pushed to find the change with the most effect *that the limit lets through*,
rather than the same change made smaller. DSSIM keeps its exact projection (the loop's
``_project``), and the written file is still held to every limit by the final rounding.

Cost: SSIMULACRA2 with its graph costs about three extractor passes on a 224 px face box, so
it is measured without a graph every few steps and carries a graph only while a face is
near or under its floor (as the DSSIM penalty does).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fawkes_engine.visibility.blemish import blemish_excess, window_allowance, worst_window_ratio
from fawkes_engine.visibility.ssimulacra2_torch import Ssimulacra2Torch

ACTIVE_BAND = 1.0  # SSIMULACRA2 points above the floor at which the floor's term is formed with a graph
MEASURE_EVERY = 4  # steps between measurements of a face well above its floor
LOOP_SHARE = 0.85  # the loop aims the blemish allowance at this share of the written limit
GROWTH = 1.2  # a multiplier's growth per step while its limit is broken, and its decay (1/GROWTH) while kept
START = (2.0, 0.5)  # the multipliers' first values: floor (per 10 SSIMULACRA2 points), blemish (per unit of excess)


@dataclass
class FaceLimits:
    """One face's perceptual limits on its working copy, and their multipliers."""

    floor: float  # SSIMULACRA2 the face box must keep (0: none)
    s2: Ssimulacra2Torch | None
    allowance: torch.Tensor | None  # each 3×3 window's allowed mean |Δluma| (levels), None: no blemish limit
    original: torch.Tensor
    mu_floor: float = START[0]
    mu_blemish: float = START[1]
    last_s2: float = 100.0
    measured_at: int = -MEASURE_EVERY

    @classmethod
    def build(cls, original: torch.Tensor, floor: float, blemish_levels: float, blemish_jnd: float) -> FaceLimits | None:
        """The limits of a face box ``original`` (1×3×H×W in [0, 1]); None when neither is asked for."""
        use_floor = floor > 0 and min(original.shape[-2:]) >= 8
        if not use_floor and blemish_levels <= 0:
            return None
        allowance = window_allowance(original, blemish_jnd, blemish_levels * LOOP_SHARE) if blemish_levels > 0 else None
        return cls(floor if use_floor else 0.0, Ssimulacra2Torch(original) if use_floor else None, allowance, original)

    def penalty(self, x: torch.Tensor) -> torch.Tensor:
        """The constraint terms of the loss for face-box pixels ``x`` (with a graph where they act;
        whether the floor acts is read from the last :meth:`update`)."""
        total = x.new_zeros(())
        if self.s2 is not None and self.last_s2 < self.floor + ACTIVE_BAND:
            s = self.s2.score(x)[0]
            total = total + self.mu_floor * torch.relu(self.floor + 0.5 - s) / 10.0
        if self.allowance is not None:
            total = total + self.mu_blemish * blemish_excess(self.original, x, self.allowance)[0]
        return total

    @torch.no_grad()
    def update(self, x: torch.Tensor, step: int) -> None:
        """At a step's start, on its pixels ``x``: measure what the multipliers answer to, and move them."""
        if self.s2 is not None:
            if step - self.measured_at >= MEASURE_EVERY or self.last_s2 < self.floor + ACTIVE_BAND:
                self.last_s2 = float(self.s2.score(x)[0])
                self.measured_at = step
            self.mu_floor = self.mu_floor * GROWTH if self.last_s2 < self.floor else max(START[0], self.mu_floor / GROWTH)
        if self.allowance is not None:
            over = float(worst_window_ratio(self.original, x, self.allowance)[0]) > 1.0
            self.mu_blemish = self.mu_blemish * GROWTH if over else max(START[1], self.mu_blemish / GROWTH)

    @torch.no_grad()
    def kept(self, x: torch.Tensor) -> bool:
        """Whether pixels ``x`` keep both limits (a step that breaks one is never the face's result)."""
        if self.s2 is not None and float(self.s2.score(x)[0]) < self.floor:
            return False
        return self.allowance is None or float(worst_window_ratio(self.original, x, self.allowance)[0]) <= 1.0 / LOOP_SHARE
