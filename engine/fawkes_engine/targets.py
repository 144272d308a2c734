"""The target bank and target selection (paper eq. 3).

The bank holds, per extractor, the embeddings of every image of ~260 public LFW
identities (never images: the package ships numbers only), with provenance. For a user's
faces we pick the identity whose centroid is farthest from all of them — summed over the
extractors of the cloaking set, on L2-normalized features — choosing among the farthest
``top_k`` with a seeded draw so that the same person keeps getting the same target
(cloaks only work if a person's photos all move the same way). Each face is then paired
with one image of that identity (image-specific cloaks).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

BANK_FILE = "target_bank.npz"


def normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


@dataclass
class TargetBank:
    identities: list[str]
    image_identity: np.ndarray  # image index -> identity index
    embeddings: dict[str, np.ndarray]  # extractor -> images × dim (L2-normalized, float32)
    provenance: dict

    def centroids(self, extractor: str) -> np.ndarray:
        emb = self.embeddings[extractor]
        c = np.stack([emb[self.image_identity == i].mean(0) for i in range(len(self.identities))])
        return normalize(c)

    def images_of(self, identity: int) -> np.ndarray:
        return np.flatnonzero(self.image_identity == identity)

    def save(self, path: str | Path) -> None:
        arrays: dict[str, Any] = {f"emb_{k}": v.astype(np.float16) for k, v in self.embeddings.items()}
        np.savez_compressed(
            path,
            identities=np.array(self.identities),
            image_identity=self.image_identity.astype(np.int32),
            provenance=np.array(json.dumps(self.provenance)),
            **arrays,
        )

    @classmethod
    def load(cls, path: str | Path | None = None) -> TargetBank:
        path = Path(path) if path else Path(str(resources.files("fawkes_engine") / "data" / BANK_FILE))
        if not path.exists():
            raise FileNotFoundError(f"{path}: target bank not found (build it with scripts/build_target_bank.py)")
        with np.load(path, allow_pickle=False) as z:
            emb = {k[4:]: normalize(z[k].astype(np.float32)) for k in z.files if k.startswith("emb_")}
            return cls(
                identities=[str(s) for s in z["identities"]],
                image_identity=z["image_identity"].astype(np.int64),
                embeddings=emb,
                provenance=json.loads(str(z["provenance"])),
            )


def target_scores(bank: TargetBank, user_features: dict[str, np.ndarray]) -> np.ndarray:
    """score_k = Σ_extractors min over user faces ‖C_k − Φ(x)‖ (eq. 3), one per bank identity."""
    score = np.zeros(len(bank.identities))
    for name, feats in user_features.items():
        if name not in bank.embeddings:
            raise KeyError(f"target bank has no embeddings for extractor {name!r}; rebuild it")
        c = bank.centroids(name)
        d = np.linalg.norm(c[:, None, :] - normalize(feats)[None], axis=-1)  # identities × faces
        score += d.min(axis=1)
    return score


# where a ranking's preferred identities sit among the bank's scores (0: nearest, 1: farthest)
RANK_QUANTILE = {"farthest": 1.0, "average": 0.5, "reachable": 0.25}


def rank_targets(bank: TargetBank, user_features: dict[str, np.ndarray], rank: str = "farthest") -> np.ndarray:
    """Identity indices, best first. ``farthest``: the paper's eq. 3. ``average``: nearest to the
    median score, the §8 mitigation against target-closeness and two-cluster detection (a
    cloaked class that sits unusually far from, or near to, everything stands out).
    ``reachable``: nearest to the lower quartile, an identity that is clearly someone else but
    that a small budget can move the features toward (the farthest one may be out of reach)."""
    if rank not in RANK_QUANTILE:
        raise ValueError(f"unknown target ranking {rank!r}: one of {', '.join(RANK_QUANTILE)}")
    score = target_scores(bank, user_features)
    if rank == "farthest":
        return np.argsort(-score)
    return np.argsort(np.abs(score - np.quantile(score, RANK_QUANTILE[rank])))


def select_target(
    bank: TargetBank,
    user_features: dict[str, np.ndarray],
    top_k: int = 5,
    seed: int = 0,
    exclude: set[str] | None = None,
    rank: str = "farthest",
    stable: bool = False,
) -> int:
    """The target identity for these faces: a seeded pick among the ``top_k`` best by ``rank``.

    ``stable``: the pick depends on the *set* of the top ``top_k`` and the seed only, not on
    their order (the candidate with the smallest seeded hash of its name wins). Why: photos
    of the same person rank the bank in slightly different orders, and a tracker's class for
    that person moves only if all of its photos are pulled toward the same identity.
    """
    order = [i for i in rank_targets(bank, user_features, rank) if not exclude or bank.identities[i] not in exclude]
    k = max(1, min(top_k, len(order)))
    if stable:
        return int(min(order[:k], key=lambda i: hashlib.sha256(f"{seed}:{bank.identities[i]}".encode()).digest()))
    return int(order[np.random.default_rng(seed).integers(k)])


def identity_index(bank: TargetBank, name: str) -> int:
    try:
        return bank.identities.index(name)
    except ValueError:
        raise KeyError(f"target identity {name!r} is not in the bank") from None
