"""Input diversity: each step, each extractor sees the face rescaled, shifted and blurred at random.

Why: a cloak optimized on one fixed view of the face over-fits that view; random views make
it survive resampling and JPEG and transfer better to extractors it was not optimized
against. One :class:`Diversity` holds the parameters and samples a view's geometry, so the
loop never reads loose options. Plain data and numpy: the options stay importable without torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Diversity:
    enabled: bool = True
    scale: tuple[float, float] = (0.8, 1.2)  # random rescale about the crop centre
    shift: float = 0.04  # fraction of the crop size
    blur: float = 1.0  # max Gaussian σ in crop pixels
    prob: float = 1.0  # share of steps that use the random transforms at all

    @property
    def smallest_scale(self) -> float:
        """The smallest rescale a view can have: how far beyond the aligned crop a view may read."""
        return self.scale[0] if self.enabled else 1.0

    def validate(self) -> None:
        if not 0 <= self.prob <= 1:
            raise ValueError("diversity_prob is a probability in [0, 1]")

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


NO_DIVERSITY = Diversity(enabled=False)
