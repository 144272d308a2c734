"""The trackers a protected user faces (paper §5.1), each trained on a labelled training set.

- :class:`LinearTracker` — transfer learning: a softmax classifier on a frozen extractor's
  L2-normalized features (the paper's main setting).
- :class:`SimilarityTracker` — what commercial APIs do: nearest gallery embedding, with the
  extractor's match threshold; farther than that is "unknown".
- :class:`EndToEndTracker` — the extractor's last layers fine-tuned with a softmax head.
A tracker returns class labels; ``UNKNOWN`` means "no match".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

UNKNOWN = "<unknown>"


def _norm(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class LinearTracker:
    """Multinomial logistic regression on normalized features (full-batch L-BFGS, L2-regularized)."""

    name = "linear"

    def __init__(self, l2: float = 1e-3, seed: int = 0) -> None:
        self.l2 = l2
        self.seed = seed

    def fit(self, feats: np.ndarray, labels: list[str]) -> LinearTracker:
        self.classes = sorted(set(labels))
        idx = {c: i for i, c in enumerate(self.classes)}
        x = torch.from_numpy(_norm(feats)).float()
        y = torch.tensor([idx[c] for c in labels])
        torch.manual_seed(self.seed)
        self.w = torch.zeros(x.shape[1], len(self.classes), requires_grad=True)
        self.b = torch.zeros(len(self.classes), requires_grad=True)
        opt = torch.optim.LBFGS([self.w, self.b], lr=1.0, max_iter=200, line_search_fn="strong_wolfe")
        scale = 16.0  # features are unit vectors: a fixed temperature makes the problem well scaled

        def closure():
            opt.zero_grad()
            loss = F.cross_entropy(scale * x @ self.w + self.b, y) + self.l2 * (self.w**2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        self.scale = scale
        return self

    @torch.no_grad()
    def predict(self, feats: np.ndarray) -> list[str]:
        x = torch.from_numpy(_norm(feats)).float()
        return [self.classes[i] for i in (self.scale * x @ self.w + self.b).argmax(1).tolist()]


@dataclass
class SimilarityTracker:
    """Nearest gallery face; "unknown" beyond ``threshold`` (in the extractor's own metric)."""

    threshold: float
    metric: str = "cosine"
    name: str = "similarity"

    def fit(self, feats: np.ndarray, labels: list[str]) -> SimilarityTracker:
        self.gallery = feats.astype(np.float32)
        self.labels = list(labels)
        return self

    def _dist(self, feats: np.ndarray) -> np.ndarray:
        if self.metric == "cosine":
            return 1 - _norm(feats) @ _norm(self.gallery).T
        return np.linalg.norm(feats[:, None] - self.gallery[None], axis=2)

    def predict(self, feats: np.ndarray) -> list[str]:
        d = self._dist(feats)
        j = d.argmin(1)
        return [self.labels[k] if d[i, k] <= self.threshold else UNKNOWN for i, k in enumerate(j)]


class EndToEndTracker:
    """Fine-tune a copy of the extractor (all weights) with a softmax head for a few epochs.

    Works on aligned crops (N×S×S×3 uint8). The copy is built fresh from the weights file
    (never shares memory with the frozen cloaking model).
    """

    name = "end-to-end"

    def __init__(self, extractor, epochs: int = 3, lr: float = 2e-5, batch: int = 32, seed: int = 0) -> None:
        self.extractor = extractor
        self.epochs, self.lr, self.batch, self.seed = epochs, lr, batch, seed

    def fit(self, crops: np.ndarray, labels: list[str]) -> EndToEndTracker:
        torch.manual_seed(self.seed)
        self.classes = sorted(set(labels))
        idx = {c: i for i, c in enumerate(self.classes)}
        self.net = self.extractor.build_torch().train()
        for m in self.net.modules():  # keep frozen statistics: tiny batches would wreck them
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.eval()
        self.head = torch.nn.Linear(self.extractor.spec.embedding_dim, len(self.classes))
        x = torch.from_numpy(crops.transpose(0, 3, 1, 2).astype(np.float32) / 255)
        y = torch.tensor([idx[c] for c in labels])
        with torch.no_grad():  # start the head at the class centroids: a few epochs then refine, not learn from scratch
            emb0 = torch.cat([F.normalize(self.net(x[i : i + 64]), dim=1) for i in range(0, len(x), 64)])
            cent = torch.stack([emb0[y == k].mean(0) for k in range(len(self.classes))])
            self.head.weight.copy_(F.normalize(cent, dim=1))
            self.head.bias.zero_()
        params = list(self.net.parameters()) + list(self.head.parameters())
        for p in params:
            p.requires_grad_(True)
        opt = torch.optim.Adam([{"params": self.net.parameters(), "lr": self.lr}, {"params": self.head.parameters(), "lr": 1e-2}])
        g = torch.Generator().manual_seed(self.seed)
        for _ in range(self.epochs):
            perm = torch.randperm(len(x), generator=g)
            for i in range(0, len(x), self.batch):
                b = perm[i : i + self.batch]
                xb = x[b]
                if torch.rand(1, generator=g).item() < 0.5:
                    xb = xb.flip(3)
                emb = F.normalize(self.net(xb), dim=1) * 16
                loss = F.cross_entropy(self.head(emb), y[b])
                opt.zero_grad()
                loss.backward()
                opt.step()
        self.net.eval()
        return self

    @torch.no_grad()
    def predict(self, crops: np.ndarray) -> list[str]:
        x = torch.from_numpy(crops.transpose(0, 3, 1, 2).astype(np.float32) / 255)
        out = []
        for i in range(0, len(x), 64):
            emb = F.normalize(self.net(x[i : i + 64]), dim=1) * 16
            out += self.head(emb).argmax(1).tolist()
        return [self.classes[i] for i in out]


def loo_1nn_accuracy(emb: np.ndarray, labels: np.ndarray, metric: str) -> float:
    """Leave-one-out 1-NN identification: each face labelled by its nearest other face."""
    if metric == "cosine":
        z = emb / np.linalg.norm(emb, axis=1, keepdims=True)
        d = 1 - z @ z.T
    else:
        d = np.linalg.norm(emb[:, None] - emb[None], axis=2)
    np.fill_diagonal(d, np.inf)
    return float((labels[d.argmin(1)] == labels).mean())


def protection_rate(predictions: list[str], user: str) -> float:
    """Share of the user's clean test photos the tracker does not identify as the user (paper §5.1)."""
    if not predictions:
        return float("nan")
    return float(np.mean([p != user for p in predictions]))


def accuracy(predictions: list[str], truth: list[str]) -> float:
    if not truth:
        return float("nan")
    return float(np.mean([p == t for p, t in zip(predictions, truth)]))


@dataclass
class TrackerTask:
    """What a tracker is trained and tested on, for one protected user and condition.

    Features come from the view; the images are produced only for a tracker that needs
    them (end-to-end fine-tuning re-crops the photos itself).
    """

    view: object  # fawkes_engine.evaluate.views.View
    train_feats: np.ndarray
    labels: list[str]
    test_user_feats: np.ndarray
    test_other_feats: np.ndarray
    train_images: Callable[[], list[np.ndarray]]
    test_user_images: Callable[[], list[np.ndarray]]
    test_other_images: Callable[[], list[np.ndarray]]
    seed: int = 0
    epochs: int = 2


def _linear(t: TrackerTask) -> tuple[list[str], list[str]]:
    tr = LinearTracker(seed=t.seed).fit(t.train_feats, t.labels)
    return tr.predict(t.test_user_feats), tr.predict(t.test_other_feats)


def _similarity(t: TrackerTask) -> tuple[list[str], list[str]]:
    tr = SimilarityTracker(t.view.threshold, t.view.metric).fit(t.train_feats, t.labels)  # type: ignore[attr-defined]
    return tr.predict(t.test_user_feats), tr.predict(t.test_other_feats)


def _end_to_end(t: TrackerTask) -> tuple[list[str], list[str]]:
    ext = getattr(t.view, "ext", None)
    if ext is None:
        raise ValueError("end-to-end needs one of our extractors")
    crops = t.view.crops  # type: ignore[attr-defined]
    tr = EndToEndTracker(ext, epochs=t.epochs, seed=t.seed).fit(crops(t.train_images()), t.labels)
    return tr.predict(crops(t.test_user_images())), tr.predict(crops(t.test_other_images()))


# name → train and predict (the user's test photos, the others' test photos)
TRACKERS: dict[str, Callable[[TrackerTask], tuple[list[str], list[str]]]] = {
    "linear": _linear,
    "similarity": _similarity,
    "end-to-end": _end_to_end,
}
