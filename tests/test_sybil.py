"""Sybil photos (paper §7) and the cloak-detection statistics (§8)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fawkes_engine.align import align_numpy
from fawkes_engine.cloak import CloakOptions
from fawkes_engine.evaluate.detection import closeness_z, normal_closeness_z, two_cluster_score
from fawkes_engine.faces import central_face
from fawkes_engine.models import get_extractor
from fawkes_engine.photo_io import read_photo
from fawkes_engine.pipeline import PhotoCloaker
from fawkes_engine.sybil import make_sybils, pick_candidates
from fawkes_engine.targets import TargetBank, rank_targets, target_scores
from tests.helpers.images import detection_rate


def _emb(name: str, rgb: np.ndarray, detector) -> np.ndarray:
    s = get_extractor(name).spec
    face = central_face(rgb, detector)
    e = get_extractor(name).embed_onnx(align_numpy(rgb, face.landmarks, s.template, s.input_size)[None])[0]
    return e / np.linalg.norm(e)


@pytest.mark.integration
def test_sybil_photo_ends_nearer_the_user_than_its_own_original(dev: Path, tmp_path: Path, detector) -> None:
    faces = dev / "faces"
    user = [read_photo(faces / "Tom_Hanks" / "3.jpg")]
    candidates = [read_photo(faces / n / "4.jpg") for n in ("Keanu_Reeves", "Katy_Perry", "Barack_Obama")]
    # high: at an honest budget a Sybil photo must carry another person's face most of the way to the user's
    # (`fawkes sybil` defaults to it); one of these two candidates still falls short under SFace (README)
    made = make_sybils(user, candidates, per_photo=2, options=CloakOptions.of(mode="high"), detector=detector)
    assert len(made) == 2 and len({m.candidate_index for m in made}) == 2
    crossed = []
    for m in made:
        assert 0 < m.face.dssim <= 0.012
        # measured independently: written losslessly, read back, re-detected, re-aligned, embedded by ONNX
        path = tmp_path / f"sybil{m.candidate_index}.png"
        from fawkes_engine.photo_io import write_photo

        back = read_photo(write_photo(m.photo, path)).rgb8()
        nearer = []
        for name in ("sface", "dlib"):
            a = _emb(name, back, detector)
            to_user = float(np.linalg.norm(a - _emb(name, user[0].rgb8(), detector)))
            to_own = float(np.linalg.norm(a - _emb(name, candidates[m.candidate_index].rgb8(), detector)))
            assert to_user < m.to_user_before[name], f"{name}: the Sybil photo did not move toward the user"
            nearer.append(to_user < to_own)
        crossed.append(all(nearer))
    assert any(crossed), "no Sybil photo ended nearer the user than its own original under both extractors"


@pytest.mark.unit
def test_candidates_nearest_first_and_spread_before_reuse() -> None:
    u = {"e": np.array([[1.0, 0.0], [0.0, 1.0]])}
    c = {"e": np.array([[0.9, 0.1], [0.8, 0.3], [0.1, 0.9]])}
    assert pick_candidates(u, c, 1) == [[0], [2]]
    picks = pick_candidates(u, c, 2)
    assert picks[0] == [0, 1] and picks[1][0] == 2  # the third candidate is unused until then


@pytest.mark.system
def test_sybil_cli_writes_photos_and_report(dev: Path, tmp_path: Path) -> None:
    (tmp_path / "me").mkdir()
    (tmp_path / "friend").mkdir()
    (tmp_path / "me" / "a.jpg").write_bytes((dev / "faces" / "Tom_Hanks" / "3.jpg").read_bytes())
    (tmp_path / "friend" / "f.jpg").write_bytes((dev / "faces" / "Katy_Perry" / "4.jpg").read_bytes())
    (tmp_path / "friend" / "broken.jpg").write_text("not a photo")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "fawkes_daemon.cli",
            "sybil",
            "--user",
            str(tmp_path / "me"),
            "--candidates",
            str(tmp_path / "friend"),
            "--out",
            str(tmp_path / "out"),
            "--mode",
            "low",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "broken.jpg" in r.stderr  # a bad candidate is named and skipped
    assert (tmp_path / "out" / "a_sybil1.jpg").stat().st_size > 1000
    report = json.loads((tmp_path / "out" / "sybil-report.json").read_text())
    assert report[0]["dssim"] <= 0.004 and report[0]["candidate"].endswith("f.jpg")
    assert (tmp_path / "me" / "a.jpg").read_bytes() == (dev / "faces" / "Tom_Hanks" / "3.jpg").read_bytes()


# -- detection statistics on constructed cases ---------------------------------------------------------
def _sphere(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.unit
def test_closeness_flags_a_class_sitting_on_another() -> None:
    normal = _sphere(60, 32, 0)
    rng = np.random.default_rng(1)
    near = normal[7] + 0.02 * rng.normal(size=(6, 32))  # a class pulled onto class 7
    typical = _sphere(6, 32, 2) * 0.2 + _sphere(1, 32, 3)  # a class somewhere of its own
    assert closeness_z(near, normal) > 3
    assert closeness_z(typical, normal) < 2
    fp = normal_closeness_z(normal)
    assert fp.shape == (60,) and detection_rate(list(fp), 2) < 0.15


@pytest.mark.unit
def test_two_cluster_score_separates_mixed_from_single_classes() -> None:
    rng = np.random.default_rng(0)
    a, b = _sphere(1, 32, 4)[0], _sphere(1, 32, 5)[0]
    mixed = np.concatenate([a + 0.05 * rng.normal(size=(5, 32)), b + 0.05 * rng.normal(size=(5, 32))])
    single = a + 0.05 * rng.normal(size=(10, 32))
    assert two_cluster_score(mixed) > 2 * two_cluster_score(single)
    assert np.isnan(two_cluster_score(single[:3]))


@pytest.mark.integration
def test_average_target_and_stop_fraction(dev: Path) -> None:
    bank = TargetBank.load()
    feats = {"sface": np.random.default_rng(0).normal(size=(3, 128)).astype(np.float32)}
    scores = target_scores(bank, feats)
    avg = rank_targets(bank, feats, "average")[0]
    far = rank_targets(bank, feats, "farthest")[0]
    assert scores[far] == scores.max()
    assert abs(scores[avg] - np.median(scores)) <= np.abs(scores - np.median(scores)).min() + 1e-9
    near = rank_targets(bank, feats, "reachable")[0]  # the lower quartile: clearly someone else, nearer than the median
    assert scores[near] < scores[avg] < scores[far]
    assert abs(scores[near] - np.quantile(scores, 0.25)) <= np.abs(scores - np.quantile(scores, 0.25)).min() + 1e-9
    with pytest.raises(ValueError, match="unknown target ranking"):
        rank_targets(bank, feats, "nearest")
    photo = read_photo(dev / "faces" / "Keanu_Reeves" / "2.jpg")
    full = PhotoCloaker(CloakOptions.of(mode="high", steps=20)).cloak([photo])[0].faces[0]
    part = PhotoCloaker(CloakOptions.of(mode="high", steps=20, stop_fraction=0.04)).cloak([photo])[0].faces[0]
    assert part.target == full.target
    # the pull stops early; at the honest budget's step size it ends about 12 % of the way instead of the 4 %
    # asked (one Adam step already moves a face that far; docs/decisions.md), still short of the full cloak's
    for n in ("sface", "dlib"):
        assert full.target_distance_after[n] < 0.96 * full.target_distance_before[n]  # the stop binds
        assert part.target_distance_after[n] > full.target_distance_after[n] + 0.02
        assert part.target_distance_after[n] > 0.8 * part.target_distance_before[n]
        assert part.feature_shift[n] < full.feature_shift[n]
