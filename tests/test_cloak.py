"""The cloak on real dev photos: budget, effect after a real write/read/re-detect, locality, targets, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fawkes_engine.cloak import MODES, CloakOptions
from fawkes_engine.evaluate.crossing import crossings
from fawkes_engine.photo_io import read_photo, write_photo
from fawkes_engine.pipeline import PhotoCloaker
from fawkes_engine.targets import TargetBank, rank_targets, select_target
from fawkes_engine.visibility.scales import ssimulacra2
from fawkes_engine.visibility.ssim import dssim
from tests.helpers.images import outside_regions_unchanged


def _region_dssim(a: np.ndarray, b: np.ndarray, region: tuple[int, int, int, int]) -> float:
    x0, y0, x1, y1 = region
    ta = torch.from_numpy(a[y0:y1, x0:x1].transpose(2, 0, 1).astype(np.float32) / 255)[None]
    tb = torch.from_numpy(b[y0:y1, x0:x1].transpose(2, 0, 1).astype(np.float32) / 255)[None]
    return float(dssim(ta, tb)[0])


@pytest.fixture(scope="module")
def cloaker_by_mode(detector):
    return {m: PhotoCloaker(CloakOptions.of(mode=m), detector=detector) for m in MODES}


@pytest.mark.integration
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("source", ["photos/lady.jpg", "faces/Tom_Hanks/5.jpg"])
def test_cloak_meets_budget_and_moves_faces_to_target(mode: str, source: str, dev: Path, tmp_path: Path, cloaker_by_mode, detector) -> None:
    pc = cloaker_by_mode[mode]
    photo = read_photo(dev / source)
    result = pc.cloak([photo])[0]
    assert result.faces
    settings = MODES[mode]
    # budget on the face box at every scale and the mode's SSIMULACRA2 floor, measured again on a lossless write;
    # a face is held to its mode's budget unless it was extended to cross (then at most the ceiling)
    png = write_photo(result.photo, tmp_path / "cloaked.png")
    written = read_photo(png).rgb
    for f in result.faces:
        assert f.budget == settings.dssim_budget or (f.steps > settings.steps and settings.dssim_budget < f.budget <= settings.ceiling)
        assert 0 < f.dssim <= f.budget and f.dssim == max(f.dssim_scales.values())
        assert _region_dssim(photo.rgb, written, f.region) <= f.budget + 1e-6
        x0, y0, x1, y1 = f.region
        assert ssimulacra2(photo.rgb[y0:y1, x0:x1], written[y0:y1, x0:x1]) >= settings.floor - 1e-6
    assert outside_regions_unchanged(photo.rgb, written, [f.region for f in result.faces])
    # the effect survives a real JPEG write, read-back, re-detection and re-alignment: every extractor
    # sees the face nearer its target than before (crossing over is measured by bench_crossing: at
    # the honest budget not every face gets there)
    back = read_photo(write_photo(result.photo, tmp_path / "cloaked.jpg"))
    for f, row in zip(result.faces, crossings(photo, back, result.faces, pc.options.targeting.extractors, pc.cloaker.bank, detector)):
        for c in row:
            assert c.after < c.before - 0.02, (
                f"{mode} {c.extractor}: cloak did not move the face toward its target ({c.before:.3f} → {c.after:.3f})"
            )
            assert c.moved > 0.05, f"{mode} {c.extractor}: features barely moved"
        margins = {c.extractor: round(c.margin, 3) for c in row}
        print(
            f"\n{mode} {source}: DSSIM {f.dssim:.4f} (budget {f.budget:.4f}, {f.steps} steps), SSIMULACRA2 {f.ssimulacra2:.1f}; margins {margins}"
        )


@pytest.mark.integration
def test_pixels_outside_face_regions_unchanged_in_group_photo(dev: Path) -> None:
    photo = read_photo(dev / "photos" / "nikon_d700_two_faces.jpg")
    result = PhotoCloaker(CloakOptions.of(mode="low", steps=4)).cloak([photo])[0]
    assert len(result.faces) == 2
    assert outside_regions_unchanged(photo.rgb, result.photo.rgb, [f.region for f in result.faces])
    assert not np.array_equal(photo.rgb, result.photo.rgb)


@pytest.mark.integration
def test_few_step_cloaks_in_a_batch_keep_a_change(dev: Path) -> None:
    """The daemon's test configuration (low, 2 steps, batches of 4) on the batches where a cloak was lost.

    Two Adam steps leave δ at about one grey level; rounding it is then over the budget down to
    ~0.7 of its scale and far under below, a step function an interpolating search alone
    stepped through too slowly (it returned the untouched face, which the daemon refuses to
    publish: the kill/restart test timed out on it).
    """
    import random

    faces = sorted((dev / "faces").glob("*/*.jpg"))
    chosen = random.Random(1).sample(faces, 100)  # the daemon test's photos, in its order
    pc = PhotoCloaker(CloakOptions.of(mode="low", steps=2))
    for start in (52, 55):
        results = pc.cloak([read_photo(p) for p in chosen[start : start + 4]])
        dssims = [f.dssim for r in results for f in r.faces]
        assert len(dssims) == 4 and all(0 < d <= 0.004 for d in dssims), dssims


@pytest.mark.integration
def test_faces_short_of_their_target_are_extended_in_rounds(dev: Path) -> None:
    """A face not yet nearer its target than itself after its steps goes on, in rounds of half the steps.

    Four steps do not carry this face across (it needed about 100 at mid when measured), so the
    face takes both rounds the allowance holds; with no allowance, or with no target to cross
    toward, it stops at four. An extended face still meets its budget.
    """
    photo = read_photo(dev / "faces" / "Keira_Knightley" / "5.jpg")
    ext = PhotoCloaker(CloakOptions.of(mode="mid", steps=4, extend_steps=4)).cloak([photo])[0].faces[0]
    assert ext.steps == 8 and ext.best_step > 4 and 0 < ext.dssim <= 0.007
    assert PhotoCloaker(CloakOptions.of(mode="mid", steps=4)).cloak([photo])[0].faces[0].steps == 4  # explicit steps are exact
    un = PhotoCloaker(CloakOptions.of(mode="mid", steps=4, extend_steps=4, target_mode="untargeted")).cloak([photo])[0].faces[0]
    assert un.steps == 4
    assert CloakOptions.of(mode="mid").budget.max_extend == 60 and CloakOptions.of(mode="mid", steps=40).budget.max_extend == 0


@pytest.mark.integration
def test_extension_rounds_lean_on_the_extractor_a_face_lags_under(dev: Path, tmp_path: Path, cloaker_by_mode, detector) -> None:
    """The dev crop that needs the most help gets nearer crossing from its extension rounds, and more so with
    the lagging extractor weighed more.

    At the honest budget this face does not cross at mid (SFace margin −0.086, dlib −0.029 after a JPEG
    write and re-detection); without extension it ends at −0.201 under SFace, with equal weights in its
    rounds at −0.102.
    """

    def margins(pc: PhotoCloaker) -> tuple[int, dict[str, float]]:
        result = pc.cloak([photo])[0]
        (face,) = result.faces
        back = read_photo(write_photo(result.photo, tmp_path / "cloaked.jpg"))
        (row,) = crossings(photo, back, result.faces, pc.options.targeting.extractors, pc.cloaker.bank, detector)
        return face.steps, {c.extractor: c.margin for c in row}

    photo = read_photo(dev / "faces" / "Robert_Downey_Jr" / "5.jpg")
    steps, leaned = margins(cloaker_by_mode["mid"])
    assert steps > MODES["mid"].steps  # it needed the extension
    _, plain = margins(PhotoCloaker(CloakOptions.of(mode="mid", extend_steps=0), detector=detector))
    _, even = margins(PhotoCloaker(CloakOptions.of(mode="mid", lag_weight=1.0), detector=detector))
    lagging = min(leaned, key=lambda k: plain[k])  # the extractor the face is furthest from crossing under
    # the gain's size follows the machine's floating point (0.115 where this was written, 0.043 on another
    # machine with the same code and bytes of input); its sign is what extension rounds promise
    assert min(leaned.values()) > min(plain.values()) + 0.02, (leaned, plain)
    assert leaned[lagging] > even[lagging], (leaned, even)
    assert CloakOptions().optimizer.lag_weight > 1
    with pytest.raises(ValueError):
        CloakOptions.of(lag_weight=0).validate()


@pytest.mark.integration
def test_low_mode_cloaks_a_face_short_of_its_target_again_at_the_ceiling(dev: Path) -> None:
    """Low's ρ is a preference: a face still short of its target after its steps is cloaked again from
    its original at the ceiling (mid's ρ), paid from its extension allowance; a custom budget is a hard limit."""
    photo = read_photo(dev / "faces" / "Keira_Knightley" / "5.jpg")
    raised = PhotoCloaker(CloakOptions.of(mode="low", steps=6, extend_steps=6)).cloak([photo])[0].faces[0]
    assert raised.steps == 12 and raised.best_step > 6 and raised.budget == MODES["low"].ceiling
    assert 0.004 < raised.dssim <= raised.budget  # the higher budget was used
    fixed = PhotoCloaker(CloakOptions.of(dssim_budget=0.004, steps=6, extend_steps=6)).cloak([photo])[0].faces[0]
    assert fixed.steps == 12 and fixed.budget == 0.004 and fixed.dssim <= 0.004
    assert CloakOptions.of(dssim_budget=0.004).budget.ceiling == 0.004
    assert CloakOptions.of(dssim_budget=0.004, max_budget=0.006).budget.ceiling == 0.006
    assert CloakOptions.of(mode="mid").budget.ceiling == 0.007
    with pytest.raises(ValueError):
        CloakOptions.of(mode="mid", max_budget=0.005).validate()


@pytest.mark.integration
def test_seeded_cloaks_are_reproducible(dev: Path) -> None:
    photo = read_photo(dev / "faces" / "Keanu_Reeves" / "2.jpg")
    # several runs: MKL's alignment-dependent kernels made about 1 run in 5 differ (engine/fawkes_engine/__init__.py)
    # (on CUDA too: the crops are made on the CPU there, engine.cloak._view)
    runs = [PhotoCloaker(CloakOptions.of(mode="mid", steps=5, seed=7)).cloak([photo])[0].photo.rgb for _ in range(5)]
    for r in runs[1:]:
        assert np.array_equal(runs[0], r)


def _toy_bank() -> TargetBank:
    rng = np.random.default_rng(0)
    centres = np.eye(4, 8)
    emb = np.concatenate([c + 0.01 * rng.standard_normal((3, 8)) for c in centres])
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return TargetBank(["a", "b", "c", "d"], np.repeat(np.arange(4), 3), {"x": emb.astype(np.float32)}, {})


@pytest.mark.unit
def test_target_is_farthest_centroid_with_seeded_choice() -> None:
    bank = _toy_bank()
    user = {"x": np.array([[0.9, 0.1, 0.6, 0, 0, 0, 0, 0.0]])}  # near a and c, far from d, then b
    order = rank_targets(bank, user)
    assert [bank.identities[i] for i in order[:2]] == ["d", "b"]
    assert bank.identities[select_target(bank, user, top_k=1)] == "d"
    picks = {bank.identities[select_target(bank, user, top_k=2, seed=s)] for s in range(20)}
    assert picks == {"d", "b"}
    assert select_target(bank, user, top_k=2, seed=3) == select_target(bank, user, top_k=2, seed=3)


@pytest.mark.integration
def test_shipped_bank_has_provenance_and_no_evaluation_identities(dev: Path, lfw_dev: Path) -> None:
    bank = TargetBank.load()
    assert set(bank.embeddings) >= {"sface", "dlib"}
    assert bank.provenance["dataset"] and bank.provenance["extractors"]["dlib"]["sha256"]
    evaluation = {p.name for p in (lfw_dev / "faces").iterdir()} | {p.name for p in (dev / "faces").iterdir()}
    assert not evaluation & set(bank.identities)


@pytest.mark.integration
def test_untargeted_and_fixed_modes(dev: Path) -> None:
    photo = read_photo(dev / "faces" / "Will_Smith" / "3.jpg")
    un = PhotoCloaker(CloakOptions.of(mode="mid", steps=8, target_mode="untargeted")).cloak([photo])[0]
    assert un.faces[0].target is None and min(un.faces[0].feature_shift.values()) > 0.05
    name = TargetBank.load().identities[5]
    fx = PhotoCloaker(CloakOptions.of(mode="mid", steps=4, target_mode="fixed", target_identity=name)).cloak([photo])[0]
    assert fx.faces[0].target == name


@pytest.mark.system
def test_cli_cloak_reports_and_skips_bad_files(dev: Path, tmp_path: Path) -> None:
    from tests.test_photo_io import bad_inputs

    src = tmp_path / "in"
    src.mkdir()
    (src / "lady.jpg").write_bytes((dev / "photos" / "lady.jpg").read_bytes())
    (src / "park_noface.jpg").write_bytes((dev / "photos" / "park_noface.jpg").read_bytes())
    bad = bad_inputs(dev, src)
    originals = {p.name: p.read_bytes() for p in src.iterdir()}
    out = tmp_path / "out"
    report = tmp_path / "r.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fawkes_daemon.cli",
            "cloak",
            str(src),
            str(src / "anim.gif"),
            str(src / "missing.jpg"),
            "--out",
            str(out),
            "--mode",
            "low",
            "--steps",
            "6",
            "--report",
            str(report),
            "--diff-image",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("failed")]
    for name in [*bad, "missing.jpg"]:
        assert any(name in line for line in errors), name
    produced = sorted(p.name for p in out.iterdir())
    assert produced == ["lady_cloaked.jpg", "lady_cloaked_diff.png", "park_noface.jpg"]
    data = json.loads(report.read_text())
    by_name = {Path(f["source"]).name: f for f in data["files"]}
    assert by_name["lady.jpg"]["status"] == "cloaked" and by_name["lady.jpg"]["faces"][0]["dssim"] <= 0.004
    assert by_name["park_noface.jpg"]["status"] == "no-face"
    assert all(by_name[n]["status"] == "failed" for n in bad)
    assert {p.name: p.read_bytes() for p in src.iterdir()} == originals  # originals untouched
    # beside the input, never overwriting: a second run makes a new name
    subprocess.run(
        [sys.executable, "-m", "fawkes_daemon.cli", "cloak", str(src / "lady.jpg"), "--steps", "2"],
        check=True,
        capture_output=True,
        timeout=600,
    )
    subprocess.run(
        [sys.executable, "-m", "fawkes_daemon.cli", "cloak", str(src / "lady.jpg"), "--steps", "2"],
        check=True,
        capture_output=True,
        timeout=600,
    )
    assert (src / "lady_cloaked.jpg").exists() and (src / "lady_cloaked-1.jpg").exists()
    assert (src / "lady.jpg").read_bytes() == originals["lady.jpg"]
