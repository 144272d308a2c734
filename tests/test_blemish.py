"""The blemish measures: the plain largest 3×3 change, its independent twin, the JND map, and the written cap."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fawkes_engine.cloak.rounding import round_within_budget
from fawkes_engine.evaluate.visibility_check import largest_window_change
from fawkes_engine.visibility.blemish import (
    blemish_excess,
    jnd_map,
    largest_jnd_ratio,
    largest_patch_change,
    window_allowance,
    worst_window_ratio,
)

pytestmark = pytest.mark.unit


def _unit(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a.transpose(2, 0, 1).astype(np.float32))[None] / 255.0


def test_a_planted_spot_is_measured_in_levels_by_both_implementations() -> None:
    a = np.full((40, 50, 3), 150, np.uint8)
    b = a.copy()
    b[10:13, 20:23] -= 20  # a 3×3 spot darkened by 20 levels on every channel: luma −20
    b[30, 5] += 9  # a single pixel: its best 3×3 mean is 1 level
    assert float(largest_patch_change(_unit(a), _unit(b))[0]) == pytest.approx(20.0, abs=1e-3)
    assert largest_window_change(a, b) == pytest.approx(20.0, abs=1e-9)
    rng = np.random.default_rng(0)
    c = np.clip(a.astype(int) + rng.integers(-12, 13, a.shape), 0, 255).astype(np.uint8)
    assert float(largest_patch_change(_unit(a), _unit(c))[0]) == pytest.approx(largest_window_change(a, c), abs=1e-3)


def test_jnd_is_larger_in_the_dark_and_in_texture_than_on_flat_skin() -> None:
    flat = np.full((32, 32, 3), 170, np.uint8)
    dark = np.full((32, 32, 3), 30, np.uint8)
    rng = np.random.default_rng(1)
    texture = np.clip(170 + rng.normal(0, 25, (32, 32, 1)).repeat(3, 2), 0, 255).astype(np.uint8)
    j_flat, j_dark, j_tex = (float(jnd_map(_unit(x))[..., 8:-8, 8:-8].median()) for x in (flat, dark, texture))
    assert 3.0 < j_flat < 5.0  # Chou and Li: about 3 levels around mid-grey, a little more on bright skin
    assert j_dark > 2 * j_flat and j_tex > 1.25 * j_flat


def test_a_lone_edge_masks_less_than_texture_of_the_same_gradient() -> None:
    edge = np.full((32, 32, 3), 100, np.uint8)
    edge[:, 16:] = 160
    rng = np.random.default_rng(2)
    texture = np.clip(130 + rng.choice([-30, 30], (32, 32, 1)).repeat(3, 2), 0, 255).astype(np.uint8)
    j_edge = float(jnd_map(_unit(edge))[0, 0, 8:-8, 15:17].mean())
    j_tex = float(jnd_map(_unit(texture))[0, 0, 8:-8, 8:-8].mean())
    assert j_edge < j_tex


def test_the_excess_is_zero_within_the_allowance_and_pushes_the_worst_window_down() -> None:
    a = torch.full((1, 3, 24, 24), 0.6)
    allowance = window_allowance(a, 2.0, 8.0)
    x = a.clone()
    x[..., 10:13, 10:13] -= 4 / 255  # 4 levels: within 2 JNDs of flat grey
    assert float(blemish_excess(a, x, allowance)[0]) == 0.0
    x[..., 10:13, 10:13] -= 16 / 255
    y = x.clone().requires_grad_()
    before = float(worst_window_ratio(a, y.detach(), allowance)[0])
    opt = torch.optim.SGD([y], lr=1e-3)
    for _ in range(30):
        opt.zero_grad()
        blemish_excess(a, y, allowance).sum().backward()
        opt.step()
    assert before > 2 and float(worst_window_ratio(a, y.detach(), allowance)[0]) < before
    assert float(largest_jnd_ratio(a, x)[0]) > 4


def test_the_written_face_keeps_the_cap() -> None:
    rng = np.random.default_rng(3)
    original = np.clip(120 + rng.normal(0, 10, (60, 50, 3)), 0, 255).astype(np.uint8)
    orig = _unit(original)
    x = orig.clone()
    x[..., 20:24, 20:24] -= 30 / 255  # a 30-level spot
    x += torch.from_numpy(rng.normal(0, 1.5 / 255, x.shape).astype(np.float32))
    capped = round_within_budget(x.clone().clamp(0, 1), orig.clone(), 255, 0.3, 0.0, original, blemish_cap=10.0)
    free = round_within_budget(x.clone().clamp(0, 1), orig.clone(), 255, 0.3, 0.0, original)
    assert largest_window_change(original, free.pixels) > 25
    assert largest_window_change(original, capped.pixels) <= 10.0
    assert 0 < capped.kept < 0.4
