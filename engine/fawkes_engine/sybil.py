"""Sybil images (paper §7): another person's face, cloaked to look like the user's clean photos.

Why: users cannot cloak photos others post of them. Once a tracker holds some clean photos
of U, protection collapses (the paper: below 39 % at 15 % leaked). A Sybil account posts
photos of a consenting friend or a synthetic face whose features, as the extractors see
them, sit where U's clean photos sit. A tracker that trains on the Sybil account learns a
second class in U's region of feature space, and U's clean photos are then often matched
to the Sybil instead of to U.

The optimization is the cloak's own (same DSSIM budget, tanh-space Adam, input
diversity), with an explicit goal: each candidate face is pulled onto the clean features of
one of U's photos and pushed away from its own. For each user photo the candidates whose
clean features are already nearest to it are used (cheapest to move, least visible), each
candidate at most once while unused ones remain.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fawkes_engine.cloak import Cloaker, CloakOptions, FaceJob, FaceResult, apply_regions
from fawkes_engine.faces import Face, FaceDetector
from fawkes_engine.photo_io import Photo
from fawkes_engine.pipeline import faces_in


@dataclass
class SybilImage:
    user_index: int  # which user photo this Sybil stands in for
    candidate_index: int
    photo: Photo  # the cloaked candidate photo
    face: FaceResult
    # per extractor: distance to the user's clean photo before/after, and from its own original
    to_user_before: dict[str, float] = field(default_factory=dict)
    to_user_after: dict[str, float] = field(default_factory=dict)
    own_shift: dict[str, float] = field(default_factory=dict)


def _main_face(photo: Photo, detector: FaceDetector) -> Face | None:
    faces, _ = faces_in(photo, detector)
    if not faces:
        return None
    return max(faces, key=lambda f: f.box[2] * f.box[3])


def pick_candidates(user_feats: dict[str, np.ndarray], cand_feats: dict[str, np.ndarray], per_photo: int) -> list[list[int]]:
    """For each user photo, ``per_photo`` candidate indices, nearest first, each reused only when all are used."""
    names = list(user_feats)
    d = sum(np.linalg.norm(user_feats[n][:, None] - cand_feats[n][None], axis=-1) for n in names)
    n_cand = d.shape[1]
    uses = np.zeros(n_cand, int)
    out = []
    for u in range(d.shape[0]):
        chosen: list[int] = []
        for _ in range(min(per_photo, n_cand)):
            score = d[u] + 1e3 * uses  # an unused candidate always beats a used one
            score[chosen] = np.inf
            c = int(np.argmin(score))
            chosen.append(c)
            uses[c] += 1
        out.append(chosen)
    return out


def make_sybils(
    user_photos: list[Photo],
    candidates: list[Photo],
    per_photo: int = 1,
    options: CloakOptions | None = None,
    detector: FaceDetector | None = None,
    cloaker: Cloaker | None = None,
    user_faces: list[Face] | None = None,
    candidate_faces: list[Face] | None = None,
    goal: str = "photo",
) -> list[SybilImage]:
    """Sybil images for the user's photos: ``per_photo`` cloaked candidate photos for each.

    ``goal``: ``photo`` pulls each Sybil onto the clean features of its own user photo (the
    paper's per-image pairing); ``centroid`` pulls every Sybil onto the mean of the user's
    clean features, where unseen clean photos of the user are most likely to fall.
    """
    if goal not in ("photo", "centroid"):
        raise ValueError(f"goal must be 'photo' or 'centroid', got {goal!r}")
    if per_photo < 1:
        raise ValueError("per_photo must be at least 1")
    cloaker = cloaker or Cloaker(options)
    detector = detector or FaceDetector()
    uf: list[Face | None] = list(user_faces) if user_faces else [_main_face(p, detector) for p in user_photos]
    cf: list[Face | None] = list(candidate_faces) if candidate_faces else [_main_face(p, detector) for p in candidates]
    users = [(i, f) for i, f in enumerate(uf) if f is not None]
    cands = [(i, f) for i, f in enumerate(cf) if f is not None]
    if not users:
        raise ValueError("no face found in any of the user's photos")
    if not cands:
        raise ValueError("no face found in any candidate photo")
    u_feats = cloaker.features([FaceJob(user_photos[i].rgb, f) for i, f in users])
    if goal == "centroid":
        for n, v in u_feats.items():
            c = v.mean(0)
            u_feats[n] = np.repeat((c / np.linalg.norm(c))[None], len(v), axis=0)
    c_feats = cloaker.features([FaceJob(candidates[i].rgb, f) for i, f in cands])
    picks = pick_candidates(u_feats, c_feats, per_photo)
    jobs: list[FaceJob] = []
    goals: dict[str, list[np.ndarray]] = {e.name: [] for e in cloaker.extractors}
    pairs: list[tuple[int, int]] = []
    for u_pos, chosen in enumerate(picks):
        for c_pos in chosen:
            ci, face = cands[c_pos]
            jobs.append(FaceJob(candidates[ci].rgb, face))
            for e in cloaker.extractors:
                goals[e.name].append(u_feats[e.name][u_pos])
            pairs.append((u_pos, c_pos))
    pixels, results = cloaker.cloak_faces(jobs, goals={k: np.stack(v) for k, v in goals.items()}, goal_label="sybil")
    out = []
    for (u_pos, c_pos), px, res in zip(pairs, pixels, results):
        ci, _ = cands[c_pos]
        photo = candidates[ci].with_pixels(apply_regions(candidates[ci].rgb, [res.region], [px]))
        before = {n: float(np.linalg.norm(c_feats[n][c_pos] - u_feats[n][u_pos])) for n in u_feats}
        out.append(SybilImage(users[u_pos][0], ci, photo, res, before, dict(res.target_distance_after), dict(res.feature_shift)))
    return out
