"""Weight-only int8 quantization of an fp32 ONNX graph, for the extractors we ship.

Why: the robust extractors are trained here and shipped inside the package; fp32 weights
would add ~60 MB. Per-output-channel symmetric int8 with standard ``DequantizeLinear``
(opset 13) cuts that to a quarter, runs as is in onnxruntime, and folds back to fp32 with
:func:`fawkes_engine.models.onnx_dequant.dequantize_model` for the differentiable torch path.
Activations stay fp32, so the only error is weight rounding (≤ 0.4 % of each channel's
largest weight); the shipped file is what gets measured.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

MIN_SIZE = 1024  # smaller tensors (biases, per-channel affines) stay fp32


def quantize_per_channel(w: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 along ``axis``: returns (int8 values, fp32 scales)."""
    moved = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
    scale = np.abs(moved).max(axis=1) / 127.0
    scale[scale == 0] = 1.0
    shape = [-1 if i == axis else 1 for i in range(w.ndim)]
    q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
    return q, scale.astype(np.float32)


def quantize_weights(model: onnx.ModelProto, min_size: int = MIN_SIZE) -> onnx.ModelProto:
    """Replace every large fp32 initializer of ≥ 2 dims by int8 + ``DequantizeLinear`` (axis 0)."""
    graph = model.graph
    new_inits: list[onnx.TensorProto] = []
    deq_nodes: list[onnx.NodeProto] = []
    for init in graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.dtype != np.float32 or arr.ndim < 2 or arr.size < min_size:
            new_inits.append(init)
            continue
        q, scale = quantize_per_channel(arr, 0)
        qn, sn = f"{init.name}_q", f"{init.name}_scale"
        new_inits += [numpy_helper.from_array(q, qn), numpy_helper.from_array(scale, sn)]
        zp = f"{init.name}_zp"
        new_inits.append(numpy_helper.from_array(np.zeros(len(scale), np.int8), zp))
        deq_nodes.append(helper.make_node("DequantizeLinear", [qn, sn, zp], [init.name], axis=0, name=f"deq_{init.name}"))
    inputs = [i for i in graph.input if i.name not in {n.output[0] for n in deq_nodes}]
    new_graph = helper.make_graph(deq_nodes + list(graph.node), graph.name, inputs, list(graph.output), new_inits)
    opsets = [o if o.domain not in ("", "ai.onnx") else helper.make_opsetid("", max(o.version, 13)) for o in model.opset_import]
    out = helper.make_model(new_graph, opset_imports=opsets, producer_name="fawkes-sync quantize")
    out.ir_version = model.ir_version
    for p in model.metadata_props:
        out.metadata_props.append(p)
    onnx.checker.check_model(out)
    return out
