"""ONNX → differentiable torch, for the built-in SFace and for user-supplied extractors.

``onnx2torch`` reads opsets up to 17–18 reliably; newer files are moved down with ONNX's
version converter first. Batch-norm and dropout are put in eval mode.
"""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import version_converter
from torch import nn

MAX_OPSET = 17


def onnx_to_torch(path: str | Path) -> nn.Module:
    from onnx2torch import convert

    model = onnx.load(str(path))
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=MAX_OPSET)
    if opset > MAX_OPSET:
        model = version_converter.convert_version(model, MAX_OPSET)
    return convert(model).eval()
