"""One person, one direction, with the real models: grouping, pinned targets, the centroid left, and the weak-cloak policy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fawkes_daemon.outcome import outcomes, weak_faces
from fawkes_engine.cloak import CloakOptions
from fawkes_engine.cloak.jobs import FaceJob
from fawkes_engine.people import PersonDirectory
from fawkes_engine.photo_io import read_photo
from fawkes_engine.pipeline import PhotoCloaker


@pytest.fixture(scope="module")
def photos(dev: Path):
    tom = sorted((dev / "faces" / "Tom_Hanks").glob("*.jpg"))[:3]
    other = sorted((dev / "faces").iterdir())[0]
    other_file = sorted(p for p in other.glob("*.jpg"))[0] if other.name != "Tom_Hanks" else None
    return [read_photo(p) for p in tom], read_photo(other_file) if other_file else None


def test_one_person_one_target_and_away_from_the_persons_centroid(photos, detector) -> None:
    tom, other = photos
    opts = CloakOptions(steps=12, people=True, leave="person", toward="centroid")
    pc = PhotoCloaker(opts, detector=detector)
    people = PersonDirectory()
    res = pc.cloak(tom + ([other] if other is not None else []), people=people)
    faces = [r.faces[0] for r in res]
    mine = faces[: len(tom)]
    assert len({f.person for f in mine}) == 1, "one person's photos are one person"
    assert len({f.target for f in mine}) == 1, "one person, one target"
    if other is not None:
        assert faces[-1].person != mine[0].person and faces[-1].target is not None
    key = mine[0].person
    assert key is not None and people.person(key).target == mine[0].target  # pinned for the next photos
    # every cloaked face is farther from the person's clean centroid than its clean self was (SFace)
    centroid = people.person(key).centroid["sface"]
    after = pc.cloaker.features([FaceJob(r.photo.rgb, f) for r in res[: len(tom)] for f in pc.detector.detect(r.photo.rgb).faces[:1]])[
        "sface"
    ]
    before = np.stack([f.clean_features["sface"] for f in mine])
    assert (after @ centroid < before @ centroid).all()
    # a later photo of the same person joins that person and keeps its target
    again = pc.cloak([tom[0]], people=people, learn=False)[0].faces[0]
    assert again.person == key and again.target == mine[0].target
    # the clean embeddings never reach the report a user may share
    assert "clean_features" not in res[0].summary()["faces"][0]


def test_weak_cloak_policy(photos, detector) -> None:
    tom, _ = photos
    weak_opts = CloakOptions(steps=1, extend_steps=0)  # one step: a cloak that carries no face across
    cloakers = {m: PhotoCloaker(CloakOptions(mode=m, steps=1, extend_steps=0), detector=detector) for m in ("mid", "high")}
    pc = PhotoCloaker(weak_opts, detector=detector)
    published = outcomes(pc, tom[:1], [False], "mid", "strip-location", "pass", "publish")
    assert published[0].kind == "encoded" and published[0].weak == 1
    held = outcomes(pc, tom[:1], [False], "mid", "strip-location", "pass", "hold")
    assert held[0].kind == "held" and "weak_cloak: hold" in (held[0].reason or "")
    up = outcomes(pc, tom[:1], [False], "mid", "strip-location", "pass", "escalate", cloakers.__getitem__)
    assert up[0].kind == "encoded" and up[0].mode == "high"
    assert '"mode": "high"' in (up[0].report or "")
    assert weak_faces(pc.cloak(tom[:1])[0]) == 1
