"""Fawkes Sync's cloaking library: images in, cloaked images and measurements out.

Importing the package pins Intel MKL to conditional numerical reproducibility. Without it
MKL picks kernels by the memory alignment of each buffer, so two runs of the same seeded
cloak differed in the sixth decimal of a feature and, after 40 Adam steps, by one grey
level in some pixels (docs/decisions.md). ``AUTO,STRICT`` keeps the fast
kernels of this CPU and only makes them alignment-independent (no measurable slowdown).
It must be set before MKL's first call, so it lives here, before anything imports torch.
For the same reason ``PYTORCH_ENABLE_MPS_FALLBACK`` is set here: on Apple's MPS an op with no
Metal kernel then runs on the CPU instead of failing (:mod:`fawkes_engine.device`).
"""

import os

os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")
os.environ.setdefault("PYTORCH_ENABLE_MPS_FALLBACK", "1")

from fawkes_engine.memory import tune_heap as _tune_heap  # noqa: E402

_tune_heap()  # large photos' window-sized tensors: see fawkes_engine.memory
