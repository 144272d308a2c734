"""A TensorFlow.js graph model (``model.json`` + weight shards) run as a torch module.

Why an interpreter and not a converter chain: tfjs → SavedModel → ONNX → torch needs
TensorFlow at build time and loses nothing we need. These face networks use a dozen plain
operations, so a small table of torch functions runs them directly, differentiably, and the
result exports to ONNX like any other module. Tensors stay in TensorFlow's NHWC layout; a
convolution views its input as NCHW (which is exactly PyTorch's channels-last memory format,
so no copy is made) and views its output back.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}


def read_weights(model_json: Path | dict, files: Callable[[str], bytes] | None = None) -> dict[str, np.ndarray]:
    """Every weight of the manifest, dequantized to float32 (float16 and uint8 quantization).

    ``model_json``: the file, or its parsed content with ``files`` giving each weights file's bytes
    (the bytes that were verified, never a second read of the disk).
    """
    if isinstance(model_json, dict):
        spec, read = model_json, files
    else:
        spec, folder = json.loads(model_json.read_text()), model_json.parent
        read = files or (lambda p: (folder / p).read_bytes())
    assert read is not None
    out: dict[str, np.ndarray] = {}
    for group in spec["weightsManifest"]:
        data = b"".join(read(p) for p in group["paths"])
        offset = 0
        for w in group["weights"]:
            shape = [int(s) for s in w["shape"]]
            n = int(np.prod(shape)) if shape else 1
            q = w.get("quantization")
            if q:
                qdt = {"float16": np.float16, "uint8": np.uint8, "uint16": np.uint16}[q["dtype"]]
                raw = np.frombuffer(data, qdt, n, offset)
                offset += raw.nbytes
                arr = raw.astype(np.float32) if qdt is np.float16 else raw.astype(np.float32) * q["scale"] + q["min"]
            else:
                dt = _DTYPES[w["dtype"]]
                arr = np.frombuffer(data, dt, n, offset).copy()
                offset += arr.nbytes
            out[w["name"]] = arr.reshape(shape)
    return out


def _attr(node: dict, key: str, default=None):
    a = node.get("attr", {}).get(key)
    if a is None:
        return default
    if "s" in a:
        return base64.b64decode(a["s"]).decode()
    if "list" in a:
        lst = a["list"]
        if "s" in lst:
            return [base64.b64decode(s).decode() for s in lst["s"]]
        if "i" in lst:
            return [int(i) for i in lst["i"]]
        return []
    if "b" in a:
        return bool(a["b"])
    if "i" in a:
        return int(a["i"])
    if "f" in a:
        return float(a["f"])
    return default


def _same_pad(x: torch.Tensor, k: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int]) -> torch.Tensor:
    """TensorFlow's SAME padding on an NCHW view: the odd pixel goes at the bottom and right."""
    pads = []
    for size, kk, s, d in zip(x.shape[2:], k, stride, dilation):
        eff = (kk - 1) * d + 1
        total = max((-(-size // s) - 1) * s + eff - size, 0)
        pads.append((total // 2, total - total // 2))
    (top, bottom), (left, right) = pads
    return F.pad(x, (left, right, top, bottom)) if top or bottom or left or right else x


class TfjsGraph(nn.Module):
    """The subgraph of a tfjs graph model that computes ``output`` from its one input (NHWC float)."""

    def __init__(self, model_json: Path | dict, output: str, files: Callable[[str], bytes] | None = None) -> None:
        super().__init__()
        spec = model_json if isinstance(model_json, dict) else json.loads(model_json.read_text())
        nodes = {n["name"]: n for n in spec["modelTopology"]["node"]}
        weights = read_weights(model_json, files)
        self.output = output
        self.program: list[tuple[str, str, list[str], dict]] = []  # (name, op, inputs, attrs) in run order
        self.consts: dict[str, torch.Tensor] = {}
        self.input_name = ""
        order: list[str] = []
        seen: set[str] = set()

        def visit(name: str) -> None:  # depth-first: every node after its inputs (iterative, graphs are deep)
            stack = [(name, False)]
            while stack:
                n, done = stack.pop()
                if done:
                    order.append(n)
                    continue
                if n in seen:
                    continue
                seen.add(n)
                stack.append((n, True))
                for i in nodes[n].get("input", []):
                    if not i.startswith("^"):
                        stack.append((i.split(":")[0], False))

        visit(output)
        for name in order:
            node = nodes[name]
            op = node["op"]
            if op == "Const":
                self.consts[name] = torch.from_numpy(weights[name].copy())
                continue
            if op == "Placeholder":
                self.input_name = name
                continue
            inputs = [i.split(":")[0] for i in node.get("input", []) if not i.startswith("^")]
            if op not in OPS and op not in CONVOLUTIONS:
                where = model_json.name if isinstance(model_json, Path) else "the graph"
                raise NotImplementedError(f"{where}: operation {op} ({name}) is not supported")
            self.program.append((name, op, inputs, self._prepare(op, node, inputs)))
        self.convs = nn.ModuleList()
        for _name, _op, inputs, a in self.program:
            if "kernel" in a:  # a real Conv2d module: forward hooks see it
                w = self.consts.pop(inputs[1])
                conv = nn.Conv2d(w.shape[1] * a["groups"], w.shape[0], a["kernel"], a["stride"], 0, a["dilation"], a["groups"], bias=False)
                conv.weight = nn.Parameter(w, requires_grad=False)
                a["conv"] = len(self.convs)
                self.convs.append(conv)
        for i, t in enumerate(self.consts.values()):
            self.register_buffer(f"c{i}", t, persistent=False)
        self._const_names = list(self.consts)

    def _prepare(self, op: str, node: dict, inputs: list[str]) -> dict:
        """Attributes decoded once; convolution kernels turned into PyTorch's layout once."""
        a: dict = {"fused": _attr(node, "fused_ops", []) or []}
        if op in CONVOLUTIONS:
            if _attr(node, "data_format", "NHWC") != "NHWC":
                raise NotImplementedError("only NHWC graphs")
            w = self.consts[inputs[1]]
            s, d = _attr(node, "strides", [1, 1, 1, 1]), _attr(node, "dilations", [1, 1, 1, 1])
            a.update(stride=(s[1], s[2]), dilation=(d[1], d[2]), padding=_attr(node, "padding", "VALID"))
            a["explicit"] = _attr(node, "explicit_paddings", []) or []
            if "Depthwise" in op:  # H×W×C×M → (C·M)×1×H×W, groups = C
                h, wd, c, m = w.shape
                self.consts[inputs[1]] = w.permute(2, 3, 0, 1).reshape(c * m, 1, h, wd).contiguous()
                a["groups"] = c
            else:  # H×W×I×O → O×I×H×W
                self.consts[inputs[1]] = w.permute(3, 2, 0, 1).contiguous()
                a["groups"] = 1
            a["kernel"] = tuple(self.consts[inputs[1]].shape[2:])
        for key in ("transpose_a", "transpose_b", "keep_dims"):
            a[key] = _attr(node, key, False)
        a["squeeze_dims"] = _attr(node, "squeeze_dims", []) or []
        a["alpha"] = _attr(node, "leakyrelu_alpha", 0.2)
        return a

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        env: dict[str, torch.Tensor] = {n: getattr(self, f"c{i}") for i, n in enumerate(self._const_names)}
        env[self.input_name] = x
        for name, op, inputs, a in self.program:
            env[name] = _conv(env, inputs, a, self.convs[a["conv"]]) if "conv" in a else OPS[op](env, inputs, a)
        return env[self.output]


def _conv(env: dict, inputs: list[str], a: dict, conv: nn.Conv2d) -> torch.Tensor:
    x = env[inputs[0]].permute(0, 3, 1, 2)  # NHWC storage viewed as NCHW: channels-last, no copy
    if a["padding"] == "SAME":
        x = _same_pad(x, a["kernel"], a["stride"], a["dilation"])
    elif a["padding"] == "EXPLICIT":
        p = a["explicit"]
        x = F.pad(x, (p[4], p[5], p[2], p[3]))
    return _fused(conv(x).permute(0, 2, 3, 1), env, inputs[2:], a["fused"], a)


def _fused(y: torch.Tensor, env: dict, extra: list[str], ops: list[str], a: dict) -> torch.Tensor:
    """The operations grappler folded into a convolution or matmul: bias, then an activation."""
    args = [env[i] for i in extra]
    for op in ops:
        if op == "BiasAdd":
            y = y + args.pop(0)
        elif op == "Relu":
            y = F.relu(y)
        elif op == "Relu6":
            y = F.relu6(y)
        elif op == "Prelu":
            alpha = args.pop(0)
            y = F.relu(y) - alpha * F.relu(-y)
        elif op == "LeakyRelu":
            y = F.leaky_relu(y, a["alpha"])
        elif op == "Elu":
            y = F.elu(y)
        elif op == "Sigmoid":
            y = torch.sigmoid(y)
        else:
            raise NotImplementedError(f"fused operation {op}")
    return y


def _matmul(env: dict, inputs: list[str], a: dict) -> torch.Tensor:
    x, w = env[inputs[0]], env[inputs[1]]
    x = x.transpose(-1, -2) if a["transpose_a"] else x
    w = w.transpose(-1, -2) if a["transpose_b"] else w
    return _fused(x @ w, env, inputs[2:], a["fused"], a)


def _binary(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]):
    return lambda env, i, a: fn(env[i[0]], env[i[1]])


def _unary(fn: Callable[[torch.Tensor], torch.Tensor]):
    return lambda env, i, a: fn(env[i[0]])


def _axes(t: torch.Tensor) -> list[int]:
    return [int(v) for v in t.reshape(-1).tolist()]


def _pad(env: dict, i: list[str], a: dict) -> torch.Tensor:
    p = _axes(env[i[1]])  # [[before, after] per axis], NHWC
    flat: list[int] = []
    for axis in reversed(range(len(p) // 2)):
        flat += [p[2 * axis], p[2 * axis + 1]]
    return F.pad(env[i[0]], flat)


CONVOLUTIONS = ("Conv2D", "_FusedConv2D", "DepthwiseConv2dNative", "FusedDepthwiseConv2dNative")
OPS: dict[str, Callable[[dict, list[str], dict], torch.Tensor]] = {
    "MatMul": _matmul,
    "_FusedMatMul": _matmul,
    "Add": _binary(torch.add),
    "AddV2": _binary(torch.add),
    "BiasAdd": _binary(torch.add),
    "Sub": _binary(torch.sub),
    "Mul": _binary(torch.mul),
    "RealDiv": _binary(torch.div),
    "Maximum": _binary(torch.maximum),
    "Minimum": _binary(torch.minimum),
    "Relu": _unary(F.relu),
    "Relu6": _unary(F.relu6),
    "Sigmoid": _unary(torch.sigmoid),
    "Abs": _unary(torch.abs),
    "Square": _unary(torch.square),
    "Rsqrt": _unary(torch.rsqrt),
    "Identity": _unary(lambda t: t),
    "Softmax": _unary(lambda t: torch.softmax(t, -1)),
    "Pad": _pad,
    "Mean": lambda env, i, a: env[i[0]].mean(dim=_axes(env[i[1]]), keepdim=a["keep_dims"]),
    "Sum": lambda env, i, a: env[i[0]].sum(dim=_axes(env[i[1]]), keepdim=a["keep_dims"]),
    "Reshape": lambda env, i, a: env[i[0]].reshape(_axes(env[i[1]])),
    "Squeeze": lambda env, i, a: env[i[0]].squeeze(tuple(a["squeeze_dims"])) if a["squeeze_dims"] else env[i[0]].squeeze(),
}
