"""The cloak's DSSIM shortcuts must give the numbers of the plain definition."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fawkes_engine.cloak.window import VisibleWindow as _VisibleWindow
from fawkes_engine.visibility.scales import FacePyramid, measure_scales, pyramid_widths
from fawkes_engine.visibility.ssim import SSIMReference, dssim

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("h", "w", "stride"), [(60, 80, 1), (300, 400, 2), (1200, 1000, 3)])
def test_reference_statistics_give_the_same_dssim_and_gradient(h: int, w: int, stride: int) -> None:
    g = torch.Generator().manual_seed(h)
    y = torch.rand(1, 3, h, w, generator=g)
    x = (y + 0.03 * torch.randn(y.shape, generator=g)).clamp(0, 1).requires_grad_(True)
    ref = SSIMReference.of(y, stride)
    plain = dssim(x, y, stride, checkpoint=True)
    (g_plain,) = torch.autograd.grad(plain.sum(), x)
    fast = dssim(x, ref, checkpoint=True)  # the 1200×1000 case takes the checkpointed band path
    (g_fast,) = torch.autograd.grad(fast.sum(), x)
    assert torch.allclose(fast, plain, rtol=1e-6, atol=1e-9)
    assert torch.allclose(g_fast, g_plain, rtol=1e-4, atol=1e-9)
    with torch.no_grad():
        assert torch.allclose(dssim(x, ref), plain, rtol=1e-6, atol=1e-9)


def test_pyramid_widths_run_from_the_face_down_to_112() -> None:
    assert pyramid_widths(884) == [884, 448, 224, 112]
    assert pyramid_widths(230) == [230, 224, 112]
    assert pyramid_widths(112) == [112]
    assert pyramid_widths(60) == [60]  # a small face is never upsampled


def test_loop_pyramid_matches_the_exact_measurement_and_binds_at_the_coarse_scale() -> None:
    """A smooth change (what the extractors' warp makes) hardly registers at full resolution, but does at 112 px."""
    yy, xx = np.mgrid[0:400, 0:360]
    rng = np.random.default_rng(3)
    face = 0.45 + 0.1 * np.sin(xx / 23.0) + 0.05 * rng.standard_normal((400, 360))
    orig = torch.from_numpy(np.clip(face, 0, 1)[None, None].repeat(3, axis=1).astype(np.float32))
    blob = 0.03 * np.exp(-(((xx - 180) / 30.0) ** 2 + ((yy - 200) / 25.0) ** 2))  # a smooth blotch
    x = (orig + torch.from_numpy(blob.astype(np.float32))).clamp(0, 1)
    exact = measure_scales(x, orig)
    assert list(exact.per_scale) == [360, 224, 112]
    loop = FacePyramid(orig).per_scale(x)
    assert torch.allclose(loop, torch.tensor(list(exact.per_scale.values())), rtol=1e-4)
    assert exact.binding == 112 and exact.per_scale[112] > 2 * exact.per_scale[360]


def test_lift_is_exact_at_scale_one_and_stays_inside_the_face_box() -> None:
    from fawkes_engine.faces import Face
    from fawkes_engine.working_scale import lift, working_copy

    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, size=(900, 800, 3), dtype=np.uint8)
    lm = np.array([[330.0, 380.0], [470.0, 380.0], [400.0, 450.0], [345.0, 520.0], [455.0, 520.0]])
    face = Face((280.0, 280.0, 240.0, 300.0), lm)
    region = face.region(image.shape, 0.1)
    context = (200, 180, 640, 700)
    small = working_copy(image, face, region, context, 1000)
    assert not small.resampled
    d = torch.randn(1, 3, small.copy_region[3] - small.copy_region[1], small.copy_region[2] - small.copy_region[0])
    assert torch.equal(lift(d, small), d)  # the copy is the photo: the change is put back as it is
    big = working_copy(image, face, region, context, 112)
    assert big.resampled and big.copy_region[2] - big.copy_region[0] <= 112
    cx0, cy0, cx1, cy1 = big.copy_region
    ones = torch.ones(1, 3, cy1 - cy0, cx1 - cx0)
    up = lift(ones, big)
    assert up.shape[-2:] == (region[3] - region[1], region[2] - region[0])
    assert float(up.max()) <= 1 + 1e-5 and float(up[..., 40:-40, 40:-40].min()) > 1 - 1e-5  # interpolation, no overshoot


