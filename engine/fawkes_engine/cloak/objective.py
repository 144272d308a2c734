"""What the optimizer minimizes: eq. 2's feature term toward a goal, and how near a face is to crossing.

The goal is one feature row per face and extractor: a bank identity's photo (targeted,
eq. 3), the face's own features (untargeted: pushed away from), or given features (a Sybil
photo pulled onto the user's). With ``stop_fraction`` the pull ends part of the way (§8).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from fawkes_engine.cloak.options import Targeting
from fawkes_engine.targets import TargetBank


@dataclass
class Goal:
    """Per extractor, per face: the features to approach (``sign`` +1) or to leave (−1)."""

    features: list[torch.Tensor]
    names: list[str | None]  # the target identity of each face (a label for given features, None untargeted)
    sign: float

    @classmethod
    def given(cls, goals: dict[str, np.ndarray], extractors, n: int, label: str, dev: torch.device) -> Goal:
        """Explicit features to approach (Sybil photos: a candidate face pulled onto the user's)."""
        rows = []
        for ext in extractors:
            g = np.asarray(goals[ext.name], dtype=np.float32)
            if g.shape != (n, ext.spec.embedding_dim):
                raise ValueError(f"goals[{ext.name!r}] must be {n}×{ext.spec.embedding_dim}")
            rows.append(F.normalize(torch.from_numpy(g), dim=1).to(dev))
        return cls(rows, [label] * n, 1.0)

    @classmethod
    def targets(
        cls,
        targets: list[int | None],
        feats: dict[str, np.ndarray],
        bank: TargetBank,
        extractors,
        o: Targeting,
        seed: int,
        dev: torch.device,
    ) -> Goal:
        """Each face toward a photo of its target identity (or, untargeted, away from itself)."""
        rows_per_ext = []
        for ext in extractors:
            rows = []
            centroids = bank.centroids(ext.name) if o.toward == "centroid" else None
            for j, t in enumerate(targets):
                if t is None:
                    rows.append(feats[ext.name][j])
                elif centroids is not None:
                    rows.append(centroids[t].astype(np.float32))
                else:
                    imgs = bank.images_of(t)
                    rows.append(bank.embeddings[ext.name][imgs[(seed + j) % len(imgs)]])
            rows_per_ext.append(torch.from_numpy(np.stack(rows)).to(dev))
        names = [None if t is None else bank.identities[t] for t in targets]
        return cls(rows_per_ext, names, -1.0 if o.target_mode == "untargeted" else 1.0)


class Objective:
    """The loss of a batch of faces and their crossing margins, given each extractor's crops.

    ``lean`` (extractors × faces) weighs the extractors a face is not yet across under more
    in its extension rounds; the loop sets it. ``away`` (per extractor, faces × dim) is what
    the α term pushes each face away from and what crossing is judged against: the face's own
    clean features, or its person's clean centroid (``leave="person"``).
    """

    def __init__(
        self,
        modules: list[torch.nn.Module],
        goal: Goal,
        clean: list[torch.Tensor],
        o: Targeting,
        centre: list[torch.Tensor],
        dev: torch.device,
        away: list[torch.Tensor] | None = None,
    ) -> None:
        self.modules, self.goal, self.clean, self.o, self.centre, self.dev = modules, goal, clean, o, centre, dev
        self.away = away if away is not None else clean
        n = len(goal.names)
        self.lean = torch.ones(len(modules), n, device=dev)
        # with stop_fraction f, the pull toward the goal ends at (1 − f) of the original distance
        self.stop_at = [
            ((1 - o.stop_fraction) * (c - g).norm(dim=1)) if o.stop_fraction and goal.sign > 0 else None
            for c, g in zip(clean, goal.features)
        ]
        # with normalize_loss, each extractor's term is in units of the face's original distance to its goal
        self.scale = [
            (c - g).norm(dim=1).clamp_min(1e-3) if o.normalize_loss else torch.ones(len(c), device=dev)
            for c, g in zip(clean, goal.features)
        ]

    def loss(self, crops_per_ext: list[torch.Tensor], rows: list[int]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The feature terms of faces ``rows``, and their normalized embeddings per extractor."""
        o, dev, goal, sign = self.o, self.dev, self.goal.features, self.goal.sign
        loss = torch.zeros(len(rows), device=dev)
        embs = []
        faces_at = torch.tensor(rows, device=dev)
        for e_i, mod in enumerate(self.modules):
            emb = F.normalize(mod(crops_per_ext[e_i]), dim=1)
            embs.append(emb)
            wt = self.lean[e_i, faces_at] / self.scale[e_i][faces_at]  # per face
            dist = (emb - goal[e_i][rows]).norm(dim=1)
            stop = self.stop_at[e_i]
            if stop is not None:
                # toward the stop from either side: momentum carries a face past it, and the step kept is
                # the one nearest the stop (a one-sided loss scored every step past it 0, the first judged won)
                loss = loss + wt * (dist - stop[rows]).abs()
                continue  # no push-away either: the point is not to go further than needed
            loss = loss + wt * sign * dist
            if o.push_away and sign > 0:
                loss = loss - wt * o.push_away * (emb - self.away[e_i][rows]).norm(dim=1)
        return loss, embs

    def crossing(self, embs: list[torch.Tensor], rows: list[int]) -> torch.Tensor:
        """Extractors × faces: (‖e − own‖ − ‖e − centroid‖) / ‖own − centroid‖ (> 0: crossed); "own" is ``away``."""
        clean, centre = self.away, self.centre
        if not centre:
            return torch.full((len(embs), len(rows)), math.inf)
        return torch.stack(
            [
                ((e - clean[i][rows]).norm(dim=1) - (e - centre[i][rows]).norm(dim=1))
                / (clean[i][rows] - centre[i][rows]).norm(dim=1).clamp_min(1e-6)
                for i, e in enumerate(embs)
            ]
        ).cpu()
