"""A face to cloak, and what came of it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fawkes_engine.faces import Face
from fawkes_engine.people import Person


@dataclass
class FaceJob:
    """One face to cloak: the photo it is in and its landmarks (full-resolution pixels)."""

    image: np.ndarray  # H×W×3 uint8 or uint16, shared by the faces of one photo
    face: Face
    person: Person | None = None  # whose face it is, when the caller knows (fawkes_engine.people)


@dataclass
class FaceResult:
    box: tuple[float, float, float, float]
    region: tuple[int, int, int, int]
    dssim: float
    target: str | None
    # per extractor: normalized-feature distance original→cloaked, and to the target before/after
    feature_shift: dict[str, float] = field(default_factory=dict)
    target_distance_before: dict[str, float] = field(default_factory=dict)
    target_distance_after: dict[str, float] = field(default_factory=dict)
    best_step: int = 0
    steps: int = 0  # optimizer steps this face took (more than the mode's when it was extended)
    budget: float = 0.0  # the DSSIM budget it was held to (the mode's ceiling when cloaked again to cross)
    # DSSIM of the face box at each scale of its pyramid (face width in px → DSSIM); ``dssim`` is the worst
    dssim_scales: dict[int, float] = field(default_factory=dict)
    binding_width: int = 0  # the face width at which DSSIM is worst (the scale that holds the budget)
    ssimulacra2: float = 100.0  # SSIMULACRA2 of the face box (100: unchanged, 90: visually lossless)
    kept: float = 1.0  # the share of the optimized change written (below 1: shrunk to meet the budget or the floor)
    # the largest 3×3 mean |Δluma| of the written face box (0–255 levels), and the same windows in JNDs (fawkes_engine.visibility.blemish)
    blemish: float = 0.0
    blemish_jnd: float = 0.0
    person: str | None = None  # the person's key, when faces were grouped by person (fawkes_engine.people)
    # the clean face's normalized embeddings per extractor: biometric, for the caller's person store only
    clean_features: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def weak(self) -> bool:
        """Not carried across: under some extractor the cloaked face is still nearer its original than
        its target (the feature shift is not larger than the distance left to the target)."""
        return any(self.feature_shift[e] <= self.target_distance_after[e] for e in self.feature_shift if e in self.target_distance_after)