@pytest.mark.parametrize("crop_scale", [0.4, 1.0])  # a large photo's face (antialiased resize first) and an LFW-sized one
def test_canvas_patches_give_the_crops_and_gradients_of_the_composed_window(crop_scale: float) -> None:
    """The optimizer's crops come from canvas rectangles; they must equal warping the whole composed window."""
    from fawkes_engine.align import footprint, warp_faces

    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, size=(700, 720, 3), dtype=np.uint8)
    win = _window(image, (40, 30, 680, 670), (90, 60, 700, 630))
    x = (win.original + 0.02 * torch.from_numpy(rng.standard_normal(win.original.shape).astype(np.float32))).clamp(0, 1)
    x.requires_grad_(True)
    h, w = win.base.shape[-2:]
    th = 0.1  # crops near the window's centre, slightly rotated, at the given crop px per source px
    rot = crop_scale * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    mats = []
    for centre in ((w / 2, h / 2), (w / 2 + 30, h / 2 - 20)):
        m = np.hstack([rot, (np.array([55.5, 55.5]) - rot @ np.array(centre))[:, None]])
        mats.append(m)
    weights = torch.from_numpy(rng.standard_normal((2, 1, 3, 112, 112)).astype(np.float32))

    full = win.base.clone()
    full[..., win.oy[0] : win.oy[1], win.ox[0] : win.ox[1]] = x
    plain = [warp_faces(full, m[None], 112) for m in mats]
    (g_plain,) = torch.autograd.grad(sum((p * wt).sum() for p, wt in zip(plain, weights)), x)

    win.show(x)
    boxes = [footprint(m, 112, h, w) for m in mats]
    assert all((b[2] - b[0]) * (b[3] - b[1]) < h * w / 2 for b in boxes)  # a part of the window, not all of it
    patches = win.patches(x, boxes)
    fast = []
    for m, (bx0, by0, _bx1, _by1), patch in zip(mats, boxes, patches):
        mm = m.copy()
        mm[:, 2] += mm[:, 0] * bx0 + mm[:, 1] * by0
        fast.append(warp_faces(patch, mm[None], 112))
    (g_fast,) = torch.autograd.grad(sum((p * wt).sum() for p, wt in zip(fast, weights)), x)
    # (to float32 rounding of grid_sample's normalized coordinates: ~W/2 · 6e-8 px on the whole window)
    for p, f in zip(plain, fast):
        assert float((f - p).detach().abs().max()) < 2e-4
    assert float((g_fast - g_plain).abs().max()) < 2e-4 * float(g_plain.abs().max())
    assert float(g_fast.abs().sum()) > 0


def _window(image: np.ndarray, region: tuple[int, int, int, int], context: tuple[int, int, int, int]) -> _VisibleWindow:
    from fawkes_engine.cloak import CloakOptions
    from fawkes_engine.faces import Face
    from fawkes_engine.working_scale import working_copy

    x0, y0, x1, y1 = region
    cx, cy, s = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 4
    lm = np.array([[cx - s / 2, cy - s / 2], [cx + s / 2, cy - s / 2], [cx, cy], [cx - s / 2, cy + s / 2], [cx + s / 2, cy + s / 2]])
    face = Face((float(x0), float(y0), float(x1 - x0), float(y1 - y0)), lm)
    return _VisibleWindow.build(working_copy(image, face, region, context, 10_000), torch.device("cpu"), CloakOptions().perception)


