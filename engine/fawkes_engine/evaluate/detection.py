"""How a tracker could detect cloaked classes (paper §8), as plain statistics on features.

(a) Target closeness: a cloaked class is pulled toward another identity, so its centroid
may sit unusually close to some other class centroid. Score: how many standard deviations
the class's nearest-centroid distance is below the mean nearest-centroid distance of
normal classes. (b) Two clusters: when a class mixes clean and cloaked photos, its
features split into two groups. Score: distance between the two 2-means centres over the
mean distance of points to their own centre, compared with the same ratio in normal
classes. Both take L2-normalized features.
"""

from __future__ import annotations

import numpy as np


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def nearest_centroid_distances(centroids: np.ndarray) -> np.ndarray:
    d = np.linalg.norm(centroids[:, None] - centroids[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    return d.min(axis=1)


def closeness_z(class_feats: np.ndarray, normal_centroids: np.ndarray) -> float:
    """z of one class against normal classes: (mean normal NN distance − this class's NN distance) / std.

    ``normal_centroids`` are the other classes the tracker knows (its own classes and any
    public identities, which is where a target would come from). Positive: closer than usual.
    """
    normal = _unit(normal_centroids)
    nn = nearest_centroid_distances(normal)
    mine = _unit(_unit(class_feats).mean(0))
    d = float(np.linalg.norm(normal - mine, axis=1).min())
    return float((nn.mean() - d) / max(nn.std(), 1e-12))


def normal_closeness_z(normal_centroids: np.ndarray) -> np.ndarray:
    """Each normal class's own z against the others (false-positive reference)."""
    normal = _unit(normal_centroids)
    nn = nearest_centroid_distances(normal)
    out = []
    for i in range(len(normal)):
        rest = np.delete(nn, i)
        out.append((rest.mean() - nn[i]) / max(rest.std(), 1e-12))
    return np.array(out)


def two_means(x: np.ndarray, seed: int = 0, iters: int = 50) -> np.ndarray:
    """Labels 0/1 from 2-means with a k-means++ start (best of a few restarts by inertia)."""
    x = _unit(x)
    rng = np.random.default_rng(seed)
    best, best_inertia = np.zeros(len(x), int), np.inf
    for _ in range(5):
        c0 = x[rng.integers(len(x))]
        d = np.linalg.norm(x - c0, axis=1) ** 2
        c1 = x[rng.choice(len(x), p=d / d.sum())] if d.sum() > 0 else c0
        centres = np.stack([c0, c1])
        for _ in range(iters):
            lab = np.linalg.norm(x[:, None] - centres[None], axis=-1).argmin(1)
            new = np.stack([x[lab == k].mean(0) if np.any(lab == k) else centres[k] for k in range(2)])
            if np.allclose(new, centres):
                break
            centres = new
        inertia = sum(float((np.linalg.norm(x[lab == k] - centres[k], axis=1) ** 2).sum()) for k in range(2))
        if inertia < best_inertia:
            best, best_inertia = lab, inertia
    return best


def two_cluster_score(x: np.ndarray, seed: int = 0) -> float:
    """Distance between the two 2-means centres / mean distance of points to their own centre."""
    x = _unit(x)
    if len(x) < 4:
        return float("nan")
    lab = two_means(x, seed)
    if lab.min() == lab.max():
        return 0.0
    centres = np.stack([x[lab == k].mean(0) for k in range(2)])
    within = np.mean([np.linalg.norm(x[i] - centres[lab[i]]) for i in range(len(x))])
    return float(np.linalg.norm(centres[0] - centres[1]) / max(within, 1e-12))
