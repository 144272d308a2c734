"""From photos to what the daemon will publish: the compute half of the worker, shared by every backend.

Why a separate stage: the plain worker runs it in-process, a Ray actor runs it on another
machine (``daemon.ray_backfill``); the daemon alone then writes (staging, rename, queue).
Both backends calling this one function is what makes a seeded Ray cloak byte-identical
to the single-machine one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from fawkes_daemon.decide import Facts, NoFacePolicy, Policy, WeakPolicy, decide
from fawkes_engine.cloak.options import next_mode
from fawkes_engine.photo_io import MetadataPolicy, Photo, encode_photo, output_format

if TYPE_CHECKING:  # the engine's real types on the seam, without importing torch at start
    import numpy as np

    from fawkes_daemon.config import CloakConfig
    from fawkes_engine.people import PersonDirectory
    from fawkes_engine.pipeline import CloakedPhoto, PhotoCloaker

Kind = Literal["held", "unchanged", "encoded", "encode_failed", "bad"]


@dataclass
class Outcome:
    """One photo's result. ``data`` is the encoded safe copy (``encoded`` only)."""

    kind: Kind
    data: bytes | None = None
    faces: int = 0
    skipped: int = 0
    dssim: float | None = None
    ssimulacra2: float | None = None
    report: str | None = None
    reason: str | None = None  # held, unchanged, encode_failed, bad: why
    detail: str = ""  # the log line's figures (worst scale, per-scale DSSIM)
    weak: int = 0  # faces not across under every extractor of the set (see ``weak_faces``)
    mode: str = ""  # the mode the safe copy was made at (higher than asked when escalated)
    # per face: (person key, pinned target, clean embeddings): for the daemon's person store only
    people: list[tuple[str, str | None, dict[str, np.ndarray]]] = field(default_factory=list, repr=False)


def face_report(res: CloakedPhoto, mode: str) -> str:
    """The per-face figures of one cloaked photo as stored JSON: what the web page's before/after view shows.

    ``crossed`` per extractor: the cloaked face is nearer its target than the original face
    (the feature shift is larger than the distance left to the target).
    """
    faces = []
    for f in res.faces:
        crossed = {e: f.feature_shift[e] > f.target_distance_after[e] for e in f.feature_shift if e in f.target_distance_after}
        faces.append(
            {
                "region": list(f.region),
                "box": [round(v, 1) for v in f.box],
                "dssim": f.dssim,
                "dssim_scales": {str(k): v for k, v in f.dssim_scales.items()},
                "binding_width": f.binding_width,
                "ssimulacra2": f.ssimulacra2,
                "budget": f.budget,
                "kept": f.kept,
                "steps": f.steps,
                "target": f.target,
                "feature_shift": f.feature_shift,
                "target_before": f.target_distance_before,
                "target_after": f.target_distance_after,
                "crossed": crossed,
            }
        )
    skipped = [{"box": [round(v, 1) for v in s.box], "reason": s.reason} for s in res.skipped]
    return json.dumps({"mode": mode, "faces": faces, "skipped": skipped, "weak": weak_faces(res), "dropped": res.photo.dropped})


def weak_faces(res: CloakedPhoto) -> int:
    """Faces of a cloaked photo that are not across: under some extractor of the set, the cloaked face
    is still nearer the original than the target (the feature shift is not larger than what is left)."""
    return sum(1 for f in res.faces if f.weak)


def facts_of(res: CloakedPhoto, mode: str, can_escalate: bool = True) -> Facts:
    """The plain facts :func:`fawkes_daemon.decide.decide` reads, from one cloaked photo; ``can_escalate``: a cloaker
    for a higher mode is at hand (and there is a higher mode)."""
    escalate = can_escalate and next_mode(mode) is not None
    return Facts(len(res.faces), weak_faces(res), res.unchanged_faces, [sk.reason for sk in res.skipped], escalate)


