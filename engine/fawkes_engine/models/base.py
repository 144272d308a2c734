"""One face feature extractor, usable two ways: a torch module and an onnxruntime session.

Convention shared by both paths (so they are interchangeable and comparable): input is
N×3×S×S float32, **RGB in [0, 1]**, aligned to ``spec.template``; output is the raw
embedding (not normalized). The torch module is for gradient work (cloaking, robust
training); the ONNX session is for fast inference (evaluation, target banks, checks).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..device import onnx_providers as device_providers
from ..memory import release_free_memory
from . import cache
from .spec import ExtractorSpec


class PixelAdapter(nn.Module):
    """Wrap a network that takes [0, 255] pixels in its own channel order to the shared RGB [0, 1] input."""

    def __init__(self, net: nn.Module, channel_order: str) -> None:
        super().__init__()
        self.net = net
        self.bgr = channel_order == "BGR"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bgr:
            x = x.flip(1)
        return self.net(x * 255.0)


def export_onnx(module: nn.Module, size: int, path: Path) -> None:
    """Export a module taking N×3×size×size to ONNX with a dynamic batch axis."""
    import warnings

    module = module.eval()
    dummy = torch.rand(2, 3, size, size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (dummy,),
            str(path),
            input_names=["input"],
            output_names=["embedding"],
            dynamic_axes={"input": {0: "N"}, "embedding": {0: "N"}},
            opset_version=17,
            dynamo=False,
        )


def onnx_providers(device: str = "cpu") -> list[str]:
    """CUDA's (or, for ``mps``, CoreML's) provider first when the installed wheel has it, CPU always as the fallback."""
    import onnxruntime as ort

    return device_providers(device, ort.get_available_providers())


class Extractor(ABC):
    """Base class: subclasses say how to build the torch network and where its weights come from."""

    spec: ExtractorSpec

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._modules: dict[str, nn.Module] = {}
        self._session = None

    # -- what a subclass provides -------------------------------------------------
    @abstractmethod
    def source_path(self) -> Path:
        """The file the weights come from (hash keys the cache)."""

    @abstractmethod
    def build_torch(self) -> nn.Module:
        """A fresh torch module with the shared input convention, on CPU, in eval mode."""

    # -- shared behaviour ----------------------------------------------------------
    @property
    def name(self) -> str:
        return self.spec.name

    def source_sha256(self) -> str:
        return cache.sha256_file(self.source_path())

    def export_to(self, path: Path) -> None:
        export_onnx(self.build_torch(), self.spec.input_size, path)

    def onnx_path(self) -> Path:
        """The exported ONNX file, built into the cache on first use."""
        return cache.build_cached(f"{self.name}-export", self.source_sha256(), self.export_to)

    def is_cached(self) -> bool:
        return cache.is_cached(f"{self.name}-export", self.source_sha256())

    def torch_module(self, device: str | torch.device = "cpu") -> nn.Module:
        """A frozen module for gradient work w.r.t. the input (weights need no grad)."""
        key = str(device)
        with self._lock:
            if key not in self._modules:
                m = self.frozen(self.build_torch()).to(device).eval()
                if torch.device(device).type == "cpu":
                    # oneDNN's NHWC kernels are faster forward and backward for both extractors,
                    # with the same outputs up to float rounding (docs/decisions.md)
                    m = m.to(memory_format=torch.channels_last)
                for p in m.parameters():
                    p.requires_grad_(False)
                self._modules[key] = m
                release_free_memory()  # the conversion's garbage (protobuf, fp32 copies)
            return self._modules[key]

    def frozen(self, module: nn.Module) -> nn.Module:
        """The module rewritten for frozen weights (subclasses fold what training needs kept apart)."""
        return module

    def session(self, device: str = "cpu"):
        import onnxruntime as ort

        with self._lock:
            if self._session is None:
                opts = ort.SessionOptions()
                opts.log_severity_level = 3
                self._session = ort.InferenceSession(str(self.onnx_path()), opts, providers=onnx_providers(device))
            return self._session

    def embed_onnx(self, crops: np.ndarray, batch: int = 64) -> np.ndarray:
        """Embeddings for aligned crops: N×S×S×3 uint8 RGB or N×3×S×S float in [0, 1]."""
        x = _as_nchw01(crops)
        sess = self.session()
        name = sess.get_inputs()[0].name
        outs = [sess.run(None, {name: x[i : i + batch]})[0] for i in range(0, len(x), batch)]
        return np.concatenate(outs) if outs else np.zeros((0, self.spec.embedding_dim), np.float32)

    @torch.no_grad()
    def embed_torch(self, crops: np.ndarray | torch.Tensor, device: str = "cpu", batch: int = 64) -> np.ndarray:
        x = crops if isinstance(crops, torch.Tensor) else torch.from_numpy(_as_nchw01(crops))
        m = self.torch_module(device)
        outs = [m(x[i : i + batch].to(device)).cpu() for i in range(0, len(x), batch)]
        return torch.cat(outs).numpy() if outs else np.zeros((0, self.spec.embedding_dim), np.float32)


def _as_nchw01(crops: np.ndarray) -> np.ndarray:
    if crops.dtype == np.uint8:
        return np.ascontiguousarray(crops.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0
    return np.ascontiguousarray(crops, dtype=np.float32)
