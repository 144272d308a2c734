"""Compute, the middle stage: a batch of photos in, each photo's outcome out (encoded safe copy, hold, refusal).

Why one stage for every backend: the plain worker runs it in this process (:class:`LocalCompute`),
a Ray actor on another machine (:mod:`fawkes_daemon.pipeline.compute_ray`); both call
:class:`BatchCloaker`, which is what makes a seeded Ray cloak byte-identical to the
single-machine one, and neither writes anything: the publish stage alone does. A photo's fate
after its cloak is :func:`fawkes_daemon.pipeline.decide.decide`'s, a pure function.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from fawkes_daemon.pipeline.decide import Facts, NoFacePolicy, Policy, WeakPolicy, decide
from fawkes_engine.cloak.options import CloakOptions, next_mode
from fawkes_engine.photo_io import MetadataPolicy, Photo, encode_photo, output_format

if TYPE_CHECKING:  # the engine's real types on the seam, without importing torch at start
    import numpy as np

    from fawkes_daemon.config import Config
    from fawkes_daemon.pipeline.intake import Fresh
    from fawkes_daemon.pipeline.library import Library
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
    """The plain facts :func:`fawkes_daemon.pipeline.decide.decide` reads, from one cloaked photo; ``can_escalate``: a cloaker
    for a higher mode is at hand (and there is a higher mode)."""
    escalate = can_escalate and next_mode(mode) is not None
    return Facts(len(res.faces), weak_faces(res), res.unchanged_faces, [sk.reason for sk in res.skipped], escalate)


class BatchCloaker:
    """Cloak a batch of photos at a mode and decide each photo's outcome: what the worker and every Ray actor run.

    Holds one :class:`~fawkes_engine.pipeline.PhotoCloaker` per mode, made on first use (torch is
    imported then, not at start); they share one face detector. ``weak``: what happens to a photo
    with a face that is not across (``weak_faces``): published as it is, cloaked again at the next
    mode's budget (at the top mode it is published, weak), or held until `fawkes release`.
    """

    def __init__(self, options: CloakOptions, metadata: MetadataPolicy, no_face: NoFacePolicy, weak: WeakPolicy = "publish") -> None:
        self.options, self.metadata = options, metadata
        self.policy = Policy(no_face=no_face, weak=weak)
        self._by_mode: dict[str, PhotoCloaker] = {}

    def use(self, mode: str, photo_cloaker: PhotoCloaker) -> None:
        """Cloak ``mode`` with this photo cloaker (one already built, e.g. shared with another component)."""
        self._by_mode[mode] = photo_cloaker

    @property
    def modes_loaded(self) -> set[str]:
        """The modes whose cloakers were built so far (each loads the models once)."""
        return set(self._by_mode)

    def photo_cloaker(self, mode: str | None = None) -> PhotoCloaker:
        """The photo cloaker for a mode (the configured one by default), made once."""
        mode = mode or self.options.budget.mode
        if mode not in self._by_mode:
            from fawkes_engine.pipeline import PhotoCloaker

            first = next(iter(self._by_mode.values()), None)
            self._by_mode[mode] = PhotoCloaker(self.options.replace(mode=mode), detector=first.detector if first else None)
        return self._by_mode[mode]

    def run(self, photos: list[Photo], releases: list[bool], mode: str | None, people: PersonDirectory | None = None) -> list[Outcome]:
        """One optimization batch at ``mode`` (the configured one by default), each photo's outcome decided;
        raises only for a batch-level failure. ``people``: the library's person directory."""
        mode = mode or self.options.budget.mode
        results = self.photo_cloaker(mode).cloak(photos, people=people)
        modes = [mode] * len(photos)
        if self.policy.weak == "escalate":
            at, current = list(range(len(photos))), mode
            while (higher := next_mode(current)) is not None:
                at = [i for i in at if decide(facts_of(results[i], current), releases[i], self.policy).verdict == "escalate"]
                if not at:
                    break
                current = higher
                for i, r in zip(at, self.photo_cloaker(current).cloak([photos[i] for i in at], people=people, learn=False)):
                    results[i], modes[i] = r, current
        return [self._outcome(p, rel, res, used) for p, rel, res, used in zip(photos, releases, results, modes)]

    def _outcome(self, photo: Photo, release: bool, res: CloakedPhoto, used: str) -> Outcome:
        n_weak = weak_faces(res)
        d = decide(facts_of(res, used), release, self.policy)
        assert d.verdict != "escalate"  # run() took every photo as high as a weak one could go
        if d.verdict == "hold":
            return Outcome(
                "held", faces=len(res.faces), skipped=len(res.skipped), reason=d.reason, report=face_report(res, used), weak=n_weak
            )
        if d.verdict == "refuse":
            return Outcome("unchanged", reason=d.reason)
        safe = res.photo if res.faces else photo
        try:  # encoding is deterministic: a failure here fails the same way every time
            data = encode_photo(safe, self.metadata, fmt=output_format(safe))
        except Exception as e:
            return Outcome("encode_failed", reason=f"the safe copy cannot be encoded ({type(e).__name__}: {e})")
        o = Outcome(
            "encoded", data=data, faces=len(res.faces), skipped=len(res.skipped), report=face_report(res, used), weak=n_weak, mode=used
        )
        o.people = [(f.person, f.target, f.clean_features) for f in res.faces if f.person is not None]
        if res.faces:
            worst = max(res.faces, key=lambda f: f.dssim)
            o.dssim, o.ssimulacra2 = worst.dssim, min(f.ssimulacra2 for f in res.faces)
            o.detail = f"worst scale: {worst.binding_width} px wide; " + ", ".join(f"{w} px {d:.4f}" for w, d in worst.dssim_scales.items())
        return o