class BatchCloaker:
    """Cloak a batch of photos at a mode and decide each photo's outcome: what the worker and every Ray actor run.

    Holds one :class:`~fawkes_engine.pipeline.PhotoCloaker` per mode, made on first use (torch is
    imported then, not at start); they share one face detector.
    """

    def __init__(
        self, cloak: CloakConfig, device: str, metadata: MetadataPolicy, no_face: NoFacePolicy, weak: WeakPolicy = "publish"
    ) -> None:
        self.cloak, self.device, self.metadata, self.no_face, self.weak = cloak, device, metadata, no_face, weak
        self._cloakers: dict[str, PhotoCloaker] = {}

    def use(self, mode: str, cloaker: PhotoCloaker) -> None:
        """Cloak ``mode`` with this photo cloaker (one already built, e.g. shared with another component)."""
        self._cloakers[mode] = cloaker

    @property
    def modes_loaded(self) -> set[str]:
        """The modes whose cloakers were built so far (each loads the models once)."""
        return set(self._cloakers)

    def cloaker(self, mode: str | None = None) -> PhotoCloaker:
        """The photo cloaker for a mode (the configured one by default), made once."""
        mode = mode or self.cloak.mode
        if mode not in self._cloakers:
            from fawkes_engine.pipeline import PhotoCloaker

            cfg = self.cloak if mode == self.cloak.mode else self.cloak.model_copy(update={"mode": mode})
            first = next(iter(self._cloakers.values()), None)
            self._cloakers[mode] = PhotoCloaker(cfg.to_options(self.device), detector=first.detector if first else None)
        return self._cloakers[mode]

    def run(self, photos: list[Photo], releases: list[bool], mode: str | None, people: PersonDirectory | None = None) -> list[Outcome]:
        """One optimization batch at ``mode`` (the configured one by default); raises only for a batch-level failure."""
        mode = mode or self.cloak.mode
        return outcomes(self.cloaker(mode), photos, releases, mode, self.metadata, self.no_face, self.weak, self.cloaker, people)


def outcomes(
    cloaker: PhotoCloaker,
    photos: list[Photo],
    releases: list[bool],
    mode: str,
    metadata: MetadataPolicy,
    no_face: NoFacePolicy,
    weak: WeakPolicy = "publish",
    cloaker_for: Callable[[str], PhotoCloaker] | None = None,
    people: PersonDirectory | None = None,
) -> list[Outcome]:
    """Cloak one batch together and decide each photo's fate; raises only for a batch-level failure.

    ``weak``: what happens to a photo with a face that is not across (``weak_faces``): published
    as it is, cloaked again at the next mode's budget (``cloaker_for``; at the top mode it is
    published, weak), or held until `fawkes release`. ``people``: the library's person directory.
    """
    results = cloaker.cloak(photos, people=people)
    modes = [mode] * len(photos)
    policy = Policy(no_face=no_face, weak=weak)
    up = cloaker_for is not None  # without a cloaker for the next mode a weak photo is published as it is
    if weak == "escalate" and cloaker_for is not None:
        at, current = list(range(len(photos))), mode
        while (higher := next_mode(current)) is not None:
            at = [i for i in at if decide(facts_of(results[i], current), releases[i], policy).verdict == "escalate"]
            if not at:
                break
            current = higher
            for i, r in zip(at, cloaker_for(current).cloak([photos[i] for i in at], people=people, learn=False)):
                results[i], modes[i] = r, current
    out: list[Outcome] = []
    for photo, release, res, used in zip(photos, releases, results, modes):
        n_weak = weak_faces(res)
        d = decide(facts_of(res, used, up), release, policy)
        assert d.verdict != "escalate"  # the loop above took every photo as high as a weak one could go
        if d.verdict == "hold":
            out.append(
                Outcome("held", faces=len(res.faces), skipped=len(res.skipped), reason=d.reason, report=face_report(res, used), weak=n_weak)
            )
            continue
        if d.verdict == "refuse":
            out.append(Outcome("unchanged", reason=d.reason))
            continue
        safe = res.photo if res.faces else photo
        try:  # encoding is deterministic: a failure here fails the same way every time
            data = encode_photo(safe, metadata, fmt=output_format(safe))
        except Exception as e:
            out.append(Outcome("encode_failed", reason=f"the safe copy cannot be encoded ({type(e).__name__}: {e})"))
            continue
        o = Outcome(
            "encoded", data=data, faces=len(res.faces), skipped=len(res.skipped), report=face_report(res, used), weak=n_weak, mode=used
        )
        o.people = [(f.person, f.target, f.clean_features) for f in res.faces if f.person is not None]
        if res.faces:
            worst = max(res.faces, key=lambda f: f.dssim)
            o.dssim, o.ssimulacra2 = worst.dssim, min(f.ssimulacra2 for f in res.faces)
            o.detail = f"worst scale: {worst.binding_width} px wide; " + ", ".join(f"{w} px {d:.4f}" for w, d in worst.dssim_scales.items())
        out.append(o)
    return out
