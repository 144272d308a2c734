"""The budget holds on the face itself, at every scale, by a measurement that is not the engine's.

Every face of every dev photo is cloaked at mid, written losslessly, read back, and measured
with scikit-image's SSIM after Pillow's Lanczos resampling (engine.evaluate.visibility_check),
on the box the budget applies to: at the photo's resolution and with the face resampled to
224 and 112 px wide. Pixels outside the face boxes must not change at all.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fawkes_engine.cloak import MODES, CloakOptions
from fawkes_engine.evaluate.visibility_check import CHECK_WIDTHS, measure_face
from fawkes_engine.photo_io import read_photo, write_photo
from fawkes_engine.pipeline import PhotoCloaker
from tests.helpers.images import outside_regions_unchanged

# the independent resampler (Lanczos) and SSIM's summation differ from the engine's by a little;
# the engine lands within 98–100 % of ρ, so 2 % over ρ is the most an honest cloak can read here
TOLERANCE = 1.02


@pytest.fixture(scope="module")
def mid_cloaker(detector) -> PhotoCloaker:
    # mid's budget and floor with 8 steps: the step size takes δ to the budget within two or three steps,
    # so the final rounding is tested at the limit; the default 40-100 steps on the 83 faces (two crowds of
    # 21 and 26) take minutes, and bench_visibility measures them
    return PhotoCloaker(CloakOptions.of(mode="mid", steps=8), detector=detector)


def _photos(dev: Path) -> list[Path]:
    return sorted(p for p in (dev / "photos").iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".heic"})


@pytest.mark.integration
def test_every_dev_face_is_within_budget_at_every_scale_and_nothing_else_changes(
    dev: Path, tmp_path: Path, mid_cloaker: PhotoCloaker
) -> None:
    rho = MODES["mid"].dssim_budget
    faces = 0
    report = []
    for src in _photos(dev):
        photo = read_photo(src)
        result = mid_cloaker.cloak([photo])[0]
        written = read_photo(write_photo(result.photo, tmp_path / "c.png")).rgb
        regions = [f.region for f in result.faces]
        assert outside_regions_unchanged(photo.rgb, written, regions), f"{src.name}: pixels outside the face boxes changed"
        for f in result.faces:
            faces += 1
            m = measure_face(photo.rgb, written, f.region, "engine")
            widths = [w for w in CHECK_WIDTHS if w < f.region[2] - f.region[0]]
            assert set(m.dssim) >= {"native", *map(str, widths)}
            report.append((src.name, round(f.box[2]), {k: round(v, 4) for k, v in m.dssim.items()}, round(m.ssimulacra2, 1)))
            for scale, d in m.dssim.items():
                assert d <= f.budget * TOLERANCE, f"{src.name} face {f.box}: DSSIM {d:.4f} at {scale} > ρ {f.budget}"
            # held to mid's ρ, or to less where the floor inside the loop (floor_refine) tightened it for a large face
            assert f.dssim <= f.budget <= rho
            assert f.ssimulacra2 >= MODES["mid"].floor and m.ssimulacra2 >= MODES["mid"].floor - 1e-6
    print("\n".join(map(str, report)))
    assert faces >= 80  # the dev photos hold 83 cloakable faces (most of them 14-40 px wide, in crowds)


@pytest.mark.unit
def test_smooth_blotches_are_caught_at_the_coarse_scale() -> None:
    """The independent check must be able to fail: smooth blotches (what a warp-shaped cloak makes) that a
    full-resolution SSIM window barely sees, on an 800 px face, read several times ρ at 224 and 112 px."""
    import cv2

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:800, 0:700]
    face = np.clip(140 + 20 * np.sin(xx / 31.0) + 4 * rng.standard_normal((800, 700)), 0, 255)
    orig = np.repeat(face[..., None], 3, axis=2).astype(np.uint8)
    blotches = 6 * cv2.resize(rng.standard_normal((16, 14)), (700, 800), interpolation=cv2.INTER_CUBIC)  # ~50 px blotches of ±6 levels
    cloaked = np.clip(orig + blotches[..., None], 0, 255).astype(np.uint8)
    m = measure_face(orig, cloaked, (0, 0, 700, 800), "engine")
    rho = MODES["mid"].dssim_budget
    assert m.dssim["native"] < rho / 3  # within budget by a full-resolution measure
    assert m.dssim["224"] > rho and m.dssim["112"] > 2 * rho  # plain at the scales a face is seen at


@pytest.mark.unit
def test_overlapping_faces_are_each_held_to_their_budget_once_composed() -> None:
    """In a crowd one face's box holds part of its neighbour's change: the composed photo is measured per box."""
    from fawkes_engine.cloak.rounding import compose_within_budget
    from fawkes_engine.visibility.scales import measure_scales

    rng = np.random.default_rng(5)
    image = np.clip(120 + 4 * rng.standard_normal((60, 90, 3)), 0, 255).astype(np.uint8)
    regions = [(5, 10, 45, 50), (30, 10, 70, 50)]  # 15 px of overlap
    pixels, budget = [], 0.007
    for x0, y0, x1, y1 in regions:
        d = np.zeros((y1 - y0, x1 - x0, 3))
        d[:, :] = 3.0 * np.sin((np.arange(x1 - x0) + x0) / 3.0)[None, :, None]  # the same wave: changes add up where boxes overlap
        pixels.append(np.clip(image[y0:y1, x0:x1] + d, 0, 255).astype(np.uint8))

    def worst(img: np.ndarray, r: tuple[int, int, int, int]) -> float:
        x0, y0, x1, y1 = r
        t = lambda a: torch.from_numpy(a[y0:y1, x0:x1].transpose(2, 0, 1).astype(np.float32) / 255)[None]  # noqa: E731
        return measure_scales(t(img), t(image)).worst

    import torch

    summed = image.astype(np.float32)
    for (x0, y0, x1, y1), px in zip(regions, pixels):
        alone = image.copy()
        alone[y0:y1, x0:x1] = px
        assert worst(alone, (x0, y0, x1, y1)) <= budget  # each face alone is within its budget
        summed[y0:y1, x0:x1] += px.astype(np.float32) - image[y0:y1, x0:x1]
    summed = np.clip(np.round(summed), 0, 255).astype(np.uint8)
    assert max(worst(summed, r) for r in regions) > budget  # both changes written as they are break it
    out, measured = compose_within_budget(image, regions, pixels, [budget, budget], [0.0, 0.0])
    assert all(m is not None for m in measured)
    for r, m in zip(regions, measured):
        assert worst(out, r) == pytest.approx(m.scales.worst, rel=1e-5) and m.scales.worst <= budget
    outside = np.ones(image.shape[:2], bool)
    for x0, y0, x1, y1 in regions:
        outside[y0:y1, x0:x1] = False
    assert np.array_equal(out[outside], image[outside])
