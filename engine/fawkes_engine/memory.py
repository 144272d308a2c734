"""Give freed heap memory back to the operating system (glibc only; a no-op elsewhere).

Why: building an extractor parses and converts a large ONNX protobuf; glibc keeps the
freed arenas mapped, so a long-running daemon would carry memory it no longer uses. Called
after model builds and after each large photo.

And why a fixed mmap threshold: glibc raises its threshold for serving allocations from
``mmap`` to the size of the largest block freed. The cloak of a large photo allocates and
frees window-sized tensors every step; once the threshold had risen past them they came from
the heap and fragmented it. Pinning it keeps such blocks in ``mmap`` (returned on free),
while the smaller tensors of ordinary photos stay on the faster heap.

And why a higher trim threshold: fixing the mmap threshold also fixes glibc's trim
threshold, so every free at the top of the heap handed the pages back and the next step's
tensors faulted them in again. :func:`release_free_memory` returns the rest after the
optimization loop and after each photo. The measurements behind both thresholds:
docs/decisions.md, "Memory: glibc's thresholds".
"""

from __future__ import annotations

import ctypes
import sys

MMAP_THRESHOLD = 16 << 20
TRIM_THRESHOLD = 32 << 20
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # musl or no glibc: nothing to do
        return None


def tune_heap(mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD) -> None:
    libc = _libc()
    if libc is not None and hasattr(libc, "mallopt"):
        libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold)
        libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold)


def release_free_memory() -> None:
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)
