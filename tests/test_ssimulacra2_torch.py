"""The differentiable SSIMULACRA2 against the ``ssimulacra2`` package, and its gradient."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from ssimulacra2.ssimulacra2 import compute_ssimulacra2

from fawkes_engine.visibility.ssimulacra2_torch import Ssimulacra2Torch, scale_count, ssimulacra2


def _package(a: np.ndarray, b: np.ndarray, tmp: Path) -> float:
    Image.fromarray(a).save(tmp / "a.png")
    Image.fromarray(b).save(tmp / "b.png")
    return float(compute_ssimulacra2(str(tmp / "a.png"), str(tmp / "b.png")))


def _t(a: np.ndarray, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None].to(dtype) / 255.0


def _distort(a: np.ndarray, rng: np.random.Generator, amp: int) -> np.ndarray:
    """A smooth shading plus sparse noise: both kinds of change the cloak makes."""
    h, w = a.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    shade = amp * np.sin(xx / max(w, 1) * 6.0 + 1.0) * np.cos(yy / max(h, 1) * 4.0)
    noise = rng.integers(-amp, amp + 1, a.shape) * (rng.random(a.shape[:2]) < 0.3)[..., None]
    return np.clip(a.astype(np.float64) + shade[..., None] + noise, 0, 255).astype(np.uint8)


@pytest.mark.unit
@pytest.mark.parametrize("shape", [(9, 13), (31, 40), (65, 64), (130, 97), (300, 257)])
def test_equals_the_package_on_random_images_of_every_pyramid_depth(shape: tuple[int, int], tmp_path: Path) -> None:
    rng = np.random.default_rng(sum(shape))
    smooth = np.cumsum(np.cumsum(rng.normal(0, 3, shape + (3,)), 0), 1)
    a = np.clip(128 + smooth / max(1.0, np.abs(smooth).max() / 100), 0, 255).astype(np.uint8)
    b = _distort(a, rng, 8)
    ref = _package(a, b, tmp_path)
    assert float(ssimulacra2(_t(a), _t(b))[0]) == pytest.approx(ref, abs=1e-4)  # float64: the same score but for summation order
    assert float(ssimulacra2(_t(a, torch.float32), _t(b, torch.float32))[0]) == pytest.approx(ref, abs=0.5)


@pytest.mark.unit
def test_scale_count_follows_the_package() -> None:
    assert scale_count(7, 100) == 0 and scale_count(8, 8) == 1 and scale_count(250, 250) == 6 and scale_count(60, 60) == 4


@pytest.mark.unit
def test_identical_images_score_100_with_a_finite_gradient() -> None:
    a = torch.rand(1, 3, 40, 36, dtype=torch.float64)
    x = a.clone().requires_grad_()
    s = Ssimulacra2Torch(a).score(x)
    s.sum().backward()
    assert float(s.detach()) == pytest.approx(100.0)
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.unit
def test_the_gradient_raises_the_score() -> None:
    torch.manual_seed(0)
    a = torch.rand(1, 3, 48, 48)
    x = (a + 0.05 * torch.randn_like(a)).clamp(0, 1).requires_grad_()
    ref = Ssimulacra2Torch(a)
    before = float(ref.score(x))
    opt = torch.optim.Adam([x], lr=0.005)
    for _ in range(20):
        opt.zero_grad()
        (-ref.score(x)).sum().backward()
        opt.step()
    assert float(ref.score(x)) > before + 5


@pytest.mark.integration
def test_within_half_a_point_of_the_package_on_real_faces(dev: Path, lfw_dev: Path, tmp_path: Path) -> None:
    """Real face crops (dev and lfw-dev) in float32, the loop's precision; the full sweep is scripts/check_ssimulacra2_torch.py."""
    rng = np.random.default_rng(0)
    files = sorted((dev / "faces").glob("*/*.jpg"))[::40] + sorted((lfw_dev / "faces").glob("*/*"))[::120]
    assert len(files) >= 8
    for f in files:
        a = np.asarray(Image.open(f).convert("RGB"))
        b = _distort(a, rng, 6)
        got = float(ssimulacra2(_t(a, torch.float32), _t(b, torch.float32))[0])
        assert got == pytest.approx(_package(a, b, tmp_path), abs=0.5), f.name
