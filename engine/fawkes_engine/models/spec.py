"""What a face feature extractor is, as far as cloaking and measuring need to know.

Every extractor is described by one :class:`ExtractorSpec`. The optimizer never looks
inside a network: it aligns a face to ``template`` at ``input_size``, hands the network
RGB pixels in [0, 255] (converted to ``channel_order``), and compares embeddings with
``metric``. Licence and provenance travel with the spec so `fawkes models` can show
where every weight came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

# The 5-point template of InsightFace/ArcFace 112×112 crops (eyes, nose tip, mouth corners,
# in image left-to-right order). OpenCV's FaceRecognizerSF aligns to exactly these points.
ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)


@dataclass(frozen=True)
class ExtractorSpec:
    """Static facts about one extractor."""

    name: str
    input_size: int
    embedding_dim: int
    template: np.ndarray = field(repr=False)
    channel_order: Literal["RGB", "BGR"] = "RGB"
    metric: Literal["cosine", "euclidean"] = "cosine"
    # Distance below which two faces are called the same person (in `metric` units).
    match_threshold: float = 0.5
    license: str = ""
    source: str = ""
    description: str = ""
    extra: dict[str, str] = field(default_factory=dict, compare=False)
    # the model this one derives from (a fine-tuned copy belongs to its base); "" means itself.
    # Leave-one-model-out measurement never lets a cloak use any member of the tracker's family.
    family: str = ""

    @property
    def model_family(self) -> str:
        return self.family or self.name
