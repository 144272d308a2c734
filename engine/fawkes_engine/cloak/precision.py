"""The extractors as the optimization loop runs them: in reduced precision, compiled, or as they are.

Why a separate wrapper: only the loop's forward and backward passes are worth speeding up
(they are nearly all of a cloak's arithmetic on a GPU), while the clean features that set a
face's goal, and every measurement, stay in float32 so that a faster loop cannot move the
yardstick it is judged by. Reduced precision is autocast around the network alone: the
embedding comes back as float32 before the loss, the DSSIM penalty and Adam see it.
"""

from __future__ import annotations

import torch
from torch import nn

from fawkes_engine.cloak.options import PRECISIONS, Precision

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Autocast(nn.Module):
    """``module`` under ``torch.autocast`` (convolutions and matrix products in ``dtype``), float32 out."""

    def __init__(self, module: nn.Module, device_type: str, dtype: torch.dtype) -> None:
        super().__init__()
        self.module, self.device_type, self.dtype = module, device_type, dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device_type, dtype=self.dtype):
            y = self.module(x)
        return y.float()


def loop_module(module: nn.Module, precision: Precision, compile: bool, device: torch.device) -> nn.Module:
    """The module the loop calls: ``module`` itself at fp32 without compile (the default, unchanged)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    out = module if precision == "fp32" else Autocast(module, device.type, _DTYPES[precision])
    if compile:
        # the batch shrinks as faces finish: one graph with a symbolic batch size, not one per size
        out = torch.compile(out, dynamic=True)  # type: ignore[assignment]
    return out
