"""One person, one direction: clustering, the daemon's person store, and the readouts the protection benchmark reports."""

from __future__ import annotations

import os
import sqlite3

import numpy as np
import pytest

from fawkes_daemon.pipeline.removals import forget_files
from fawkes_daemon.state_db import StateDB
from fawkes_engine.cloak.direction import person_anchors, person_groups
from fawkes_engine.cloak.jobs import FaceJob
from fawkes_engine.evaluate.readouts import bootstrap_mean, r_self
from fawkes_engine.faces import Face
from fawkes_engine.people import Person, PersonDirectory, group_centroids

pytestmark = pytest.mark.unit


def _people(n: int, per: int, dim: int = 128, spread: float = 0.35, seed: int = 0) -> tuple[np.ndarray, list[int]]:
    """``n`` people, ``per`` faces each: unit vectors around random unit centres (same-person cosine ≈ 0.9)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    rows, labels = [], []
    for k in range(n):
        for _ in range(per):
            v = centres[k] + spread * rng.normal(size=dim) / np.sqrt(dim)
            rows.append(v / np.linalg.norm(v))
            labels.append(k)
    return np.asarray(rows, np.float32), labels


def test_directory_groups_faces_by_person_and_keeps_centroids() -> None:
    x, labels = _people(5, 6)
    order = np.random.default_rng(1).permutation(len(x))
    d = PersonDirectory()
    keys = d.assign({"sface": x[order], "dlib": x[order] * 0.5})
    assert len(d) == 5
    truth = [labels[i] for i in order]
    # one key per true person, and each key holds exactly one person's faces
    assert len({(k, t) for k, t in zip(keys, truth)}) == 5
    p = d.person(keys[0])
    assert set(p.centroid) == {"sface", "dlib"} and abs(float(np.linalg.norm(p.centroid["sface"])) - 1) < 1e-5


def test_directory_seen_again_is_not_counted_twice() -> None:
    x, _ = _people(2, 3)
    d = PersonDirectory()
    keys = d.assign({"sface": x})
    counts = [c for _k, _s, c, _t in d.rows()]
    assert d.assign({"sface": x}, learn=False) == keys
    assert [c for _k, _s, c, _t in d.rows()] == counts


def test_group_centroids_and_anchors() -> None:
    x, labels = _people(2, 4)
    jobs = [FaceJob(np.zeros((4, 4, 3), np.uint8), Face((0, 0, 1, 1), np.zeros((5, 2)))) for _ in labels]
    feats = {"sface": x}
    assert person_groups(jobs, None) == list(range(len(jobs)))  # no person known: one group each
    with_people = [FaceJob(j.image, j.face, Person(f"p{k}")) for j, k in zip(jobs, labels)]
    groups = person_groups(with_people, None)
    assert groups == labels
    anchors = person_anchors(with_people, feats, groups)["sface"]
    c0 = x[:4].mean(0)
    assert np.allclose(anchors[0], c0 / np.linalg.norm(c0), atol=1e-6)
    # a person's library centroid, when the caller knows it, wins over the batch's
    lib = np.zeros(128, np.float32)
    lib[0] = 2.0
    known = [FaceJob(j.image, j.face, Person("p0", centroid={"sface": lib})) for j in jobs[:2]]
    assert np.allclose(person_anchors(known, {"sface": x[:2]}, [0, 0])["sface"][1][0], 1.0)
    assert group_centroids(feats, [0] * len(labels))["sface"].shape == x.shape


def test_store_keeps_embeddings_private_and_forgets_them_with_the_row(tmp_path) -> None:
    q = StateDB(tmp_path / "state" / "queue.sqlite3").queue
    store = q.people
    assert q.add("cam", "a.jpg", 1, 1) and q.add("cam", "b.jpg", 2, 2)
    ids = [j.id for j in q.claim(2)]
    x, _ = _people(1, 2)
    store.record(ids[0], [("p0", "Target_A", {"sface": x[0]})])
    store.record(ids[1], [("p0", "Target_B", {"sface": x[1]})])
    d = store.directory()
    (key, _sums, count, target) = next(iter(d.rows()))
    assert (key, count, target) == ("p0", 2, "Target_A")  # a person's first target stays pinned
    # deleting the photo's row deletes its embeddings (a trigger), and the centroid loses that face
    q.db.execute("DELETE FROM files WHERE id=?", (ids[0],))
    assert store.face_count() == 1
    assert next(iter(store.directory().rows()))[2] == 1
    assert forget_files(q, [ids[1]], []) == 1 and len(store.directory()) == 0  # the removal path (fawkes_daemon.pipeline.removals)
    # the database that holds them is readable by its owner only
    assert oct(os.stat(q.path).st_mode & 0o777) == "0o600"
    assert oct(os.stat(q.path.parent).st_mode & 0o777) == "0o700"  # R6: the state folder is the owner's alone
    rows = sqlite3.connect(q.path).execute("SELECT COUNT(*) FROM face_features").fetchone()[0]
    assert rows == 0


def test_readouts() -> None:
    clean = np.eye(4, dtype=np.float32)[[0, 0, 0]] + 0.01
    assert r_self(clean, clean).min() > 0.99
    moved = np.eye(4, dtype=np.float32)[[1, 2, 3]]
    assert r_self(moved, clean).max() < 0.1
    mean, lo, hi = bootstrap_mean([0.0, 0.5, 1.0, 1.0])
    assert lo <= mean <= hi and mean == pytest.approx(0.625)
    assert bootstrap_mean([1.0] * 5)[1:] == (1.0, 1.0)


def test_d5_d10_a_damaged_or_nan_embedding_is_skipped_and_reported_once(tmp_path, caplog) -> None:
    q = StateDB(tmp_path / "state" / "queue.sqlite3").queue
    store = q.people
    for i in range(4):
        assert q.add("cam", f"{i}.jpg", i + 1, i + 1)
    ids = [j.id for j in q.claim(4)]
    x, _ = _people(1, 4)
    for i in range(4):
        store.record(ids[i], [("p0", "Target_A", {"sface": x[i], "dlib": x[i]})])
    q.db.execute("UPDATE face_features SET embedding=? WHERE file_id=? AND extractor='sface'", (b"\x00" * 10, ids[1]))
    nan = np.full(128, np.nan, np.float32).tobytes()
    q.db.execute("UPDATE face_features SET embedding=? WHERE file_id=? AND extractor='dlib'", (nan, ids[2]))
    with caplog.at_level("ERROR", logger="fawkes.people"):
        for _ in range(3):  # every later batch asks again: it must keep working, and say it once
            (key, sums, count, _target) = next(iter(store.directory().rows()))
            assert count == 2 and all(np.isfinite(v).all() for v in sums.values())
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2
    assert any(f"file id {ids[1]}" in m and "10 bytes where 512" in m for m in said)
    assert any(f"file id {ids[2]}" in m and "NaN" in m for m in said)
