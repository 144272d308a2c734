"""Input diversity: each step, each extractor sees the face rescaled, shifted and blurred at random.

Why: a cloak optimized on one fixed view of the face over-fits that view; random views make
it survive resampling and JPEG and transfer better to extractors it was not optimized
against. One :class:`Diversity` holds the parameters, samples a view's geometry and applies
its optional photometric part, so the loop never reads eight loose options.

torch is imported only where a crop is transformed, so the options stay importable without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Diversity:
    enabled: bool = True
    scale: tuple[float, float] = (0.8, 1.2)  # random rescale about the crop centre
    shift: float = 0.04  # fraction of the crop size
    blur: float = 1.0  # max Gaussian σ in crop pixels
    # transfer techniques (cloaks that hold against recognizers never optimized for); each off by default
    prob: float = 1.0  # share of steps that use the random transforms at all
    color: float = 0.0  # max relative per-channel gain change (0.1 = ±10 %)
    jpeg: float = 0.0  # probability that an extractor sees a differentiable-JPEG copy of the face
    jpeg_quality: tuple[float, float] = (60.0, 95.0)

    @property
    def smallest_scale(self) -> float:
        """The smallest rescale a view can have: how far beyond the aligned crop a view may read."""
        return self.scale[0] if self.enabled else 1.0

    def validate(self) -> None:
        if not 0 <= self.prob <= 1 or not 0 <= self.jpeg <= 1:
            raise ValueError("diversity_prob and diversity_jpeg are probabilities in [0, 1]")

    def this_step(self, step: int, rng: np.random.Generator) -> bool:
        """Whether step ``step`` uses random views (never the first: it starts from the clean face)."""
        return self.enabled and step > 0 and (self.prob >= 1 or rng.random() < self.prob)

    def sample_view(self, m: np.ndarray, size: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
        """A random rescale and shift composed after the alignment ``m`` (2×3), and a blur σ."""
        s = rng.uniform(*self.scale)
        dx, dy = rng.uniform(-self.shift, self.shift, 2) * size
        c = (size - 1) / 2.0
        t = np.array([[s, 0, c - s * c + dx], [0, s, c - s * c + dy], [0, 0, 1]])
        sigma = float(rng.uniform(0, self.blur))
        return (t @ np.vstack([m, [0, 0, 1]]))[:2], sigma

    def apply(self, crop: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """The optional photometric part: per-channel gain, then a differentiable JPEG at a random quality."""
        if self.color > 0:
            import torch

            gains = torch.as_tensor(1 + rng.uniform(-self.color, self.color, 3), dtype=crop.dtype, device=crop.device)
            crop = (crop * gains.view(1, 3, 1, 1)).clamp(0, 1)
        if self.jpeg > 0 and rng.random() < self.jpeg:
            from fawkes_engine.jpeg_diff import jpeg_approx

            crop = jpeg_approx(crop, float(rng.uniform(*self.jpeg_quality)))
        return crop


NO_DIVERSITY = Diversity(enabled=False)
