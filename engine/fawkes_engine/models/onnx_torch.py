"""ONNX → differentiable torch, for the built-in SFace.

``onnx2torch`` reads opsets up to 17–18 reliably; newer files are moved down with ONNX's
version converter first. The converted graph is then made cheaper for input-gradient
work, which is all cloaking does with it: batch norms are folded into the convolutions
before them, and PReLU uses a formulation whose backward pass skips the slope gradient
(onnx2torch's version spent a third of SFace's backward time there).
"""

from __future__ import annotations

from pathlib import Path

import onnx
import torch
from onnx import version_converter
from torch import fx, nn

MAX_OPSET = 17


class _PReLUInputGrad(torch.autograd.Function):
    """``F.prelu`` forward; backward returns only the input gradient (the slope is frozen)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, slope)
        return nn.functional.prelu(x, slope)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        x, slope = ctx.saved_tensors
        # the factor is 1 where x > 0 and s where x < 0: prelu(sign(x)) is 1 or −s, and times sign(x)
        # it is 1 or s, for a slope of either sign. Built from prelu's own kernel, which broadcasts the
        # per-channel slope cheaply, where torch.where, comparisons and a broadcast addcmul were several
        # times slower on CPU (docs/decisions.md, "PReLU's backward")
        sx = torch.sign(x)
        # under autocast x may be bf16/fp16 while the frozen slope stays float32
        return nn.functional.prelu(sx, slope.to(sx.dtype)).mul_(sx).mul_(grad), None


class InputGradPReLU(nn.Module):
    """PReLU with a fixed slope: same values as ``F.prelu``, cheaper backward w.r.t. the input."""

    def forward(self, x: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
        slope = slope.reshape(-1)
        if torch.onnx.is_in_onnx_export() or not torch.is_grad_enabled():
            return nn.functional.prelu(x, slope)
        return _PReLUInputGrad.apply(x, slope)


def _faster(gm: fx.GraphModule) -> nn.Module:
    for name, mod in list(gm.named_modules()):
        if type(mod).__name__ == "OnnxPReLU":
            parent_name, _, child = name.rpartition(".")
            parent = gm.get_submodule(parent_name) if parent_name else gm
            setattr(parent, child, InputGradPReLU())
    _fold_batch_norms(gm)
    return gm


def _fold_batch_norms(gm: fx.GraphModule) -> None:
    """Fold each eval-mode BatchNorm2d into the Conv2d that alone feeds it."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    modules = dict(gm.named_modules())
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(modules.get(node.target), nn.BatchNorm2d):
            continue
        src = node.args[0] if node.args else None
        if not isinstance(src, fx.Node) or src.op != "call_module" or len(src.users) != 1:
            continue
        conv = modules.get(src.target)
        if not isinstance(conv, nn.Conv2d):
            continue
        fused = fuse_conv_bn_eval(conv.eval(), modules[node.target].eval())
        parent_name, _, child = str(src.target).rpartition(".")
        setattr(gm.get_submodule(parent_name) if parent_name else gm, child, fused)
        node.replace_all_uses_with(src)
        gm.graph.erase_node(node)
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()


def onnx_to_torch(path: str | Path) -> nn.Module:
    from onnx2torch import convert

    model = onnx.load(str(path))
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=MAX_OPSET)
    if opset > MAX_OPSET:
        model = version_converter.convert_version(model, MAX_OPSET)
    gm = convert(model).eval()
    return _faster(gm).eval()
