"""Large faces as trackers cut them: the photo's clean crop by another resampler, and landmark jitter.

Why: the optimizer sees a large face through the working copy (area-downscaled) and an
antialiased warp (:func:`fawkes_engine.align.warp_faces`). A tracker aligns the written photo
its own way: OpenCV's ``warpAffine`` with bilinear sampling and no antialiasing (SFace's
``alignCrop``, insightface's ``norm_crop``), dlib's image pyramid then bilinear
(``extract_image_chip``), or an area resize; and its landmarks are its own detector's, a pixel
or two from ours. A change tuned to one view of one alignment may be tuned to that view's
aliasing. Here, on random steps, each extractor sees instead what one of those trackers would
cut from the photo.

How, without the full-resolution photo in the loop: the resamplers are linear, so a tracker's
crop of the cloaked photo is its crop of the clean photo plus its crop of the lifted change.
The change is smooth at the crop's scale (it lives on the working copy, at least the crop's
resolution), where every resampler samples it alike; so the view is the tracker's clean crop
(computed once per step with OpenCV, no gradient) plus the change as the loop's own warp sees
it (``warp(canvas) - warp(clean copy)``, with its gradient). Only the photo's own detail, where
resamplers differ, comes from the tracker's side.

A small object with its explicit parameters (torchattacks' style). Plain data and numpy, like
:mod:`fawkes_engine.cloak.diversity`: the options stay importable without torch; the photo's
side is :mod:`fawkes_engine.cloak.photo_views`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# "antialiased" is the loop's own view; the others are trackers' (module docstring)
RESAMPLERS: tuple[str, ...] = ("antialiased", "bilinear", "area", "pyramid")


@dataclass(frozen=True)
class TrackerViews:
    """Which trackers' views a diversified step may show, and how far landmarks wander.

    ``resamplers``: each diversified step shows each extractor one of them, drawn uniformly
    (only for faces the trackers see downscaled; others look alike under every resampler).
    ``landmark_jitter``: the standard deviation of each landmark's random shift, as a share
    of the distance between the eyes (0: the detector's landmarks as they are).
    """

    resamplers: tuple[str, ...] = ("antialiased",)
    landmark_jitter: float = 0.0

    @property
    def active(self) -> bool:
        return self.resamplers != ("antialiased",) or self.landmark_jitter > 0

    @property
    def resampling(self) -> bool:
        return self.resamplers != ("antialiased",)

    def validate(self) -> None:
        unknown = [r for r in self.resamplers if r not in RESAMPLERS]
        if unknown or not self.resamplers:
            raise ValueError(f"resamplers are one or more of {', '.join(RESAMPLERS)}, got {'/'.join(self.resamplers) or 'none'}")
        if not 0 <= self.landmark_jitter <= 0.1:
            raise ValueError(f"landmark_jitter must be in [0, 0.1] (a share of the eye distance), got {self.landmark_jitter}")

    def alignment(self, landmarks: np.ndarray, template: np.ndarray, m: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``m`` (the alignment from ``landmarks``), or the alignment from jittered landmarks."""
        if self.landmark_jitter <= 0:
            return m
        from fawkes_engine.align import similarity_transform  # torch's module; the loop has it loaded

        eyes = float(np.linalg.norm(landmarks[0] - landmarks[1]))
        noisy = landmarks + rng.normal(0.0, self.landmark_jitter * eyes, size=landmarks.shape)
        return similarity_transform(noisy, template)

    def pick(self, rng: np.random.Generator) -> str:
        """This step's resampler for one extractor."""
        if len(self.resamplers) == 1:
            return self.resamplers[0]
        return self.resamplers[int(rng.integers(len(self.resamplers)))]
