"""The loop's extractor passes in reduced precision: the network in it, float32 out, the default untouched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from fawkes_engine.cloak import CloakOptions
from fawkes_engine.cloak.precision import Autocast, loop_module


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 14 * 14, 16)).eval()


@pytest.mark.unit
def test_the_default_is_the_module_itself() -> None:
    net = _net()
    assert loop_module(net, "fp32", False, torch.device("cpu")) is net


@pytest.mark.unit
def test_bf16_runs_the_network_in_bf16_and_hands_back_float32_with_a_gradient() -> None:
    net = _net()
    seen: list[torch.dtype] = []
    net[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    wrapped = loop_module(net, "bf16", False, torch.device("cpu"))
    assert isinstance(wrapped, Autocast)
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    y = wrapped(x)
    assert seen == [torch.bfloat16] and y.dtype == torch.float32
    with torch.no_grad():
        ref = net(x)
    assert seen[-1] == torch.float32  # outside the wrapper the network is as it was
    assert torch.allclose(y, ref, atol=0.05, rtol=0.05) and not torch.equal(y, ref)
    y.sum().backward()
    assert x.grad is not None and x.grad.dtype == torch.float32 and x.grad.abs().sum() > 0


@pytest.mark.unit
def test_an_unknown_precision_is_refused_by_the_options_and_the_config() -> None:
    from fawkes_daemon.config import CloakConfig

    with pytest.raises(ValueError, match="precision"):
        CloakOptions.of(precision="fp8").validate()
    with pytest.raises(ValueError, match="precision"):
        loop_module(_net(), "fp8", False, torch.device("cpu"))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        CloakConfig(precision="fp8")  # type: ignore[arg-type]
    assert CloakConfig(precision="bf16", compile=True).to_options().runtime.precision == "bf16"


@pytest.mark.integration
def test_a_bf16_loop_keeps_the_budget_and_the_change_of_the_fp32_loop(lfw_dev: Path) -> None:
    """Four LFW faces at mid: the budget is held by the fp32 measurement whatever the loop ran in, and the
    features move about as far (the independent SSIMULACRA2 of the written pixels, not the loop's)."""
    from fawkes_engine.photo_io import read_photo
    from fawkes_engine.pipeline import PhotoCloaker
    from fawkes_engine.visibility.scales import ssimulacra2, to_rgb8

    photos = [read_photo(p) for p in sorted((lfw_dev / "faces").glob("*/*.jpg"))[::80][:4]]
    runs = {}
    for precision in ("fp32", "bf16"):
        res = PhotoCloaker(CloakOptions.of(mode="mid", device="cpu", steps=20, precision=precision)).cloak(photos)
        faces = [f for r in res for f in r.faces]
        assert len(faces) == len(photos)
        assert all(f.dssim <= f.budget + 1e-6 for f in faces), [(f.dssim, f.budget) for f in faces]
        s2 = [ssimulacra2(to_rgb8(p.rgb), to_rgb8(r.photo.rgb)) for p, r in zip(photos, res)]
        runs[precision] = (np.median([f.feature_shift["sface"] for f in faces]), np.median(s2), res)
    (shift32, s2_32, res32), (shift16, s2_16, res16) = runs["fp32"], runs["bf16"]
    assert not all(np.array_equal(a.photo.rgb, b.photo.rgb) for a, b in zip(res32, res16))  # it did run in bf16
    assert shift16 >= 0.85 * shift32, (shift16, shift32)
    assert abs(s2_16 - s2_32) < 3, (s2_16, s2_32)
