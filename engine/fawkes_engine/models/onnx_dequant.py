"""Turn OpenCV Zoo's block-quantized (``int8bq``) ONNX files into plain fp32 graphs.

Why: the shipped SFace file keeps stale graph inputs that onnxruntime rejects, and its
block-wise ``DequantizeLinear`` (opset 21 ``block_size``) is unsupported by ONNX→torch
converters. Dequantizing once, offline, gives a graph that every runtime and converter
reads, and that is numerically what OpenCV computes.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper


def dequantize_blockwise(q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None, axis: int, block: int) -> np.ndarray:
    """ONNX ``DequantizeLinear``: per-tensor, per-axis, or blocked (``block`` values on ``axis`` share a scale)."""
    qf = q.astype(np.float32)
    scale = scale.astype(np.float32)
    zp = np.zeros_like(scale) if zero_point is None else zero_point.astype(np.float32)
    axis = axis % max(q.ndim, 1)
    if scale.size == 1:
        return (qf - zp.reshape(())) * scale.reshape(())
    if block:
        idx = np.arange(q.shape[axis]) // block
        return (qf - np.take(zp, idx, axis=axis)) * np.take(scale, idx, axis=axis)
    shape = [-1 if i == axis else 1 for i in range(q.ndim)]
    return (qf - zp.reshape(shape)) * scale.reshape(shape)


def dequantize_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """Fold every constant ``DequantizeLinear`` (and a following constant ``Reshape``) into fp32 initializers."""
    graph = model.graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    folded: dict[str, np.ndarray] = {}
    keep: list[onnx.NodeProto] = []
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            zp = inits.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
            folded[node.output[0]] = dequantize_blockwise(
                inits[node.input[0]], inits[node.input[1]], zp, int(attrs.get("axis", 1)), int(attrs.get("block_size", 0))
            )
            continue
        if node.op_type == "Reshape" and node.input[0] in folded and node.input[1] in inits:
            folded[node.output[0]] = folded[node.input[0]].reshape(inits[node.input[1]].astype(np.int64))
            continue
        keep.append(node)
    used = {name for node in keep for name in node.input}
    new_inits = [i for i in graph.initializer if i.name in used]
    new_inits += [numpy_helper.from_array(v.astype(np.float32), name=k) for k, v in folded.items() if k in used]
    init_names = {i.name for i in new_inits}
    real_inputs = [i for i in graph.input if i.name not in init_names and i.name in used]
    new_graph = helper.make_graph(keep, graph.name, real_inputs, list(graph.output), new_inits)
    out = helper.make_model(new_graph, opset_imports=list(model.opset_import), producer_name="fawkes-sync dequantize")
    out.ir_version = model.ir_version
    onnx.checker.check_model(out)
    return out
