"""One person, one direction, with the real models: grouping, pinned targets, the centroid left, and the weak-cloak policy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fawkes_daemon.pipeline.compute import BatchCloaker, weak_faces
from fawkes_daemon.pipeline.decide import WeakPolicy
from fawkes_engine.cloak import CloakOptions
from fawkes_engine.cloak.jobs import FaceJob
from fawkes_engine.people import PersonDirectory
from fawkes_engine.photo_io import read_photo
from fawkes_engine.pipeline import PhotoCloaker

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def photos(dev: Path):
    tom = sorted((dev / "faces" / "Tom_Hanks").glob("*.jpg"))[:3]
    other = sorted((dev / "faces").iterdir())[0]
    other_file = sorted(p for p in other.glob("*.jpg"))[0] if other.name != "Tom_Hanks" else None
    return [read_photo(p) for p in tom], read_photo(other_file) if other_file else None


def test_one_person_one_target_and_away_from_the_persons_centroid(photos, detector) -> None:
    tom, other = photos
    opts = CloakOptions.of(steps=12, people=True, leave="person", toward="centroid")
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
    weak_opts = CloakOptions.of(steps=1, extend_steps=0)  # one step: a cloak that carries no face across
    cloakers = {m: PhotoCloaker(CloakOptions.of(mode=m, steps=1, extend_steps=0), detector=detector) for m in ("mid", "high")}
    pc = PhotoCloaker(weak_opts, detector=detector)

    def batches(weak: WeakPolicy) -> BatchCloaker:
        b = BatchCloaker(CloakOptions(), "strip-location", "pass", weak)
        b.use("mid", pc)
        b.use("high", cloakers["high"])
        return b

    published = batches("publish").run(tom[:1], [False], "mid")
    assert published[0].kind == "encoded" and published[0].weak == 1
    held = batches("hold").run(tom[:1], [False], "mid")
    assert held[0].kind == "held" and "weak_cloak: hold" in (held[0].reason or "")
    # D1: a release publishes it with the cloak it has (it was held again, for ever, before)
    released = batches("hold").run(tom[:1], [True], "mid")
    assert released[0].kind == "encoded" and released[0].weak == 1 and released[0].data == published[0].data
    up = batches("escalate").run(tom[:1], [False], "mid")
    assert up[0].kind == "encoded" and up[0].mode == "high"
    assert '"mode": "high"' in (up[0].report or "")
    assert weak_faces(pc.cloak(tom[:1])[0]) == 1


def test_the_daemon_keeps_embeddings_in_its_state_only_and_forgets_them_with_the_photo(dev: Path, tmp_path: Path) -> None:
    """The worker records each cloaked face's person (0600 database in a 0700 folder) and nothing of it reaches to-share or the log."""
    import logging
    import os
    import shutil

    from tests.helpers.worker import Harness, fast_cloaker

    h = Harness(tmp_path, fast_cloaker())
    tom = sorted((dev / "faces" / "Tom_Hanks").glob("*.jpg"))[:2]
    for i, p in enumerate(tom):
        shutil.copyfile(p, h.src / f"t{i}.jpg")
        h.add(f"t{i}.jpg")
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda r: records.append(r.getMessage())  # type: ignore[method-assign]
    logging.getLogger().addHandler(handler)
    try:
        h.run(timeout=300)
    finally:
        logging.getLogger().removeHandler(handler)
    assert h.queue.counts()["done"] == 2
    assert h.pipeline.library is not None
    store = h.pipeline.library.store
    assert store and store.face_count() == 2
    (person,) = [row for row in store.directory().rows()]  # one person, two faces, one pinned target
    assert person[2] == 2 and person[3] is not None
    assert os.stat(h.config.db_path).st_mode & 0o777 == 0o600 and os.stat(h.config.state_dir).st_mode & 0o777 == 0o700
    assert not any("embedding" in m or "clean_features" in m for m in records)
    assert not any(p.suffix in (".sqlite3", ".npy", ".json") for p in h.share.rglob("*"))
    from fawkes_daemon.pipeline.removals import Removals

    (h.src / "t0.jpg").unlink()  # the original was removed: its embeddings go at the next check
    assert Removals(h.config, h.queue, h.pipeline.publisher).check_all() == 1
    assert store.face_count() == 1
