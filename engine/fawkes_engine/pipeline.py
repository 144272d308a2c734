"""Photos in, cloaked photos and measurements out: the engine's one-call entry point.

Each stage hands the next a plain value (beets-style): decode (:mod:`fawkes_engine.photo_io`) →
detect (:mod:`fawkes_engine.faces`) → cloak all faces of the batch together
(:mod:`fawkes_engine.cloak`) → compose the cloaked regions into a copy of the pixels. Writing is
the caller's business (the CLI writes beside the input, the daemon into staging), so the
engine never decides where files go.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from fawkes_engine.align import is_aligned_crop
from fawkes_engine.cloak import Cloaker, CloakOptions, FaceJob, FaceResult
from fawkes_engine.cloak.rounding import compose_within_budget, core_of
from fawkes_engine.faces import Face, FaceDetector, SkippedFace, aligned_crop_face
from fawkes_engine.memory import release_free_memory
from fawkes_engine.people import PersonDirectory
from fawkes_engine.photo_io import Photo
from fawkes_engine.runtime import say_if_unprepared


@dataclass
class CloakedPhoto:
    """The outcome for one photo. ``photo`` holds the cloaked pixels (the input's, if no face)."""

    photo: Photo
    faces: list[FaceResult] = field(default_factory=list)
    skipped: list[SkippedFace] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def has_faces(self) -> bool:
        return bool(self.faces)

    @property
    def unchanged_faces(self) -> int:
        """Faces the cloak left untouched (no change fitted the budget and floor).

        The rule every caller follows: a photo with such a face is never published or written
        as cloaked; it is retried or reported as failed.
        """
        return sum(1 for f in self.faces if f.dssim <= 0.0)

    def summary(self) -> dict:
        return {
            # never the clean embeddings: a report is a file the user may share
            "faces": [{k: v for k, v in asdict(f).items() if k != "clean_features"} for f in self.faces],
            "skipped_faces": [asdict(s) for s in self.skipped],
            "dropped": self.photo.dropped,
            "seconds": round(self.seconds, 3),
        }


def faces_in(photo: Photo, detector: FaceDetector, assume_aligned: bool = True) -> tuple[list[Face], list[SkippedFace]]:
    """Detected faces; a pre-aligned 112×112 crop is one face at the ArcFace template."""
    rgb = photo.rgb8()
    if assume_aligned and is_aligned_crop(rgb.shape):
        return [aligned_crop_face(rgb.shape)], []
    det = detector.detect(rgb)
    return det.faces, det.skipped


class PhotoCloaker:
    """Detect and cloak batches of photos with one set of options."""

    def __init__(self, options: CloakOptions | None = None, detector: FaceDetector | None = None, cloaker: Cloaker | None = None) -> None:
        self.cloaker = cloaker or Cloaker(options)
        self.detector = detector or FaceDetector()
        say_if_unprepared()

    @property
    def options(self) -> CloakOptions:
        return self.cloaker.options

    def cloak(
        self, photos: list[Photo], faces: list[list[Face]] | None = None, people: PersonDirectory | None = None, learn: bool = True
    ) -> list[CloakedPhoto]:
        """Cloak every face of every photo in one optimization batch.

        With ``options.targeting.people`` the faces are grouped by person first, in ``people`` (a
        directory the caller keeps across calls, e.g. the daemon's library) or in a fresh one
        for this call; each person's target is pinned there once chosen. ``learn=False``: these
        photos were grouped before (cloaked again at another budget): not added twice.
        """
        t0 = time.perf_counter()
        jobs: list[FaceJob] = []
        owners: list[int] = []
        skipped: list[list[SkippedFace]] = []
        for i, photo in enumerate(photos):
            if faces is not None:
                found, skip = faces[i], list[SkippedFace]()
            else:
                found, skip = faces_in(photo, self.detector)
            skipped.append(skip)
            for f in found:
                jobs.append(FaceJob(photo.rgb, f))
                owners.append(i)
        if jobs and (people is not None or self.options.targeting.people):
            jobs = self._with_people(jobs, people if people is not None else PersonDirectory(), learn)
        pixels, results = self.cloaker.cloak_faces(jobs)
        if jobs and people is not None:
            for job, r in zip(jobs, results):
                if job.person is not None and job.person.target is None and r.target is not None:
                    people.pin_target(job.person.key, r.target)
        release_free_memory()  # the optimization's full-resolution buffers, before the output copy
        elapsed = time.perf_counter() - t0
        out: list[CloakedPhoto] = []
        for i, photo in enumerate(photos):
            mine = [j for j, o in enumerate(owners) if o == i]
            if mine:
                floor = self.options.budget.floor
                regions = [results[j].region for j in mine]
                rgb, crowded = compose_within_budget(
                    photo.rgb,
                    regions,
                    [pixels[j] for j in mine],
                    [results[j].budget for j in mine],
                    [floor] * len(mine),
                    [core_of(results[j].box, r) for j, r in zip(mine, regions)],
                )
                for j, m in zip(mine, crowded):
                    if m is not None:  # a face in a crowd, measured again with its neighbours' changes written (in its box too)
                        r = results[j]
                        results[j] = replace(
                            r,
                            dssim=m.scales.worst,
                            dssim_scales=m.scales.per_scale,
                            binding_width=m.scales.binding,
                            ssimulacra2=m.ssimulacra2,
                            kept=r.kept * m.kept,
                            blemish=m.blemish,
                            blemish_jnd=m.blemish_jnd,
                        )
                new = photo.with_pixels(rgb)
            else:
                new = photo
            out.append(CloakedPhoto(new, [results[j] for j in mine], skipped[i], elapsed / max(len(photos), 1)))
        return out

    def enroll(self, photos: list[Photo], people: PersonDirectory) -> None:
        """Add the faces of ``photos`` to ``people`` without cloaking them (a first pass over a folder)."""
        jobs = [FaceJob(p.rgb, f) for p in photos for f in faces_in(p, self.detector)[0]]
        if jobs:
            people.assign(self.cloaker.features(jobs))

    def _with_people(self, jobs: list[FaceJob], people: PersonDirectory, learn: bool) -> list[FaceJob]:
        """The jobs with their person: clustered on clean features, with the person's centroid after them."""
        keys = people.assign(self.cloaker.features(jobs), learn)
        return [replace(job, person=people.person(k)) for job, k in zip(jobs, keys)]


def diff_image(original: Photo, cloaked: CloakedPhoto, path: str | Path, gain: float = 10.0) -> Path:
    """Side-by-side PNG: original, cloaked, amplified difference (around the first face if any)."""
    from PIL import Image

    a = original.rgb8().astype(np.int16)
    b = cloaked.photo.rgb8().astype(np.int16)
    if cloaked.faces:
        x0, y0, x1, y1 = cloaked.faces[0].region
        pad = max(8, (x1 - x0) // 4)
        h, w = a.shape[:2]
        x0, y0, x1, y1 = max(0, x0 - pad), max(0, y0 - pad), min(w, x1 + pad), min(h, y1 + pad)
        a, b = a[y0:y1, x0:x1], b[y0:y1, x0:x1]
    diff = np.clip((b - a) * gain + 128, 0, 255).astype(np.uint8)
    panel = np.concatenate([a.astype(np.uint8), b.astype(np.uint8), diff], axis=1)
    im = Image.fromarray(panel, "RGB")
    if im.width > 3000:
        im = im.resize((3000, round(im.height * 3000 / im.width)), Image.Resampling.LANCZOS)
    path = Path(path)
    im.save(path, format="PNG")
    return path