@dataclass
class Computed:
    """A batch back from a backend: an outcome per photo, or the error that failed the whole batch."""

    items: list[Fresh]
    outcomes: list[Outcome] | None
    error: BaseException | None = None
    seconds: float = 0.0  # per photo


@dataclass
class Progress:
    """Photos claimed and finished (read failures and duplicates count as finished) since ``started``."""

    total: int = 0
    finished: int = 0
    started: float = field(default_factory=time.time)


class Compute(Protocol):
    """A backend of the compute stage. ``room()`` batches may be submitted now; ``collect`` returns what is done."""

    decodes: bool  # intake decodes the photos here (False: the read bytes travel to the backend)

    def room(self) -> int: ...

    def submit(self, items: list[Fresh], mode: str | None) -> None: ...

    def collect(self, timeout: float) -> list[Computed]: ...

    def busy(self) -> bool: ...

    def report(self, progress: Progress) -> None: ...

    def close(self) -> None: ...


class LocalCompute:
    """This process, one batch at a time: ``submit`` cloaks, ``collect`` hands the batch over."""

    decodes = True

    def __init__(self, config: Config, library: Library | None = None) -> None:
        c = config
        self.batches = BatchCloaker(c.cloak.to_options(c.device), c.metadata, c.no_face, c.weak_cloak)  # torch is imported on first use
        self.library = library
        self._done: list[Computed] = []

    def room(self) -> int:
        return 0 if self._done else 1

    def submit(self, items: list[Fresh], mode: str | None) -> None:
        t0 = time.perf_counter()
        try:
            photos = [i.photo for i in items if i.photo is not None]
            people = self.library.people() if self.library is not None else None
            results = self.batches.run(photos, [i.job.release for i in items], mode, people)
        except Exception as e:  # a batch-level failure (e.g. out of memory): each photo is retried later
            self._done.append(Computed(items, None, e))
            return
        self._done.append(Computed(items, results, None, (time.perf_counter() - t0) / len(items)))

    def collect(self, timeout: float) -> list[Computed]:
        done, self._done = self._done, []
        return done

    def busy(self) -> bool:
        return bool(self._done)

    def report(self, progress: Progress) -> None:
        """Nothing to report: the daemon's heartbeat says what the worker does."""

    def close(self) -> None:
        self._done.clear()
