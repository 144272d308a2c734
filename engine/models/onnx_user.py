"""A user-supplied ONNX face extractor, declared in config by path and input spec.

Why: trackers use many recognizers; a researcher or cautious user can add one they have
(ArcFace, MagFace …) to the cloaking ensemble or to `fawkes eval` without code. The file
is made differentiable with ``onnx2torch``; inference runs the file itself in onnxruntime.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from . import cache
from .base import Extractor, _as_nchw01
from .onnx_torch import onnx_to_torch
from .spec import ARCFACE_112, ExtractorSpec


@dataclass
class OnnxInputSpec:
    """How to feed the network: ``net_input = (rgb_0_255 [channel-reordered] − mean) / std``."""

    size: int = 112
    channel_order: Literal["RGB", "BGR"] = "RGB"
    mean: tuple[float, float, float] = (127.5, 127.5, 127.5)
    std: tuple[float, float, float] = (127.5, 127.5, 127.5)
    template: np.ndarray | None = field(default=None, repr=False)  # 5×2 in input pixels; ArcFace if None
    metric: Literal["cosine", "euclidean"] = "cosine"
    match_threshold: float = 0.5
    embedding_dim: int | None = None


class _Normalize(nn.Module):
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, net: nn.Module, spec: OnnxInputSpec) -> None:
        super().__init__()
        self.net = net
        self.bgr = spec.channel_order == "BGR"
        self.register_buffer("mean", torch.tensor(spec.mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(spec.std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * 255.0
        if self.bgr:
            x = x.flip(1)
        out = self.net((x - self.mean) / self.std)
        return out.flatten(1)


class OnnxExtractor(Extractor):
    def __init__(self, name: str, path: str | Path, input_spec: OnnxInputSpec, license: str = "user-supplied") -> None:
        super().__init__()
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: ONNX extractor file not found")
        self.input_spec = input_spec
        template = input_spec.template if input_spec.template is not None else ARCFACE_112 * (input_spec.size / 112)
        dim = input_spec.embedding_dim or self._probe_dim()
        self.spec = ExtractorSpec(
            name=name,
            input_size=input_spec.size,
            embedding_dim=dim,
            template=np.asarray(template, dtype=np.float64),
            channel_order=input_spec.channel_order,
            metric=input_spec.metric,
            match_threshold=input_spec.match_threshold,
            license=license,
            source=f"user file {self.path} (sha256 {cache.sha256_file(self.path)[:16]})",
        )

    def _probe_dim(self) -> int:
        x = np.zeros((1, 3, self.input_spec.size, self.input_spec.size), np.float32)
        return int(self._run(x).shape[-1])

    def source_path(self) -> Path:
        return self.path

    def build_torch(self) -> nn.Module:
        return _Normalize(onnx_to_torch(self.path), self.input_spec).eval()

    def onnx_path(self) -> Path:
        return self.path

    def is_cached(self) -> bool:
        return True

    def _prepare(self, x01: np.ndarray) -> np.ndarray:
        s = self.input_spec
        x = x01 * 255.0
        if s.channel_order == "BGR":
            x = x[:, ::-1]
        mean = np.asarray(s.mean, np.float32).reshape(1, 3, 1, 1)
        std = np.asarray(s.std, np.float32).reshape(1, 3, 1, 1)
        return np.ascontiguousarray((x - mean) / std, dtype=np.float32)

    def _run(self, x01: np.ndarray) -> np.ndarray:
        sess = self.session()
        inp = sess.get_inputs()[0]
        fixed_batch = isinstance(inp.shape[0], int) and inp.shape[0] > 0
        x = self._prepare(x01)
        if fixed_batch and inp.shape[0] != len(x):  # a graph with a fixed batch of 1: run one by one
            return np.concatenate([sess.run(None, {inp.name: x[i : i + 1]})[0] for i in range(len(x))]).reshape(len(x), -1)
        return sess.run(None, {inp.name: x})[0].reshape(len(x), -1)

    def embed_onnx(self, crops: np.ndarray, batch: int = 64) -> np.ndarray:
        x = _as_nchw01(crops)
        outs = [self._run(x[i : i + batch]) for i in range(0, len(x), batch)]
        return np.concatenate(outs) if outs else np.zeros((0, self.spec.embedding_dim), np.float32)
