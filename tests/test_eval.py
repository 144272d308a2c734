"""`fawkes eval`: metric code on constructed cases, and a small real end-to-end run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fawkes_engine.evaluate.trackers import UNKNOWN, LinearTracker, SimilarityTracker, accuracy, protection_rate


@pytest.mark.unit
def test_tracker_that_always_answers_user_gives_zero_protection() -> None:
    assert protection_rate(["U"] * 7, "U") == 0.0
    assert protection_rate(["A", "U", UNKNOWN, "B"], "U") == 0.75


@pytest.mark.unit
def test_untouched_baseline_gives_expected_accuracy() -> None:
    rng = np.random.default_rng(0)
    centres = np.eye(5, 16) * 3
    labels = [str(i) for i in range(5) for _ in range(10)]
    feats = np.concatenate([c + 0.3 * rng.standard_normal((10, 16)) for c in centres])
    test = np.concatenate([c + 0.3 * rng.standard_normal((4, 16)) for c in centres])
    truth = [str(i) for i in range(5) for _ in range(4)]
    lin = LinearTracker().fit(feats, labels)
    assert accuracy(lin.predict(test), truth) == 1.0
    sim = SimilarityTracker(threshold=0.5, metric="cosine").fit(feats, labels)
    assert accuracy(sim.predict(test), truth) == 1.0
    # a far-away probe is unknown to the similarity tracker, so it counts as protected
    assert sim.predict(-np.ones((1, 16))) == [UNKNOWN]
    # a user whose training photos carry another class's features is not identified
    poisoned = feats.copy()
    poisoned[:10] = centres[4] + 0.3 * rng.standard_normal((10, 16)) + np.eye(1, 16, 8) * 2
    lin2 = LinearTracker().fit(poisoned, labels)
    assert protection_rate(lin2.predict(test[:4]), "0") == 1.0


@pytest.mark.system
def test_small_real_eval_run(dev: Path, tmp_path: Path) -> None:
    """Two protected users of the dev set, real cloaks (few steps), real trackers; table, JSON and plots written."""
    out = tmp_path / "eval"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fawkes_daemon.cli",
            "eval",
            "--dataset",
            str(dev / "faces"),
            "--user",
            "Katy_Perry",
            "--user",
            "Angelina_Jolie",
            "--steps",
            "15",
            "--trackers",
            "linear,similarity",
            "--trackers-from",
            "dlib",
            "--leaked",
            "0,0.5",
            "--jpeg",
            "50",
            "--label-density",
            "2",
            "--sybil",
            "0,1",
            "--sybil-candidates",
            str(dev.parent / "targets" / "faces"),
            "--sybil-pool",
            "24",
            "--detection",
            "--transfer",
            "sface:diversity_prob=0.5",
            "--transfer",
            "dlib-robust",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "target bank identities among tracker classes: none" in proc.stderr
    result = json.loads((out / "eval.json").read_text())
    assert result["users"] == ["Katy_Perry", "Angelina_Jolie"]
    assert result["config"]["seed"] == 0 and result["config"]["cloak"]["steps"] == 15
    rows = {(r["scenario"], r["tracker"], str(r["value"])): r for r in result["rows"]}
    base = rows[("mode", "linear", "mid")]
    assert base["baseline_protection"]["mean"] <= 0.25  # unprotected users are recognized
    assert base["baseline_normal_accuracy"]["mean"] >= 0.9
    assert abs(base["normal_accuracy"]["mean"] - base["baseline_normal_accuracy"]["mean"]) <= 0.05
    assert rows[("leaked", "linear", "0.5")]["protection"]["mean"] <= rows[("leaked", "linear", "0.0")]["protection"]["mean"] + 1e-9
    for name in ("mode.png", "leaked.png", "jpeg.png", "sybil-dlib.png"):
        assert (out / name).stat().st_size > 1000
    assert "protection" in proc.stdout
    # Sybil rows for every leaked share, Sybil photos summarized, detection rows per mitigation
    assert ("leaked+sybil1", "linear", "0.5") in rows and ("leaked+sybil1", "linear", "0.0") in rows
    assert result["sybil_images"]["n"] > 0 and result["sybil_images"]["dssim"]["mean"] <= 0.007
    det = [r for r in result["rows"] if r["scenario"] == "detection"]
    assert [r["value"] for r in det] == ["none", "stop at 50% of the way", "average-distance target"]
    for r in det:
        assert 0 <= r["closeness_detected"] <= 1 and 0 <= r["two_cluster_false_positive"] <= 1
    assert "cloak detection" in proc.stdout
    assert rows[("label_density", "linear", "2")]["baseline_normal_accuracy"]["mean"] >= 0.9
    # leave one model out: the SFace-only variant is measured against dlib (PNG and JPEG q85); the
    # dlib-robust variant shares the only tracker's family, so it is never measured
    tr = [r for r in result["rows"] if r["scenario"].startswith("transfer") or r["scenario"] == "whitebox"]
    assert sorted((r["scenario"], r["tracker"]) for r in tr) == [
        ("transfer", "linear"),
        ("transfer", "similarity"),
        ("transfer-jpeg85", "linear"),
        ("transfer-jpeg85", "similarity"),
    ]
    assert {r["value"] for r in tr} == {"sface:diversity_prob=0.5"} and {r["tracker_extractor"] for r in tr} == {"dlib"}
    key = tr[0]["cloak"]["key"]
    assert result["dssim"][key]["mean"] <= 0.007 and result["cloak_seconds_per_face"][key] > 0
    assert "transfer (leave one model out)" in proc.stdout


@pytest.mark.unit
def test_transfer_variants_parse_every_cloak_option_and_families_group_models() -> None:
    from fawkes_engine.cloak import CloakOptions
    from fawkes_engine.cloak.variant import parse_variant, variant_label
    from fawkes_engine.evaluate.views import view_family as family

    base = CloakOptions()
    o = parse_variant("sface,sface-robust:diversity_scale=0.9/1.1:diversity=false:steps=80:dssim_budget=0.012:target_mode=average", base)
    assert o.targeting.extractors == ("sface", "sface-robust") and o.optimizer.diversity.scale == (0.9, 1.1)
    assert (
        o.optimizer.diversity.enabled is False and o.budget.steps == 80 and o.budget.rho == 0.012 and o.targeting.target_mode == "average"
    )
    assert variant_label(parse_variant("dlib", base), base) == "dlib"
    assert "diversity_prob=0.5" in variant_label(parse_variant("sface:diversity_prob=0.5", base), base)
    for bad in ("sface:nope=1", "sface:seed=3", "sface:diversity_prob=2", ""):
        with pytest.raises(ValueError):
            parse_variant(bad, base)
    assert {family(n) for n in ("dlib", "dlib-robust", "dlib-native")} == {"dlib"}
    assert {family(n) for n in ("sface", "sface-robust")} == {"sface"}
