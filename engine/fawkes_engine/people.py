"""Faces grouped by person, so that every photo of one person is cloaked in one direction.

Why: a tracker builds one class per person from all of that person's photos. A cloak moves
the class only if every photo leaves the same place (the person's clean centroid) toward the
same target; photos cloaked each on its own pull the class apart and its centre stays put.

:class:`PersonDirectory` clusters clean embeddings online (leader clustering on the
clustering extractor's cosine, against each person's running centroid), pins each person's
target the first time it is needed, and answers with :class:`Person` records that the
cloaker reads. It holds biometric data: callers decide where it lives (the daemon keeps it in
its state directory only; ``fawkes cloak`` keeps it in memory for one run).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

# SFace's same-person cosine is 0.363 (OpenCV's documented threshold); joining a person asks a
# little more, since a wrong merge gives two people one target and one centroid to leave
JOIN_COSINE = 0.45
CLUSTER_EXTRACTOR = "sface"


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / max(float(np.linalg.norm(x)), 1e-12)


@dataclass(frozen=True)
class Person:
    """Who a face belongs to, as far as the caller knows.

    ``centroid``: per extractor, the person's clean centroid (unit length), the place every
    photo of theirs is pushed away from. ``target``: a pinned target identity of the bank
    (None: chosen from the faces at hand).
    """

    key: str
    target: str | None = None
    centroid: dict[str, np.ndarray] = field(default_factory=dict, repr=False)


@dataclass
class _Member:
    key: str
    sums: dict[str, np.ndarray]
    count: int
    target: str | None = None


class PersonDirectory:
    """Online clustering of faces into people, with each person's pinned target.

    Every face contributes its clean embeddings to its person's running sum; a face joins the
    person whose centroid (on ``CLUSTER_EXTRACTOR``, or the first extractor present) is most
    similar, when that cosine is at least ``join``; otherwise it starts a new person.
    """

    def __init__(self, join: float = JOIN_COSINE, new_key: Callable[[int], str] | None = None) -> None:
        self.join = join
        self._people: list[_Member] = []
        self._new_key = new_key or (lambda n: f"p{n}")

    # -- state (the daemon persists these rows; nothing else leaves the object) ---------------------
    def load(self, key: str, sums: dict[str, np.ndarray], count: int, target: str | None) -> None:
        self._people.append(_Member(key, {k: np.asarray(v, np.float64) for k, v in sums.items()}, count, target))

    def rows(self) -> Iterable[tuple[str, dict[str, np.ndarray], int, str | None]]:
        for m in self._people:
            yield m.key, m.sums, m.count, m.target

    def __len__(self) -> int:
        return len(self._people)

    # -- assignment ------------------------------------------------------------------------------
    def _cluster_name(self, feats: dict[str, np.ndarray]) -> str:
        return CLUSTER_EXTRACTOR if CLUSTER_EXTRACTOR in feats else sorted(feats)[0]

    def assign(self, feats: dict[str, np.ndarray], learn: bool = True) -> list[str]:
        """The person key of each face (rows of ``feats``), adding the faces to their people.

        ``learn=False``: the same faces seen again (cloaked once more at another budget): matched
        to the people they joined, never counted twice.
        """
        if not feats:
            return []
        name = self._cluster_name(feats)
        n = len(feats[name])
        keys: list[str] = []
        for j in range(n):
            e = _unit(feats[name][j])
            best, best_cos = None, -1.0
            for m in self._people:
                if name not in m.sums:
                    continue
                cos = float(_unit(m.sums[name]) @ e)
                if cos > best_cos:
                    best, best_cos = m, cos
            if best is None or best_cos < self.join:
                best = _Member(self._new_key(len(self._people)), {}, 0)
                self._people.append(best)
            if not learn and best.count:
                keys.append(best.key)
                continue
            for k, v in feats.items():
                best.sums[k] = best.sums.get(k, np.zeros(v.shape[1], np.float64)) + _unit(v[j])
            best.count += 1
            keys.append(best.key)
        return keys

    def pin_target(self, key: str, target: str) -> None:
        self._member(key).target = target

    def person(self, key: str) -> Person:
        m = self._member(key)
        return Person(m.key, m.target, {k: _unit(v) for k, v in m.sums.items()})

    def _member(self, key: str) -> _Member:
        for m in self._people:
            if m.key == key:
                return m
        raise KeyError(key)


def group_centroids(feats: dict[str, np.ndarray], groups: list[int]) -> dict[str, np.ndarray]:
    """Per extractor, each face's row replaced by its group's unit centroid (faces × dim)."""
    out: dict[str, np.ndarray] = {}
    g = np.asarray(groups)
    for name, f in feats.items():
        rows = np.empty_like(f, dtype=np.float32)
        for k in set(groups):
            c = f[g == k].mean(0)
            rows[g == k] = c / max(float(np.linalg.norm(c)), 1e-12)
        out[name] = rows
    return out
