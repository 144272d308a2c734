"""Which way each face is cloaked: its person's group, target and the centroid it leaves.

A tracker decides on a person's class, built from all of that person's photos. So the faces
of one person (``FaceJob.person``, or explicit ``target_groups``) get one target, chosen on
the person's clean centroid when the caller knows it, and, with ``leave="person"``, are all
pushed away from that one centroid rather than each from its own features.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fawkes_engine.cloak.jobs import FaceJob
from fawkes_engine.people import group_centroids
from fawkes_engine.targets import TargetBank, identity_index

# a target chooser: the clean features of a group (per extractor, n × dim) and a seed → a bank index
ChooseTarget = Callable[[dict[str, np.ndarray], int], "int | None"]


def person_groups(jobs: list[FaceJob], target_groups: list[int] | None) -> list[int]:
    """One group number per face: ``target_groups`` if given, else by person, else one group each."""
    if target_groups is not None:
        if len(target_groups) != len(jobs):
            raise ValueError("target_groups must have one entry per face")
        return list(target_groups)
    keys: dict[str, int] = {}
    groups = []
    for j, job in enumerate(jobs):
        if job.person is None:
            groups.append(len(jobs) + j)  # never equal to a person's number
        else:
            groups.append(keys.setdefault(job.person.key, len(keys)))
    # renumber in order of first appearance, so that faces without a person keep the seeds they had
    order: dict[int, int] = {}
    for g in groups:
        order.setdefault(g, len(order))
    return [order[g] for g in groups] if any(j.person for j in jobs) else list(range(len(jobs)))


def _known_centroid(job: FaceJob, names: list[str]) -> dict[str, np.ndarray] | None:
    p = job.person
    if p is None or not all(n in p.centroid for n in names):
        return None
    return {n: np.asarray(p.centroid[n], np.float32) for n in names}


def choose_targets(
    jobs: list[FaceJob],
    feats: dict[str, np.ndarray],
    groups: list[int],
    bank: TargetBank,
    choose: ChooseTarget,
    seed: int,
    keep_pinned: bool = True,
) -> list[int | None]:
    """Each face's target identity (bank index): a person's pinned target (when ``keep_pinned``), else one chosen per group."""
    names = list(feats)
    chosen: dict[int, int | None] = {}
    for g in sorted(set(groups)):
        idx = [i for i, gg in enumerate(groups) if gg == g]
        person = jobs[idx[0]].person
        if keep_pinned and person is not None and person.target is not None and person.target in bank.identities:
            chosen[g] = identity_index(bank, person.target)
            continue
        known = _known_centroid(jobs[idx[0]], names)
        # the person's whole library (its centroid) when known: the target then does not depend on which photos came first
        basis = {k: v[None] for k, v in known.items()} if known is not None else {k: v[idx] for k, v in feats.items()}
        chosen[g] = choose(basis, seed + g)
    return [chosen[g] for g in groups]


def person_anchors(jobs: list[FaceJob], feats: dict[str, np.ndarray], groups: list[int]) -> dict[str, np.ndarray]:
    """Per extractor, faces × dim: the clean centroid each face is pushed away from.

    The person's library centroid where the caller gave one, else the centroid of the group's
    faces in this batch (a face alone in its group: its own features).
    """
    out = group_centroids(feats, groups)
    names = list(feats)
    for j, job in enumerate(jobs):
        known = _known_centroid(job, names)
        if known is not None:
            for n in names:
                out[n][j] = known[n] / max(float(np.linalg.norm(known[n])), 1e-12)
    return out
