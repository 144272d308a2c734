"""``dlib-robust`` and ``sface-robust``: adversarially fine-tuned copies of the built-ins (paper §5.3).

Why ship them: cloaks computed on a model that small perturbations cannot easily move
tend to change features other models rely on too, so they are candidates for the
cloaking set. They were trained by ``scripts/train_robust.py`` (recipe, data, command and
seed are stored inside each ONNX file and shown by ``fawkes models``) and ship as int8
ONNX in ``engine/fawkes_engine/data/models``; the differentiable path dequantizes once into the cache.
"""

from __future__ import annotations

import json
from dataclasses import replace
from importlib import resources
from pathlib import Path

import onnx
from torch import nn

from . import cache
from .base import Extractor
from .onnx_dequant import dequantize_model
from .onnx_torch import onnx_to_torch
from .spec import ExtractorSpec


def shipped_model(name: str) -> Path:
    return Path(str(resources.files("fawkes_engine") / "data" / "models" / f"{name}.onnx"))


def read_provenance(path: Path) -> dict:
    model = onnx.load(str(path), load_external_data=False)
    for p in model.metadata_props:
        if p.key == "fawkes_provenance":
            return json.loads(p.value)
    return {}


class RobustExtractor(Extractor):
    """A shipped int8 ONNX with the shared RGB [0, 1] input convention and its base model's geometry."""

    def __init__(self, name: str, base: ExtractorSpec) -> None:
        super().__init__()
        self._path = shipped_model(name)
        prov = read_provenance(self._path) if self._path.exists() else {}
        recipe = prov.get("recipe", "")
        self.spec = replace(
            base,
            name=name,
            family=base.model_family,
            license=f"{base.license}; fine-tuned by Fawkes Sync on LFW photos (research use of the data, weights shippable)",
            source=(
                f"engine/fawkes_engine/data/models/{name}.onnx (int8 weights): {base.name} fine-tuned; recipe: {recipe}; "
                f"data: {prov.get('training_data', '?')}; command: {prov.get('command', '?')}; seed {prov.get('seed', '?')}"
            ),
            description=f"{base.name}, adversarially fine-tuned (label-free robust distillation)",
            extra={k: json.dumps(v) if not isinstance(v, str) else v for k, v in prov.items()},
        )

    def source_path(self) -> Path:
        return self._path

    def fp32_path(self) -> Path:
        return cache.build_cached(
            f"{self.name}-fp32", self.source_sha256(), lambda p: onnx.save(dequantize_model(onnx.load(str(self._path))), str(p))
        )

    def build_torch(self) -> nn.Module:
        return onnx_to_torch(self.fp32_path()).eval()

    def onnx_path(self) -> Path:
        return self.fp32_path()

    def is_cached(self) -> bool:
        return cache.is_cached(f"{self.name}-fp32", self.source_sha256())
