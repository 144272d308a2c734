"""The cloak's DSSIM shortcuts must give the numbers of the plain definition."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.cloak import _VisibleWindow
from engine.ssim import SSIMReference, dssim


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


def test_visible_window_dssim_is_the_region_dssim() -> None:
    """Optimizing only the visible part of a region and rescaling its DSSIM is exact at stride 1."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(240, 260, 3), dtype=np.uint8)
    region = (30, 20, 230, 220)  # x0, y0, x1, y1
    context = (60, 0, 250, 150)  # sticks out of the region to the right and above
    win = _VisibleWindow.build(image, region, context, torch.device("cpu"))
    assert win.ref.stride == 1
    orig = win.original
    changed = (orig + 0.05 * torch.from_numpy(rng.standard_normal(orig.shape).astype(np.float32))).clamp(0, 1)
    full = win.with_pixels(changed)
    # the same change written into the whole region, measured the plain way
    rx0, ry0, rx1, ry1 = region
    region_orig = torch.from_numpy(image[ry0:ry1, rx0:rx1].transpose(2, 0, 1).astype(np.float32) / 255)[None]
    region_new = region_orig.clone()
    oy0, ox0 = win.y0 + win.oy[0] - ry0, win.x0 + win.ox[0] - rx0
    region_new[..., oy0 : oy0 + changed.shape[-2], ox0 : ox0 + changed.shape[-1]] = changed
    expected = float(dssim(region_new, region_orig)[0])
    # (float32: windows that see no change score 1 only to within rounding, hence 1e-4)
    assert float(win.region_dssim(full)) == pytest.approx(expected, rel=1e-4)
    # pixels outside the region are never part of the optimized window
    assert win.x0 + win.ox[0] >= rx0 and win.x0 + win.ox[1] <= rx1
    assert win.y0 + win.oy[0] >= ry0 and win.y0 + win.oy[1] <= ry1


@pytest.mark.parametrize("crop_scale", [0.4, 1.0])  # a large photo's face (antialiased resize first) and an LFW-sized one
def test_canvas_patches_give_the_crops_and_gradients_of_the_composed_window(crop_scale: float) -> None:
    """The optimizer's crops come from canvas rectangles; they must equal warping the whole composed window."""
    from engine.align import footprint, warp_faces

    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, size=(700, 720, 3), dtype=np.uint8)
    win = _VisibleWindow.build(image, (40, 30, 680, 670), (90, 60, 700, 630), torch.device("cpu"))
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

    full = win.with_pixels(x)
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


def test_quantizer_measures_the_region_exactly_from_its_changed_area() -> None:
    """The final rounding step measures DSSIM on the changed area only: it must equal the whole region's."""
    from engine.cloak import _quantize_within_budget

    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0:300, 0:280]
    smooth = (0.5 + 0.3 * np.sin(xx / 40.0) * np.cos(yy / 50.0))[None, None].repeat(3, axis=1)  # skin-like: flat, where a change shows
    orig = torch.from_numpy(np.round(smooth * 255).astype(np.float32) / 255)
    x = orig.clone()
    x[..., 100:180, 90:200] += 0.02 * torch.from_numpy(rng.standard_normal((1, 3, 80, 110)).astype(np.float32))
    x = x.clamp(0, 1)
    area = (90 - 10, 100 - 10, 200 + 10, 180 + 10)  # the changed pixels grown by the SSIM window
    budget = 0.004
    q, d = _quantize_within_budget(x.clone(), orig.clone(), 255, budget, area)
    whole = float(dssim(q, orig)[0])
    assert d == pytest.approx(whole, rel=1e-4)
    assert whole <= budget and d > 0.9 * budget  # over the budget at first, shrunk to just inside it
    assert torch.equal(q[..., :80, :], orig[..., :80, :])  # nothing outside the change moved

