"""What a process that cloaks sets before torch loads: :func:`prepare`, called by the application, never on import.

Why not on import: a library that changes its host's environment when imported surprises
every program that embeds it. The settings still matter, and each must be in place before
torch's first call, so the processes that cloak call :func:`prepare` first thing (the
``fawkes`` command and every Ray actor through ``fawkes_daemon``, the tests' conftest, the
benchmarks' package):

- ``MKL_CBWR=AUTO,STRICT``: Intel MKL's conditional numerical reproducibility. Without it MKL
  picks kernels by the memory alignment of each buffer, so two runs of the same seeded cloak
  differed by one grey level in some pixels (docs/decisions.md); ``AUTO,STRICT`` keeps the fast
  kernels of this CPU and only makes them alignment-independent;
- ``PYTORCH_ENABLE_MPS_FALLBACK=1``: on Apple's MPS an op with no Metal kernel runs on the CPU
  instead of failing (:mod:`fawkes_engine.device`);
- the heap tuning for large photos' window-sized tensors (:mod:`fawkes_engine.memory`).

A variable the user set is kept.
"""

from __future__ import annotations

import logging
import os

from fawkes_engine.memory import tune_heap

log = logging.getLogger("fawkes.engine")
_prepared = False
_said = False


def prepare() -> None:
    """Set the reproducibility and fallback variables (unless set) and tune the heap; idempotent."""
    global _prepared
    os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")
    os.environ.setdefault("PYTORCH_ENABLE_MPS_FALLBACK", "1")
    if not _prepared:
        tune_heap()
        _prepared = True


def say_if_unprepared() -> None:
    """A warning, once per process, where MKL was not asked for alignment-independent results."""
    global _said
    if not os.environ.get("MKL_CBWR") and not _said:
        _said = True
        log.warning(
            "MKL_CBWR is not set: call fawkes_engine.runtime.prepare() before torch loads, or seeded cloaks may differ in the last bit"
        )
