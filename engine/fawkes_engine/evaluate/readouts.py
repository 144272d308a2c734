"""Continuous readouts beside the protection rates, and intervals over users.

A rate over a few users moves in big steps; these measure how far each user is from the
tracker's decision, so that two cloaks can be told apart before either flips a photo:

- ``r_self``: cosine of each cloaked training embedding to the user's clean centroid (the
  centroid of the same training photos, clean). A linear tracker keeps the user's class where
  these embeddings are; 1 means the cloak left the identity where it was.
- ``margin``: per clean test photo, the tracker's score for the user's class minus the best
  other class (logits for the linear tracker, best cosine per class for 1-NN); below 0 the
  photo is not recognized.
- ``rank``: where the user's class stands among all classes for that photo (1: recognized).
"""

from __future__ import annotations

import numpy as np
import torch

from fawkes_engine.evaluate.trackers import LinearTracker, TrackerTask


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def class_scores(task: TrackerTask, tracker: str) -> tuple[list[str], np.ndarray]:
    """Each class's score for each of the user's clean test photos (classes, photos × classes)."""
    if tracker == "linear":
        tr = LinearTracker(seed=task.seed).fit(task.train_feats, task.labels)
        with torch.no_grad():
            x = torch.from_numpy(_unit(task.test_user_feats)).float()
            logits = (tr.scale * x @ tr.w + tr.b).numpy()
        return tr.classes, logits
    if tracker == "similarity":
        classes = sorted(set(task.labels))
        sims = _unit(task.test_user_feats) @ _unit(task.train_feats).T
        lab = np.asarray(task.labels)
        return classes, np.stack([sims[:, lab == c].max(1) for c in classes], axis=1)
    raise ValueError(f"no continuous readout for tracker {tracker!r}")


def margins_and_ranks(task: TrackerTask, tracker: str, user: str) -> tuple[np.ndarray, np.ndarray]:
    """Per clean test photo: the user's score minus the best other class's, and the user's rank (1 = top)."""
    classes, scores = class_scores(task, tracker)
    k = classes.index(user)
    others = np.delete(scores, k, axis=1)
    mine = scores[:, k]
    return mine - others.max(1), 1 + (others > mine[:, None]).sum(1)


def r_self(cloaked: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """Cosine of each cloaked embedding to the centroid of the clean ones (same photos)."""
    c = _unit(clean).mean(0)
    c = c / max(float(np.linalg.norm(c)), 1e-12)
    return _unit(cloaked) @ c


def bootstrap_mean(values: list[float], n: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and its percentile-bootstrap interval, resampling the values (one per user)."""
    v = np.asarray([x for x in values if not np.isnan(x)], dtype=float)
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(n, len(v)))].mean(1)
    lo, hi = np.percentile(means, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return float(v.mean()), float(lo), float(hi)
