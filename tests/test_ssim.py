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
