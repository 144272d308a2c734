"""Checks on images that only tests need (the library has no use for them)."""

from __future__ import annotations

import numpy as np


def outside_regions_unchanged(before: np.ndarray, after: np.ndarray, regions: list[tuple[int, int, int, int]]) -> bool:
    """True when every pixel outside the given regions is identical: a cloak touches its faces only."""
    mask = np.ones(before.shape[:2], bool)
    for x0, y0, x1, y1 in regions:
        mask[y0:y1, x0:x1] = False
    return bool(np.array_equal(before[mask], after[mask]))


def detection_rate(scores: list[float], threshold: float) -> float:
    """The share of finite scores above a detector's threshold."""
    s = np.array([v for v in scores if np.isfinite(v)])
    return float(np.mean(s > threshold)) if len(s) else float("nan")
