"""Which accelerator the cloak runs on: CUDA, then Apple's MPS, then the CPU.

Why a plain function of what is available: the choice is the same logic on every machine,
and the tests check it here, where neither a GPU nor a Mac exists, by passing availability in.
On MPS, an op PyTorch has no Metal kernel for runs on the CPU (``PYTORCH_ENABLE_MPS_FALLBACK``,
set in :mod:`fawkes_engine` before torch is imported); PyTorch warns once per such op, and
:func:`log_mps_fallbacks` routes that warning into the log, once each.
"""

from __future__ import annotations

import logging
import re
import warnings

log = logging.getLogger("fawkes_engine.device")

DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


class DeviceUnavailable(ValueError):
    """An explicitly requested accelerator that this machine or this torch build does not have."""


def pick_device(requested: str, cuda: bool, mps: bool) -> str:
    """The torch device for ``requested`` (auto, cpu, mps, cuda, cuda:N), given what is available.

    ``auto`` prefers CUDA, then MPS, then the CPU. An explicit accelerator that is missing is an
    error naming what to set instead, never a silent fall back to a slower device.
    """
    if not DEVICE.match(requested):
        raise ValueError(f"{requested!r} is not a device: auto, cpu, cuda, cuda:N or mps")
    if requested == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if requested.startswith("cuda") and not cuda:
        raise DeviceUnavailable(f"device {requested!r}: torch sees no CUDA GPU here; set device: auto or cpu")
    if requested == "mps" and not mps:
        raise DeviceUnavailable("device 'mps': this torch has no usable Metal (MPS) backend here; set device: auto or cpu")
    return requested


def available() -> tuple[bool, bool]:
    """(CUDA, MPS) as this torch build and machine offer them."""
    import torch

    mps = getattr(torch.backends, "mps", None)
    return torch.cuda.is_available(), bool(mps is not None and mps.is_available())


def log_mps_fallbacks() -> None:
    """Say in the log, once per op, which ops run on the CPU because MPS has no kernel for them."""
    warnings.filterwarnings("once", message=r".*not currently supported on the MPS backend.*")
    logging.captureWarnings(True)


def onnx_providers(device: str, available: list[str]) -> list[str]:
    """ONNX Runtime's providers for a torch device: CUDA's or CoreML's first where the wheel has them, CPU always last."""
    wanted = ["CUDAExecutionProvider"] if device.startswith("cuda") else ["CoreMLExecutionProvider"] if device == "mps" else []
    return [p for p in wanted if p in available] + ["CPUExecutionProvider"]