def test_quantizer_lands_just_inside_the_budget_at_the_worst_scale() -> None:
    """The final rounding step shrinks a change over the budget until its worst scale is just inside it."""
    from fawkes_engine.cloak.rounding import Rounding, kept_within_budget, round_within_budget

    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0:300, 0:280]
    smooth = (0.5 + 0.3 * np.sin(xx / 40.0) * np.cos(yy / 50.0))[None, None].repeat(3, axis=1)  # skin-like: flat, where a change shows
    orig = torch.from_numpy(np.round(smooth * 255).astype(np.float32) / 255)
    x = orig.clone()
    x[..., 100:180, 90:200] += 0.02 * torch.from_numpy(rng.standard_normal((1, 3, 80, 110)).astype(np.float32))
    x = x.clamp(0, 1)
    budget = 0.004
    original = (orig[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    r = round_within_budget(x.clone(), orig.clone(), 255, budget, 0.0, original)
    q = torch.from_numpy(r.pixels.astype(np.float32) / 255).permute(2, 0, 1)[None]
    again = measure_scales(q, orig)
    assert again.per_scale == pytest.approx(r.scales.per_scale, rel=1e-4)
    assert again.worst <= budget and again.worst > 0.9 * budget  # over the budget at first, shrunk to just inside it
    assert r.kept < 1
    assert torch.equal(q[..., :80, :], orig[..., :80, :])  # nothing outside the change moved
    # with a perceptual floor above what the budget allows, the change shrinks further, until it clears the floor
    floored = round_within_budget(x.clone(), orig.clone(), 255, budget, r.ssimulacra2 + 5, original)
    assert floored.kept < r.kept and floored.scales.worst < r.scales.worst
    assert r.ssimulacra2 + 5 <= floored.ssimulacra2 < r.ssimulacra2 + 6  # in the accepted window, not far above it
    # the floor's search measures no DSSIM on the way: what it reports is measured on what it writes
    q = torch.from_numpy(floored.pixels.astype(np.float32) / 255).permute(2, 0, 1)[None]
    assert measure_scales(q, orig).per_scale == pytest.approx(floored.scales.per_scale, rel=1e-4)
    # and the share the floor check inside the loop reads is the same c, found without building the result
    assert kept_within_budget(Rounding(x.clone(), orig.clone(), 255, original), budget, r.ssimulacra2 + 5) == floored.kept


def test_guided_lift_follows_the_photos_edges_and_keeps_the_copys_view() -> None:
    """A guided lift puts a change that tracks the copy's luma onto the photo's sharp edge; downscaled it is the copy's change."""
    import cv2

    from fawkes_engine.faces import Face
    from fawkes_engine.working_scale import Upsampling, lift, working_copy

    image = np.full((900, 800, 3), 60, dtype=np.uint8)
    image[:, 401:] = 200  # one sharp vertical edge through the face, off the copy's pixel grid
    lm = np.array([[330.0, 380.0], [470.0, 380.0], [400.0, 450.0], [345.0, 520.0], [455.0, 520.0]])
    face = Face((280.0, 280.0, 240.0, 300.0), lm)
    region = face.region(image.shape, 0.1)
    context = (200, 180, 640, 700)
    plain = working_copy(image, face, region, context, 112)
    guided = working_copy(image, face, region, context, 112, Upsampling("guided"))
    cx0, cy0, cx1, cy1 = guided.copy_region
    low = torch.from_numpy(guided.image[cy0:cy1, cx0:cx1].astype(np.float32) / 255).permute(2, 0, 1)[None]
    delta = 0.05 * low  # brighter pixels change more: a change that follows the copy's luma
    orig = torch.from_numpy(image[region[1] : region[3], region[0] : region[2]].astype(np.float32) / 255).permute(2, 0, 1)[None]
    sharp, smooth = lift(delta, guided, orig), lift(delta, plain, orig)
    col = 401 - region[0]  # the edge in the face box
    rows = slice(60, -60)
    step = lambda d: float((d[0, 0, rows, col] - d[0, 0, rows, col - 1]).mean())  # noqa: E731
    assert step(sharp) > 0.8 * 0.05 * 140 / 255  # the change jumps where the photo does
    assert step(smooth) < 0.5 * step(sharp)  # a bilinear lift spreads it over several photo pixels
    # what an extractor sees (the face box brought back down) is the copy's change, within a few percent
    back = cv2.resize(sharp[0].permute(1, 2, 0).numpy(), (cx1 - cx0, cy1 - cy0), interpolation=cv2.INTER_AREA)
    ref = delta[0].permute(1, 2, 0).numpy()
    assert np.abs(back[4:-4, 4:-4] - ref[4:-4, 4:-4]).mean() < 0.03 * np.abs(ref).mean()
    flat = lift(torch.full_like(delta, 0.02), guided, orig)  # a change that does not track luma stays a plain lift
    assert torch.allclose(flat[..., 40:-40, 40:-40], torch.tensor(0.02), atol=1e-4)
